// The window keeps its size when the server moves the viewer to a smaller quality layer.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { windowSizeFor } from "../lib/display/viewer-window.ts";
import { cv } from "../lib/native/cv.ts";

describe("windowSizeFor", () => {
  test("a smaller layer of the same picture is scaled up to the window; a larger or differently shaped one resizes it", () => {
    expect(windowSizeFor(null, { width: 640, height: 360 })).toEqual({ width: 640, height: 360 });
    const full = { width: 1280, height: 720 };
    expect(windowSizeFor(full, { width: 640, height: 360 })).toEqual(full);
    expect(windowSizeFor(full, { width: 320, height: 180 })).toEqual(full);
    expect(windowSizeFor({ width: 1366, height: 768 }, { width: 682, height: 384 })).toEqual({ width: 1366, height: 768 });
    expect(windowSizeFor(full, { width: 1920, height: 1080 })).toEqual({ width: 1920, height: 1080 });
    expect(windowSizeFor(full, { width: 640, height: 480 })).toEqual({ width: 640, height: 480 });
  });
});

describe("decodeForWindow with a size", () => {
  test("scales on the worker; a size outside the picture limits is a RangeError", async () => {
    const small = cv().encodeJpeg(new Uint8Array(64 * 48 * 3).fill(100), 64, 48, 80);
    expect(await cv().decodeForWindow(small, 128, 96)).toBe(true);
    expect(() => cv().decodeForWindow(small, 8, 96)).toThrow(RangeError);
    expect(() => cv().decodeForWindow(small, 128, 100_000)).toThrow(RangeError);
    expect(() => cv().decodeForWindow(small, "x" as unknown as number, 96)).toThrow("decodeForWindow: width must be a number");
  });

  const xvfbRun = Bun.which("xvfb-run");
  test.skipIf(!xvfbRun)(
    "under xvfb-run: after a 640x360 frame a 320x180 one fills the same 640x360 window; a 320x240 stream resizes it",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "lancam-winlayers-"));
      try {
        const script = `
          import { cv } from "./lib/native/cv.ts";
          import { ViewerWindow } from "./lib/display/viewer-window.ts";
          const c = cv();
          const frame = (w, h) => c.encodeJpeg(new Uint8Array(w * h * 3).fill(120), w, h, 80);
          using win = new ViewerWindow().open("lancam layers");
          const seen = [];
          for (const [w, h] of [[640, 360], [320, 180], [320, 240]]) {
            const shown = await win.showAsync(frame(w, h));
            // The window takes the new picture on the next event loop turns.
            let size = null;
            for (let i = 0; i < 40; i++) {
              win.pollKey(25);
              size = c.windowImageSize("lancam layers");
              if (size.width === win.size.width && size.height === win.size.height) break;
            }
            seen.push({ shown, size });
          }
          console.log(JSON.stringify(seen));`;
        const env: Record<string, string> = { XDG_RUNTIME_DIR: dir };
        for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "DISPLAY" && k !== "WAYLAND_DISPLAY") env[k] ??= v;
        const p = Bun.spawn([xvfbRun!, "-a", process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), env, stdout: "pipe", stderr: "pipe" });
        const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
        expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
        expect(JSON.parse(stdout.trim().split("\n").at(-1)!)).toEqual([
          { shown: true, size: { width: 640, height: 360 } },
          { shown: true, size: { width: 640, height: 360 } },
          { shown: true, size: { width: 320, height: 240 } },
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});

describe("text on the window's picture", () => {
  const xvfbRun = Bun.which("xvfb-run");
  test.skipIf(!xvfbRun)(
    "under xvfb-run: text longer than the picture, outside ASCII, on the smallest picture, full screen or not, draws without an error",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "lancam-wintext-"));
      try {
        const script = `
          import { cv } from "./lib/native/cv.ts";
          import { ViewerWindow } from "./lib/display/viewer-window.ts";
          const c = cv();
          const frame = (w, h) => c.encodeJpeg(new Uint8Array(w * h * 3).fill(120), w, h, 80);
          using win = new ViewerWindow().open("lancam text");
          const long = "picture 4.2 s old, ".repeat(2000) + String.fromCodePoint(0xe9, 0x4e2d, 0x1f600, 10, 9, 0);
          const seen = [];
          seen.push(win.redraw({ top: "before any picture" }));
          for (const [w, h] of [[16, 16], [17, 1000], [640, 360]]) {
            seen.push(await win.showAsync(frame(w, h), { top: long, bottom: long }));
            seen.push(win.redraw({ top: "", bottom: long }));
            seen.push(win.setFullScreen(true), win.redraw({ top: long }), win.setFullScreen(false), win.redraw({}));
            win.pollKey(5);
          }
          console.log(JSON.stringify({ seen, bad: win.badFrames }));`;
        const env: Record<string, string> = { XDG_RUNTIME_DIR: dir };
        for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "DISPLAY" && k !== "WAYLAND_DISPLAY") env[k] ??= v;
        const p = Bun.spawn([xvfbRun!, "-a", process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), env, stdout: "pipe", stderr: "pipe" });
        const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
        expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
        // Nothing to redraw before the first picture; everything else draws.
        expect(JSON.parse(stdout.trim().split("\n").at(-1)!)).toEqual({ seen: [false, ...Array(18).fill(true)], bad: 0 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});
