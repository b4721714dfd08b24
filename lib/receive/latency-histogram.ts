/**
 * Fixed-size latency histogram: constant memory however long the viewer runs,
 * percentiles exact to one bucket (0.05 ms) up to 5 s; slower samples count in the last bucket.
 */
export class LatencyHistogram {
  static readonly BUCKET_MS = 0.05;
  static readonly MAX_MS = 5000;
  readonly #counts = new Uint32Array(Math.ceil(LatencyHistogram.MAX_MS / LatencyHistogram.BUCKET_MS) + 1);
  #total = 0;

  get count(): number {
    return this.#total;
  }

  add(ms: number): void {
    const clamped = Math.min(Math.max(ms, 0), LatencyHistogram.MAX_MS);
    this.#counts[Math.floor(clamped / LatencyHistogram.BUCKET_MS)]!++;
    this.#total++;
  }

  /** The p-th percentile (0..100) in ms, at the bucket's upper edge; null when empty. */
  percentile(p: number): number | null {
    if (this.#total === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#total));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min((i + 1) * LatencyHistogram.BUCKET_MS, LatencyHistogram.MAX_MS);
    }
    return LatencyHistogram.MAX_MS;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#total = 0;
  }
}
