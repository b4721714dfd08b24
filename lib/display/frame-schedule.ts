/**
 * When to show each picture so that it goes with its sound. With audio, a frame is
 * held until the time its capture instant is heard (the audio player's playoutTimeOf),
 * so lips and voice meet: ITU-R BT.1359 allows the sound to lead by 45 ms at most and
 * lag by 125 ms at most. Bounded: a frame is never held longer than MAX_HOLD_US after
 * it arrived, nor more than MAX_HELD_FRAMES at once (the oldest gives way); a frame
 * already late is shown at once, and of several due at once only the newest is shown.
 * Pure: the caller passes the times and owns the timer.
 */

/** The longest a frame is held after it arrived, µs. */
export const MAX_HOLD_US = 300_000;
/** Frames held at once, at most (0.27 s at 30 fps). */
export const MAX_HELD_FRAMES = 8;

/** What the schedule counted. */
export interface FrameScheduleStats {
  /** Frames shown at once: no sound to wait for. */
  unsynced: number;
  /** Frames held until their sound. */
  held: number;
  /** Frames that arrived after their sound had been heard: shown at once. */
  late: number;
  /** Frames whose sound was further away than MAX_HOLD_US: held that long only. */
  clipped: number;
  /** Frames dropped for a newer one due at the same time (or shown at once). */
  skipped: number;
  /** Frames dropped because MAX_HELD_FRAMES were held. */
  overflow: number;
}

/** What a push or take decided: the frame to show now (or null), and the frames dropped (the caller may reuse them). */
export interface ScheduleResult<T> {
  show: T | null;
  dropped: T[];
}

interface Held<T> {
  item: T;
  dueAt: number;
}

/** See the file comment. */
export class FrameSchedule<T> {
  readonly stats: FrameScheduleStats = { unsynced: 0, held: 0, late: 0, clipped: 0, skipped: 0, overflow: 0 };
  readonly #maxHold: number;
  readonly #maxHeld: number;
  /** In arrival order, which is stream order. */
  #held: Held<T>[] = [];

  constructor(opts: { maxHoldUs?: number; maxHeld?: number } = {}) {
    this.#maxHold = opts.maxHoldUs ?? MAX_HOLD_US;
    this.#maxHeld = Math.max(1, opts.maxHeld ?? MAX_HELD_FRAMES);
  }

  /** Frames held now. */
  get size(): number {
    return this.#held.length;
  }

  /**
   * A frame that arrived at `now`, to be shown at `dueAt` (null: no sound plays, show
   * it now). A frame shown now replaces every older one still held.
   */
  push(item: T, dueAt: number | null, now: number): ScheduleResult<T> {
    if (dueAt === null || dueAt <= now) {
      if (dueAt === null) this.stats.unsynced++;
      else this.stats.late++;
      const dropped = this.#held.map((h) => h.item);
      this.stats.skipped += dropped.length;
      this.#held = [];
      return { show: item, dropped };
    }
    let due = dueAt;
    if (due > now + this.#maxHold) {
      due = now + this.#maxHold;
      this.stats.clipped++;
    }
    // Never before a frame held ahead of it: pictures stay in order.
    const last = this.#held[this.#held.length - 1];
    if (last && last.dueAt > due) due = last.dueAt;
    this.stats.held++;
    this.#held.push({ item, dueAt: due });
    const dropped: T[] = [];
    while (this.#held.length > this.#maxHeld) {
      dropped.push(this.#held.shift()!.item);
      this.stats.overflow++;
    }
    return { show: null, dropped };
  }

  /** The newest frame due by `now` (the older due ones are dropped), or null. */
  take(now: number): ScheduleResult<T> {
    let n = 0;
    while (n < this.#held.length && this.#held[n]!.dueAt <= now) n++;
    if (n === 0) return { show: null, dropped: [] };
    const due = this.#held.splice(0, n).map((h) => h.item);
    this.stats.skipped += n - 1;
    return { show: due[n - 1]!, dropped: due.slice(0, n - 1) };
  }

  /** When the next held frame is due (µs), or null when none is held. */
  nextDueAt(): number | null {
    return this.#held[0]?.dueAt ?? null;
  }

  /** Drops every held frame (the window closes); returns them. */
  clear(): T[] {
    const all = this.#held.map((h) => h.item);
    this.#held = [];
    return all;
  }
}
