// Quality layers: the addon's scaleJpeg, the encoder that runs it once per frame
// (newest wins), and a server that moves a viewer reporting a slow path to a smaller
// copy of the picture, tells it so, and keeps the full picture for everyone else.
import { describe, expect, test } from "bun:test";
import { cv } from "../lib/native/cv.ts";
import { LayerEncoder, type LayerFrames, type ScaleFunction } from "../lib/send/layer-encoder.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { SIGNATURE_SIZE } from "../lib/net/frame-signature.ts";
import { CAP_PATH_REPORTS, encodeControl, PROTOCOL_VERSION, type ControlMessage, type Delivery } from "../lib/wire/control.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { until } from "./helpers/process.ts";

describe("scaleJpeg", () => {
  test("decodes once and gives each size asked for; bad bytes and a size larger than the picture are reasons, not throws", async () => {
    const [jpeg] = await jpegFrames(1, 640, 480);
    const r = await cv().scaleJpeg(jpeg!, [{ width: 320, height: 240 }, { width: 160, height: 120 }], 80);
    expect(r.jpegs).not.toBeNull();
    expect(r.jpegs!.map((j) => cv().jpegInfo(j))).toEqual([{ width: 320, height: 240 }, { width: 160, height: 120 }]);
    expect(r.jpegs![1]!.length).toBeLessThan(r.jpegs![0]!.length);
    const bad = await cv().scaleJpeg(new Uint8Array([1, 2, 3]), [{ width: 16, height: 16 }], 80);
    expect(bad.jpegs).toBeNull();
    const big = await cv().scaleJpeg(jpeg!, [{ width: 1280, height: 960 }], 80);
    expect(big).toEqual({ jpegs: null, reason: "1280x960 is larger than the picture's 640x480" });
    expect(() => cv().scaleJpeg(jpeg!, [], 80)).toThrow("1 to 4 sizes");
    expect(() => cv().scaleJpeg(jpeg!, [{ width: 1e9, height: 2 }], 80)).toThrow("within the picture limits");
    expect(() => cv().scaleJpeg(jpeg!, [{ width: 320, height: 240 }], 0)).toThrow("quality must be 1..100");
  });
});

describe("LayerEncoder", () => {
  test("one scale at a time; frames pushed meanwhile are replaced by the newest; a failure is counted and the next frame goes on", async () => {
    const calls: number[] = [];
    const pending: (() => void)[] = [];
    const scale: ScaleFunction = (jpeg, sizes) => {
      calls.push(jpeg[0]!);
      return new Promise((resolve) => pending.push(() => resolve(jpeg[0] === 9 ? { jpegs: null, reason: "broken" } : { jpegs: sizes.map(() => new Uint8Array([jpeg[0]!])) })));
    };
    const got: LayerFrames[] = [];
    const enc = new LayerEncoder((f) => void got.push(f), { scale });
    const frame = (seq: number) => ({ seq, capturedAt: 0, width: 640, height: 480, jpeg: new Uint8Array([seq]) });
    const layers = new Map([[1, { width: 320, height: 240 }]]);
    enc.push(frame(1), layers);
    enc.push(frame(2), layers);
    enc.push(frame(9), layers);
    await until(() => pending.length === 1, 1000, "first scale started");
    pending.shift()!();
    await until(() => pending.length === 1, 1000, "the newest frame's scale started");
    pending.shift()!();
    await until(() => enc.stats.failed === 1, 1000, "failure counted");
    expect(calls).toEqual([1, 9]);
    expect(enc.stats).toMatchObject({ scaled: 1, failed: 1, superseded: 1, lastFailure: "broken" });
    expect(got.map((m) => [...m.entries()].map(([i, f]) => [i, f.seq, f.width, f.height]))).toEqual([[[1, 1, 320, 240]]]);
    enc.close();
    enc.push(frame(3), layers);
    expect(pending).toHaveLength(0);
  });
});

interface Viewer {
  messages: ControlMessage[];
  /** Each whole frame's JPEG size, by frame number (signature stripped). */
  sizes: Map<number, { width: number; height: number }>;
  bytes: number;
  datagrams: number;
  udpPort: number;
  send: (msg: ControlMessage) => void;
  close: () => void;
}

async function viewer(tcpPort: number, name: string): Promise<Viewer> {
  const parts = new Map<number, Uint8Array[]>();
  const v: Viewer = { messages: [], sizes: new Map(), bytes: 0, datagrams: 0, udpPort: 0, send: () => {}, close: () => {} };
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1", port: 0,
    socket: {
      data: (_s, buf) => {
        v.bytes += buf.length;
        v.datagrams++;
        const d = decodeDatagram(new Uint8Array(buf));
        const h = d.header;
        const list = parts.get(h.frameNumber) ?? new Array<Uint8Array>(h.fragmentCount);
        list[h.fragmentIndex] = d.payload.slice();
        parts.set(h.frameNumber, list);
        if (list.filter(Boolean).length === h.fragmentCount) {
          const whole = Buffer.concat(list);
          const info = cv().jpegInfo(whole.subarray(0, whole.length - SIGNATURE_SIZE));
          if (info) v.sizes.set(h.frameNumber, info);
          parts.delete(h.frameNumber);
        }
      },
    },
  });
  v.udpPort = udp.port;
  const reader = new MessageReader();
  const sock = await Bun.connect({ hostname: "127.0.0.1", port: tcpPort, socket: { data: (_s, chunk) => void v.messages.push(...reader.push(chunk)) } });
  v.send = (msg) => void sock.write(encodeControl(msg));
  let closed = false;
  v.close = () => {
    if (closed) return;
    closed = true;
    sock.end();
    udp.close();
  };
  v.send({ type: "hello", version: PROTOCOL_VERSION, udpPort: udp.port, capabilities: CAP_PATH_REPORTS, name });
  return v;
}

