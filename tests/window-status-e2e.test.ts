// The viewer's window as a teacher projects it, under Xvfb with real server and client
// processes: the status on a stalled picture, the info line, saving the picture shown,
// and full screen. The source is a still picture, so what the window should show is
// known exactly: the JPEG the viewer saves with `s`. Keys go in with xdotool; the
// screen comes out with ImageMagick's `import`, raw, so nothing is lost on the way.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { cv } from "../lib/native/cv.ts";
import { spawnBun, spawnChild, until, type Child, expectExit } from "./helpers/process.ts";
import { startXvfb } from "./helpers/xvfb.ts";

const SCREEN = { width: 1024, height: 768 };
const PICTURE = { width: 640, height: 360 };
const tools = ["xdotool", "import", "Xvfb"].filter((t) => !Bun.which(t));
if (tools.length) console.warn(`window-status-e2e.test.ts: ${tools.join(", ")} not found (bash scripts/setup.sh --test); skipping`);

let dir: string;
let clip: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-winstatus-"));
  const ffmpeg = resolveFfmpeg().path;
  const still = join(dir, "still.jpg");
  clip = join(dir, "still.avi");
  for (const cmd of [
    [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${PICTURE.width}x${PICTURE.height}`, "-frames:v", "1", still],
    [ffmpeg, "-hide_banner", "-loglevel", "error", "-loop", "1", "-framerate", "10", "-i", still, "-frames:v", "20", "-c:v", "mjpeg", "-q:v", "3", clip],
  ]) {
    const p = Bun.spawnSync(cmd);
    if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString()}`);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A picture as packed BGR. */
interface Bgr {
  bgr: Uint8Array;
  width: number;
  height: number;
}

/** The whole screen, exactly (raw RGB from `import`, turned into BGR). */
async function screen(display: string): Promise<Bgr> {
  const path = join(dir, "screen.rgb");
  const shot = Bun.spawn(["import", "-display", display, "-window", "root", "-depth", "8", `rgb:${path}`], { stdout: "ignore", stderr: "pipe" });
  if ((await shot.exited) !== 0) throw new Error(`import failed: ${await new Response(shot.stderr).text()}`);
  const rgb = new Uint8Array(readFileSync(path));
  expect(rgb.length).toBe(SCREEN.width * SCREEN.height * 3);
  for (let i = 0; i < rgb.length; i += 3) [rgb[i], rgb[i + 2]] = [rgb[i + 2]!, rgb[i]!];
  return { bgr: rgb, width: SCREEN.width, height: SCREEN.height };
}

/** A rectangle: x, y, width, height. */
type Rect = [number, number, number, number];

/** Mean absolute difference per channel between `a` at its (ax, ay) and `b` at (bx, by) over a w x h area. */
function difference(a: Bgr, [ax, ay]: [number, number], b: Bgr, [bx, by, w, h]: Rect): number {
  let sum = 0;
  for (let y = 0; y < h; y++) {
    const ra = ((ay + y) * a.width + ax) * 3;
    const rb = ((by + y) * b.width + bx) * 3;
    for (let i = 0; i < w * 3; i++) sum += Math.abs(a.bgr[ra + i]! - b.bgr[rb + i]!);
  }
  return sum / (w * h * 3);
}

/** Mean of each channel (B, G, R) of the pixels in `r`. */
function channelMeans(p: Bgr, [x0, y0, w, h]: Rect): [number, number, number] {
  const sum = [0, 0, 0];
  for (let y = y0; y < y0 + h; y++) {
    for (let i = (y * p.width + x0) * 3; i < (y * p.width + x0 + w) * 3; i++) sum[i % 3]! += p.bgr[i]!;
  }
  return sum.map((v) => v / (w * h)) as [number, number, number];
}

/** Mean and largest value of the pixels in `r`. */
function levels(p: Bgr, [x0, y0, w, h]: Rect): { mean: number; max: number } {
  let sum = 0;
  let max = 0;
  for (let y = y0; y < y0 + h; y++) {
    for (let i = (y * p.width + x0) * 3; i < (y * p.width + x0 + w) * 3; i++) {
      sum += p.bgr[i]!;
      max = Math.max(max, p.bgr[i]!);
    }
  }
  return { mean: sum / (w * h * 3), max };
}

// Where the window (at the screen's top-left: no window manager) draws its text on the
// 640x360 picture: the status centred at the top, the info line at the bottom.
const STATUS: Rect = [200, 0, 240, 40];
const INFO: Rect = [200, 320, 240, 40];
const MIDDLE: Rect = [0, 80, 640, 220];

interface Session {
  server: Child;
  client: Child;
  window: string;
  display: string;
}

async function startSession(x: { display: string }, name: string, clientArgs: string[]): Promise<Session> {
  const server = spawnBun(["server.ts", "--source", clip, "--loop", "--port", "0", "--layers", "off", "--log", join(dir, `${name}.log`)]);
  const port = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
  const client = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-record", "--out", join(dir, `${name}-out`), ...clientArgs], {
    DISPLAY: x.display, XDG_RUNTIME_DIR: dir,
  });
  await client.waitFor(/INFO \[client\] connected /, 15_000, "stderr");
  const find = spawnChild(["xdotool", "search", "--sync", "--name", `lancam 127.0.0.1:${port}`], { DISPLAY: x.display });
  await expectExit(find, 0);
  return { server, client, window: find.stdout().trim().split("\n")[0]!, display: x.display };
}

