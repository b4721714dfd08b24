// --overlay end to end: a flat grey source through `bun server.ts`, read back from
// /stream.mjpg. The text's pixels are where --overlay-pos says and nowhere else, on
// each way a frame becomes JPEG, and the time drawn is the frame's capture time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { cv, type OverlayPosition } from "../lib/native/cv.ts";
import { formatOverlay } from "../lib/capture/overlay-text.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { takeParts, type MjpegPart } from "./helpers/mjpeg-parts.ts";
import { ROOT, spawnBun } from "./helpers/process.ts";

const W = 640;
const H = 360;
const GREY = 128;
const QUALITY = 80;
const TEMPLATE = "{camera} %F %T #{frame}";
/** Frames read from each stream. */
const PARTS = 6;

let dir = "";
let greyJpeg: Buffer;
let mjpegClip = "";
let rawClip = "";

function run(cmd: string[]): void {
  const p = Bun.spawnSync(cmd);
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString()}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-overlay-"));
  greyJpeg = cv().encodeJpeg(new Uint8Array(W * H * 3).fill(GREY), W, H, 90);
  writeFileSync(join(dir, "grey.jpg"), greyJpeg);
  const ffmpeg = resolveFfmpeg().path;
  // Every packet of the MJPEG clip is grey.jpg itself, so a test can redo the server's work on it.
  mjpegClip = join(dir, "grey.avi");
  run([ffmpeg, "-hide_banner", "-loglevel", "error", "-framerate", "10", "-loop", "1", "-i", join(dir, "grey.jpg"),
    "-frames:v", "20", "-c:v", "copy", mjpegClip]);
  rawClip = join(dir, "grey.nut");
  run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `color=c=0x808080:size=${W}x${H}:rate=10`,
    "-frames:v", "20", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", rawClip]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts the server on `clip` with the overlay, reads PARTS frames, and returns them with the server's stderr. */
async function serve(clip: string, extra: string[]): Promise<{ parts: MjpegPart[]; stderr: string }> {
  await using server = spawnBun(["server.ts", "--source", `file:${clip}`, "--loop", "--port", "0", "--http", "0", "--http-bind", "127.0.0.1",
    "--log", join(dir, "server.log"), "--quality", String(QUALITY), "--overlay", TEMPLATE, ...extra]);
  const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
  const parts = await takeParts(`${url}stream.mjpg`, PARTS, 30_000);
  return { parts, stderr: server.stderr() };
}

/** The bounding box of pixels further than `tolerance` from `base` in any channel, or null. */
function changedBox(bgr: Uint8Array, base: number, tolerance: number) {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let i = 0; i < W * H; i++) {
    for (let c = 0; c < 3; c++) {
      if (Math.abs(bgr[i * 3 + c]! - base) > tolerance) {
        const x = i % W, y = Math.floor(i / W);
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1, y1 };
}

/** True when the box lies in the named corner: that half across, that quarter down. */
function inCorner(box: { x0: number; y0: number; x1: number; y1: number }, position: OverlayPosition): boolean {
  const xs = position.endsWith("left") ? box.x1 < W / 2 : box.x0 >= W / 2;
  const ys = position.startsWith("top") ? box.y1 < H / 4 : box.y0 >= (3 * H) / 4;
  return xs && ys;
}

/** Pixels that differ by more than 40 in some channel: text against box, not JPEG noise. */
function differing(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i += 3) {
    if (Math.abs(a[i]! - b[i]!) > 40 || Math.abs(a[i + 1]! - b[i + 1]!) > 40 || Math.abs(a[i + 2]! - b[i + 2]!) > 40) n++;
  }
  return n;
}

/** The flat grey picture with the overlay of `part` as it would read at `capturedAt`, through the addon's own drawing. */
async function expected(part: MjpegPart, capturedAt: number, position: OverlayPosition): Promise<Uint8Array> {
  const text = formatOverlay(TEMPLATE, { camera: "0", frame: part.frame, host: hostname() }, capturedAt);
  const r = await cv().overlayJpeg(greyJpeg, { text, position }, QUALITY);
  if (!r.jpeg) throw new Error(r.reason);
  return cv().decodeJpeg(r.jpeg).bgr;
}

