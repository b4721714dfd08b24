import { expect, test } from "bun:test";
import { WindowSink, type QuitReason, type ShownPicture } from "../lib/display/window-sink.ts";
import { WindowOverlay } from "../lib/display/window-overlay.ts";
import type { WindowText } from "../lib/native/cv.ts";

/** Long enough that only draws read keys. */
const NO_TIMER = 60_000;

/** A window whose decode takes a little while, like the real one on its worker thread. */
function fakeWindow(keys: number[] = []) {
  const drawn: number[][] = [];
  /** The text of every draw and redraw, in order. */
  const texts: { how: "show" | "redraw"; top: string; bottom: string }[] = [];
  const state = { visible: true, closed: false, polls: 0, fullScreen: false };
  const w = {
    showAsync: async (jpeg: Uint8Array, text?: WindowText) => {
      const copy = [...jpeg]; // what the native side copies before returning
      await Bun.sleep(5);
      drawn.push(copy);
      texts.push({ how: "show", top: text?.top ?? "", bottom: text?.bottom ?? "" });
      return true;
    },
    pollKey: () => {
      state.polls++;
      return keys.shift() ?? -1;
    },
    get visible() {
      return state.visible;
    },
    close: () => {
      state.closed = true;
    },
    redraw: (text: WindowText) => {
      texts.push({ how: "redraw", top: text.top ?? "", bottom: text.bottom ?? "" });
      return true;
    },
    setFullScreen: (on: boolean) => {
      state.fullScreen = on;
      return true;
    },
    get fullScreen() {
      return state.fullScreen;
    },
  };
  return { w, drawn, state, texts, keys };
}

