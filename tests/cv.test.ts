import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { cv, describeLoadFailure, MAX_PICTURE, MIN_PICTURE_SIDE, renderTestFrame } from "../lib/native/cv.ts";
import { FrameCheck } from "../lib/receive/frame-check.ts";
import { readJpegSize } from "../lib/wire/jpeg-header.ts";
import { BAND_HEIGHT, CELLS, MIN_CELL_WIDTH, MIN_WIDTH, cellWidth, readFrameNumber } from "./helpers/test-pattern.ts";
import { prng } from "./helpers/prng.ts";
import { sofAt, withSize } from "./helpers/jpeg-bytes.ts";

const W = 320;
const H = 240;
// Four flat quadrants: a JPEG round trip must keep each colour, not only the overall mean.
const QUADRANTS: [number, number, number][] = [
  [200, 30, 30],
  [30, 200, 30],
  [30, 30, 200],
  [128, 128, 128],
];

function quadrantImage(): Uint8Array {
  const bgr = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const q = (y < H / 2 ? 0 : 2) + (x < W / 2 ? 0 : 1);
      bgr.set(QUADRANTS[q]!, (y * W + x) * 3);
    }
  }
  return bgr;
}

/** Mean B, G, R over the inner half of quadrant q (away from the JPEG-blurred edges). */
function quadrantMean(bgr: Uint8Array, width: number, height: number, q: number): number[] {
  const x0 = (q % 2) * (width / 2) + width / 8;
  const y0 = Math.floor(q / 2) * (height / 2) + height / 8;
  const sum = [0, 0, 0];
  let n = 0;
  for (let y = y0; y < y0 + height / 4; y++) {
    for (let x = x0; x < x0 + width / 4; x++) {
      for (let c = 0; c < 3; c++) sum[c]! += bgr[(y * width + x) * 3 + c]!;
      n++;
    }
  }
  return sum.map((s) => s / n);
}

describe("encodeJpeg / decodeJpeg", () => {
  test("round trip keeps the size and each quadrant's colour", () => {
    const jpeg = cv().encodeJpeg(quadrantImage(), W, H, 90);
    expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);
    const back = cv().decodeJpeg(jpeg);
    expect(back.width).toBe(W);
    expect(back.height).toBe(H);
    expect(back.bgr.length).toBe(W * H * 3);
    for (let q = 0; q < 4; q++) {
      const mean = quadrantMean(back.bgr, W, H, q);
      for (let c = 0; c < 3; c++) expect(Math.abs(mean[c]! - QUADRANTS[q]![c]!)).toBeLessThan(4);
    }
  });

  test("encodeJpeg rejects a buffer of the wrong size", () => {
    expect(() => cv().encodeJpeg(new Uint8Array(10), W, H, 80)).toThrow(/expected 230400 bytes of BGR for 320x240, got 10/);
    expect(() => cv().encodeJpeg(quadrantImage(), W, H, 0)).toThrow(/quality must be 1\.\.100/);
  });

  test("garbage throws a clear error and never returns the previous image", () => {
    const good = cv().encodeJpeg(quadrantImage(), W, H, 80);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([1, 2, 3, 4, 5]), /not a decodable image \(5 bytes, starting with 01 02 03 04\)/],
      [new Uint8Array(0), /not a decodable image \(0 bytes/],
      [good.subarray(0, 20), /not a decodable image \(20 bytes, starting with ff d8 ff/],
      [new TextEncoder().encode("<html>not an image</html>"), /not a decodable image/],
    ];
    for (const [bytes, message] of cases) {
      // A successful decode first: OpenCV 4.6 would otherwise hand its result back.
      cv().decodeJpeg(good);
      expect(() => cv().decodeJpeg(bytes)).toThrow(message);
    }
  });
});

