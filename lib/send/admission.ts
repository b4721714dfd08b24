import type { Fields } from "../app/log.ts";
import {
  ByeReason,
  encodeControl,
  MAX_REFUSE_TEXT_BYTES,
  RefuseReason,
  type ByeTotals,
  type ControlMessage,
  type Hello,
  type Welcome,
} from "../wire/control.ts";
import { classifyFirstBytes } from "../wire/classic.ts";
import { DecodeError } from "../wire/decode-error.ts";
import type { Frame } from "../wire/frame.ts";
import { ClassicViewers, type ClassicAction, type ClassicCounters } from "./classic-viewers.ts";
import { SessionTable, type LeaveReason, type Session } from "./sessions.ts";

/*
 * One connection's life on the server:
 *
 *   connected --(over a pending limit, or shutting down: refuse 255)--------> ended
 *       |
 *       v
 *   first bytes --(neither lancam nor classroom; nothing decided within
 *       |   |      timeoutMs; connection closed; shutdown)------------------> ended
 *       |   |
 *       |   | an ASCII port number: a classroom viewer (ClassicViewers), out of
 *       |   | hello and heartbeat handling, until "end", its silence on UDP, a
 *       |   | close or shutdown; refused (closed) when the server is full -----> ended
 *       |
 *       | a lancam message's first byte: every byte so far goes to the decoder
 *       v
 *    pending --(malformed hello: refuse 1 or 3; first message not a hello:
 *       |       refuse 3; server full: refuse 2; no hello within timeoutMs;
 *       |       connection closed; shutdown)--------------------------------> ended
 *       |
 *       | hello admitted: welcome, start streaming
 *       v
 *   streaming --(bye; silent for timeoutMs: bye 3; malformed or unexpected
 *                message: bye 4; replaced by a new session for the same address
 *                and UDP port: bye 255; shutdown: bye 2; connection closed)
 *                stop streaming, log the leave ------------------------------> ended
 *
 * Only connections in one of these states are held; an ended one is forgotten at
 * once, so input that still arrives for it is ignored. Classroom viewers, lancam
 * sessions and viewers served elsewhere (admitOther) share the maxClients places.
 */

/** The socket wrapper's name for one TCP connection. */
export type ConnId = number;

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
  /** Start sending frames to session.address:session.udpPort stamped with session.id. */
  | { kind: "start"; conn: ConnId; session: Session }
  | { kind: "stop"; conn: ConnId }
  /** Close once what was sent has been written; the connection is already forgotten. */
  | { kind: "close"; conn: ConnId; reason: string }
  | { kind: "log"; level: "info" | "warn" | "error"; message: string; fields: Fields };

/** What every welcome says about the stream, besides the session and the timers. */
export type StreamDescription = Pick<Welcome, "width" | "height" | "fpsMillihertz" | "fragmentSize" | "udpSourcePort">;

/** How admission is set up; times in ms of the same clock as the `now` arguments. */
export interface AdmissionOptions {
  maxClients: number;
  /** Connections that have not said hello yet, from all addresses together. */
  maxPending: number;
  heartbeatMs: number;
  /** Silence after which a session ends; also how long a connection may wait before its hello. */
  timeoutMs: number;
  stream: StreamDescription;
  /** The wall clock (µs since the Unix epoch) at `now`, for heartbeats. */
  wallClockUs: (now: number) => number;
  /** Session id source; random by default. */
  randomId?: () => number;
  /** Classroom viewers' resend and timeout (ClassicViewers' defaults: 500 and 5000 ms). */
  classic?: { resendMs?: number; timeoutMs?: number };
}

/** A viewer of any kind, for status pages and the server's own view of who watches. */
export interface ViewerSummary {
  /**
   * Unique among viewers of its kind: a lancam viewer's session id (the log's
   * `session=`, in hex), a classroom viewer's connection number, admitOther's id.
   */
  id: number;
  /** "udp" (lancam), "classic" (the classroom program), or the kind given to admitOther. */
  kind: string;
  address: string;
  /** Where its frames go (udp, classic); null for viewers served elsewhere. */
  udpPort: number | null;
  /** The name its hello gave ("" for none, and always for classic viewers). */
  name: string;
  /** Wall-clock ms since the Unix epoch. */
  joinedAt: number;
  /** Frames handed to it (classic: pictures sent, resends included). */
  framesSent: number;
  /** Its own count: a lancam viewer's last report, a classroom viewer's answers; null while unknown. */
  framesReceived: number | null;
  /** Frames it never completed (lost plus incomplete), from its last report; null while unknown. */
  framesLost: number | null;
  latencyP50Ms: number | null;
  /** Frames it received over its last second; null while unknown. */
  fps: number | null;
}

