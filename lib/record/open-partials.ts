/** A segment that was started and is not finished yet (being written, or being finished). */
export interface OpenPartial {
  /** `<out>/<date>/.<HH-MM-SS>[-N].<ext>.partial` */
  partial: string;
  /** The finished name it is meant to get; no other segment may take it meanwhile. */
  final: string;
  /** Capture time of its first frame, ms since the epoch. */
  startedAtMs: number;
}

/**
 * The segments one writer has started and not finished. Naming asks it which names are spoken
 * for; retention asks it how old the oldest unfinished one is, since deleting oldest first must
 * not skip a segment that is still being finished.
 */
export class OpenPartials {
  readonly #byPartial = new Map<string, OpenPartial>();

  /** A segment was started. */
  add(entry: OpenPartial): void {
    this.#byPartial.set(entry.partial, { ...entry });
  }

  /** A segment was finished (renamed or repaired) or given up; false when it was not open. */
  delete(partial: string): boolean {
    return this.#byPartial.delete(partial);
  }

  /** True while `partial` is open here. */
  has(partial: string): boolean {
    return this.#byPartial.has(partial);
  }

  /** True when `path` is the partial or the finished name of an open segment. */
  claims(path: string): boolean {
    if (this.#byPartial.has(path)) return true;
    for (const e of this.#byPartial.values()) if (e.final === path) return true;
    return false;
  }

  /** Start time (ms) of the oldest open segment; Infinity when none is open. */
  oldestStartMs(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const e of this.#byPartial.values()) oldest = Math.min(oldest, e.startedAtMs);
    return oldest;
  }

  /** How many segments are open. */
  get size(): number {
    return this.#byPartial.size;
  }
}
