import { chooseLayer, ladderStart, layerRate, type LadderOptions, type LadderState, type Layer } from "./layer-ladder.ts";
import { FINISH_TOLERANCE } from "./pacer.ts";
import { RateEstimator, STANDING_QUEUE_MS, type PathReport, type RateVerdict, type SentTotals } from "./rate-control.ts";

/** The lowest estimate, bytes per second (512 kbit/s): a few small frames a second still get through. */
export const DEFAULT_FLOOR_BYTES_PER_S = 64_000;

/**
 * A rising delay trend is taken as a queue on the path only in a report interval that
 * lost at least this share of its datagrams; without loss it is host noise.
 */
export const DELAY_NEEDS_LOSS = 0.01;

/**
 * A viewer that has not reported yet is not taken as silent before this long after it
 * joined: measured on loopback, three viewers starting on a busy 2-core machine sent
 * their first report 3.5 s in, and were moved down a layer for a silence that was not.
 */
export const FIRST_REPORT_GRACE_MS = 10_000;

/** How one viewer is to be sent its frames now. */
export type Pacing = { kind: "free" } | { kind: "rate"; bytesPerS: number };

/**
 * One unicast viewer's adaptive delivery, the estimator and the ladder together: what
 * the server sent it, its path reports, and from them its layer and how to pace it. A
 * viewer whose estimate is at the full layer's rate is "free": sent as today, spread
 * and unpaced, so a free link sees no added latency. Pure: driven by `(input, now)`.
 *
 * The server drives one per unicast session whose hello had CAP_PATH_REPORTS (its
 * welcome then sets WELCOME_PATH_REPORTS): `sent` from the pacer's send with what the
 * socket took, `report` with each report's `path`, `tick` once a second; per frame,
 * `layer` picks the copy to cut and `pacing()` picks `Pacer.enqueue` (free) or
 * `Pacer.offer` (rate), whose skipped frames are the viewer's framesSkipped.
 */
export class ViewerRate {
  estimator: RateEstimator;
  readonly #ladderOpts: LadderOptions;
  #ladder: LadderState;
  #sent: SentTotals = { bytes: 0, datagrams: 0 };
  #startedAt: number;
  /** A report was accepted: from then on a silence is a silence. */
  #reported = false;
  /** The last report the estimator accepted (its counters are cumulative). */
  #lastReport: PathReport = { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 };

  readonly #floorBytesPerS: number;

  /** `layers`: the current ladder, largest first; its first layer's rate is the ceiling. */
  constructor(layers: readonly Layer[], ladder: LadderOptions, nowMs: number, floorBytesPerS = DEFAULT_FLOOR_BYTES_PER_S) {
    this.#startedAt = nowMs;
    this.#ladderOpts = ladder;
    this.#floorBytesPerS = floorBytesPerS;
    this.#ladder = ladderStart(ladder);
    this.estimator = this.#newEstimator(layers, nowMs);
  }

  #newEstimator(layers: readonly Layer[], nowMs: number): RateEstimator {
    const floorBytesPerS = this.#floorBytesPerS;
    const full = layerRate(layers, 0, this.#ladderOpts.fps);
    // Before the full layer is measured nothing limits the viewer: the ceiling is
    // raised to the measured rate by the first report.
    // A paced frame may start up to FINISH_TOLERANCE of an interval behind its
    // predecessor, which the viewer sees as queueing; that much is not congestion.
    const fps = this.#ladderOpts.fps;
    const standingQueueMs = fps > 0 ? Math.max(STANDING_QUEUE_MS, 1.5 * FINISH_TOLERANCE * (1000 / fps)) : STANDING_QUEUE_MS;
    return new RateEstimator({ floorBytesPerS, ceilingBytesPerS: Math.max(floorBytesPerS, full || Number.MAX_SAFE_INTEGER), standingQueueMs }, nowMs);
  }

  /**
   * Starts judging afresh at the full layer, as a new viewer (its transport changed: what
   * a blocked UDP path said is no measure of TCP, nor TCP's of UDP). What was sent and the
   * last report are kept, as the viewer's counters go on.
   */
  restart(layers: readonly Layer[], nowMs: number): void {
    this.#startedAt = nowMs;
    this.#reported = false;
    this.#ladder = ladderStart(this.#ladderOpts);
    this.estimator = this.#newEstimator(layers, nowMs);
  }

  /** Datagrams handed to the socket for this viewer (what the pacer's send took). */
  sent(bytes: number, datagrams: number): void {
    this.#sent = { bytes: this.#sent.bytes + bytes, datagrams: this.#sent.datagrams + datagrams };
  }

  /** What was sent so far this session. */
  get totals(): SentTotals {
    return this.#sent;
  }

  /** The viewer's layer: an index into the ladder, 0 = full. */
  get layer(): number {
    return this.#ladder.layer;
  }

  /**
   * A report with path counters: updates the estimate, then the layer. From a viewer
   * that does not measure its standing queue, a rising delay trend counts only in an
   * interval that also lost datagrams (see DELAY_NEEDS_LOSS).
   */
  report(path: PathReport, layers: readonly Layer[], nowMs: number): RateVerdict {
    const full = layerRate(layers, 0, this.#ladderOpts.fps);
    if (full > 0) this.estimator.setCeiling(full);
    const last = this.#lastReport;
    const lost = path.datagramsLost - last.datagramsLost;
    const seen = lost + path.datagramsReceived - last.datagramsReceived;
    // Measured on loopback on a busy 2-core machine: the viewers' delay trends reached
    // 5-16 ms/s with no datagram lost (event-loop stalls, the smaller layers' encoding
    // time), and every viewer was walked down to the smallest layer. A queue on the path
    // that matters overflows into loss soon after it grows.
    const noQueue = path.queueDelayMs === undefined && path.delayTrendUsPerS > 0 && !(seen > 0 && lost / seen >= DELAY_NEEDS_LOSS);
    const verdict = this.estimator.report(noQueue ? { ...path, delaySamples: 0 } : path, this.#sent, nowMs);
    if (verdict.kind !== "refused" && verdict.kind !== "early") {
      this.#reported = true;
      this.#lastReport = path;
      this.#choose(layers, nowMs);
    }
    return verdict;
  }

  /** Time passes (about once a second): a silent viewer decays, and may move down a layer. */
  tick(layers: readonly Layer[], nowMs: number): void {
    // A viewer that never reports must still decay from the full layer's rate, not from "unmeasured".
    const full = layerRate(layers, 0, this.#ladderOpts.fps);
    if (full > 0) this.estimator.setCeiling(full);
    if (this.#reported || nowMs - this.#startedAt >= FIRST_REPORT_GRACE_MS) this.estimator.tick(nowMs);
    this.#choose(layers, nowMs);
  }

  /** Free (as today) while the estimate is at the full layer's rate, else paced at the estimate. */
  pacing(): Pacing {
    return this.estimator.limited ? { kind: "rate", bytesPerS: this.estimator.bytesPerS } : { kind: "free" };
  }

  #choose(layers: readonly Layer[], nowMs: number): void {
    // At its ceiling the estimate has seen no limit at all: every layer fits, the full one included.
    const estimate = this.estimator.limited ? this.estimator.bytesPerS : Infinity;
    if (layers.length > 0) this.#ladder = chooseLayer(layers, estimate, this.#ladder, nowMs, this.#ladderOpts);
  }
}
