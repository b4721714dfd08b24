// The native overlay box: drawn where asked, nowhere else, on BGR and on I420 planes;
// a source's JPEG with the box; every bad argument refused with a clear error.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";
import { cv, type OverlayPosition, type OverlaySpec } from "../lib/native/cv.ts";
import { OVERLAY_POSITIONS } from "../lib/capture/overlay-text.ts";

const W = 640;
const H = 360;
const GREY = 128;
const TEXT = "cam 0 2026-01-02 03:04:05 #42";

function greyBgr(width = W, height = H): Uint8Array {
  return new Uint8Array(width * height * 3).fill(GREY);
}

/** The smallest rectangle holding every pixel that is no longer `base` (by more than `tolerance`), or null. */
function changedBox(pixels: Uint8Array, width: number, height: number, channels: number, base: number, tolerance = 0) {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        if (Math.abs(pixels[(y * width + x) * channels + c]! - base) > tolerance) {
          x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
        }
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1, y1 };
}

/** True when `box` lies inside the quarter of the picture that `position` names. */
function inCorner(box: { x0: number; y0: number; x1: number; y1: number }, position: OverlayPosition, width = W, height = H): boolean {
  const left = position.endsWith("left");
  const top = position.startsWith("top");
  const xs = left ? box.x1 < width / 2 : box.x0 >= width / 2;
  const ys = top ? box.y1 < height / 4 : box.y0 >= (3 * height) / 4;
  return xs && ys;
}

describe("drawOverlay", () => {
  for (const position of OVERLAY_POSITIONS) {
    test(`${position}: the box and text are in that corner and nowhere else`, () => {
      const bgr = greyBgr();
      cv().drawOverlay(bgr, W, H, "bgr", { text: TEXT, position });
      const box = changedBox(bgr, W, H, 3, GREY);
      expect(box).not.toBeNull();
      expect(inCorner(box!, position)).toBe(true);
      // A box of a line of text, not a speck: wide, and a sensible height for 360 rows.
      expect(box!.x1 - box!.x0).toBeGreaterThan(W / 4);
      expect(box!.y1 - box!.y0).toBeGreaterThan(10);
      expect(box!.y1 - box!.y0).toBeLessThan(H / 8);
      // Translucent box (darker than grey, not black) with white text on it.
      const inside = bgr.subarray(((box!.y0 + 1) * W + box!.x0 + 1) * 3, ((box!.y0 + 1) * W + box!.x0 + 2) * 3);
      expect(inside[0]!).toBeGreaterThan(30);
      expect(inside[0]!).toBeLessThan(GREY - 30);
      let light = 0;
      for (let i = 0; i < bgr.length; i++) if (bgr[i]! > 200) light++;
      expect(light).toBeGreaterThan(300);
    });
  }

  test("the text scales with the picture's height", () => {
    const small = greyBgr(640, 360);
    const large = greyBgr(1920, 1080);
    cv().drawOverlay(small, 640, 360, "bgr", { text: TEXT, position: "top-left" });
    cv().drawOverlay(large, 1920, 1080, "bgr", { text: TEXT, position: "top-left" });
    const a = changedBox(small, 640, 360, 3, GREY)!;
    const b = changedBox(large, 1920, 1080, 3, GREY)!;
    const ratio = (b.y1 - b.y0) / (a.y1 - a.y0);
    expect(ratio).toBeGreaterThan(2.5);
    expect(ratio).toBeLessThan(3.5);
  });

  test("different text draws different pixels (a clock that ticks shows it)", () => {
    const a = greyBgr();
    const b = greyBgr();
    cv().drawOverlay(a, W, H, "bgr", { text: "03:04:05", position: "top-left" });
    cv().drawOverlay(b, W, H, "bgr", { text: "03:04:06", position: "top-left" });
    expect(Buffer.compare(a, b)).not.toBe(0);
  });

  test("on I420 planes: the same box in luma, chroma kept grey, the rest untouched", () => {
    const ySize = W * H;
    const cSize = (W / 2) * (H / 2);
    const planes = new Uint8Array(ySize + 2 * cSize).fill(GREY);
    cv().drawOverlay(planes, W, H, "i420", { text: TEXT, position: "bottom-right" });
    const bgr = greyBgr();
    cv().drawOverlay(bgr, W, H, "bgr", { text: TEXT, position: "bottom-right" });
    expect(changedBox(planes.subarray(0, ySize), W, H, 1, GREY)).toEqual(changedBox(bgr, W, H, 3, GREY));
    // Grey chroma stays grey under a box that pulls chroma toward grey.
    expect(changedBox(planes.subarray(ySize), W / 2, H, 1, GREY)).toBeNull();
    // Coloured chroma is pulled toward grey inside the box only.
    const coloured = new Uint8Array(ySize + 2 * cSize).fill(GREY).fill(200, ySize);
    cv().drawOverlay(coloured, W, H, "i420", { text: TEXT, position: "bottom-right" });
    const chroma = changedBox(coloured.subarray(ySize, ySize + cSize), W / 2, H / 2, 1, 200)!;
    expect(inCorner(chroma, "bottom-right", W / 2, H / 2)).toBe(true);
  });

  test("bytes outside printable ASCII are drawn, as ?, not refused", () => {
    const a = greyBgr();
    const b = greyBgr();
    cv().drawOverlay(a, W, H, "bgr", { text: "Zürich\n", position: "top-left" });
    cv().drawOverlay(b, W, H, "bgr", { text: "Z??rich?", position: "top-left" });
    expect(Buffer.compare(a, b)).toBe(0);
  });

  test("bad arguments are refused with errors naming them", () => {
    const ok: OverlaySpec = { text: "x", position: "top-left" };
    expect(() => cv().drawOverlay(greyBgr(), W, H + 1, "bgr", ok)).toThrow(`drawOverlay: expected ${W * (H + 1) * 3} bytes of bgr for ${W}x${H + 1}, got ${W * H * 3}`);
    expect(() => cv().drawOverlay(greyBgr(), W, H, "rgb" as "bgr", ok)).toThrow('drawOverlay: layout must be "bgr" or "i420", got "rgb"');
    expect(() => cv().drawOverlay(greyBgr(), W, H, "bgr", { text: "x", position: "middle" as OverlayPosition }))
      .toThrow("drawOverlay: position must be top-left, top-right, bottom-left or bottom-right");
    expect(() => cv().drawOverlay(greyBgr(), W, H, "bgr", { text: "x".repeat(1025), position: "top-left" })).toThrow("drawOverlay: overlay text longer than 1024 bytes");
    expect(() => cv().drawOverlay(greyBgr(), W, H, "bgr", null as unknown as OverlaySpec)).toThrow("drawOverlay: overlay must be {text, position}");
    expect(() => cv().drawOverlay(greyBgr(), 0, H, "bgr", ok)).toThrow("drawOverlay: size must be within");
    expect(() => cv().drawOverlay(new Float32Array(4) as unknown as Uint8Array, 1, 1, "bgr", ok)).toThrow("drawOverlay: pixels must be a Uint8Array");
  });
});

