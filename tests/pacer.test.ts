import { expect, test } from "bun:test";
import { Pacer, type SendFn } from "../lib/send/pacer.ts";

const grams = (n: number, tag: number) => Array.from({ length: n }, (_, i) => new Uint8Array([tag, i]));
const target = (port: number) => ({ port, address: "127.0.0.1" });

/** A socket that records what it was given and takes at most `limit` per call. */
function socket(limit = Infinity) {
  const sent: string[] = [];
  const send: SendFn<string | number> = (_key, t, datagrams, from, to) => {
    const took = Math.min(to - from, limit);
    for (let i = from; i < from + took; i++) sent.push(`${t.port}:${datagrams[i]![0]}:${datagrams[i]![1]}`);
    return took;
  };
  return { sent, send };
}

test("a frame's datagrams are spread over the window, the first one at once", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1000), grams(10, 1), 0, 10);
  const sock = socket();
  const perTick: number[] = [];
  for (let t = 0; t <= 12; t++) perTick.push(p.due(t, sock.send).sent);
  expect(perTick[0]).toBe(1);
  expect(perTick.reduce((a, b) => a + b, 0)).toBe(10);
  expect(Math.max(...perTick)).toBeLessThanOrEqual(2);
  expect(sock.sent.map((s) => Number(s.split(":")[2]))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(p.idle).toBe(true);
});

test("each viewer has its own queue, addressed to its own port", () => {
  const p = new Pacer<number>();
  p.enqueue(1, target(1001), grams(3, 1), 0, 0);
  p.enqueue(2, target(1002), grams(2, 2), 0, 0);
  const sock = socket();
  expect(p.due(0, sock.send)).toEqual({ due: 5, sent: 5 });
  expect(sock.sent).toEqual(["1001:1:0", "1001:1:1", "1001:1:2", "1002:2:0", "1002:2:1"]);
});

test("a newer frame replaces the unsent rest of the older one, and says how much", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1000), grams(10, 1), 0, 100);
  p.due(0, socket().send);
  expect(p.enqueue("a", target(1000), grams(4, 2), 50, 0)).toBe(9);
  const sock = socket();
  expect(p.due(50, sock.send).sent).toBe(4);
  expect(sock.sent[0]).toBe("1000:2:0");
  p.enqueue("b", target(1), grams(2, 3), 60, 10);
  p.remove("b");
  expect(p.idle).toBe(true);
});

test("what a viewer's send did not take waits for the next call, without holding up the others", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1001), grams(3, 1), 0, 0);
  p.enqueue("b", target(1002), grams(2, 2), 0, 0);
  const tight = socket(1);
  expect(p.due(0, tight.send)).toEqual({ due: 5, sent: 2 });
  expect(tight.sent).toEqual(["1001:1:0", "1002:2:0"]);
  expect(p.idle).toBe(false);
  const open = socket();
  expect(p.due(1, open.send)).toEqual({ due: 3, sent: 3 });
  expect(open.sent).toEqual(["1001:1:1", "1001:1:2", "1002:2:1"]);
  expect(p.idle).toBe(true);
});
