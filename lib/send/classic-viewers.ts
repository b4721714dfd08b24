import type { Frame } from "../wire/frame.ts";
import { MAX_CLASSIC_DATAGRAM, decodeClassicAnswer } from "../wire/classic.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { seqLess } from "../wire/seq.ts";
import { plainAddress as normalizeAddress } from "../net/address.ts";
import type { AdmissionAction, Refusal } from "./admission-types.ts";
import { Capacity, noPlaceReason, type NoPlace } from "./capacity.ts";

/** How often the owner should tick the machine while it has viewers. */
export const CLASSIC_TICK_MS = 50;
/**
 * Wait after a join before the first picture. The classroom viewer binds its UDP
 * port only after sending the port number, so a picture sent at once usually meets
 * a closed port; the resend would recover, but half a second later.
 */
export const FIRST_SEND_DELAY_MS = 50;
/** Shortest quiet period that ends settling after a resend (see `ClassicViewers`). */
const MIN_SETTLE_MS = 100;
/** Answer time assumed before one has been measured (the classroom viewer waits 50 ms per picture). */
const DEFAULT_ANSWER_MS = 60;

/** Why a classic viewer left, as written in the server log. */
export type ClassicLeaveReason =
  | "end" // it said "end"
  | "closed" // its TCP connection closed
  | "timeout" // no answer for timeoutMs while pictures were sent to it
  | "replaced" // a new connection announced the same address and port
  | "shutdown"; // the server is stopping

/** One classic viewer, as the server's log and status see it. */
export interface ClassicViewer {
  /** The owner's id for its TCP connection. */
  readonly id: number;
  /** The TCP peer's address: the only place its pictures go. */
  readonly address: string;
  /** The UDP port it announced. */
  readonly port: number;
  readonly joinedAt: number;
  /** Pictures sent, resends included. */
  framesSent: number;
  resends: number;
  /** "continue" answers, late ones included. */
  answers: number;
  /** Answers taken for copies that were resent, which release no picture. */
  lateAnswers: number;
  /** Answers beyond the pictures sent (a forger's, or duplicates), which release nothing. */
  extraAnswers: number;
  lastAnswerAt: number | null;
}

/** What the owner feeds in; `now` is a monotonic clock in ms. */
export type ClassicInput =
  /** A TCP connection on the control port announced UDP `port` (classifyFirstBytes said "classic"). */
  | { type: "join"; id: number; address: string; port: number }
  /** That TCP connection closed. */
  | { type: "closed"; id: number }
  /** The newest picture, already fitted to one datagram (ClassicEncoder). */
  | { type: "frame"; frame: Frame }
  /** A datagram on the socket the pictures leave from, with its source address. */
  | { type: "answer"; address: string; port: number; bytes: Uint8Array }
  /** Time passes: at least every CLASSIC_TICK_MS while there are viewers. */
  | { type: "tick" }
  /** The server stops: everyone leaves. */
  | { type: "shutdown" };

/** What the owner must do. */
export type ClassicAction =
  /** Send `jpeg` as one datagram to address:port from the pictures' socket. */
  | { type: "send"; id: number; address: string; port: number; seq: number; jpeg: Uint8Array; resend: boolean }
  /** Log the join. */
  | { type: "joined"; viewer: Readonly<ClassicViewer> }
  /**
   * Close that connection (a classic viewer cannot be told why): no place for it, or
   * the server has a token (it could not prove one, and its pictures would go out plain).
   */
  | { type: "refused"; id: number; address: string; port: number; why: NoPlace | { reason: "auth"; text: string } }
  /** Log the leave and close its TCP connection (already closed for "closed"). */
  | { type: "left"; viewer: Readonly<ClassicViewer>; reason: ClassicLeaveReason };

/** Limits and timings; the defaults suit the classroom viewer on a LAN. */
export interface ClassicViewersOptions {
  /** The places shared with every other kind of viewer (default: 32 of them, for classic viewers alone). */
  capacity?: Capacity;
  /** The server needs a token, which a classroom viewer cannot prove: every join is refused. */
  tokenRequired?: boolean;
  /** Silence after a picture before the newest one is sent again (default 500 ms). */
  resendMs?: number;
  /** Silence after a picture before the viewer is dropped (default 5000 ms). */
  timeoutMs?: number;
  /** Largest picture sent (default MAX_CLASSIC_DATAGRAM): a bigger datagram would never arrive. */
  maxBytes?: number;
}

