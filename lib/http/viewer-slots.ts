/**
 * Per-viewer metric series are labelled by a slot number, not by the viewer's session
 * id, address or name: a slot is reused once its viewer leaves, so the series stay as
 * many as the viewers the server admits at once (--max-clients), however many come and go.
 */

/** Numbers the viewers present 0..capacity-1, lowest free slot first; a viewer keeps its slot while it stays. */
export class ViewerSlots {
  readonly #capacity: number;
  readonly #byKey = new Map<string, number>();

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`viewer slots must be a whole number of at least 1, got ${capacity}`);
    this.#capacity = capacity;
  }

  /** Slots held now. */
  get size(): number {
    return this.#byKey.size;
  }

  /**
   * Takes the viewers present now (one key each): those gone free their slots, new ones
   * take the lowest free. Returns each present viewer's slot; a viewer beyond capacity
   * (more than the server should ever admit) gets none and stays out of the per-viewer series.
   */
  update(keys: readonly string[]): Map<string, number> {
    const present = new Set(keys);
    for (const key of this.#byKey.keys()) if (!present.has(key)) this.#byKey.delete(key);
    const used = new Array<boolean>(this.#capacity).fill(false);
    for (const slot of this.#byKey.values()) used[slot] = true;
    let free = 0;
    for (const key of present) {
      if (this.#byKey.has(key)) continue;
      while (free < this.#capacity && used[free]) free++;
      if (free === this.#capacity) break;
      used[free] = true;
      this.#byKey.set(key, free);
    }
    const out = new Map<string, number>();
    for (const key of present) {
      const slot = this.#byKey.get(key);
      if (slot !== undefined) out.set(key, slot);
    }
    return out;
  }
}
