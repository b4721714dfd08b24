import { escapeBare } from "../log/format.ts";
import { unwrapStreamKey } from "../net/frame-cipher.ts";
import { clientProof, deriveSessionKeys, randomNonce, type SessionKeys, type TokenKey } from "../net/session-keys.ts";
import {
  ByeReason, CAP_DECRYPT, CAP_REPAIR, CAP_MULTICAST, CAP_MULTICAST_LAYERS, CAP_PATH_REPORTS, CAP_RESUME, CAP_TCP_DELIVERY, CAP_TOKEN_AUTH, CAP_VERIFY, FallbackReason, PROTOCOL_VERSION, RefuseReason, WELCOME_ENCRYPTED, WELCOME_REPAIR,
  WELCOME_TCP_DELIVERY, byeReasonText, refuseReasonText, CAP_SOURCE_STATUS, SourceState, WELCOME_SOURCE_STATUS, CAP_CAMERA, CAP_AUDIO, WELCOME_AUDIO,
  type ByeTotals, type Challenge, type ControlMessage, type Delivery, type Hello, type Key, type Report, type Transport, type Welcome,
} from "../wire/control.ts";
import { nowMicros } from "../wire/frame.ts";
import { GoneReason } from "../wire/repair.ts";
import { UserError } from "../errors/user-error.ts";
import { classifyRefusal, type Refusal } from "./refusal.ts";
import { deliveryProblem } from "./frame-sizes.ts";

/**
 * How long after a welcome that names a multicast group the viewer waits for the
 * group's first datagram before it asks for unicast: a few frame intervals at any
 * sensible rate, and well inside the server's 5 s silence timeout.
 */
export const MULTICAST_WAIT_MS = 2000;

/** Past this the backoff no longer grows, so the counter need not either. */
const MAX_ATTEMPT = 10;

/** How long the first connection, retries for a busy server included, may take by default (`--connect-timeout`). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Room left for one more attempt before the connect timeout: a LAN handshake takes milliseconds, this is plenty. */
const LAST_TRY_MS = 500;
/** A retry sooner than this before the timeout is not worth making: give up instead. */
const MIN_RETRY_MS = 100;

/** Delay before reconnect attempt `n` (0-based): 0.5 s doubling to at most 5 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(5000, 500 * 2 ** Math.min(attempt, MAX_ATTEMPT));
}

/** A connection attempt that failed; the message is meant for the user as is. */
export class ConnectError extends UserError {
  override name = "ConnectError";
  /** How the refusal should be taken (see Refusal); null when the server did not refuse (a failed connect, a timeout). */
  readonly refusal: Refusal | null;

  /**
   * `refusedFor`: the server's refuse reason when it answered with one; `why`: its text
   * (or the reason's), which tells a busy server from one that will not have this viewer.
   */
  constructor(message: string, readonly refusedFor: RefuseReason | null = null, readonly why = "") {
    super(message);
    this.refusal = refusedFor === null ? null : classifyRefusal(refusedFor, why);
  }

  /** A refusal that retrying cannot cure: another protocol version, a bad hello, auth (but a lockout). */
  get isFinal(): boolean {
    return this.refusal?.kind === "final";
  }

  /** A refusal that clears by itself: the server is busy, or this address is locked out for a while. */
  get isTransient(): boolean {
    return this.refusal?.kind === "busy" || this.refusal?.kind === "locked";
  }
}

/** A failure about the token on either side: final, as a refusal for auth is. */
function authError(message: string): ConnectError {
  return new ConnectError(message, RefuseReason.AuthRequired);
}

/** Why a running session ended (the viewer stopping is not an end: it finishes the machine). */
export type SessionEnd =
  | { reason: "server bye"; text: string }
  | { reason: "connection closed" }
  | { reason: "timeout" }
  | { reason: "protocol error"; text: string };

/** What the socket side tells the machine. */
export type HandshakeInput =
  /** Begin: the first connection attempt. */
  | { type: "start" }
  /** The TCP connection asked for by `connect` is open. */
  | { type: "connected" }
  /** It could not be opened (refused, unresolvable); `text` is for the user. */
  | { type: "connect-failed"; text: string }
  | { type: "message"; msg: ControlMessage }
  /** A message whose tag was missing or wrong (the channel dropped it). */
  | { type: "forged" }
  /** The control stream could not be decoded; its framing is lost. */
  | { type: "decode-error"; text: string }
  /** The peer closed the connection; `error` when a socket error closed it. */
  | { type: "closed"; error?: string }
  /** Time passed: timeouts, heartbeats and reconnects are due on ticks. */
  | { type: "tick" }
  /** A datagram from the server came by the session's multicast group. */
  | { type: "multicast-arrived" }
  /** The session's multicast group could not be joined; `text` says why. */
  | { type: "multicast-failed"; text: string }
  /** The viewer is done: say goodbye and finish. */
  | { type: "stop" };

