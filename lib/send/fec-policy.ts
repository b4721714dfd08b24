import { UserError } from "../errors/user-error.ts";
import type { PathCounters } from "../wire/control.ts";

/** Most parity `--fec=PERCENT` may ask for, and `auto` ever uses: beyond that, retransmission is the cheaper repair. */
export const MAX_FEC_PERCENT = 50;
/** The residual frame loss `auto` aims below, counting FEC alone (retransmission then mends the rest for the recorder). */
export const DEFAULT_TARGET_FRAME_LOSS = 0.005;
/**
 * Most parity `auto` adds, as a share of a frame's datagrams. One XOR parity per
 * group cannot take a 150-datagram frame at 1 % loss below 0.5 % residual for any
 * overhead short of 100 % (two losses in a group grow as the square of its size); at
 * 10 % it turns 78 % of frames needing a repair round trip into about 7 %, and
 * retransmission mends those.
 */
export const DEFAULT_AUTO_MAX_PERCENT = 10;
/** Datagrams an interval must hold before its loss counts (a few frames' worth; fewer say little). */
export const MIN_SAMPLE_DATAGRAMS = 200;
/** Weight of the newest interval in the loss estimate. */
const EWMA_WEIGHT = 0.3;

/** What `--fec` says: no parity, parity chosen from the viewers' loss, or a fixed share. */
export type FecSpec = { kind: "off" } | { kind: "auto" } | { kind: "percent"; percent: number };

/** The `--fec` default: parity only where viewers report loss. */
export const DEFAULT_FEC: FecSpec = { kind: "auto" };

/** A `--fec` value that is none of off, auto or a percentage. */
export class FecSpecError extends UserError {
  override name = "FecSpecError";
}

/** Parses `--fec`: "off", "auto" or a percentage 1..MAX_FEC_PERCENT (a trailing % allowed). Throws FecSpecError. */
export function parseFecSpec(s: string): FecSpec {
  const v = s.trim().toLowerCase();
  if (v === "off") return { kind: "off" };
  if (v === "auto") return { kind: "auto" };
  const m = /^(\d{1,3}(?:\.\d{1,2})?)%?$/.exec(v);
  const percent = m ? Number(m[1]) : Number.NaN;
  if (!(percent > 0 && percent <= MAX_FEC_PERCENT)) {
    throw new FecSpecError(`invalid --fec=${s}: expected off, auto, or a parity percentage above 0 up to ${MAX_FEC_PERCENT} (e.g. 10)`);
  }
  return { kind: "percent", percent };
}

/**
 * The chance that a frame of `n` datagrams protected by interleave `stride` (parity
 * i covering fragments i, i + stride, ...) is still incomplete after FEC alone, when each
 * datagram, parities included, is lost independently with probability `p`: a group
 * of g fragments and its parity is repaired with at most one loss among its g + 1.
 */
export function residualFrameLoss(n: number, stride: number, p: number): number {
  if (stride <= 0) return 1 - (1 - p) ** n;
  let ok = 1;
  for (let i = 0; i < stride; i++) {
    const g = Math.floor((n - 1 - i) / stride) + 1 + 1;
    ok *= (1 - p) ** g + g * p * (1 - p) ** (g - 1);
  }
  return 1 - ok;
}

/**
 * The interleave (parities per frame, 0 = none) `auto` picks for a frame of `n`
 * datagrams at datagram loss `p`: none when the frame already arrives whole often
 * enough, else the fewest parities that bring the residual frame loss below the
 * target, at most `maxPercent` of n (the most allowed when even that falls short).
 */
export function autoStride(n: number, p: number, opts: { targetFrameLoss?: number; maxPercent?: number } = {}): number {
  const target = opts.targetFrameLoss ?? DEFAULT_TARGET_FRAME_LOSS;
  const maxPercent = opts.maxPercent ?? DEFAULT_AUTO_MAX_PERCENT;
  if (!(n >= 1) || !(p > 0)) return 0;
  if (residualFrameLoss(n, 0, p) < target) return 0;
  const most = Math.max(1, Math.min(n, Math.floor((n * maxPercent) / 100)));
  // Residual loss falls as stride grows: the first stride under target is the cheapest.
  for (let s = 1; s <= most; s++) if (residualFrameLoss(n, s, p) < target) return s;
  return most;
}

/** The interleave `spec` gives a frame of `n` datagrams at estimated loss `p`. */
export function strideFor(spec: FecSpec, n: number, p: number): number {
  switch (spec.kind) {
    case "off":
      return 0;
    case "percent":
      return Math.max(1, Math.min(n, Math.round((n * spec.percent) / 100)));
    case "auto":
      return autoStride(n, p);
  }
}

/**
 * One viewer's datagram loss, from the cumulative path counters of its reports
 * (docs/protocol.md §2.6): each interval's lost / (lost + received), smoothed. An
 * interval with too few datagrams is folded into the next; counters that go back
 * (a new session) restart the estimate. Hostile counters can only claim loss between 0 and 1.
 */
export class LossEstimate {
  #lastReceived: number | null = null;
  #lastLost = 0;
  #pendingReceived = 0;
  #pendingLost = 0;
  #loss = 0;
  #samples = 0;

  /** The smoothed loss, 0..1 (0 before any interval counted). */
  get loss(): number {
    return this.#loss;
  }

  /** Intervals counted. */
  get samples(): number {
    return this.#samples;
  }

  /** A report's path counters arrived. */
  report(path: Pick<PathCounters, "datagramsReceived" | "datagramsLost">): void {
    const { datagramsReceived: r, datagramsLost: l } = path;
    if (this.#lastReceived === null || r < this.#lastReceived || l < this.#lastLost) {
      this.#lastReceived = r;
      this.#lastLost = l;
      return;
    }
    this.#pendingReceived += r - this.#lastReceived;
    this.#pendingLost += l - this.#lastLost;
    this.#lastReceived = r;
    this.#lastLost = l;
    const total = this.#pendingReceived + this.#pendingLost;
    if (total < MIN_SAMPLE_DATAGRAMS) return;
    const interval = this.#pendingLost / total;
    this.#loss = this.#samples === 0 ? interval : (1 - EWMA_WEIGHT) * this.#loss + EWMA_WEIGHT * interval;
    this.#samples++;
    this.#pendingReceived = 0;
    this.#pendingLost = 0;
  }
}
