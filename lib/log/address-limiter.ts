import type { Fields, Level } from "./format.ts";

// ---------------------------------------------------------------- one address's lines

/** How many WARN and ERROR lines about one address get through, and how often its summary comes. */
export interface PerAddressLimit {
  /** Lines logged as they come in each interval; the rest are held back and counted. */
  burst: number;
  intervalMs: number;
  /** Addresses tracked at once; beyond that, new ones share one count (`client=*`). */
  maxAddresses: number;
}

/** A peer reconnecting in a loop gets 5 lines, then one summary per 10 s. */
export const DEFAULT_PER_ADDRESS: PerAddressLimit = { burst: 5, intervalMs: 10_000, maxAddresses: 1024 };

/** One log call, kept for a summary. */
export interface LogEvent {
  level: Level;
  part: string;
  message: string;
  fields: Fields;
  /** Logged with Logger.security. */
  security?: boolean;
}

/** The last held-back event of an interval and how many lines it stands for. */
export interface HeldSummary {
  /** The address, or `*` for those that came when the table was full. */
  key: string;
  event: LogEvent;
  held: number;
}

interface Window {
  endsAt: number;
  logged: number;
  held: number;
  last: LogEvent | null;
}

/** Key for the addresses that came after the table was full. */
export const OVERFLOW_KEY = "*";

/**
 * The address a `client=` value names, without its port: each connection of one peer
 * has another port, and it is the peer that is repeating itself.
 */
export function addressKey(client: string): string {
  const v4 = /^(.*\.\d+):(\d+|\?)$/.exec(client);
  if (v4) return v4[1]!;
  const v6 = /^\[(.*)\]:(\d+|\?)$/.exec(client);
  return v6 ? v6[1]! : client;
}

/**
 * Holds back repeated lines about one address: each address gets `burst` lines per
 * interval (from its first line), the rest are counted, and when the interval ends the
 * last one held comes out once with the count. A pure state machine on the caller's clock.
 * Memory is bounded by `maxAddresses` (plus the shared overflow entry).
 */
export class AddressLimiter {
  // Every window lasts intervalMs and is (re)inserted when it opens, so insertion order
  // is also closing order: the ones over are always at the front.
  readonly #windows = new Map<string, Window>();
  /** Summaries of windows already closed, not yet taken by due(). */
  readonly #closed: HeldSummary[] = [];

  constructor(readonly limit: PerAddressLimit = DEFAULT_PER_ADDRESS) {}

  /** True when the line goes out now; false when it is held back (and counted). */
  admit(key: string, event: LogEvent, now: number): boolean {
    this.#expire(now);
    let w = this.#windows.get(key);
    if (!w) {
      if (this.#windows.size >= this.limit.maxAddresses && key !== OVERFLOW_KEY) return this.admit(OVERFLOW_KEY, event, now);
      w = { endsAt: now + this.limit.intervalMs, logged: 0, held: 0, last: null };
      this.#windows.set(key, w);
    }
    if (w.logged < this.limit.burst) {
      w.logged++;
      return true;
    }
    // A line that is itself a summary (similar=N) stands for N more.
    const already = event.fields.similar;
    w.held += 1 + (typeof already === "number" && already > 0 ? already : 0);
    w.last = event;
    return false;
  }

  #expire(now: number): void {
    for (const [key, w] of this.#windows) {
      if (now < w.endsAt) return;
      this.#windows.delete(key);
      if (w.held > 0) this.#closed.push({ key, event: w.last!, held: w.held });
    }
  }

  /** Summaries of the intervals over by `now` that held lines back, oldest first. */
  due(now: number): HeldSummary[] {
    this.#expire(now);
    return this.#closed.splice(0);
  }

  /** When the first interval with held lines ends; null when nothing is held. */
  nextSummaryAt(): number | null {
    if (this.#closed.length > 0) return -Infinity;
    for (const w of this.#windows.values()) if (w.held > 0) return w.endsAt;
    return null;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#windows.size;
  }
}
