import { describe, expect, test } from "bun:test";
import { FecReceiver } from "../lib/receive/fec-receiver.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { decodeParity, encodeParity } from "../lib/wire/fec.ts";
import { prng } from "./helpers/prng.ts";

const rnd = prng(99);
const fragmenter = new Fragmenter(1400);

function sentFrame(seq: number, bytes: number): Uint8Array[] {
  const jpeg = Uint8Array.from({ length: bytes }, () => Math.floor(rnd() * 256));
  return fragmenter.fragment({ seq, capturedAt: 1000 + seq, jpeg }, 5).map((d) => Uint8Array.from(d));
}

/** What a viewer holds of one frame: payload by index. */
class Held {
  readonly payloads = new Map<number, Uint8Array>();
  add(d: Uint8Array): number {
    const { header, payload } = decodeDatagram(d);
    this.payloads.set(header.fragmentIndex, payload);
    return header.fragmentIndex;
  }
  readonly of = (i: number) => this.payloads.get(i);
}

describe("FecReceiver", () => {
  test("at 2 % loss, a frame's datagrams, then its parities: every group with one loss is rebuilt byte-exact", () => {
    let lost = 0;
    let rebuilt = 0;
    let twoInAGroup = 0;
    const fec = new FecReceiver();
    for (let seq = 0; seq < 200; seq++) {
      const sent = sentFrame(seq, 200_000);
      const stride = 15;
      const held = new Held();
      const missing = new Set<number>();
      sent.forEach((d, i) => (rnd() < 0.02 ? missing.add(i) : held.add(d)));
      lost += missing.size;
      for (const p of encodeParity(sent, stride)) {
        const d = fec.parity(decodeParity(p), held.of);
        if (d) {
          const i = held.add(d);
          expect(missing.has(i)).toBe(true);
          expect(Buffer.from(d).equals(Buffer.from(sent[i]!))).toBe(true);
          rebuilt++;
        }
      }
      const perGroup = new Map<number, number>();
      for (const i of missing) perGroup.set(i % stride, (perGroup.get(i % stride) ?? 0) + 1);
      twoInAGroup += [...perGroup.values()].filter((n) => n >= 2).reduce((a, n) => a + n, 0);
      fec.forget(seq);
    }
    expect(rebuilt).toBe(lost - twoInAGroup);
    expect(fec.stats.datagramsRecovered).toBe(rebuilt);
    expect(rebuilt).toBeGreaterThan(0);
    expect(twoInAGroup).toBeGreaterThan(0);
  });

  test("a group short of two: the parity is held, and a resend of one of the two lets it rebuild the other", () => {
    const sent = sentFrame(1, 20_000); // 15 datagrams
    const held = new Held();
    sent.forEach((d, i) => i !== 2 && i !== 6 && held.add(d));
    const fec = new FecReceiver();
    const [p0] = encodeParity(sent, 4).map(decodeParity).filter((p) => p.header.parityIndex === 2);
    expect(fec.parity(p0!, held.of)).toBeNull();
    expect(fec.stats.groupsUnrecoverable).toBe(1);
    held.add(sent[6]!);
    const d = fec.datagram(1, 6, held.of);
    expect(d && Buffer.from(d).equals(Buffer.from(sent[2]!))).toBe(true);
  });

  test("bounded: parities of at most maxFrames frames; duplicates, another interleave and forgotten frames are dropped and counted", () => {
    const fec = new FecReceiver(3);
    const empty = () => undefined;
    for (let seq = 10; seq < 20; seq++) fec.parity(decodeParity(encodeParity(sentFrame(seq, 3000), 1)[0]!), empty);
    expect(fec.framesHeld).toBe(3);
    const sent = sentFrame(19, 3000);
    expect(fec.parity(decodeParity(encodeParity(sent, 1)[0]!), empty)).toBeNull(); // duplicate
    expect(fec.parity(decodeParity(encodeParity(sent, 2)[0]!), empty)).toBeNull(); // another stride
    fec.forget(19);
    expect(fec.parity(decodeParity(encodeParity(sent, 1)[0]!), empty)).toBeNull();
    expect(fec.stats.paritiesDropped).toBe(3);
    expect(fec.framesHeld).toBe(2);
  });
});