/** The second of `micros` moved on by one: a clock one second off. */
const SECOND = 1_000_000;

describe("--overlay on a flat grey source", () => {
  test("MJPEG passed through otherwise: decoded, drawn top-left by default, said once with its cost; the time is the capture time", async () => {
    const { parts, stderr } = await serve(mjpegClip, []);
    expect(stderr).toMatch(/opened source .* path=passthrough overlay=decode-draw-encode/);
    const said = stderr.match(/decoded, drawn on and encoded again.*costMs=[\d.]+/g) ?? [];
    expect(said).toHaveLength(1);
    for (const part of parts) {
      const bgr = cv().decodeJpeg(part.jpeg).bgr;
      const box = changedBox(bgr, GREY, 8);
      expect(box).not.toBeNull();
      expect(inCorner(box!, "top-left")).toBe(true);
      // The same picture drawn with this frame's capture time matches; one second off does not.
      expect(differing(bgr, await expected(part, part.capturedAt, "top-left"))).toBe(0);
      expect(differing(bgr, await expected(part, part.capturedAt + SECOND, "top-left"))).toBeGreaterThan(20);
    }
  }, 90_000);

  test("decoded and encoded by OpenCV (--reencode): bottom-right, with the capture time", async () => {
    const { parts } = await serve(mjpegClip, ["--reencode", "--overlay-pos", "bottom-right"]);
    for (const part of parts) {
      const bgr = cv().decodeJpeg(part.jpeg).bgr;
      const box = changedBox(bgr, GREY, 8);
      expect(box).not.toBeNull();
      expect(inCorner(box!, "bottom-right")).toBe(true);
      // FFmpeg's decoder is not libjpeg's: a grey level apart here and there, never text against box.
      expect(differing(bgr, await expected(part, part.capturedAt, "bottom-right"))).toBeLessThan(5);
      expect(differing(bgr, await expected(part, part.capturedAt - SECOND, "bottom-right"))).toBeGreaterThan(20);
    }
  }, 90_000);

  test("raw YUV encoded from its planes: drawn on the planes, top-right", async () => {
    const { parts, stderr } = await serve(rawClip, ["--overlay-pos", "top-right"]);
    expect(stderr).toMatch(/opened source .* path=yuv overlay=drawn-before-encode/);
    for (const part of parts) {
      const bgr = cv().decodeJpeg(part.jpeg).bgr;
      // The clip's grey after the video-to-JPEG range stretch: read where no text can be.
      const base = bgr[((H / 2) * W + W / 2) * 3]!;
      const box = changedBox(bgr, base, 8);
      expect(box).not.toBeNull();
      expect(inCorner(box!, "top-right")).toBe(true);
    }
  }, 90_000);
});

describe("bad --overlay values", () => {
  const cases: [string[], string][] = [
    [["--overlay", "%T", "--overlay-pos", "middle"], "lancam-server: invalid --overlay-pos=middle: expected top-left, top-right, bottom-left or bottom-right\nRun `bun server.ts --help` for usage.\n"],
    [["--overlay", "x".repeat(201)], "lancam-server: invalid --overlay: 201 characters, expected at most 200\nRun `bun server.ts --help` for usage.\n"],
    [["--overlay", "%T %Z"], "lancam-server: invalid --overlay=%T %Z: %Z is not a time code it knows: %Y %m %d %H %M %S %F %T, or %% for a percent sign\nRun `bun server.ts --help` for usage.\n"],
  ];
  for (const [argv, stderr] of cases) {
    test(`${argv.join(" ").slice(0, 60)}: exit 2 with one line saying why`, async () => {
      const p = Bun.spawn([process.execPath, join(ROOT, "server.ts"), "--source", "test", "--port", "0", ...argv], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
      expect({ code, stdout: out, stderr: err }).toEqual({ code: 2, stdout: "", stderr });
    }, 15_000);
  }
});
