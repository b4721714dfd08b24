// The loss-repair units together, over a simulated lossy path: the server's fragmenter,
// FEC policy and encoder, retransmission ring and budget; the control codec carrying
// repair and gone; the viewer's FEC receiver and repair tracker. Every frame must come
// out byte-exact, and the live view must keep nearly all of them.
import { describe, expect, test } from "bun:test";
import { FecReceiver } from "../lib/receive/fec-receiver.ts";
import { RepairTracker } from "../lib/receive/repair.ts";
import { strideFor } from "../lib/send/fec-policy.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { RepairBudget } from "../lib/send/repair-budget.ts";
import { RetransmitRing } from "../lib/send/retransmit-ring.ts";
import { decodeControl, encodeControl } from "../lib/wire/control.ts";
import { decodeDatagram, PayloadType, payloadTypeOf } from "../lib/wire/datagram.ts";
import { decodeParity, encodeParity } from "../lib/wire/fec.ts";
import { prng } from "./helpers/prng.ts";

interface Timed<T> {
  at: number;
  what: T;
}

/** A FIFO whose items are pushed in time order. */
class Queue<T> {
  readonly items: Timed<T>[] = [];
  #head = 0;
  push(at: number, what: T): void {
    this.items.push({ at, what });
  }
  peek(): Timed<T> | undefined {
    return this.items[this.#head];
  }
  shift(): Timed<T> {
    return this.items[this.#head++]!;
  }
}

function run(o: { loss: number; frames: number; frameBytes: number; rttMs: number; fec: "off" | "auto"; seed: number }) {
  const rnd = prng(o.seed);
  const frameMs = 1000 / 30;
  const spacingMs = 0.05;
  const fragmenter = new Fragmenter(1400);
  const ring = new RetransmitRing();
  const budget = new RepairBudget(0);
  const tracker = new RepairTracker({ initialRttMs: o.rttMs, maxDelayMs: 5, recordDelayMs: 500 });
  const fec = new FecReceiver();
  const jpegs: Uint8Array[] = [];
  const toViewer = new Queue<Uint8Array>();
  const toServer = new Queue<Uint8Array>();
  const resends = new Queue<Uint8Array>();
  const goneBack = new Queue<Uint8Array>();
  let bytesSent = 0;
  let parityBytes = 0;

  // The server: every frame fragmented, sent, its parities after it; the path drops at
  // random. It is held for resending (and earns the viewer its budget) at its send time.
  const sendings = new Queue<Uint8Array[]>();
  for (let f = 0; f < o.frames; f++) {
    const jpeg = Uint8Array.from({ length: o.frameBytes + Math.floor(rnd() * 1000) }, () => Math.floor(rnd() * 256));
    jpegs.push(jpeg);
    const t0 = f * frameMs;
    const datagrams = fragmenter.fragment({ seq: f, capturedAt: 1_000_000 + f, jpeg }, 42).map((d) => Uint8Array.from(d));
    sendings.push(t0, datagrams);
    const stride = strideFor({ kind: o.fec }, datagrams.length, o.loss);
    const parities = stride > 0 ? encodeParity(datagrams, stride) : [];
    [...datagrams, ...parities].forEach((d, i) => {
      bytesSent += d.length;
      if (rnd() >= o.loss) toViewer.push(t0 + i * spacingMs + o.rttMs / 2, d);
    });
    for (const p of parities) parityBytes += p.length;
  }

  // The viewer: what it holds of each frame, and how each frame ended.
  const held = new Map<number, Map<number, Uint8Array>>();
  const ended = new Map<number, string>();
  const accept = (d: Uint8Array, now: number) => {
    const { header, payload } = decodeDatagram(d);
    if (ended.has(header.frameNumber)) return;
    let h = held.get(header.frameNumber);
    if (!h) held.set(header.frameNumber, (h = new Map()));
    if (h.has(header.fragmentIndex)) return;
    h.set(header.fragmentIndex, Uint8Array.from(payload));
    tracker.datagram(header, now);
    const rebuilt = fec.datagram(header.frameNumber, header.fragmentIndex, (i) => h.get(i));
    if (rebuilt) accept(rebuilt, now);
  };
  const receive = (d: Uint8Array, now: number) => {
    if (payloadTypeOf(d) === PayloadType.Parity) {
      const p = decodeParity(d);
      tracker.parity(p.header, now);
      const h = held.get(p.header.frameNumber) ?? new Map<number, Uint8Array>();
      const rebuilt = fec.parity(p, (i) => h.get(i));
      if (rebuilt) accept(rebuilt, now);
    } else {
      accept(d, now);
    }
  };
  const settle = (frame: number, how: string) => {
    expect(ended.has(frame)).toBe(false);
    ended.set(frame, how);
    fec.forget(frame);
    if (how === "lost") return;
    const h = held.get(frame)!;
    const whole = Buffer.concat([...h.keys()].sort((a, b) => a - b).map((i) => h.get(i)!));
    expect(whole.equals(Buffer.from(jpegs[frame]!))).toBe(true);
  };

  const end = o.frames * frameMs + 600;
  for (let now = 0; now < end; now += spacingMs) {
    while (sendings.peek() && sendings.peek()!.at <= now) {
      const datagrams = sendings.shift().what;
      ring.push(datagrams, now);
      budget.sent(datagrams.reduce((n, d) => n + d.length, 0));
    }
    for (const q of [toViewer, resends]) while (q.peek() && q.peek()!.at <= now) receive(q.shift().what, now);
    while (goneBack.peek() && goneBack.peek()!.at <= now) {
      const msg = decodeControl(goneBack.shift().what);
      if (msg.type === "gone") tracker.gone(msg.frames);
    }
    // The server answers requests as they arrive.
    while (toServer.peek() && toServer.peek()!.at <= now) {
      const msg = decodeControl(toServer.shift().what);
      if (msg.type !== "repair") throw new Error(`server got ${msg.type}`);
      const a = ring.answer(msg, 42, budget, now);
      for (const d of a.datagrams) if (rnd() >= o.loss) resends.push(now + o.rttMs / 2, d);
      for (const g of a.gone) goneBack.push(now + o.rttMs / 2, encodeControl({ type: "gone", ...g }));
    }
    const out = tracker.poll(now);
    for (const entries of out.requests) toServer.push(now + o.rttMs / 2, encodeControl({ type: "repair", entries }));
    for (const f of out.live) settle(f, "live");
    for (const f of out.recordOnly) settle(f, "record");
    for (const g of out.givenUp) settle(g.frameNumber, "lost");
  }
  const count = (how: string) => [...ended.values()].filter((v) => v === how).length;
  return { ended, live: count("live"), record: count("record"), lost: count("lost"), ring, budget, fec, tracker, bytesSent, parityBytes };
}

describe("loss repair, end to end over a simulated path", () => {
  test("1 % datagram loss on ~150-datagram frames, retransmission only: every frame byte-exact, >= 99 % live, resends within the budget", () => {
    const r = run({ loss: 0.01, frames: 90, frameBytes: 200_000, rttMs: 0.5, fec: "off", seed: 11 });
    expect(r.ended.size).toBe(90);
    expect(r.lost).toBe(0);
    expect(r.live).toBeGreaterThanOrEqual(89);
    expect(r.ring.bytesResent).toBeLessThanOrEqual(r.bytesSent * 0.2);
    expect(r.budget.requestsDropped).toBe(0);
    // Resends stay close to what was lost: about 1 % of the bytes, not a storm.
    expect(r.ring.bytesResent / r.bytesSent).toBeLessThan(0.02);
  });

  test("1 % loss with --fec auto: parity rebuilds most losses, so fewer round trips, every frame still byte-exact", () => {
    const plain = run({ loss: 0.01, frames: 90, frameBytes: 200_000, rttMs: 0.5, fec: "off", seed: 12 });
    const r = run({ loss: 0.01, frames: 90, frameBytes: 200_000, rttMs: 0.5, fec: "auto", seed: 12 });
    expect(r.lost).toBe(0);
    expect(r.live).toBeGreaterThanOrEqual(89);
    expect(r.fec.stats.datagramsRecovered).toBeGreaterThan(0);
    expect(r.tracker.stats.requestMessages).toBeLessThan(plain.tracker.stats.requestMessages / 2);
    expect(r.parityBytes / r.bytesSent).toBeLessThanOrEqual(0.1);
  });

  test("5 % loss: the recorder still gets every frame byte-exact", () => {
    const r = run({ loss: 0.05, frames: 45, frameBytes: 200_000, rttMs: 0.5, fec: "auto", seed: 13 });
    expect(r.lost).toBe(0);
    expect(r.live + r.record).toBe(45);
  });
});
