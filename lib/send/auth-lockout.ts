/** How failed token proofs from one address are slowed down. */
export interface LockoutOptions {
  /** Failures allowed before the first lockout (default 3: a typo or two costs nothing). */
  freeFailures?: number;
  /** The first lockout; each further failure doubles it (default 1000 ms). */
  baseMs?: number;
  /** Longest lockout (default 5 minutes). */
  maxMs?: number;
  /** An address without a failure for this long starts afresh (default 15 minutes). */
  forgetMs?: number;
  /** Addresses remembered at once; the one failing least recently goes first (default 4096). */
  maxAddresses?: number;
}

interface Record {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

/**
 * Counts wrong token proofs per address and locks an address out for a time that
 * doubles with each failure past the free ones. A plain bookkeeping class: the clock
 * is passed in. Bounded: at most maxAddresses records, so a flood of addresses costs
 * memory once, not per attempt.
 */
export class AuthLockout {
  readonly #free: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #forgetMs: number;
  readonly #maxAddresses: number;
  /** Insertion order is failure order: every failure re-inserts its address. */
  readonly #records = new Map<string, Record>();

  constructor(opts: LockoutOptions = {}) {
    this.#free = opts.freeFailures ?? 3;
    this.#baseMs = opts.baseMs ?? 1000;
    this.#maxMs = opts.maxMs ?? 5 * 60_000;
    this.#forgetMs = opts.forgetMs ?? 15 * 60_000;
    this.#maxAddresses = opts.maxAddresses ?? 4096;
  }

  /** Addresses remembered right now. */
  get size(): number {
    return this.#records.size;
  }

  /** How much longer `address` is locked out, ms; 0 when it may try. */
  lockedFor(address: string, now: number): number {
    const r = this.#current(address, now);
    return r ? Math.max(0, r.lockedUntil - now) : 0;
  }

  /** A wrong proof from `address`: its failures so far and the lockout it now has (0 while failures are free). */
  failed(address: string, now: number): { failures: number; lockedMs: number } {
    const r = this.#current(address, now) ?? { failures: 0, lastFailureAt: now, lockedUntil: 0 };
    r.failures++;
    r.lastFailureAt = now;
    const over = r.failures - this.#free;
    // 2^over overflows to Infinity long after maxMs is reached; min() keeps it finite.
    const lockedMs = over > 0 ? Math.min(this.#maxMs, this.#baseMs * 2 ** (over - 1)) : 0;
    r.lockedUntil = now + lockedMs;
    this.#records.delete(address);
    this.#records.set(address, r);
    while (this.#records.size > this.#maxAddresses) this.#records.delete(this.#records.keys().next().value!);
    return { failures: r.failures, lockedMs };
  }

  /** A right proof: the address starts afresh. */
  succeeded(address: string): void {
    this.#records.delete(address);
  }

  #current(address: string, now: number): Record | undefined {
    const r = this.#records.get(address);
    if (r && now - r.lastFailureAt > this.#forgetMs && now >= r.lockedUntil) {
      this.#records.delete(address);
      return undefined;
    }
    return r;
  }
}
