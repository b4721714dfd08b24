import { expect, test } from "bun:test";
import type { Layer } from "../lib/send/layer-ladder.ts";
import type { PathReport } from "../lib/send/rate-control.ts";
import { ViewerRate } from "../lib/send/viewer-rate.ts";

const MBIT = 1e6 / 8;
const FPS = 30;
/** A 720p ladder as sent: ~50, ~17 and ~6 Mbit/s. */
const LAYERS: Layer[] = [
  { width: 1280, height: 720, bytesPerFrame: 210_000 },
  { width: 640, height: 360, bytesPerFrame: 70_000 },
  { width: 320, height: 180, bytesPerFrame: 24_000 },
];
const rateOf = (layer: number) => LAYERS[layer]!.bytesPerFrame! * FPS;

/**
 * One second at a time: the server sends the viewer's layer, paced at its estimate when
 * limited, through a bottleneck with a 100 ms drop-tail queue; the viewer reports what
 * a real one measures. Returns the layer and what arrived, per second.
 */
function simulate(v: ViewerRate, capacity: (second: number) => number, seconds: number) {
  let queue = 0;
  const seen = { bytes: 0, datagrams: 0, lost: 0 };
  const out: { layer: number; free: boolean; arrived: number; sent: number }[] = [];
  for (let t = 1; t <= seconds; t++) {
    const c = capacity(t);
    const pacing = v.pacing();
    const offered = Math.min(rateOf(v.layer), pacing.kind === "rate" ? pacing.bytesPerS : Infinity);
    v.sent(Math.round(offered), Math.round(offered / 1400));
    const before = queue;
    const served = Math.min(c, queue + offered);
    queue += offered - served;
    const limit = c === Infinity ? 0 : c * 0.1;
    const dropped = Math.max(0, queue - limit);
    queue -= dropped;
    seen.bytes += served;
    seen.datagrams += served / 1400;
    seen.lost += dropped / 1400;
    const report: PathReport = {
      bytesReceived: Math.min(v.totals.bytes, Math.round(seen.bytes)), datagramsReceived: Math.min(v.totals.datagrams, Math.round(seen.datagrams)),
      datagramsLost: Math.round(seen.lost), delayTrendUsPerS: c === Infinity ? 0 : Math.round(((queue - before) / c) * 1e6), delaySamples: 30,
    };
    v.report(report, LAYERS, t * 1000);
    out.push({ layer: v.layer, free: pacing.kind === "free", arrived: served, sent: offered });
  }
  return out;
}

test("a viewer on a free link stays on the full layer, sent as today (free, unpaced)", () => {
  const v = new ViewerRate(LAYERS, { fps: FPS }, 0);
  const run = simulate(v, () => Infinity, 30);
  expect(run.every((s) => s.layer === 0 && s.free)).toBe(true);
});

test("behind 10 Mbit/s a viewer is moved to the layer its path carries within seconds, and back up when the path clears", () => {
  const v = new ViewerRate(LAYERS, { fps: FPS }, 0);
  const run = simulate(v, (t) => (t <= 60 ? 10 * MBIT : Infinity), 90);
  // Down within two reports, to the quarter layer (6 Mbit/s), paced.
  expect(run[1]!.layer).toBe(2);
  const slow = run.slice(2, 60);
  // Mostly on the quarter layer; probing the half layer now and then, less and less often.
  expect(slow.filter((s) => s.layer === 2).length / slow.length).toBeGreaterThan(0.85);
  // What arrives is close to what is sent: few frames wasted on the way.
  const sent = slow.reduce((a, s) => a + s.sent, 0);
  const arrived = slow.reduce((a, s) => a + s.arrived, 0);
  expect(arrived / sent).toBeGreaterThan(0.9);
  // The path clears at 60 s: back on the full layer, free, within 40 s (at most two holds).
  const after = run.slice(60);
  const back = after.findIndex((s) => s.layer === 0 && s.free);
  expect(back).toBeGreaterThanOrEqual(0);
  expect(back).toBeLessThanOrEqual(40);
});

test("a rising delay with nothing lost (a busy host, not a queue on the path) leaves a free viewer free on the full layer; with loss it counts", () => {
  const v = new ViewerRate(LAYERS, { fps: FPS }, 0);
  let bytes = 0;
  let grams = 0;
  let lost = 0;
  // A free viewer is sent the full layer; the busy host's jitter makes the trend 5-16 ms/s.
  for (let t = 1; t <= 10; t++) {
    const perSecond = rateOf(0);
    v.sent(perSecond, Math.round(perSecond / 1400));
    bytes += perSecond;
    grams += Math.round(perSecond / 1400);
    const verdict = v.report({ bytesReceived: bytes, datagramsReceived: grams, datagramsLost: 0, delayTrendUsPerS: 5_000 + t * 1_000, delaySamples: 30 }, LAYERS, t * 1000);
    expect(verdict.kind).not.toBe("decrease");
  }
  expect(v.layer).toBe(0);
  expect(v.pacing().kind).toBe("free");
  // The same trend with 3 % of the datagrams lost is a queue: the estimate drops.
  const perSecond = rateOf(0);
  v.sent(perSecond, Math.round(perSecond / 1400));
  const n = Math.round(perSecond / 1400);
  lost += Math.round(n * 0.03);
  const verdict = v.report({ bytesReceived: bytes + Math.round(perSecond * 0.97), datagramsReceived: grams + n - lost, datagramsLost: lost, delayTrendUsPerS: 8_000, delaySamples: 30 }, LAYERS, 11_000);
  expect(verdict).toMatchObject({ kind: "decrease", cause: "delay" });
  expect(v.pacing().kind).toBe("rate");
});

test("a viewer whose first report is slow to come (a busy machine starting up) keeps the full layer through its first seconds", () => {
  const v = new ViewerRate(LAYERS, { fps: FPS }, 0);
  for (let t = 1000; t <= 5_000; t += 1000) v.tick(LAYERS, t);
  expect(v.layer).toBe(0);
  expect(v.pacing().kind).toBe("free");
  // Once it has reported, a silence of a few seconds is one.
  v.sent(rateOf(0) * 6, Math.round((rateOf(0) * 6) / 1400));
  v.report({ bytesReceived: rateOf(0) * 6, datagramsReceived: Math.round((rateOf(0) * 6) / 1400), datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30 }, LAYERS, 6_000);
  for (let t = 7_000; t <= 15_000; t += 1000) v.tick(LAYERS, t);
  expect(v.layer).toBeGreaterThan(0);
});

test("a viewer that reports nothing decays to the smallest layer", () => {
  const v = new ViewerRate(LAYERS, { fps: FPS }, 0);
  for (let t = 1000; t <= 15_000; t += 1000) v.tick(LAYERS, t);
  expect(v.layer).toBe(2);
  expect(v.pacing().kind).toBe("rate");
});

test("before the full layer is measured nothing limits a viewer; the first report sets the ceiling", () => {
  const unmeasured = LAYERS.map((l) => ({ ...l, bytesPerFrame: null }));
  const v = new ViewerRate(unmeasured, { fps: FPS }, 0);
  expect(v.pacing()).toEqual({ kind: "free" });
  v.sent(6_300_000, 4500);
  v.report({ bytesReceived: 6_300_000, datagramsReceived: 4500, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 30 }, LAYERS, 1000);
  expect(v.estimator.bytesPerS).toBe(rateOf(0));
  expect(v.pacing()).toEqual({ kind: "free" });
});
