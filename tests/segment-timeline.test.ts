import { describe, expect, test } from "bun:test";
import { GapFiller, MAX_GAP_MICROS, SegmentTimeline } from "../lib/record/segment-timeline.ts";
import { prng } from "./helpers/prng.ts";

const FPS = 30;
const INTERVAL = 1_000_000 / FPS;
const W = 640;
const H = 480;
/** 2025-01-02 03:04:05 local time, in µs. */
const T0 = new Date(2025, 0, 2, 3, 4, 5).getTime() * 1000;

describe("SegmentTimeline", () => {
  test("rotates when a frame is a segment length after the start, and for size or clock changes", () => {
    const t = new SegmentTimeline(2_000_000, INTERVAL);
    expect(t.rotation(T0, W, H)).toBe("first");
    t.begin(T0, W, H);
    expect(t.place(T0)).toEqual({ slot: 0, gap: 0, offsetMicros: 0 });
    expect(t.rotation(T0 + 1_999_999, W, H)).toBeNull();
    expect(t.rotation(T0 + 2_000_000, W, H)).toBe("length");
    expect(t.rotation(T0 + 100_000, 320, 240)).toBe("size");
    t.place(T0 + 1_500_000);
    expect(t.rotation(T0 + 1_500_000 - 1_000_001, W, H)).toBe("clock");
    expect(t.rotation(T0 + 1_500_000 - 999_999, W, H)).toBeNull();
    t.reset();
    expect(t.rotation(T0 + 100_000, W, H)).toBe("first");
  });

  test("a hole longer than MAX_GAP_MICROS after the latest frame starts a new segment", () => {
    expect(MAX_GAP_MICROS).toBe(2_000_000);
    const t = new SegmentTimeline(3_600_000_000, INTERVAL);
    expect(t.gapMicros).toBe(MAX_GAP_MICROS);
    t.begin(T0, W, H);
    t.place(T0);
    expect(t.rotation(T0 + MAX_GAP_MICROS, W, H)).toBeNull(); // exactly 2 s: still bridged
    expect(t.rotation(T0 + MAX_GAP_MICROS + 1, W, H)).toBe("gap");
    expect(t.rotation(T0 + 600_000_000, W, H)).toBe("gap"); // a 10 minute outage inside an hour segment
    t.place(T0 + 1_000_000);
    t.place(T0 + 900_000); // a little back in time: the hole is measured from the latest frame
    expect(t.rotation(T0 + 3_000_000, W, H)).toBeNull();
    expect(t.rotation(T0 + 3_000_001, W, H)).toBe("gap");
    // Bridged holes keep being filled as lost slots.
    expect(t.place(T0 + 2_900_000)).toEqual({ slot: 87, gap: 55, offsetMicros: 2_900_000 }); // after slots 0, 30, 31
  });

  test("a hole that also crosses the segment length is reported as a gap; size and clock come first", () => {
    const t = new SegmentTimeline(2_000_000, INTERVAL);
    t.begin(T0, W, H);
    t.place(T0 + 1_000_000);
    expect(t.rotation(T0 + 2_500_000, W, H)).toBe("length");
    expect(t.rotation(T0 + 3_000_001, W, H)).toBe("gap");
    expect(t.rotation(T0 + 3_000_001, 320, 240)).toBe("size");
    expect(t.rotation(T0 - 100_000, W, H)).toBe("clock");
  });

  test("frames the writer skipped are no hole: the source kept sending", () => {
    const t = new SegmentTimeline(60_000_000, INTERVAL);
    t.begin(T0, W, H);
    t.place(T0);
    for (let k = 1; k <= 150; k++) {
      const at = T0 + Math.round(k * INTERVAL);
      expect(t.rotation(at, W, H)).toBeNull();
      t.skip(at); // ffmpeg behind for 5 s
    }
    expect(t.lastAt).toBe(T0 + Math.round(150 * INTERVAL));
    const next = T0 + Math.round(151 * INTERVAL);
    expect(t.rotation(next, W, H)).toBeNull();
    expect(t.place(next)).toEqual({ slot: 151, gap: 150, offsetMicros: next - T0 }); // AVI repeats what was dropped
    t.reset();
    t.skip(T0 + 100_000_000); // nothing open: ignored
    expect(t.rotation(T0 + 100_000_000, W, H)).toBe("first");
  });

  test("at slow rates one lost frame (plus jitter) is bridged; a longer hole is a gap", () => {
    for (const interval of [10_000_000, 2_000_000, 1_000_000]) { // 0.1, 0.5 and 1 fps
      const t = new SegmentTimeline(3_600_000_000, interval);
      expect(t.gapMicros).toBe(Math.max(MAX_GAP_MICROS, 2.5 * interval));
      t.begin(T0, W, H);
      t.place(T0);
      // Frame 1 lost; frame 2 arrives a little late.
      const f2 = T0 + 2 * interval + 50_000;
      expect(t.rotation(f2, W, H)).toBeNull();
      t.place(f2);
      expect(t.rotation(f2 + 4 * interval, W, H)).toBe("gap");
    }
    expect(new SegmentTimeline(3_600_000_000, 33_333).gapMicros).toBe(MAX_GAP_MICROS); // 30 fps: 2 s
  });

  test("slots follow capture times, count gaps, and never drop a late or early frame", () => {
    const t = new SegmentTimeline(10_000_000, INTERVAL);
    t.begin(T0, W, H);
    expect(t.place(T0).slot).toBe(0);
    expect(t.place(T0 + 34_000)).toEqual({ slot: 1, gap: 0, offsetMicros: 34_000 }); // jitter rounds to the grid
    expect(t.place(T0 + 500_000)).toEqual({ slot: 15, gap: 13, offsetMicros: 500_000 }); // lost frames
    expect(t.place(T0 + 500_000)).toEqual({ slot: 16, gap: 0, offsetMicros: 500_000 }); // same time: next slot
    expect(t.place(T0 + 400_000).slot).toBe(17); // slightly back in time: still kept
  });
});