describe("reencodeJpeg", () => {
  test("a cut-short JPEG comes back whole, at the quality asked for, with its colours", async () => {
    const good = cv().encodeJpeg(quadrantImage(), W, H, 90);
    // Cut inside the last quarter: libjpeg fills the missing rows with grey.
    const cut = good.subarray(0, Math.floor(good.length * 0.9));
    const r = await cv().reencodeJpeg(cut, 50);
    if (!r.jpeg) throw new Error(r.reason);
    expect([r.width, r.height, r.jpeg[0], r.jpeg[1], r.jpeg.at(-2), r.jpeg.at(-1)]).toEqual([W, H, 0xff, 0xd8, 0xff, 0xd9]);
    const back = cv().decodeJpeg(r.jpeg);
    const mean = quadrantMean(back.bgr, W, H, 0);
    for (let c = 0; c < 3; c++) expect(Math.abs(mean[c]! - QUADRANTS[0]![c]!)).toBeLessThan(6);
  });

  test("bytes that do not decode are a reason, never a rejection; a bad quality throws", async () => {
    expect(await cv().reencodeJpeg(new Uint8Array([0, 0, 0xff, 0xe0]), 80)).toEqual({ jpeg: null, reason: "not a decodable image (4 bytes, starting with 00 00 ff e0)" });
    const huge = withSize(cv().encodeJpeg(quadrantImage(), W, H, 80), 60000, 60000);
    expect(await cv().reencodeJpeg(huge, 80)).toEqual({ jpeg: null, reason: "JPEG of 60000x60000 exceeds the 7680x4320 limit" });
    expect(() => cv().reencodeJpeg(new Uint8Array(4), 0)).toThrow("reencodeJpeg: quality must be 1..100");
  });
});

describe("jpegThumbnail", () => {
  test("decodes to grey at 1/2, 1/4 and 1/8 of the size, each quadrant's brightness kept", () => {
    const jpeg = cv().encodeJpeg(quadrantImage(), W, H, 90);
    for (const d of [1, 2, 4, 8] as const) {
      const t = cv().jpegThumbnail(jpeg, d);
      if (!t) throw new Error("no thumbnail");
      expect([t.width, t.height, t.grey.length]).toEqual([W / d, H / d, (W / d) * (H / d)]);
      QUADRANTS.forEach(([b, g, r], q) => {
        const x = Math.floor(((q % 2) * 2 + 1) * (t.width / 4));
        const y = Math.floor((Math.floor(q / 2) * 2 + 1) * (t.height / 4));
        expect(Math.abs(t.grey[y * t.width + x]! - (0.114 * b + 0.587 * g + 0.299 * r))).toBeLessThan(4);
      });
    }
  });

  test("null for what does not decode or claims too much; a bad denominator throws", () => {
    expect(cv().jpegThumbnail(new Uint8Array([1, 2, 3]), 8)).toBeNull();
    expect(cv().jpegThumbnail(withSize(cv().encodeJpeg(quadrantImage(), W, H, 80), 60000, 60000), 8)).toBeNull();
    expect(() => cv().jpegThumbnail(new Uint8Array(4), 3 as 2)).toThrow("jpegThumbnail: denominator must be 1, 2, 4 or 8");
  });
});