describe("overlayJpeg", () => {
  test("the source's JPEG with the box, as drawOverlay draws it on the decoded picture", async () => {
    const jpeg = cv().encodeJpeg(greyBgr(), W, H, 90);
    const overlay: OverlaySpec = { text: TEXT, position: "top-right" };
    const r = await cv().overlayJpeg(jpeg, overlay, 90);
    if (!r.jpeg) throw new Error(r.reason);
    expect([r.width, r.height]).toEqual([W, H]);
    const expected = cv().decodeJpeg(jpeg).bgr;
    cv().drawOverlay(expected, W, H, "bgr", overlay);
    expect(Buffer.compare(r.jpeg, cv().encodeJpeg(expected, W, H, 90))).toBe(0);
  });

  test("bytes that do not decode are a result with the reason, not a rejection", async () => {
    const r = await cv().overlayJpeg(new Uint8Array([1, 2, 3]), { text: "x", position: "top-left" }, 80);
    expect(r).toEqual({ jpeg: null, reason: "not a decodable image (3 bytes, starting with 01 02 03)" });
    expect(() => cv().overlayJpeg(new Uint8Array(3), { text: "x", position: "top-left" }, 0)).toThrow("overlayJpeg: quality must be 1..100");
  });
});

describe("the test pattern with an overlay", () => {
  test("the same frame differs only in the overlay's corner, and the barcode still reads", async () => {
    const renderer = new (cv().TestPattern)();
    const plain = cv().decodeJpeg(await renderer.render(W, H, 7, "t", 95)).bgr;
    const drawn = cv().decodeJpeg(await renderer.render(W, H, 7, "t", 95, { text: TEXT, position: "top-left" })).bgr;
    const diff = new Uint8Array(plain.length);
    for (let i = 0; i < diff.length; i++) diff[i] = Math.abs(plain[i]! - drawn[i]!) > 24 ? 255 : 0;
    const box = changedBox(diff, W, H, 3, 0);
    expect(box).not.toBeNull();
    expect(inCorner(box!, "top-left")).toBe(true);
    expect(readFrameNumber(drawn, W, H)).toBe(7);
  });
});

describe("readHeld and encodeHeld", () => {
  test("a held frame is encoded once, with the overlay; a raw frame of the wrong size is a result with the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lancam-held-"));
    try {
      const clip = join(dir, "grey.nut");
      const p = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `color=c=0x808080:size=${W}x${H}:rate=10`,
        "-frames:v", "3", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", clip]);
      expect(p.exitCode).toBe(0);
      const cap = new (cv().Capture)();
      expect(await cap.open(clip, "ffmpeg")).toBe(true);
      expect(cap.setRawPackets()).toBe(true);
      const overlay: OverlaySpec = { text: TEXT, position: "bottom-left" };
      await expect(cap.encodeHeld(80, overlay, { layout: "i420", width: W, height: H })).rejects.toThrow("encodeHeld: no frame held (call readHeld first)");
      const held = await cap.readHeld();
      expect(held?.ageMicros).toBeGreaterThanOrEqual(0);
      const r = await cap.encodeHeld(80, overlay, { layout: "i420", width: W, height: H });
      if (!r.jpeg) throw new Error(r.reason);
      const bgr = cv().decodeJpeg(r.jpeg).bgr;
      const box = changedBox(bgr, W, H, 3, bgr[((H / 2) * W + W / 2) * 3]!, 8);
      expect(inCorner(box!, "bottom-left")).toBe(true);
      await expect(cap.encodeHeld(80, overlay, { layout: "i420", width: W, height: H })).rejects.toThrow("encodeHeld: no frame held");
      await cap.readHeld();
      expect(await cap.encodeHeld(80, overlay, { layout: "i420", width: W + 2, height: H })).toEqual({
        jpeg: null, reason: `raw frame of ${(W * H * 3) / 2} bytes, expected ${((W + 2) * H * 3) / 2} for ${W + 2}x${H} I420`,
      });
      expect(() => cap.encodeHeld(0, overlay)).toThrow("encodeHeld: quality must be 1..100");
      expect(() => cap.encodeHeld(80, overlay, { layout: "nv12" as "i420", width: W, height: H })).toThrow('encodeHeld: layout must be "i420" or "yuyv", got "nv12"');
      cap.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
