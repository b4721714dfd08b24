/** Where one viewer's datagrams go. */
export interface Target {
  port: number;
  address: string;
}

/**
 * One viewer's datagrams waiting to go out. `spread`: one frame's datagrams over a
 * window (datagram i of n due at start + spread*i/n). `rate`: whole frames back to back
 * at the viewer's rate, each datagram due when the bytes before it have had their time.
 */
type Queue =
  | { kind: "spread"; target: Target; datagrams: Uint8Array[]; next: number; startMs: number; spreadMs: number }
  | RateQueue;
type RateQueue = { kind: "rate"; target: Target; datagrams: Uint8Array[]; dueMs: number[]; next: number };

/** Hands `datagrams[from..to)` to the socket for one viewer; returns how many it took. */
export type SendFn<K> = (key: K, target: Target, datagrams: Uint8Array[], from: number, to: number) => number;

/** How a frame offered at a viewer's rate went. */
export type Offer =
  | { started: true; /** When the path has carried it at the given rate, ms. */ finishMs: number }
  | { started: false; /** Why it was skipped: the viewer's previous frame is still going out. */ reason: "busy" };

/**
 * A previous frame this close to its end (as a fraction of the frame interval) counts
 * as finished: the new one is queued right behind it, so a viewer whose rate carries
 * exactly one frame per interval is not halved by a millisecond of jitter.
 */
export const FINISH_TOLERANCE = 0.25;

/**
 * Spreads each frame's datagrams over time instead of one burst: a 720p frame sent at
 * once overflows a receiver's default socket buffer and the kernel drops the tail
 * silently. Two modes, per viewer:
 *
 * - `enqueue` (a free link, the default): datagram i of n is due at start + spread*i/n;
 *   a newer frame replaces what is left of the older one, so a viewer never
 *   accumulates a backlog.
 * - `offer` (a viewer paced to its estimated rate): a frame is started only when the
 *   viewer's previous frame has gone out, and then goes out whole at that rate;
 *   otherwise it is skipped for that viewer (counted in `framesSkipped`). A frame is
 *   never cut off half-sent, which on a slow path would leave every frame incomplete.
 *
 * Pure bookkeeping: the caller owns the socket and the timer (`nextDueMs` says when to
 * call `due` again).
 */
export class Pacer<K> {
  readonly #queues = new Map<K, Queue>();
  /** When each rate-paced viewer's last frame has had its time on the path (kept after its datagrams went out). */
  readonly #finishMs = new Map<K, number>();
  /** Frames offered at a rate and skipped because the viewer's previous one was still going out. */
  framesSkipped = 0;

  /** Queues a frame's datagrams for one viewer; returns how many older ones it superseded. */
  enqueue(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, spreadMs: number): number {
    const old = this.#queues.get(key);
    const superseded = old ? old.datagrams.length - old.next : 0;
    this.#finishMs.delete(key);
    this.#queues.set(key, { kind: "spread", target, datagrams, next: 0, startMs: nowMs, spreadMs: Math.max(0, spreadMs) });
    return superseded;
  }

  /**
   * Offers a frame to a viewer paced at `bytesPerS`: started when the viewer's previous
   * frame has gone out (or will within FINISH_TOLERANCE of `frameIntervalMs`), skipped
   * otherwise. Its first datagram is due at once (or right behind the previous frame),
   * so pacing adds no latency to a frame the path can carry in time. A frame bigger
   * than one interval's worth at this rate still goes out whole; the frames offered
   * meanwhile are skipped, so the viewer gets every frame it can receive complete.
   */
  offer(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, bytesPerS: number, frameIntervalMs: number): Offer {
    if (!(bytesPerS > 0) || !Number.isFinite(bytesPerS)) throw new RangeError(`pacer rate ${bytesPerS} B/s: expected a positive number`);
    if (!this.canStart(key, nowMs, frameIntervalMs)) {
      this.framesSkipped++;
      return { started: false, reason: "busy" };
    }
    return { started: true, finishMs: this.#atRate(key, target, datagrams, nowMs, bytesPerS) };
  }

  /**
   * Datagrams for a viewer paced at `bytesPerS` that must go out but are no frame of
   * their own (resends it asked for): queued behind what it has queued, at its rate.
   * They push its next frame's start back, so a path that is full gets repairs in
   * place of new frames, never on top of them.
   */
  append(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, bytesPerS: number): void {
    if (!(bytesPerS > 0) || !Number.isFinite(bytesPerS)) throw new RangeError(`pacer rate ${bytesPerS} B/s: expected a positive number`);
    if (datagrams.length > 0) this.#atRate(key, target, datagrams, nowMs, bytesPerS);
  }

  /** Queues `datagrams` at `bytesPerS` behind the viewer's previous ones; returns when they have had their time. */
  #atRate(key: K, target: Target, datagrams: Uint8Array[], nowMs: number, bytesPerS: number): number {
    const old = this.#queues.get(key);
    const finish = this.#finishMs.get(key);
    let at = Math.max(nowMs, finish ?? nowMs);
    // The rest of the previous frame, due by now or within the tolerance, goes out first.
    const q: RateQueue =
      old?.kind === "rate"
        ? { ...old, datagrams: old.datagrams.slice(old.next), dueMs: old.dueMs.slice(old.next), next: 0, target }
        : { kind: "rate", target, datagrams: [], dueMs: [], next: 0 };
    // What a spread frame (the viewer was on a free link until now) left unsent is superseded.
    for (const d of datagrams) {
      q.datagrams.push(d);
      q.dueMs.push(at);
      at += (d.length / bytesPerS) * 1000;
    }
    this.#queues.set(key, q);
    this.#finishMs.set(key, at);
    return at;
  }

