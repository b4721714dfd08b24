import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Fields } from "../log/format.ts";
import { deriveSessionKeys, proofMatches, randomNonce, type SessionKeys, type TokenKey } from "../net/session-keys.ts";
import {
  ByeReason,
  CAP_DECRYPT,
  CAP_MULTICAST,
  CAP_RESUME,
  CAP_TOKEN_AUTH,
  encodeControl,
  fallbackReasonText,
  MAX_FPS_MILLIHERTZ,
  MAX_REFUSE_TEXT_BYTES,
  RefuseReason,
  RESUME_SECRET_SIZE,
  WELCOME_ENCRYPTED,
  WELCOME_MULTICAST,
  type ByeTotals,
  type Challenge,
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
import { AuthLockout, type LockoutOptions } from "./auth-lockout.ts";
import { ClassicViewers, type ClassicAction, type ClassicCounters } from "./classic-viewers.ts";
import { SessionTable, type LeaveReason, type Session } from "./sessions.ts";

/*
 * One connection's life on the server:
 *
 *   connected --(shutting down: refuse 255)----------------------------------> ended
 *       |      (over a pending limit: the oldest pending connection is evicted instead)
 *       v
 *   first bytes --(neither lancam nor classroom; nothing decided within
 *       |   |      helloTimeoutMs; connection closed; shutdown)-------------> ended
 *       |   |
 *       |   | an ASCII port number: a classroom viewer (ClassicViewers), out of
 *       |   | hello and heartbeat handling, until "end", its silence on UDP, a
 *       |   | close or shutdown; refused (closed) when the server is full or
 *       |   | has a token (a classroom viewer cannot prove one) ----------------> ended
 *       |
 *       | a lancam message's first byte: every byte so far goes to the decoder
 *       v
 *    pending --(malformed hello: refuse 1 or 3; first message not a hello:
 *       |       refuse 3; with a token: no token capability, or the address is
 *       |       locked out: refuse 4; no hello within helloTimeoutMs;
 *       |       connection closed; shutdown)--------------------------------> ended
 *       |
 *       | with a token: challenge (server nonce)
 *       v
 *   challenged --(anything but a response, or none within helloTimeoutMs;
 *       |          a wrong proof: refuse 4, counted toward the address's lockout)-> ended
 *       |
 *       | admitted (right proof, or no token): unless its address and UDP port
 *       | are taken (its own viewer's resume secret replaces that session),
 *       | maxPerHost or maxClients is reached (refuse 255 or 2):
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
  /**
   * From now on tag what is sent to this connection and check what comes from it
   * (`keys`: its session keys; `keys.wrap` wraps the stream keys sent to it).
   */
  | { kind: "secure"; conn: ConnId; keys: SessionKeys }
  /**
   * Start sending frames to the session (when secured, its stream key first): by the
   * multicast group when session.delivery says so, else to session.address:session.udpPort
   * stamped with session.id.
   */
  | { kind: "start"; conn: ConnId; session: Session }
  /** The group does not reach this session's viewer: send to its own address and UDP port from now on. */
  | { kind: "unicast"; conn: ConnId }
  | { kind: "stop"; conn: ConnId }
  /** Close once what was sent has been written; the connection is already forgotten. */
  | { kind: "close"; conn: ConnId; reason: string }
  | { kind: "log"; level: "info" | "warn" | "error" | "security"; message: string; fields: Fields };

/** What every welcome says about the stream, besides the session and the timers. */
export type StreamDescription = Pick<Welcome, "width" | "height" | "fpsMillihertz" | "fragmentSize" | "udpSourcePort" | "signing">;

/** How admission is set up; times in ms of the same clock as the `now` arguments. */
export interface AdmissionOptions {
  maxClients: number;
  /** Connections that have not said hello yet, from all addresses together. */
  maxPending: number;
  heartbeatMs: number;
  /** Silence after which a session ends. */
  timeoutMs: number;
  /** How long a connection may take to say hello, and (with a token) to answer the challenge (default 2000). */
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
}

/** How viewers prove the token. */
export interface AdmissionAuth {
  /** The server's token, stretched (lib/net/session-keys.ts). */
  token: TokenKey;
  /** Server nonces; random by default. */
  nonce?: () => Uint8Array;
  lockout?: LockoutOptions;
}

/** Viewers from one address by default: generous (a lab machine may run several), but not the whole server. */
export const DEFAULT_MAX_PER_HOST = 16;
/** The hello deadline by default: a real viewer says hello within a millisecond of connecting. */
export const DEFAULT_HELLO_TIMEOUT_MS = 2000;
/** ICMP errors further apart than this are not one streak (Linux rate-limits them). */
const UNREACHABLE_GAP_MS = 2000;
/** How far a viewer's counts may run ahead of what was sent to it (a report is up to a second old either way). */
const REPORT_MARGIN = 8;

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
 * Connections without hello yet from one address; one more evicts that address's
 * oldest. A real viewer says hello within a millisecond of connecting, but a lab
 * machine may start many viewers at the same moment, so this is not tiny; it keeps one
 * host from taking every pending place (maxPending) and locking the others out.
 */
export const MAX_PENDING_PER_ADDRESS = 16;

interface Conn {
  readonly id: ConnId;
  /** address:port, as logged. */
  readonly peer: string;
  readonly address: string;
  readonly tcpPort: number;
  readonly openedAt: number;
  /** Until when it may wait for its hello, or its response to the challenge. */
  deadline: number;
  /** With a token: the hello it is being challenged for, and the challenge; null otherwise. */
  hello: Hello | null;
  challenge: Challenge | null;
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
  readonly #lockout: AuthLockout;
  readonly #helloTimeoutMs: number;
  readonly #maxPerHost: number;
  readonly #unreachableMs: number;
  readonly #randomSecret: () => Uint8Array;
  readonly #nonce: () => Uint8Array;
  #shuttingDown = false;
  /** Bytes a classroom viewer sent after its port number, which it never should (ignored). */
  classicExtraBytes = 0;
  /** Wrong token proofs (each logged as refused reason=auth). */
  authFailures = 0;
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
    this.#lockout = new AuthLockout(opts.auth?.lockout);
    this.#helloTimeoutMs = opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.#maxPerHost = opts.maxPerHost ?? DEFAULT_MAX_PER_HOST;
    this.#unreachableMs = opts.unreachableMs ?? 5000;
    this.#randomSecret = opts.randomSecret ?? (() => new Uint8Array(randomBytes(RESUME_SECRET_SIZE)));
    this.#nonce = opts.auth?.nonce ?? randomNonce;
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

  /** Whether viewers must prove a token (and frames are encrypted). */
  get requiresToken(): boolean {
    return !!this.#opts.auth;
  }

  /**
   * A TCP connection opened. When its address or the server already has too many
   * waiting for their hello, the oldest of those is evicted to make room: a host that
   * opens connections and says nothing cannot keep newer viewers out.
   */
  connected(id: ConnId, from: { address: string; port: number }, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const peer = `${from.address}:${from.port || "?"}`;
    if (this.#shuttingDown) {
      out.push({ kind: "log", level: "warn", message: "connection refused", fields: { client: peer, reason: "shutting down" } });
      out.push({ kind: "send", conn: id, msg: { type: "refuse", reason: RefuseReason.Other, text: "shutting down" } });
      out.push({ kind: "close", conn: id, reason: "shutting down" });
      return out;
    }
    let pending = 0;
    let oldest: Conn | null = null;
    let pendingHere = 0;
    let oldestHere: Conn | null = null;
    for (const c of this.#conns.values()) {
      if (!isPending(c)) continue;
      pending++;
      // Map order is arrival order: the first seen is the oldest.
      oldest ??= c;
      if (c.address !== from.address) continue;
      pendingHere++;
      oldestHere ??= c;
    }
    const evict = pendingHere >= MAX_PENDING_PER_ADDRESS
      ? { c: oldestHere!, why: "too many connections without hello from this address" }
      : pending >= this.#opts.maxPending
        ? { c: oldest!, why: "too many connections without hello" }
        : null;
    if (evict) {
      this.pendingEvicted++;
      out.push({ kind: "log", level: "warn", message: "connection evicted", fields: { client: evict.c.peer, reason: evict.why } });
      this.#conns.delete(evict.c.id);
      out.push({ kind: "send", conn: evict.c.id, msg: { type: "refuse", reason: RefuseReason.Other, text: evict.why } });
      out.push({ kind: "close", conn: evict.c.id, reason: evict.why });
    }
    this.#conns.set(id, {
      id, peer, address: from.address, tcpPort: from.port, openedAt: now, deadline: now + this.#helloTimeoutMs, hello: null, challenge: null,
      speaks: null, head: EMPTY, session: null, nextHeartbeatAt: Infinity,
    });
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

  /** The connection's outgoing buffer reached its bound: its viewer is not reading. */
  stalled(id: ConnId, now: number): AdmissionAction[] {
    const out: AdmissionAction[] = [];
    const c = this.#conns.get(id);
    if (c?.speaks === "classic") this.#classicActions(this.#classic.push({ type: "closed", id }, now), now, out);
    else if (c) this.#end(c, "not reading", now, out);
    return out;
  }

  /**
   * The UDP socket reported ICMP errors (port unreachable) since the last call. The
   * error does not say for whom, so every session sent to meanwhile (`sessionIds`) is
   * suspect; tick ends one whose errors go on for unreachableMs while its own reports
   * show nothing arriving. A suspect that receives is never ended.
   */
  unreachable(sessionIds: Iterable<number>, now: number): void {
    for (const id of sessionIds) {
      const s = this.#bySession.get(id)?.session;
      if (!s) continue;
      if (s.unreachableSince === null || now - s.unreachableLastAt > UNREACHABLE_GAP_MS) {
        s.unreachableSince = now;
        s.receivedWhenUnreachable = s.lastReport?.framesReceived ?? 0;
      }
      s.unreachableLastAt = now;
    }
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
      if (!isPending(c) || now <= c.deadline) continue;
      const why = c.challenge ? "no response within timeout" : "no hello within timeout";
      out.push({ kind: "log", level: "warn", message: "connection closed", fields: { client: c.peer, reason: why } });
      this.#end(c, why, now, out);
    }
    for (const s of this.#sessions.expired(now)) {
      const c = this.#bySession.get(s.id);
      if (!c) continue;
      out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Timeout } });
      this.#end(c, "timeout", now, out);
    }
    for (const c of [...this.#bySession.values()]) {
      const s = c.session!;
      if (s.unreachableSince === null) continue;
      if (now - s.unreachableLastAt > UNREACHABLE_GAP_MS || (s.lastReport?.framesReceived ?? 0) > s.receivedWhenUnreachable) {
        s.unreachableSince = null;
        continue;
      }
      if (now - s.unreachableSince < this.#unreachableMs) continue;
      out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.Other } });
      this.#end(c, "udp port unreachable", now, out);
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
    if (this.#opts.auth) {
      // It could not prove the token, and its pictures would go out unencrypted.
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { reason: "auth", client: c.peer, kind: "classic", udp: port, detail: "a classroom viewer cannot prove the token" } });
      this.#end(c, "auth", now, out);
      return;
    }
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
      if (c.challenge) return this.#response(c, msg, now, out);
      if (msg.type === "hello") return this.#hello(c, msg, now, out);
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, reason: `expected hello, got ${msg.type}` } });
      this.#refuse(c, RefuseReason.BadHello, `expected hello, got ${msg.type}`, out);
      return;
    }
    this.#sessions.heard(s.id, now);
    switch (msg.type) {
      case "heartbeat":
        return;
      case "report": {
        const bad = implausible(s, msg);
        if (bad) {
          this.#rejectReport(c, s, "report", bad, out);
          return;
        }
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
        const bad = msg.totals && implausible(s, msg.totals);
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

  /** A refusal for a reason of authentication, logged `client refused reason=auth` (final for the viewer). */
  #refuseAuth(c: Conn, detail: string, text: string, out: AdmissionAction[], extra: Fields = {}): void {
    out.push({ kind: "log", level: "warn", message: "client refused", fields: { reason: "auth", client: c.peer, detail, ...extra } });
    this.#refuse(c, RefuseReason.AuthRequired, text, out);
  }

  #hello(c: Conn, hello: Hello, now: number, out: AdmissionAction[]): void {
    const auth = this.#opts.auth;
    if (!auth) return this.#admit(c, hello, null, now, out);
    const locked = this.#lockout.lockedFor(c.address, now);
    if (locked > 0) {
      const seconds = Math.ceil(locked / 1000);
      return this.#refuseAuth(c, "locked out", `wrong token too often from ${c.address}: try again in ${seconds} s`, out, { retryInSec: seconds });
    }
    if (!(hello.capabilities & CAP_TOKEN_AUTH)) {
      return this.#refuseAuth(c, "no token", "this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)", out);
    }
    if (!(hello.capabilities & CAP_DECRYPT)) {
      return this.#refuseAuth(c, "cannot decrypt", "this server encrypts its frames and this viewer cannot decrypt them", out);
    }
    c.hello = hello;
    c.challenge = { type: "challenge", serverNonce: this.#nonce() };
    c.deadline = now + this.#helloTimeoutMs;
    out.push({ kind: "send", conn: c.id, msg: c.challenge });
  }

  /**
   * The answer to the challenge. The proof covers both nonces and the hello and
   * challenge as sent, so one recorded from another connection (replay) is wrong here;
   * a client nonce equal to the server's own (a reflection) is refused outright.
   */
  #response(c: Conn, msg: ControlMessage, now: number, out: AdmissionAction[]): void {
    if (msg.type !== "response") {
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, reason: `expected response, got ${msg.type}` } });
      this.#refuse(c, RefuseReason.BadHello, `expected response, got ${msg.type}`, out);
      return;
    }
    const hello = c.hello!;
    const challenge = c.challenge!;
    const transcript = { hello, challenge, clientNonce: (msg as Response).clientNonce };
    const reflected = timingSafeEqual(transcript.clientNonce, challenge.serverNonce);
    const keys = deriveSessionKeys(this.#opts.auth!.token, transcript);
    if (reflected || !proofMatches(keys, transcript, msg.proof)) {
      this.authFailures++;
      const { failures, lockedMs } = this.#lockout.failed(c.address, now);
      this.#refuseAuth(c, reflected ? "reflected nonce" : "wrong token", "wrong token", out, { udp: hello.udpPort, failures });
      if (lockedMs > 0) out.push({ kind: "log", level: "warn", message: "auth lockout", fields: { address: c.address, seconds: lockedMs / 1000, failures } });
      return;
    }
    this.#lockout.succeeded(c.address);
    c.challenge = null;
    this.#admit(c, hello, keys, now, out);
  }

  /** Viewers of every kind at `address`. */
  #viewersAt(address: string): number {
    let n = 0;
    for (const c of this.#bySession.values()) if (c.address === address) n++;
    for (const v of this.#classic.viewers()) if (v.address === address) n++;
    for (const v of this.#others.values()) if (v.address === address) n++;
    return n;
  }

  /** A viewer that said hello (and proved the token, when `keys`): welcomed unless something stands in the way. */
  #admit(c: Conn, hello: Hello, keys: SessionKeys | null, now: number, out: AdmissionAction[]): void {
    const udp = hello.udpPort;
    let replacing: Conn | null = null;
    for (const old of this.#bySession.values()) if (old.address === c.address && old.session!.udpPort === udp) replacing = old;
    if (replacing) {
      const secret = replacing.session!.resume;
      // Only one socket can hold that port, so only that session's own viewer, reconnecting
      // before the server noticed it had gone, can have a reason to ask for it again.
      if (!hello.resume || !timingSafeEqual(hello.resume, secret)) {
        out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, udp, reason: "udp port in use" } });
        const text = `UDP port ${udp} of ${c.address} is already receiving this stream; it is freed when that viewer leaves or is silent for ${this.#opts.timeoutMs / 1000} s`;
        this.#refuse(c, RefuseReason.Other, text, out);
        return;
      }
    }
    if (!replacing && this.#viewersAt(c.address) >= this.#maxPerHost) {
      const max = this.#maxPerHost;
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, udp, reason: "too many viewers from this address", max } });
      this.#refuse(c, RefuseReason.Other, `too many viewers from ${c.address}: at most ${max} per address`, out);
      return;
    }
    if (!replacing && this.viewerCount >= this.#opts.maxClients) {
      const max = this.#opts.maxClients;
      out.push({ kind: "log", level: "warn", message: "client refused", fields: { client: c.peer, udp, reason: "server full", max } });
      this.#refuse(c, RefuseReason.ServerFull, `server full: ${max} viewers already connected`, out);
      return;
    }
    if (replacing) {
      out.push({ kind: "send", conn: replacing.id, msg: { type: "bye", reason: ByeReason.Other } });
      this.#end(replacing, "replaced by a new session", now, out);
    }
    const peer = { address: c.address, tcpPort: c.tcpPort, udpPort: udp, name: hello.name, resume: this.#randomSecret() };
    const admission = this.#sessions.admit(peer, now, this.#classic.size + this.#others.size);
    if (!admission.ok) throw new Error(`session table refused an admitted viewer: ${admission.reason}`);
    const s = admission.session;
    c.session = s;
    c.nextHeartbeatAt = now + this.#opts.heartbeatMs;
    this.#bySession.set(s.id, c);
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
    out.push({ kind: "start", conn: c.id, session: s });
    out.push({
      kind: "log", level: "info", message: "client joined",
      fields: {
        client: c.peer, udp, session: sessionHex(s), name: hello.name || undefined, auth: keys ? "token" : undefined,
        delivery: group ? s.delivery : undefined, clients: this.viewerCount,
      },
    });
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
  #end(c: Conn, reason: LeaveReason | "no hello within timeout" | "no response within timeout" | "bad first bytes" | "server full" | "auth", now: number, out: AdmissionAction[], totals?: ByeTotals): void {
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
          delivery: this.#opts.multicast ? s.delivery : undefined,
          clients: this.viewerCount,
        },
      });
    }
    out.push({ kind: "close", conn: c.id, reason });
  }
}

/**
 * Why a viewer's counts cannot be true for this session, or null when they can: it
 * cannot have received more frames than were sent to it, nor accounted (received,
 * lost, incomplete) for more frame numbers than the ones sent span.
 */
function implausible(s: Session, counts: { framesReceived: number; framesLost: number; framesIncomplete: number; fpsMillihertz?: number }): string | null {
  const span = s.firstFrame === null || s.lastFrame === null ? 0 : seqDiff(s.lastFrame, s.firstFrame) + 1;
  const numbers = Math.max(s.framesSent, span);
  if (counts.framesReceived > s.framesSent + REPORT_MARGIN) return `framesReceived=${counts.framesReceived} of ${s.framesSent} frames sent`;
  const accounted = counts.framesReceived + counts.framesLost + counts.framesIncomplete;
  if (accounted > numbers + REPORT_MARGIN) return `received, lost and incomplete frames add up to ${accounted}, ${numbers} were sent`;
  if (counts.fpsMillihertz !== undefined && counts.fpsMillihertz > MAX_FPS_MILLIHERTZ) return `fpsMillihertz=${counts.fpsMillihertz}`;
  return null;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
