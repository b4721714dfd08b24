// JPEG passthrough: a source that already delivers JPEG (here an MJPEG AVI, as a
// camera in MJPG mode or a lancam recording) has its frames checked and sent as
// they are; a damaged one is re-encoded or dropped, counted, and never sent broken.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { openSource, type CaptureSource } from "../lib/capture/capture.ts";
import { choosePath, type PathChoice, type SourceFormat } from "../lib/capture/capture-path.ts";
import { checkSourceJpeg, MAX_TRAILING_ZEROS } from "../lib/capture/jpeg-check.ts";
import { cv } from "../lib/native/cv.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { StreamClient } from "../lib/receive/stream-client.ts";
import type { ByeTotals, Report } from "../lib/wire/control.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { sofAt, withSize } from "./helpers/jpeg-bytes.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { take } from "./helpers/take-frames.ts";

const W = 320;
const H = 240;
const FRAMES = 20;
const FPS = 10;
// Frames of the damaged copy (0-based) and what is done to each.
const NO_SOI = 3; // SOI overwritten: no decoder takes it, so it is dropped
const NO_EOI = 7; // EOI overwritten, as if cut short: decodes, so it is re-encoded
const TALLER = 11; // the frame header claims one row more than the stream: dropped

let dir = "";
let clip = "";
let damaged = "";
/** The packets of `clip` as ffmpeg copies them out: the reference for "as in the file". */
let packets: Uint8Array[] = [];

