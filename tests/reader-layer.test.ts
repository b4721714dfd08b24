import { describe, expect, test } from "bun:test";
import {
  FLAP_WINDOW_MS, frameOffered, HOLD_MS, MAX_HOLD_MS, readerLayerStart, WINDOW_MS, type ReaderLayerOptions, type ReaderLayerState,
} from "../lib/http/reader-layer.ts";

const FPS = 25;
const FRAME_MS = 1000 / FPS;
/** Full, half and quarter size. */
const LAYERS = 3;

/** A reader fed FPS frames a second on a fake clock: each frame is skipped when `skips(n)` says so (n counts every frame). */
class Reader {
  s: ReaderLayerState;
  now = 0;
  #n = 0;
  /** Every layer change: when, and to which layer. */
  readonly moves: { at: number; layer: number }[] = [];

  constructor(readonly layers = LAYERS, readonly opts: ReaderLayerOptions = {}) {
    this.s = readerLayerStart(0, opts);
  }

  run(ms: number, skips: (n: number) => boolean): this {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += FRAME_MS;
      const before = this.s.layer;
      this.s = frameOffered(this.s, skips(this.#n++), this.layers, this.now, this.opts);
      if (this.s.layer !== before) this.moves.push({ at: Math.round(this.now), layer: this.s.layer });
    }
    return this;
  }
}

const never = () => false;
/** Takes one frame in two: half its frames are replaced before it takes them. */
const halfBehind = (n: number) => n % 2 === 1;

describe("a reader that keeps up", () => {
  test("stays on the full picture, whatever the time", () => {
    const r = new Reader().run(10 * 60_000, never);
    expect(r.s.layer).toBe(0);
    expect(r.moves).toEqual([]);
  });

  test("a late frame now and then (the machine's hiccup, not the path) moves it nowhere", () => {
    // One skip every 20 frames: under two a second.
    const r = new Reader().run(60_000, (n) => n % 20 === 19);
    expect(r.moves).toEqual([]);
  });

  test("a camera with one picture size never moves a reader, however far behind", () => {
    const r = new Reader(1).run(30_000, halfBehind);
    expect(r.s.layer).toBe(0);
    expect(r.moves).toEqual([]);
  });
});

describe("a reader that falls behind", () => {
  test("goes down one layer as the window it fell behind in ends, a window to settle between, never below the smallest", () => {
    const r = new Reader().run(10_000, halfBehind);
    expect(r.moves.map((m) => m.layer)).toEqual([1, 2]);
    expect(r.moves[0]!.at).toBeGreaterThanOrEqual(WINDOW_MS);
    expect(r.moves[0]!.at).toBeLessThan(WINDOW_MS + 2 * FRAME_MS);
    expect(r.moves[1]!.at - r.moves[0]!.at).toBeGreaterThanOrEqual(2 * WINDOW_MS);
    expect(r.moves[1]!.at - r.moves[0]!.at).toBeLessThan(2 * WINDOW_MS + 2 * FRAME_MS);
  });

  test("skips in the window after a move down (the larger part still being written) do not send it further", () => {
    const r = new Reader().run(WINDOW_MS, halfBehind).run(WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(1);
    r.run(HOLD_MS - WINDOW_MS, never);
    expect(r.moves.map((m) => m.layer)).toEqual([1]);
  });

  test("a few skips, not a quarter of its frames, keep it where it is", () => {
    // Three skips a second: more than a hiccup, less than falling behind.
    const r = new Reader().run(1100, halfBehind);
    expect(r.s.layer).toBe(1);
    r.run(60_000, (n) => n % 10 === 0);
    expect(r.s.layer).toBe(1);
    expect(r.moves.map((m) => m.layer)).toEqual([1]);
  });

  test("falling behind on the smallest layer keeps it there and restarts its hold", () => {
    const r = new Reader().run(3000, halfBehind);
    expect(r.s.layer).toBe(2);
    r.run(HOLD_MS - 1000, never).run(1000, halfBehind).run(HOLD_MS - 1000, never);
    expect(r.s.layer).toBe(2);
    r.run(2000, never);
    expect(r.s.layer).toBe(1);
  });
});

describe("back up", () => {
  test("after keeping up for the hold, one layer up at a time", () => {
    const r = new Reader().run(3 * WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(2);
    const downAt = r.now;
    r.run(3 * HOLD_MS, never);
    expect(r.moves.map((m) => m.layer)).toEqual([1, 2, 1, 0]);
    const [up1, up0] = r.moves.slice(2).map((m) => m.at);
    // The window to settle, then the hold; the next step the hold alone, within a window: never sooner.
    expect(up1! - downAt).toBeGreaterThanOrEqual(WINDOW_MS + HOLD_MS);
    expect(up1! - downAt).toBeLessThanOrEqual(2 * WINDOW_MS + HOLD_MS + FRAME_MS);
    expect(up0! - up1!).toBeGreaterThanOrEqual(HOLD_MS);
    expect(up0! - up1!).toBeLessThanOrEqual(HOLD_MS + 1000 + FRAME_MS);
  });

  test("a try up that fails doubles the hold before the next, up to the longest", () => {
    // A path that carries the half layer and not the full one: behind whenever it is on the full picture.
    const r = new Reader();
    const onFull = (_n: number) => r.s.layer === 0;
    const alternate = (n: number) => onFull(n) && n % 2 === 1;
    r.run(10 * 60_000, alternate);
    const ups = r.moves.filter((m) => m.layer === 0).map((m) => m.at);
    const downs = r.moves.filter((m) => m.layer === 1).map((m) => m.at);
    expect(ups.length).toBeGreaterThanOrEqual(4);
    // It never went below the layer its path carries.
    expect(r.moves.every((m) => m.layer <= 1)).toBe(true);
    // Each time on the half layer lasts about twice the last, until the longest hold.
    // Each is the window to settle and then the hold.
    const holds = ups.map((at, i) => at - downs[i]! - WINDOW_MS);
    for (const [i, hold] of holds.entries()) {
      const want = Math.min(MAX_HOLD_MS, HOLD_MS * 2 ** i);
      expect(hold).toBeGreaterThanOrEqual(want);
      expect(hold).toBeLessThan(want + WINDOW_MS + 2 * FRAME_MS);
    }
    expect(holds.at(-1)!).toBe(MAX_HOLD_MS);
  });

  test("a step up that holds for the flap window forgives the failed tries: the hold is the base again", () => {
    const r = new Reader();
    // Its first try up fails...
    r.run(WINDOW_MS, halfBehind).run(WINDOW_MS + HOLD_MS, never);
    expect(r.s.layer).toBe(0);
    r.run(WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(1);
    expect(r.s.holdMs).toBe(2 * HOLD_MS);
    r.run(WINDOW_MS + 2 * HOLD_MS, never);
    expect(r.s.layer).toBe(0);
    // ...its second holds on the full picture long enough to count as a path that cleared.
    r.run(FLAP_WINDOW_MS, never).run(WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(1);
    expect(r.s.holdMs).toBe(HOLD_MS);
    r.run(WINDOW_MS + HOLD_MS, never);
    expect(r.s.layer).toBe(0);
  });

  test("a pause in the frames counts as one window of keeping up, not its whole length", () => {
    const r = new Reader().run(1000, halfBehind);
    expect(r.s.layer).toBe(1);
    // A minute without frames (the source paused), then frames again: no step up at once...
    r.now += 60_000;
    r.run(2 * FRAME_MS, never).run(HOLD_MS - 2 * WINDOW_MS, never);
    expect(r.s.layer).toBe(1);
    // ...but once the hold is made up of windows with frames.
    r.run(3 * WINDOW_MS, never);
    expect(r.s.layer).toBe(0);
  });

  test("the hold can be set (tests shorten it); the longest is never below it", () => {
    const r = new Reader(2, { holdMs: 1000, maxHoldMs: 10 }).run(WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(1);
    r.run(WINDOW_MS + 1000, never);
    expect(r.s.layer).toBe(0);
    // A failed try would double the hold, but the longest hold is no shorter than the base.
    r.run(WINDOW_MS, halfBehind);
    expect(r.s.layer).toBe(1);
    expect(r.s.holdMs).toBe(1000);
    r.run(WINDOW_MS + 1000, never);
    expect(r.s.layer).toBe(0);
  });
});
