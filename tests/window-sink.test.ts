import { expect, test } from "bun:test";
import { WindowSink } from "../lib/display/window-sink.ts";

/** A window whose decode takes a little while, like the real one on its worker thread. */
function fakeWindow(keys: number[]) {
  const drawn: number[][] = [];
  const w = {
    showAsync: async (jpeg: Uint8Array) => {
      const copy = [...jpeg]; // what the native side copies before returning
      await Bun.sleep(5);
      drawn.push(copy);
      return true;
    },
    pollKey: () => keys.shift() ?? -1,
  };
  return { w, drawn };
}

test("frames that arrive while one is being drawn replace each other: the newest is drawn next", async () => {
  const { w, drawn } = fakeWindow([]);
  const sink = new WindowSink(w, () => {});
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

test("a key pressed while drawing is handed on", async () => {
  const keys: number[] = [];
  const { w } = fakeWindow([27]);
  const sink = new WindowSink(w, (k) => keys.push(k));
  sink.push(new Uint8Array([1]));
  await sink.idle();
  expect(keys).toEqual([27]);
});

test("a window that fails mid-draw stops the sink quietly; closing it waits for the draw under way", async () => {
  let calls = 0;
  const w = {
    showAsync: async () => {
      calls++;
      await Bun.sleep(5);
      throw new Error("the display went away");
    },
    pollKey: () => -1,
  };
  const sink = new WindowSink(w, () => {});
  sink.push(new Uint8Array([1]));
  sink.push(new Uint8Array([2]));
  await sink.idle();
  sink.push(new Uint8Array([3]));
  await sink.close();
  expect(calls).toBe(1);
  expect(sink.shown).toBe(0);
});
