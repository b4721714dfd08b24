import { describe, expect, test } from "bun:test";
import { RateEstimator, MIN_REPORT_INTERVAL_MS, type PathReport, type SentTotals } from "../lib/send/rate-control.ts";

const MBIT = 1e6 / 8;
/** The full layer: a camera-like 720p MJPEG stream, ~50 Mbit/s. */
const FULL = 50 * MBIT;
const FLOOR = 1 * MBIT;
const GRAM = 1400;

/**
 * A path to one viewer, one report interval at a time: a bottleneck of `capacity`
 * bytes/s with a drop-tail buffer of `bufferS` seconds in front of it, and random loss.
 * The viewer measures what a real one does: bytes and datagrams that arrived, datagrams
 * lost, and the slope of its one-way delay (the queue's growth) in µs per second.
 */
class Path {
  capacity = Infinity;
  randomLoss = 0;
  readonly bufferS = 0.1;
  /** The viewer measures its standing queue (lib/receive/path-meter.ts) and reports it. */
  measuresQueue = false;
  /** A busy host's noise in the delay trend, µs/s, alternating in sign each second. */
  jitterUsPerS = 0;
  #second = 0;
  #queue = 0;
  // Kept as fractions; what goes on the wire is rounded (rounding keeps received <= sent).
  readonly #sent = { bytes: 0, datagrams: 0 };
  readonly #seen = { bytes: 0, datagrams: 0, lost: 0 };