describe("test pattern", () => {
  test("layout constants match the addon", () => {
    expect(cv().testPatternLayout).toEqual({ bandHeight: BAND_HEIGHT, cells: CELLS, minCellWidth: MIN_CELL_WIDTH, minWidth: MIN_WIDTH });
  });

  const NUMBERS = [0, 1, 12345, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff];
  for (const [width, height] of [
    [1280, 720],
    [640, 480],
    [MIN_WIDTH, 120],
  ] as const) {
    test(`renders ${width}x${height} and the barcode reads back at quality 50 and 80`, async () => {
      for (const quality of [50, 80]) {
        for (const n of NUMBERS) {
          const jpeg = await renderTestFrame(width, height, n, `#${n} 2025-01-01T00:00:00.000Z`, quality);
          const img = cv().decodeJpeg(jpeg);
          expect([img.width, img.height]).toEqual([width, height]);
          expect(readFrameNumber(img.bgr, img.width, img.height)).toBe(n);
        }
      }
    });
  }

  test("readFrameNumber is null without a barcode or with a corrupted bit", async () => {
    const plain = cv().decodeJpeg(cv().encodeJpeg(quadrantImage(), W, H, 90));
    expect(readFrameNumber(plain.bgr, W, H)).toBeNull();

    // Narrower than MIN_WIDTH: the renderer draws no barcode.
    const narrow = cv().decodeJpeg(await renderTestFrame(MIN_WIDTH - 2, 120, 7, "x", 90));
    expect(readFrameNumber(narrow.bgr, narrow.width, narrow.height)).toBeNull();

    const img = cv().decodeJpeg(await renderTestFrame(640, 360, 12345, "x", 90));
    expect(readFrameNumber(img.bgr, 640, 360)).toBe(12345);
    // Invert data cell 5 (bit 28): the check nibble must catch it.
    const cell = cellWidth(640);
    for (let y = 0; y < BAND_HEIGHT; y++) {
      for (let x = 5 * cell; x < 6 * cell; x++) {
        for (let c = 0; c < 3; c++) img.bgr[(y * 640 + x) * 3 + c] = 255 - img.bgr[(y * 640 + x) * 3 + c]!;
      }
    }
    expect(readFrameNumber(img.bgr, 640, 360)).toBeNull();
    expect(() => readFrameNumber(new Uint8Array(10), 640, 360)).toThrow(RangeError);
  });

  test("one renderer rejects a second concurrent render; renderTestFrame serializes", async () => {
    const renderer = new (cv().TestPattern)();
    const first = renderer.render(320, 240, 1, "a", 80);
    await expect(renderer.render(320, 240, 2, "b", 80)).rejects.toThrow(/already running/);
    expect((await first).length).toBeGreaterThan(0);

    const frames = await Promise.all([1, 2, 3].map((n) => renderTestFrame(320, 240, n, "c", 80)));
    expect(frames.map((j) => readFrameNumber(cv().decodeJpeg(j).bgr, 320, 240))).toEqual([1, 2, 3]);
  });

  test("render validates its arguments", async () => {
    const renderer = new (cv().TestPattern)();
    expect(() => renderer.render(8, 8, 0, "", 80)).toThrow(/16x16/);
    expect(() => renderer.render(320, 240, 2 ** 32, "", 80)).toThrow(/frameNumber/);
    expect(() => renderer.render(320, 240, -1, "", 80)).toThrow(/frameNumber/);
  });
});