describe("a server with layers", () => {
  test("sizes a delivery message cannot name are refused at start with what to change", async () => {
    const log = memoryLogger("server");
    const start = (layers: Parameters<typeof StreamServer.start>[0]["layers"]) => StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 640, height: 480, fps: 10 }, layers,
    });
    const four = [{ width: 320, height: 240 }, { width: 240, height: 180 }, { width: 200, height: 150 }, { width: 160, height: 120 }];
    await expect(start({ kind: "sizes", sizes: four })).rejects.toThrow("--layers gives 4 sizes besides the source's 640x480; at most 3");
    await expect(start({ kind: "sizes", sizes: [{ width: 320, height: 8 }] })).rejects.toThrow("--layers size 320x8 is lower than 16");
    await expect(start({ kind: "sizes", sizes: [{ width: 1280, height: 720 }] })).rejects.toThrow("larger than the source's 640x480");
    await using ok = await start({ kind: "sizes", sizes: four.slice(0, 3) });
    expect(ok.port).toBeGreaterThan(0);
  });

  test("a viewer whose reports show heavy loss is told a smaller layer and sent it; the one beside it keeps the full picture", async () => {
    const jpegs = await jpegFrames(4, 640, 480);
    const log = memoryLogger("server");
    await using server = await StreamServer.start({ port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 640, height: 480, fps: 10 } });
    const slow = await viewer(server.port, "slow");
    const free = await viewer(server.port, "free");
    try {
      await until(() => server.clientCount === 2, 3000, "both joined");
      let seq = 0;
      const frame = () => server.broadcast({ seq: seq, capturedAt: seq * 100_000, width: 640, height: 480, jpeg: jpegs[seq++ % jpegs.length]! });
      for (let i = 0; i < 5; i++) {
        frame();
        await until(() => slow.sizes.has(seq - 1) && free.sizes.has(seq - 1), 3000, "frames arrive whole");
      }
      // The slow viewer says most of it was lost: what arrived is a tenth of what left.
      const report = (lostShare: number) => slow.send({
        type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
        path: { bytesReceived: Math.floor(slow.bytes * (1 - lostShare)), datagramsReceived: Math.floor(slow.datagrams * (1 - lostShare)), datagramsLost: Math.floor(slow.datagrams * lostShare), delayTrendUsPerS: 0, delaySamples: 0 },
      });
      // Repeated while it waits: the estimator takes one report per 250 ms and ignores earlier ones.
      await until(() => {
        report(0.9);
        return slow.messages.some((m) => m.type === "delivery");
      }, 3000, "told its layer");
      const told = slow.messages.find((m): m is Delivery => m.type === "delivery")!;
      expect(told.layer).toBeGreaterThan(0);
      expect(told.width).toBeLessThan(640);
      const from = seq;
      for (let i = 0; i < 10; i++) {
        frame();
        await until(() => free.sizes.has(seq - 1), 3000, "free viewer got the frame");
      }
      await until(() => [...slow.sizes.keys()].some((n) => n >= from), 3000, "a smaller frame arrived");
      // Once the smaller copy is measured it may move down one more; never up, never full size.
      const later = [...slow.sizes.entries()].filter(([n]) => n >= from).map(([, s]) => `${s.width}x${s.height}`);
      expect(later.every((s) => s === "320x240" || s === "160x120")).toBe(true);
      const last = slow.messages.filter((m): m is Delivery => m.type === "delivery").at(-1)!;
      expect(later.at(-1)).toBe(`${last.width}x${last.height}`);
      expect([...free.sizes.entries()].filter(([n]) => n >= from).every(([, s]) => s.width === 640 && s.height === 480)).toBe(true);
      expect(free.messages.some((m) => m.type === "delivery")).toBe(false);
      expect(server.stats.layerFramesEncoded).toBeGreaterThan(0);
      // What /state and /metrics are made of: the slow one's layer and estimate; the free one at full size, unlimited.
      const rows = server.viewers();
      const slowRow = rows.find((r) => r.name === "slow")!;
      expect(slowRow.picture).toEqual({ layer: last.layer, width: last.width, height: last.height });
      expect(slowRow.rateBytesPerS).toBeGreaterThan(0);
      expect(rows.find((r) => r.name === "free")).toMatchObject({ picture: { layer: 0, width: 640, height: 480 }, rateBytesPerS: null, framesSkipped: 0 });
      // Its leave line says what it was sent at the end.
      slow.close();
      await until(() => log.lines.some((l) => l.includes("client left") && l.includes(`udp=${slow.udpPort} `)), 3000, "slow viewer's leave line");
      const leave = log.lines.find((l) => l.includes("client left") && l.includes(`udp=${slow.udpPort} `))!;
      expect(leave).toContain(`picture=${last.width}x${last.height}`);
      expect(leave).toMatch(/rateKbps=\d+/);
      expect(leave).toMatch(/framesSkipped=\d+/);
      expect(server.stats.layerChanges).toBe(slow.messages.filter((m) => m.type === "delivery" && m.layer > 0).length);
    } finally {
      slow.close();
      free.close();
    }
  });
});
