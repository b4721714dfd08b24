import { describe, expect, test } from "bun:test";
import { decodeDatagram, encodeDatagramHeader, fragmentCountFor, HEADER_SIZE, PayloadType, payloadTypeOf, TAG_SIZE } from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { coveredIndexes, decodeParity, encodeParity, recoverWithParity, type ParityDatagram } from "../lib/wire/fec.ts";
import { prng } from "./helpers/prng.ts";

/** One frame's datagrams as a sender makes them; encrypted ones carry stand-in ciphertext and tag. */
function frameDatagrams(rnd: () => number, o: { length: number; fragmentSize: number; encrypted: boolean; frameNumber?: number }): Uint8Array[] {
  const count = fragmentCountFor(o.length, o.fragmentSize);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const piece = i < count - 1 ? o.fragmentSize : o.length - (count - 1) * o.fragmentSize;
    const d = new Uint8Array(HEADER_SIZE + piece + (o.encrypted ? TAG_SIZE : 0));
    encodeDatagramHeader(d, 0, {
      encrypted: o.encrypted, keyId: o.encrypted ? 7 : undefined, payloadType: PayloadType.Jpeg, sessionId: 0xabcd0123,
      frameNumber: o.frameNumber ?? 4242, fragmentIndex: i, fragmentCount: count, frameLength: o.length, fragmentSize: o.fragmentSize, capturedAt: 1_700_000_000_000_000,
    });
    for (let k = HEADER_SIZE; k < d.length; k++) d[k] = Math.floor(rnd() * 256);
    out.push(d);
  }
  return out;
}

/** What a receiver holding `have` fragments of `sent` gets from every parity. */
function recoverAll(sent: Uint8Array[], parities: ParityDatagram[], lost: Set<number>) {
  const payloadOf = (i: number) => (lost.has(i) ? undefined : decodeDatagram(sent[i]!).payload);
  return parities.map((p) => recoverWithParity(p, payloadOf));
}

describe("parity datagram format", () => {
  const golden = [
    0x4c, 0x43, //             magic "LC"
    0x01, //                   version 1
    0x02, //                   flags: type 1 (parity), not encrypted
    0x00, 0x00, 0x00, 0x09, // session id 9
    0x00, 0x00, 0x00, 0x05, // frame 5
    0x00, 0x01, //             parity index 1
    0x00, 0x02, //             interleave 2: covers fragments 1 and 3
    0x00, 0x00, 0x00, 0x0a, // frame length 10: fragments of 3, 3, 3, 1
    0x00, 0x03, //             fragment size 3
    0x00, 0x00, //             reserved
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // capture time 1000 µs
    0x44 ^ 0x99, 0x55, 0x66, // fragment 1 (44 55 66) XOR fragment 3 (99, padded with zeros)
  ];
  const frame = Uint8Array.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x10, 0x99]);

  function datagramsOfFrame(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      const piece = frame.subarray(i * 3, Math.min(10, i * 3 + 3));
      const d = new Uint8Array(HEADER_SIZE + piece.length);
      encodeDatagramHeader(d, 0, {
        encrypted: false, payloadType: PayloadType.Jpeg, sessionId: 9, frameNumber: 5, fragmentIndex: i, fragmentCount: 4, frameLength: 10, fragmentSize: 3, capturedAt: 1000,
      });
      d.set(piece, HEADER_SIZE);
      out.push(d);
    }
    return out;
  }

  test("encodes the golden bytes, and payloadTypeOf tells it from a JPEG datagram", () => {
    const sent = datagramsOfFrame();
    const parities = encodeParity(sent, 2);
    expect(parities).toHaveLength(2);
    expect([...parities[1]!]).toEqual(golden);
    expect(payloadTypeOf(parities[1]!)).toBe(PayloadType.Parity);
    expect(payloadTypeOf(sent[0]!)).toBe(PayloadType.Jpeg);
    expect(payloadTypeOf(Uint8Array.from([0x4c, 0x43, 0x02, 0x02, ...new Array(28).fill(0)]))).toBeNull();
  });

  test("decodes the golden bytes", () => {
    const p = decodeParity(Uint8Array.from(golden));
    expect(p.header).toEqual({ encrypted: false, sessionId: 9, frameNumber: 5, parityIndex: 1, stride: 2, frameLength: 10, fragmentSize: 3, capturedAt: 1000 });
    expect([...p.parity]).toEqual([0x44 ^ 0x99, 0x55, 0x66]);
  });

  test("rebuilds the last, shorter fragment exactly (no padding left on it)", () => {
    const sent = datagramsOfFrame();
    const r = recoverWithParity(decodeParity(Uint8Array.from(golden)), (i) => (i === 3 ? undefined : decodeDatagram(sent[i]!).payload));
    expect(r.kind).toBe("recovered");
    if (r.kind === "recovered") expect([...r.datagram]).toEqual([...sent[3]!]);
  });

  test("every truncated prefix throws, a byte more throws", () => {
    for (let n = 0; n < golden.length; n++) {
      expect(() => decodeParity(Uint8Array.from(golden.slice(0, n)))).toThrow(DecodeError);
    }
    expect(() => decodeParity(Uint8Array.from([...golden, 0]))).toThrow(DecodeError);
  });

  test("hostile headers: bad index, bad interleave, reserved bits, a JPEG datagram: each a DecodeError", () => {
    const bad = (at: number, v: number) => {
      const b = Uint8Array.from(golden);
      b[at] = v;
      return b;
    };
    expect(() => decodeParity(bad(13, 2))).toThrow(/not below its interleave/); // index 2 of 2
    expect(() => decodeParity(bad(15, 0))).toThrow(/interleave/); // L = 0
    expect(() => decodeParity(bad(15, 5))).toThrow(/interleave/); // L above the 4 fragments
    expect(() => decodeParity(bad(3, 0x12))).toThrow(/not a parity/); // a reserved flag bit
    expect(() => decodeParity(bad(3, 0x00))).toThrow(/not a parity/); // a JPEG datagram
    expect(() => decodeParity(bad(23, 1))).toThrow(/reserved/); // key id without E
    expect(() => decodeParity(bad(0, 0))).toThrow(/magic/);
  });

  test("a stride outside 1..count, or datagrams of more than one frame, are refused by the encoder", () => {
    const sent = frameDatagrams(prng(1), { length: 1000, fragmentSize: 100, encrypted: false });
    expect(() => encodeParity(sent, 0)).toThrow(RangeError);
    expect(() => encodeParity(sent, 11)).toThrow(RangeError);
    expect(() => encodeParity(sent.slice(1), 2)).toThrow(/10 fragments, 9 datagrams/);
    const other = frameDatagrams(prng(1), { length: 1000, fragmentSize: 100, encrypted: false, frameNumber: 1 });
    expect(() => encodeParity([...sent.slice(0, 9), other[9]!], 2)).toThrow(/frame 1/);
  });
});