/** What the socket side must do, in order. */
export type HandshakeAction =
  /** Open a TCP connection to the server (then report `connected` or `connect-failed`). */
  | { type: "connect" }
  | { type: "send"; msg: ControlMessage }
  /** From now on tag what is sent and check what comes (after the response is sent). */
  | { type: "secure"; keys: SessionKeys }
  /**
   * Start accepting datagrams from the server's address and `welcome.udpSourcePort` for
   * `welcome.sessionId`; encrypted ones (welcome.flags) only open with the keys that follow.
   */
  | { type: "receive"; welcome: Welcome }
  /** A stream key for this session's datagrams. */
  | { type: "key"; id: number; key: Uint8Array }
  /** What the server sends this viewer now (its layer, rate, skipped frames); checked against the welcome. */
  | { type: "delivery"; delivery: Delivery }
  /** The server will not repair these frames (a session whose welcome set WELCOME_REPAIR). */
  | { type: "gone"; frames: number[]; /** Never sent to this viewer (skipped for its path), not lost. */ skipped: boolean }
  /** The server's camera failed and is retried (false), or is back (true): a session whose welcome set WELCOME_SOURCE_STATUS. */
  | { type: "source"; available: boolean }
  /** The server's microphone failed and is retried (false), or is back (true): a session whose welcome set WELCOME_AUDIO. */
  | { type: "audio"; available: boolean }
  /** How the server sends now (TCP delivery, a session whose welcome set WELCOME_TCP_DELIVERY). */
  | { type: "transport"; msg: Transport }
  /**
   * The group does not reach this viewer: leave it (the server was just asked for
   * unicast, and datagrams come to the viewer's own port from now on).
   */
  | { type: "leave-group"; reason: FallbackReason; text: string }
  /** Stop accepting datagrams and close the connection after what was sent; ignore its further events. */
  | { type: "close"; reason: string }
  /** Tick again after `afterMs`: the next connection attempt is due then. */
  | { type: "retry"; afterMs: number; cause: SessionEnd | ConnectError }
  /** Done: `error` is for the user; null when stopped. Nothing follows. */
  | { type: "finished"; error: ConnectError | null };

/** How the machine talks to one server. */
export interface HandshakeOptions {
  /** The server as the user named it ("host:port"), for messages. */
  server: string;
  /** The bound UDP port the hello names. */
  udpPort: number;
  /** This viewer's name in the server's log. */
  /** The server's camera to watch: its number or name ("" or left out: camera 0). */
  camera?: string;
  name?: string;
  /**
   * The first connection, TCP connect and retries for a busy server included, must
   * succeed within this; after a session each reconnect attempt gets as long
   * (default DEFAULT_CONNECT_TIMEOUT_MS).
   */
  connectTimeoutMs?: number;
  /** Uniform in [0, 1), to spread the retries of viewers refused together (default Math.random). */
  random?: () => number;
  /** The counters for each report, cumulative. */
  report: () => Report;
  /** The final counts for the goodbye; asked for when the bye is built, never earlier. */
  totals: () => ByeTotals;
  /** Wall clock for heartbeats, µs since the Unix epoch. */
  wallClockMicros?: () => number;
  /**
   * The token (stretched): the server must ask for it and prove it holds it too, and
   * frames must be encrypted. Without one, a server that asks for a token is an error.
   */
  auth?: { token: TokenKey; nonce?: () => Uint8Array } | null;
  /** Offer to join a multicast group (default true). */
  multicast?: boolean;
  /** Offer loss repair (CAP_REPAIR): ask for lost datagrams and take parity (default false). */
  repair?: boolean;
  /** Offer TCP delivery (CAP_TCP_DELIVERY): take datagram messages, speak switch and transport (default true). */
  tcpDelivery?: boolean;
  /** How long to wait for the group's first datagram (default MULTICAST_WAIT_MS). */
  multicastWaitMs?: number;
  /** Offer to play audio (CAP_AUDIO): take audio datagrams and audio messages (default false). */
  audio?: boolean;
}