describe("addon load failures", () => {
  test("not built", () => {
    const err = Object.assign(new Error("Cannot find module '../native/build/lancam.node'"), { code: "MODULE_NOT_FOUND" });
    expect(describeLoadFailure(err)).toBe(
      "the OpenCV addon native/build/lancam.node is not built: run `bash native/build.sh` (needs libopencv-dev: sudo apt-get install libopencv-dev)",
    );
  });

  test("a missing OpenCV library names its Debian package", () => {
    const err = Object.assign(new Error("libopencv_videoio.so.406: cannot open shared object file: No such file or directory"), {
      code: "ERR_DLOPEN_FAILED",
    });
    expect(describeLoadFailure(err)).toMatch(/^OpenCV library libopencv_videoio\.so\.406 is missing: sudo apt-get install libopencv-videoio406 \(or libopencv-dev\)/);
  });

  test("a missing TurboJPEG library names its Debian package", () => {
    expect(describeLoadFailure(new Error("libturbojpeg.so.0: cannot open shared object file: No such file or directory"))).toBe(
      "libturbojpeg.so.0, the TurboJPEG library, is missing: sudo apt-get install libturbojpeg0 (libturbojpeg.so.0: cannot open shared object file: No such file or directory)",
    );
  });

  test("another missing library and a symbol mismatch", () => {
    expect(describeLoadFailure(new Error("libQt5Widgets.so.5: cannot open shared object file: No such file or directory"))).toMatch(
      /^libQt5Widgets\.so\.5, needed by OpenCV, is missing: sudo apt-get install --reinstall libopencv-dev/,
    );
    expect(describeLoadFailure(new Error("lancam.node: undefined symbol: _ZN2cv3Mat10deallocateEv"))).toMatch(/rebuild it with bash native\/build\.sh/);
  });

  // A copy of lib/native/cv.ts (and lib/errors, which it imports) in a scratch tree, where
  // ../../native/build/lancam.node is whatever the test puts there: Bun's real error for
  // each failure goes through.
  function loadInScratchTree(prepare: (root: string) => void): { name: string; message: string } {
    const root = mkdtempSync(join(tmpdir(), "lancam-cv-load-"));
    try {
      const errors = readdirSync(join(import.meta.dir, "../lib/errors")).map((f) => `lib/errors/${f}`);
      for (const file of ["lib/native/cv.ts", ...errors]) {
        mkdirSync(join(root, dirname(file)), { recursive: true });
        copyFileSync(join(import.meta.dir, "..", file), join(root, file));
      }
      prepare(root);
      const script = `import { cv } from "./lib/native/cv.ts"; try { cv(); console.log("{}"); } catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }`;
      const p = Bun.spawnSync([process.execPath, "-e", script], { cwd: root });
      expect(p.exitCode).toBe(0);
      return JSON.parse(p.stdout.toString());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  test("real failures: addon absent, OpenCV library absent", () => {
    expect(loadInScratchTree(() => {})).toEqual({
      name: "CvLoadError",
      message: "the OpenCV addon native/build/lancam.node is not built: run `bash native/build.sh` (needs libopencv-dev: sudo apt-get install libopencv-dev)",
    });
    const cc = Bun.which("cc") ?? Bun.which("gcc");
    if (!cc) return;
    const failure = loadInScratchTree((root) => {
      // An "addon" needing an OpenCV soname that does not exist on this machine.
      mkdirSync(join(root, "native/build"), { recursive: true });
      writeFileSync(join(root, "m.c"), "int m(void) { return 1; }\n");
      writeFileSync(join(root, "a.c"), "int m(void); int a(void) { return m(); }\n");
      const lib = join(root, "libopencv_videoio.so.499");
      const build = (args: string[]) => expect(Bun.spawnSync([cc, ...args], { cwd: root }).exitCode).toBe(0);
      build(["-shared", "-fPIC", "m.c", "-o", lib, "-Wl,-soname,libopencv_videoio.so.499"]);
      build(["-shared", "-fPIC", "a.c", "-o", "native/build/lancam.node", lib]);
      rmSync(lib);
    });
    expect(failure.name).toBe("CvLoadError");
    expect(failure.message).toMatch(/^OpenCV library libopencv_videoio\.so\.499 is missing: sudo apt-get install libopencv-videoio499/);
  });

  test("the real addon loads and reports its OpenCV version", () => {
    expect(cv().opencvVersion).toMatch(/^4\.\d+\.\d+/);
  });
});

describe("decode limit and jpegInfo", () => {
  const small = () => new Uint8Array(cv().encodeJpeg(new Uint8Array(16 * 16 * 3).fill(128), 16, 16, 80));

  test("a few hundred bytes claiming 30000x30000 are refused at once, without allocating the picture", () => {
    const bomb = withSize(small(), 30000, 30000);
    expect(bomb.length).toBeLessThan(1000);
    expect(() => cv().decodeJpeg(bomb)).toThrow("decodeJpeg: JPEG of 30000x30000 exceeds the 7680x4320 limit");
    expect(cv().jpegInfo(bomb)).toBeNull();
    // Decoded, this was 2.7 GB of BGR, 5 GB of peak RSS and 15 s. Peak RSS is measured in a
    // process of its own: this one's high-water mark belongs to every test file run before.
    const script = `
      import { cv } from ${JSON.stringify(join(import.meta.dir, "../lib/native/cv.ts"))};
      const bomb = new Uint8Array(${JSON.stringify([...bomb])});
      cv(); // loaded before the clock starts: loading OpenCV is not what is timed
      const before = process.resourceUsage().maxRSS * 1024;
      const t0 = performance.now();
      let refused = 0;
      for (let i = 0; i < 5; i++) { try { cv().decodeJpeg(bomb); } catch { refused++; } }
      console.log(JSON.stringify({ refused, ms: performance.now() - t0, growth: process.resourceUsage().maxRSS * 1024 - before }));`;
    const p = Bun.spawnSync([process.execPath, "-e", script]);
    expect(p.exitCode).toBe(0);
    const r = JSON.parse(p.stdout.toString());
    expect(r.refused).toBe(5);
    // Refused from the header, before any pixel: decoding the pictures it claims would take far longer.
    expect(r.ms).toBeLessThan(5000);
    expect(r.growth).toBeLessThan(100e6);
  });

  test("the addon and TypeScript hold the same picture limits", () => {
    expect(cv().maxPicture).toEqual({ ...MAX_PICTURE });
    expect(cv().minPictureSide).toBe(MIN_PICTURE_SIDE);
    expect(MAX_PICTURE).toEqual({ width: 7680, height: 4320 });
  });

  test("the test pattern renders from the smallest to the largest picture, and nothing outside", async () => {
    const { width, height } = MAX_PICTURE;
    const min = MIN_PICTURE_SIDE;
    expect(readJpegSize(await renderTestFrame(min, min, 1, "", 50))).toEqual({ width: min, height: min });
    expect(readJpegSize(await renderTestFrame(width, height, 1, "", 50))).toEqual({ width, height });
    const message = `renderTestFrame: size must be within ${min}x${min}..${width}x${height}`;
    for (const [w, h] of [[min - 2, min], [min, min - 2], [width + 2, height], [width, height + 2]] as const) {
      await expect(Promise.resolve().then(() => renderTestFrame(w, h, 1, "", 50))).rejects.toThrow(message);
    }
  }, 20_000);

  test("the limit is 7680x4320 inclusive, each side on its own", () => {
    const big = new Uint8Array(cv().encodeJpeg(new Uint8Array(7680 * 4320 * 3), 7680, 4320, 50));
    expect(cv().jpegInfo(big)).toEqual({ width: 7680, height: 4320 });
    for (const [width, height] of [
      [7681, 4320],
      [7680, 4321],
      [4320, 7680], // same pixel count, but no lancam server sends it
    ] as const) {
      const over = withSize(big, width, height);
      expect(() => cv().decodeJpeg(over)).toThrow(`decodeJpeg: JPEG of ${width}x${height} exceeds the 7680x4320 limit`);
      expect(cv().jpegInfo(over)).toBeNull();
    }
  }, 20_000);

  test("jpegInfo: the size of a JPEG that decodes, null for anything else", async () => {
    const good = new Uint8Array(cv().encodeJpeg(quadrantImage(), W, H, 80));
    expect(cv().jpegInfo(good)).toEqual({ width: W, height: H });
    expect(cv().jpegInfo(await renderTestFrame(1280, 720, 1, "x", 80))).toEqual({ width: 1280, height: 720 });
    expect(cv().jpegInfo(Buffer.from(good))).toEqual({ width: W, height: H });
    const unsupported = good.slice();
    unsupported[sofAt(good) + 1] = 0xc5; // SOF5 (differential): a well-formed header libjpeg refuses
    for (const bytes of [new Uint8Array([1, 2, 3, 4, 5]), new Uint8Array(0), good.subarray(0, 20), new TextEncoder().encode("<html>"), unsupported]) {
      // A good frame first: OpenCV 4.6 hands the previous picture back when decoding into a reused Mat.
      expect(cv().jpegInfo(good)).not.toBeNull();
      expect(cv().jpegInfo(bytes)).toBeNull();
    }
    expect(() => cv().decodeJpeg(unsupported)).toThrow(/not a decodable image/);
  });

  test("the addon's header walk agrees with lib/wire/jpeg-header.ts on seeded mutations", () => {
    // Claiming 30000x30000 first, so no mutation that keeps the header readable reaches the decoder.
    const header = withSize(small(), 30000, 30000);
    const random = prng(0x5eed);
    let refusedForSize = 0;
    for (let i = 0; i < 2000; i++) {
      const bytes = header.slice();
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
        bytes[Math.floor(random() * (sofAt(header) + 19))] = random() < 0.3 ? 0xff : Math.floor(random() * 256);
      }
      const size = readJpegSize(bytes);
      if (size && size.width <= 7680 && size.height <= 4320) continue; // would decode: not this test's business
      const message = size ? `decodeJpeg: JPEG of ${size.width}x${size.height} exceeds the 7680x4320 limit` : "decodeJpeg: not a decodable image";
      if (size) refusedForSize++;
      expect(() => cv().decodeJpeg(bytes)).toThrow(message);
    }
    expect(refusedForSize).toBeGreaterThan(500);
  });

  test("the addon's header walk skips the segments lib/wire/jpeg-header.ts skips", () => {
    const header = withSize(small(), 30000, 30000);
    const at = sofAt(header);
    const insert = (bytes: number[], where = at) => new Uint8Array([...header.subarray(0, where), ...bytes, ...header.subarray(where)]);
    // Segments shaped like a frame header claiming 9000x9000: a walk that took one for
    // the frame header would name 9000x9000, and nothing here reaches the decoder.
    const decoy = (code: number) => [0xff, code, 0x00, 0x11, 0x08, 0x23, 0x28, 0x23, 0x28, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
    const refused = "decodeJpeg: JPEG of 30000x30000 exceeds the 7680x4320 limit";
    const cases: [string, Uint8Array, string][] = [
      ["DHT before SOF", insert(decoy(0xc4)), refused],
      ["JPG before SOF", insert(decoy(0xc8)), refused],
      ["DAC before SOF", insert(decoy(0xcc)), refused],
      ["APP1 holding a frame header", insert([0xff, 0xe1, 0x00, 0x15, ...decoy(0xc0)]), refused],
      ["fill bytes, RSTn and TEM", insert([0xff, 0xff, 0xd0, 0xff, 0x01, 0xff, 0xff]), refused],
      ["SOF9 (arithmetic)", (() => { const b = header.slice(); b[at + 1] = 0xc9; return b; })(), refused],
      ["a frame header without its FF", insert(decoy(0xc0).slice(1)), "decodeJpeg: not a decodable image"],
      ["EOI before SOF", insert([0xff, 0xd9]), "decodeJpeg: not a decodable image"],
      ["truncated inside SOF", header.subarray(0, at + 10), "decodeJpeg: not a decodable image"],
    ];
    for (const [name, bytes, message] of cases) {
      expect({ name, ts: readJpegSize(bytes)?.width ?? null }).toEqual({ name, ts: message === refused ? 30000 : null });
      expect(() => cv().decodeJpeg(bytes)).toThrow(message);
    }
  });

  test("argument types are checked with TypeErrors that name the argument", () => {
    const good = cv().encodeJpeg(quadrantImage(), W, H, 80);
    expect(() => cv().jpegInfo(new Float32Array(4) as unknown as Uint8Array)).toThrow(new TypeError("jpegInfo: jpeg must be a Uint8Array"));
    expect(() => cv().decodeJpeg(new Uint16Array(good.length) as unknown as Uint8Array)).toThrow(new TypeError("decodeJpeg: jpeg must be a Uint8Array"));
    expect(() => cv().encodeJpeg(quadrantImage(), "320" as unknown as number, H, 80)).toThrow(new TypeError("encodeJpeg: width must be a number"));
    expect(() => cv().encodeJpeg(new Uint8ClampedArray(W * H * 3) as unknown as Uint8Array, W, H, 80)).toThrow(
      new TypeError("encodeJpeg: bgr must be a Uint8Array"),
    );
    expect(() => cv().showDecoded(1 as unknown as string)).toThrow(new TypeError("showDecoded: name must be a string"));
    expect(() => cv().windowVisible(undefined as unknown as string)).toThrow(new TypeError("windowVisible: name must be a string"));
    expect(() => cv().showDecoded("w", "status" as unknown as { top: string })).toThrow(new TypeError("showDecoded: text must be an object {top, bottom}"));
    expect(() => cv().redrawWindow("w", { top: 1 as unknown as string })).toThrow(new TypeError("redrawWindow: text.top must be a string"));
    expect(() => cv().redrawWindow("w", { bottom: null as unknown as string })).toThrow(new TypeError("redrawWindow: text.bottom must be a string"));
    expect(() => cv().setWindowFullScreen("w", 1 as unknown as boolean)).toThrow(new TypeError("setWindowFullScreen: on must be a boolean"));
  });

  test("FrameCheck counts a refused frame as failed", () => {
    const check = new FrameCheck();
    const good = cv().encodeJpeg(quadrantImage(), W, H, 80);
    check.check(good, W, H);
    check.check(good, 640, 480);
    check.check(withSize(small(), 30000, 30000), 30000, 30000);
    check.check(new Uint8Array([1, 2, 3]), W, H);
    expect(check.counts).toEqual({ decoded: 2, failed: 2, wrongSize: 1 });
  });

  const xvfbRun = Bun.which("xvfb-run");
  test.skipIf(!xvfbRun)(
    "the window path refuses the 30000x30000 JPEG at once and still shows a good one (under xvfb-run)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "lancam-limit-"));
      try {
        const bomb = withSize(small(), 30000, 30000);
        const script = `
          import { cv } from "./lib/native/cv.ts";
          const c = cv();
          c.openWindow("lancam limit");
          const t0 = performance.now();
          const bomb = (await c.decodeForWindow(new Uint8Array(${JSON.stringify(Array.from(bomb))}))) && c.showDecoded("lancam limit");
          const ms = performance.now() - t0;
          const good = (await c.decodeForWindow(c.encodeJpeg(new Uint8Array(64 * 48 * 3), 64, 48, 80))) && c.showDecoded("lancam limit");
          c.closeWindow("lancam limit");
          console.log(JSON.stringify({ bomb, good, fast: ms < 500, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }));`;
        const env: Record<string, string> = { XDG_RUNTIME_DIR: dir };
        for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "DISPLAY" && k !== "WAYLAND_DISPLAY") env[k] ??= v;
        const p = Bun.spawn([xvfbRun!, "-a", process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), env, stdout: "pipe", stderr: "pipe" });
        const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
        expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
        const seen = JSON.parse(stdout.trim().split("\n").at(-1)!);
        expect(seen).toMatchObject({ bomb: false, good: true, fast: true });
        expect(seen.maxRssMB).toBeLessThan(500);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});

describe("decodeForWindow", () => {
  test("decodes on a worker: true for a JPEG, false for garbage or a picture over the limit, no throw", async () => {
    const ok = cv().encodeJpeg(new Uint8Array(64 * 48 * 3).fill(100), 64, 48, 80);
    expect(await cv().decodeForWindow(ok)).toBe(true);
    expect(await cv().decodeForWindow(new Uint8Array(300).fill(7))).toBe(false);
    expect(await cv().decodeForWindow(withSize(ok, 30_000, 30_000))).toBe(false);
    expect(() => cv().decodeForWindow("x" as unknown as Uint8Array)).toThrow("decodeForWindow: jpeg must be a Uint8Array");
  });
});
