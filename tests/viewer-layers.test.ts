// A viewer of a server that moves it between quality layers: frames of two sizes with
// a delivery message between them, some frames skipped by the server and one lost.
import { expect, test } from "bun:test";
import { encodeControl, WELCOME_PATH_REPORTS, type Delivery } from "../lib/wire/control.ts";
import { cv } from "../lib/native/cv.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { Viewer } from "../lib/receive/viewer.ts";
import { FrameCheck } from "../lib/receive/frame-check.ts";
import { RecorderSink } from "../lib/record/recorder-sink.ts";
import { SegmentWriter, type SegmentInfo } from "../lib/record/segment-writer.ts";
import { fakeServer, welcome } from "./helpers/fake-server.ts";
import { until } from "./helpers/process.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";
import { spawnBun } from "./helpers/process.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";

const tempDir = tempDirs("lancam-layers-");
const SESSION = 11;
const FPS = 10;

function jpeg(n: number, w: number, h: number): Uint8Array {
  const bgr = new Uint8Array(w * h * 3).map((_, i) => (i * 7 + n * 31) & 0xff);
  return cv().encodeJpeg(bgr, w, h, 90);
}

test("frames of two layers with a delivery message between them: two playable segments, counted by size, skipped apart from lost", async () => {
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let viewerUdp = 0;
  let control: { write(b: Uint8Array): number } | null = null;
  using server = fakeServer((hello, socket) => {
    viewerUdp = hello.udpPort;
    control = socket as unknown as { write(b: Uint8Array): number };
    return encodeControl(welcome({ sessionId: SESSION, width: 128, height: 96, fpsMillihertz: FPS * 1000, fragmentSize: 1368, udpSourcePort: sender.port, flags: WELCOME_PATH_REPORTS }));
  });
  const segments: SegmentInfo[] = [];
  const recorder = new RecorderSink({
    log: silentLogger,
    open: (fps) => SegmentWriter.open({ dir: tempDir(), segmentSeconds: 60, container: "avi", fps, log: silentLogger, onSegment: (i) => segments.push(i) }),
  });
  const check = new FrameCheck();
  const viewer = new Viewer({
    host: "127.0.0.1", port: server.port, udpPort: 0, log: silentLogger,
    sinks: [recorder.write, (f) => check.check(f.jpeg, f.width, f.height)],
    onWelcome: (w) => recorder.onStreamRate(w.fpsMillihertz / 1000),
  });
  const running = viewer.run();
  try {
    await until(() => viewerUdp !== 0 && control !== null && recorder.fps !== null, 5000, "hello, welcome and the recorder open");
    const frag = new Fragmenter(1400);
    // Capture times on the stream's 10 fps grid, so the recording has no holes to fill.
    const t0 = Date.now() * 1000 - 10_000_000;
    const send = async (n: number, w: number, h: number) => {
      for (const g of frag.fragment({ seq: n, capturedAt: t0 + n * 100_000, jpeg: jpeg(n, w, h) }, SESSION)) sender.send(g, viewerUdp, "127.0.0.1");
      await until(() => viewer.stats.framesReceived + viewer.stats.framesRejected >= sent, 5000, `frame ${n}`);
    };
    let sent = 0;
    for (let n = 0; n < 10; n++) (sent++, await send(n, 128, 96));
    // The server skips frames 10 and 11 and moves the viewer to the half layer; frame 13 is lost
    // on the way. The first half-size frames overtake the delivery message (UDP and TCP race):
    // they are taken all the same, and their gaps count as missing until it comes.
    const delivery: Delivery = { type: "delivery", layer: 1, width: 64, height: 48, rateBytesPerS: 12_500, framesSkipped: 2, skippedThrough: 11 };
    for (const n of [12, 14]) (sent++, await send(n, 64, 48));
    expect([viewer.stats.framesMissing, viewer.stats.framesSkipped, viewer.stats.framesRejected]).toEqual([3, 0, 0]);
    control!.write(encodeControl(delivery));
    await until(() => viewer.stats.framesSkipped === 2, 5000, "the skipped frames counted");
    for (let n = 15; n < 22; n++) (sent++, await send(n, 64, 48));
  } finally {
    viewer.stop();
    await running;
    await recorder.close();
    sender.close();
  }
  const stats = viewer.stats.summary({});
  expect(stats.framesBySize).toEqual({ "128x96": 10, "64x48": 9 });
  expect(stats.framesSkipped).toBe(2);
  expect(stats.framesMissing).toBe(1);
  expect(stats.framesRejected).toBe(0);
  // Every frame number from 0 to 21 is received, lost or skipped.
  expect(stats.framesReceived + stats.framesMissing + stats.framesIncomplete + stats.framesSkipped).toBe(22);
  expect(check.counts).toEqual({ decoded: 19, failed: 0, wrongSize: 0 });
  expect(recorder.stats.framesWritten).toBe(19);
  // What the viewer tells the server keeps its meaning: every frame it did not get (the server knows which it skipped).
  await until(() => server.heard.some((m) => m.type === "bye"), 3000, "the goodbye at the server");
  expect(server.heard.findLast((m) => m.type === "bye")).toMatchObject({ totals: { framesReceived: 19, framesLost: 3, framesIncomplete: 0 } });
  segments.sort((a, b) => a.startedAt - b.startedAt);
  const probes = await Promise.all(segments.map((s) => probeVideo(s.path)));
  expect(probes.map((p) => `${p.codec} ${p.width}x${p.height}`)).toEqual(["mjpeg 128x96", "mjpeg 64x48"]);
  expect(segments.map((s) => s.frames)).toEqual([10, 9]);
}, 30_000);