  /** What the server has sent so far. */
  get sent(): SentTotals {
    return { bytes: Math.round(this.#sent.bytes), datagrams: Math.round(this.#sent.datagrams) };
  }

  /** The server sends at `rate` bytes/s for one second; returns the viewer's report. */
  second(rate: number): PathReport {
    const offered = rate;
    this.#sent.bytes += offered;
    this.#sent.datagrams += offered / GRAM;
    const before = this.#queue;
    const served = Math.min(this.capacity, this.#queue + offered);
    let queue = this.#queue + offered - served;
    const limit = this.capacity === Infinity ? 0 : this.capacity * this.bufferS;
    const dropped = Math.max(0, queue - limit);
    queue -= dropped;
    this.#queue = queue;
    const randomDrop = served * this.randomLoss;
    const arrived = served - randomDrop;
    this.#seen.bytes += arrived;
    this.#seen.datagrams += arrived / GRAM;
    this.#seen.lost += (dropped + randomDrop) / GRAM;
    const delayChange = this.capacity === Infinity ? 0 : (queue - before) / this.capacity;
    const s = this.#seen;
    const jitter = this.jitterUsPerS * (this.#second++ % 2 === 0 ? 1 : -0.5);
    const report: PathReport = {
      bytesReceived: Math.round(s.bytes), datagramsReceived: Math.round(s.datagrams), datagramsLost: Math.round(s.lost),
      delayTrendUsPerS: Math.round(delayChange * 1e6 + jitter), delaySamples: 30,
    };
    // As the viewer judges it, on the second's last quarter; the queue grows or shrinks steadily within it.
    const lastQuarter = Math.min(queue, before + 0.75 * (queue - before));
    if (this.measuresQueue) report.queueDelayMs = this.capacity === Infinity ? 0 : (lastQuarter / this.capacity) * 1000;
    return report;
  }
}

/** Runs `seconds` reports; returns the estimate after each. */
function run(est: RateEstimator, path: Path, seconds: number, start: number, report: (p: Path, r: PathReport) => PathReport = (_p, r) => r): number[] {
  const out: number[] = [];
  for (let s = 1; s <= seconds; s++) {
    const r = report(path, path.second(est.bytesPerS));
    est.report(r, path.sent, (start + s) * 1000);
    out.push(est.bytesPerS);
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("a viewer behind a 10 Mbit/s bottleneck, sent a 50 Mbit/s layer", () => {
  test("its estimate is below 10 Mbit/s within a few seconds and stays near it, never far above", () => {
    const path = new Path();
    path.capacity = 10 * MBIT;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    const rates = run(est, path, 40, 0);
    expect(rates.slice(0, 3).some((r) => r < 10 * MBIT)).toBe(true);
    const settled = rates.slice(3);
    expect(Math.max(...settled)).toBeLessThan(1.1 * 10 * MBIT);
    expect(mean(settled)).toBeLessThan(10 * MBIT);
    expect(mean(settled)).toBeGreaterThan(0.8 * 10 * MBIT);
    expect(settled.filter((r) => r < 10 * MBIT).length / settled.length).toBeGreaterThan(0.6);
  });

  test("when the path clears, the estimate is back at the full layer within about 5 s", () => {
    const path = new Path();
    path.capacity = 10 * MBIT;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    run(est, path, 20, 0);
    expect(est.bytesPerS).toBeLessThan(12 * MBIT);
    path.capacity = Infinity;
    const after = run(est, path, 7, 20);
    expect(after.findIndex((r) => r >= FULL)).toBeGreaterThanOrEqual(0);
    expect(after.findIndex((r) => r >= FULL)).toBeLessThanOrEqual(5);
    expect(est.limited).toBe(false);
  });
});

describe("random loss with a flat delay is not congestion", () => {
  test("1 % loss keeps a viewer at the full layer", () => {
    const path = new Path();
    path.randomLoss = 0.01;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    expect(run(est, path, 30, 0).every((r) => r === FULL)).toBe(true);
  });

  test("5 % loss never lowers the estimate, 1 % lets it climb", () => {
    const path = new Path();
    path.randomLoss = 0.05;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 20 * MBIT }, 0);
    expect(run(est, path, 10, 0).every((r) => r === 20 * MBIT)).toBe(true);
    path.randomLoss = 0.01;
    expect(run(est, path, 10, 10).at(-1)).toBe(FULL);
  });

  test("the same loss with a rising delay is congestion", () => {
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    const v = est.report({ bytesReceived: 0.95 * FULL, datagramsReceived: 950, datagramsLost: 50, delayTrendUsPerS: 2_000, delaySamples: 30 }, { bytes: FULL, datagrams: 1000 }, 1000);
    expect(v).toEqual({ kind: "decrease", cause: "loss", bytesPerS: 0.85 * 0.95 * FULL });
  });
});

describe("a viewer that measures its standing queue: loss without a queue is random, a queue is congestion", () => {
  test("2 % and 5 % random loss with a busy host's jitter in the delay trend keep the full layer, and let a lowered estimate climb back", () => {
    const path = new Path();
    path.measuresQueue = true;
    path.jitterUsPerS = 16_000;
    path.randomLoss = 0.02;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    expect(run(est, path, 20, 0).every((r) => r === FULL)).toBe(true);
    path.randomLoss = 0.05;
    const low = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 10 * MBIT }, 0);
    const climb = run(low, path, 10, 0);
    expect(climb.findIndex((r) => r === FULL)).toBeGreaterThanOrEqual(0);
    expect(climb.findIndex((r) => r === FULL)).toBeLessThanOrEqual(7);
  });

  test("without the measure, the same loss and jitter are taken for congestion (why the viewer measures it)", () => {
    const path = new Path();
    path.jitterUsPerS = 16_000;
    path.randomLoss = 0.03;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    expect(Math.min(...run(est, path, 20, 0))).toBeLessThan(FULL / 2);
  });

  test("behind a 10 Mbit/s bottleneck with 2 % random loss it settles near 10 Mbit/s, never far above", () => {
    const path = new Path();
    path.measuresQueue = true;
    path.jitterUsPerS = 16_000;
    path.randomLoss = 0.02;
    path.capacity = 10 * MBIT;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    const rates = run(est, path, 40, 0);
    expect(rates[0]).toBeLessThan(10 * MBIT);
    const settled = rates.slice(3);
    expect(Math.max(...settled)).toBeLessThan(1.25 * 10 * MBIT);
    expect(mean(settled)).toBeGreaterThan(0.75 * 10 * MBIT);
    expect(mean(settled)).toBeLessThan(1.05 * 10 * MBIT);
    // Then the path clears: back at the full layer within about 5 s.
    path.capacity = Infinity;
    const after = run(est, path, 7, 40);
    expect(after.findIndex((r) => r === FULL)).toBeGreaterThanOrEqual(0);
    expect(after.findIndex((r) => r === FULL)).toBeLessThanOrEqual(5);
  });

  test("a queue that drains is waited for; heavy loss is congestion with or without a queue", () => {
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 20 * MBIT }, 0);
    const sent = { bytes: FULL, datagrams: 1000 };
    const clear = { bytesReceived: FULL, datagramsReceived: 1000, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30, queueDelayMs: 0 };
    expect(est.report({ ...clear, queueDelayMs: 30, delayTrendUsPerS: -20_000 }, sent, 1000)).toEqual({ kind: "hold", cause: "draining" });
    expect(est.report({ ...clear, queueDelayMs: 30 }, sent, 2000).kind).toBe("decrease");
    // The counters are the session's: a second interval of 1000 datagrams sent, 800 of them received.
    const heavy = { bytesReceived: 1.8 * FULL, datagramsReceived: 1800, datagramsLost: 200, delayTrendUsPerS: 0, delaySamples: 30, queueDelayMs: 0 };
    expect(est.report(heavy, { bytes: 2 * FULL, datagrams: 2000 }, 3000)).toMatchObject({ kind: "decrease", cause: "loss" });
  });

  test("a standing queue that is not a number, negative or absurdly long is refused", () => {
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 5 * MBIT }, 0);
    const sent = { bytes: 1_000_000, datagrams: 1000 };
    const clear = { bytesReceived: 1_000_000, datagramsReceived: 1000, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30 };
    for (const queueDelayMs of [Number.NaN, -1, 1e9]) expect(est.report({ ...clear, queueDelayMs }, sent, 1000).kind).toBe("refused");
    expect(est.refused.absurd).toBe(3);
    expect(est.bytesPerS).toBe(5 * MBIT);
  });
});

