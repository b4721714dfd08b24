/**
 * Per-second rates for the page: the stream's own frame and bit rate, and frame
 * rates derived from cumulative counts for viewers whose server row gives none.
 * Plain bookkeeping: the clock (ms) is passed in.
 */

/** Frames and bytes of the stream as pushed to the view, as rates over the last window. */
export class StreamMeter {
  #window = { at: 0, frames: 0, bytes: 0 };
  #started = false;
  fps = 0;
  bitsPerSecond = 0;

  frame(bytes: number, nowMs: number): void {
    if (!this.#started) {
      this.#started = true;
      this.#window.at = nowMs;
    }
    this.#window.frames++;
    this.#window.bytes += bytes;
  }

  /** Ends the window: fps and bitsPerSecond now describe the time since the last call. */
  sample(nowMs: number): void {
    const w = this.#window;
    const seconds = (nowMs - w.at) / 1000;
    if (!this.#started || seconds <= 0) return;
    this.fps = w.frames / seconds;
    this.bitsPerSecond = (w.bytes * 8) / seconds;
    this.#window = { at: nowMs, frames: 0, bytes: 0 };
  }
}

/**
 * Rates of cumulative counters keyed by id (a viewer's framesReceived): the rate is
 * the change between the last two samples. Ids missing from a round are forgotten,
 * so the table stays as small as the viewer list.
 */
export class CountRates {
  #last = new Map<string, { count: number; at: number; rate: number | null }>();

  /** Takes one round of samples (once a second). */
  sample(counts: Iterable<[id: string, count: number]>, nowMs: number): void {
    const next = new Map<string, { count: number; at: number; rate: number | null }>();
    for (const [id, count] of counts) {
      const prev = this.#last.get(id);
      // A count that went down belongs to a new session under a reused id: start over.
      const rate = prev && count >= prev.count && nowMs > prev.at ? ((count - prev.count) * 1000) / (nowMs - prev.at) : null;
      next.set(id, { count, at: nowMs, rate });
    }
    this.#last = next;
  }

  /** Per second between the last two samples; null before the second sample of an id. */
  rate(id: string): number | null {
    return this.#last.get(id)?.rate ?? null;
  }
}
