import type { Frame } from "../wire/frame.ts";
import { seqAdd, seqDiff } from "../wire/seq.ts";

/** Frames held at most while an earlier one is awaited (30 fps over a 500 ms repair wait is 15). */
export const DEFAULT_MAX_HELD = 48;
/** A frame this far ahead of the one awaited means a new numbering: what is held goes out, and the order starts over. */
const RESYNC_DISTANCE = 1024;

/**
 * Puts a repairing session's frames back in frame order for the recorder, whose
 * timeline must not go back: a frame that completes after later ones (repaired too late
 * for the live view) is written in its place. A frame is released once every earlier one
 * is settled (complete, or given up); held frames are bounded, and past the bound the
 * order moves on without the ones awaited. Pure.
 */
export class RecordOrder {
  readonly maxHeld: number;
  /** The next frame number to release; null before the first frame. */
  #next: number | null = null;
  /** Complete frames (copied) and given-up numbers (null) ahead of #next. */
  readonly #held = new Map<number, Frame | null>();
  /** Frames given up while awaited because too many were held behind them. */
  skippedForRoom = 0;
  /** Frames that completed after the order had moved past them (not recorded). */
  late = 0;

  constructor(maxHeld = DEFAULT_MAX_HELD) {
    if (!Number.isInteger(maxHeld) || maxHeld < 1) throw new RangeError(`record order maxHeld=${maxHeld}: expected an integer >= 1`);
    this.maxHeld = maxHeld;
  }

  /** Frames held now. */
  get held(): number {
    let n = 0;
    for (const f of this.#held.values()) if (f) n++;
    return n;
  }

  /** A complete frame (its bytes may be reused after the call): the frames now ready for the recorder, in order. */
  frame(f: Frame): Frame[] {
    return this.#settle(f.seq, f);
  }

  /** Frame `fn` will never complete: the frames now ready, in order. */
  skip(fn: number): Frame[] {
    return this.#settle(fn, null);
  }

  /** A new session: everything held goes out, in order, and the numbering starts over. */
  reset(): Frame[] {
    const out = this.#drain();
    this.#next = null;
    return out;
  }

  #settle(fn: number, f: Frame | null): Frame[] {
    const out: Frame[] = [];
    if (this.#next === null) this.#next = fn;
    const ahead = seqDiff(fn, this.#next);
    if (ahead < 0 || ahead > RESYNC_DISTANCE) {
      if (ahead < 0) {
        if (f) this.late++;
        return out;
      }
      out.push(...this.#drain());
      this.#next = fn;
    }
    if (fn === this.#next) {
      if (f) out.push(f);
      this.#next = seqAdd(fn, 1);
    } else if (!this.#held.has(fn)) {
      this.#held.set(fn, f && { ...f, jpeg: f.jpeg.slice() });
    }
    this.#release(out);
    while (this.held > this.maxHeld) {
      // Too long awaited: move on to the first frame held.
      this.skippedForRoom++;
      this.#next = this.#firstHeld()!;
      this.#release(out);
    }
    return out;
  }

  #release(out: Frame[]): void {
    for (let n = this.#next!; this.#held.has(n); n = this.#next!) {
      const f = this.#held.get(n)!;
      this.#held.delete(n);
      if (f) out.push(f);
      this.#next = seqAdd(n, 1);
    }
  }

  #firstHeld(): number | null {
    let first: number | null = null;
    for (const n of this.#held.keys()) if (first === null || seqDiff(n, first) < 0) first = n;
    return first;
  }

  #drain(): Frame[] {
    const out: Frame[] = [];
    while (this.#held.size > 0) {
      this.#next = this.#firstHeld()!;
      this.#release(out);
    }
    return out;
  }
}
