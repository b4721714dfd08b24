import type { Fields, Level } from "./format.ts";

// ---------------------------------------------------------------- one address's lines

/** How many joins and leaves of one address get through, and how often their summary comes. */
export interface ChurnLimit {
  /** Join and leave lines logged as they come in each interval; the rest are counted by kind. */
  burst: number;
  intervalMs: number;
}

/** How many lines about one address get through, and how often its summary comes. */
export interface PerAddressLimit {
  /** WARN and ERROR lines logged as they come in each interval; the rest are held back and counted. */
  burst: number;
  intervalMs: number;
  /** Addresses tracked at once for each kind of line; beyond that, new ones share one count (`client=*`). */
  maxAddresses: number;
  /** Joins and leaves (INFO "client joined" and "client left"); DEFAULT_CHURN when not given. */
  churn?: ChurnLimit;
}

/** A peer joining and leaving in a loop gets 5 such lines, then one summary a second while it keeps on. */
export const DEFAULT_CHURN: ChurnLimit = { burst: 5, intervalMs: 1000 };

/** A peer reconnecting in a loop gets 5 lines, then one summary per 10 s. */
export const DEFAULT_PER_ADDRESS: PerAddressLimit = { burst: 5, intervalMs: 10_000, maxAddresses: 1024, churn: DEFAULT_CHURN };

/** One log call, kept for a summary. */
export interface LogEvent {
  level: Level;
  part: string;
  message: string;
  fields: Fields;
  /** Logged with Logger.security. */
  security?: boolean;
}

/** The last held-back WARN or ERROR event of an interval and how many lines it stands for. */
export interface HeldSummary {
  kind: "repeat";
  /** The address, or `*` for those that came when the table was full. */
  key: string;
  event: LogEvent;
  held: number;
}

/** The joins and leaves of one address held back in an interval, counted. */
export interface ChurnSummary {
  kind: "churn";
  /** The address, or `*` for those that came when the table was full. */
  key: string;
  /** The part of the last line held. */
  part: string;
  joined: number;
  left: number;
  /** Lines held per viewer kind (`udp` for lancam viewers, whose lines have no kind), in order of first seen. */
  kinds: Map<string, number>;
  /** The interval's length. */
  seconds: number;
}

/** What due() hands back: one line to write for each. */
export type Summary = HeldSummary | ChurnSummary;

/** Key for the addresses that came after the table was full. */
export const OVERFLOW_KEY = "*";

/** Distinct viewer kinds counted in one churn summary; more are counted as `other`. */
const MAX_KINDS = 8;

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

/** "joined" or "left" for a join or leave line (INFO "client joined" / "client left"); null for any other. */
export function churnOf(event: LogEvent): "joined" | "left" | null {
  if (event.level !== "INFO") return null;
  return event.message === "client joined" ? "joined" : event.message === "client left" ? "left" : null;
}

interface Window {
  endsAt: number;
  logged: number;
  held: number;
  last: LogEvent | null;
  /** Churn lane only: held joins and leaves, and held lines per kind. */
  joined: number;
  left: number;
  kinds: Map<string, number> | null;
}

/**
 * One kind of line's windows. Every window of a lane lasts the lane's interval and is
 * (re)inserted when it opens, so insertion order is also closing order: the ones over
 * are always at the front.
 */
class Lane {
  readonly windows = new Map<string, Window>();

  constructor(
    readonly kind: "repeat" | "churn",
    readonly burst: number,
    readonly intervalMs: number,
    readonly maxAddresses: number,
  ) {}

