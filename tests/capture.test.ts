import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CaptureError, FramePacer, openSource, type CaptureSource } from "../lib/capture/capture.ts";
import { cv } from "../lib/native/cv.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { StreamClient } from "../lib/receive/stream-client.ts";
import type { ByeTotals, Report } from "../lib/wire/control.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";
import { take } from "./helpers/take-frames.ts";

const CLIP_FRAMES = 30;
const CLIP_FPS = 25;
let dir = "";
let clip = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-capture-"));
  clip = join(dir, "clip.mp4");
  const ffmpeg = resolveFfmpeg().path;
  const p = Bun.spawnSync([
    ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc=size=320x240:rate=${CLIP_FPS}`,
    "-frames:v", String(CLIP_FRAMES), "-c:v", "mpeg4", "-q:v", "3", clip,
  ]);
  if (p.exitCode !== 0) throw new Error(`ffmpeg failed: ${p.stderr.toString()}`);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function expectSeqFromZero(frames: Frame[]): void {
  expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
  for (let i = 1; i < frames.length; i++) expect(frames[i]!.capturedAt).toBeGreaterThan(frames[i - 1]!.capturedAt);
}

describe("FramePacer", () => {
  test("frame k is due at start + k/fps, never before now", () => {
    const pacer = new FramePacer(10);
    expect(pacer.schedule(1000)).toBe(1000);
    expect(pacer.schedule(1001)).toBe(1100);
    expect(pacer.schedule(1150)).toBe(1200);
    // Slightly late (within one interval): out at once, schedule kept.
    expect(pacer.schedule(1250)).toBe(1300);
    expect(pacer.schedule(1390)).toBe(1400);
  });

  test("a long stall re-anchors instead of bursting", () => {
    const pacer = new FramePacer(10);
    pacer.schedule(0);
    expect(pacer.schedule(5000)).toBe(5000);
    expect(pacer.schedule(5001)).toBe(5100);
    expect(pacer.schedule(5100)).toBe(5200);
  });
});

describe("file source", () => {
  test(
    "yields every frame at the file's size and rate, then null",
    async () => {
      await using source = await openSource({ kind: "file", path: clip }, { quality: 80 });
      expect(source.description).toBe(`file:${clip}`);
      expect([source.width, source.height, source.fps]).toEqual([320, 240, CLIP_FPS]);
      const start = performance.now();
      const frames = await take(source, CLIP_FRAMES + 5);
      const elapsed = performance.now() - start;
      expect(frames.length).toBe(CLIP_FRAMES);
      expect(await source.next()).toBeNull();
      expectSeqFromZero(frames);
      for (const f of frames) {
        expect([f.width, f.height]).toEqual([320, 240]);
        const img = cv().decodeJpeg(f.jpeg);
        expect([img.width, img.height]).toEqual([320, 240]);
      }
      // Paced to 25 fps: frame 29 is not out before 29/25 s.
      expect(elapsed).toBeGreaterThanOrEqual(((CLIP_FRAMES - 1) / CLIP_FPS) * 1000 - 5);
    },
    10_000,
  );

  test(
    "loop keeps going past the end; --fps overrides the file's rate",
    async () => {
      await using source = await openSource({ kind: "file", path: clip }, { quality: 70, loop: true, fps: 200 });
      expect(source.fps).toBe(200);
      const frames = await take(source, CLIP_FRAMES * 2 + 10);
      expect(frames.length).toBe(CLIP_FRAMES * 2 + 10);
      expectSeqFromZero(frames);
    },
    10_000,
  );

  test("a missing file fails with the documented message", async () => {
    const missing = join(dir, "nope.mp4");
    const open = openSource({ kind: "file", path: missing }, { quality: 80 });
    await expect(open).rejects.toThrow(CaptureError);
    await expect(openSource({ kind: "file", path: missing }, { quality: 80 })).rejects.toThrow(
      `cannot open video file ${missing}: no such file; use --source test for the built-in test pattern`,
    );
  });

  test("a file that is not a video fails clearly", async () => {
    // Random bytes: FFmpeg would play a text file (its "tty" demuxer renders ANSI art).
    const junk = join(dir, "junk.mp4");
    let x = 12345;
    writeFileSync(junk, Uint8Array.from({ length: 20_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
    await expect(openSource({ kind: "file", path: junk }, { quality: 80 })).rejects.toThrow(
      `cannot open video file ${junk}: OpenCV cannot read it (not a video, or an unsupported codec); use --source test for the built-in test pattern`,
    );
  });

  test("a file or a pipeline whose pictures are larger than 7680x4320 is a clear error at open, before any frame", async () => {
    const big = join(dir, "wide.avi");
    const p = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=size=7696x64:rate=5",
      "-frames:v", "2", "-c:v", "mjpeg", "-q:v", "5", big]);
    expect(p.exitCode).toBe(0);
    await expect(openSource({ kind: "file", path: big }, { quality: 80 })).rejects.toThrow(
      `file:${big}: its pictures are 7696x64, larger than the largest lancam takes, 7680x4320`,
    );
    const pipeline = "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=4336 ! videoconvert ! appsink";
    await expect(openSource({ kind: "gst", pipeline }, { quality: 80 })).rejects.toThrow(
      `gst:${pipeline}: its pictures are 64x4336, larger than the largest lancam takes, 7680x4320`,
    );
  });

  test("after close, next() is null", async () => {
    const source = await openSource({ kind: "file", path: clip }, { quality: 80 });
    expect(await source.next()).not.toBeNull();
    await source.close();
    expect(await source.next()).toBeNull();
    await source.close();
  });
});

describe("camera source", () => {
  test("a camera that does not exist fails with the documented message", async () => {
    await expect(openSource({ kind: "camera", index: 57 }, { quality: 80 })).rejects.toThrow(
      "cannot open camera:57 (no such device): check the camera (--list-cameras shows those there are) or use --source test",
    );
  });
});

describe("GStreamer pipeline source", () => {
  const PIPELINE = "videotestsrc ! video/x-raw,width=320,height=240,framerate=20/1 ! videoconvert ! appsink";

  test("a pipeline ending in appsink yields JPEG frames of its size, in order", async () => {
    await using source = await openSource({ kind: "gst", pipeline: PIPELINE }, { quality: 80 });
    expect({ w: source.width, h: source.height, fps: source.fps }).toEqual({ w: 320, h: 240, fps: 20 });
    const frames = await take(source, 10);
    expect(frames).toHaveLength(10);
    expectSeqFromZero(frames);
    const img = cv().decodeJpeg(frames[9]!.jpeg);
    expect([img.width, img.height]).toEqual([320, 240]);
  }, 20_000);

  test("a pipeline that cannot start fails with a message naming it and suggesting --source test", async () => {
    const bad = "nosuchelement ! appsink";
    const err = await openSource({ kind: "gst", pipeline: bad }, { quality: 80 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as Error).message).toContain(bad);
    expect((err as Error).message).toContain("--source test");
  }, 20_000);
});

describe("native capture", () => {
  test("a second concurrent read is rejected, the first completes; reads after release reject", async () => {
    const cap = new (cv().Capture)();
    expect(cap.isOpened()).toBe(false);
    expect(await cap.open(clip)).toBe(true);
    expect(cap.isOpened()).toBe(true);
    const first = cap.readJpeg(80);
    await expect(cap.readJpeg(80)).rejects.toThrow(/capture is busy/);
    expect(() => cap.get("width")).toThrow(/capture is busy/);
    const got = await first;
    expect(got && [got.width, got.height]).toEqual([320, 240]);
    expect(got!.ageMicros).toBeGreaterThanOrEqual(0);
    cap.release();
    await expect(cap.readJpeg(80)).rejects.toThrow("capture read failed: the capture is not open");
  });

  test("release during a read waits for it", async () => {
    const cap = new (cv().Capture)();
    expect(await cap.open(clip)).toBe(true);
    const pending = cap.readJpeg(80);
    cap.release();
    expect(await pending).not.toBeNull();
    expect(cap.isOpened()).toBe(false);
  });
});

describe("test source", () => {
  test(
    "yields decodable frames of the requested size, never faster than the requested rate, barcodes matching seq",
    async () => {
      const fps = 20;
      const seconds = 2;
      await using source = await openSource({ kind: "test" }, { size: { width: 320, height: 240 }, fps, quality: 75 });
      expect([source.description, source.width, source.height, source.fps]).toEqual(["test", 320, 240, fps]);
      const frames: Frame[] = [];
      const start = performance.now();
      while (performance.now() - start < seconds * 1000) {
        const f = await source.next();
        if (!f) throw new Error("the test source ended");
        frames.push(f);
      }
      // Paced: never more than the rate allows. How close to it a loaded machine comes is
      // for bench/ to measure; here it only has to keep producing.
      const expected = fps * seconds;
      expect(frames.length).toBeGreaterThanOrEqual(2);
      expect(frames.length).toBeLessThanOrEqual(Math.ceil(1.1 * expected));
      expectSeqFromZero(frames);
      for (const f of frames) {
        const img = cv().decodeJpeg(f.jpeg);
        expect([img.width, img.height, f.width, f.height]).toEqual([320, 240, 320, 240]);
        expect(readFrameNumber(img.bgr, img.width, img.height)).toBe(f.seq);
      }
    },
    10_000,
  );

  test("defaults to 1280x720 at 30 fps", async () => {
    await using source = await openSource({ kind: "test" }, { quality: 80 });
    expect([source.width, source.height, source.fps]).toEqual([1280, 720, 30]);
    const f = await source.next();
    expect(f && [f.seq, f.width, f.height]).toEqual([0, 1280, 720]);
    const img = cv().decodeJpeg(f!.jpeg);
    expect(readFrameNumber(img.bgr, img.width, img.height)).toBe(0);
  });

  test(
    "a slow consumer gets no burst of catch-up frames",
    async () => {
      const fps = 50;
      await using source = await openSource({ kind: "test" }, { size: { width: 320, height: 240 }, fps, quality: 60 });
      await source.next();
      await Bun.sleep(300); // the stall under test, not a wait for readiness
      await source.next();
      const start = performance.now();
      for (let i = 0; i < 5; i++) await source.next();
      // Without re-anchoring, the 15 frames "owed" would come out at once.
      expect(performance.now() - start).toBeGreaterThanOrEqual((5 / fps) * 1000 * 0.9);
    },
    10_000,
  );
});

describe("pausing: nothing to do, nothing done", () => {
  test(
    "the test pattern renders nothing while paused, and the first frame comes after the pause ends",
    async () => {
      const fps = 20;
      await using source = await openSource({ kind: "test" }, { size: { width: 320, height: 240 }, fps, quality: 80 });
      let paused = true;
      source.pauseWhile(() => paused);
      let resumedAt = 0;
      const first = source.next().then((f) => ({ f, at: performance.now() }));
      await until(() => source.stats.framesIdle >= 6, 10_000, "six frame slots skipped");
      expect(source.stats.framesEncoded).toBe(0);
      paused = false;
      resumedAt = performance.now();
      const { f, at } = await first;
      expect(f && [f.seq, f.width]).toEqual([0, 320]);
      // (How soon after is the next slot plus the render: a latency for bench/, not a test.)
      expect(at).toBeGreaterThanOrEqual(resumedAt);
      expect(source.stats.framesEncoded).toBe(1);
      source.pauseWhile(null);
      expect((await source.next())?.seq).toBe(1);
    },
    10_000,
  );

  test(
    "a paused file keeps its place in time: frames are taken from it, not converted or encoded",
    async () => {
      await using source = await openSource({ kind: "file", path: clip }, { quality: 80, fps: 50 });
      let paused = true;
      source.pauseWhile(() => paused);
      const first = source.next();
      await until(() => source.stats.framesIdle >= 10, 10_000, "ten frames grabbed");
      paused = false;
      const frames = [(await first)!, ...(await take(source, CLIP_FRAMES))];
      const { framesIdle, framesEncoded } = source.stats;
      // Every frame of the file was either skipped while paused or encoded after.
      expect(frames.length + framesIdle).toBe(CLIP_FRAMES);
      expect(framesEncoded).toBe(frames.length);
      expect(framesIdle).toBeGreaterThanOrEqual(10);
      expectSeqFromZero(frames);
    },
    10_000,
  );

  test(
    "a server with no viewer encodes nothing; a viewer that joins gets frames",
    async () => {
      const fps = 10;
      const log = join(dir, "pause-server.log");
      await using server = spawnBun(["server.ts", "--source", "test", "--size", "320x240", "--fps", String(fps), "--port", "0", "--log", log]);
      const port = Number((await server.waitFor(/tcp=(\d+)/))[1]);
      await Bun.sleep(1000); // the time without viewers under test
      let welcomedAt = 0;
      const arrivals: number[] = [];
      const report = (): Report => ({ type: "report", framesReceived: arrivals.length, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 });
      const totals = (): ByeTotals => ({ framesReceived: arrivals.length, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 });
      await using client = await StreamClient.open({
        host: "127.0.0.1", port, udpPort: 0, report, totals,
        onWelcome: () => (welcomedAt = performance.now()),
        onFrame: () => arrivals.push(performance.now()),
      });
      const running = client.run();
      await until(() => arrivals.length >= 5, 10_000, "five frames");
      client.stop();
      await running;
      await server.waitFor(/client left/, 10_000, "stderr");
      server.proc.kill("SIGTERM");
      await expectExit(server, 0);

      // Frames came after the welcome (how soon is a latency for bench/, not a test).
      expect(arrivals[0]!).toBeGreaterThanOrEqual(welcomedAt);
      const stop = server.stderr().split("\n").find((l) => l.includes("stopped")) ?? "";
      const count = (name: string) => Number(new RegExp(` ${name}=(\\d+)`).exec(stop)?.[1]);
      // A second alone at 10 fps: about ten frames skipped, none encoded.
      expect(count("framesIdle")).toBeGreaterThanOrEqual(5);
      expect(count("framesEncoded")).toBeGreaterThanOrEqual(5);
      expect(count("framesEncoded")).toBeLessThanOrEqual(count("framesBroadcast"));
      // Encoded while the viewer was there: what it received and the few in flight as it left.
      expect(count("framesEncoded")).toBeLessThanOrEqual(arrivals.length + 3);
    },
    20_000,
  );
});