async function press(s: Session, key: string): Promise<void> {
  const p = spawnChild(["xdotool", "windowfocus", "--sync", s.window, "key", key], { DISPLAY: s.display });
  await expectExit(p, 0);
}

async function geometry(s: Session): Promise<{ width: number; height: number }> {
  const p = spawnChild(["xdotool", "getwindowgeometry", "--shell", s.window], { DISPLAY: s.display });
  await expectExit(p, 0);
  const v = (k: string) => Number(new RegExp(`^${k}=(\\d+)$`, "m").exec(p.stdout())?.[1]);
  return { width: v("WIDTH"), height: v("HEIGHT") };
}

/**
 * Presses s and reads the picture the viewer saved (the n-th save of this client). Before
 * the first picture is on screen there is none to save, so s is pressed until one is.
 */
async function save(s: Session, n: number): Promise<{ path: string; picture: Bgr }> {
  const re = /INFO \[client\] picture saved path=(\S+) size=(\d+x\d+)/g;
  const saved = () => [...s.client.stderr().matchAll(re)].length >= n;
  const deadline = performance.now() + 20_000;
  while (!saved()) {
    if (performance.now() > deadline) throw new Error(`no picture saved after pressing s for 20 s\nstderr:\n${s.client.stderr()}`);
    await press(s, "s");
    const asked = performance.now();
    await until(() => saved() || /no picture to save yet/.test(s.client.stderr()) || performance.now() - asked > 2000, 5000, "an answer to s");
  }
  const path = [...s.client.stderr().matchAll(re)][n - 1]![1]!;
  return { path, picture: cv().decodeJpeg(new Uint8Array(readFileSync(path))) };
}

