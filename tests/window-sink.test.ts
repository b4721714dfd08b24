import { expect, test } from "bun:test";
import type { ViewerWindow } from "../lib/viewer-window.ts";
import { WindowSink } from "../lib/window-sink.ts";

function fakeWindow(keys: number[]) {
  const drawn: number[][] = [];
  const w = {
    show: (jpeg: Uint8Array) => {
      drawn.push([...jpeg]);
      return true;
    },
    pollKey: () => keys.shift() ?? -1,
  } as unknown as ViewerWindow;
  return { w, drawn };
}

test("frames that arrive faster than they can be drawn replace each other: only the newest is drawn", async () => {
  const { w, drawn } = fakeWindow([]);
  const sink = new WindowSink(w, () => {});
  const buf = new Uint8Array(3);
  for (const n of [1, 2, 3]) {
    buf.fill(n); // the caller reuses its buffer
    sink.push(buf);
  }
  await new Promise((r) => setImmediate(r));
  expect(drawn).toEqual([[3, 3, 3]]);
  expect({ shown: sink.shown, skipped: sink.skipped }).toEqual({ shown: 1, skipped: 2 });
  sink.push(new Uint8Array([9]));
  await new Promise((r) => setImmediate(r));
  expect(drawn.at(-1)).toEqual([9]);
  expect(sink.shown).toBe(2);
});

test("a key pressed while drawing is handed on", async () => {
  const keys: number[] = [];
  const { w } = fakeWindow([27]);
  const sink = new WindowSink(w, (k) => keys.push(k));
  sink.push(new Uint8Array([1]));
  await new Promise((r) => setImmediate(r));
  expect(keys).toEqual([27]);
});