/** What a viewer served elsewhere reports about itself (see Admission.updateOther). */
export type OtherCounters = Pick<ViewerSummary, "framesSent" | "framesReceived" | "framesLost" | "latencyP50Ms" | "fps">;

/** admitOther's answer: the actions (log lines) and, when there is no place, why. */
export interface OtherAdmission {
  refused: string | null;
  actions: AdmissionAction[];
}

/**
 * Connections without hello yet from one address; more are refused at once. A real
 * viewer says hello within a millisecond of connecting, but a lab machine may start
 * many viewers at the same moment, so this is not tiny; it keeps one host from taking
 * every pending place (maxPending) and locking the others out.
 */
export const MAX_PENDING_PER_ADDRESS = 16;

interface Conn {
  readonly id: ConnId;
  /** address:port, as logged. */
  readonly peer: string;
  readonly address: string;
  readonly tcpPort: number;
  readonly openedAt: number;
  /** What its first bytes said it is; null until they decide. */
  speaks: "lancam" | "classic" | null;
  /**
   * Its first bytes while they decide nothing. classifyFirstBytes is undecided only
   * for nothing or a port number with a CR, so this holds at most 6 bytes.
   */
  head: Uint8Array;
  session: Session | null;
  nextHeartbeatAt: number;
}

/** A viewer served by another part of the server (the browser view), counted here. */
interface OtherViewer {
  readonly id: number;
  readonly kind: string;
  readonly address: string;
  readonly name: string;
  readonly joinedAt: number;
  counters: OtherCounters;
}

/** Kinds admitOther may not take: they name this machine's own viewers. */
const OWN_KINDS = new Set(["udp", "classic"]);
const EMPTY = new Uint8Array(0);

/** Waiting for a hello or for first bytes that decide (a classroom viewer is neither). */
const isPending = (c: Conn) => c.speaks !== "classic" && !c.session;

const utf8 = new TextEncoder();

/** `text` cut to what a refuse can carry, so a long decode error message cannot make the encoder throw. */
function refuseText(text: string): string {
  if (utf8.encode(text).length <= MAX_REFUSE_TEXT_BYTES) return text;
  let cut = text.slice(0, MAX_REFUSE_TEXT_BYTES - 3);
  while (utf8.encode(cut).length > MAX_REFUSE_TEXT_BYTES - 3) cut = cut.slice(0, -1);
  return cut + "...";
}

const sessionHex = (s: Session) => s.id.toString(16).padStart(8, "0");

/**
 * The server's control protocol without sockets or timers: pending-connection
 * limits, what a connection's first bytes make it (lancam or classroom viewer),
 * hello to welcome or refuse, replacement of a stale session, the hello deadline,
 * heartbeats, the silence timeout, reports and bye; classroom viewers through
 * ClassicViewers; one count of viewers of every kind against maxClients. Each input
 * returns the actions that carry it out; the caller passes the time and does the I/O.
 */
export class Admission {
  readonly #opts: AdmissionOptions;
  readonly #sessions: SessionTable;
  readonly #classic: ClassicViewers;
  readonly #conns = new Map<ConnId, Conn>();
  readonly #bySession = new Map<number, Conn>();
  readonly #others = new Map<number, OtherViewer>();
  #shuttingDown = false;
  /** Bytes a classroom viewer sent after its port number, which it never should (ignored). */
  classicExtraBytes = 0;

  constructor(opts: AdmissionOptions) {
    // A welcome the codec cannot carry (timers out of range, a zero port) would fail at
    // every hello; encoding one now turns that into one clear error at start.
    encodeControl({ type: "welcome", sessionId: 0, ...opts.stream, heartbeatMs: opts.heartbeatMs, timeoutMs: opts.timeoutMs, flags: 0 });
    this.#opts = opts;
    this.#sessions = new SessionTable({ maxClients: opts.maxClients, timeoutMs: opts.timeoutMs, randomId: opts.randomId });
    this.#classic = new ClassicViewers({ ...opts.classic, maxViewers: opts.maxClients });
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
    return this.#sessions.size + this.#classic.size + this.#others.size;
  }

