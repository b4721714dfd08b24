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
import { DecodeError } from "../wire/decode-error.ts";
import { SessionTable, type LeaveReason, type Session } from "./sessions.ts";

/*
 * One connection's life on the server:
 *
 *   connected --(over a pending limit, or shutting down: refuse 255)--------> ended
 *       |
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
 * Only pending and streaming connections are held; an ended one is forgotten at
 * once, so input that still arrives for it is ignored.
 */

/** The socket wrapper's name for one TCP connection. */
export type ConnId = number;

/** What the socket wrapper must do, in order. */
export type AdmissionAction =
  | { kind: "send"; conn: ConnId; msg: ControlMessage }
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
  session: Session | null;
  nextHeartbeatAt: number;
}

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
 * limits, hello to welcome or refuse, replacement of a stale session, the hello
 * deadline, heartbeats, the silence timeout, reports and bye. Each input returns
 * the actions that carry it out; the caller passes the time and does the I/O.
 */
export class Admission {
  readonly #opts: AdmissionOptions;
  readonly #sessions: SessionTable;
  readonly #conns = new Map<ConnId, Conn>();
  readonly #bySession = new Map<number, Conn>();
  #shuttingDown = false;

  constructor(opts: AdmissionOptions) {
    // A welcome the codec cannot carry (timers out of range, a zero port) would fail at
    // every hello; encoding one now turns that into one clear error at start.
    encodeControl({ type: "welcome", sessionId: 0, ...opts.stream, heartbeatMs: opts.heartbeatMs, timeoutMs: opts.timeoutMs, flags: 0 });
    this.#opts = opts;
    this.#sessions = new SessionTable({ maxClients: opts.maxClients, timeoutMs: opts.timeoutMs, randomId: opts.randomId });
  }

  /** Viewers with a session. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Connections waiting for their hello. */
  get pendingCount(): number {
    return this.#conns.size - this.#bySession.size;
  }

  /** A TCP connection opened; refused at once when its address or the server has too many waiting. */
  connected(id: ConnId, from: { address: string; port: number }, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const peer = `${from.address}:${from.port || "?"}`;
    let pending = 0;
    let pendingHere = 0;
    for (const c of this.#conns.values()) {
      if (c.session) continue;
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
    this.#conns.set(id, { id, peer, address: from.address, tcpPort: from.port, openedAt: now, session: null, nextHeartbeatAt: Infinity });
    return out;
  }

  /** One decoded control message from a connection. */
  received(id: ConnId, msg: ControlMessage, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#conns.get(id);
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
    const c = this.#conns.get(id);
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
    if (c) this.#end(c, "connection closed", now, out);
    return out;
  }

  /**
   * Time passed: closes connections past their hello deadline, ends sessions
   * silent for longer than timeoutMs, and sends each remaining session the
   * heartbeats that are due (one every heartbeatMs from its welcome).
   */
  tick(now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    for (const c of this.#conns.values()) {
      if (c.session || now - c.openedAt <= this.#opts.timeoutMs) continue;
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
      if (c.session) out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Shutdown } });
      this.#end(c, "server shutdown", now, out);
    }
    return out;
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
        s.lastReport = { framesReceived: msg.framesReceived, framesLost: msg.framesLost, framesIncomplete: msg.framesIncomplete, latencyP50Us: msg.latencyP50Us };
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
    let admission = this.#sessions.admit(peer, now);
    if (!admission.ok && admission.reason === "duplicate") {
      // Only one socket can hold that address and port, so a new hello for it means the
      // old session's viewer is gone (it reconnected before the server noticed): replace it.
      for (const old of this.#bySession.values()) {
        if (old.session!.address !== c.address || old.session!.udpPort !== udp) continue;
        out.push({ kind: "send", conn: old.id, msg: { type: "bye", reason: ByeReason.Other } });
        this.#end(old, "replaced by a new session", now, out);
        break;
      }
      admission = this.#sessions.admit(peer, now);
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
    out.push({ kind: "log", level: "info", message: "client joined", fields: { client: c.peer, udp, session: sessionHex(s), name: hello.name || undefined, clients: this.#sessions.size } });
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
  #end(c: Conn, reason: LeaveReason | "no hello within timeout", now: number, out: AdmissionAction[], totals?: ByeTotals): void {
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
          clients: this.#sessions.size,
        },
      });
    }
    out.push({ kind: "close", conn: c.id, reason });
  }
}