/** A stand-in JPEG whose first byte names it. */
const pic = (id: number) => Uint8Array.of(id, 0xd8, 0xff, 0xd9);
/** Hands out everything the filler holds: ids, with "r" marking a repeat. */
function drain(g: GapFiller): string[] {
  const out: string[] = [];
  for (let p = g.next(); p; p = g.next()) out.push(`${p.bytes[0]}${p.repeat ? "r" : ""}`);
  return out;
}

describe("GapFiller", () => {
  test("a frame with no gap comes out alone; empty slots come out as repeats of the previous frame, then the frame", () => {
    const g = new GapFiller();
    expect(g.next()).toBeNull();
    g.add(pic(1), 0);
    expect(g.waiting).toBe(true);
    expect(drain(g)).toEqual(["1"]);
    expect(g.waiting).toBe(false);
    g.add(pic(2), 0);
    expect(drain(g)).toEqual(["2"]);
    g.add(pic(3), 3);
    expect(g.owed).toBe(3);
    expect(drain(g)).toEqual(["2r", "2r", "2r", "3"]);
    expect(g.next()).toBeNull();
  });

  test("handed out one at a time: what the pipe does not take yet stays, and no new frame is taken meanwhile", () => {
    const g = new GapFiller();
    g.add(pic(1), 0);
    g.next();
    g.add(pic(2), 2);
    expect(g.next()).toEqual({ bytes: pic(1), repeat: true });
    expect(g.waiting).toBe(true);
    expect(() => g.add(pic(3), 0)).toThrow("the previous frame has not been handed out yet");
    expect(drain(g)).toEqual(["1r", "2"]);
    g.add(pic(3), 0);
    expect(drain(g)).toEqual(["3"]);
  });

  test("the frame is copied: the caller may reuse its buffer at once", () => {
    const g = new GapFiller();
    const buf = pic(7);
    g.add(buf, 0);
    buf.fill(0);
    expect(g.next()!.bytes).toEqual(pic(7));
    const big = new Uint8Array(5000).fill(9);
    g.add(big, 1); // larger than the copy so far: the copy grows
    big.fill(0);
    const [repeat, frame] = [g.next()!, g.next()!];
    expect(repeat).toEqual({ bytes: pic(7), repeat: true });
    expect(frame.bytes.length).toBe(5000);
    expect(frame.bytes.every((b) => b === 9)).toBe(true);
  });

  test("nothing is repeated before the first frame, and gaps must be whole and not negative", () => {
    const g = new GapFiller();
    g.add(pic(1), 4);
    expect(g.owed).toBe(0);
    expect(drain(g)).toEqual(["1"]);
    expect(() => g.add(pic(2), -1)).toThrow(RangeError);
    expect(() => g.add(pic(2), 1.5)).toThrow(RangeError);
    expect(g.waiting).toBe(false);
  });

  test("clear() forgets what waits and says whether a frame was among it; the last frame handed out stays the one repeated", () => {
    const g = new GapFiller();
    g.add(pic(1), 0);
    g.next();
    g.add(pic(2), 3);
    g.next();
    expect(g.clear()).toBe(true); // frame 2 never went out
    expect(g.waiting).toBe(false);
    expect(g.clear()).toBe(false);
    g.add(pic(3), 1);
    expect(drain(g)).toEqual(["1r", "3"]);
    g.add(pic(4), 2);
    expect(drain(g)).toEqual(["3r", "3r", "4"]);
    expect(g.clear()).toBe(false);
  });

  test("with SegmentTimeline: one picture per slot, each the latest frame captured at or before it", () => {
    const next = prng(7);
    const timeline = new SegmentTimeline(3_600_000_000, INTERVAL);
    const g = new GapFiller();
    expect(timeline.rotation(T0, W, H)).toBe("first");
    timeline.begin(T0, W, H);
    const placed: { slot: number; id: number }[] = [];
    const stream: number[] = [];
    let at = T0;
    for (let id = 0; id < 200; id++) {
      if (id > 0) {
        // Jitter of up to a third of a frame, and now and then up to ten lost frames.
        at += INTERVAL * (next() < 0.1 ? 1 + Math.floor(next() * 10) : 1) + (next() - 0.5) * INTERVAL * 0.6;
        expect(timeline.rotation(at, W, H)).toBeNull();
      }
      const { slot, gap } = timeline.place(at);
      placed.push({ slot, id: id & 0xff });
      g.add(pic(id & 0xff), gap);
      for (let p = g.next(); p; p = g.next()) stream.push(p.bytes[0]!);
    }
    expect(stream.length).toBe(placed.at(-1)!.slot + 1);
    const want: number[] = [];
    for (const [k, p] of placed.entries()) {
      const from = k === 0 ? 0 : placed[k - 1]!.slot + 1;
      for (let s = from; s < p.slot; s++) want.push(placed[k - 1]!.id);
      want.push(p.id);
    }
    expect(stream).toEqual(want);
    expect(stream.length).toBeGreaterThan(200); // the lost frames were filled
  });
});