test("client.ts against a server that moves it to the half layer: two playable recordings, --stats by size, skipped apart, no wrong size", async () => {
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let viewerUdp = 0;
  let control: { write(b: Uint8Array): number } | null = null;
  using server = fakeServer((hello, socket) => {
    viewerUdp = hello.udpPort;
    control = socket as unknown as { write(b: Uint8Array): number };
    return encodeControl(welcome({ sessionId: SESSION, width: 128, height: 96, fpsMillihertz: FPS * 1000, fragmentSize: 1368, udpSourcePort: sender.port, flags: WELCOME_PATH_REPORTS }));
  });
  const dir = tempDir();
  const out = join(dir, "rec");
  const statsPath = join(dir, "stats.json");
  await using client = spawnBun(["client.ts", "127.0.0.1", String(server.port), "0", "--no-window", "--verify", "--out", out, "--frames", "19", "--stats", statsPath]);
  try {
    // Datagrams count from the welcome on: wait until the client has taken it.
    await client.waitFor(/INFO \[client\] connected /, 10_000, "stderr");
    expect(viewerUdp !== 0 && control !== null).toBe(true);
    // The recorder opens after the welcome; frames before that are held, so none is lost to it.
    const frag = new Fragmenter(1400);
    const t0 = Date.now() * 1000 - 10_000_000;
    const send = async (n: number, w: number, h: number) => {
      for (const g of frag.fragment({ seq: n, capturedAt: t0 + n * 100_000, jpeg: jpeg(n, w, h) }, SESSION)) sender.send(g, viewerUdp, "127.0.0.1");
      // Paced like a 10 fps stream would be, loosely: the client has no way to say it got a frame.
      await Bun.sleep(30);
    };
    for (let n = 0; n < 10; n++) await send(n, 128, 96);
    control!.write(encodeControl({ type: "delivery", layer: 1, width: 64, height: 48, rateBytesPerS: 12_500, framesSkipped: 2, skippedThrough: 11 }));
    await until(() => client.stderr().includes("layer=1"), 5000, "the client to log the new layer");
    for (let n = 12; n < 22; n++) if (n !== 13) await send(n, 64, 48);
    // --frames 19 ends it once every frame sent has come.
    const code = await Promise.race([client.exited, Bun.sleep(10_000).then(() => null)]);
    expect({ code, stderr: code === 0 ? "" : client.stderr() }).toEqual({ code: 0, stderr: "" });
  } finally {
    sender.close();
  }
  const stats = JSON.parse(readFileSync(statsPath, "utf8")) as StatsSummary & { verify: { decoded: number; failed: number; wrongSize: number }; recording: { framesWritten: number } };
  expect(stats).toMatchObject({
    framesReceived: 19, framesBySize: { "128x96": 10, "64x48": 9 }, framesSkipped: 2, framesMissing: 1, framesIncomplete: 0, framesRejected: 0,
    verify: { decoded: 19, failed: 0, wrongSize: 0 }, recording: { framesWritten: 19 },
  });
  const files = listFiles(out).filter((f) => f.endsWith(".avi"));
  expect(files).toHaveLength(2);
  const probes = await Promise.all(files.map((f) => probeVideo(join(out, f))));
  expect(probes.map((p) => `${p.codec} ${p.width}x${p.height}`).sort()).toEqual(["mjpeg 128x96", "mjpeg 64x48"]);
}, 40_000);