/** Waits for `cond`, polling; fails after `ms`. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(2);
  }
}

test("frames that arrive while one is being drawn replace each other: the newest is drawn next", async () => {
  const { w, drawn } = fakeWindow();
  await using sink = new WindowSink(w, () => {}, NO_TIMER);
  const buf = new Uint8Array(3);
  for (const n of [1, 2, 3, 4]) {
    buf.fill(n); // the caller reuses its buffer
    sink.push(buf);
  }
  await sink.idle();
  // 1 was being drawn when 2, 3 and 4 came; 2 and 3 were replaced before their turn.
  expect(drawn).toEqual([[1, 1, 1], [4, 4, 4]]);
  expect({ shown: sink.shown, skipped: sink.skipped }).toEqual({ shown: 2, skipped: 2 });
  sink.push(new Uint8Array([9]));
  await sink.idle();
  expect(drawn.at(-1)).toEqual([9]);
  expect(sink.shown).toBe(3);
});

test("ESC pressed while drawing quits, once; other keys do not", async () => {
  const { w } = fakeWindow([32, 27, 27]);
  const quits: QuitReason[] = [];
  await using sink = new WindowSink(w, (r) => quits.push(r), NO_TIMER);
  for (const n of [1, 2, 3]) {
    sink.push(new Uint8Array([n]));
    await sink.idle();
    if (n === 1) expect(quits).toEqual([]); // the space bar
  }
  expect(quits).toEqual(["key"]);
});

test("with no frames coming, keys are still read: q quits", async () => {
  const { w, state } = fakeWindow([-1, -1, "q".charCodeAt(0)]);
  const quits: QuitReason[] = [];
  await using _sink = new WindowSink(w, (r) => quits.push(r), 5);
  await until(() => quits.length > 0);
  expect(quits).toEqual(["key"]);
  expect(state.polls).toBeGreaterThanOrEqual(3);
});

test("closing the window with its close button quits once, with that reason", async () => {
  const { w, state } = fakeWindow();
  const quits: QuitReason[] = [];
  await using _sink = new WindowSink(w, (r) => quits.push(r), 5);
  await until(() => state.polls >= 2);
  expect(quits).toEqual([]);
  state.visible = false;
  await until(() => quits.length > 0);
  const polls = state.polls;
  await until(() => state.polls >= polls + 3);
  expect(quits).toEqual(["closed"]);
});

test("disposing it stops reading keys and closes the window", async () => {
  const { w, state } = fakeWindow();
  {
    await using _sink = new WindowSink(w, () => {}, 5);
    await until(() => state.polls >= 1);
    expect(state.closed).toBe(false);
  }
  expect(state.closed).toBe(true);
  const polls = state.polls;
  await Bun.sleep(30);
  expect(state.polls).toBe(polls);
});

test("a window that fails mid-draw stops the sink quietly", async () => {
  let calls = 0;
  const w = {
    showAsync: async () => {
      calls++;
      await Bun.sleep(5);
      throw new Error("the display went away");
    },
    pollKey: () => -1,
    visible: true,
    close: () => {},
    redraw: () => true,
    setFullScreen: () => true,
    fullScreen: false,
  };
  await using sink = new WindowSink(w, () => {}, NO_TIMER);
  sink.push(new Uint8Array([1]));
  sink.push(new Uint8Array([2]));
  await sink.idle();
  sink.push(new Uint8Array([3]));
  await sink.idle();
  expect(calls).toBe(1);
  expect(sink.shown).toBe(0);
});

test("closing waits for the draw under way before it closes the window", async () => {
  let drawing = false;
  const seen = { closedWhileDrawing: null as boolean | null };
  const w = {
    showAsync: async () => {
      drawing = true;
      await Bun.sleep(20);
      drawing = false;
      return true;
    },
    pollKey: () => -1,
    visible: true,
    close: () => {
      seen.closedWhileDrawing = drawing;
    },
    redraw: () => true,
    setFullScreen: () => true,
    fullScreen: false,
  };
  const sink = new WindowSink(w, () => {}, NO_TIMER);
  sink.push(new Uint8Array([1]));
  await sink.close();
  expect(seen.closedWhileDrawing).toBe(false);
  expect(sink.shown).toBe(1);
});

const key = (c: string) => c.charCodeAt(0);

test("s hands over the picture on screen with its frame, not a newer one still waiting; before any, null", async () => {
  const { w, keys, state } = fakeWindow();
  const saved: (ShownPicture | null)[] = [];
  const sink = new WindowSink(w, () => {}, 5, { onSave: (p) => saved.push(p) });
  keys.push(key("s"));
  await until(() => saved.length === 1);
  expect(saved).toEqual([null]);
  await sink.close();

  const second = fakeWindow([key("s")]);
  await using sink2 = new WindowSink(second.w, () => {}, NO_TIMER, { onSave: (p) => saved.push(p) });
  const buf = new Uint8Array(2);
  buf.fill(7);
  sink2.push(buf, { seq: 7, capturedAt: 1_000_000 });
  buf.fill(8); // the caller reuses its buffer; frame 8 waits while 7 is drawn
  sink2.push(buf, { seq: 8, capturedAt: 2_000_000 });
  await sink2.idle();
  // The key was read right after frame 7 was drawn.
  expect(saved[1]).toEqual({ jpeg: new Uint8Array([7, 7]), seq: 7, capturedAt: 1_000_000 });
  expect(second.drawn).toEqual([[7, 7], [8, 8]]);
  expect(state.closed).toBe(true);
});

test("f toggles full screen; i toggles the info line, drawn at once on the last picture", async () => {
  const { w, state, texts, keys } = fakeWindow();
  const overlay = new WindowOverlay();
  overlay.figures("30.0 fps");
  let now = 0;
  await using sink = new WindowSink(w, () => {}, 5, { overlay, now: () => now });
  overlay.status.link("connected", now);
  overlay.status.picture(now);
  sink.push(new Uint8Array([1]), { seq: 1, capturedAt: 0 });
  await sink.idle();
  expect(texts).toEqual([{ how: "show", top: "", bottom: "" }]);
  // Full screen changes the picture's place: it is drawn again at once.
  keys.push(key("f"));
  await until(() => state.fullScreen && texts.length === 2);
  expect(texts[1]).toEqual({ how: "redraw", top: "", bottom: "" });
  keys.push(key("i"));
  await until(() => texts.length === 3);
  expect(texts[2]).toEqual({ how: "redraw", top: "", bottom: "30.0 fps" });
  keys.push(key("F"), key("I"));
  await until(() => !state.fullScreen && texts.length === 5);
  expect(texts.slice(3)).toEqual([{ how: "redraw", top: "", bottom: "30.0 fps" }, { how: "redraw", top: "", bottom: "" }]);
});

test("with no frames coming the last picture is drawn again as its status changes, and a new frame clears it", async () => {
  const { w, texts, state } = fakeWindow();
  const overlay = new WindowOverlay();
  let now = 10_000;
  await using sink = new WindowSink(w, () => {}, 5, { overlay, now: () => now });
  overlay.status.link("connected", now);
  overlay.status.picture(now);
  sink.push(new Uint8Array([1]), { seq: 1, capturedAt: 0 });
  await sink.idle();
  now += 1500; // datagrams stop
  await until(() => texts.length === 2);
  expect(texts[1]).toEqual({ how: "redraw", top: "no datagrams arriving, picture 1.5 s old", bottom: "" });
  now += 100;
  await until(() => texts.length === 3);
  expect(texts[2]!.top).toBe("no datagrams arriving, picture 1.6 s old");
  // Unchanged text is not drawn again.
  const polls = state.polls;
  await until(() => state.polls >= polls + 3);
  expect(texts.length).toBe(3);
  overlay.status.picture(now);
  sink.push(new Uint8Array([2]), { seq: 2, capturedAt: 0 });
  await sink.idle();
  expect(texts.at(-1)).toEqual({ how: "show", top: "", bottom: "" });
});