describe("recovery, property-tested over random frames", () => {
  const rnd = prng(2022);
  const cases = Array.from({ length: 120 }, (_, k) => {
    const fragmentSize = 1 + Math.floor(rnd() * 300);
    const count = 1 + Math.floor(rnd() * 40);
    const length = (count - 1) * fragmentSize + 1 + Math.floor(rnd() * fragmentSize);
    const stride = 1 + Math.floor(rnd() * count);
    return { k, fragmentSize, length, count, stride, encrypted: rnd() < 0.5 };
  });

  test("any one loss in every group is rebuilt byte-exact, header included", () => {
    for (const c of cases) {
      const sent = frameDatagrams(rnd, c);
      const parities = encodeParity(sent, c.stride).map(decodeParity);
      const lost = new Set<number>();
      for (let g = 0; g < c.stride; g++) {
        const members = coveredIndexes(g, c.stride, c.count);
        lost.add(members[Math.floor(rnd() * members.length)]!);
      }
      const results = recoverAll(sent, parities, lost);
      for (const r of results) {
        expect(r.kind).toBe("recovered");
        if (r.kind === "recovered") {
          expect(lost.has(r.index)).toBe(true);
          expect(Buffer.from(r.datagram).equals(Buffer.from(sent[r.index]!))).toBe(true);
          expect(decodeDatagram(r.datagram).header.fragmentIndex).toBe(r.index);
        }
      }
      expect(results.length).toBe(lost.size);
    }
  });

  test("nothing lost: every group is complete", () => {
    for (const c of cases.slice(0, 20)) {
      const sent = frameDatagrams(rnd, c);
      for (const r of recoverAll(sent, encodeParity(sent, c.stride).map(decodeParity), new Set())) expect(r.kind).toBe("complete");
    }
  });

  test("two losses in one group are not recovered, and both are reported missing", () => {
    let tried = 0;
    for (const c of cases) {
      const members = coveredIndexes(0, c.stride, c.count);
      if (members.length < 2) continue;
      tried++;
      const sent = frameDatagrams(rnd, c);
      const lost = new Set([members[0]!, members[members.length - 1]!]);
      const r = recoverWithParity(decodeParity(encodeParity(sent, c.stride)[0]!), (i) => (lost.has(i) ? undefined : decodeDatagram(sent[i]!).payload));
      expect(r).toEqual({ kind: "unrecoverable", missing: [...lost].sort((a, b) => a - b) });
    }
    expect(tried).toBeGreaterThan(30);
  });

  test("a parity datagram is no longer than the frame's full datagrams", () => {
    for (const c of cases) {
      const sent = frameDatagrams(rnd, c);
      const longest = Math.max(...sent.map((d) => d.length));
      for (const p of encodeParity(sent, c.stride)) expect(p.length).toBeLessThanOrEqual(longest);
    }
  });
});