  /** Connections waiting for their hello, or for first bytes that say what they are. */
  get pendingCount(): number {
    let n = 0;
    for (const c of this.#conns.values()) if (isPending(c)) n++;
    return n;
  }

  /** Classroom answers and frames that were not used, by reason. */
  get classicCounters(): Readonly<ClassicCounters> {
    return this.#classic.counters;
  }

  /** A TCP connection opened; refused at once when its address or the server has too many waiting. */
  connected(id: ConnId, from: { address: string; port: number }, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const peer = `${from.address}:${from.port || "?"}`;
    let pending = 0;
    let pendingHere = 0;
    for (const c of this.#conns.values()) {
      if (!isPending(c)) continue;
      pending++;
      if (c.address === from.address) pendingHere++;
    }
    const refusal = this.#shuttingDown
      ? "shutting down"
      : pendingHere >= MAX_PENDING_PER_ADDRESS
        ? "too many connections without hello from this address"
        : pending >= this.#opts.maxPending
          ? "too many connections without hello"
          : null;
    if (refusal) {
      out.push({ kind: "log", level: "warn", message: "connection refused", fields: { client: peer, reason: refusal } });
      out.push({ kind: "send", conn: id, msg: { type: "refuse", reason: RefuseReason.Other, text: refusal } });
      out.push({ kind: "close", conn: id, reason: refusal });
      return out;
    }
    this.#conns.set(id, { id, peer, address: from.address, tcpPort: from.port, openedAt: now, speaks: null, head: EMPTY, session: null, nextHeartbeatAt: Infinity });
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
    if (c.speaks === "lancam") {
      out.push({ kind: "control", conn: id, bytes });
      return out;
    }
    if (c.speaks === "classic") {
      // The classroom viewer never sends more; anyone who does is not heard.
      this.classicExtraBytes += bytes.length;
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
        c.speaks = "lancam";
        c.head = EMPTY;
        out.push({ kind: "control", conn: id, bytes: head });
        return out;
      case "invalid":
        // Not a lancam client, so a refuse would mean nothing to it.
        out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, reason: "bad first bytes", detail: first.reason } });
        this.#end(c, "bad first bytes", now, out);
        return out;
      case "classic":
        this.#classicJoin(c, first.port, now, out);
        return out;
    }
  }

  /** One decoded control message from a connection (which therefore speaks lancam). */
  received(id: ConnId, msg: ControlMessage, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#lancam(id);
    if (!c) return out;
    try {
      this.#receive(c, msg, now, out);
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
    if (!c.session && error instanceof DecodeError) {
      const mismatch = error.code === "bad-version";
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, reason: mismatch ? "version mismatch" : "bad hello", detail: why } });
      this.#refuse(c, mismatch ? RefuseReason.VersionMismatch : RefuseReason.BadHello, `${mismatch ? "protocol version mismatch" : "bad hello"}: ${why}`, out);
      return out;
    }
    out.push({ kind: "log", level: "warn", message: "malformed control message", fields: { client: c.peer, error: why } });
    if (c.session) out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.ProtocolError } });
    this.#end(c, "protocol error", now, out);
    return out;
  }

  /** The peer closed the connection (or it failed). */
  closed(id: ConnId, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#conns.get(id);
    if (c?.speaks === "classic") this.#classicActions(this.#classic.push({ type: "closed", id }, now), now, out);
    else if (c) this.#end(c, "connection closed", now, out);
    return out;
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
   * place; it shares maxClients with lancam and classroom viewers. `id` must be unique
   * among connection ids and other viewers' ids. The join or the refusal is logged.
   */
  admitOther(id: number, kind: string, address: string, name: string, now: number): OtherAdmission {
    if (OWN_KINDS.has(kind) || !/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw new RangeError(`viewer kind must be lower-case letters, digits and -, not udp or classic, got ${JSON.stringify(kind)}`);
    if (this.#conns.has(id) || this.#others.has(id)) throw new Error(`viewer id ${id} is in use`);
    const actions: AdmissionAction[] = [];
    const max = this.#opts.maxClients;
    const refused = this.#shuttingDown ? "shutting down" : this.viewerCount >= max ? `server full: ${max} viewers already connected` : null;
    if (refused) {
      actions.push({ kind: "log", level: "warn", message: "client refused", fields: { client: address, kind, name: name || undefined, reason: this.#shuttingDown ? "shutting down" : "server full", max } });
      return { refused, actions };
    }
    const counters: OtherCounters = { framesSent: 0, framesReceived: null, framesLost: null, latencyP50Ms: null, fps: null };
    this.#others.set(id, { id, kind, address, name, joinedAt: now, counters });
    actions.push({ kind: "log", level: "info", message: "client joined", fields: { client: address, kind, name: name || undefined, clients: this.viewerCount } });
    return { refused: null, actions };
  }

  /** What a viewer served elsewhere has received so far; false when `id` is not one. */
  updateOther(id: number, counters: Partial<OtherCounters>): boolean {
    const v = this.#others.get(id);
    if (!v) return false;
    v.counters = { ...v.counters, ...counters };
    return true;
  }

  /** A viewer served elsewhere ended; its leave is logged with `reason`. Unknown ids are ignored. */
  leaveOther(id: number, reason: string, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const v = this.#others.get(id);
    if (!v) return out;
    this.#others.delete(id);
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
    for (const c of this.#bySession.values()) {
      const s = c.session!;
      const r = s.lastReport;
      out.push({
        id: s.id, kind: "udp", address: s.address, udpPort: s.udpPort, name: s.name, joinedAt: wallMs(s.joinedAt), framesSent: s.framesSent,
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
   * silent for longer than timeoutMs, and sends each remaining session the
   * heartbeats that are due (one every heartbeatMs from its welcome).
   */
  tick(now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    for (const c of this.#conns.values()) {
      if (!isPending(c) || now - c.openedAt <= this.#opts.timeoutMs) continue;
      out.push({ kind: "log", level: "warn", message: "connection closed", fields: { client: c.peer, reason: "no hello within timeout" } });
      this.#end(c, "no hello within timeout", now, out);
    }
    for (const s of this.#sessions.expired(now)) {
      const c = this.#bySession.get(s.id);
      if (!c) continue;
      out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Timeout } });
      this.#end(c, "timeout", now, out);
    }
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
      if (c.speaks === "classic") continue;
      if (c.session) out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Shutdown } });
      this.#end(c, "server shutdown", now, out);
    }
    this.#classicActions(this.#classic.push({ type: "shutdown" }, now), now, out);
    return out;
  }

  /**
   * A connection announced a classroom viewer's UDP port. It takes a place like any
   * viewer, unless it replaces the one already at that address and port (a restarted
   * viewer), which frees its own.
   */
  #classicJoin(c: Conn, port: number, now: number, out: AdmissionAction[]): void {
    const max = this.#opts.maxClients;
    const replacing = this.#classic.holds(c.address, port) ? 1 : 0;
    if (this.viewerCount - replacing >= max) {
      // A classroom viewer understands no refusal: closing is all it can be told.
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, kind: "classic", udp: port, reason: "server full", max } });
      this.#end(c, "server full", now, out);
      return;
    }
    c.speaks = "classic";
    c.head = EMPTY;
    this.#classicActions(this.#classic.push({ type: "join", id: c.id, address: c.address, port }, now), now, out);
  }

  /** ClassicViewers' actions as this machine's: datagrams, join and leave lines, closes. */
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
          this.#conns.delete(a.id);
          out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c?.peer, kind: "classic", udp: a.port, reason: "server full", max: this.#opts.maxClients } });
          out.push({ kind: "close", conn: a.id, reason: "server full" });
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
              framesSent: v.framesSent, framesReceived: v.answers, resends: v.resends, clients: this.viewerCount,
            },
          });
          out.push({ kind: "close", conn: v.id, reason: a.reason });
          break;
        }
      }
    }
  }

  /** The connection, now known to speak lancam; undefined when gone or a classroom viewer's. */
  #lancam(id: ConnId): Conn | undefined {
    const c = this.#conns.get(id);
    if (!c || c.speaks === "classic") return undefined;
    c.speaks = "lancam";
    c.head = EMPTY;
    return c;
  }

  #receive(c: Conn, msg: ControlMessage, now: number, out: AdmissionAction[]): void {
    const s = c.session;
    if (!s) {
      if (msg.type === "hello") return this.#hello(c, msg, now, out);
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, reason: `expected hello, got ${msg.type}` } });
      this.#refuse(c, RefuseReason.BadHello, `expected hello, got ${msg.type}`, out);
      return;
    }
    this.#sessions.heard(s.id, now);
    switch (msg.type) {
      case "heartbeat":
        return;
      case "report":
        s.lastReport = { framesReceived: msg.framesReceived, framesLost: msg.framesLost, framesIncomplete: msg.framesIncomplete, latencyP50Us: msg.latencyP50Us, fpsMillihertz: msg.fpsMillihertz };
        return;
      case "bye":
        this.#end(c, "goodbye", now, out, msg.totals);
        return;
      default:
        out.push({ kind: "log", level: "warn", message: "unexpected control message", fields: { client: c.peer, type: msg.type } });
        out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.ProtocolError } });
        this.#end(c, "protocol error", now, out);
    }
  }

  #hello(c: Conn, hello: Hello, now: number, out: AdmissionAction[]): void {
    const udp = hello.udpPort;
    const peer = { address: c.address, tcpPort: c.tcpPort, udpPort: udp, name: hello.name };
    const others = this.#classic.size + this.#others.size;
    let admission = this.#sessions.admit(peer, now, others);
    if (!admission.ok && admission.reason === "duplicate") {
      // Only one socket can hold that address and port, so a new hello for it means the
      // old session's viewer is gone (it reconnected before the server noticed): replace it.
      for (const old of this.#bySession.values()) {
        if (old.session!.address !== c.address || old.session!.udpPort !== udp) continue;
        out.push({ kind: "send", conn: old.id, msg: { type: "bye", reason: ByeReason.Other } });
        this.#end(old, "replaced by a new session", now, out);
        break;
      }
      admission = this.#sessions.admit(peer, now, others);
    }
    if (!admission.ok) {
      const max = this.#opts.maxClients;
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, udp, reason: "server full", max } });
      this.#refuse(c, RefuseReason.ServerFull, `server full: ${max} viewers already connected`, out);
      return;
    }
    const s = admission.session;
    c.session = s;
    c.nextHeartbeatAt = now + this.#opts.heartbeatMs;
    this.#bySession.set(s.id, c);
    const { heartbeatMs, timeoutMs } = this.#opts;
    out.push({ kind: "send", conn: c.id, msg: { type: "welcome", sessionId: s.id, ...this.#opts.stream, heartbeatMs, timeoutMs, flags: 0 } });
    out.push({ kind: "start", conn: c.id, session: s });
    out.push({ kind: "log", level: "info", message: "client joined", fields: { client: c.peer, udp, session: sessionHex(s), name: hello.name || undefined, clients: this.viewerCount } });
  }

  #refuse(c: Conn, reason: RefuseReason, text: string, out: AdmissionAction[]): void {
    this.#conns.delete(c.id);
    out.push({ kind: "send", conn: c.id, msg: { type: "refuse", reason, text: refuseText(text) } });
    out.push({ kind: "close", conn: c.id, reason: text });
  }

  /**
   * Forgets a connection and ends its session, logging the leave. The viewer's own
   * final totals, when its bye carries them, are exact; otherwise its last report
   * (up to a second old) is the best there is.
   */
  #end(c: Conn, reason: LeaveReason | "no hello within timeout" | "bad first bytes" | "server full", now: number, out: AdmissionAction[], totals?: ByeTotals): void {
    if (!this.#conns.delete(c.id)) return;
    const s = c.session;
    if (s) {
      this.#bySession.delete(s.id);
      this.#sessions.remove(s.id);
      out.push({ kind: "stop", conn: c.id });
      const counts = totals ?? s.lastReport;
      out.push({
        kind: "log",
        level: "info",
        message: "client left",
        fields: {
          client: c.peer,
          udp: s.udpPort,
          session: sessionHex(s),
          reason,
          seconds: ((now - s.joinedAt) / 1000).toFixed(1),
          framesSent: s.framesSent,
          framesReceived: counts?.framesReceived,
          framesLost: counts ? counts.framesLost + counts.framesIncomplete : undefined,
          framesRecorded: totals?.framesRecorded,
          clients: this.viewerCount,
        },
      });
    }
    out.push({ kind: "close", conn: c.id, reason });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
