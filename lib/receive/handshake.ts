import {
  ByeReason, PROTOCOL_VERSION, RefuseReason, byeReasonText, refuseReasonText,
  type ByeTotals, type ControlMessage, type Report, type Welcome,
} from "../wire/control.ts";
import { nowMicros } from "../wire/frame.ts";

/** Past this the backoff no longer grows, so the counter need not either. */
const MAX_ATTEMPT = 10;

/** Delay before reconnect attempt `n` (0-based): 0.5 s doubling to at most 5 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(5000, 500 * 2 ** Math.min(attempt, MAX_ATTEMPT));
}

/** A connection attempt that failed; the message is meant for the user as is. */
export class ConnectError extends Error {
  override name = "ConnectError";
  /**
   * `refusedFor`: the server's refuse reason when it answered with one. Only some of
   * them are final for a viewer that is reconnecting (see `isFinal`).
   */
  constructor(message: string, readonly refusedFor: RefuseReason | null = null) {
    super(message);
  }

  /** A refusal that retrying cannot cure: another protocol version, a bad hello, auth. */
  get isFinal(): boolean {
    const r = this.refusedFor;
    return r === RefuseReason.VersionMismatch || r === RefuseReason.BadHello || r === RefuseReason.AuthRequired;
  }
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
  /** The control stream could not be decoded; its framing is lost. */
  | { type: "decode-error"; text: string }
  /** The peer closed the connection; `error` when a socket error closed it. */
  | { type: "closed"; error?: string }
  /** Time passed: timeouts, heartbeats and reconnects are due on ticks. */
  | { type: "tick" }
  /** The viewer is done: say goodbye and finish. */
  | { type: "stop" };

/** What the socket side must do, in order. */
export type HandshakeAction =
  /** Open a TCP connection to the server (then report `connected` or `connect-failed`). */
  | { type: "connect" }
  | { type: "send"; msg: ControlMessage }
  /** Start accepting datagrams from the server's address and `welcome.udpSourcePort` for `welcome.sessionId`. */
  | { type: "receive"; welcome: Welcome }
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
  name?: string;
  /** The whole handshake, TCP connect included, must finish within this (default 5000). */
  connectTimeoutMs?: number;
  /** The counters for each report, cumulative. */
  report: () => Report;
  /** The final counts for the goodbye; asked for when the bye is built, never earlier. */
  totals: () => ByeTotals;
  /** Wall clock for heartbeats, µs since the Unix epoch. */
  wallClockMicros?: () => number;
}

type State =
  | { kind: "idle" }
  | { kind: "handshake"; connected: boolean; deadline: number }
  | { kind: "session"; welcome: Welcome; lastHeardAt: number; nextBeatAt: number }
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
 * A failure at the first attempt ends it with an error for the user; once a
 * session was welcomed, only a final refusal does, everything else is retried.
 */
export class Handshake {
  readonly #opts: HandshakeOptions;
  readonly #server: string;
  readonly #connectTimeoutMs: number;
  #state: State = { kind: "idle" };
  /** Reconnect attempts since the last welcome, for the backoff. */
  #attempt = 0;
  #welcomed = false;

  constructor(opts: HandshakeOptions) {
    this.#opts = opts;
    this.#server = opts.server;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  }

  /** Where the machine is (for logs and tests). */
  get state(): HandshakeState {
    return this.#state.kind;
  }

  /** Takes one input at `now`; an input that does not fit the state (a late answer from a connection given up) changes nothing. */
  push(input: HandshakeInput, now: number): HandshakeAction[] {
    const s = this.#state;
    switch (input.type) {
      case "start":
        return s.kind === "idle" ? this.#connect(now) : [];
      case "stop":
        return this.#stop();
      case "tick":
        return this.#tick(now);
      case "connected":
        if (s.kind !== "handshake" || s.connected) return [];
        s.connected = true;
        return [{ type: "send", msg: { type: "hello", version: PROTOCOL_VERSION, udpPort: this.#opts.udpPort, capabilities: 0, name: this.#opts.name ?? "" } }];
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
    this.#state = { kind: "handshake", connected: false, deadline: now + this.#connectTimeoutMs };
    return [{ type: "connect" }];
  }

  #message(msg: ControlMessage, now: number): HandshakeAction[] {
    const s = this.#state;
    if (s.kind === "session") {
      // Any message is a sign of life; only a bye needs more.
      s.lastHeardAt = now;
      return msg.type === "bye" ? this.#end({ reason: "server bye", text: byeReasonText(msg.reason) }, now) : [];
    }
    if (s.kind !== "handshake" || !s.connected) return [];
    if (msg.type === "welcome") {
      this.#welcomed = true;
      this.#attempt = 0;
      this.#state = { kind: "session", welcome: msg, lastHeardAt: now, nextBeatAt: now + msg.heartbeatMs };
      return [{ type: "receive", welcome: msg }];
    }
    if (msg.type === "refuse") {
      return this.#fail(new ConnectError(`server ${this.#server} refused the session: ${msg.text || refuseReasonText(msg.reason)}`, msg.reason), now);
    }
    return this.#fail(new ConnectError(`server ${this.#server} answered the hello with ${msg.type}, not welcome`), now);
  }

  #tick(now: number): HandshakeAction[] {
    const s = this.#state;
    switch (s.kind) {
      case "handshake":
        return now >= s.deadline ? this.#fail(new ConnectError(`server ${this.#server} did not complete the handshake within ${this.#connectTimeoutMs / 1000} s`), now) : [];
      case "backoff":
        return now >= s.retryAt ? this.#connect(now) : [];
      case "session": {
        // TCP alone does not notice a server that vanished without a FIN; the silence does.
        if (now - s.lastHeardAt > s.welcome.timeoutMs) return this.#end({ reason: "timeout" }, now);
        if (now < s.nextBeatAt) return [];
        const every = s.welcome.heartbeatMs;
        // Keep the cadence when ticks come a little late; after a long stall start afresh rather than burst.
        s.nextBeatAt += every;
        if (s.nextBeatAt <= now) s.nextBeatAt = now + every;
        const wall = this.#opts.wallClockMicros ?? nowMicros;
        return [
          { type: "send", msg: { type: "heartbeat", sentAt: wall() } },
          { type: "send", msg: this.#opts.report() },
        ];
      }
      default:
        return [];
    }
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
    // At the first attempt every failure is for the user to fix; later only a final refusal is.
    if (!this.#welcomed || error.isFinal) {
      this.#state = { kind: "finished" };
      return [close, { type: "finished", error }];
    }
    return [close, this.#backoff(error, now)];
  }

  /** The session ended from the server's side or by silence: reconnect with backoff. */
  #end(end: SessionEnd, now: number): HandshakeAction[] {
    return [{ type: "close", reason: end.reason }, this.#backoff(end, now)];
  }

  #backoff(cause: SessionEnd | ConnectError, now: number): HandshakeAction {
    const afterMs = reconnectDelayMs(this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, MAX_ATTEMPT);
    this.#state = { kind: "backoff", retryAt: now + afterMs };
    return { type: "retry", afterMs, cause };
  }
}
