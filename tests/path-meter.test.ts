import { expect, test } from "bun:test";
import { DelayTrend, PathMeter, type MeteredDatagram } from "../lib/receive/path-meter.ts";

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
