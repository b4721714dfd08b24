import { expect, test } from "bun:test";
import { MjpegReaders, ReadersFullError } from "../lib/http/mjpeg-readers.ts";
import type { Frame } from "../lib/wire/frame.ts";

const frame = (seq: number, bytes = 100, capturedAt = 0): Frame => ({ seq, capturedAt, width: 4, height: 4, jpeg: new Uint8Array(bytes) });
const peer = (n: number) => ({ id: `r${n}`, address: "127.0.0.1", port: 50000 + n, name: `reader ${n}` });

test("a reader that takes nothing keeps only the newest frame; the ones it missed are counted as skipped", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add(peer(1), 0);
  for (let seq = 0; seq < 10; seq++) rs.push(frame(seq), 0, seq);
  expect(rs.take("r1", 1, 0)?.seq).toBe(9);
  expect(rs.get("r1")).toMatchObject({ framesSent: 1, framesSkipped: 9, bytesSent: 100 });
  // Nothing new since: the reader waits rather than getting the same frame twice.
  expect(rs.take("r1", 2, 0)).toBeNull();
});

test("a waiting reader is woken once by the next frame, and a second frame before it takes replaces the first", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add(peer(1), 0);
  rs.add(peer(2), 0);
  expect(rs.take("r1", 0, 0)).toBeNull();
  expect(rs.push(frame(1), 0, 0).wake).toEqual(["r1"]);
  expect(rs.push(frame(2), 0, 0).wake).toEqual([]);
  expect(rs.take("r1", 1, 0)?.seq).toBe(2);
  expect(rs.get("r1")?.framesSkipped).toBe(1);
  expect(rs.get("r2")?.framesSkipped).toBe(1);
});

test("every frame pushed while a reader is there is sent, skipped or pending, and the totals outlive the reader", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add(peer(1), 0);
  // A reader that takes every third frame: frames 0, 3, ..., 99 are sent, the other 66 skipped.
  for (let seq = 0; seq < 100; seq++) {
    rs.push(frame(seq, 10), 0, seq);
    if (seq % 3 === 0) expect(rs.take("r1", seq, 0)?.seq).toBe(seq);
  }
  const r = rs.get("r1")!;
  expect(r).toMatchObject({ framesSent: 34, framesSkipped: 66 });
  rs.push(frame(100, 10), 0, 100);
  expect(r.framesSent + r.framesSkipped).toBe(100);
  const taken = 34;
  rs.addBytes("r1", 5);
  expect(rs.remove("r1")?.bytesSent).toBe(taken * 10 + 5);
  expect(rs.remove("r1")).toBeUndefined();
  expect(rs.totals).toEqual({ framesSent: taken, framesSkipped: r.framesSkipped, bytesSent: taken * 10 + 5 });
  expect(rs.take("r1", 0, 0)).toBeNull();
});

test("readers are bounded: one more than the limit is refused until one leaves; ids are unique", () => {
  const rs = new MjpegReaders({ maxReaders: 2, stallMs: 5000 });
  rs.add(peer(1), 0);
  expect(() => rs.add(peer(1), 0)).toThrow(RangeError);
  rs.add(peer(2), 0);
  expect(() => rs.add(peer(3), 0)).toThrow(ReadersFullError);
  expect(() => rs.add(peer(3), 0)).toThrow("2 MJPEG readers already connected");
  rs.remove("r1");
  expect(rs.add(peer(3), 0).id).toBe("r3");
  expect(rs.size).toBe(2);
});

test("a reader that leaves a frame untaken past stallMs is stalled; one with nothing pending is not (the source may pause)", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 1000 });
  rs.add(peer(1), 0);
  rs.add(peer(2), 0);
  rs.add(peer(3), 0);
  expect(rs.take("r3", 0, 0)).toBeNull();
  rs.push(frame(1), 0, 0);
  // r3 was waiting and takes at once; r1 and r2 take nothing.
  expect(rs.take("r3", 10, 0)?.seq).toBe(1);
  rs.push(frame(2), 0, 10);
  expect(rs.take("r2", 900, 0)?.seq).toBe(2);
  expect(rs.take("r3", 900, 0)?.seq).toBe(2);
  expect(rs.stalled(1000)).toEqual([]);
  expect(rs.stalled(1001).map((r) => r.id)).toEqual(["r1"]);
  // Nothing pushed for 5 s: r2 and r3 have nothing pending and are not stalled.
  expect(rs.stalled(6000).map((r) => r.id)).toEqual(["r1"]);
  rs.push(frame(3), 0, 6000);
  expect(rs.stalled(6000).map((r) => r.id).sort()).toEqual(["r1", "r2", "r3"]);
});

