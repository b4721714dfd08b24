import { describe, expect, test } from "bun:test";
import { FrameSchedule, MAX_HELD_FRAMES, MAX_HOLD_US } from "../lib/display/frame-schedule.ts";
import { WindowSink, type PictureMeta } from "../lib/display/window-sink.ts";
import { meterText, WindowOverlay } from "../lib/display/window-overlay.ts";
import { keyAction } from "../lib/display/window-keys.ts";
import type { WindowText } from "../lib/native/cv.ts";

describe("FrameSchedule", () => {
  test("a frame is held until its sound plays; without sound, or late, it is shown at once", () => {
    const s = new FrameSchedule<string>();
    expect(s.push("a", null, 1000)).toEqual({ show: "a", dropped: [] });
    expect(s.push("b", 900, 1000)).toEqual({ show: "b", dropped: [] }); // its sound is already heard
    expect(s.push("c", 50_000, 1000)).toEqual({ show: null, dropped: [] });
    expect(s.nextDueAt()).toBe(50_000);
    expect(s.take(49_999)).toEqual({ show: null, dropped: [] });
    expect(s.take(50_000)).toEqual({ show: "c", dropped: [] });
    expect(s.nextDueAt()).toBeNull();
    expect(s.stats).toEqual({ unsynced: 1, held: 1, late: 1, clipped: 0, skipped: 0, overflow: 0 });
  });

  test("several due at once: only the newest is shown", () => {
    const s = new FrameSchedule<number>();
    for (const n of [1, 2, 3, 4]) s.push(n, 10_000 + n * 1000, 0);
    expect(s.take(13_500)).toEqual({ show: 3, dropped: [1, 2] });
    expect(s.take(20_000)).toEqual({ show: 4, dropped: [] });
    expect(s.stats.skipped).toBe(2);
  });

  test("a frame shown at once replaces every older one still held (pictures never go back)", () => {
    const s = new FrameSchedule<number>();
    s.push(1, 80_000, 0);
    s.push(2, 100_000, 0);
    expect(s.push(3, null, 1000)).toEqual({ show: 3, dropped: [1, 2] });
    expect(s.size).toBe(0);
  });

  test("bounded: never held past MAX_HOLD_US after arriving, nor more than MAX_HELD_FRAMES at once", () => {
    const s = new FrameSchedule<number>();
    s.push(0, 10_000_000, 0);
    expect(s.nextDueAt()).toBe(MAX_HOLD_US);
    expect(s.stats.clipped).toBe(1);
    const dropped: number[] = [];
    for (let n = 1; n <= MAX_HELD_FRAMES + 2; n++) dropped.push(...s.push(n, MAX_HOLD_US + n, n).dropped);
    // The oldest gave way.
    expect(dropped).toEqual([0, 1, 2]);
    expect(s.size).toBe(MAX_HELD_FRAMES);
    expect(s.stats.overflow).toBe(3);
  });

  test("a frame never jumps ahead of one held before it (a sound delay that shrank)", () => {
    const s = new FrameSchedule<number>();
    s.push(1, 100_000, 0);
    s.push(2, 90_000, 10_000);
    expect(s.take(95_000)).toEqual({ show: null, dropped: [] });
    expect(s.take(100_000)).toEqual({ show: 2, dropped: [1] });
  });
});

/** A window that draws at once and remembers what and when (on the fake µs clock). */
function recordingWindow(clock: () => number) {
  const drawn: { id: number; at: number }[] = [];
  const texts: string[] = [];
  const keys: number[] = [];
  return {
    drawn, texts, keys,
    w: {
      showAsync: async (jpeg: Uint8Array, text?: WindowText) => {
        drawn.push({ id: jpeg[0]!, at: clock() });
        texts.push(text?.bottom ?? "");
        return true;
      },
      pollKey: () => keys.shift() ?? -1,
      visible: true,
      close: () => {},
      redraw: (text: WindowText) => (texts.push(text.bottom ?? ""), true),
      setFullScreen: () => true,
      fullScreen: false,
    },
  };
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(2);
  }
}

describe("WindowSink with sound", () => {
  test("holds each frame until playoutTimeOf(capturedAt) on its clock, draws it then, and reports when", async () => {
    const clock = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
    const { w, drawn } = recordingWindow(clock);
    const shown: { meta: PictureMeta; at: number }[] = [];
    // The sound of a capture instant is heard 150 ms after it.
    const delay = 150_000;
    await using sink = new WindowSink(w, () => {}, 60_000, {
      playoutTimeOf: (c) => c + delay, clockMicros: clock, onShown: (meta, at) => shown.push({ meta, at }),
    });
    const t = clock();
    for (const id of [1, 2, 3]) sink.push(new Uint8Array([id]), { seq: id, capturedAt: t + id * 33_000 });
    expect(drawn).toEqual([]);
    await until(() => drawn.length === 3);
    for (const [i, d] of drawn.entries()) {
      const due = t + (i + 1) * 33_000 + delay;
      // Not before its sound (timers may fire late on a busy machine, never early by more than a tick).
      expect(d.at).toBeGreaterThanOrEqual(due - 2000);
    }
    expect(shown.map((s) => s.meta.seq)).toEqual([1, 2, 3]);
    expect(shown.map((s) => s.meta.capturedAt)).toEqual([1, 2, 3].map((i) => t + i * 33_000));
    expect(sink.sync).toMatchObject({ held: 3, late: 0 });
    // A frame whose sound has passed is drawn at once; one with no sound too.
    sink.push(new Uint8Array([4]), { seq: 4, capturedAt: t - 1_000_000 });
    await until(() => drawn.length === 4);
    expect(sink.sync.late).toBe(1);
  });

  test("m calls onMute and the meter on the picture says muted", async () => {
    expect(keyAction("m".charCodeAt(0))).toBe("mute");
    expect(keyAction("M".charCodeAt(0))).toBe("mute");
    const clock = () => Date.now() * 1000;
    const { w, texts, keys } = recordingWindow(clock);
    const sound = { muted: false, level: () => -30 };
    const overlay = new WindowOverlay();
    overlay.sound(sound);
    await using sink = new WindowSink(w, () => {}, 5, { overlay, onMute: () => (sound.muted = !sound.muted) });
    sink.push(new Uint8Array([1]));
    await sink.idle();
    expect(texts.at(-1)).toBe("sound [||||||||||..........] -30 dB");
    keys.push("m".charCodeAt(0));
    await until(() => sound.muted && texts.at(-1) === "sound muted (m)");
  });
});

describe("the level meter's text", () => {
  test("a bar of 3 dB cells from -60 dBFS, whole dB; silence and mute said in words", () => {
    expect(meterText(0, false)).toBe("sound [||||||||||||||||||||] 0 dB");
    expect(meterText(-6.2, false)).toBe("sound [||||||||||||||||||..] -6 dB");
    expect(meterText(-96, false)).toBe("sound [....................] silent");
    expect(meterText(-12, true)).toBe("sound muted (m)");
    const o = new WindowOverlay();
    expect(o.text(0).bottom).toBe("");
    o.sound({ muted: false, level: () => -96 });
    o.figures("640x480 30 fps");
    o.toggleInfo();
    expect(o.text(0).bottom).toBe("sound [....................] silent   640x480 30 fps");
  });
});