/** Where a multicast session's datagrams come by: waiting for the group's first, the group, or unicast after a fallback. */
type GroupState = { kind: "waiting"; deadline: number } | { kind: "flowing" } | { kind: "unicast" };

type State =
  | { kind: "idle" }
  | { kind: "handshake"; connected: boolean; since: number; deadline: number; hello: Hello | null; keys: SessionKeys | null }
  | { kind: "session"; welcome: Welcome; lastHeardAt: number; nextBeatAt: number; keys: SessionKeys | null; group: GroupState | null }
  | { kind: "backoff"; retryAt: number }
  | { kind: "finished" };

/** Where the machine is: not started, connecting or waiting for the welcome, in a session, waiting to reconnect, done. */
export type HandshakeState = State["kind"];

/**
 * A viewer's side of the control protocol, apart from sockets: connect, hello,
 * welcome or refuse, heartbeats and reports, the silence timeout, bye, and
 * reconnecting with backoff. Driven by `push(input, now)` with a monotonic clock
 * in ms; returns the actions to carry out, in order.
 *
 * Before the first welcome, a server that is busy (full, flooded, restarting) or has
 * locked this address out for a while is asked again with backoff until the connect
 * timeout, which then ends it with an error naming the last refusal; any other failure
 * ends it at once, as it is for the user to fix. Once a session was welcomed, only a
 * final refusal ends it, everything else is retried.
 */
export class Handshake {
  readonly #opts: HandshakeOptions;
  readonly #server: string;
  readonly #connectTimeoutMs: number;
  #state: State = { kind: "idle" };
  /** Reconnect attempts since the last welcome, for the backoff. */
  #attempt = 0;
  #welcomed = false;
  /** Before the first welcome: when the first connection is given up, when it began, and attempts so far. */
  #giveUpAt = Infinity;
  #startedAt = 0;
  #attempts = 0;
  /** The last refusal worth waiting out before the first welcome, named when giving up. */
  #lastBusy: ConnectError | null = null;
  /** The last welcome's resume secret: the next hello presents it, so the server lets it replace that session. */
  #resume: Uint8Array | null = null;

