import { expect, test } from "bun:test";
import { Pacer } from "../lib/pacer.ts";

const grams = (n: number, tag: number) => Array.from({ length: n }, (_, i) => new Uint8Array([tag, i]));
const target = (port: number) => ({ port, address: "127.0.0.1" });

test("a frame's datagrams are spread over the window, the first one at once", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1000), grams(10, 1), 0, 10);
  const sent: number[] = [];
  for (let t = 0; t <= 12; t++) {
    const out: (Uint8Array | number | string)[] = [];
    sent.push(p.due(t, out));
    expect(out.length % 3).toBe(0);
  }
  expect(sent[0]).toBe(1);
  expect(sent.reduce((a, b) => a + b, 0)).toBe(10);
  expect(Math.max(...sent)).toBeLessThanOrEqual(2);
  expect(p.idle).toBe(true);
});

test("each viewer has its own queue, addressed to its own port", () => {
  const p = new Pacer<number>();
  p.enqueue(1, target(1001), grams(3, 1), 0, 0);
  p.enqueue(2, target(1002), grams(2, 2), 0, 0);
  const out: (Uint8Array | number | string)[] = [];
  expect(p.due(0, out)).toBe(5);
  const ports = out.filter((x) => typeof x === "number");
  expect(ports).toEqual([1001, 1001, 1001, 1002, 1002]);
});

test("a newer frame replaces the unsent rest of the older one, and says how much", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1000), grams(10, 1), 0, 100);
  p.due(0, []);
  expect(p.enqueue("a", target(1000), grams(4, 2), 50, 0)).toBe(9);
  const out: (Uint8Array | number | string)[] = [];
  expect(p.due(50, out)).toBe(4);
  expect((out[0] as Uint8Array)[0]).toBe(2);
  p.enqueue("b", target(1), grams(2, 3), 60, 10);
  p.remove("b");
  expect(p.idle).toBe(true);
});

test("datagrams the socket did not take go back to their queues and leave first next time", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1001), grams(3, 1), 0, 0);
  p.enqueue("b", target(1002), grams(2, 2), 0, 0);
  const out: (Uint8Array | number | string)[] = [];
  expect(p.due(0, out)).toBe(5);
  // The socket took 2 of the 5 (a0, a1): a2, b0 and b1 are returned.
  expect(p.unsent(2)).toBe(3);
  expect(p.idle).toBe(false);
  const again: (Uint8Array | number | string)[] = [];
  expect(p.due(1, again)).toBe(3);
  const sent = again.filter((x) => x instanceof Uint8Array).map((d) => `${(d as Uint8Array)[0]}:${(d as Uint8Array)[1]}`);
  expect(sent).toEqual(["1:2", "2:0", "2:1"]);
  expect(p.unsent(3)).toBe(0);
  expect(p.idle).toBe(true);
});