  /**
   * Whether `offer` would start a frame for this viewer now: the caller asks before it
   * cuts the frame, so a skipped frame never overwrites the buffer of one going out.
   */
  canStart(key: K, nowMs: number, frameIntervalMs: number): boolean {
    const tolerance = FINISH_TOLERANCE * Math.max(0, frameIntervalMs);
    const old = this.#queues.get(key);
    const finish = this.#finishMs.get(key);
    if (old?.kind !== "rate" && finish === undefined) return true;
    // Not taken although due for a while: the socket's buffer is full, the path is the bottleneck.
    const stuck = old?.kind === "rate" && old.dueMs[old.next]! < nowMs - tolerance;
    return !stuck && (finish ?? -Infinity) <= nowMs + tolerance;
  }

  /** Forgets a viewer's queue (it left). */
  remove(key: K): void {
    this.#queues.delete(key);
    this.#finishMs.delete(key);
  }

  /** True when nothing is waiting. */
  get idle(): boolean {
    return this.#queues.size === 0;
  }

  /**
   * When the next datagram is due (ms, possibly already past when a socket did not take
   * it), or null when nothing waits: the caller sets its timer for then instead of
   * polling every millisecond.
   */
  nextDueMs(): number | null {
    let next: number | null = null;
    for (const q of this.#queues.values()) {
      const at = q.kind === "rate" ? q.dueMs[q.next]! : q.startMs + (q.spreadMs * q.next) / q.datagrams.length;
      if (next === null || at < next) next = at;
    }
    return next;
  }

  /**
   * Sends, viewer by viewer, every datagram due by `nowMs`. What a viewer's send
   * did not take (the socket's buffer was full, or it failed) stays queued for the
   * next call, unless a newer frame replaces it first; other viewers are not held up.
   */
  due(nowMs: number, send: SendFn<K>): { due: number; sent: number } {
    let due = 0;
    let sent = 0;
    for (const [key, q] of this.#queues) {
      const n = q.datagrams.length;
      const upTo = q.kind === "rate" ? rateUpTo(q, nowMs) : spreadUpTo(q, nowMs);
      if (upTo > q.next) {
        due += upTo - q.next;
        const took = Math.max(0, Math.min(upTo - q.next, send(key, q.target, q.datagrams, q.next, upTo)));
        q.next += took;
        sent += took;
      }
      if (q.next >= n) this.#queues.delete(key);
    }
    return { due, sent };
  }
}

function spreadUpTo(q: Queue & { kind: "spread" }, nowMs: number): number {
  const n = q.datagrams.length;
  const elapsed = nowMs - q.startMs;
  // The epsilon: at the time nextDueMs named, rounding must not leave its datagram for later.
  return q.spreadMs <= 0 || elapsed >= q.spreadMs ? n : Math.min(n, Math.floor((elapsed / q.spreadMs) * n + 1e-9) + 1);
}

function rateUpTo(q: RateQueue, nowMs: number): number {
  let i = q.next;
  while (i < q.dueMs.length && q.dueMs[i]! <= nowMs) i++;
  return i;
}
