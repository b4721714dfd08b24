// Encoding raw YUV straight from its planes (TurboJPEG) instead of converting it to
// BGR in OpenCV and back inside the JPEG encoder: the same picture, within JPEG's own error.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { openSource, type CaptureSource } from "../lib/capture/capture.ts";
import { cv, type BgrImage } from "../lib/native/cv.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";

const FRAMES = 8;
/**
 * Two JPEG encodes of one picture at quality 80 differ by roughly 40-45 dB. Leaving
 * video levels unstretched (Y 16..235 shown as if it were 0..255) or swapping U and V
 * falls to about 25 dB, so 38 dB separates right from wrong with room to spare.
 */
const MIN_PSNR_DB = 38;

let dir = "";
const clips: Record<string, string> = {};

function makeClip(name: string, size: string, pixFmt: string, pattern = "testsrc2"): string {
  const path = join(dir, name);
  const p = Bun.spawnSync([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `${pattern}=size=${size}:rate=10`,
    "-frames:v", String(FRAMES), "-c:v", "rawvideo", "-pix_fmt", pixFmt, path,
  ]);
  if (p.exitCode !== 0) throw new Error(`ffmpeg failed: ${p.stderr.toString()}`);
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-yuv-"));
  clips.i420 = makeClip("i420.nut", "320x240", "yuv420p");
  clips.i420mkv = makeClip("i420.mkv", "320x240", "yuv420p");
  clips.yuyv = makeClip("yuyv.avi", "320x240", "yuyv422");
  // Odd sides: chroma planes round up (161x121 here), and rows are not padded. A smooth
  // picture, because at odd widths the BGR path itself is off: swscale stretches the
  // chroma by 321/161 instead of 2, so sharp colour edges move by up to half a pixel.
  clips.odd = makeClip("odd.nut", "321x241", "yuv420p", "gradients");
  // A header that lies about the width (316 instead of 320): every raw frame is too big for it.
  const avi = Buffer.from(readFileSync(makeClip("skewed-src.avi", "320x240", "yuv420p")));
  const strf = avi.indexOf("strf");
  if (strf < 0 || avi.readInt32LE(strf + 12) !== 320) throw new Error("no BITMAPINFOHEADER with width 320");
  avi.writeInt32LE(316, strf + 12);
  clips.skewed = join(dir, "skewed.avi");
  writeFileSync(clips.skewed, avi);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function psnr(a: BgrImage, b: BgrImage): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let sum = 0;
  for (let i = 0; i < a.bgr.length; i++) {
    const d = a.bgr[i]! - b.bgr[i]!;
    sum += d * d;
  }
  return sum === 0 ? Infinity : 10 * Math.log10((255 * 255) / (sum / a.bgr.length));
}

async function all(source: CaptureSource): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let f = await source.next(); f; f = await source.next()) out.push(f.jpeg);
  return out;
}

describe("a raw video file", () => {
  for (const [name, size] of [["i420", [320, 240]], ["i420mkv", [320, 240]], ["yuyv", [320, 240]], ["odd", [321, 241]]] as const) {
    test(`${name}: encoded from the planes, it decodes to the BGR path's picture within ${MIN_PSNR_DB} dB`, async () => {
      await using yuv = await openSource({ kind: "file", path: clips[name]! }, { quality: 80, fps: 500 });
      await using bgr = await openSource({ kind: "file", path: clips[name]! }, { quality: 80, fps: 500, rawPackets: false });
      expect([yuv.width, yuv.height]).toEqual([...size]);
      const [a, b] = [await all(yuv), await all(bgr)];
      expect(a).toHaveLength(FRAMES);
      expect(b).toHaveLength(FRAMES);
      for (let i = 0; i < FRAMES; i++) {
        const decoded = cv().decodeJpeg(a[i]!);
        expect([decoded.width, decoded.height]).toEqual([...size]);
        expect(psnr(decoded, cv().decodeJpeg(b[i]!))).toBeGreaterThan(MIN_PSNR_DB);
      }
      expect(yuv.stats).toEqual({ capturePath: "yuv", framesEncoded: FRAMES, framesPassedThrough: 0, framesReencoded: 0, framesBadDropped: 0, framesIdle: 0, cameraOutages: 0 });
      expect(bgr.stats.capturePath).toBe("bgr");
    });
  }

  test("whose frames do not fit the size it declares goes back to OpenCV's decoding, once, and says so", async () => {
    const log = memoryLogger();
    await using source = await openSource({ kind: "file", path: clips.skewed! }, { quality: 80, fps: 500, log });
    expect(source.stats.capturePath).toBe("yuv");
    const frames = await all(source);
    expect(frames).toHaveLength(FRAMES);
    expect(source.stats).toMatchObject({ capturePath: "bgr", framesEncoded: FRAMES, framesBadDropped: 0 });
    const warning = log.lines.find((l) => l.includes("raw frames do not match their format"));
    expect(warning).toContain("raw frame of 115200 bytes, expected 113760 for 316x240 I420");
  });
});

describe("native readYuvJpeg", () => {
  test("a frame of the wrong size for its layout is a reason, not a picture; bad arguments throw", async () => {
    const cap = new (cv().Capture)();
    expect(await cap.open(clips.i420!, "ffmpeg")).toBe(true);
    expect([cap.getFourcc(), cap.getFourcc("pixelFormat")]).toEqual(["I420", "I420"]);
    expect(cap.setRawPackets()).toBe(true);
    expect(await cap.readYuvJpeg("yuyv", 320, 240, 80)).toMatchObject({ jpeg: null, reason: "raw frame of 115200 bytes, expected 153600 for 320x240 YUYV" });
    expect(await cap.readYuvJpeg("yuyv", 321, 240, 80)).toMatchObject({ jpeg: null, reason: "cannot encode 321x240 YUYV (the width must be even)" });
    const good = await cap.readYuvJpeg("i420", 320, 240, 80);
    expect(good && good.jpeg && [good.width, good.height, good.jpeg[0], good.jpeg[1]]).toEqual([320, 240, 0xff, 0xd8]);
    expect(() => cap.readYuvJpeg("nv12" as "i420", 320, 240, 80)).toThrow('readYuvJpeg: layout must be "i420" or "yuyv", got "nv12"');
    expect(() => cap.readYuvJpeg("i420", 0, 240, 80)).toThrow("readYuvJpeg: size must be within 1x1..7680x4320");
    expect(() => cap.readYuvJpeg("i420", 320, 240, 101)).toThrow("readYuvJpeg: quality must be 1..100");
    cap.release();
  });

  test("leaving video levels unstretched is what the PSNR bound catches", async () => {
    const raw = new (cv().Capture)();
    const bgr = new (cv().Capture)();
    expect(await raw.open(clips.i420!, "ffmpeg")).toBe(true);
    expect(await bgr.open(clips.i420!, "ffmpeg")).toBe(true);
    expect(raw.setRawPackets()).toBe(true);
    const flat = await raw.readYuvJpeg("i420", 320, 240, 80, false);
    const ref = await bgr.readJpeg(80);
    expect(psnr(cv().decodeJpeg(flat!.jpeg!), cv().decodeJpeg(ref!.jpeg))).toBeLessThan(MIN_PSNR_DB - 8);
    raw.release();
    bgr.release();
  });
});
