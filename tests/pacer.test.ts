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

/** `n` datagrams of `size` bytes, tagged `tag` and numbered. */
const sized = (n: number, size: number, tag: number) =>
  Array.from({ length: n }, (_, i) => {
    const d = new Uint8Array(size);
    d[0] = tag;
    d[1] = i;
    return d;
  });

/** Drives the pacer as a caller would: `due` at every time `nextDueMs` names, up to `untilMs`. */
function drain<K>(p: Pacer<K>, send: SendFn<K>, untilMs: number): void {
  for (let next = p.nextDueMs(); next !== null && next <= untilMs; next = p.nextDueMs()) {
    const { sent } = p.due(next, send);
    if (sent === 0) break;
  }
}

test("at a rate, a frame's datagrams go out as the rate allows, the first at once, and nextDueMs says when", () => {
  const p = new Pacer<string>();
  // 10 datagrams of 1000 bytes at 1 MB/s: one a millisecond.
  expect(p.offer("a", target(1000), sized(10, 1000, 1), 0, 1_000_000, 33)).toEqual({ started: true, finishMs: 10 });
  const sock = socket();
  expect(p.due(0, sock.send)).toEqual({ due: 1, sent: 1 });
  expect(p.nextDueMs()).toBe(1);
  expect(p.due(4.5, sock.send)).toEqual({ due: 4, sent: 4 });
  expect(p.nextDueMs()).toBe(5);
  drain(p, sock.send, 100);
  expect(sock.sent.map((s) => Number(s.split(":")[2]))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(p.idle).toBe(true);
  expect(p.nextDueMs()).toBeNull();
});

test("a frame offered while the viewer's previous one is still going out is skipped, and the previous one completes", () => {
  const p = new Pacer<string>();
  const sock = socket();
  p.offer("a", target(1000), sized(10, 1000, 1), 0, 100_000, 33); // 100 ms at this rate
  p.due(0, sock.send);
  expect(p.offer("a", target(1000), sized(10, 1000, 2), 33, 100_000, 33)).toEqual({ started: false, reason: "busy" });
  expect(p.framesSkipped).toBe(1);
  drain(p, sock.send, 95);
  expect(sock.sent.filter((s) => s.startsWith("1000:1:")).length).toBe(10);
  expect(sock.sent.some((s) => s.startsWith("1000:2:"))).toBe(false);
  // Within the tolerance of its end, the next frame queues right behind it: no gap, no skip.
  expect(p.offer("a", target(1000), sized(2, 1000, 3), 95, 100_000, 33)).toEqual({ started: true, finishMs: 120 });
  drain(p, sock.send, 200);
  expect(sock.sent.slice(-2)).toEqual(["1000:3:0", "1000:3:1"]);
});

/**
 * A socket in front of a slow path: it takes everything, and the path carries
 * `bytesPerMs` with a drop-tail queue of `bufferBytes`; `arrived` is what got through.
 */
function slowPath(bytesPerMs: number, bufferBytes: number) {
  const arrived: string[] = [];
  let queued = 0;
  let last = 0;
  const path = {
    arrived,
    nowMs: 0,
    send: ((_key, t, datagrams, from, to) => {
      queued = Math.max(0, queued - (path.nowMs - last) * bytesPerMs);
      last = path.nowMs;
      for (let i = from; i < to; i++) {
        const d = datagrams[i]!;
        if (queued + d.length > bufferBytes) continue;
        queued += d.length;
        arrived.push(`${t.port}:${d[0]}:${d[1]}`);
      }
      return to - from;
    }) as SendFn<string>,
  };
  return path;
}

/** Frames of which all `n` datagrams arrived. */
function complete(arrived: string[], n: number): number {
  const perFrame = new Map<string, number>();
  for (const s of arrived) perFrame.set(s.split(":")[1]!, (perFrame.get(s.split(":")[1]!) ?? 0) + 1);
  return [...perFrame.values()].filter((k) => k === n).length;
}

test("a viewer whose path carries a third of the stream gets every third frame whole, where a free-link spread completes none", () => {
  // 30 fps, 100 KB frames (24 Mbit/s) to a viewer whose path carries 1 MB/s (8 Mbit/s).
  const interval = 1000 / 30;
  const frame = (tag: number) => sized(100, 1000, tag);
  const rated = new Pacer<string>();
  const spread = new Pacer<string>();
  const viaRate = slowPath(1000, 20_000);
  const viaSpread = slowPath(1000, 20_000);
  let started = 0;
  for (let f = 0; f < 30; f++) {
    const now = f * interval;
    if (rated.offer("a", target(1), frame(f), now, 1_000_000, interval).started) started++;
    spread.enqueue("a", target(1), frame(f), now, interval);
    for (let t = now; t < now + interval; t += 0.5) {
      viaRate.nowMs = viaSpread.nowMs = t;
      rated.due(t, viaRate.send);
      spread.due(t, viaSpread.send);
    }
  }
  expect(started).toBe(10);
  expect(rated.framesSkipped).toBe(20);
  expect(complete(viaRate.arrived, 100)).toBe(10);
  expect(viaRate.arrived.length).toBe(1000);
  // Spread over each interval, every frame goes out at 3 MB/s and the path's queue drops its tail.
  expect(complete(viaSpread.arrived, 100)).toBe(0);
  expect(viaSpread.arrived.length).toBeGreaterThan(900);
});

test("a rate carrying one frame per interval starts every frame despite timer jitter", () => {
  const interval = 1000 / 30;
  const p = new Pacer<string>();
  const sock = socket();
  // 33 datagrams of 1000 bytes at 1 MB/s: 33 ms, just inside the interval.
  let started = 0;
  for (let f = 0; f < 30; f++) {
    const now = f * interval + (f % 2 ? -1 : 1);
    if (p.offer("a", target(1), sized(33, 1000, f), now, 1_000_000, interval).started) started++;
    drain(p, sock.send, now + interval - 2);
  }
  expect(started).toBe(30);
  expect(p.framesSkipped).toBe(0);
});

test("a viewer whose socket takes nothing is skipped, not queued behind", () => {
  const p = new Pacer<string>();
  p.offer("a", target(1), sized(5, 1000, 1), 0, 1_000_000, 33);
  p.due(10, socket(0).send);
  expect(p.offer("a", target(1), sized(5, 1000, 2), 33, 1_000_000, 33).started).toBe(false);
  expect(p.nextDueMs()).toBe(0);
  p.remove("a");
  expect(p.idle).toBe(true);
  expect(p.offer("a", target(1), sized(5, 1000, 3), 40, 1_000_000, 33).started).toBe(true);
  expect(() => p.offer("b", target(2), sized(1, 10, 1), 0, 0, 33)).toThrow(RangeError);
  expect(() => p.offer("b", target(2), sized(1, 10, 1), 0, Number.NaN, 33)).toThrow(RangeError);
});

test("nextDueMs follows a free-link spread too, and a viewer back on a free link is spread again", () => {
  const p = new Pacer<string>();
  p.enqueue("a", target(1), grams(10, 1), 0, 10);
  expect(p.nextDueMs()).toBe(0);
  p.due(0, socket().send);
  expect(p.nextDueMs()).toBe(1);
  const q = new Pacer<string>();
  q.offer("b", target(2), sized(10, 1000, 1), 0, 1000, 33); // 10 s at this rate
  q.due(0, socket().send);
  expect(q.enqueue("b", target(2), grams(2, 2), 5, 0)).toBe(9);
  const sock = socket();
  q.due(5, sock.send);
  expect(sock.sent).toEqual(["2:2:0", "2:2:1"]);
  expect(q.offer("b", target(2), sized(1, 1000, 3), 6, 1000, 33).started).toBe(true);
});

test("at every time nextDueMs names, a spread frame has a datagram to send", () => {
  const p = new Pacer<string>();
  // 15 datagrams over 10/3 ms: several of their due times round just below their index.
  p.enqueue("a", target(1), grams(15, 1), 0, 10 / 3);
  const sock = socket();
  for (let i = 0; i < 15; i++) {
    const at = p.nextDueMs()!;
    expect(p.due(at, sock.send).sent).toBeGreaterThanOrEqual(1);
  }
  expect(p.idle).toBe(true);
  expect(sock.sent.length).toBe(15);
});

test("resends to a paced viewer go out at its rate behind its frame, and push its next frame back", () => {
  const p = new Pacer<string>();
  // 1000 B/s, datagrams of 2 bytes: one every 2 ms. A frame of 5 (10 ms), then 3 resends.
  const frame = grams(5, 1);
  expect(p.offer("a", target(1000), frame, 0, 1000, 40)).toEqual({ started: true, finishMs: 10 });
  p.append("a", target(1000), grams(3, 9), 1, 1000);
  const sock = socket();
  expect(p.due(9, sock.send).sent).toBe(5);
  expect(p.nextDueMs()).toBe(10);
  expect(p.due(14, sock.send).sent).toBe(3);
  expect(sock.sent.slice(5)).toEqual(["1000:9:0", "1000:9:1", "1000:9:2"]);
  // The resends took the time the next frame had: it may start only once they had theirs (16 ms).
  expect(p.canStart("a", 16 - 0.25 * 40 - 1, 40)).toBe(false);
  expect(p.canStart("a", 16, 40)).toBe(true);
  expect(() => p.append("a", target(1000), grams(1, 9), 20, 0)).toThrow(RangeError);
});
