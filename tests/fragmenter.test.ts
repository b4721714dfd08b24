import { describe, expect, test } from "bun:test";
import { decodeDatagram, HEADER_SIZE, MAX_FRAME_BYTES, MAX_MTU, MIN_MTU } from "../lib/wire/datagram.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { prng } from "./helpers/prng.ts";


function randomBytes(n: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * 256);
  return out;
}

const CAPTURED = 1_700_000_000_123_456;

describe("Fragmenter", () => {
  test("mtu bounds", () => {
    for (const bad of [0, MIN_MTU - 1, MAX_MTU + 1, 1472.5, NaN]) {
      expect(() => new Fragmenter(bad)).toThrow(`invalid mtu=${bad}: expected an integer ${MIN_MTU}..${MAX_MTU}`);
    }
    expect(new Fragmenter(MIN_MTU).payloadSize).toBe(MIN_MTU - HEADER_SIZE);
    expect(new Fragmenter(MAX_MTU).payloadSize).toBe(MAX_MTU - HEADER_SIZE);
    expect(new Fragmenter(1472).payloadSize).toBe(1440);
  });

  test("fragment count for a length", () => {
    const f = new Fragmenter(1472);
    expect(f.fragmentCount(1)).toBe(1);
    expect(f.fragmentCount(1440)).toBe(1);
    expect(f.fragmentCount(1441)).toBe(2);
    expect(f.fragmentCount(150_000)).toBe(105);
  });

  test("datagrams are at most mtu, all full but the last, and carry the frame in order", () => {
    const f = new Fragmenter(1472);
    const jpeg = randomBytes(10_000, 1);
    const datagrams = f.fragment({ seq: 0xfffffffe, capturedAt: CAPTURED, jpeg }, 0xabcdef01);
    expect(datagrams.length).toBe(7);
    const parts: Uint8Array[] = [];
    datagrams.forEach((d, i) => {
      const last = i === datagrams.length - 1;
      expect(d.length).toBe(last ? HEADER_SIZE + 10_000 - 6 * 1440 : 1472);
      const { header, payload } = decodeDatagram(d);
      expect(header).toEqual({
        encrypted: false, payloadType: 0, sessionId: 0xabcdef01, frameNumber: 0xfffffffe, fragmentIndex: i, fragmentCount: 7,
        frameLength: 10_000, fragmentSize: 1440, capturedAt: CAPTURED,
      });
      parts.push(payload.slice());
    });
    expect(Buffer.concat(parts).equals(jpeg)).toBe(true);
  });

  test("a frame of an exact multiple of the payload size ends with a full datagram", () => {
    const f = new Fragmenter(600);
    const datagrams = f.fragment({ seq: 1, capturedAt: 0, jpeg: randomBytes(568 * 3, 2) }, 1);
    expect(datagrams.map((d) => d.length)).toEqual([600, 600, 600]);
  });

  test("a one-byte frame is one datagram", () => {
    const datagrams = new Fragmenter(1472).fragment({ seq: 1, capturedAt: 0, jpeg: Uint8Array.of(0x42) }, 1);
    expect(datagrams.length).toBe(1);
    expect(datagrams[0]!.length).toBe(HEADER_SIZE + 1);
  });

  test("frames survive fragmenting and reassembly, at several mtus", () => {
    for (const mtu of [MIN_MTU, 1472, 9000, MAX_MTU]) {
      const f = new Fragmenter(mtu);
      const r = new Reassembler({ sessionId: 9 });
      for (let seq = 0; seq < 20; seq++) {
        const jpeg = randomBytes(1 + seq * 7919, seq);
        let out = null;
        for (const d of f.fragment({ seq, capturedAt: CAPTURED + seq, jpeg }, 9)) out = r.push(d, seq) ?? out;
        expect(out).not.toBeNull();
        expect(out!.frameNumber).toBe(seq);
        expect(out!.capturedAt).toBe(CAPTURED + seq);
        expect(Buffer.from(out!.jpeg).equals(jpeg)).toBe(true);
      }
      expect(r.stats.framesCompleted).toBe(20);
    }
  });

  test("the largest frame fits even at the smallest mtu", () => {
    const f = new Fragmenter(MIN_MTU);
    const datagrams = f.fragment({ seq: 0, capturedAt: 0, jpeg: new Uint8Array(MAX_FRAME_BYTES) }, 0);
    expect(datagrams.length).toBe(Math.ceil(MAX_FRAME_BYTES / (MIN_MTU - HEADER_SIZE)));
  });

  test("buffers are reused: a smaller or equal frame writes into the same memory", () => {
    const f = new Fragmenter(1472);
    const a = f.fragment({ seq: 1, capturedAt: 0, jpeg: randomBytes(50_000, 3) }, 1);
    const buffer = a[0]!.buffer;
    const capacity = f.capacity;
    for (let seq = 2; seq < 50; seq++) {
      const d = f.fragment({ seq, capturedAt: 0, jpeg: randomBytes(1000 + ((seq * 977) % 49_000), seq) }, 1);
      for (const x of d) expect(x.buffer).toBe(buffer);
    }
    expect(f.capacity).toBe(capacity);
    // The first call's views now show later frames: valid only until the next call.
    expect(decodeDatagram(a[0]!).header.frameNumber).toBe(49);
  });

  test("the buffer grows for a bigger frame, with headroom so the next slightly bigger one fits", () => {
    const f = new Fragmenter(1472);
    f.fragment({ seq: 1, capturedAt: 0, jpeg: new Uint8Array(10_000) }, 1);
    const small = f.capacity;
    const d = f.fragment({ seq: 2, capturedAt: 0, jpeg: new Uint8Array(100_000) }, 1);
    expect(f.capacity).toBeGreaterThan(small);
    const grown = d[0]!.buffer;
    const again = f.fragment({ seq: 3, capturedAt: 0, jpeg: new Uint8Array(110_000) }, 1);
    expect(again[0]!.buffer).toBe(grown);
  });

  test("the returned array is the caller's: a later call does not change its length", () => {
    const f = new Fragmenter(1472);
    const a = f.fragment({ seq: 1, capturedAt: 0, jpeg: new Uint8Array(10_000) }, 1);
    f.fragment({ seq: 2, capturedAt: 0, jpeg: new Uint8Array(100) }, 1);
    expect(a.length).toBe(7);
  });

  test("rejects frames it cannot send, with a clear message", () => {
    const f = new Fragmenter(1472);
    expect(() => f.fragment({ seq: 5, capturedAt: 0, jpeg: new Uint8Array(0) }, 1)).toThrow("frame 5 is empty");
    expect(() => f.fragment({ seq: 6, capturedAt: 0, jpeg: new Uint8Array(MAX_FRAME_BYTES + 1) }, 1)).toThrow(
      `frame 6 is ${MAX_FRAME_BYTES + 1} bytes, above the ${MAX_FRAME_BYTES}-byte maximum`,
    );
    expect(() => f.fragment({ seq: 7, capturedAt: 0, jpeg: new Uint8Array(10) }, 2 ** 32)).toThrow(RangeError);
    expect(() => f.fragment({ seq: -1, capturedAt: 0, jpeg: new Uint8Array(10) }, 1)).toThrow(RangeError);
    expect(() => f.fragment({ seq: 8, capturedAt: 2 ** 53, jpeg: new Uint8Array(10) }, 1)).toThrow(RangeError);
  });
});
