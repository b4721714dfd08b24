import { describe, expect, test } from "bun:test";
import { RepairServer } from "../lib/send/repair-server.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { decodeDatagram, payloadTypeOf, PayloadType } from "../lib/wire/datagram.ts";
import { GoneReason } from "../lib/wire/repair.ts";

const fragmenter = new Fragmenter(1400);

/** Frame `seq` of `bytes` bytes cut for session `id`, as fresh copies (the fragmenter reuses its buffer). */
function datagrams(seq: number, id: number, bytes = 20_000): Uint8Array[] {
  const jpeg = new Uint8Array(bytes).map((_, i) => (i * 7 + seq) & 0xff);
  return fragmenter.fragment({ seq, capturedAt: 1_000_000 + seq, jpeg }, id).map((d) => Uint8Array.from(d));
}

describe("RepairServer", () => {
  test("resends a lost datagram stamped with the asking viewer's session id, within what its first sends earned", () => {
    const r = new RepairServer({ fec: { kind: "off" } });
    r.join(7, 0);
    r.join(9, 0);
    const sent = r.outgoing(datagrams(1, 7), [7], 0);
    r.outgoing(datagrams(1, 9), [9], 0);
    expect(r.ring.framesHeld).toBe(1);
    const reply = r.repair(9, { type: "repair", entries: [{ frameNumber: 1, first: 3, mask: 0 }] }, 10);
    expect(reply.dropped).toBe(false);
    expect(reply.gone).toEqual([]);
    expect(reply.datagrams.length).toBe(1);
    const h = decodeDatagram(reply.datagrams[0]!).header;
    expect(h.sessionId).toBe(9);
    expect(h.fragmentIndex).toBe(3);
    expect(decodeDatagram(reply.datagrams[0]!).payload).toEqual(decodeDatagram(sent[3]!).payload);
    expect(r.leave(9)).toMatchObject({ datagramsResent: 1, requestsDropped: 0, framesGone: 0 });
  });

  test("answers gone for a frame it no longer holds, and nothing for a viewer that did not negotiate repair", () => {
    const r = new RepairServer({ fec: { kind: "off" }, ring: { maxAgeMs: 100 } });
    r.join(7, 0);
    r.outgoing(datagrams(1, 7), [7], 0);
    r.outgoing(datagrams(2, 7), [7], 500);
    const reply = r.repair(7, { type: "repair", entries: [{ frameNumber: 1, first: 0, mask: 1 }] }, 501);
    expect(reply.gone).toEqual([{ type: "gone", reason: GoneReason.Expired, frames: [1] }]);
    expect(reply.datagrams).toEqual([]);
    expect(r.repair(8, { type: "repair", entries: [{ frameNumber: 2, first: 0, mask: 0 }] }, 501)).toEqual({ datagrams: [], gone: [], dropped: true });
    expect(r.requestsUnknown).toBe(1);
  });

  test("a request flood is bounded: messages over the rate are dropped, bytes never exceed a share of the stream", () => {
    const r = new RepairServer({ fec: { kind: "off" } });
    r.join(7, 0);
    let firstBytes = 0;
    for (const d of r.outgoing(datagrams(1, 7), [7], 0)) firstBytes += d.length;
    let resentBytes = 0;
    let dropped = 0;
    for (let k = 0; k < 10_000; k++) {
      const reply = r.repair(7, { type: "repair", entries: [{ frameNumber: 1, first: 0, mask: 0xffff }] }, 1);
      for (const d of reply.datagrams) resentBytes += d.length;
      if (reply.dropped) dropped++;
    }
    expect(resentBytes).toBeLessThanOrEqual(firstBytes * 0.2 + 1);
    expect(dropped).toBeGreaterThan(9_000);
    expect(r.requestsDropped).toBe(dropped);
  });

  test("--fec: parity follows the frame for a repairing viewer, never for a group with a member that does not repair", () => {
    const r = new RepairServer({ fec: { kind: "percent", percent: 10 } });
    r.join(7, 0);
    const d = datagrams(1, 7);
    const out = r.outgoing(d, [7], 0);
    expect(out.length).toBeGreaterThan(d.length);
    expect(out.slice(0, d.length)).toEqual(d);
    for (const p of out.slice(d.length)) expect(payloadTypeOf(p)).toBe(PayloadType.Parity);
    expect(r.outgoing(datagrams(2, 5), [7, 5], 0).length).toBe(d.length);
    expect(new RepairServer({ fec: { kind: "off" } }).outgoing(d, [7], 0)).toEqual(d);
  });

  test("--fec auto adds parity only once a viewer's reports show loss", () => {
    const r = new RepairServer({ fec: { kind: "auto" } });
    r.join(7, 0);
    const d = datagrams(1, 7, 200_000);
    expect(r.outgoing(d, [7], 0).length).toBe(d.length);
    r.report(7, { datagramsReceived: 0, datagramsLost: 0 });
    r.report(7, { datagramsReceived: 980, datagramsLost: 20 });
    expect(r.outgoing(datagrams(2, 7, 200_000), [7], 0).length).toBeGreaterThan(d.length);
  });
});
