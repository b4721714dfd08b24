import { describe, expect, test } from "bun:test";
import { RecordOrder } from "../lib/receive/record-order.ts";
import type { Frame } from "../lib/wire/frame.ts";

const frame = (seq: number): Frame => ({ seq, capturedAt: 1_000 + seq, width: 2, height: 2, jpeg: new Uint8Array([seq & 0xff]) });
const seqs = (fs: Frame[]) => fs.map((f) => f.seq);

describe("RecordOrder", () => {
  test("a frame repaired after later ones is released in its place; later frames wait for it", () => {
    const o = new RecordOrder();
    expect(seqs(o.frame(frame(10)))).toEqual([10]);
    expect(seqs(o.frame(frame(12)))).toEqual([]);
    expect(seqs(o.frame(frame(13)))).toEqual([]);
    expect(o.held).toBe(2);
    expect(seqs(o.frame(frame(11)))).toEqual([11, 12, 13]);
    expect(o.held).toBe(0);
  });

  test("a frame given up lets the ones after it go; a held frame keeps its bytes though the caller reuses its buffer", () => {
    const o = new RecordOrder();
    o.frame(frame(0));
    const f2 = frame(2);
    expect(o.frame(f2)).toEqual([]);
    f2.jpeg[0] = 99;
    const out = o.skip(1);
    expect(seqs(out)).toEqual([2]);
    expect(out[0]!.jpeg[0]).toBe(2);
  });

  test("a frame that completes after the order moved past it is counted late, not written out of order", () => {
    const o = new RecordOrder();
    o.frame(frame(5));
    o.skip(6);
    expect(seqs(o.frame(frame(7)))).toEqual([7]);
    expect(o.frame(frame(6))).toEqual([]);
    expect(o.late).toBe(1);
  });

  test("bounded: past maxHeld the order moves on without the frame awaited", () => {
    const o = new RecordOrder(3);
    o.frame(frame(0));
    expect(o.frame(frame(2))).toEqual([]);
    expect(o.frame(frame(3))).toEqual([]);
    expect(o.frame(frame(4))).toEqual([]);
    expect(seqs(o.frame(frame(5)))).toEqual([2, 3, 4, 5]);
    expect(o.skippedForRoom).toBe(1);
    expect(o.held).toBe(0);
  });

  test("a new numbering far ahead releases what is held and starts over; reset drains in order; numbering wraps", () => {
    const o = new RecordOrder();
    o.frame(frame(1));
    o.frame(frame(3));
    expect(seqs(o.frame(frame(100_000)))).toEqual([3, 100_000]);
    o.frame(frame(100_002));
    o.frame(frame(100_004));
    expect(seqs(o.reset())).toEqual([100_002, 100_004]);
    const w = new RecordOrder();
    w.frame(frame(0xffffffff));
    expect(w.frame(frame(1))).toEqual([]);
    expect(seqs(w.frame(frame(0)))).toEqual([0, 1]);
  });
});