  admit(key: string, event: LogEvent, now: number): boolean {
    let w = this.windows.get(key);
    if (!w) {
      if (this.windows.size >= this.maxAddresses && key !== OVERFLOW_KEY) return this.admit(OVERFLOW_KEY, event, now);
      w = this.#open(key, now, 0);
    }
    if (w.logged < this.burst) {
      w.logged++;
      return true;
    }
    // A line that is itself a summary (similar=N) stands for N more.
    const already = event.fields.similar;
    w.held += 1 + (typeof already === "number" && already > 0 ? already : 0);
    w.last = event;
    if (this.kind === "churn") {
      if (churnOf(event) === "joined") w.joined++;
      else w.left++;
      const kinds = (w.kinds ??= new Map());
      const given = event.fields.kind;
      let kind = typeof given === "string" && given !== "" ? given : "udp";
      if (!kinds.has(kind) && kinds.size >= MAX_KINDS) kind = "other";
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    return false;
  }

  #open(key: string, now: number, logged: number): Window {
    const w: Window = { endsAt: now + this.intervalMs, logged, held: 0, last: null, joined: 0, left: 0, kinds: null };
    this.windows.set(key, w);
    return w;
  }

  /** Closes the windows over by `now`, handing each that held lines to `out`. */
  expire(now: number, out: Summary[]): void {
    const still: string[] = [];
    for (const [key, w] of this.windows) {
      if (now < w.endsAt) break;
      this.windows.delete(key);
      if (w.held === 0) continue;
      if (this.kind === "repeat") {
        out.push({ kind: "repeat", key, event: w.last!, held: w.held });
        continue;
      }
      out.push({ kind: "churn", key, part: w.last!.part, joined: w.joined, left: w.left, kinds: w.kinds ?? new Map(), seconds: this.intervalMs / 1000 });
      still.push(key);
    }
    // An address still churning gets no fresh burst: its next second starts held, so a
    // loop costs one line a second. One quiet interval and it has its burst again.
    // Opened at `now`, after every window left, so the order stays the closing order.
    for (const key of still) this.#open(key, now, this.burst);
  }

  /** When the first window with held lines ends; null when none holds any. */
  nextSummaryAt(): number | null {
    for (const w of this.windows.values()) if (w.held > 0) return w.endsAt;
    return null;
  }
}

/**
 * Holds back repeated lines about one address. WARN and ERROR lines: each address gets
 * `burst` per interval (from its first line), the rest are counted, and when the interval
 * ends the last one held comes out once with the count. Joins and leaves: each address
 * gets `churn.burst` per `churn.intervalMs`, the rest come out as one line of counts per
 * interval for as long as it keeps on. Other lines are never held. A pure state machine
 * on the caller's clock; memory is bounded by `maxAddresses` per kind of line (plus the
 * shared overflow entries).
 */
export class AddressLimiter {
  readonly #repeat: Lane;
  readonly #churn: Lane;
  /** Summaries of windows already closed, not yet taken by due(). */
  readonly #closed: Summary[] = [];

  constructor(readonly limit: PerAddressLimit = DEFAULT_PER_ADDRESS) {
    const churn = limit.churn ?? DEFAULT_CHURN;
    this.#repeat = new Lane("repeat", limit.burst, limit.intervalMs, limit.maxAddresses);
    this.#churn = new Lane("churn", churn.burst, churn.intervalMs, limit.maxAddresses);
  }

  /** True when the line goes out now; false when it is held back (and counted). */
  admit(key: string, event: LogEvent, now: number): boolean {
    this.#expire(now);
    const lane = churnOf(event) ? this.#churn : event.level === "WARN" || event.level === "ERROR" ? this.#repeat : null;
    return lane ? lane.admit(key, event, now) : true;
  }

  #expire(now: number): void {
    this.#repeat.expire(now, this.#closed);
    this.#churn.expire(now, this.#closed);
  }

  /** Summaries of the intervals over by `now` that held lines back. */
  due(now: number): Summary[] {
    this.#expire(now);
    return this.#closed.splice(0);
  }

  /** When the first interval with held lines ends; null when nothing is held. */
  nextSummaryAt(): number | null {
    if (this.#closed.length > 0) return -Infinity;
    const a = this.#repeat.nextSummaryAt();
    const b = this.#churn.nextSummaryAt();
    return a === null ? b : b === null ? a : Math.min(a, b);
  }

  /** Addresses tracked now, both kinds of line together. */
  get size(): number {
    return this.#repeat.windows.size + this.#churn.windows.size;
  }
}
