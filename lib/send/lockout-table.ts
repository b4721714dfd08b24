/** How failures under one key (an address, a network, the server) are slowed down. */
export interface BackoffOptions {
  /** Failures allowed before the first lockout. */
  freeFailures: number;
  /** The first lockout; each further failure doubles it. */
  baseMs: number;
  /** Longest lockout. */
  maxMs: number;
  /** A key without a failure for this long (and not locked) starts afresh. */
  forgetMs: number;
  /** Keys remembered at once. */
  maxEntries: number;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

/**
 * How many entries, from the least recently failed, are looked at for one to forget
 * when the table is full. Locked ones met on the way go to the back, so the next look
 * starts further on: bounded work per failure, whatever the table holds.
 */
const EVICT_SCAN = 64;

/**
 * Failures counted per key, with a lockout that doubles past the free ones. Bounded:
 * at most maxEntries keys. A key that is locked out is never forgotten to make room;
 * when every entry looked at is locked, the table refuses the new key instead (`full`),
 * so cycling through more keys than it holds buys an attacker nothing. Plain
 * bookkeeping: the clock is passed in.
 */
export class LockoutTable {
  readonly #opts: BackoffOptions;
  /** Insertion order is failure order: every failure re-inserts its key. */
  readonly #entries = new Map<string, Entry>();
  /** New keys refused because every entry looked at was locked. */
  refused = 0;

  constructor(opts: BackoffOptions) {
    this.#opts = opts;
  }

  /** Keys remembered right now. */
  get size(): number {
    return this.#entries.size;
  }

  /** How much longer `key` is locked out, ms; 0 when it may try. */
  lockedFor(key: string, now: number): number {
    const e = this.#current(key, now);
    return e ? Math.max(0, e.lockedUntil - now) : 0;
  }

  /** Whether `key` has failures on record. */
  known(key: string, now: number): boolean {
    return this.#current(key, now) !== undefined;
  }

  /** Whether a failure under `key` could be recorded now (it is known, or there is room). */
  canRecord(key: string, now: number): boolean {
    return this.#current(key, now) !== undefined || this.#makeRoom(now, false);
  }

  /**
   * A failure under `key`: its failures so far and the lockout it now has (0 while
   * failures are free); null when the table is full of locked keys and this new one
   * was refused (counted in `refused`).
   */
  failed(key: string, now: number): { failures: number; lockedMs: number } | null {
    let e = this.#current(key, now);
    if (!e) {
      if (!this.#makeRoom(now, true)) {
        this.refused++;
        return null;
      }
      e = { failures: 0, lastFailureAt: now, lockedUntil: 0 };
    }
    e.failures++;
    e.lastFailureAt = now;
    const over = e.failures - this.#opts.freeFailures;
    // 2^over overflows to Infinity long after maxMs is reached; min() keeps it finite.
    const lockedMs = over > 0 ? Math.min(this.#opts.maxMs, this.#opts.baseMs * 2 ** (over - 1)) : 0;
    e.lockedUntil = Math.max(e.lockedUntil, now + lockedMs);
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return { failures: e.failures, lockedMs };
  }

  /** A success: the key starts afresh. */
  succeeded(key: string): void {
    this.#entries.delete(key);
  }

  /** Whether there is room for one more key; with `evict`, makes it by forgetting an unlocked one. */
  #makeRoom(now: number, evict: boolean): boolean {
    if (this.#entries.size < this.#opts.maxEntries) return true;
    let looked = 0;
    for (const [key, e] of this.#entries) {
      if (looked++ >= EVICT_SCAN) break;
      if (now >= e.lockedUntil) {
        if (evict) this.#entries.delete(key);
        return true;
      }
    }
    // Every one looked at is locked: move them back so the next look sees others.
    if (evict) {
      for (const [key, e] of [...this.#entries].slice(0, EVICT_SCAN)) {
        this.#entries.delete(key);
        this.#entries.set(key, e);
      }
    }
    return false;
  }

  #current(key: string, now: number): Entry | undefined {
    const e = this.#entries.get(key);
    if (e && now - e.lastFailureAt > this.#opts.forgetMs && now >= e.lockedUntil) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }
}
