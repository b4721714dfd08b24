import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cv } from "../lib/native/cv.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";
import { FRAME_NUMBER, FRAME_SIZE } from "./helpers/cv-window-child.ts";

const CHILD = join(import.meta.dir, "helpers/cv-window-child.ts");
const xvfbRun = Bun.which("xvfb-run");
const imageMagickImport = Bun.which("import");
const SCREEN = { width: 1280, height: 720 };

if (!xvfbRun) console.warn("window.test.ts: xvfb-run not found (sudo apt-get install xvfb); skipping the on-screen test");
if (!imageMagickImport) console.warn("window.test.ts: ImageMagick `import` not found (sudo apt-get install imagemagick); skipping the on-screen test");

/** Environment without any display settings, plus `extra`. */
function envWith(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== "DISPLAY" && k !== "WAYLAND_DISPLAY" && k !== "XAUTHORITY") env[k] = v;
  }
  return { ...env, ...extra };
}

describe("viewer window", () => {
  test.skipIf(!xvfbRun || !imageMagickImport)(
    "under xvfb-run a shown frame appears on screen and pollKey times out with -1",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "lancam-window-"));
      try {
        const p = Bun.spawn(
          [xvfbRun!, "-a", "-s", `-screen 0 ${SCREEN.width}x${SCREEN.height}x24`, process.execPath, CHILD, "show", dir],
          { env: envWith({ XDG_RUNTIME_DIR: dir }), stdout: "pipe", stderr: "pipe" },
        );
        const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
        expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
        const seen = JSON.parse(stdout.trim().split("\n").at(-1)!);
        expect(seen).toMatchObject({ available: true, shown: true, badShown: false, badFrames: 1, key: -1 });
        expect(seen.keyMs).toBeGreaterThanOrEqual(40);
        expect(seen.keyMs).toBeLessThan(2000);

        const shot = cv().decodeJpeg(await Bun.file(join(dir, "shot.jpg")).bytes());
        expect([shot.width, shot.height]).toEqual([SCREEN.width, SCREEN.height]);
        // No window manager: the window sits at the top-left corner, so the frame's
        // barcode is readable from a crop of the screenshot.
        const crop = new Uint8Array(FRAME_SIZE.width * FRAME_SIZE.height * 3);
        for (let y = 0; y < FRAME_SIZE.height; y++) {
          const from = y * shot.width * 3;
          crop.set(shot.bgr.subarray(from, from + FRAME_SIZE.width * 3), y * FRAME_SIZE.width * 3);
        }
        let sum = 0;
        let sq = 0;
        for (const v of crop) {
          sum += v;
          sq += v * v;
        }
        const mean = sum / crop.length;
        expect(sq / crop.length - mean * mean).toBeGreaterThan(500); // not blank
        expect(readFrameNumber(crop, FRAME_SIZE.width, FRAME_SIZE.height)).toBe(FRAME_NUMBER);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );

  for (const [label, extra] of [
    ["unset", {}],
    ["bogus", { DISPLAY: ":4093" }],
  ] as const) {
    test(`DISPLAY ${label}: displayAvailable() is false and nothing crashes`, () => {
      const p = Bun.spawnSync([process.execPath, CHILD, "probe"], { env: envWith(extra) });
      expect({ code: p.exitCode, signal: p.signalCode ?? null, stderr: p.stderr.toString() }).toEqual({ code: 0, signal: null, stderr: "" });
      const seen = JSON.parse(p.stdout.toString().trim());
      const display = label === "unset" ? "DISPLAY is not set" : "cannot open DISPLAY=:4093";
      expect(seen).toEqual({
        available: false,
        openError: `cannot open a window: no X display (DISPLAY=${label === "unset" ? "unset" : ":4093"})`,
        showError: `no X display: ${display}`,
      });
    }, 15_000);
  }
});
