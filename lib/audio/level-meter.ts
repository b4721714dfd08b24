/**
 * The recent peak of the sound played, in dBFS, for the window's level meter. Pure:
 * samples come in with the local time they play at, and the level is asked for at a time.
 */

/** The level of digital silence, and the floor of every reading (16-bit samples reach about -96 dBFS). */
export const SILENCE_DBFS = -96;
/** How long a peak holds on the meter, µs. */
export const PEAK_HOLD_US = 300_000;
/** Peaks are kept per block of this long, µs. */
const BLOCK_US = 50_000;
const BLOCKS = Math.ceil(PEAK_HOLD_US / BLOCK_US) + 1;

/** Peak-hold meter over the last PEAK_HOLD_US. */
export class LevelMeter {
  /** Peak (0..32768) of each block, keyed by block number modulo BLOCKS. */
  readonly #peaks = new Float64Array(BLOCKS);
  readonly #blockOf = new Float64Array(BLOCKS).fill(-1);

  /** Samples (interleaved s16) whose first plays at `at` (local µs). */
  push(pcm: Int16Array, at: number): void {
    let peak = 0;
    for (let i = 0; i < pcm.length; i++) {
      const v = pcm[i]!;
      const m = v < 0 ? -v : v;
      if (m > peak) peak = m;
    }
    const block = Math.floor(at / BLOCK_US);
    const slot = ((block % BLOCKS) + BLOCKS) % BLOCKS;
    if (this.#blockOf[slot] !== block) {
      this.#blockOf[slot] = block;
      this.#peaks[slot] = 0;
    }
    if (peak > this.#peaks[slot]!) this.#peaks[slot] = peak;
  }

  /** The peak of what played in the PEAK_HOLD_US before `now`, in dBFS (SILENCE_DBFS..0). */
  level(now: number): number {
    const last = Math.floor(now / BLOCK_US);
    const first = Math.floor((now - PEAK_HOLD_US) / BLOCK_US);
    let peak = 0;
    for (let slot = 0; slot < BLOCKS; slot++) {
      // Only blocks already played: what is written ahead has not been heard yet.
      const b = this.#blockOf[slot]!;
      if (b >= first && b <= last && this.#peaks[slot]! > peak) peak = this.#peaks[slot]!;
    }
    return toDbfs(peak);
  }

  /** Forgets every peak. */
  reset(): void {
    this.#blockOf.fill(-1);
  }
}

/** A sample magnitude (0..32768) in dBFS, floored at SILENCE_DBFS. */
export function toDbfs(peak: number): number {
  if (peak <= 0) return SILENCE_DBFS;
  return Math.max(SILENCE_DBFS, Math.min(0, 20 * Math.log10(peak / 32768)));
}
