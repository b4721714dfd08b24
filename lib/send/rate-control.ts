/**
 * What a viewer says about its path in a report: cumulative counters for the session,
 * plus the trend of its one-way delay over the last interval (lib/receive/path-meter.ts).
 */
export interface PathReport {
  /** Bytes of datagrams that reached the viewer (whole datagrams, header included). */
  bytesReceived: number;
  /** Datagrams that reached the viewer. */
  datagramsReceived: number;
  /** Datagrams missing inside frames the viewer saw (gaps in fragment numbers). */
  datagramsLost: number;
  /** Slope of (arrival − capture time) over the interval's frames, µs per second; > 0: a queue grows. */
  delayTrendUsPerS: number;
  /** Frames the trend was fitted over; fewer than MIN_TREND_SAMPLES means "no opinion". */
  delaySamples: number;
  /** The standing queue on the path, ms (lib/receive/path-meter.ts); absent from a viewer that does not measure it. */
  queueDelayMs?: number;
}

/** What the server handed to the socket for this viewer so far (cumulative, same units as PathReport). */
export interface SentTotals {
  bytes: number;
  datagrams: number;
}

/** Limits of one viewer's estimate. */
export interface RateControlOptions {
  /** The lowest rate, bytes/s: what the smallest layer needs; a silent viewer decays to it. */
  floorBytesPerS: number;
  /** The highest rate, bytes/s: the full layer's; no report can ask for more. */
  ceilingBytesPerS: number;
  /** Where the estimate starts; default the ceiling, so a viewer on a free link sees no change. */
  startBytesPerS?: number;
  /** A standing queue at least this long (ms) is congestion; default STANDING_QUEUE_MS. */
  standingQueueMs?: number;
}

/** What one report did to the estimate. */
export type RateVerdict =
  | { kind: "early" }
  | { kind: "refused"; reason: string }
  | { kind: "decrease"; cause: "delay" | "loss"; bytesPerS: number }
  | { kind: "hold"; cause: "random-loss" | "draining" | "quiet" | "queue" }
  | { kind: "increase"; bytesPerS: number };

/**
 * A standing queue at least this long, ms, is congestion: the path holds more than it
 * carries. Below it, loss is random (radio, a busy switch, a firewall's statistics) and
 * is repair's to mend, not a reason to send less. Above what a busy host adds to every
 * frame of an interval, below the 50 ms a shaper's or a router's queue typically holds.
 */
export const STANDING_QUEUE_MS = 12;
/** A queue of this fraction of a standing one holds the estimate where it is: the path is full. */
export const QUEUE_STARTING = 1 / 3;
/** Fewer frames than this in an interval give no usable delay trend. */
export const MIN_TREND_SAMPLES = 3;
/** A one-way delay rising faster than this (µs per s) is a queue building: overuse. */
export const OVERUSE_US_PER_S = 5_000;
/** Rising at least this much, together with loss, is congestion too. */
export const RISING_US_PER_S = 1_000;
/** Falling faster than this: a queue is draining; hold until it has. */
export const DRAINING_US_PER_S = -5_000;
/** Loss up to this fraction with a flat delay counts as random (radio, a busy switch): keep the rate. */
export const RANDOM_LOSS = 0.02;
/** Above this, loss is congestion whatever the delay does (a full drop-tail buffer keeps delay flat). */
export const HEAVY_LOSS = 0.1;
/** On congestion the estimate goes to this fraction of what actually arrived. */
export const DECREASE_FACTOR = 0.85;
/** Step up per second in the first clear second after a congestion; triples each clear second after. */
export const FIRST_INCREASE = 0.05;
/** Largest step up per second: doubling, like a TCP slow start probing a path that has cleared. */
export const MAX_INCREASE = 1;
/** Reports closer together than this are ignored, so a flood of reports cannot ramp the rate. */
export const MIN_REPORT_INTERVAL_MS = 250;
/** A viewer silent for this long is decayed towards the floor. */
export const SILENCE_MS = 2_500;
/** Halving time of a silent viewer's estimate. */
export const SILENT_HALVING_MS = 1_000;
/** A delay trend beyond ± this (µs per s: the delay changing 10 s per second) is not a measurement. */
export const MAX_TREND_US_PER_S = 10_000_000;
/** A standing queue beyond this (ms) is not a measurement. */
export const MAX_QUEUE_MS = 60_000;
/** Sent intervals smaller than this many datagrams say too little about loss. */
const MIN_DATAGRAMS_FOR_LOSS = 10;

