import { describe, expect, test } from "bun:test";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { RepairBudget, type RepairBudgetLimits } from "../lib/send/repair-budget.ts";
import { RetransmitRing } from "../lib/send/retransmit-ring.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { entriesFor, GoneReason } from "../lib/wire/repair.ts";
import { prng } from "./helpers/prng.ts";

const fragmenter = new Fragmenter(1400);
const rnd = prng(7);

function jpegOf(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

/** A frame's datagrams as the fragmenter sends them to session 1 (copied: it reuses its buffer). */
function sentFrame(seq: number, bytes = 20_000): Uint8Array[] {
  return fragmenter.fragment({ seq, capturedAt: 1000 + seq, jpeg: jpegOf(bytes) }, 1).map((d) => Uint8Array.from(d));
}

const ROOMY: RepairBudgetLimits = { requestsPerSecond: 1000, requestBurst: 1000, byteFraction: 1, byteBurst: 1e9 };

function budgetWith(bytes: number, limits = ROOMY, now = 0): RepairBudget {
  const b = new RepairBudget(now, limits);
  b.sent(bytes);
  return b;
}

describe("RetransmitRing", () => {
  test("answers with the requested datagrams byte for byte as sent, the session id rewritten", () => {
    const ring = new RetransmitRing();
    const sent = sentFrame(10);
    ring.push(sent, 0);
    const a = ring.answer({ entries: entriesFor(10, [2, 5, 14]) }, 0xbeef, budgetWith(1e6), 5);
    expect(a.gone).toEqual([]);
    expect(a.datagrams.map((d) => decodeDatagram(d).header.fragmentIndex)).toEqual([2, 5, 14]);
    for (const d of a.datagrams) {
      const i = decodeDatagram(d).header.fragmentIndex;
      expect(decodeDatagram(d).header.sessionId).toBe(0xbeef);
      expect(Buffer.from(d.subarray(8)).equals(Buffer.from(sent[i]!.subarray(8)))).toBe(true);
      expect([...d.subarray(0, 4)]).toEqual([...sent[i]!.subarray(0, 4)]);
    }
    expect(ring.datagramsResent).toBe(3);
  });

  test("an encrypted frame's resend decodes with the same ciphertext: the session id is outside what the tag covers", () => {
    const sealer = new FrameSealer({ randomKey: () => new Uint8Array(32).fill(3) });
    const frag = new Fragmenter(1400);
    const { sealed } = sealer.seal({ seq: 3, capturedAt: 5, jpeg: jpegOf(5000) }, frag.sealedFragmentSize);
    const sent = frag.fragmentSealed(sealed, 77).map((d) => Uint8Array.from(d));
    const ring = new RetransmitRing();
    ring.push(sent, 0);
    const [d] = ring.answer({ entries: entriesFor(3, [1]) }, 99, budgetWith(1e6), 1).datagrams;
    expect(decodeDatagram(d!).header).toEqual({ ...decodeDatagram(sent[1]!).header, sessionId: 99 });
    expect(Buffer.from(decodeDatagram(d!).payload).equals(Buffer.from(decodeDatagram(sent[1]!).payload))).toBe(true);
  });

  test("a frame older than the age limit is gone, and said so", () => {
    const ring = new RetransmitRing({ maxAgeMs: 250 });
    ring.push(sentFrame(1), 0);
    ring.push(sentFrame(2), 200);
    const a = ring.answer({ entries: [...entriesFor(1, [0]), ...entriesFor(2, [0]), ...entriesFor(1, [3])] }, 5, budgetWith(1e6), 251);
    expect(a.gone).toEqual([{ reason: GoneReason.Expired, frames: [1] }]);
    expect(a.datagrams).toHaveLength(1);
    expect(ring.framesHeld).toBe(1);
    expect(ring.framesEvicted).toBe(1);
  });

  test("the byte limit holds: the oldest frames go first and bytesHeld never exceeds it", () => {
    const ring = new RetransmitRing({ maxAgeMs: 1e9, maxBytes: 100_000 });
    for (let seq = 0; seq < 50; seq++) {
      ring.push(sentFrame(seq, 10_000 + Math.floor(rnd() * 30_000)), seq);
      expect(ring.bytesHeld).toBeLessThanOrEqual(100_000);
    }
    const a = ring.answer({ entries: [...entriesFor(0, [0]), ...entriesFor(49, [0])] }, 1, budgetWith(1e6), 50);
    expect(a.gone).toEqual([{ reason: GoneReason.Expired, frames: [0] }]);
    expect(a.datagrams).toHaveLength(1);
    expect(ring.framesEvicted).toBe(50 - ring.framesHeld);
  });

  test("one frame number sent at two layers is held twice, and each viewer gets its own layer's bytes", () => {
    const ring = new RetransmitRing();
    const full = sentFrame(8, 20_000);
    const small = sentFrame(8, 5_000);
    ring.push(full, 0, 0);
    ring.push(small, 0, 1);
    const a = ring.answer({ entries: entriesFor(8, [1]) }, 1, budgetWith(1e6), 1, () => 1);
    expect(Buffer.from(a.datagrams[0]!.subarray(8)).equals(Buffer.from(small[1]!.subarray(8)))).toBe(true);
    const b = ring.answer({ entries: entriesFor(8, [1]) }, 1, budgetWith(1e6), 1);
    expect(Buffer.from(b.datagrams[0]!.subarray(8)).equals(Buffer.from(full[1]!.subarray(8)))).toBe(true);
    expect(ring.answer({ entries: entriesFor(8, [1]) }, 1, budgetWith(1e6), 1, () => 2).gone).toEqual([{ reason: GoneReason.Expired, frames: [8] }]);
    expect(() => ring.push(full, 0, 16)).toThrow(RangeError);
  });

  test("a frame the server has not made yet (a forger's number, ahead of the newest) gets no answer at all, not even gone", () => {
    const ring = new RetransmitRing();
    ring.push(sentFrame(8, 20_000), 0, 0);
    const a = ring.answer({ entries: [...entriesFor(9, [0]), ...entriesFor(8, [1])] }, 1, budgetWith(1e6), 1);
    expect(a.datagrams).toHaveLength(1);
    expect(a.gone).toEqual([]);
    expect(ring.framesAhead).toBe(1);
    expect(new RetransmitRing().answer({ entries: entriesFor(1, [0]) }, 1, budgetWith(1e6), 1)).toEqual({ datagrams: [], gone: [], dropped: false });
  });

  test("a frame never sent to the asking viewer is gone as skipped, though another viewer's copy is held", () => {
    const ring = new RetransmitRing();
    ring.push(sentFrame(8, 20_000), 0, 0);
    ring.push(sentFrame(9, 20_000), 0, 0);
    const sentTo = new Map([[9, 0]]);
    const a = ring.answer({ entries: [...entriesFor(8, [0, 1]), ...entriesFor(9, [1])] }, 1, budgetWith(1e6), 1, (fn) => sentTo.get(fn) ?? null);
    expect(a.datagrams).toHaveLength(1);
    expect(a.gone).toEqual([{ reason: GoneReason.Skipped, frames: [8] }]);
    expect(ring.framesSkipped).toBe(1);
    expect(ring.datagramsResent).toBe(1);
  });

  test("a frame larger than the whole ring is not held, and counted", () => {
    const ring = new RetransmitRing({ maxBytes: 10_000 });
    ring.push(sentFrame(1, 20_000), 0);
    expect(ring.framesHeld).toBe(0);
    expect(ring.framesTooLarge).toBe(1);
  });

  test("indexes past the frame's count are ignored and counted", () => {
    const ring = new RetransmitRing();
    ring.push(sentFrame(1, 3000), 0); // 3 datagrams
    const a = ring.answer({ entries: entriesFor(1, [1, 9, 400]) }, 1, budgetWith(1e6), 1);
    expect(a.datagrams).toHaveLength(1);
    expect(ring.badIndexes).toBe(2);
  });
});

describe("RepairBudget: no amplification", () => {
  test("a hostile viewer's flood is bounded to its budget and costs another viewer nothing", () => {
    const limits: RepairBudgetLimits = { requestsPerSecond: 60, requestBurst: 30, byteFraction: 0.2, byteBurst: 1024 * 1024 };
    const ring = new RetransmitRing();
    const hostile = new RepairBudget(0, limits);
    const honest = new RepairBudget(0, limits);
    let hostileOut = 0;
    let honestOut = 0;
    let honestAsked = 0;
    let sentToEach = 0;
    // 2 s at 30 fps; the hostile viewer asks for every datagram of every held frame 100 times a frame.
    for (let seq = 0; seq < 60; seq++) {
      const now = seq * 33;
      const frame = sentFrame(seq);
      ring.push(frame, now);
      const bytes = frame.reduce((n, d) => n + d.length, 0);
      sentToEach += bytes;
      hostile.sent(bytes);
      honest.sent(bytes);
      for (let k = 0; k < 100; k++) {
        const all = { entries: [seq, seq - 1, seq - 2].filter((s) => s >= 0).flatMap((s) => entriesFor(s, Array.from({ length: frame.length }, (_, i) => i))) };
        hostileOut += ring.answer(all, 1, hostile, now).datagrams.reduce((n, d) => n + d.length, 0);
      }
      // The honest viewer lost one datagram this frame.
      honestAsked++;
      honestOut += ring.answer({ entries: entriesFor(seq, [seq % frame.length]) }, 2, honest, now).datagrams.length;
    }
    // Bounded: at most the byte fraction of what it was sent, and at most rate * time + burst messages.
    expect(hostileOut).toBeLessThanOrEqual(sentToEach * limits.byteFraction);
    expect(hostileOut).toBeGreaterThan(sentToEach * limits.byteFraction * 0.8);
    expect(hostile.requestsAllowed).toBeLessThanOrEqual(Math.ceil(limits.requestBurst + (59 * 33 / 1000) * limits.requestsPerSecond));
    expect(hostile.requestsDropped).toBe(6000 - hostile.requestsAllowed);
    expect(hostile.bytesRefused).toBeGreaterThan(0);
    // The honest viewer got every datagram it asked for.
    expect(honestOut).toBe(honestAsked);
    expect(honest.requestsDropped).toBe(0);
  });

  test("a viewer that was sent nothing gets nothing resent", () => {
    const ring = new RetransmitRing();
    ring.push(sentFrame(1), 0);
    const a = ring.answer({ entries: entriesFor(1, [0]) }, 1, new RepairBudget(0), 1);
    expect(a.datagrams).toEqual([]);
    expect(a.gone).toEqual([{ reason: GoneReason.OverBudget, frames: [1] }]);
  });

  test("a message over the request rate is dropped whole and counted", () => {
    const ring = new RetransmitRing();
    ring.push(sentFrame(1), 0);
    const b = budgetWith(1e6, { ...ROOMY, requestBurst: 2, requestsPerSecond: 10 });
    expect(ring.answer({ entries: entriesFor(1, [0]) }, 1, b, 0).dropped).toBe(false);
    expect(ring.answer({ entries: entriesFor(1, [0]) }, 1, b, 0).dropped).toBe(false);
    expect(ring.answer({ entries: entriesFor(1, [0]) }, 1, b, 0)).toEqual({ datagrams: [], gone: [], dropped: true });
    expect(b.requestsDropped).toBe(1);
    // 100 ms later one token is back.
    expect(ring.answer({ entries: entriesFor(1, [0]) }, 1, b, 100).dropped).toBe(false);
  });

  test("limits must be finite and non-negative", () => {
    expect(() => new RepairBudget(0, { ...ROOMY, byteFraction: -1 })).toThrow(RangeError);
    expect(() => new RepairBudget(0, { ...ROOMY, requestsPerSecond: Number.NaN })).toThrow(RangeError);
  });
});