describe("a viewer cannot lie its way to more than its path carries", () => {
  test("claiming no loss and a flat delay while receiving 10 Mbit/s holds it near 10 Mbit/s", () => {
    const path = new Path();
    path.capacity = 10 * MBIT;
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
    const liar = (_p: Path, r: PathReport): PathReport => ({ ...r, datagramsLost: 0, delayTrendUsPerS: 0 });
    const rates = run(est, path, 40, 0, liar);
    expect(rates[0]).toBeLessThan(10 * MBIT);
    expect(Math.max(...rates.slice(1))).toBeLessThan(1.12 * 10 * MBIT);
  });

  test("impossible reports are refused and counted, and never raise the estimate", () => {
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 5 * MBIT }, 0);
    const sent = { bytes: 1_000_000, datagrams: 1000 };
    const clear = { bytesReceived: 1_000_000, datagramsReceived: 1000, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30 };
    expect(est.report({ ...clear, bytesReceived: 2_000_000 }, sent, 1000).kind).toBe("refused");
    expect(est.report({ ...clear, delayTrendUsPerS: Number.NaN }, sent, 1000).kind).toBe("refused");
    expect(est.report({ ...clear, delayTrendUsPerS: -1e12 }, sent, 1000).kind).toBe("refused");
    expect(est.report({ ...clear, bytesReceived: -1 }, sent, 1000).kind).toBe("refused");
    expect(est.report({ ...clear, datagramsReceived: 1.5 }, sent, 1000).kind).toBe("refused");
    expect(est.bytesPerS).toBe(5 * MBIT);
    expect(est.refused).toEqual({ backwards: 0, moreThanSent: 1, absurd: 4 });
    expect(est.report(clear, sent, 1000).kind).toBe("increase");
    expect(est.report({ ...clear, bytesReceived: 10 }, { bytes: 2_000_000, datagrams: 2000 }, 2000).kind).toBe("refused");
    expect(est.refused.backwards).toBe(1);
  });

  test("a count of lost datagrams above what was sent (frames the server cut short) is taken, and lowers the estimate", () => {
    const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 5 * MBIT }, 0);
    const verdict = est.report({ bytesReceived: 100_000, datagramsReceived: 100, datagramsLost: 5000, delayTrendUsPerS: 0, delaySamples: 30 }, { bytes: 1_000_000, datagrams: 1000 }, 1000);
    expect(verdict.kind).toBe("decrease");
    expect(est.bytesPerS).toBeLessThan(5 * MBIT);
    expect(est.refused.moreThanSent).toBe(0);
  });

  test("a flood of reports raises the estimate no faster than one a second", () => {
    const slow = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: FLOOR }, 0);
    const fast = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: FLOOR }, 0);
    const at = (t: number, rate: number) => ({ bytesReceived: Math.round(rate * t), datagramsReceived: Math.round(t), datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30 });
    const sentAt = (t: number, rate: number) => ({ bytes: Math.round(rate * t), datagrams: Math.round(t) });
    for (let ms = 10; ms <= 3000; ms += 10) fast.report(at(ms, FLOOR / 1000), sentAt(ms, FLOOR / 1000), ms);
    for (let ms = 1000; ms <= 3000; ms += 1000) slow.report(at(ms, FLOOR / 1000), sentAt(ms, FLOOR / 1000), ms);
    expect(fast.bytesPerS).toBeGreaterThan(FLOOR);
    expect(fast.bytesPerS).toBeLessThanOrEqual(slow.bytesPerS * 1.05);
    expect(fast.report(at(3100, FLOOR / 1000), sentAt(3100, FLOOR / 1000), 3000 + MIN_REPORT_INTERVAL_MS - 1).kind).toBe("early");
  });
});

test("a viewer that stops reporting decays to the floor, and a report brings it back", () => {
  const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
  est.tick(2000);
  expect(est.bytesPerS).toBe(FULL);
  for (let t = 3000; t <= 12_000; t += 1000) est.tick(t);
  expect(est.bytesPerS).toBe(FLOOR);
  const path = new Path();
  expect(run(est, path, 12, 12).at(-1)).toBe(FULL);
});

test("the ceiling follows the full layer, and a viewer at it stays at it", () => {
  const est = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL }, 0);
  est.setCeiling(60 * MBIT);
  expect(est.bytesPerS).toBe(60 * MBIT);
  est.setCeiling(40 * MBIT);
  expect(est.bytesPerS).toBe(40 * MBIT);
  const limited = new RateEstimator({ floorBytesPerS: FLOOR, ceilingBytesPerS: FULL, startBytesPerS: 8 * MBIT }, 0);
  limited.setCeiling(60 * MBIT);
  expect(limited.bytesPerS).toBe(8 * MBIT);
  expect(limited.limited).toBe(true);
  expect(() => new RateEstimator({ floorBytesPerS: 0, ceilingBytesPerS: FULL }, 0)).toThrow(RangeError);
});
