// The sender's per-viewer delivery on a fake clock and a fake socket: a path-reports
// viewer whose reports show a slow path is paced to it (whole frames, the rest skipped
// and told), moved to a smaller layer when there is one, and nobody else is affected.
import { describe, expect, test } from "bun:test";
import type { udp } from "bun";
import { FrameFanout } from "../lib/send/frame-fanout.ts";
import { newServerStats } from "../lib/send/server-stats.ts";
import type { StreamTarget } from "../lib/send/sessions.ts";
import type { Delivery, PathCounters } from "../lib/wire/control.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";

const FPS = 10;
const FRAME_BYTES = 30_000;

/** A socket that takes everything and remembers, per UDP port, the datagrams sent to it. */
function fakeSocket() {
  const byPort = new Map<number, Uint8Array[]>();
  const socket = {
    sendMany(out: (Uint8Array | number | string)[]) {
      for (let i = 0; i < out.length; i += 3) {
        const port = out[i + 1] as number;
        // Copied, as the kernel does: the sender reuses its buffers.
        byPort.set(port, [...(byPort.get(port) ?? []), (out[i] as Uint8Array).slice()]);
      }
      return out.length / 3;
    },
    send: () => true,
  };
  return { socket: socket as unknown as udp.Socket<"buffer">, byPort };
}

function setup(layers = [{ width: 640, height: 480 }]) {
  let clock = 1000;
  const told: { id: number; msg: Delivery }[] = [];
  const { socket, byPort } = fakeSocket();
  const stats = newServerStats();
  const fanout = new FrameFanout({
    socket, mtu: 1400, fps: FPS, spread: 0, group: null, stats, warnSend: () => {}, layers, now: () => clock, tell: (id, msg) => void told.push({ id, msg }),
  });
  const target = (id: number, pathReports: boolean): StreamTarget => ({ id, address: "127.0.0.1", tcpPort: 1, udpPort: 5000 + id, name: "", delivery: "unicast", pathReports });
  return {
    fanout, stats, told, byPort, target,
    advance: (ms: number) => void (clock += ms),
    get now() {
      return clock;
    },
  };
}

const frame = (seq: number, bytes = FRAME_BYTES): Frame => ({ seq, capturedAt: seq * 100_000, width: 640, height: 480, jpeg: new Uint8Array(bytes).fill(seq & 0xff) });

/** Frames whose every fragment reached `port`, and frames started there but not whole. */
function wholeAndPartial(datagrams: Uint8Array[]): { whole: number; partial: number } {
  const seen = new Map<number, { count: number; got: Set<number> }>();
  for (const d of datagrams) {
    const { header } = decodeDatagram(d);
    const f = seen.get(header.frameNumber) ?? { count: header.fragmentCount, got: new Set<number>() };
    f.got.add(header.fragmentIndex);
    seen.set(header.frameNumber, f);
  }
  let whole = 0;
  for (const f of seen.values()) if (f.got.size === f.count) whole++;
  return { whole, partial: seen.size - whole };
}

const bytesOf = (ds: Uint8Array[] | undefined) => (ds ?? []).reduce((n, d) => n + d.length, 0);

