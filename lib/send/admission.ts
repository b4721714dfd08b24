import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Fields } from "../log/format.ts";
import type { SessionKeys } from "../net/session-keys.ts";
import {
  ByeReason,
  CAP_MULTICAST,
  CAP_RESUME,
  encodeControl,
  fallbackReasonText,
  MAX_FPS_MILLIHERTZ,
  MAX_REFUSE_TEXT_BYTES,
  RefuseReason,
  RESUME_SECRET_SIZE,
  WELCOME_ENCRYPTED,
  WELCOME_MULTICAST,
  type ByeTotals,
  type ControlMessage,
  type Hello,
  type MulticastGroup,
  type Response,
  type Welcome,
} from "../wire/control.ts";
import { classifyFirstBytes } from "../wire/classic.ts";
import { DecodeError } from "../wire/decode-error.ts";
import type { Frame } from "../wire/frame.ts";
import { seqDiff } from "../wire/seq.ts";
import { Capacity, type NoPlace } from "./capacity.ts";
import { ClassicViewers, type ClassicAction, type ClassicCounters } from "./classic-viewers.ts";
import { baseOf, evictable, evictionFor, type Conn, type ConnId, type ConnIn } from "./connection.ts";
import { checkOtherKind, otherKey, OtherViewers, type OtherCounters } from "./other-viewers.ts";
import { NOTHING_SENT, SessionTable, type LeaveReason, type SendCounters, type Session, type StreamTarget } from "./sessions.ts";
import { TokenExchange, type AdmissionAuth, type AuthRefusal } from "./token-exchange.ts";
import type { ViewerSummary } from "./viewer-summary.ts";

export { DEFAULT_MAX_PER_HOST } from "./capacity.ts";
export type { ConnId } from "./connection.ts";
export type { OtherCounters } from "./other-viewers.ts";
export type { AdmissionAuth } from "./token-exchange.ts";
export type { ViewerSummary } from "./viewer-summary.ts";

/*
 * One connection's life on the server (its `kind`, lib/send/connection.ts):
 *
 *   connected --(shutting down: refuse 255)----------------------------------> ended
 *       |      (over a pending limit: a sniffing or pending connection is evicted instead)
 *       v
 *   sniffing --(neither lancam nor classroom; nothing decided within
 *       |   |    helloTimeoutMs; connection closed; shutdown)---------------> ended
 *       |   |
 *       |   | an ASCII port number: classic, a classroom viewer (ClassicViewers), out of
 *       |   | hello and heartbeat handling, until "end", its silence on UDP, a
 *       |   | close or shutdown; refused (closed) when it has no place or the server
 *       |   | has a token (a classroom viewer cannot prove one) ----------------> ended
 *       |
 *       | a lancam message's first byte: every byte so far goes to the decoder
 *       v
 *    pending --(malformed hello: refuse 1 or 3; first message not a hello:
 *       |       refuse 3; with a token: no token capability, or the address is
 *       |       locked out: refuse 4; no hello within helloTimeoutMs;
 *       |       connection closed; shutdown)--------------------------------> ended
 *       |
 *       | with a token: challenge (server nonce); never evicted from here on
 *       v
 *   challenged --(anything but a response, or none within helloTimeoutMs;
 *       |          a wrong proof: refuse 4, counted toward the address's lockout)-> ended
 *       |
 *       | admitted (right proof, or no token): unless its address and UDP port
 *       | are taken (its own viewer's resume secret replaces that session), or
 *       | Capacity has no place for it (refuse 255 or 2):
 *       | [secure: tags from here on], welcome, start streaming
 *       v
 *   streaming --(fallback: a session in the multicast group is sent to its own
 *       |        address and port from now on, logged `fallback`; it goes on)
 *       |
 *       +-------(bye; silent for timeoutMs: bye 3; malformed or unexpected
 *                message: bye 4; replaced by its own viewer: bye 255; its UDP
 *                port answering only with ICMP errors for unreachableMs: bye 255;
 *                not reading its control messages; shutdown: bye 2; connection
 *                closed) stop streaming, log the leave ------------------------> ended
 *
 * Only connections in one of these states are held; an ended one is forgotten at
 * once, so input that still arrives for it is ignored. Classroom viewers, lancam
 * sessions and viewers served elsewhere (admitOther, no connection) take their places
 * from one Capacity: one --max-clients, one --max-per-host.
 */