/** Datagrams and frames that were not used, by reason. */
export interface ClassicCounters {
  /** Answers from an address:port that is no viewer's. */
  foreign: number;
  /** Answers that were neither "continue" nor "end". */
  invalid: number;
  /** Frames not newer than the newest already held. */
  staleFrames: number;
  /** Frames over maxBytes (never sent). */
  oversizeFrames: number;
  /** Answers beyond the copies sent, from a viewer's own address and port (ignored). */
  extraAnswers: number;
  /** Joins refused: no place (--max-clients, --max-per-host), or a token needed. */
  refused: number;
}

interface ViewerState extends ClassicViewer {
  key: string;
  /** When the first picture may go (FIRST_SEND_DELAY_MS after the join). */
  firstSendAt: number;
  lastSentSeq: number | null;
  lastSentAt: number;
  /** Pictures sent since the last answer. */
  unanswered: number;
  /** When the oldest unanswered picture was sent; null when none is. */
  waitingSince: number | null;
  /** While set, answers are taken as late and only push this further (see the class comment). */
  settleUntil: number | null;
  /** Late answers still to come while settling: one per extra copy sent; any more are extra answers. */
  lateExpected: number;
  /** Smoothed time from a picture to its answer, when one has been measured cleanly. */
  answerMs: number | null;
}

/** Drops the IPv4-mapped IPv6 prefix, so a TCP peer and a UDP source compare equal. */
export { normalizeAddress };

const keyOf = (address: string, port: number) => `${normalizeAddress(address)}:${port}`;

/** The Capacity key of a classroom viewer. */
export const classicKey = (id: number) => `classic:${id}`;

/**
 * Serves classroom viewers: each gets the newest picture whenever it has answered the
 * last one, so a slow viewer gets fewer pictures, never a share of the camera or a
 * backlog, and never holds up another. Answers are matched by source address and
 * port. Plain bookkeeping: the owner moves the datagrams and passes the clock.
 *
 * Resending: a picture unanswered for resendMs is taken as lost and the newest is
 * sent again. If the viewer was only slow, both copies arrive and both are answered,
 * and answers carry nothing to tell them apart; taking each as a request would keep
 * two pictures in flight for good (a growing delay at the viewer). So the first answer
 * after a resend starts a quiet period (twice the viewer's usual answer time); answers
 * within it are late ones for the extra copies, and the next picture goes when it ends.
 */
export class ClassicViewers {
  readonly counters: ClassicCounters = { foreign: 0, invalid: 0, extraAnswers: 0, staleFrames: 0, oversizeFrames: 0, refused: 0 };
  readonly #byKey = new Map<string, ViewerState>();
  readonly #byId = new Map<number, ViewerState>();
  readonly #capacity: Capacity;
  readonly #tokenRequired: boolean;
  readonly #resendMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  #newest: Frame | null = null;