describe("per-viewer delivery in the sender", () => {
  test("a viewer whose reports show a path of a third of the stream gets whole frames at that rate, the rest skipped and told; a free viewer beside it gets every frame", async () => {
    const t = setup();
    t.fanout.start(t.target(1, true));
    t.fanout.start(t.target(2, false));
    let seq = 0;
    let received = 0;
    let receivedGrams = 0;
    // Ten seconds at 10 fps; each second the slow viewer reports what a third of the bytes would be.
    for (let s = 0; s < 10; s++) {
      for (let i = 0; i < FPS; i++) {
        t.fanout.send(frame(seq++), null);
        // The pump's timer is real and this test never waits: each tick sends what the fake clock made due.
        for (let ms = 0; ms < 100; ms += 5) {
          t.advance(5);
          t.fanout.tick(t.now);
        }
      }
      const sent = t.byPort.get(5001) ?? [];
      const path: PathCounters = { bytesReceived: received, datagramsReceived: receivedGrams, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 };
      // What the path carried since the last report: a third of what left for it.
      const newBytes = bytesOf(sent) - bytesOf(sent.slice(0, receivedGrams * 3));
      received = Math.min(bytesOf(sent), received + Math.round(newBytes / 3));
      receivedGrams = Math.min(sent.length, Math.round(receivedGrams + (sent.length - receivedGrams * 3) / 3));
      const verdict = t.fanout.pathReport(1, { ...path, bytesReceived: received, datagramsReceived: receivedGrams, datagramsLost: Math.round(receivedGrams * 2) }, t.now);
      expect(verdict?.kind).not.toBe("refused");
    }
    const slow = t.fanout.sent(1)!.adaptive!;
    expect(slow.rateBytesPerS).not.toBeNull();
    expect(slow.rateBytesPerS!).toBeLessThan(FPS * FRAME_BYTES * 0.6);
    expect(slow.framesSkipped).toBeGreaterThan(20);
    expect(t.stats.framesSkipped).toBe(slow.framesSkipped);
    // What left for it in the last four seconds (paced) is whole frames only, no tails cut off.
    const last = (t.byPort.get(5001) ?? []).filter((d) => decodeDatagram(d).header.frameNumber >= 60 && decodeDatagram(d).header.frameNumber < 95);
    expect(wholeAndPartial(last).partial).toBe(0);
    expect(wholeAndPartial(last).whole).toBeGreaterThan(5);
    // It was told what was skipped, up to which frame.
    const tell = t.told.filter((x) => x.id === 1).at(-1)!.msg;
    expect(tell.framesSkipped).toBeGreaterThan(0);
    expect(tell.skippedThrough).toBeGreaterThan(0);
    expect(tell.layer).toBe(0);
    expect([tell.width, tell.height]).toEqual([640, 480]);
    // The free viewer: no estimate, nothing skipped, all 100 frames whole.
    expect(t.fanout.sent(2)!.adaptive).toBeUndefined();
    expect(t.fanout.sent(2)!.framesSent).toBe(100);
    expect(wholeAndPartial(t.byPort.get(5002)!).whole).toBeGreaterThanOrEqual(99);
    expect(t.told.some((x) => x.id === 2)).toBe(false);
  });

  test("a report claiming more than was sent is refused and counted; it moves nothing, for it or another viewer", () => {
    const t = setup();
    t.fanout.start(t.target(1, true));
    t.fanout.start(t.target(2, true));
    for (let i = 0; i < 5; i++) {
      t.fanout.send(frame(i), null);
      t.advance(100);
    }
    const before = t.fanout.sent(2)!.adaptive!;
    const verdict = t.fanout.pathReport(1, { bytesReceived: 1e12, datagramsReceived: 1, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 }, t.now);
    expect(verdict).toEqual({ kind: "refused", reason: "more than was sent" });
    expect(t.fanout.sent(1)!.adaptive!.reportsRefused).toBe(1);
    expect(t.fanout.sent(1)!.adaptive!.rateBytesPerS).toBeNull();
    expect(t.fanout.sent(2)!.adaptive).toEqual(before);
    // A session that is not paced to its path (or gone) has no report to hear.
    expect(t.fanout.pathReport(99, { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 }, t.now)).toBeNull();
  });

  test("one loss burst at the full rate paces a viewer (a few frames fewer) but keeps its full picture", () => {
    const t = setup([{ width: 640, height: 480 }, { width: 320, height: 240 }, { width: 160, height: 120 }]);
    t.fanout.start(t.target(1, true));
    for (let i = 0; i < 10; i++) {
      t.fanout.send(frame(i), null);
      t.advance(100);
    }
    const sent = t.byPort.get(5001)!;
    const lost = Math.round(sent.length * 0.12);
    const r = { bytesReceived: bytesOf(sent.slice(lost)), datagramsReceived: sent.length - lost, datagramsLost: lost, delayTrendUsPerS: 0, delaySamples: 0 };
    expect(t.fanout.pathReport(1, r, t.now)?.kind).toBe("decrease");
    expect(t.fanout.sent(1)!.adaptive).toMatchObject({ layer: 0, width: 640, height: 480 });
    expect(t.fanout.sent(1)!.adaptive!.rateBytesPerS).not.toBeNull();
    expect(t.fanout.wantedLayers()).toEqual([]);
  });

  test("with layers, a viewer whose path cannot carry the full one is sent the smaller copy only, and told its size; one that stops reporting ends at the lowest", () => {
    const t = setup([{ width: 640, height: 480 }, { width: 320, height: 240 }, { width: 160, height: 120 }]);
    t.fanout.start(t.target(1, true));
    t.fanout.start(t.target(3, true));
    let seq = 0;
    for (let i = 0; i < 10; i++) {
      t.fanout.send(frame(seq++), null);
      t.advance(100);
    }
    const sentBytes = bytesOf(t.byPort.get(5001));
    const sentGrams = t.byPort.get(5001)!.length;
    // Half the datagrams lost: the path carries half of the full layer.
    const r1 = { bytesReceived: Math.round(sentBytes / 2), datagramsReceived: Math.round(sentGrams / 2), datagramsLost: Math.round(sentGrams / 2), delayTrendUsPerS: 0, delaySamples: 0 };
    expect(t.fanout.pathReport(1, r1, t.now)?.kind).toBe("decrease");
    expect(t.fanout.sent(1)!.adaptive!.layer).toBeGreaterThan(0);
    const layer = t.fanout.sent(1)!.adaptive!.layer;
    expect(t.fanout.wantedLayers()).toEqual([layer]);
    const tell = t.told.find((x) => x.id === 1)!.msg;
    expect(tell.layer).toBe(layer);
    expect([tell.width, tell.height]).toEqual(layer === 1 ? [320, 240] : [160, 120]);
    expect(t.stats.layerChanges).toBe(1);
    // The full copy no longer goes to it; its layer's copy does, and to nobody else.
    const before1 = t.byPort.get(5001)!.length;
    const before3 = t.byPort.get(5003)!.length;
    t.fanout.send(frame(seq), null, 0);
    expect(t.byPort.get(5001)!.length).toBe(before1);
    expect(t.byPort.get(5003)!.length).toBeGreaterThan(before3);
    t.fanout.send({ ...frame(seq, 25_000), width: 320, height: 240 }, null, layer);
    expect(t.byPort.get(5001)!.length).toBeGreaterThan(before1);
    expect(t.byPort.get(5003)!.length).toBe(t.byPort.get(5003)!.length);
    expect(t.fanout.layers[layer]!.bytesPerFrame).toBeGreaterThan(25_000);
    // Viewer 3 goes silent: its estimate decays, and it ends on the lowest layer.
    for (let s = 0; s < 12; s++) {
      t.advance(1000);
      t.fanout.tick(t.now);
    }
    expect(t.fanout.sent(3)!.adaptive!.layer).toBe(2);
    expect(t.told.filter((x) => x.id === 3).at(-1)!.msg).toMatchObject({ layer: 2, width: 160, height: 120 });
  });
});
