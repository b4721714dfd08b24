import { expect, test } from "bun:test";
import { WindowSink, type QuitReason } from "../lib/display/window-sink.ts";

/** Long enough that only draws read keys. */
const NO_TIMER = 60_000;

/** A window whose decode takes a little while, like the real one on its worker thread. */
function fakeWindow(keys: number[] = []) {
  const drawn: number[][] = [];
  const state = { visible: true, closed: false, polls: 0 };
  const w = {
    showAsync: async (jpeg: Uint8Array) => {
      const copy = [...jpeg]; // what the native side copies before returning
      await Bun.sleep(5);
      drawn.push(copy);
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
  };
  return { w, drawn, state };
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
  };
  const sink = new WindowSink(w, () => {}, NO_TIMER);
  sink.push(new Uint8Array([1]));
  await sink.close();
  expect(seen.closedWhileDrawing).toBe(false);
  expect(sink.shown).toBe(1);
});
