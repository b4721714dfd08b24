import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Fields } from "../log/format.ts";
import type { SessionKeys } from "../net/session-keys.ts";
import { ByeReason, encodeControl, RefuseReason, RESUME_SECRET_SIZE, WELCOME_MULTICAST, type ByeTotals, type ControlMessage, type Hello, type Response } from "../wire/control.ts";
import { classifyFirstBytes } from "../wire/classic.ts";
import { DecodeError } from "../wire/decode-error.ts";
import type { Frame } from "../wire/frame.ts";
import {
  DEFAULT_HELLO_TIMEOUT_MS, MAX_PENDING_PER_ADDRESS, refuseText, type AdmissionAction, type AdmissionCamera, type AdmissionOptions, type OtherAdmission, type Refusal,
} from "./admission-types.ts";
import { noSuchCamera, pickCamera } from "../wire/camera-name.ts";
import { Capacity, noPlaceReason } from "./capacity.ts";
import { classicAdmissionActions, classicRefusal, ClassicViewers, type ClassicAction, type ClassicCounters } from "./classic-viewers.ts";
import { baseOf, dueForChallenge, evictable, evictionFor, handshakesAt, type Conn, type ConnId, type ConnIn } from "./connection.ts";
import { checkOtherKind, OtherViewers, type OtherCounters } from "./other-viewers.ts";
import { sessionMessage, welcomeFor } from "./session-messages.ts";
import { NOTHING_SENT, sessionHex, SessionTable, type LeaveReason, type SendCounters, type Session } from "./sessions.ts";
import { TokenExchange, type AdmissionAuth, type AuthRefusal } from "./token-exchange.ts";
import { summarize, type ViewerSummary } from "./viewer-summary.ts";

export { DEFAULT_HELLO_TIMEOUT_MS, MAX_PENDING_PER_ADDRESS } from "./admission-types.ts";
export type { AdmissionAction, AdmissionOptions, OtherAdmission, StreamDescription } from "./admission-types.ts";
export { DEFAULT_MAX_PER_HOST } from "./capacity.ts";
export type { ConnId } from "./connection.ts";
export type { OtherCounters } from "./other-viewers.ts";
export type { AdmissionAuth } from "./token-exchange.ts";
export type { ViewerSummary } from "./viewer-summary.ts";