describe("the viewer window", () => {
  test.skipIf(tools.length > 0)(
    "a stalled picture says so with its age, only while stalled; i toggles the info line; s saves the picture shown",
    async () => {
      await using x = await startXvfb(SCREEN.width, SCREEN.height);
      const s = await startSession(x, "stall", []);
      await using _server = s.server;
      await using _client = s.client;
      try {
        await until(async () => levels(await screen(x.display), MIDDLE).max > 0, 15_000, "the picture on screen");
        const { path, picture } = await save(s, 1);
        expect(path).toMatch(new RegExp(`^${dir}/stall-out/\\d{4}-\\d\\d-\\d\\d_\\d\\d-\\d\\d-\\d\\d_frame\\d+\\.jpg$`));
        expect([picture.width, picture.height]).toEqual([PICTURE.width, PICTURE.height]);
        expect(await geometry(s)).toEqual(PICTURE);

        // Live: the window shows the picture and nothing on it.
        let shot = await screen(x.display);
        const live = difference(shot, [200, 0], picture, STATUS);
        expect(live).toBeLessThan(3);
        expect(difference(shot, [0, 80], picture, MIDDLE)).toBeLessThan(3);
        expect(difference(shot, [200, 320], picture, INFO)).toBeLessThan(3);

        // The server stops (SIGSTOP): within a few seconds the status box covers the top, the rest stays the picture.
        s.server.proc.kill("SIGSTOP");
        let stalled = 0;
        await until(async () => {
          shot = await screen(x.display);
          return (stalled = difference(shot, [200, 0], picture, STATUS)) > 25;
        }, 15_000, () => `the status on the stalled picture (difference ${stalled.toFixed(1)} vs ${live.toFixed(1)} live)`);
        expect(difference(shot, [0, 80], picture, MIDDLE)).toBeLessThan(3);
        expect(difference(shot, [200, 320], picture, INFO)).toBeLessThan(3);
        // Its age counts up: the box is drawn again with no frame coming.
        const first = shot;
        await until(async () => difference(await screen(x.display), [200, 0], first, STATUS) > 0.5, 10_000, "the status text changing");

        // i: the info line appears at the bottom, and goes again.
        await press(s, "i");
        await until(async () => difference(await screen(x.display), [200, 320], picture, INFO) > 25, 10_000, "the info line");
        await press(s, "i");
        await until(async () => difference(await screen(x.display), [200, 320], picture, INFO) < 3, 10_000, "the info line gone");

        // s while stalled saves the picture on screen, without the status drawn on it.
        const again = await save(s, 2);
        expect(difference(again.picture, [0, 0], picture, [0, 0, PICTURE.width, PICTURE.height])).toBeLessThan(1);

        // The server goes on: the next pictures clear the status.
        s.server.proc.kill("SIGCONT");
        await until(async () => difference(await screen(x.display), [200, 0], picture, STATUS) < 3, 20_000, "the status gone once pictures come again");
      } finally {
        s.server.proc.kill("SIGCONT");
      }
    },
    90_000,
  );

  test.skipIf(tools.length > 0)(
    "--fullscreen fills the screen with the picture's shape kept (black bars); f goes back to the picture's size, and f again fills the screen",
    async () => {
      await using x = await startXvfb(SCREEN.width, SCREEN.height);
      const s = await startSession(x, "full", ["--fullscreen"]);
      await using _server = s.server;
      await using _client = s.client;
      await until(async () => {
        const g = await geometry(s);
        return g.width === SCREEN.width && g.height === SCREEN.height;
      }, 15_000, "the window filling the screen");
      const { picture } = await save(s, 1);
      // 640x360 on 1024x768: 1024x576, with 96-pixel black bars above and below.
      const scaled = { width: 1024, height: 576, top: 96 };
      let shot = await screen(x.display);
      await until(async () => levels((shot = await screen(x.display)), [0, scaled.top + 20, 1024, 500]).max > 0, 15_000, "the picture drawn full screen");
      expect(levels(shot, [0, 0, 1024, scaled.top - 2]).max).toBeLessThan(8);
      expect(levels(shot, [0, scaled.top + scaled.height + 2, 1024, SCREEN.height - scaled.top - scaled.height - 2]).max).toBeLessThan(8);
      // Not stretched or cropped: each eighth of the picture (testsrc2's six colour bars,
      // crossed by a diagonal), scaled by 1.6, has the colour it has in the picture.
      for (let i = 0; i < 8; i++) {
        const from = channelMeans(picture, [i * 80 + 10, 60, 60, 240]);
        const onScreen = channelMeans(shot, [i * 128 + 16, scaled.top + 96, 96, 384]);
        expect([i, ...onScreen.map((v, c) => Math.abs(v - from[c]!) < 8)]).toEqual([i, true, true, true]);
      }

      const sized = (want: { width: number; height: number }) => async () => {
        const g = await geometry(s);
        return g.width === want.width && g.height === want.height;
      };
      await press(s, "f");
      await until(sized(PICTURE), 15_000, "the window back at the picture's size");
      await until(async () => difference(await screen(x.display), [0, 0], picture, [0, 0, PICTURE.width, PICTURE.height]) < 3, 15_000, "the picture at its own size");
      // And f makes it full screen again.
      await press(s, "f");
      await until(sized(SCREEN), 15_000, "the window filling the screen after f");
      await until(async () => levels(await screen(x.display), [0, 0, 1024, scaled.top - 2]).max < 8, 15_000, "black bars after f");
    },
    90_000,
  );
});