/**
 * One unicast viewer's available rate, estimated from its reports in the manner of
 * Google Congestion Control (delay gradient plus loss): a rising one-way delay, or loss
 * together with a rising delay, or heavy loss, is congestion and the estimate drops at
 * once to DECREASE_FACTOR × the rate that actually arrived; a flat delay with light
 * loss is random loss and keeps the rate (repair is not this class's job); a clear path
 * steps the estimate up, slowly just after a congestion and faster each clear second,
 * so a path that cleared is found again within seconds without overshooting a steady
 * bottleneck by much. Loss is the larger of what the viewer reports and what the
 * server can prove (sent minus received), so a viewer claiming a clear path while
 * receiving less than it was sent is held to what it receives.
 *
 * A viewer that measures its standing queue (`queueDelayMs`) is judged by it instead
 * (LEDBAT's queuing delay): a queue of `standingQueueMs` or more is congestion; loss
 * under HEAVY_LOSS without one is random and the estimate goes on rising, so a lossy
 * but free path keeps its rate and its losses are repaired. Measured in namespaces: 2 %
 * random loss with a host's jitter in the delay trend was taken for congestion and cost
 * a viewer frames skipped on top of the frames lost. Pure: driven by `(report, sent, now)`.
 */
export class RateEstimator {
  #rate: number;
  #floor: number;
  #ceiling: number;
  readonly #standingQueueMs: number;
  /** Counters at the last accepted report; the session's start (all zero) before the first. */
  #last: { at: number; report: PathReport; sent: SentTotals };
  /** Since when the path has been clear: the step up grows with the time, not the number of reports. */
  #clearSince: number;
  #lastHeardAt: number;
  #decayedAt: number;
  /** Reports refused as impossible or absurd, by reason. */
  readonly refused = { backwards: 0, moreThanSent: 0, absurd: 0 };

  constructor(opts: RateControlOptions, nowMs: number) {
    if (!(opts.floorBytesPerS > 0) || !(opts.ceilingBytesPerS >= opts.floorBytesPerS)) {
      throw new RangeError(`rate limits ${opts.floorBytesPerS}..${opts.ceilingBytesPerS} B/s: expected 0 < floor <= ceiling`);
    }
    this.#floor = opts.floorBytesPerS;
    this.#ceiling = opts.ceilingBytesPerS;
    this.#standingQueueMs = opts.standingQueueMs ?? STANDING_QUEUE_MS;
    this.#rate = this.#clamp(opts.startBytesPerS ?? opts.ceilingBytesPerS);
    this.#lastHeardAt = nowMs;
    this.#decayedAt = nowMs;
    this.#clearSince = nowMs;
    this.#last = { at: nowMs, report: { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 }, sent: { bytes: 0, datagrams: 0 } };
  }

  /** The estimate, bytes per second, within floor..ceiling. */
  get bytesPerS(): number {
    return this.#rate;
  }

  /** True while the estimate is below the ceiling: pace this viewer at `bytesPerS`. */
  get limited(): boolean {
    return this.#rate < this.#ceiling;
  }

  /** The full layer's rate changed (measured bytes per frame × fps); the estimate stays below it. */
  setCeiling(bytesPerS: number): void {
    if (!(bytesPerS > 0)) return;
    const wasAtCeiling = this.#rate >= this.#ceiling;
    this.#ceiling = Math.max(this.#floor, bytesPerS);
    // A viewer that had the whole layer keeps it when the layer grows (a busier picture).
    this.#rate = wasAtCeiling ? this.#ceiling : this.#clamp(this.#rate);
  }

