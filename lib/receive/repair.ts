import { entriesFor, MAX_REPAIR_ENTRIES, type RepairEntry } from "../wire/repair.ts";
import { seqAdd, seqDiff } from "../wire/seq.ts";

/** How long the live view waits for a repair beyond the moment the frame would have been complete without loss (a LAN round trip is well under 1 ms). */
export const DEFAULT_MAX_DELAY_MS = 5;
/** How long the recorder waits for a frame the live view gave up. */
export const DEFAULT_RECORD_DELAY_MS = 500;
/** Silence after which a frame's missing tail is taken as lost (its last datagrams, nothing after them to show the gap). */
export const DEFAULT_STALL_MS = 3;
/** Round trip assumed before any is measured. */
export const DEFAULT_INITIAL_RTT_MS = 2;
/** Shortest wait before asking again for the same datagram. */
export const DEFAULT_MIN_RETRY_MS = 1;
/** A datagram asked for again waits twice as long each time, up to 2^this retransmission timeouts. */
export const MAX_BACKOFF_DOUBLINGS = 6;
/** Frames followed at once; one more gives up the oldest. At 30 fps, 0.5 s is 15 frames. */
export const DEFAULT_MAX_TRACKED = 64;
/** A frame number this far ahead of the newest means a new numbering (restart, long outage): start over. */
export const RESYNC_DISTANCE = 1024;

/** Tuning of a RepairTracker; every field has a default above. */
export interface RepairOptions {
  maxDelayMs?: number;
  /** 0: no recorder, so nothing waits past maxDelayMs. */
  recordDelayMs?: number;
  stallMs?: number;
  initialRttMs?: number;
  minRetryMs?: number;
  maxTracked?: number;
}

/** What a datagram tells the tracker (its header, after authentication). */
export interface ArrivedDatagram {
  frameNumber: number;
  fragmentIndex: number;
  fragmentCount: number;
}

/** Why a frame was given up. */
export type GiveUpReason = "deadline" | "gone" | "skipped" | "evicted" | "resync";

/** What the viewer should do now; every array may be empty. */
export interface RepairOutput {
  /** Repair messages to send, each at most MAX_REPAIR_ENTRIES entries. */
  requests: RepairEntry[][];
  /** Frames complete in time for the live view (with or without repair), in completion order. */
  live: number[];
  /** Frames the live view stops waiting for now (shown without them); each ends later in `recordOnly` or `givenUp`. */
  liveMissed: number[];
  /** Frames complete after the live view gave up but in time for the recorder. */
  recordOnly: number[];
  /** Frames given up for good. */
  givenUp: { frameNumber: number; reason: GiveUpReason }[];
}

/** Cumulative accounting; live + recordOnly + givenUp counts every frame the tracker ever followed once it is settled. */
export interface RepairStats {
  framesLive: number;
  /** Of framesLive, those that needed a repair. */
  framesRepairedLive: number;
  framesRecordOnly: number;
  framesGivenUp: number;
  /** Frames asked for that the server never sent this viewer (skipped for its path): settled, not given up. */
  framesSkipped: number;
  /** Fragment indexes asked for (each ask counts, repeats included). */
  datagramsRequested: number;
  /** Asked-for datagrams that arrived. */
  datagramsRepaired: number;
  requestMessages: number;
  /** Datagrams for frames already settled, or duplicates. */
  datagramsLate: number;
  /** Datagrams still missing from frames given up (1 for a frame lost whole). */
  datagramsUnrepaired: number;
}

interface Tracked {
  frameNumber: number;
  /** Unknown until one of its datagrams arrives (a frame lost whole). */
  count: number | null;
  seen: Set<number>;
  highest: number;
  firstAt: number;
  lastAt: number;
  /**
   * When its first sends were over (its last index arrived, a later frame started, or
   * it went quiet): the moment it would have been complete without loss, and where
   * its deadlines run from.
   */
  endAt: number | null;
  /** A later frame started, or it stalled: every index not seen is missing. */
  closed: boolean;
  askedAt: Map<number, number>;
  /** Indexes asked more than once: their round trip is ambiguous (Karn); the value is how many times. */
  reasked: Map<number, number>;
  liveMissed: boolean;
  repaired: boolean;
  /** The server answered gone: no more asking, only waiting until the deadlines. */
  gone: boolean;
  /** A parity of it arrived. */
  parity: boolean;
}

/**
 * The viewer's side of loss repair (docs/protocol.md §2.14): notices the datagrams a
 * frame is missing (a gap before a later index, a later frame started, or a frame
 * that went quiet), asks for exactly those, batched, at most once per round trip
 * each, and settles every frame exactly once: complete for the live view, complete
 * for the recorder only, or given up. Pure: driven by `(input, now)` in ms; the
 * caller sends what `poll` returns.
 */