const EMPTY = new Uint8Array(0);
const sessionKey = (s: Session) => `udp:${s.id}`;

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
  /** The cameras hellos may ask for, by number (one, "0", unless options name several). */
  readonly #cameras: readonly AdmissionCamera[];
  readonly #capacity: Capacity;
  readonly #sessions: SessionTable;
  readonly #classic: ClassicViewers;
  readonly #others: OtherViewers;
  readonly #conns = new Map<ConnId, Conn>();
  readonly #bySession = new Map<number, ConnIn<"streaming">>();
  /** Connections waiting for their address's challenge to be done, in arrival order. */
  readonly #waiting = new Set<ConnId>();
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
    this.#cameras = opts.cameras ?? [{ name: "0", stream: opts.stream, multicast: opts.multicast ?? null }];
    if (this.#cameras.length === 0) throw new RangeError("admission needs at least one camera");
    for (const [index, cam] of this.#cameras.entries()) {
      const group = cam.multicast ?? undefined;
      encodeControl({
        type: "welcome", sessionId: 0, ...cam.stream, heartbeatMs: opts.heartbeatMs, timeoutMs: opts.timeoutMs, flags: group ? WELCOME_MULTICAST : 0, multicast: group,
        camera: { index, count: this.#cameras.length, name: cam.name }, layerGroups: group && cam.layerGroups?.length ? cam.layerGroups : undefined,
      });
    }
    this.#opts = opts;
    this.#tokens = opts.auth ? new TokenExchange(opts.auth) : null;
    this.#helloTimeoutMs = opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.#unreachableMs = opts.unreachableMs ?? 5000;
    this.#randomSecret = opts.randomSecret ?? (() => new Uint8Array(randomBytes(RESUME_SECRET_SIZE)));
    const sent = opts.sent;
    this.#sent = sent ? (id) => sent(id) ?? NOTHING_SENT : () => NOTHING_SENT;
    this.#capacity = new Capacity({ maxClients: opts.maxClients, maxPerHost: opts.maxPerHost });
    this.#others = new OtherViewers(this.#capacity);
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

  /** Viewers of every kind that watch camera `camera` (classroom viewers watch camera 0). */
  viewerCountOf(camera: number): number {
    let n = camera === 0 ? this.#classic.size : 0;
    for (const s of this.#sessions.values()) if (s.camera === camera) n++;
    for (const v of this.#others.values()) if (v.camera === camera) n++;
    return n;
  }

  /** Connections without a place yet: waiting for first bytes that decide, a hello, or the answer to a challenge. */
  get pendingCount(): number {
    let n = 0;
    for (const c of this.#conns.values()) if (c.kind !== "streaming" && c.kind !== "classic") n++;
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

  /** The token exchange's counts: wrong proofs, proofs looked at, refusals for a lockout, addresses the full table refused. */
  get authCounters(): { authFailures: number; authProofsEvaluated: number; authLockedRefusals: number; authTableRefused: number } {
    const t = this.#tokens;
    return { authFailures: t?.failures ?? 0, authProofsEvaluated: t?.proofsEvaluated ?? 0, authLockedRefusals: t?.lockedRefusals ?? 0, authTableRefused: t?.tableRefused ?? 0 };
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
          // Only a server with a token challenges.
          if (msg.type === "response" && this.#tokens) this.#response(this.#tokens, c, msg, now, out);
          else this.#refuse(c, badHello(c, `expected response, got ${msg.type}`), out);
          break;
        case "streaming":
          this.#session(c, msg, now, out);
          break;
        case "waiting":
          // It has said hello; a second one before its challenge is not how a viewer talks.
          this.#refuse(c, badHello(c, `expected nothing before the challenge, got ${msg.type}`), out);
          break;
      }
    } catch (e) {
      // A bug here must cost one connection, not the server.
      out.push({ kind: "log", level: "error", message: "control message handling failed", fields: { client: c.peer, type: msg.type, error: (e as Error).message } });
      this.#end(c, "protocol error", now, out);
    }
    this.#settle(now, out);
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
      this.#settle(now, out);
      return out;
    }
    out.push({ kind: "log", level: "warn", message: "malformed control message", fields: { client: c.peer, error: why } });
    if (c.kind === "streaming") out.push({ kind: "send", conn: c.id, msg: { type: "bye", reason: ByeReason.ProtocolError } });
    this.#end(c, "protocol error", now, out);
    this.#settle(now, out);
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
  admitOther(id: number, kind: string, address: string, name: string, now: number, camera = 0): OtherAdmission {
    checkOtherKind(kind);
    if (this.#conns.has(id)) throw new Error(`viewer id ${id} is in use`);
    if (!Number.isInteger(camera) || camera < 0 || camera >= this.#cameras.length) throw new RangeError(`camera ${camera}: this server has ${this.#cameras.length}`);
    return this.#others.admit(id, kind, address, name, now, this.#shuttingDown ? "shutting down" : null, camera);
  }

  /** What a viewer served elsewhere has received so far; false when `id` is not one. */
  updateOther(id: number, counters: Partial<OtherCounters>): boolean {
    return this.#others.update(id, counters);
  }

  /** A viewer served elsewhere ended; its leave is logged with `reason`. Unknown ids are ignored. */
  leaveOther(id: number, reason: string, now: number): AdmissionAction[] {
    return this.#others.leave(id, reason, now);
  }

  /** Every viewer, lancam, classroom and served elsewhere, in the order they joined. */
  viewers(): ViewerSummary[] {
    const wallMs = (t: number) => Math.round(this.#opts.wallClockUs(t) / 1000);
    return summarize(this.#sessions.values(), (id) => this.#sent(id), this.#classic.viewers(), this.#others.values(), wallMs);
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
      const why = c.kind === "challenged" ? "no response within timeout" : c.kind === "waiting" ? "no challenge within timeout" : "no hello within timeout";
      out.push({ kind: "log", level: "warn", message: "connection closed", fields: { client: c.peer, reason: why } });
      this.#end(c, why, now, out);
    }
    for (const s of this.#sessions.expired(now)) this.#byeAndEnd(s, ByeReason.Timeout, "timeout", now, out);
    for (const s of this.#sessions.deadPorts(now, this.#unreachableMs)) this.#byeAndEnd(s, ByeReason.Other, "udp port unreachable", now, out);
    this.#settle(now, out);
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
    this.#settle(now, out);
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
      const id = a.type === "joined" || a.type === "left" ? a.viewer.id : a.id;
      const c = this.#conns.get(id);
      if (a.type === "refused") {
        if (c) this.#refuse(c, classicRefusal(a, c.peer), out);
        continue;
      }
      out.push(...classicAdmissionActions(a, c?.peer, this.viewerCount, now));
      if (a.type === "left") this.#conns.delete(id);
    }
  }

  /** The connection, now known to speak lancam; undefined when gone or a classroom viewer's. */
  #lancam(id: ConnId): ConnIn<"pending" | "waiting" | "challenged" | "streaming"> | undefined {
    const c = this.#conns.get(id);
    if (!c || c.kind === "classic") return undefined;
    if (c.kind !== "sniffing") return c;
    const next: ConnIn<"pending"> = { ...baseOf(c), kind: "pending", deadline: c.deadline };
    this.#conns.set(id, next);
    return next;
  }

  /** A message from a viewer with a session: it is alive; sessionMessage says what else. */
  #session(c: ConnIn<"streaming">, msg: ControlMessage, now: number, out: AdmissionAction[]): void {
    const s = c.session;
    this.#sessions.heard(s.id, now);
    const ctx = { conn: c.id, peer: c.peer, sent: this.#sent(s.id), streamFpsMillihertz: this.#cameras[s.camera]!.stream.fpsMillihertz, now, counters: this };
    const verdict = sessionMessage(s, msg, ctx, out);
    if (verdict.end === "goodbye") this.#end(c, "goodbye", now, out, verdict.totals);
    else if (verdict.end) this.#end(c, verdict.end, now, out);
  }

  /** A refusal for a reason of authentication, logged as a security event `client refused reason=auth` (final for the viewer). */
  #refuseAuth(c: Conn, r: AuthRefusal, out: AdmissionAction[]): void {
    this.#refuse(c, { reason: RefuseReason.AuthRequired, text: r.text, level: "security", fields: { reason: "auth", client: c.peer, detail: r.detail, ...r.fields } }, out);
    for (const e of r.events) out.push({ kind: "log", level: "security", message: e.message, fields: e.fields });
  }

  #hello(c: ConnIn<"pending">, hello: Hello, now: number, out: AdmissionAction[]): void {
    const tokens = this.#tokens;
    if (!tokens) return this.#admit(c, hello, null, now, out);
    const { here, all: handshakes, challengedHere } = handshakesAt(this.#conns.values(), c.address);
    // Handshakes are never evicted, so their number is bounded by refusing more; an
    // address that proved the token lately is not held back by everyone else's.
    const busy = here >= MAX_PENDING_PER_ADDRESS
      ? "too many handshakes from this address"
      : handshakes >= this.#opts.maxPending && !tokens.trusted(c.address, now) ? "too many handshakes in progress" : null;
    if (busy) {
      return this.#refuse(c, { reason: RefuseReason.Other, text: `${busy}: try again`, level: "security", fields: { client: c.peer, reason: busy } }, out);
    }
    if (!challengedHere) return this.#challenge(tokens, c, hello, now, out);
    this.#conns.set(c.id, { ...baseOf(c), kind: "waiting", hello, deadline: c.deadline });
    this.#waiting.add(c.id);
  }

  /** Sends the challenge (or refuses before one is spent). */
  #challenge(tokens: TokenExchange, c: ConnIn<"pending" | "waiting">, hello: Hello, now: number, out: AdmissionAction[]): void {
    this.#waiting.delete(c.id);
    const verdict = tokens.hello(c.address, hello, now);
    if (verdict.kind === "refuse") return this.#refuseAuth(c, verdict, out);
    this.#conns.set(c.id, { ...baseOf(c), kind: "challenged", hello, challenge: verdict.challenge, deadline: now + this.#helloTimeoutMs });
    out.push({ kind: "send", conn: c.id, msg: verdict.challenge });
  }

  /** Challenges the first waiting connection of every address whose challenge is done. */
  #settle(now: number, out: AdmissionAction[]): void {
    const tokens = this.#tokens;
    if (this.#waiting.size === 0 || !tokens) return;
    for (const c of dueForChallenge(this.#conns.values())) this.#challenge(tokens, c, c.hello, now, out);
  }

  /** The answer to the challenge: welcomed with its session keys, or refused. */
  #response(tokens: TokenExchange, c: ConnIn<"challenged">, msg: Response, now: number, out: AdmissionAction[]): void {
    const verdict = tokens.response(c.address, c.hello, c.challenge, msg, now);
    if (verdict.kind === "refuse") return this.#refuseAuth(c, verdict, out);
    this.#admit(c, c.hello, verdict.keys, now, out);
  }

  /** A viewer that said hello (and proved the token, when `keys`): welcomed unless something stands in the way. */
  #admit(c: ConnIn<"pending" | "challenged">, hello: Hello, keys: SessionKeys | null, now: number, out: AdmissionAction[]): void {
    const udp = hello.udpPort;
    const names = this.#cameras.map((cam) => cam.name);
    const camera = pickCamera(hello.camera ?? "", names);
    if (camera === null) {
      const text = noSuchCamera(hello.camera ?? "", names);
      return this.#refuse(c, { reason: RefuseReason.NoSuchCamera, text, level: "warn", fields: { client: c.peer, udp, reason: "no such camera", camera: hello.camera } }, out);
    }
    const cam = this.#cameras[camera]!;
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
    const peer = { address: c.address, tcpPort: c.tcpPort, udpPort: udp, name: hello.name, resume: this.#randomSecret(), camera };
    const admission = this.#sessions.admit(peer, now);
    if (!admission.ok) throw new Error(`session table refused an admitted viewer: ${admission.reason}`);
    const s = admission.session;
    const streaming: ConnIn<"streaming"> = { ...baseOf(c), kind: "streaming", session: s, nextHeartbeatAt: now + this.#opts.heartbeatMs };
    this.#conns.set(c.id, streaming);
    this.#bySession.set(s.id, streaming);
    this.#capacity.add(sessionKey(s), s.address);
    if (keys) out.push({ kind: "secure", conn: c.id, keys });
    const welcome = welcomeFor(s, hello, !!keys, { ...this.#opts, stream: cam.stream, multicast: cam.multicast, layerGroups: cam.layerGroups });
    // Only a viewer that asked for a camera can read a welcome that names one.
    if (hello.camera !== undefined) welcome.camera = { index: camera, count: names.length, name: cam.name };
    out.push({ kind: "send", conn: c.id, msg: welcome });
    const group = cam.multicast;
    const { id, address, tcpPort, udpPort, name, delivery, pathReports } = s;
    out.push({ kind: "start", conn: c.id, session: { id, address, tcpPort, udpPort, name, delivery, pathReports, camera } });
    out.push({
      kind: "log", level: "info", message: "client joined",
      fields: {
        client: c.peer, udp, session: sessionHex(s), name: hello.name || undefined, camera: names.length > 1 ? cam.name : undefined, auth: keys ? "token" : undefined,
        delivery: group ? s.delivery : undefined, clients: this.viewerCount,
      },
    });
  }

  /** The one place a connection is refused: logged, told why (when it understands a refuse), closed and forgotten. */
  #refuse(c: Conn, r: Refusal, out: AdmissionAction[]): void {
    this.#conns.delete(c.id);
    this.#waiting.delete(c.id);
    out.push({ kind: "log", level: r.level, message: r.message ?? "client refused", fields: r.fields });
    if (r.reason !== null) out.push({ kind: "send", conn: c.id, msg: { type: "refuse", reason: r.reason, text: refuseText(r.text) } });
    out.push({ kind: "close", conn: c.id, reason: r.text });
  }

  /**
   * Forgets a connection and ends its session, logging the leave. The viewer's own
   * final totals, when its bye carries them, are exact; otherwise its last report
   * (up to a second old) is the best there is.
   */
  #end(c: Conn, reason: LeaveReason | "no hello within timeout" | "no response within timeout" | "no challenge within timeout", now: number, out: AdmissionAction[], totals?: ByeTotals): void {
    if (!this.#conns.delete(c.id)) return;
    this.#waiting.delete(c.id);
    if (c.kind === "streaming") {
      const s = c.session;
      const sent = this.#sent(s.id);
      const a = sent.adaptive;
      this.#bySession.delete(s.id);
      this.#sessions.remove(s.id);
      this.#capacity.remove(sessionKey(s));
      out.push({ kind: "stop", conn: c.id });
      const counts = totals ?? s.lastReport;
      out.push({
        kind: "log", level: "info", message: "client left",
        fields: {
          client: c.peer, udp: s.udpPort, session: sessionHex(s), reason, seconds: ((now - s.joinedAt) / 1000).toFixed(1),
          framesSent: sent.framesSent, framesReceived: counts?.framesReceived,
          framesLost: counts ? counts.framesLost + counts.framesIncomplete : undefined, framesRecorded: totals?.framesRecorded,
          // A path-reports viewer: what its path carried at the end, and what was skipped for it.
          framesSkipped: a?.framesSkipped, picture: a ? `${a.width}x${a.height}` : undefined,
          rateKbps: a && a.rateBytesPerS !== null ? Math.round((a.rateBytesPerS * 8) / 1000) : undefined,
          reportsRefused: a?.reportsRefused || undefined,
          camera: this.#cameras.length > 1 ? this.#cameras[s.camera]!.name : undefined,
          delivery: this.#cameras[s.camera]!.multicast ? s.delivery : undefined,
          // A viewer that picks its own layer's group: the one it was in at the end.
          groupLayer: s.groupLayers > 0 && s.delivery === "multicast" ? s.groupLayer : undefined,
          // TCP delivery: the way its frames went at the end, and whether UDP ever reached it.
          transport: sent.transport?.transport, noDatagrams: sent.transport?.noDatagrams ? "yes" : undefined,
          tcpFramesSkipped: sent.transport?.tcpFramesSkipped || undefined, clients: this.viewerCount,
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