/** What the socket wrapper must do, in order. */
export type AdmissionAction =
  | { kind: "send"; conn: ConnId; msg: ControlMessage }
  /**
   * The connection speaks lancam: decode `bytes` (everything it sent so far) as
   * control messages, and every byte after them.
   */
  | { kind: "control"; conn: ConnId; bytes: Uint8Array }
  /** Send `bytes` as one UDP datagram to a classroom viewer, from the socket its answers come to. */
  | { kind: "datagram"; conn: ConnId; address: string; port: number; bytes: Uint8Array }
  /**
   * From now on tag what is sent to this connection and check what comes from it
   * (`keys`: its session keys; `keys.wrap` wraps the stream keys sent to it).
   */
  | { kind: "secure"; conn: ConnId; keys: SessionKeys }
  /**
   * Start sending frames to the session (when secured, its stream key first): by the
   * multicast group when session.delivery says so, else to session.address:session.udpPort
   * stamped with session.id. The sender keeps its own SendCounters for session.id.
   */
  | { kind: "start"; conn: ConnId; session: StreamTarget }
  /** The group does not reach this session's viewer: send to its own address and UDP port from now on. */
  | { kind: "unicast"; conn: ConnId }
  | { kind: "stop"; conn: ConnId }
  /** Close once what was sent has been written; the connection is already forgotten. */
  | { kind: "close"; conn: ConnId; reason: string }
  | { kind: "log"; level: "info" | "warn" | "error" | "security"; message: string; fields: Fields };

/** What every welcome says about the stream, besides the session and the timers. */
export type StreamDescription = Pick<Welcome, "width" | "height" | "fpsMillihertz" | "fragmentSize" | "udpSourcePort">;

/** How admission is set up; times in ms of the same clock as the `now` arguments. */
export interface AdmissionOptions {
  maxClients: number;
  /** Connections that have not said hello yet, from all addresses together. */
  maxPending: number;
  heartbeatMs: number;
  /** Silence after which a session ends. */
  timeoutMs: number;
  /** How long a connection may take to say hello, and (with a token) to answer the challenge (default DEFAULT_HELLO_TIMEOUT_MS). */
  helloTimeoutMs?: number;
  /** Viewers of every kind from one address (default DEFAULT_MAX_PER_HOST). */
  maxPerHost?: number;
  /** How long a session's UDP port may answer only with ICMP errors before it ends (default 5000). */
  unreachableMs?: number;
  /** With a token: viewers prove it before they are welcomed, and frames are encrypted. */
  auth?: AdmissionAuth | null;
  /** Resume secrets; random by default. */
  randomSecret?: () => Uint8Array;
  stream: StreamDescription;
  /** The wall clock (µs since the Unix epoch) at `now`, for heartbeats. */
  wallClockUs: (now: number) => number;
  /** Session id source; random by default. */
  randomId?: () => number;
  /** Classroom viewers' resend and timeout (ClassicViewers' defaults: 500 and 5000 ms). */
  classic?: { resendMs?: number; timeoutMs?: number };
  /** The stream's multicast group: viewers that can join it are sent there. Null: unicast only. */
  multicast?: MulticastGroup | null;
  /** What the sender has sent to a session so far (it counts where it sends); nothing when unknown. */
  sent?: (sessionId: number) => Readonly<SendCounters> | undefined;
}

/** The hello deadline by default: a real viewer says hello within a millisecond of connecting. */
export const DEFAULT_HELLO_TIMEOUT_MS = 2000;
/** How far a viewer's counts may run ahead of what was sent to it (a report is up to a second old either way). */
const REPORT_MARGIN = 8;

/** admitOther's answer: the actions (log lines) and, when there is no place, why. */
export interface OtherAdmission {
  refused: string | null;
  actions: AdmissionAction[];
}

/**
 * Connections without hello yet from one address; one more evicts that address's
 * oldest. A real viewer says hello within a millisecond of connecting, but a lab
 * machine may start many viewers at the same moment, so this is not tiny; it keeps one
 * host from taking every pending place (maxPending) and locking the others out.
 */
export const MAX_PENDING_PER_ADDRESS = 16;

