import { expect, test } from "bun:test";
import { BASE_INTERVALS, DelayTrend, QUEUE_FRAMES, PathMeter, type MeteredDatagram } from "../lib/receive/path-meter.ts";

/** The server's wall clock at the viewer's monotonic 0, µs: any value, it must not matter. */
const EPOCH_US = 1_765_000_000_000_000;
const gram = (frameNumber: number, fragmentIndex: number, fragmentCount: number, capturedAtMs = 0): MeteredDatagram => ({
  frameNumber, fragmentIndex, fragmentCount, capturedAt: EPOCH_US + capturedAtMs * 1000,
});

test("bytes and datagrams that arrived are counted, and datagrams missing inside frames are lost", () => {
  const m = new PathMeter();
  // Frame 1: 4 datagrams, the third lost. Frame 2: the first and the last two lost.
  for (const i of [0, 1, 3]) m.datagram(gram(1, i, 4), 1000, 0);
  m.datagram(gram(2, 1, 4), 1000, 33);
  // Frame 5 (3 and 4 never seen at all: the server knows those, they are not counted here).
  m.datagram(gram(5, 0, 2), 500, 100);
  m.datagram(gram(5, 1, 2), 500, 100);
  expect(m.report()).toMatchObject({ bytesReceived: 5000, datagramsReceived: 6, datagramsLost: 1 + 1 + 2 });
});

test("a datagram that arrives out of order is not counted lost, and a late one from an older frame is ignored", () => {
  const m = new PathMeter();
  for (const i of [0, 2, 1, 3]) m.datagram(gram(7, i, 4), 100, 0);
  m.datagram(gram(8, 0, 1), 100, 33);
  m.datagram(gram(7, 3, 4), 100, 34); // a copy that wandered: older frame
  expect(m.report()).toMatchObject({ datagramsReceived: 6, datagramsLost: 0 });
});

test("frame numbers wrap around without counting a frame's worth of loss", () => {
  const m = new PathMeter();
  m.datagram(gram(0xffffffff, 0, 2), 10, 0);
  m.datagram(gram(0xffffffff, 1, 2), 10, 0);
  m.datagram(gram(0, 0, 2), 10, 33);
  m.datagram(gram(0, 1, 2), 10, 33);
  expect(m.report().datagramsLost).toBe(0);
});

test("a queue building on the path shows as a rising delay trend, a flat path as none, whatever the clocks' offset", () => {
  const rising = new PathMeter();
  const flat = new PathMeter();
  // 30 fps for a second. Rising: each frame arrives 1 ms later than the one before relative
  // to its capture (the queue grows 30 ms per second). Flat: ±2 ms of jitter only.
  for (let f = 0; f < 30; f++) {
    const captured = f * (1000 / 30);
    rising.datagram(gram(f, 0, 1, captured), 1000, 5_000_000 + captured + 5 + f);
    flat.datagram(gram(f, 0, 1, captured), 1000, 5_000_000 + captured + 5 + (f % 2 ? 2 : -2));
  }
  const r = rising.report();
  expect(r.delaySamples).toBe(30);
  expect(r.delayTrendUsPerS).toBeGreaterThan(29_000);
  expect(r.delayTrendUsPerS).toBeLessThan(31_000);
  expect(Math.abs(flat.report().delayTrendUsPerS)).toBeLessThan(1_000);
});

test("the trend covers the frames since the last report; the counters run for the session", () => {
  const m = new PathMeter();
  for (let f = 0; f < 10; f++) m.datagram(gram(f, 0, 1, f * 33), 100, f * 33 + f * 10);
  expect(m.report()).toMatchObject({ bytesReceived: 1000, delaySamples: 10 });
  expect(m.report()).toMatchObject({ bytesReceived: 1000, delaySamples: 0, delayTrendUsPerS: 0 });
  m.reset();
  expect(m.report()).toEqual({ bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 });
});

test("a trend too steep for the report is clamped, not wrapped", () => {
  const t = new DelayTrend();
  t.add(0, 0);
  t.add(1, -1e12); // a capture time a million seconds back one millisecond later
  expect(t.slopeUsPerS()).toBeGreaterThan(2 ** 31);
  const m = new PathMeter();
  m.datagram(gram(1, 0, 1, 0), 1, 0);
  m.datagram(gram(2, 0, 1, -1e9), 1, 1);
  expect(m.report().delayTrendUsPerS).toBe(0x7fffffff);
});

/** One report interval of 30 frames at 30 fps starting at `second`, each frame's first datagram `delay(f)` ms after capture. */
function interval(m: PathMeter, second: number, delay: (f: number) => number): ReturnType<PathMeter["report"]> {
  for (let f = 0; f < 30; f++) {
    const n = second * 30 + f;
    const captured = n * (1000 / 30);
    m.datagram(gram(n, 0, 1, captured), 1000, 7_000_000 + captured + delay(f));
  }
  return m.report();
}

test("a standing queue is the interval's smallest delay above the path's own; a few late frames are not one", () => {
  const m = new PathMeter();
  // A free path, 3 ms end to end, with a busy viewer reading a third of the frames 40 ms late.
  expect(interval(m, 0, () => 3).queueDelayMs).toBe(0);
  expect(interval(m, 1, (f) => (f % 3 === 0 ? 43 : 3)).queueDelayMs).toBe(0);
  // A queue of 25 ms builds during an interval (shown in it) and stays.
  expect(interval(m, 2, (f) => 3 + 25 * Math.min(1, f / 10)).queueDelayMs).toBeCloseTo(25, 6);
  expect(interval(m, 3, () => 28).queueDelayMs).toBeCloseTo(25, 6);
  // A viewer late with most frames of an interval, but not with QUEUE_FRAMES in a row, measures none.
  expect(interval(m, 4, (f) => (f % QUEUE_FRAMES === 0 ? 3 : 60)).queueDelayMs).toBe(0);
  // It drains.
  expect(interval(m, 5, () => 3.5).queueDelayMs).toBeCloseTo(0.5, 6);
});

test("the base is the last BASE_INTERVALS intervals': a path that became slower for good is the new normal after them", () => {
  const m = new PathMeter();
  interval(m, 0, () => 2);
  const queues = Array.from({ length: BASE_INTERVALS + 1 }, (_, k) => interval(m, k + 1, () => 12).queueDelayMs!);
  expect(queues.slice(0, BASE_INTERVALS - 1).every((q) => Math.abs(q - 10) < 1e-6)).toBe(true);
  expect(queues.at(-1)).toBe(0);
});

test("an interval without frames measures no queue; a change of layer starts a new base at once", () => {
  const m = new PathMeter();
  interval(m, 0, () => 2);
  expect(m.report().queueDelayMs).toBeUndefined();
  // The server now encodes a smaller layer for this viewer, 6 ms more from capture to send.
  m.rebase();
  expect(interval(m, 1, () => 8).queueDelayMs).toBe(0);
  expect(interval(m, 2, () => 8).queueDelayMs).toBe(0);
  m.reset();
  expect(m.report().queueDelayMs).toBeUndefined();
});

test("parity and resends that arrived count as arrived; a datagram rebuilt from parity did not cross the path; the originals stay lost", () => {
  const m = new PathMeter();
  for (const i of [0, 1, 4, 5]) m.datagram(gram(1, i, 6), 1000, 0);
  m.arrived(700);
  m.datagram(gram(1, 2, 6), 1000, 1, "rebuilt");
  m.datagram(gram(1, 3, 6), 1000, 9, "resent");
  expect(m.report()).toMatchObject({ bytesReceived: 5700, datagramsReceived: 6, datagramsLost: 2 });
});
