import { describe, expect, test } from "bun:test";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { Reassembler, type ReassembledFrame } from "../lib/receive/reassembler.ts";
import { RepairCounters, RepairSession } from "../lib/receive/repair-session.ts";
import { encodeParity } from "../lib/wire/fec.ts";
import { HEADER_SIZE } from "../lib/wire/datagram.ts";
import { entryIndexes } from "../lib/wire/repair.ts";

const SESSION = 0x1234;
const fragmenter = new Fragmenter(1400);

function frameDatagrams(seq: number, bytes = 12_000): Uint8Array[] {
  const jpeg = new Uint8Array(bytes).map((_, i) => (i * 13 + seq) & 0xff);
  return fragmenter.fragment({ seq, capturedAt: 5_000_000 + seq, jpeg }, SESSION).map((d) => Uint8Array.from(d));
}

/** The StreamClient's glue, without sockets: datagrams into the reassembler (repair mode) and the repair, frames out with their use. */
class Harness {
  readonly counters = new RepairCounters();
  readonly repair = new RepairSession({ maxDelayMs: 5, recordDelayMs: 500, stallMs: 3 }, this.counters);
  readonly frames: { frameNumber: number; use: string }[] = [];
  readonly #r: Reassembler;
  #current: { d: Uint8Array; rebuilt: boolean } | null = null;
  readonly #made: Uint8Array[] = [];

  constructor() {
    this.#r = new Reassembler({
      sessionId: SESSION,
      onAccepted: (h, _bytes, now) => {
        const made = this.repair.accepted(h, this.#current!.d.subarray(HEADER_SIZE), now, this.#current!.rebuilt);
        if (made) this.#made.push(made);
      },
    });
    this.#r.reset(SESSION, null, null, null, { maxInFlight: 16, frameTimeoutMs: 750 });
  }

  push(d: Uint8Array, now: number, rebuilt = false): void {
    this.#current = { d, rebuilt };
    const f: ReassembledFrame | null = this.#r.push(d, now);
    this.#current = null;
    if (f) this.frames.push({ frameNumber: f.frameNumber, use: this.repair.verdict(f.frameNumber, now) ?? "late" });
    for (let m = this.#made.shift(); m; m = this.#made.shift()) this.push(m, now, true);
  }

  parity(p: Uint8Array, now: number): void {
    const made = this.repair.parity(p, SESSION, now);
    if (made) this.push(made, now, true);
  }
}

describe("RepairSession with a repair-mode reassembler", () => {
  test("a lost datagram is asked for once the next frame starts; its resend completes the frame live, after the next one", () => {
    const h = new Harness();
    const a = frameDatagrams(1);
    const b = frameDatagrams(2);
    a.forEach((d, i) => i !== 4 && h.push(d, 0));
    b.forEach((d) => h.push(d, 1));
    expect(h.frames).toEqual([{ frameNumber: 2, use: "live" }]);
    const out = h.repair.poll(1);
    expect(out.requests.flat().map((e) => [e.frameNumber, entryIndexes(e)])).toEqual([[1, [4]]]);
    h.push(a[4]!, 2);
    expect(h.frames).toEqual([{ frameNumber: 2, use: "live" }, { frameNumber: 1, use: "live" }]);
    h.repair.poll(3);
    expect(h.counters.summary()).toMatchObject({ datagramsRepairedByNack: 1, datagramsRepairedByFec: 0, framesRepairedLive: 1, requestMessages: 1 });
  });

  test("a resend past the live wait completes the frame for the recorder only", () => {
    const h = new Harness();
    const a = frameDatagrams(1);
    a.forEach((d, i) => i !== 0 && h.push(d, 0));
    frameDatagrams(2).forEach((d) => h.push(d, 0));
    h.repair.poll(0);
    h.repair.poll(100);
    h.push(a[0]!, 100);
    expect(h.frames.at(-1)).toEqual({ frameNumber: 1, use: "recordOnly" });
    h.repair.poll(101);
    expect(h.counters.summary().framesRecordOnly).toBe(1);
    expect(h.counters.summary().repairDelayMs.p50).toBeGreaterThan(90);
  });

  test("parity after the frame rebuilds a lost datagram without asking", () => {
    const h = new Harness();
    // The stream carries parity: a whole frame and its parity first.
    const z = frameDatagrams(0);
    z.forEach((d) => h.push(d, 0));
    for (const p of encodeParity(z, 3)) h.parity(p, 0);
    const a = frameDatagrams(1);
    const parity = encodeParity(a, 3);
    a.forEach((d, i) => i !== 5 && h.push(d, 0));
    for (const p of parity) h.parity(p, 0);
    expect(h.frames).toEqual([{ frameNumber: 0, use: "live" }, { frameNumber: 1, use: "live" }]);
    const out = h.repair.poll(10);
    expect(out.requests).toEqual([]);
    expect(h.counters.summary()).toMatchObject({ datagramsRepairedByFec: 1, datagramsRepairedByNack: 0, requestMessages: 0 });
  });

  test("while the stream carries no parity no payload is kept: the first frame after parity starts is asked for instead", () => {
    const h = new Harness();
    const a = frameDatagrams(1);
    a.forEach((d, i) => i !== 5 && h.push(d, 0));
    for (const p of encodeParity(a, 3)) h.parity(p, 0);
    expect(h.frames).toEqual([]);
    expect(h.repair.poll(10).requests.length).toBe(1);
    expect(h.counters.summary()).toMatchObject({ datagramsRepairedByFec: 0 });
  });

  test("a frame the server says is gone is given up and counted unrepaired; a parity of another session is dropped", () => {
    const h = new Harness();
    const a = frameDatagrams(1);
    a.forEach((d, i) => i > 2 && h.push(d, 0));
    frameDatagrams(2).forEach((d) => h.push(d, 0));
    h.repair.poll(0);
    h.repair.gone([1]);
    expect(h.repair.poll(1).givenUp).toEqual([]);
    // Waited for until the recorder's deadline (the harness's), then given up as gone.
    const out = h.repair.poll(10_000);
    expect(out.givenUp).toEqual([{ frameNumber: 1, reason: "gone" }]);
    const foreign = encodeParity(frameDatagrams(3), 1)[0]!;
    expect(h.repair.parity(foreign, SESSION + 1, 2)).toBeNull();
    expect(h.counters.summary()).toMatchObject({ framesGivenUp: 1, datagramsUnrepaired: 3, paritiesDropped: 1 });
  });
});