  constructor(opts: ClassicViewersOptions = {}) {
    this.#capacity = opts.capacity ?? new Capacity({ maxClients: 32, maxPerHost: 32 });
    this.#tokenRequired = opts.tokenRequired ?? false;
    this.#resendMs = opts.resendMs ?? 500;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#maxBytes = opts.maxBytes ?? MAX_CLASSIC_DATAGRAM;
    if (!(this.#resendMs > 0 && this.#timeoutMs > this.#resendMs)) {
      throw new RangeError(`need 0 < resendMs < timeoutMs, got ${this.#resendMs} and ${this.#timeoutMs}`);
    }
  }

  /** Classic viewers connected now; frames are worth fitting only while this is above 0. */
  get size(): number {
    return this.#byId.size;
  }

  /** Whether a viewer receives at address:port, so a join there would replace it rather than add one. */
  holds(address: string, port: number): boolean {
    return this.#byKey.has(keyOf(address, port));
  }

  /** The viewers, for status and logs. */
  viewers(): Readonly<ClassicViewer>[] {
    return [...this.#byId.values()].map(publicView);
  }

  /** Feeds one input; returns what to do, in order. */
  push(input: ClassicInput, now: number): ClassicAction[] {
    const out: ClassicAction[] = [];
    switch (input.type) {
      case "join":
        this.#join(input.id, input.address, input.port, now, out);
        break;
      case "closed": {
        const v = this.#byId.get(input.id);
        if (v) this.#leave(v, "closed", out);
        break;
      }
      case "frame":
        this.#frame(input.frame, now, out);
        break;
      case "answer":
        this.#answer(input.address, input.port, input.bytes, now, out);
        break;
      case "tick":
        for (const v of this.#byId.values()) this.#tick(v, now, out);
        break;
      case "shutdown":
        for (const v of [...this.#byId.values()]) this.#leave(v, "shutdown", out);
        this.#newest = null;
        break;
    }
    return out;
  }

  /**
   * A connection announced a UDP port. It takes a place like any viewer, unless it
   * replaces the one already at that address and port (a restarted viewer: two streams
   * to one socket would double its traffic, and the old connection is the stale one).
   */
  #join(id: number, address: string, port: number, now: number, out: ClassicAction[]): void {
    if (this.#byId.has(id)) throw new Error(`classic viewer id ${id} joined twice`);
    const key = keyOf(address, port);
    const previous = this.#byKey.get(key);
    const plain = normalizeAddress(address);
    const why = this.#tokenRequired
      ? { reason: "auth" as const, text: "a classroom viewer cannot prove the token" }
      : this.#capacity.check(plain, previous ? classicKey(previous.id) : null);
    if (why) {
      this.counters.refused++;
      out.push({ type: "refused", id, address: plain, port, why });
      return;
    }
    if (previous) this.#leave(previous, "replaced", out);
    const v: ViewerState = {
      id, address: plain, port, joinedAt: now, framesSent: 0, resends: 0, answers: 0, lateAnswers: 0, extraAnswers: 0,
      lastAnswerAt: null, key, firstSendAt: now + FIRST_SEND_DELAY_MS, lastSentSeq: null, lastSentAt: now, unanswered: 0,
      waitingSince: null, settleUntil: null, lateExpected: 0, answerMs: null,
    };
    this.#byId.set(id, v);
    this.#byKey.set(key, v);
    this.#capacity.add(classicKey(id), plain);
    out.push({ type: "joined", viewer: publicView(v) });
  }

  #frame(frame: Frame, now: number, out: ClassicAction[]): void {
    if (frame.jpeg.length > this.#maxBytes) {
      this.counters.oversizeFrames++;
      return;
    }
    // Fits finish out of order when a newer frame needed no work: never go back.
    if (this.#newest && !seqLess(this.#newest.seq, frame.seq)) {
      this.counters.staleFrames++;
      return;
    }
    this.#newest = frame;
    for (const v of this.#byId.values()) if (this.#ready(v, now)) this.#send(v, now, false, out);
  }

  #answer(address: string, port: number, bytes: Uint8Array, now: number, out: ClassicAction[]): void {
    const v = this.#byKey.get(keyOf(address, port));
    if (!v) {
      this.counters.foreign++;
      return;
    }
    let answer;
    try {
      answer = decodeClassicAnswer(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.counters.invalid++;
      return;
    }
    if (answer === "end") {
      this.#leave(v, "end", out);
      return;
    }
    // More answers than copies sent (a forger on the LAN can send its own from the viewer's
    // address and port): counted, and they release nothing and hold nothing up.
    if (v.settleUntil !== null ? v.lateExpected === 0 : v.unanswered === 0) {
      v.extraAnswers++;
      this.counters.extraAnswers++;
      return;
    }
    v.answers++;
    v.lastAnswerAt = now;
    if (v.settleUntil !== null) {
      v.lateAnswers++;
      v.lateExpected--;
      v.settleUntil = now + this.#settleMs(v);
      return;
    }
    const resent = v.unanswered > 1;
    v.lateExpected = v.unanswered - 1;
    if (v.unanswered === 1) {
      const took = now - v.lastSentAt;
      v.answerMs = v.answerMs === null ? took : v.answerMs + (took - v.answerMs) / 8;
    }
    v.unanswered = 0;
    v.waitingSince = null;
    if (resent) {
      v.settleUntil = now + this.#settleMs(v);
      return;
    }
    if (this.#ready(v, now)) this.#send(v, now, false, out);
  }

  #tick(v: ViewerState, now: number, out: ClassicAction[]): void {
    if (v.settleUntil !== null && now >= v.settleUntil) v.settleUntil = null;
    if (v.waitingSince !== null) {
      if (now - v.waitingSince >= this.#timeoutMs) {
        this.#leave(v, "timeout", out);
        return;
      }
      if (now - v.lastSentAt >= this.#resendMs && this.#newest) this.#send(v, now, true, out);
      return;
    }
    if (this.#ready(v, now)) this.#send(v, now, false, out);
  }

  /** Waiting for nothing, past the first-send delay, and there is a picture it has not had. */
  #ready(v: ViewerState, now: number): boolean {
    return (
      v.waitingSince === null && v.settleUntil === null && now >= v.firstSendAt &&
      this.#newest !== null && v.lastSentSeq !== this.#newest.seq
    );
  }

  #settleMs(v: ViewerState): number {
    return Math.min(this.#resendMs, Math.max(MIN_SETTLE_MS, 2 * (v.answerMs ?? DEFAULT_ANSWER_MS)));
  }

  #send(v: ViewerState, now: number, resend: boolean, out: ClassicAction[]): void {
    const f = this.#newest!;
    v.lastSentSeq = f.seq;
    v.lastSentAt = now;
    v.waitingSince ??= now;
    v.unanswered++;
    v.framesSent++;
    if (resend) v.resends++;
    out.push({ type: "send", id: v.id, address: v.address, port: v.port, seq: f.seq, jpeg: f.jpeg, resend });
  }

  #leave(v: ViewerState, reason: ClassicLeaveReason, out: ClassicAction[]): void {
    this.#byId.delete(v.id);
    this.#capacity.remove(classicKey(v.id));
    if (this.#byKey.get(v.key) === v) this.#byKey.delete(v.key);
    out.push({ type: "left", viewer: publicView(v), reason });
  }
}

function publicView(v: ViewerState): Readonly<ClassicViewer> {
  const { id, address, port, joinedAt, framesSent, resends, answers, lateAnswers, extraAnswers, lastAnswerAt } = v;
  return { id, address, port, joinedAt, framesSent, resends, answers, lateAnswers, extraAnswers, lastAnswerAt };
}

/**
 * A refused join as admission refuses it: a classroom viewer understands no refusal,
 * so closing is all it can be told; a token it cannot prove is a security event.
 */
export function classicRefusal(a: Extract<ClassicAction, { type: "refused" }>, peer: string): Refusal {
  const w = a.why;
  if (w.reason === "auth") return { reason: null, text: "auth", level: "security", fields: { reason: "auth", client: peer, kind: "classic", udp: a.port, detail: w.text } };
  return { reason: null, text: noPlaceReason(w), level: "warn", fields: { client: peer, kind: "classic", udp: a.port, reason: noPlaceReason(w), max: w.max } };
}

/** A join, leave or picture as admission's actions; `peer` is its TCP connection's, `clients` the viewers of every kind now. */
export function classicAdmissionActions(a: Exclude<ClassicAction, { type: "refused" }>, peer: string | undefined, clients: number, now: number): AdmissionAction[] {
  switch (a.type) {
    case "send":
      return [{ kind: "datagram", conn: a.id, address: a.address, port: a.port, bytes: a.jpeg }];
    case "joined":
      return [{ kind: "log", level: "info", message: "client joined", fields: { client: peer, kind: "classic", udp: a.viewer.port, clients } }];
    case "left": {
      const v = a.viewer;
      return [
        {
          kind: "log", level: "info", message: "client left",
          fields: {
            client: peer, kind: "classic", udp: v.port, reason: a.reason, seconds: ((now - v.joinedAt) / 1000).toFixed(1),
            framesSent: v.framesSent, framesReceived: v.answers, resends: v.resends, extraAnswers: v.extraAnswers || undefined, clients,
          },
        },
        { kind: "close", conn: v.id, reason: a.reason },
      ];
    }
  }
}
