// The camera path without a camera: `bun server.ts --source camera:N` against a fake
// V4L2 device (tests/helpers/fake-v4l2.c, preloaded), which OpenCV's V4L2 backend
// opens, negotiates, maps and streams from as from a USB camera.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cv, renderTestFrame } from "../lib/native/cv.ts";
import { buildFakeV4l2, fakeCameraEnv, type FakeCamera } from "./helpers/fake-camera.ts";
import { streamParts, takeParts } from "./helpers/mjpeg-parts.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";

// An index no machine running the tests has a real camera at.
const INDEX = 47;
const W = 640;
const H = 360;
const JPEGS = 12;

let dir = "";
let shim = "";
let jpegDir = "";
const jpegs: Buffer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lancam-fake-camera-"));
  shim = buildFakeV4l2(dir);
  jpegDir = join(dir, "jpegs");
  mkdirSync(jpegDir);
  for (let i = 0; i < JPEGS; i++) {
    const jpeg = await renderTestFrame(W, H, i, `camera frame ${i}`, 80);
    jpegs.push(jpeg);
    writeFileSync(join(jpegDir, `${String(i).padStart(3, "0")}.jpg`), jpeg);
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function startServer(camera: FakeCamera, extra: string[] = []) {
  return spawnBun(["server.ts", "--source", `camera:${camera.index}`, "--port", "0", "--http", "0", "--http-bind", "127.0.0.1",
    "--log", join(dir, "server.log"), ...extra], fakeCameraEnv(shim, camera));
}

describe("a fake V4L2 camera", () => {
  test("MJPG: the camera's JPEG passes through byte for byte, in order, at its size and rate", async () => {
    await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`, "YUYV:320x240"], jpegs: jpegDir });
    const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
    expect(server.stdout()).toContain(`source=camera:${INDEX} size=${W}x${H} fps=30`);
    expect(server.stderr()).toMatch(new RegExp(`opened source source=camera:${INDEX} backend=V4L2 .*fourcc=MJPG path=passthrough`));
    const parts = await takeParts(`${url}stream.mjpg`, 20, 30_000);
    const numbers = parts.map((p) => {
      const i = jpegs.findIndex((j) => Buffer.compare(j, Buffer.from(p.jpeg)) === 0);
      expect(i).toBeGreaterThanOrEqual(0);
      return i;
    });
    // The camera's frames in its own order: each the one after the last (a skipped one at most now and then).
    const steps = numbers.slice(1).map((n, k) => (n - numbers[k]! + JPEGS) % JPEGS);
    expect(steps.filter((s) => s === 1).length).toBeGreaterThanOrEqual(steps.length / 2);
  }, 60_000);

  test("YUYV only: encoded from the camera's planes", async () => {
    await using server = startServer({ index: INDEX, formats: ["YUYV:640x480", "YUYV:320x240"] });
    const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
    expect(server.stderr()).toMatch(new RegExp(`opened source source=camera:${INDEX} backend=V4L2 .*width=640 height=480 .*fourcc=YUYV path=yuv`));
    const parts = await takeParts(`${url}stream.mjpg`, 5, 30_000);
    for (const part of parts) {
      const { bgr, width, height } = cv().decodeJpeg(part.jpeg);
      expect([width, height]).toEqual([640, 480]);
      // The fake's picture: a luma ramp, dark on the left, light on the right.
      const column = (x: number) => {
        let sum = 0;
        for (let y = 0; y < height; y++) sum += bgr[(y * width + x) * 3 + 1]!;
        return sum / height;
      };
      expect(column(620) - column(10)).toBeGreaterThan(150);
    }
  }, 60_000);

  test("with --overlay: the MJPG camera's frames are decoded, drawn on and encoded (said once), a YUYV camera's drawn on its planes", async () => {
    const overlay = ["--overlay", "cam {camera} %T", "--overlay-pos", "bottom-right"];
    {
      await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`], jpegs: jpegDir }, overlay);
      const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
      expect(server.stderr()).toContain("path=passthrough");
      for (const part of await takeParts(`${url}stream.mjpg`, 3, 30_000)) {
        const got = cv().decodeJpeg(part.jpeg).bgr;
        // The camera's own picture of that frame (its number is in the barcode), against what came.
        const n = readFrameNumber(got, W, H);
        expect(n).not.toBeNull();
        const original = cv().decodeJpeg(jpegs[n! % JPEGS]!).bgr;
        let x0 = W, y0 = H, x1 = -1, y1 = -1;
        for (let i = 0; i < W * H; i++) {
          if (Math.abs(got[i * 3 + 1]! - original[i * 3 + 1]!) > 40) {
            const x = i % W, y = Math.floor(i / W);
            x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
          }
        }
        expect(x1).toBeGreaterThan(0);
        expect(x0 >= W / 2 && y0 >= (3 * H) / 4).toBe(true);
      }
      expect(server.stderr().match(/decoded, drawn on and encoded again/g) ?? []).toHaveLength(1);
    }
    {
      const [w, h] = [640, 480];
      await using server = startServer({ index: INDEX, formats: [`YUYV:${w}x${h}`] }, overlay);
      const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
      expect(server.stderr()).toContain("path=yuv");
      for (const part of await takeParts(`${url}stream.mjpg`, 3, 30_000)) {
        const { bgr } = cv().decodeJpeg(part.jpeg);
        const mean = (rowFrom: number, rows: number) => {
          let sum = 0;
          for (let y = rowFrom; y < rowFrom + rows; y++) for (let x = w - 100; x < w - 20; x++) sum += bgr[(y * w + x) * 3 + 1]!;
          return sum / (rows * 80);
        };
        // The fake's luma ramp is the same down every column (but for its 8-row bright bar, which
        // cannot cover both rows of reference): under the box, below the text, it is darkened.
        const reference = Math.min(mean(h / 2, 3), mean(h / 2 + 20, 3));
        expect(mean(h - 11, 3)).toBeLessThan(reference * 0.6);
        expect(mean(h / 4, 3)).toBeGreaterThan(reference * 0.9);
      }
      expect(server.stderr()).not.toContain("decoded, drawn on and encoded again");
    }
  }, 90_000);

  for (const [what, camera, line] of [
    ["in use by another program", { busy: true }, `cannot open camera:${INDEX}: /dev/video${INDEX} is in use by another program; close it (\`fuser -v /dev/video${INDEX}\` names it) or use another camera`],
    ["without permission", { denied: true }, `cannot open camera:${INDEX}: no permission to open /dev/video${INDEX}; add your user to the video group (sudo usermod -aG video $USER, then log in again)`],
  ] as const) {
    test(`a camera ${what}: one line naming the device and the fix, exit 1`, async () => {
      await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`], jpegs: jpegDir, ...camera });
      expect({ code: await server.exited, stdout: server.stdout(), stderr: server.stderr() }).toEqual({ code: 1, stdout: "", stderr: `lancam-server: error: ${line}\n` });
    }, 30_000);
  }

  test("stopped while the camera is away: says goodbye and exits 0, counting the outage", async () => {
    const unplugged = join(dir, "unplugged-for-good");
    rmSync(unplugged, { force: true });
    await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`], jpegs: jpegDir, unplugAfter: 10, unplugged }, ["--record", join(dir, "rec")]);
    await server.waitFor(/camera unavailable: waiting for it to come back/, 30_000, "stderr");
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);
    expect(server.stderr()).toMatch(/INFO \[server\] stopped .*cameraOutages=1/);
  }, 60_000);

  test("a size the camera does not have: a warning naming what it chose, and that size streamed", async () => {
    await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`, "YUYV:320x240"], jpegs: jpegDir }, ["--size", "1280x720"]);
    const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
    expect(server.stderr()).toContain(`WARN [capture] camera chose another size requested=1280x720 got=${W}x${H}`);
    const [part] = await takeParts(`${url}stream.mjpg`, 1, 30_000);
    const { width, height } = cv().decodeJpeg(part!.jpeg);
    expect([width, height]).toEqual([W, H]);
  }, 60_000);

  test("unplugged, then plugged in again: the server waits, viewers stay connected and are told, frames resume", async () => {
    const unplugged = join(dir, "unplugged");
    const stats = join(dir, "viewer.json");
    const UNPLUG_AFTER = 45;
    rmSync(unplugged, { force: true });
    await using server = startServer({ index: INDEX, formats: [`MJPG:${W}x${H}`], jpegs: jpegDir, unplugAfter: UNPLUG_AFTER, unplugged });
    const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
    const port = (await server.waitFor(/lancam server listening tcp=(\d+)/))[1]!;
    // A lancam viewer and a browser's MJPEG stream, both watching from before the unplug.
    await using viewer = spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--stats", stats, "--log", join(dir, "viewer.log")]);
    await viewer.waitFor(/INFO \[client\] connected /, 30_000, "stderr");
    const stream = streamParts(`${url}stream.mjpg`);
    try {
      await server.waitFor(/camera unavailable: waiting for it to come back source=camera:47 reason=.*unplugged/, 30_000, "stderr");
      expect(existsSync(unplugged)).toBe(true);
      // The lancam viewer is told (a source message), and says so once; its window would show it.
      await viewer.waitFor(/WARN \[client\] the server's camera is unavailable/, 10_000, "stderr");
      // One that joins during the outage is told right after its welcome.
      {
        await using late = spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record"]);
        await late.waitFor(/INFO \[client\] connected /, 30_000, "stderr");
        await late.waitFor(/WARN \[client\] the server's camera is unavailable/, 10_000, "stderr");
      }
      const before = stream.parts.length;
      expect(before).toBeGreaterThan(0);
      // The camera stays out for a while, as a cable pulled and pushed back in does;
      // the server retries meanwhile, and nobody is disconnected.
      await Bun.sleep(1500);
      expect(stream.open()).toBe(true);
      expect(server.proc.exitCode).toBeNull();
      rmSync(unplugged);
      const replugged = performance.now();
      await server.waitFor(/camera back source=camera:47 downMs=\d+/, 30_000, "stderr");
      await viewer.waitFor(/INFO \[client\] the server's camera is back/, 10_000, "stderr");
      await until(() => stream.parts.length >= before + 10, 30_000, () => `frames after the replug: ${stream.parts.length - before}`);
      expect(stream.open()).toBe(true);
      // Frames resume within about a second of the replug (retries back off to 1 s); generous for a busy machine.
      const resumedAfter = stream.arrivals[before]! - replugged;
      expect(resumedAfter).toBeLessThan(4000);
      // The same stream goes on: frame numbers keep counting up through the outage.
      const numbers = stream.parts.map((p) => p.frame);
      expect(numbers.every((n, k) => k === 0 || n > numbers[k - 1]!)).toBe(true);
      // And they are the camera's pictures again, in the test pattern's numbering.
      expect(readFrameNumber(cv().decodeJpeg(stream.parts.at(-1)!.jpeg).bgr, W, H)).not.toBeNull();
      console.log(`frames resumed ${Math.round(resumedAfter)} ms after the replug`);
      // The lancam viewer stayed in its one session and got frames from after the replug too.
      viewer.proc.kill("SIGTERM");
      await expectExit(viewer, 0);
      const s = JSON.parse(readFileSync(stats, "utf8")) as { framesReceived: number; reconnects: number };
      expect(s.reconnects).toBe(0);
      expect(s.framesReceived).toBeGreaterThan(UNPLUG_AFTER);
      expect(viewer.stderr().match(/INFO \[client\] connected /g)).toHaveLength(1);
    } finally {
      stream.stop();
    }
    expect(server.stderr()).not.toContain("capture failed");
  }, 90_000);
});