  /**
   * A report arrived; `sent` is what the server has sent this viewer since the session
   * began (when this estimator was made), in the same units as the report's counters.
   */
  report(r: PathReport, sent: SentTotals, nowMs: number): RateVerdict {
    const bad = this.#check(r, sent);
    if (bad) return bad;
    const last = this.#last;
    const dtMs = nowMs - last.at;
    if (dtMs < MIN_REPORT_INTERVAL_MS) return { kind: "early" };
    this.#last = { at: nowMs, report: { ...r }, sent: { ...sent } };
    this.#heard(nowMs);
    const seconds = dtMs / 1000;
    const recvBytes = r.bytesReceived - last.report.bytesReceived;
    const recvGrams = r.datagramsReceived - last.report.datagramsReceived;
    const lostGrams = r.datagramsLost - last.report.datagramsLost;
    const sentBytes = sent.bytes - last.sent.bytes;
    const sentGrams = sent.datagrams - last.sent.datagrams;
    const received = recvBytes / seconds;
    // Loss the server can prove: what it sent and the viewer did not receive. Datagrams
    // still in flight at a report move between intervals, which is why light loss is
    // tolerated below; a viewer that under-reports its loss cannot hide this part.
    const shortfall = sentGrams >= MIN_DATAGRAMS_FOR_LOSS ? Math.max(0, 1 - recvBytes / sentBytes) : 0;
    const reported = recvGrams + lostGrams >= MIN_DATAGRAMS_FOR_LOSS ? lostGrams / (recvGrams + lostGrams) : 0;
    const loss = Math.max(shortfall, reported);
    const trend = r.delaySamples >= MIN_TREND_SAMPLES ? r.delayTrendUsPerS : 0;

    if (r.queueDelayMs !== undefined) {
      // The viewer measures the queue itself: loss without one is random, and a delay
      // trend without one is a host's jitter, not a path's.
      if (loss > HEAVY_LOSS) return this.#decrease("loss", received, nowMs);
      if (r.queueDelayMs >= this.#standingQueueMs) {
        if (trend < DRAINING_US_PER_S) {
          this.#clearSince = nowMs;
          return { kind: "hold", cause: "draining" };
        }
        return this.#decrease("delay", received, nowMs);
      }
      // A queue that is starting: the path is full, a step up would overshoot it.
      if (r.queueDelayMs >= this.#standingQueueMs * QUEUE_STARTING) return { kind: "hold", cause: "queue" };
      return this.#increase(seconds, nowMs);
    }
    if (trend > OVERUSE_US_PER_S) return this.#decrease("delay", received, nowMs);
    if (loss > HEAVY_LOSS) return this.#decrease("loss", received, nowMs);
    if (loss > RANDOM_LOSS && trend > RISING_US_PER_S) return this.#decrease("loss", received, nowMs);
    if (trend < DRAINING_US_PER_S) {
      this.#clearSince = nowMs;
      return { kind: "hold", cause: "draining" };
    }
    if (loss > RANDOM_LOSS) return { kind: "hold", cause: "random-loss" };
    return this.#increase(seconds, nowMs);
  }

  /** A clear interval of `seconds`: a step up, small just after a congestion, larger each clear second. */
  #increase(seconds: number, nowMs: number): RateVerdict {
    if (this.#rate >= this.#ceiling) return { kind: "hold", cause: "quiet" };
    const clearSeconds = Math.max(0, Math.floor((nowMs - this.#clearSince) / 1000) - 1);
    const step = Math.min(MAX_INCREASE, FIRST_INCREASE * 3 ** clearSeconds);
    this.#rate = this.#clamp(this.#rate * (1 + step) ** Math.min(seconds, 2));
    return { kind: "increase", bytesPerS: this.#rate };
  }

  /** Time passes; a viewer that stopped reporting decays towards the floor. Call about once a second. */
  tick(nowMs: number): void {
    if (nowMs - this.#lastHeardAt < SILENCE_MS) return;
    const from = Math.max(this.#decayedAt, this.#lastHeardAt + SILENCE_MS);
    if (nowMs <= from) return;
    this.#rate = this.#clamp(this.#rate * 0.5 ** ((nowMs - from) / SILENT_HALVING_MS));
    this.#decayedAt = nowMs;
    this.#clearSince = nowMs;
  }

  #heard(nowMs: number): void {
    this.#lastHeardAt = nowMs;
    this.#decayedAt = nowMs;
  }

  #decrease(cause: "delay" | "loss", received: number, nowMs: number): RateVerdict {
    // What arrived is the path's proven rate; halve when nothing did (a path gone dark).
    const target = received > 0 ? DECREASE_FACTOR * received : this.#rate / 2;
    this.#rate = this.#clamp(Math.min(this.#rate, target));
    this.#clearSince = nowMs;
    return { kind: "decrease", cause, bytesPerS: this.#rate };
  }

  /** Refuses a report no honest viewer can send: it never moves the estimate, and is counted. */
  #check(r: PathReport, sent: SentTotals): RateVerdict | null {
    const values = [r.bytesReceived, r.datagramsReceived, r.datagramsLost, r.delaySamples];
    const queueOk = r.queueDelayMs === undefined || (Number.isFinite(r.queueDelayMs) && r.queueDelayMs >= 0 && r.queueDelayMs <= MAX_QUEUE_MS);
    if (!values.every((v) => Number.isSafeInteger(v) && v >= 0) || !Number.isFinite(r.delayTrendUsPerS) || Math.abs(r.delayTrendUsPerS) > MAX_TREND_US_PER_S || !queueOk) {
      this.refused.absurd++;
      return { kind: "refused", reason: "absurd values" };
    }
    // Only what was received is bounded by what was sent. A viewer counts as lost the
    // missing datagrams of every frame it saw, those the server never sent included (the
    // rest of a frame cut short when its socket or the next frame would not wait): on a
    // full link an honest count passes what was sent, and refusing it kept such viewers
    // at the full rate (8 viewers on 100 Mbit/s: every report refused, 1-4 fps each).
    // Claiming more loss only slows the claimant's own delivery.
    if (r.bytesReceived > sent.bytes || r.datagramsReceived > sent.datagrams) {
      this.refused.moreThanSent++;
      return { kind: "refused", reason: "more than was sent" };
    }
    const last = this.#last.report;
    if ((r.bytesReceived < last.bytesReceived || r.datagramsReceived < last.datagramsReceived || r.datagramsLost < last.datagramsLost)) {
      this.refused.backwards++;
      return { kind: "refused", reason: "counters went backwards" };
    }
    return null;
  }

  #clamp(v: number): number {
    return Math.min(this.#ceiling, Math.max(this.#floor, v));
  }
}
