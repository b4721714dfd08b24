import { expect, test } from "bun:test";
import { LatencyHistogram } from "../lib/receive/latency-histogram.ts";
import { MAX_SIZES_COUNTED, ReceiverStats } from "../lib/receive/receiver-stats.ts";

test("latency percentiles are exact to one bucket and clamp absurd values", () => {
  const h = new LatencyHistogram();
  expect(h.percentile(50)).toBeNull();
  for (let i = 1; i <= 100; i++) h.add(i); // 1..100 ms
  expect(h.percentile(50)).toBeCloseTo(50.05, 5);
  expect(h.percentile(95)).toBeCloseTo(95.05, 5);
  expect(h.percentile(99)).toBeCloseTo(99.05, 5);
  h.add(-3);
  h.add(1e9);
  expect(h.count).toBe(102);
  expect(h.percentile(100)).toBe(LatencyHistogram.MAX_MS);
});

test("per-second frame counts, loss and the status snapshot", () => {
  const s = new ReceiverStats();
  for (let i = 0; i < 30; i++) s.frame(10_000, 5, 1000 + i * 33);
  s.lost(2, 1);
  const snap = s.snapshot(2000);
  expect(snap.fps).toBeCloseTo(30, 5);
  expect(snap.mbps).toBeCloseTo((30 * 10_000 * 8) / 1e6, 5);
  expect(snap.lossPercent).toBeCloseTo((100 * 3) / 33, 5);
  for (let i = 0; i < 10; i++) s.frame(10_000, 7, 2000 + i * 100);
  const sum = s.summary({ malformed: 0 });
  expect(sum.fpsPerSecond).toEqual([30, 10]);
  expect(sum.framesReceived).toBe(40);
  expect(sum.framesDropped).toBe(3);
  expect(sum.latencyMs.p50).toBeCloseTo(5.05, 5);
  expect(s.snapshot(3000).lossPercent).toBe(0);
});

test("frames are counted by picture size, bounded; skipped frames are no loss on the status line", () => {
  const s = new ReceiverStats();
  s.frame(100, 1, 0, "1280x720");
  s.frame(100, 1, 1, "640x360");
  s.frame(100, 1, 2, "640x360");
  expect(s.summary({}).framesBySize).toEqual({ "1280x720": 1, "640x360": 2 });
  for (let w = 2; w < 100; w += 2) s.frame(100, 1, 3, `${w}x16`);
  const sizes = s.summary({}).framesBySize;
  expect(Object.keys(sizes).length).toBe(MAX_SIZES_COUNTED + 1);
  expect(sizes.other).toBe(49 - (MAX_SIZES_COUNTED - 2));
  // Frames first counted missing and then announced as skipped do not make the loss negative.
  const t = new ReceiverStats();
  t.frame(100, 1, 0);
  t.framesMissing = 3;
  t.snapshot(1000);
  t.framesMissing = 1;
  t.framesSkipped = 2;
  t.frame(100, 1, 1500);
  expect(t.snapshot(2000).lossPercent).toBe(0);
  expect(t.summary({})).toMatchObject({ framesMissing: 1, framesSkipped: 2, framesDropped: 1 });
});