function run(cmd: string[]): void {
  const p = Bun.spawnSync(cmd);
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString()}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-passthrough-"));
  clip = join(dir, "clip.avi");
  const ffmpeg = resolveFfmpeg().path;
  run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${W}x${H}:rate=${FPS}`,
    "-frames:v", String(FRAMES), "-c:v", "mjpeg", "-q:v", "5", clip]);
  const out = join(dir, "packets");
  run(["mkdir", out]);
  run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", clip, "-c", "copy", "-f", "image2", join(out, "%d.jpg")]);
  const names = readdirSync(out).sort((a, b) => parseInt(a) - parseInt(b));
  packets = names.map((n) => new Uint8Array(readFileSync(join(out, n))));
  expect(packets).toHaveLength(FRAMES);

  // The damage is done inside the AVI's frame chunks, so the container stays intact.
  const avi = Buffer.from(readFileSync(clip));
  const at = (i: number) => {
    const offset = avi.indexOf(Buffer.from(packets[i]!));
    if (offset < 0) throw new Error(`frame ${i} not found in the AVI`);
    return offset;
  };
  avi.fill(0, at(NO_SOI), at(NO_SOI) + 2);
  avi.fill(0, at(NO_EOI) + packets[NO_EOI]!.length - 2, at(NO_EOI) + packets[NO_EOI]!.length);
  const sof = at(TALLER) + sofAt(packets[TALLER]!);
  avi.writeUInt16BE(H + 1, sof + 5);
  damaged = join(dir, "damaged.avi");
  writeFileSync(damaged, avi);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe("checkSourceJpeg", () => {
  const good = () => packets[0]!.slice();
  const cases: { name: string; bytes: () => Uint8Array; width?: number; height?: number; why: RegExp | null }[] = [
    { name: "a whole frame of the stream's size", bytes: good, why: null },
    { name: "zero padding after EOI (a camera's whole buffer)", bytes: () => Buffer.concat([good(), new Uint8Array(MAX_TRAILING_ZEROS)]), why: null },
    { name: "more padding than that", bytes: () => Buffer.concat([good(), new Uint8Array(MAX_TRAILING_ZEROS + 1)]), why: /no EOI marker/ },
    { name: "SOI overwritten", bytes: () => Object.assign(good(), { 0: 0, 1: 0 }), why: /no SOI marker \(starts with 00 00 ff e0\)/ },
    { name: "cut short", bytes: () => good().subarray(0, 2000), why: /no EOI marker at the end/ },
    { name: "cut inside the headers", bytes: () => good().subarray(0, 30), why: /no well-formed frame header/ },
    { name: "another size in the frame header", bytes: () => withSize(good(), W, H + 1), why: /frame header says 320x241, the stream is 320x240/ },
    { name: "another stream size", bytes: good, width: 640, height: 480, why: /frame header says 320x240, the stream is 640x480/ },
    { name: "three bytes", bytes: () => new Uint8Array([0xff, 0xd8, 0xff]), why: /3 bytes, too short/ },
    { name: "nothing", bytes: () => new Uint8Array(0), why: /0 bytes, too short/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const why = checkSourceJpeg(c.bytes(), c.width ?? W, c.height ?? H);
      if (c.why === null) expect(why).toBeNull();
      else expect(why).toMatch(c.why);
    });
  }
});

describe("choosePath", () => {
  const file = (fourcc: string, pixelFormat: string): SourceFormat => ({ backend: "FFMPEG", fourcc, pixelFormat });
  const camera = (fourcc: string): SourceFormat => ({ backend: "V4L2", fourcc, pixelFormat: "" });
  const auto = { rawPackets: true, reencode: false };
  const cases: [string, SourceFormat, { rawPackets: boolean; reencode: boolean }, PathChoice][] = [
    ["MJPEG AVI", file("MJPG", "I420"), auto, { path: "passthrough" }],
    ["MJPEG in Matroska (no tag, FFmpeg's codec name)", file("mjpe", "I420"), auto, { path: "passthrough" }],
    ["camera in MJPG mode", camera("MJPG"), auto, { path: "passthrough" }],
    ["MJPEG with --reencode", file("MJPG", "I420"), { rawPackets: true, reencode: true }, { path: "bgr" }],
    ["rawvideo yuv420p", file("I420", "I420"), auto, { path: "yuv", layout: "i420" }],
    ["rawvideo yuyv422", file("YUY2", "YUY2"), auto, { path: "yuv", layout: "yuyv" }],
    ["YUYV camera", camera("YUYV"), auto, { path: "yuv", layout: "yuyv" }],
    ["rawvideo yuv420p with --reencode (it is encoded anyway)", file("I420", "I420"), { rawPackets: true, reencode: true }, { path: "yuv", layout: "i420" }],
    ["H.264 decoding to yuv420p is not raw", file("avc1", "I420"), auto, { path: "bgr" }],
    ["MPEG-4 part 2", file("FMP4", "I420"), auto, { path: "bgr" }],
    ["raw packets off", file("MJPG", "I420"), { rawPackets: false, reencode: false }, { path: "bgr" }],
    ["a GStreamer pipeline", { backend: "GSTREAMER", fourcc: "MJPG", pixelFormat: "" }, auto, { path: "bgr" }],
  ];
  for (const [name, format, opts, want] of cases) test(name, () => expect(choosePath(format, opts)).toEqual(want));
});

describe("an MJPEG file", () => {
  test("is passed through: every frame byte for byte as in the file, nothing encoded", async () => {
    await using source = await openSource({ kind: "file", path: clip }, { quality: 80, fps: 500 });
    const frames = await take(source, FRAMES + 1);
    expect(frames).toHaveLength(FRAMES);
    frames.forEach((f, i) => {
      expect([f.seq, f.width, f.height]).toEqual([i, W, H]);
      expect(same(f.jpeg, packets[i]!)).toBe(true);
    });
    expect(source.stats).toEqual({ capturePath: "passthrough", framesEncoded: 0, framesPassedThrough: FRAMES, framesReencoded: 0, framesBadDropped: 0, framesIdle: 0, cameraOutages: 0 });
  });

  test("looping starts again at the file's first packet", async () => {
    await using source = await openSource({ kind: "file", path: clip }, { quality: 80, fps: 500, loop: true });
    const frames = await take(source, FRAMES + 3);
    expect(frames).toHaveLength(FRAMES + 3);
    for (let i = 0; i < 3; i++) expect(same(frames[FRAMES + i]!.jpeg, packets[i]!)).toBe(true);
    expect(source.stats.framesPassedThrough).toBe(FRAMES + 3);
  });

  test("damaged frames are re-encoded or dropped, counted, and never sent broken", async () => {
    const log = memoryLogger();
    await using source = await openSource({ kind: "file", path: damaged }, { quality: 80, fps: 500, log });
    const frames = await take(source, FRAMES + 1);
    expect(frames).toHaveLength(FRAMES - 2);
    expect(source.stats).toEqual({ capturePath: "passthrough", framesEncoded: 1, framesPassedThrough: FRAMES - 3, framesReencoded: 1, framesBadDropped: 2, framesIdle: 0, cameraOutages: 0 });
    // Frame numbers stay consecutive: a dropped frame is not a network loss.
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
    const fileIndex = [...Array(FRAMES).keys()].filter((i) => i !== NO_SOI && i !== TALLER);
    frames.forEach((f, k) => {
      const i = fileIndex[k]!;
      expect(checkSourceJpeg(f.jpeg, W, H)).toBeNull();
      const decoded = cv().decodeJpeg(f.jpeg);
      expect([decoded.width, decoded.height]).toEqual([W, H]);
      expect(same(f.jpeg, packets[i]!)).toBe(i !== NO_EOI);
    });
    const warnings = log.lines.filter((l) => l.includes("bad frame from the source"));
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toContain("no SOI marker");
    expect(warnings[0]).toContain("(dropped: not a decodable image");
  });

  test("--reencode encodes every frame at --quality instead", async () => {
    await using source = await openSource({ kind: "file", path: clip }, { quality: 30, fps: 500, reencode: true });
    const frames = await take(source, FRAMES + 1);
    expect(frames).toHaveLength(FRAMES);
    expect(source.stats).toMatchObject({ capturePath: "bgr", framesEncoded: FRAMES, framesPassedThrough: 0 });
    const total = (fs: Uint8Array[]) => fs.reduce((n, f) => n + f.length, 0);
    // Quality 30 against the file's -q:v 5: a fraction of the bytes.
    expect(total(frames.map((f) => f.jpeg))).toBeLessThan(0.7 * total(packets));
    for (const f of frames) expect(cv().decodeJpeg(f.jpeg).width).toBe(W);
  });
});

describe("a server on an MJPEG file", () => {
  test(
    "sends a viewer the file's frames byte for byte, and says so in its stop line",
    async () => {
      const log = join(dir, "server.log");
      await using server = spawnBun(["server.ts", "--source", clip, "--loop", "--port", "0", "--log", log]);
      const port = Number((await server.waitFor(/tcp=(\d+)/))[1]);
      const byHash = new Map(packets.map((p, i) => [Bun.hash(p), i]));
      const got: { frameNumber: number; index: number | undefined }[] = [];
      const report = (): Report => ({ type: "report", framesReceived: got.length, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 });
      const totals = (): ByeTotals => ({ framesReceived: got.length, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 });
      await using client = await StreamClient.open({
        host: "127.0.0.1", port, udpPort: 0, report, totals,
        onFrame: (f) => got.push({ frameNumber: f.frameNumber, index: byHash.get(Bun.hash(f.jpeg)) }),
      });
      const running = client.run();
      // More than the file holds, so the loop's wrap is crossed.
      await until(() => got.length >= FRAMES + 5, 15_000, "frames from the server");
      client.stop();
      await running;
      server.proc.kill("SIGTERM");
      await expectExit(server, 0);

      expect(got.every((g) => g.index !== undefined)).toBe(true);
      for (let k = 1; k < got.length; k++) {
        const step = got[k]!.frameNumber - got[0]!.frameNumber;
        expect(got[k]!.index).toBe((got[0]!.index! + step) % FRAMES);
      }
      const stop = server.stderr().split("\n").find((l) => l.includes("stopped")) ?? "";
      expect(stop).toContain("capturePath=passthrough");
      expect(stop).toContain("framesEncoded=0");
      expect(stop).toMatch(/framesPassedThrough=[1-9]/);
    },
    30_000,
  );
});