/** A refusal, logged and carried out in one place (Admission.#refuse). */
interface Refusal {
  /** What the viewer is told; null for one that understands no refuse (a classroom viewer, a stranger): it is just closed. */
  reason: RefuseReason | null;
  text: string;
  /** Security events (auth, lockout) are logged with Logger.security. */
  level: "warn" | "security";
  /** The log line's message (default "client refused") and fields, in the order printed. */
  message?: string;
  fields: Fields;
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** `text` cut to what a refuse can carry, so a long decode error message cannot make the encoder throw. */
function refuseText(text: string): string {
  if (utf8.encode(text).length <= MAX_REFUSE_TEXT_BYTES) return text;
  let cut = text.slice(0, MAX_REFUSE_TEXT_BYTES - 3);
  while (utf8.encode(cut).length > MAX_REFUSE_TEXT_BYTES - 3) cut = cut.slice(0, -1);
  return cut + "...";
}

const sessionHex = (s: Session) => s.id.toString(16).padStart(8, "0");
const sessionKey = (s: Session) => `udp:${s.id}`;
/** Why a place was refused, as the log's reason= says it. */
const noPlaceReason = (n: NoPlace) => (n.reason === "full" ? "server full" : "too many viewers from this address");

/**
 * The server's control protocol without sockets or timers: pending-connection
 * limits, what a connection's first bytes make it (lancam or classroom viewer),
 * hello to welcome or refuse (the token exchange is TokenExchange's), replacement of
 * a stale session, the hello deadline, heartbeats, the silence timeout, reports and
 * bye; classroom viewers through ClassicViewers; one Capacity for viewers of every
 * kind. Each input returns the actions that carry it out; the caller passes the time
 * and does the I/O.
 */
export class Admission {
  readonly #opts: AdmissionOptions;
  readonly #capacity: Capacity;
  readonly #sessions: SessionTable;
  readonly #classic: ClassicViewers;
  readonly #others = new OtherViewers();
  readonly #conns = new Map<ConnId, Conn>();
  readonly #bySession = new Map<number, ConnIn<"streaming">>();
  readonly #tokens: TokenExchange | null;
  readonly #helloTimeoutMs: number;
  readonly #unreachableMs: number;
  readonly #randomSecret: () => Uint8Array;
  readonly #sent: (sessionId: number) => Readonly<SendCounters>;
  #shuttingDown = false;
  /** Bytes a classroom viewer sent after its port number, which it never should (ignored). */
  classicExtraBytes = 0;
  /** Reports and bye totals that claimed more frames than were sent (ignored). */
  reportsRejected = 0;
  /** Pending connections closed to make room for newer ones. */
  pendingEvicted = 0;
  /** Viewers the multicast group did not reach, switched to unicast. */
  fallbacks = 0;

  constructor(opts: AdmissionOptions) {
    // A welcome the codec cannot carry (timers out of range, a zero port) would fail at
    // every hello; encoding one now turns that into one clear error at start.
    const group = opts.multicast ?? undefined;
    encodeControl({ type: "welcome", sessionId: 0, ...opts.stream, heartbeatMs: opts.heartbeatMs, timeoutMs: opts.timeoutMs, flags: group ? WELCOME_MULTICAST : 0, multicast: group });
    this.#opts = opts;
    this.#tokens = opts.auth ? new TokenExchange(opts.auth) : null;
    this.#helloTimeoutMs = opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.#unreachableMs = opts.unreachableMs ?? 5000;
    this.#randomSecret = opts.randomSecret ?? (() => new Uint8Array(randomBytes(RESUME_SECRET_SIZE)));
    const sent = opts.sent;
    this.#sent = sent ? (id) => sent(id) ?? NOTHING_SENT : () => NOTHING_SENT;
    this.#capacity = new Capacity({ maxClients: opts.maxClients, maxPerHost: opts.maxPerHost });
    this.#sessions = new SessionTable({ timeoutMs: opts.timeoutMs, randomId: opts.randomId });
    this.#classic = new ClassicViewers({ ...opts.classic, capacity: this.#capacity, tokenRequired: !!opts.auth });
  }

  /** Lancam viewers with a session. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Classroom viewers; their frames are worth fitting to a datagram only while this is above 0. */
  get classicCount(): number {
    return this.#classic.size;
  }

  /** Viewers of every kind: what maxClients bounds. */
  get viewerCount(): number {
    return this.#capacity.size;
  }