  constructor(opts: HandshakeOptions) {
    this.#opts = opts;
    this.#server = opts.server;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  /** Where the machine is (for logs and tests). */
  get state(): HandshakeState {
    return this.#state.kind;
  }

  /** In a multicast session: "waiting", "flowing" or "unicast"; null otherwise. */
  get delivery(): GroupState["kind"] | null {
    const s = this.#state;
    return s.kind === "session" && s.group ? s.group.kind : null;
  }

  /** Takes one input at `now`; an input that does not fit the state (a late answer from a connection given up) changes nothing. */
  push(input: HandshakeInput, now: number): HandshakeAction[] {
    const s = this.#state;
    switch (input.type) {
      case "start":
        if (s.kind !== "idle") return [];
        this.#startedAt = now;
        this.#giveUpAt = now + this.#connectTimeoutMs;
        return this.#connect(now);
      case "stop":
        return this.#stop();
      case "tick":
        return this.#tick(now);
      case "multicast-arrived":
        if (s.kind === "session" && s.group?.kind === "waiting") s.group = { kind: "flowing" };
        return [];
      case "multicast-failed":
        return s.kind === "session" && s.group?.kind === "waiting" ? this.#fallBack(s, FallbackReason.JoinFailed, input.text) : [];
      case "connected": {
        if (s.kind !== "handshake" || s.connected) return [];
        s.connected = true;
        const capabilities = CAP_RESUME | CAP_VERIFY | CAP_PATH_REPORTS | (this.#opts.auth ? CAP_TOKEN_AUTH | CAP_DECRYPT : 0) | (this.#opts.multicast === false ? 0 : CAP_MULTICAST | CAP_MULTICAST_LAYERS) | (this.#opts.repair ? CAP_REPAIR : 0) | (this.#opts.tcpDelivery === false ? 0 : CAP_TCP_DELIVERY) | CAP_SOURCE_STATUS | CAP_CAMERA | (this.#opts.audio ? CAP_AUDIO : 0);
        // Always named, "" for camera 0: the welcome then says which camera this is.
        const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: this.#opts.udpPort, capabilities, name: this.#opts.name ?? "", camera: this.#opts.camera ?? "" };
        if (this.#resume) hello.resume = this.#resume;
        s.hello = hello;
        return [{ type: "send", msg: hello }];
      }
      case "forged":
        // Before the welcome, a message that fails its tag can only come from a server that
        // does not hold the token (or from someone in between): the server has not proved itself.
        if (s.kind === "handshake" && s.keys) {
          return this.#fail(authError(`server ${this.#server} could not prove it holds the token (it has another token, or it is not the server you meant)`), now);
        }
        return [];
      case "connect-failed":
        return s.kind === "handshake" && !s.connected ? this.#fail(new ConnectError(input.text), now) : [];
      case "message":
        return this.#message(input.msg, now);
      case "decode-error":
        if (s.kind === "handshake" && s.connected) return this.#fail(new ConnectError(`server ${this.#server} sent a malformed message: ${input.text}`), now);
        if (s.kind === "session") return this.#end({ reason: "protocol error", text: input.text }, now);
        return [];
      case "closed":
        if (s.kind === "handshake" && s.connected) {
          const text = input.error ? `cannot talk to ${this.#server}: ${input.error}` : `server ${this.#server} closed the connection during the handshake`;
          return this.#fail(new ConnectError(text), now);
        }
        if (s.kind === "session") return this.#end({ reason: "connection closed" }, now);
        return [];
    }
  }

  #connect(now: number): HandshakeAction[] {
    if (!this.#welcomed) this.#attempts++;
    const deadline = this.#welcomed ? now + this.#connectTimeoutMs : this.#giveUpAt;
    this.#state = { kind: "handshake", connected: false, since: now, deadline, hello: null, keys: null };
    return [{ type: "connect" }];
  }

  #message(msg: ControlMessage, now: number): HandshakeAction[] {
    const s = this.#state;
    if (s.kind === "session") {
      // Any message is a sign of life; only a bye and a key need more.
      s.lastHeardAt = now;
      if (msg.type === "bye") return this.#end({ reason: "server bye", text: byeReasonText(msg.reason) }, now);
      if (msg.type === "key") return this.#key(s.keys, msg, now);
      if (msg.type === "delivery") {
        const problem = deliveryProblem(s.welcome, msg);
        return problem ? this.#end({ reason: "protocol error", text: problem }, now) : [{ type: "delivery", delivery: msg }];
      }
      if (msg.type === "gone") {
        if ((s.welcome.flags & WELCOME_REPAIR) === 0) return this.#end({ reason: "protocol error", text: "gone message in a session whose welcome did not offer repair" }, now);
        return [{ type: "gone", frames: msg.frames, skipped: msg.reason === GoneReason.Skipped }];
      }
      if (msg.type === "source") {
        if ((s.welcome.flags & WELCOME_SOURCE_STATUS) === 0) return this.#end({ reason: "protocol error", text: "source message in a session whose welcome did not offer the camera's status" }, now);
        return [{ type: "source", available: msg.state === SourceState.Available }];
      }
      if (msg.type === "audio") {
        if ((s.welcome.flags & WELCOME_AUDIO) === 0) return this.#end({ reason: "protocol error", text: "audio message in a session whose welcome announced no audio" }, now);
        return [{ type: "audio", available: msg.state === SourceState.Available }];
      }
      if (msg.type === "transport") {
        if ((s.welcome.flags & WELCOME_TCP_DELIVERY) === 0) return this.#end({ reason: "protocol error", text: "transport message in a session whose welcome did not offer tcp delivery" }, now);
        return [{ type: "transport", msg }];
      }
      return [];
    }
    if (s.kind !== "handshake" || !s.connected) return [];
    switch (msg.type) {
      case "challenge":
        return this.#challenge(s, msg, now);
      case "welcome":
        return this.#welcome(s, msg, now);
      case "refuse": {
        // The server's own words reach the user's terminal: spelled out, never a bidi override or a line break.
        const why = msg.text ? escapeBare(msg.text) : refuseReasonText(msg.reason);
        const hint = msg.reason === RefuseReason.AuthRequired && this.#opts.auth && s.keys ? " (the viewer's token is not the server's)" : "";
        return this.#fail(new ConnectError(`server ${this.#server} refused the session: ${why}${hint}`, msg.reason, why), now);
      }
      default:
        return this.#fail(new ConnectError(`server ${this.#server} answered the hello with ${msg.type}, not welcome`), now);
    }
  }

  /** The server asks for the token: answer with a fresh nonce and the proof; from then on the channel is tagged. */
  #challenge(s: Extract<State, { kind: "handshake" }>, challenge: Challenge, now: number): HandshakeAction[] {
    const auth = this.#opts.auth;
    if (!auth) {
      return this.#fail(authError(`server ${this.#server} needs a token: run the viewer with --token or --token-file (or set LANCAM_TOKEN)`), now);
    }
    if (s.keys || !s.hello) return this.#fail(new ConnectError(`server ${this.#server} sent a second challenge`), now);
    const transcript = { hello: s.hello, challenge, clientNonce: (auth.nonce ?? randomNonce)() };
    const keys = deriveSessionKeys(auth.token, transcript);
    s.keys = keys;
    return [
      { type: "send", msg: { type: "response", clientNonce: transcript.clientNonce, proof: clientProof(keys, transcript) } },
      { type: "secure", keys },
    ];
  }

  /**
   * With a token, the welcome arrives only through the channel's tag check, under a
   * key the server could derive only from the token and this viewer's fresh nonce:
   * it is the server's proof. A server that welcomes without a challenge has no token.
   */
  #welcome(s: Extract<State, { kind: "handshake" }>, welcome: Welcome, now: number): HandshakeAction[] {
    const encrypted = (welcome.flags & WELCOME_ENCRYPTED) !== 0;
    if (this.#opts.auth && !s.keys) {
      return this.#fail(authError(`server ${this.#server} does not ask for a token: anyone on the network can watch it; run the viewer without a token to watch anyway`), now);
    }
    if (s.keys && !encrypted) return this.#fail(authError(`server ${this.#server} proved the token but does not encrypt its frames`), now);
    if (!s.keys && encrypted) return this.#fail(new ConnectError(`server ${this.#server} encrypts its frames but never asked for a token`), now);
    // A layer's size is accepted as a frame size: none may be larger than the stream's.
    const larger = welcome.layerGroups?.find((g) => g.width > welcome.width || g.height > welcome.height);
    if (larger) return this.#fail(new ConnectError(`server ${this.#server} lists a layer group of ${larger.width}x${larger.height}, larger than its stream's ${welcome.width}x${welcome.height}`), now);
    if (welcome.multicast && this.#opts.multicast === false) {
      return this.#fail(new ConnectError(`server ${this.#server} sends to a multicast group this viewer did not offer to join`), now);
    }
    this.#welcomed = true;
    this.#attempt = 0;
    this.#resume = welcome.resume ?? null;
    const group: GroupState | null = welcome.multicast ? { kind: "waiting", deadline: now + (this.#opts.multicastWaitMs ?? MULTICAST_WAIT_MS) } : null;
    this.#state = { kind: "session", welcome, lastHeardAt: now, nextBeatAt: now + welcome.heartbeatMs, keys: s.keys, group };
    return [{ type: "receive", welcome }];
  }

  /** A stream key, unwrapped with this session's wrap key; one that does not unwrap ends the session. */
  #key(keys: SessionKeys | null, msg: Key, now: number): HandshakeAction[] {
    const key = keys ? unwrapStreamKey(keys.wrap, msg.nonce, msg.keyId, msg.wrapped) : null;
    if (!key) return this.#end({ reason: "protocol error", text: keys ? "a stream key that does not unwrap" : "a stream key for a session that is not encrypted" }, now);
    return [{ type: "key", id: msg.keyId, key }];
  }

  #tick(now: number): HandshakeAction[] {
    const s = this.#state;
    switch (s.kind) {
      case "handshake":
        return now >= s.deadline ? this.#fail(new ConnectError(`server ${this.#server} did not complete the handshake within ${Math.round(s.deadline - s.since) / 1000} s`), now) : [];
      case "backoff":
        return now >= s.retryAt ? this.#connect(now) : [];
      case "session": {
        // TCP alone does not notice a server that vanished without a FIN; the silence does.
        if (now - s.lastHeardAt > s.welcome.timeoutMs) return this.#end({ reason: "timeout" }, now);
        const out: HandshakeAction[] = [];
        if (s.group?.kind === "waiting" && now >= s.group.deadline) {
          out.push(...this.#fallBack(s, FallbackReason.Silent, `nothing arrived from multicast group ${s.welcome.multicast!.address}:${s.welcome.multicast!.port} within ${(this.#opts.multicastWaitMs ?? MULTICAST_WAIT_MS) / 1000} s`));
        }
        if (now < s.nextBeatAt) return out;
        const every = s.welcome.heartbeatMs;
        // Keep the cadence when ticks come a little late; after a long stall start afresh rather than burst.
        s.nextBeatAt += every;
        if (s.nextBeatAt <= now) s.nextBeatAt = now + every;
        const wall = this.#opts.wallClockMicros ?? nowMicros;
        out.push({ type: "send", msg: { type: "heartbeat", sentAt: wall() } }, { type: "send", msg: this.#opts.report() });
        return out;
      }
      default:
        return [];
    }
  }

  /** Asks the server for unicast and leaves the group; only once per session. */
  #fallBack(s: Extract<State, { kind: "session" }>, reason: FallbackReason, text: string): HandshakeAction[] {
    s.group = { kind: "unicast" };
    return [{ type: "send", msg: { type: "fallback", reason } }, { type: "leave-group", reason, text }];
  }

  #stop(): HandshakeAction[] {
    const s = this.#state;
    if (s.kind === "finished") return [];
    this.#state = { kind: "finished" };
    const done: HandshakeAction = { type: "finished", error: null };
    if (s.kind === "session") {
      // The totals are read here, after the last counted frame: the server's leave line is then the viewer's final count.
      return [{ type: "send", msg: { type: "bye", reason: ByeReason.UserQuit, totals: this.#opts.totals() } }, { type: "close", reason: "stopped" }, done];
    }
    if (s.kind === "handshake") return [{ type: "close", reason: "stopped" }, done];
    return [done];
  }

  /** A connection attempt failed: retried with backoff unless it is for the user to fix. */
  #fail(error: ConnectError, now: number): HandshakeAction[] {
    const close: HandshakeAction = { type: "close", reason: error.message };
    const finish = (e: ConnectError): HandshakeAction[] => {
      this.#state = { kind: "finished" };
      return [close, { type: "finished", error: e }];
    };
    const r = error.refusal;
    if (this.#welcomed) {
      if (error.isFinal) return finish(error);
      return [close, this.#backoff(error, now, r?.kind === "locked" ? r.waitMs : null)];
    }
    // Before the first welcome only what clears by itself is waited for. Once the server
    // said it is busy it is known to be there: a failed connect, a close or a timeout after
    // that is the same trouble (a flood, a restart) and is waited out too.
    const waitable = error.isTransient || (this.#lastBusy !== null && r === null);
    if (!waitable) return finish(error);
    if (error.isTransient) this.#lastBusy = error;
    const room = this.#giveUpAt - LAST_TRY_MS - now;
    if (r?.kind === "locked") {
      return r.waitMs <= room ? [close, this.#backoff(error, now, r.waitMs)] : finish(this.#gaveUp(error, now, r.waitMs));
    }
    if (room < MIN_RETRY_MS) return finish(this.#gaveUp(error, now, null));
    // Spread out, so viewers refused together do not all come back at the same moment.
    const spread = reconnectDelayMs(this.#attempt) * (0.5 + (this.#opts.random ?? Math.random)());
    return [close, this.#backoff(error, now, Math.min(Math.round(spread), room))];
  }

  /** The first connection is given up: one line naming the last refusal, and what came after it. */
  #gaveUp(last: ConnectError, now: number, lockoutMs: number | null): ConnectError {
    const busy = this.#lastBusy ?? last;
    const n = this.#attempts;
    const after = lockoutMs !== null
      ? `; waiting ${lockoutMs / 1000} s would pass the connect timeout of ${this.#connectTimeoutMs / 1000} s`
      : last !== busy ? `; the last attempt: ${last.message}` : "";
    return new ConnectError(
      `gave up connecting to ${this.#server} after ${((now - this.#startedAt) / 1000).toFixed(1)} s and ${n} attempt${n === 1 ? "" : "s"}; the last refusal: ${busy.why}${after}`,
      busy.refusedFor, busy.why,
    );
  }

  /** The session ended from the server's side or by silence: reconnect with backoff. */
  #end(end: SessionEnd, now: number): HandshakeAction[] {
    return [{ type: "close", reason: end.reason }, this.#backoff(end, now)];
  }

  /** Waits `fixedMs`, or the backoff for the attempts so far, before the next attempt. */
  #backoff(cause: SessionEnd | ConnectError, now: number, fixedMs: number | null = null): HandshakeAction {
    const afterMs = fixedMs ?? reconnectDelayMs(this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, MAX_ATTEMPT);
    this.#state = { kind: "backoff", retryAt: now + afterMs };
    return { type: "retry", afterMs, cause };
  }
}