export class RepairTracker {
  readonly maxDelayMs: number;
  readonly recordDelayMs: number;
  readonly stallMs: number;
  readonly minRetryMs: number;
  readonly maxTracked: number;
  readonly #frames = new Map<number, Tracked>();
  #newest: number | null = null;
  #srtt: number;
  #rttvar: number;
  #rttMeasured = false;
  /** The last frame that ended carried parity: wait for a frame's parities before asking. */
  #expectParity = false;
  #out: RepairOutput = empty();
  readonly stats: RepairStats = {
    framesLive: 0, framesRepairedLive: 0, framesRecordOnly: 0, framesGivenUp: 0, framesSkipped: 0,
    datagramsRequested: 0, datagramsRepaired: 0, requestMessages: 0, datagramsLate: 0, datagramsUnrepaired: 0,
  };

  constructor(opts: RepairOptions = {}) {
    this.maxDelayMs = opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.recordDelayMs = opts.recordDelayMs ?? DEFAULT_RECORD_DELAY_MS;
    this.stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    this.minRetryMs = opts.minRetryMs ?? DEFAULT_MIN_RETRY_MS;
    this.maxTracked = opts.maxTracked ?? DEFAULT_MAX_TRACKED;
    this.#srtt = opts.initialRttMs ?? DEFAULT_INITIAL_RTT_MS;
    this.#rttvar = this.#srtt / 2;
    for (const [k, v] of Object.entries({ maxDelayMs: this.maxDelayMs, recordDelayMs: this.recordDelayMs, stallMs: this.stallMs, minRetryMs: this.minRetryMs, initialRttMs: this.#srtt })) {
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`repair ${k}=${v}: expected a finite number >= 0`);
    }
    if (!Number.isInteger(this.maxTracked) || this.maxTracked < 1) throw new RangeError(`repair maxTracked=${this.maxTracked}: expected an integer >= 1`);
  }

  /** The smoothed round trip, ms. */
  get rttMs(): number {
    return this.#srtt;
  }

  /** How long before the same datagram is asked for again. */
  get retryMs(): number {
    return Math.max(this.minRetryMs, this.#srtt + 2 * this.#rttvar);
  }

  /** Frames followed now (incomplete). */
  get tracked(): number {
    return this.#frames.size;
  }

  /** A round trip measured elsewhere (heartbeat echo), ms. */
  rttSample(ms: number): void {
    if (!(Number.isFinite(ms) && ms >= 0)) return;
    if (!this.#rttMeasured) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
      this.#rttMeasured = true;
      return;
    }
    // RFC 6298's smoothing.
    this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - ms);
    this.#srtt = 0.875 * this.#srtt + 0.125 * ms;
  }

  /** A datagram arrived (first sent, resent, or rebuilt from parity). */
  datagram(d: ArrivedDatagram, now: number): void {
    const fn = d.frameNumber;
    if (this.#newest === null || seqDiff(fn, this.#newest) > RESYNC_DISTANCE || seqDiff(fn, this.#newest) < -RESYNC_DISTANCE) {
      this.#resync(fn);
    }
    const newest = this.#newest!;
    const ahead = seqDiff(fn, newest);
    if (ahead > 0) {
      // Frames between the newest and this one were lost whole; earlier frames are closed.
      for (const f of this.#frames.values()) this.#close(f, now);
      for (let k = 1; k < ahead; k++) {
        const lost = this.#track(seqAdd(newest, k), null, now);
        lost.closed = true;
        lost.endAt = now;
      }
      this.#newest = fn;
    }
    let f = this.#frames.get(fn);
    if (!f) {
      if (ahead <= 0 && !this.#isFreshNewest(fn, ahead)) {
        this.stats.datagramsLate++;
        return;
      }
      f = this.#track(fn, d.fragmentCount, now);
    }
    if (f.count === null) f.count = d.fragmentCount;
    if (d.fragmentCount !== f.count || d.fragmentIndex >= f.count || f.seen.has(d.fragmentIndex)) {
      this.stats.datagramsLate++;
      return;
    }
    f.seen.add(d.fragmentIndex);
    f.lastAt = now;
    const asked = f.askedAt.get(d.fragmentIndex);
    if (asked !== undefined) {
      this.stats.datagramsRepaired++;
      f.repaired = true;
      if (!f.reasked.has(d.fragmentIndex)) this.rttSample(now - asked);
      f.askedAt.delete(d.fragmentIndex);
    }
    if (d.fragmentIndex > f.highest) f.highest = d.fragmentIndex;
    // With parity on the way its first sends end with its last parity, not its last datagram.
    if (d.fragmentIndex === f.count - 1 && !this.#expectParity) f.endAt ??= now;
    if (f.seen.size === f.count) this.#complete(f, now);
  }

  /**
   * A parity datagram of the frame arrived (lib/wire/fec.ts). Parities follow a
   * frame's datagrams, so while a stream carries them the tracker waits for a frame's
   * last parity (or its silence) before asking for what is missing: most losses are
   * rebuilt from parity without a round trip.
   */
  parity(p: { frameNumber: number; parityIndex: number; stride: number }, now: number): void {
    this.#expectParity = true;
    const f = this.#frames.get(p.frameNumber);
    if (!f) return;
    f.parity = true;
    f.lastAt = now;
    if (p.parityIndex === p.stride - 1) this.#close(f, now);
  }

  /**
   * The server will not repair these frames. `skipped`: it never sent them to this
   * viewer (its path was full), so they are no loss to repair: settled at once, not
   * counted as given up. Otherwise (no longer held, over the budget) it stops being
   * asked for, but is waited for until its deadlines as before: its datagrams may only
   * be late, still on their way, and then it completes (measured: a co-viewer forging
   * frame numbers ahead of the stream made the viewer ask for real frames in flight,
   * spend its budget on them, and give up a third of its recording for the gone answers).
   */
  gone(frames: readonly number[], skipped = false): void {
    for (const fn of frames) {
      const f = this.#frames.get(fn);
      if (!f) continue;
      if (skipped) this.#giveUp(f, "skipped");
      else f.gone = true;
    }
  }

  /**
   * Everything due by `now`: stalls noticed, deadlines passed, requests to send.
   * Call after each batch of input and on a timer (at `nextDueMs`).
   */
  poll(now: number): RepairOutput {
    const ask: RepairEntry[] = [];
    const retry = this.retryMs;
    for (const f of [...this.#frames.values()]) {
      if (!f.closed && now - f.lastAt >= this.#stallAfter(f)) this.#close(f, now);
      if (f.endAt !== null) {
        const waited = now - f.endAt;
        if (!f.liveMissed && waited > this.maxDelayMs) {
          f.liveMissed = true;
          this.#out.liveMissed.push(f.frameNumber);
        }
        if (waited > Math.max(this.maxDelayMs, this.recordDelayMs)) {
          this.#giveUp(f, f.gone ? "gone" : "deadline");
          continue;
        }
      }
      const missing: number[] = [];
      for (const i of this.#missing(f)) {
        const at = f.askedAt.get(i);
        if (at !== undefined && now - at < this.#backoff(f, i)) continue;
        if (at !== undefined) f.reasked.set(i, (f.reasked.get(i) ?? 0) + 1);
        f.askedAt.set(i, now);
        missing.push(i);
      }
      if (missing.length > 0) ask.push(...entriesFor(f.frameNumber, missing));
    }
    this.stats.datagramsRequested += ask.reduce((n, e) => n + 1 + popcount(e.mask), 0);
    for (let k = 0; k < ask.length; k += MAX_REPAIR_ENTRIES) this.#out.requests.push(ask.slice(k, k + MAX_REPAIR_ENTRIES));
    this.stats.requestMessages += Math.ceil(ask.length / MAX_REPAIR_ENTRIES);
    const out = this.#out;
    this.#out = empty();
    return out;
  }

  /**
   * How frame `fn` was settled since the last poll: "live" or "recordOnly" when its
   * last datagram just completed it, else null. Lets the caller route the frame the
   * reassembler hands out at that very moment.
   */
  settledAs(fn: number): "live" | "recordOnly" | null {
    if (this.#out.live.includes(fn)) return "live";
    if (this.#out.recordOnly.includes(fn)) return "recordOnly";
    return null;
  }

  /** When `poll` next has something to do (a stall, a retry or a deadline), or null when nothing is followed. */
  nextDueMs(): number | null {
    let due: number | null = null;
    const at = (t: number) => {
      due = due === null ? t : Math.min(due, t);
    };
    for (const f of this.#frames.values()) {
      if (!f.closed) at(f.lastAt + this.#stallAfter(f));
      if (f.endAt !== null) at(f.liveMissed ? f.endAt + Math.max(this.maxDelayMs, this.recordDelayMs) : f.endAt + this.maxDelayMs);
      for (const [i, t] of f.askedAt) at(t + this.#backoff(f, i));
    }
    return due;
  }

  /**
   * Silence after which a frame's tail counts as lost: stallMs, or four of its own
   * datagram spacings when the server paces a frame's datagrams further apart.
   */
  #stallAfter(f: Tracked): number {
    const spacing = f.seen.size >= 2 ? (f.lastAt - f.firstAt) / (f.seen.size - 1) : 0;
    return Math.max(this.stallMs, 4 * spacing);
  }

  /**
   * How long after asking for index `i` of `f` to ask again: the retransmission timeout,
   * doubled for each time it was asked already (up to MAX_BACKOFF_DOUBLINGS), as TCP
   * backs off. A datagram that does not come after one round trip is seldom helped by
   * asking every round trip: a frame not made yet (its number seen early, in a
   * stranger's datagram) or a server short of budget would get the same request
   * hundreds of times a second, and each answer that does come spends the viewer's
   * budget on duplicates.
   */
  #backoff(f: Tracked, i: number): number {
    return this.retryMs * 2 ** Math.min(f.reasked.get(i) ?? 0, MAX_BACKOFF_DOUBLINGS);
  }

  /** The frame's indexes known missing now. */
  #missing(f: Tracked): number[] {
    if (f.gone) return [];
    // A frame lost whole: ask for its first datagram, whose header tells the count.
    if (f.count === null) return [0];
    if (!f.closed && this.#expectParity) return [];
    const end = f.closed ? f.count : f.highest;
    const out: number[] = [];
    for (let i = 0; i < end; i++) if (!f.seen.has(i)) out.push(i);
    return out;
  }

  /** Whether a datagram of untracked frame `fn` (not ahead of the newest) is the newest frame itself starting. */
  #isFreshNewest(fn: number, ahead: number): boolean {
    return ahead === 0 && !this.#settled.has(fn);
  }

  /** Frame numbers settled recently, so a late duplicate does not start them again. */
  readonly #settled = new Set<number>();

  #track(fn: number, count: number | null, now: number): Tracked {
    while (this.#frames.size >= this.maxTracked) {
      const oldest = this.#frames.values().next().value!;
      this.#giveUp(oldest, "evicted");
    }
    const f: Tracked = {
      frameNumber: fn, count, seen: new Set(), highest: -1, firstAt: now, lastAt: now, endAt: null,
      closed: false, askedAt: new Map(), reasked: new Map(), liveMissed: false, repaired: false, parity: false, gone: false,
    };
    this.#frames.set(fn, f);
    return f;
  }

  #close(f: Tracked, now: number): void {
    if (f.closed) return;
    f.closed = true;
    // A frame that ended without parity: the stream no longer carries it (FEC turned off).
    if (!f.parity && f.count !== null) this.#expectParity = false;
    f.endAt ??= now;
  }

  #complete(f: Tracked, now: number): void {
    this.#settle(f);
    if (!f.liveMissed && (f.endAt === null || now - f.endAt <= this.maxDelayMs)) {
      this.stats.framesLive++;
      if (f.repaired) this.stats.framesRepairedLive++;
      this.#out.live.push(f.frameNumber);
    } else {
      if (!f.liveMissed) {
        f.liveMissed = true;
        this.#out.liveMissed.push(f.frameNumber);
      }
      this.stats.framesRecordOnly++;
      this.#out.recordOnly.push(f.frameNumber);
    }
  }

  #giveUp(f: Tracked, reason: GiveUpReason): void {
    this.#settle(f);
    if (reason === "skipped") {
      this.stats.framesSkipped++;
    } else {
      this.stats.framesGivenUp++;
      this.stats.datagramsUnrepaired += f.count === null ? 1 : f.count - f.seen.size;
    }
    if (!f.liveMissed) {
      f.liveMissed = true;
      this.#out.liveMissed.push(f.frameNumber);
    }
    this.#out.givenUp.push({ frameNumber: f.frameNumber, reason });
  }

  #settle(f: Tracked): void {
    this.#frames.delete(f.frameNumber);
    this.#settled.add(f.frameNumber);
    // Keep the memory of settled frames bounded: only the recent ones can see late datagrams.
    if (this.#settled.size > 4 * this.maxTracked) {
      const first = this.#settled.values().next().value!;
      this.#settled.delete(first);
    }
  }

  #resync(fn: number): void {
    for (const f of [...this.#frames.values()]) this.#giveUp(f, "resync");
    this.#settled.clear();
    this.#newest = fn;
  }
}

function empty(): RepairOutput {
  return { requests: [], live: [], liveMissed: [], recordOnly: [], givenUp: [] };
}

function popcount(v: number): number {
  let n = 0;
  for (; v; v &= v - 1) n++;
  return n;
}