  /** Connections without a place yet: waiting for first bytes that decide, a hello, or the answer to a challenge. */
  get pendingCount(): number {
    let n = 0;
    for (const c of this.#conns.values()) if (evictable(c) || c.kind === "challenged") n++;
    return n;
  }

  /** Classroom answers and frames that were not used, by reason. */
  get classicCounters(): Readonly<ClassicCounters> {
    return this.#classic.counters;
  }

  /** Whether viewers must prove a token (and frames are encrypted). */
  get requiresToken(): boolean {
    return !!this.#opts.auth;
  }

  /** Wrong token proofs (each logged as refused reason=auth). */
  get authFailures(): number {
    return this.#tokens?.failures ?? 0;
  }

  /**
   * A TCP connection opened. When its address or the server already has too many
   * waiting for their hello, one of those is evicted to make room (see evictionFor): a
   * host that opens connections and says nothing cannot keep newer viewers out, and a
   * connection that said hello is never evicted.
   */
  connected(id: ConnId, from: { address: string; port: number }, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c: Conn = { kind: "sniffing", id, peer: `${from.address}:${from.port || "?"}`, address: from.address, tcpPort: from.port, deadline: now + this.#helloTimeoutMs, head: EMPTY };
    if (this.#shuttingDown) {
      this.#refuse(c, { reason: RefuseReason.Other, text: "shutting down", level: "warn", message: "connection refused", fields: { client: c.peer, reason: "shutting down" } }, out);
      return out;
    }
    const evict = evictionFor(this.#conns.values(), from.address, this.#opts.maxPending, MAX_PENDING_PER_ADDRESS);
    if (evict) {
      this.pendingEvicted++;
      this.#refuse(evict.conn, { reason: RefuseReason.Other, text: evict.why, level: "security", message: "connection evicted", fields: { client: evict.conn.peer, reason: evict.why } }, out);
    }
    this.#conns.set(id, c);
    return out;
  }

  /**
   * Bytes from a connection, as they came. Its first bytes decide what it is: a lancam
   * viewer's go, with all that follow, to the control decoder (a "control" action); an
   * ASCII port number makes it a classroom viewer; anything else closes it.
   */
  arrived(id: ConnId, bytes: Uint8Array, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#conns.get(id);
    if (!c || bytes.length === 0) return out;
    if (c.kind === "classic") {
      // The classroom viewer never sends more; anyone who does is not heard.
      this.classicExtraBytes += bytes.length;
      return out;
    }
    if (c.kind !== "sniffing") {
      out.push({ kind: "control", conn: id, bytes });
      return out;
    }
    const head = c.head.length === 0 ? bytes : concat(c.head, bytes);
    const first = classifyFirstBytes(head);
    switch (first.kind) {
      case "undecided":
        // Copied: the caller's buffer is not ours to keep.
        c.head = head.slice();
        return out;
      case "lancam":
        this.#conns.set(id, { ...baseOf(c), kind: "pending", deadline: c.deadline });
        out.push({ kind: "control", conn: id, bytes: head });
        return out;
      case "invalid":
        // Not a lancam client, so a refuse would mean nothing to it.
        this.#refuse(c, { reason: null, text: "bad first bytes", level: "warn", fields: { client: c.peer, reason: "bad first bytes", detail: first.reason } }, out);
        return out;
      case "classic":
        this.#conns.set(id, { ...baseOf(c), kind: "classic" });
        this.#classicActions(this.#classic.push({ type: "join", id, address: c.address, port: first.port }, now), now, out);
        return out;
    }
  }

  /** One decoded control message from a connection (which therefore speaks lancam). */
  received(id: ConnId, msg: ControlMessage, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#lancam(id);
    if (!c) return out;
    try {
      switch (c.kind) {
        case "pending":
          if (msg.type === "hello") this.#hello(c, msg, now, out);
          else this.#refuse(c, badHello(c, `expected hello, got ${msg.type}`), out);
          break;
        case "challenged":
          if (msg.type === "response") this.#response(c, msg, now, out);
          else this.#refuse(c, badHello(c, `expected response, got ${msg.type}`), out);
          break;
        case "streaming":
          this.#session(c, msg, now, out);
          break;
      }
    } catch (e) {
      // A bug here must cost one connection, not the server.
      out.push({ kind: "log", level: "error", message: "control message handling failed", fields: { client: c.peer, type: msg.type, error: (e as Error).message } });
      this.#end(c, "protocol error", now, out);
    }
    return out;
  }

  /**
   * The connection's bytes did not decode. The framing is lost, so the connection
   * ends; before a hello the client is told why, so another version can say so.
   */
  decodeFailed(id: ConnId, error: unknown, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#lancam(id);
    if (!c) return out;
    const why = error instanceof DecodeError ? error.message : String(error);
    if (c.kind !== "streaming" && error instanceof DecodeError) {
      const mismatch = error.code === "bad-version";
      this.#refuse(c, {
        reason: mismatch ? RefuseReason.VersionMismatch : RefuseReason.BadHello, text: `${mismatch ? "protocol version mismatch" : "bad hello"}: ${why}`,
        level: "warn", fields: { client: c.peer, reason: mismatch ? "version mismatch" : "bad hello", detail: why },
      }, out);
      return out;
    }
    out.push({ kind: "log", level: "warn", message: "malformed control message", fields: { client: c.peer, error: why } });
    if (c.kind === "streaming") out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.ProtocolError } });
    this.#end(c, "protocol error", now, out);
    return out;
  }

  /** The connection's outgoing buffer reached its bound: its viewer is not reading. */
  stalled(id: ConnId, now: number): AdmissionAction[] {
    return this.#gone(id, "not reading", now);
  }

  /** The peer closed the connection (or it failed). */
  closed(id: ConnId, now: number): AdmissionAction[] {
    return this.#gone(id, "connection closed", now);
  }

  /**
   * The UDP socket reported ICMP errors (port unreachable) since the last call. The
   * error does not say for whom, so every session sent to meanwhile (`sessionIds`) is
   * suspect; tick ends one whose errors go on for unreachableMs while its own reports
   * show nothing arriving. A suspect that receives is never ended.
   */
  unreachable(sessionIds: Iterable<number>, now: number): void {
    this.#sessions.unreachable(sessionIds, now);
  }

  /** A datagram on the UDP socket classroom pictures leave from: a viewer's answer, or a stranger's. */
  answer(address: string, port: number, bytes: Uint8Array, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    this.#classicActions(this.#classic.push({ type: "answer", address, port, bytes }, now), now, out);
    return out;
  }

  /** The newest frame, already fitted to one datagram (ClassicEncoder), for the classroom viewers. */
  classicFrame(frame: Frame, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    this.#classicActions(this.#classic.push({ type: "frame", frame }, now), now, out);
    return out;
  }

  /** Classroom viewers' time: resends and timeouts. Call every CLASSIC_TICK_MS while classicCount > 0. */
  classicTick(now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    this.#classicActions(this.#classic.push({ type: "tick" }, now), now, out);
    return out;
  }

  /**
   * A viewer served by another part of the server (`kind`: "browser", ...) asks for a
   * place; it shares maxClients and maxPerHost with lancam and classroom viewers. `id`
   * must be unique among connection ids and other viewers' ids. The join or the refusal
   * is logged.
   */
  admitOther(id: number, kind: string, address: string, name: string, now: number): OtherAdmission {
    checkOtherKind(kind);
    if (this.#conns.has(id) || this.#others.has(id)) throw new Error(`viewer id ${id} is in use`);
    const actions: AdmissionAction[] = [];
    const noPlace = this.#shuttingDown ? null : this.#capacity.check(address);
    if (this.#shuttingDown || noPlace) {
      const reason = noPlace ? noPlaceReason(noPlace) : "shutting down";
      const max = noPlace ? noPlace.max : this.#capacity.maxClients;
      actions.push({ kind: "log", level: "warn", message: "client refused", fields: { client: address, kind, name: name || undefined, reason, max } });
      return { refused: noPlace ? noPlace.text : "shutting down", actions };
    }
    this.#others.add(id, kind, address, name, now);
    this.#capacity.add(otherKey(id), address);
    actions.push({ kind: "log", level: "info", message: "client joined", fields: { client: address, kind, name: name || undefined, clients: this.viewerCount } });
    return { refused: null, actions };
  }

  /** What a viewer served elsewhere has received so far; false when `id` is not one. */
  updateOther(id: number, counters: Partial<OtherCounters>): boolean {
    return this.#others.update(id, counters);
  }

  /** A viewer served elsewhere ended; its leave is logged with `reason`. Unknown ids are ignored. */
  leaveOther(id: number, reason: string, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const v = this.#others.remove(id);
    if (!v) return out;
    this.#capacity.remove(otherKey(id));
    const { framesSent, framesReceived, framesLost } = v.counters;
    out.push({
      kind: "log", level: "info", message: "client left",
      fields: {
        client: v.address, kind: v.kind, name: v.name || undefined, reason, seconds: ((now - v.joinedAt) / 1000).toFixed(1),
        framesSent, framesReceived: framesReceived ?? undefined, framesLost: framesLost ?? undefined, clients: this.viewerCount,
      },
    });
    return out;
  }

  /** Every viewer, lancam, classroom and served elsewhere, in the order they joined. */
  viewers(): ViewerSummary[] {
    const wallMs = (t: number) => Math.round(this.#opts.wallClockUs(t) / 1000);
    const out: ViewerSummary[] = [];
    for (const s of this.#sessions.values()) {
      const r = s.lastReport;
      out.push({
        id: s.id, kind: "udp", address: s.address, udpPort: s.udpPort, name: s.name, joinedAt: wallMs(s.joinedAt), framesSent: this.#sent(s.id).framesSent,
        framesReceived: r ? r.framesReceived : null, framesLost: r ? r.framesLost + r.framesIncomplete : null,
        latencyP50Ms: r ? r.latencyP50Us / 1000 : null, fps: r ? r.fpsMillihertz / 1000 : null,
      });
    }
    for (const v of this.#classic.viewers()) {
      out.push({
        id: v.id, kind: "classic", address: v.address, udpPort: v.port, name: "", joinedAt: wallMs(v.joinedAt), framesSent: v.framesSent,
        framesReceived: v.answers, framesLost: null, latencyP50Ms: null, fps: null,
      });
    }
    for (const v of this.#others.values()) {
      out.push({ id: v.id, kind: v.kind, address: v.address, udpPort: null, name: v.name, joinedAt: wallMs(v.joinedAt), ...v.counters });
    }
    return out.sort((a, b) => a.joinedAt - b.joinedAt || a.id - b.id);
  }

  /**
   * Time passed: closes connections past their hello deadline, ends sessions
   * silent for longer than timeoutMs or whose UDP port is dead, and sends each
   * remaining session the heartbeats that are due (one every heartbeatMs from its welcome).
   */
  tick(now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    for (const c of this.#conns.values()) {
      if (c.kind === "streaming" || c.kind === "classic" || now <= c.deadline) continue;
      const why = c.kind === "challenged" ? "no response within timeout" : "no hello within timeout";
      out.push({ kind: "log", level: "warn", message: "connection closed", fields: { client: c.peer, reason: why } });
      this.#end(c, why, now, out);
    }
    for (const s of this.#sessions.expired(now)) this.#byeAndEnd(s, ByeReason.Timeout, "timeout", now, out);
    for (const s of this.#sessions.deadPorts(now, this.#unreachableMs)) this.#byeAndEnd(s, ByeReason.Other, "udp port unreachable", now, out);
    const { heartbeatMs } = this.#opts;
    let sentAt: number | undefined;
    for (const c of this.#bySession.values()) {
      if (now < c.nextHeartbeatAt) continue;
      sentAt ??= this.#opts.wallClockUs(now);
      out.push({ kind: "send", conn: c.id, msg: { type: "heartbeat", sentAt } });
      // After a stall (a busy event loop), one heartbeat, not a burst of missed ones.
      c.nextHeartbeatAt += heartbeatMs;
      if (c.nextHeartbeatAt <= now) c.nextHeartbeatAt = now + heartbeatMs;
    }
    return out;
  }

  /** The server stops: every viewer is told, every connection closed, and later ones refused. */
  shutdown(now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    this.#shuttingDown = true;
    for (const c of this.#conns.values()) {
      if (c.kind === "classic") continue;
      if (c.kind === "streaming") out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Shutdown } });
      this.#end(c, "server shutdown", now, out);
    }
    this.#classicActions(this.#classic.push({ type: "shutdown" }, now), now, out);
    return out;
  }

  #gone(id: ConnId, reason: "not reading" | "connection closed", now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#conns.get(id);
    if (c?.kind === "classic") this.#classicActions(this.#classic.push({ type: "closed", id }, now), now, out);
    else if (c) this.#end(c, reason, now, out);
    return out;
  }

  #byeAndEnd(s: Session, reason: ByeReason, why: LeaveReason, now: number, out: AdmissionAction[]): void {
    const c = this.#bySession.get(s.id);
    if (!c) return;
    out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason } });
    this.#end(c, why, now, out);
  }

  /** ClassicViewers' actions as this machine's: datagrams, join and leave lines, refusals and closes. */
  #classicActions(actions: ClassicAction[], now: number, out: AdmissionAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case "send":
          out.push({ kind: "datagram", conn: a.id, address: a.address, port: a.port, bytes: a.jpeg });
          break;
        case "joined": {
          const c = this.#conns.get(a.viewer.id);
          out.push({ kind: "log", level: "info", message: "client joined", fields: { client: c?.peer, kind: "classic", udp: a.viewer.port, clients: this.viewerCount } });
          break;
        }
        case "refused": {
          const c = this.#conns.get(a.id);
          if (!c) break;
          // A classroom viewer understands no refusal: closing is all it can be told.
          const w = a.why;
          const fields: Fields = w.reason === "auth"
            ? { reason: "auth", client: c.peer, kind: "classic", udp: a.port, detail: w.text }
            : { client: c.peer, kind: "classic", udp: a.port, reason: noPlaceReason(w), max: w.max };
          this.#refuse(c, { reason: null, text: w.reason === "auth" ? "auth" : noPlaceReason(w), level: w.reason === "auth" ? "security" : "warn", fields }, out);
          break;
        }
        case "left": {
          const v = a.viewer;
          const c = this.#conns.get(v.id);
          this.#conns.delete(v.id);
          out.push({
            kind: "log", level: "info", message: "client left",
            fields: {
              client: c?.peer, kind: "classic", udp: v.port, reason: a.reason, seconds: ((now - v.joinedAt) / 1000).toFixed(1),
              framesSent: v.framesSent, framesReceived: v.answers, resends: v.resends, extraAnswers: v.extraAnswers || undefined, clients: this.viewerCount,
            },
          });
          out.push({ kind: "close", conn: v.id, reason: a.reason });
          break;
        }
      }
    }
  }

  /** The connection, now known to speak lancam; undefined when gone or a classroom viewer's. */
  #lancam(id: ConnId): ConnIn<"pending" | "challenged" | "streaming"> | undefined {
    const c = this.#conns.get(id);
    if (!c || c.kind === "classic") return undefined;
    if (c.kind !== "sniffing") return c;
    const next: ConnIn<"pending"> = { ...baseOf(c), kind: "pending", deadline: c.deadline };
    this.#conns.set(id, next);
    return next;
  }

  /** A message from a viewer with a session. */
  #session(c: ConnIn<"streaming">, msg: ControlMessage, now: number, out: AdmissionAction[]): void {
    const s = c.session;
    this.#sessions.heard(s.id, now);
    switch (msg.type) {
      case "heartbeat":
        return;
      case "report": {
        const bad = this.#implausible(s, msg);
        if (bad) return this.#rejectReport(c, s, "report", bad, out);
        s.lastReport = { framesReceived: msg.framesReceived, framesLost: msg.framesLost, framesIncomplete: msg.framesIncomplete, latencyP50Us: msg.latencyP50Us, fpsMillihertz: msg.fpsMillihertz };
        return;
      }
      case "fallback":
        // A repeat (the viewer asked twice, or was never in the group) changes nothing.
        if (s.delivery !== "multicast") return;
        s.delivery = "unicast";
        this.fallbacks++;
        out.push({ kind: "unicast", conn: c.id });
        out.push({
          kind: "log", level: "warn", message: "fallback",
          fields: { client: c.peer, udp: s.udpPort, session: sessionHex(s), reason: fallbackReasonText(msg.reason), detail: "multicast does not reach this viewer; sending to it alone" },
        });
        return;
      case "bye": {
        const bad = msg.totals && this.#implausible(s, msg.totals);
        if (bad) this.#rejectReport(c, s, "bye totals", bad, out);
        this.#end(c, "goodbye", now, out, bad ? undefined : msg.totals);
        return;
      }
      default:
        out.push({ kind: "log", level: "warn", message: "unexpected control message", fields: { client: c.peer, type: msg.type } });
        out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.ProtocolError } });
        this.#end(c, "protocol error", now, out);
    }
  }

  /** Counted and ignored; logged once per session, so a viewer sending nonsense cannot fill the log. */
  #rejectReport(c: Conn, s: Session, what: string, why: string, out: AdmissionAction[]): void {
    this.reportsRejected++;
    if (s.reportsRejected++ === 0) {
      out.push({ kind: "log", level: "warn", message: "report rejected", fields: { client: c.peer, udp: s.udpPort, session: sessionHex(s), what, why } });
    }
  }

  /**
   * Why a viewer's counts cannot be true for this session, or null when they can: it
   * cannot have received more frames than were sent to it, nor accounted (received,
   * lost, incomplete) for more frame numbers than the ones sent span.
   */
  #implausible(s: Session, counts: { framesReceived: number; framesLost: number; framesIncomplete: number; fpsMillihertz?: number }): string | null {
    const sent = this.#sent(s.id);
    const span = sent.firstFrame === null || sent.lastFrame === null ? 0 : seqDiff(sent.lastFrame, sent.firstFrame) + 1;
    const numbers = Math.max(sent.framesSent, span);
    if (counts.framesReceived > sent.framesSent + REPORT_MARGIN) return `framesReceived=${counts.framesReceived} of ${sent.framesSent} frames sent`;
    const accounted = counts.framesReceived + counts.framesLost + counts.framesIncomplete;
    if (accounted > numbers + REPORT_MARGIN) return `received, lost and incomplete frames add up to ${accounted}, ${numbers} were sent`;
    if (counts.fpsMillihertz !== undefined && counts.fpsMillihertz > MAX_FPS_MILLIHERTZ) return `fpsMillihertz=${counts.fpsMillihertz}`;
    return null;
  }

  /** A refusal for a reason of authentication, logged as a security event `client refused reason=auth` (final for the viewer). */
  #refuseAuth(c: Conn, r: AuthRefusal, out: AdmissionAction[]): void {
    this.#refuse(c, { reason: RefuseReason.AuthRequired, text: r.text, level: "security", fields: { reason: "auth", client: c.peer, detail: r.detail, ...r.fields } }, out);
    if (r.lockout) out.push({ kind: "log", level: "security", message: "auth lockout", fields: r.lockout });
  }

  #hello(c: ConnIn<"pending">, hello: Hello, now: number, out: AdmissionAction[]): void {
    if (!this.#tokens) return this.#admit(c, hello, null, now, out);
    const verdict = this.#tokens.hello(c.address, hello, now);
    if (verdict.kind === "refuse") return this.#refuseAuth(c, verdict, out);
    this.#conns.set(c.id, { ...baseOf(c), kind: "challenged", hello, challenge: verdict.challenge, deadline: now + this.#helloTimeoutMs });
    out.push({ kind: "send", conn: c.id, msg: verdict.challenge });
  }

  /** The answer to the challenge: welcomed with its session keys, or refused. */
  #response(c: ConnIn<"challenged">, msg: Response, now: number, out: AdmissionAction[]): void {
    const verdict = this.#tokens!.response(c.address, c.hello, c.challenge, msg, now);
    if (verdict.kind === "refuse") return this.#refuseAuth(c, verdict, out);
    this.#admit(c, c.hello, verdict.keys, now, out);
  }

  /** A viewer that said hello (and proved the token, when `keys`): welcomed unless something stands in the way. */
  #admit(c: ConnIn<"pending" | "challenged">, hello: Hello, keys: SessionKeys | null, now: number, out: AdmissionAction[]): void {
    const udp = hello.udpPort;
    const old = this.#sessions.at(c.address, udp);
    // Only one socket can hold that port, so only that session's own viewer, reconnecting
    // before the server noticed it had gone, can have a reason to ask for it again.
    if (old && (!hello.resume || !timingSafeEqual(hello.resume, old.resume))) {
      const text = `UDP port ${udp} of ${c.address} is already receiving this stream; it is freed when that viewer leaves or is silent for ${this.#opts.timeoutMs / 1000} s`;
      return this.#refuse(c, { reason: RefuseReason.Other, text, level: "warn", fields: { client: c.peer, udp, reason: "udp port in use" } }, out);
    }
    const noPlace = this.#capacity.check(c.address, old ? sessionKey(old) : null);
    if (noPlace) {
      const reason = noPlace.reason === "full" ? RefuseReason.ServerFull : RefuseReason.Other;
      return this.#refuse(c, { reason, text: noPlace.text, level: "warn", fields: { client: c.peer, udp, reason: noPlaceReason(noPlace), max: noPlace.max } }, out);
    }
    if (old) this.#byeAndEnd(old, ByeReason.Other, "replaced by a new session", now, out);
    const peer = { address: c.address, tcpPort: c.tcpPort, udpPort: udp, name: hello.name, resume: this.#randomSecret() };
    const admission = this.#sessions.admit(peer, now);
    if (!admission.ok) throw new Error(`session table refused an admitted viewer: ${admission.reason}`);
    const s = admission.session;
    const streaming: ConnIn<"streaming"> = { ...baseOf(c), kind: "streaming", session: s, nextHeartbeatAt: now + this.#opts.heartbeatMs };
    this.#conns.set(c.id, streaming);
    this.#bySession.set(s.id, streaming);
    this.#capacity.add(sessionKey(s), s.address);
    const { heartbeatMs, timeoutMs } = this.#opts;
    if (keys) out.push({ kind: "secure", conn: c.id, keys });
    const welcome: Welcome = { type: "welcome", sessionId: s.id, ...this.#opts.stream, heartbeatMs, timeoutMs, flags: keys ? WELCOME_ENCRYPTED : 0 };
    const group = this.#opts.multicast;
    // Only a viewer that can join a group and ask for unicast when it gets nothing is sent there.
    if (group && hello.capabilities & CAP_MULTICAST) {
      welcome.flags |= WELCOME_MULTICAST;
      welcome.multicast = group;
      s.delivery = "multicast";
    }
    if (hello.capabilities & CAP_RESUME) welcome.resume = s.resume;
    out.push({ kind: "send", conn: c.id, msg: welcome });
    const { id, address, tcpPort, udpPort, name, delivery } = s;
    out.push({ kind: "start", conn: c.id, session: { id, address, tcpPort, udpPort, name, delivery } });
    out.push({
      kind: "log", level: "info", message: "client joined",
      fields: {
        client: c.peer, udp, session: sessionHex(s), name: hello.name || undefined, auth: keys ? "token" : undefined,
        delivery: group ? s.delivery : undefined, clients: this.viewerCount,
      },
    });
  }

  /** The one place a connection is refused: logged, told why (when it understands a refuse), closed and forgotten. */
  #refuse(c: Conn, r: Refusal, out: AdmissionAction[]): void {
    this.#conns.delete(c.id);
    out.push({ kind: "log", level: r.level, message: r.message ?? "client refused", fields: r.fields });
    if (r.reason !== null) out.push({ kind: "send", conn: c.id, msg: { type: "refuse", reason: r.reason, text: refuseText(r.text) } });
    out.push({ kind: "close", conn: c.id, reason: r.text });
  }

  /**
   * Forgets a connection and ends its session, logging the leave. The viewer's own
   * final totals, when its bye carries them, are exact; otherwise its last report
   * (up to a second old) is the best there is.
   */
  #end(c: Conn, reason: LeaveReason | "no hello within timeout" | "no response within timeout", now: number, out: AdmissionAction[], totals?: ByeTotals): void {
    if (!this.#conns.delete(c.id)) return;
    if (c.kind === "streaming") {
      const s = c.session;
      this.#bySession.delete(s.id);
      this.#sessions.remove(s.id);
      this.#capacity.remove(sessionKey(s));
      out.push({ kind: "stop", conn: c.id });
      const counts = totals ?? s.lastReport;
      out.push({
        kind: "log", level: "info", message: "client left",
        fields: {
          client: c.peer, udp: s.udpPort, session: sessionHex(s), reason, seconds: ((now - s.joinedAt) / 1000).toFixed(1),
          framesSent: this.#sent(s.id).framesSent, framesReceived: counts?.framesReceived,
          framesLost: counts ? counts.framesLost + counts.framesIncomplete : undefined, framesRecorded: totals?.framesRecorded,
          delivery: this.#opts.multicast ? s.delivery : undefined, clients: this.viewerCount,
        },
      });
    }
    out.push({ kind: "close", conn: c.id, reason });
  }
}

/** The refusal of a first message that is not the one expected (refuse 3). */
function badHello(c: Conn, text: string): Refusal {
  return { reason: RefuseReason.BadHello, text, level: "warn", fields: { client: c.peer, reason: text } };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