test("sample() turns the last window into fps and median latency", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add(peer(1), 0);
  rs.add(peer(2), 0);
  // Frames captured at t (µs), taken 4, 6 and 20 ms later.
  for (const [i, delayMs] of [4, 6, 20].entries()) {
    const capturedAt = 1_000_000 * (i + 1);
    rs.push(frame(i, 10, capturedAt), 0, i * 100);
    rs.take("r1", i * 100, capturedAt + delayMs * 1000);
  }
  rs.sample(2000);
  expect(rs.get("r1")).toMatchObject({ fps: 1.5, latencyP50Ms: 6 });
  expect(rs.get("r2")).toMatchObject({ fps: 0, latencyP50Ms: null });
  rs.sample(3000);
  expect(rs.get("r1")).toMatchObject({ fps: 0, latencyP50Ms: null });
});

test("limits are checked when the bookkeeping is made", () => {
  expect(() => new MjpegReaders({ maxReaders: 0, stallMs: 1000 })).toThrow("maxReaders must be at least 1, got 0");
  expect(() => new MjpegReaders({ maxReaders: 1, stallMs: 0 })).toThrow("stallMs must be positive, got 0");
});

test("a reader that falls behind moves to the next layer down and is offered that layer's frames only; copies are wanted only of layers readers are on", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add({ ...peer(1), layers: 3 }, 0);
  rs.add({ ...peer(2), layers: 3 }, 0);
  expect(rs.layersWanted(0)).toEqual([]);
  // 25 frames a second for a second: r1 takes every one, r2 every other.
  const moves = [];
  for (let seq = 0; seq <= 25; seq++) {
    const t = seq * 40;
    const { moved } = rs.push(frame(seq), 0, t);
    moves.push(...moved.map((m) => ({ id: m.reader.id, from: m.from, to: m.reader.layer })));
    rs.take("r1", t, 0);
    if (seq % 2 === 0) rs.take("r2", t, 0);
  }
  expect(moves).toEqual([{ id: "r2", from: 0, to: 1 }]);
  expect(rs.get("r1")?.layer).toBe(0);
  expect(rs.layersWanted(0)).toEqual([1]);
  // The full picture no longer reaches r2; its layer's copy does, and r1 is not offered that.
  rs.take("r2", 1000, 0);
  rs.push(frame(26), 0, 1040);
  expect(rs.take("r2", 1041, 0)).toBeNull();
  const copy = { ...frame(26, 30), width: 2, height: 2 };
  expect(rs.push(copy, 0, 1050, 1).wake).toEqual(["r2"]);
  expect(rs.take("r2", 1051, 0)).toBe(copy);
  expect(rs.take("r1", 1051, 0)?.seq).toBe(26);
  expect(rs.take("r1", 1052, 0)).toBeNull();
});

test("a camera put back on its source's size takes every reader back to it, for good", () => {
  const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
  rs.add({ ...peer(1), layers: 2 }, 0);
  rs.add({ ...peer(2), layers: 2, camera: 1 }, 0);
  // Nobody takes anything: both fall behind and move down.
  for (let seq = 0; seq <= 25; seq++) {
    rs.push(frame(seq), 0, seq * 40);
    rs.push(frame(seq), 1, seq * 40);
  }
  expect([rs.get("r1")?.layer, rs.get("r2")?.layer]).toEqual([1, 1]);
  expect(rs.sourceOnly(0, 1100).map((m) => [m.reader.id, m.from, m.reader.layer])).toEqual([["r1", 1, 0]]);
  expect(rs.layersWanted(0)).toEqual([]);
  expect(rs.layersWanted(1)).toEqual([1]);
  // However far behind it falls now, r1 stays on the source's size.
  for (let seq = 26; seq < 200; seq++) expect(rs.push(frame(seq), 0, seq * 40).moved).toEqual([]);
  expect(rs.get("r1")).toMatchObject({ layer: 0, layers: 1 });
});
