// Several cameras from one server, end to end on 127.0.0.1: a config file with two
// cameras of different sizes, a viewer of each picking its camera by name or number,
// their recordings, /state, a camera whose source ends while the other goes on, and a
// viewer that asks for a camera the server does not have.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { filesUnder } from "./helpers/files.ts";

let dir: string;
let clip: string;
/** The desk camera's clip: 320x240 at 15 fps, this long, played once (no --loop). */
const CLIP_SECONDS = 3;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-cameras-"));
  clip = join(dir, "desk.avi");
  const ff = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
    "-t", String(CLIP_SECONDS), "-c:v", "mjpeg", "-q:v", "5", clip]);
  if (ff.exitCode !== 0) throw new Error(`ffmpeg could not make the clip: ${ff.stderr.toString()}`);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

describe("several cameras from one server", () => {
  test("a viewer of each camera gets and records that camera's picture; /state lists both; when one camera's source ends its viewer is told and stays, the other goes on at full rate", async () => {
    const config = join(dir, "two.toml");
    writeFileSync(config, [
      "[[source]]", 'name = "board"', 'src = "test"', 'size = "640x360"', "fps = 30", "",
      "[[source]]", 'name = "desk"', `src = ${JSON.stringify(clip)}`, "",
    ].join("\n"));
    await using server = spawnBun(["server.ts", "--config", config, "--port", "0", "--http", "0", "--http-bind", "127.0.0.1", "--log", join(dir, "server.log")]);
    const port = (await server.waitFor(/lancam server listening tcp=(\d+)/, 30_000))[1]!;
    const url = (await server.waitFor(/lancam http listening url=(\S+)/, 30_000))[1]!;
    // Each camera signs with its own key, and the server says so.
    await until(() => (server.stdout().match(/frame signing key fingerprint=/g) ?? []).length >= 2, 10_000, () => `two fingerprints in:\n${server.stdout()}`);

    // Nobody watches yet: neither camera captures (a camera nobody watches encodes nothing).
    type Captured = { name: string; framesCaptured: number };
    const idle = ((await (await fetch(`${url}state`)).json()) as { sources: Captured[] }).sources;
    expect(idle.map((s) => [s.name, s.framesCaptured])).toEqual([["board", 0], ["desk", 0]]);

    const viewer = (name: string, camera: string) => {
      const out = join(dir, `rec-${name}`);
      const stats = join(dir, `${name}.json`);
      const child = spawnBun(["client.ts", "127.0.0.1", port, "0", "--camera", camera, "--no-window", "--duration", "8", "--segment", "2", "--out", out, "--stats", stats]);
      return { child, out, stats };
    };
    const board = viewer("board", "board");
    const desk = viewer("desk", "1");
    await using _b = board.child;
    await using _d = desk.child;
    await board.child.waitFor(/connected .*camera=board .*size=640x360/, 30_000, "stderr");
    await desk.child.waitFor(/connected .*camera=desk .*size=320x240/, 30_000, "stderr");

    type Source = { name: string; width: number; height: number; viewers: number; available: boolean };
    let sources: Source[] = [];
    await until(async () => {
      sources = ((await (await fetch(`${url}state`)).json()) as { sources: Source[] }).sources;
      return sources.length === 2 && sources.every((s) => s.viewers === 1);
    }, 15_000, () => `both cameras with a viewer each in /state: ${JSON.stringify(sources)}`);
    expect(sources.map(({ name, width, height }) => ({ name, width, height }))).toEqual([
      { name: "board", width: 640, height: 360 }, { name: "desk", width: 320, height: 240 },
    ]);

    // The clip ends (no --loop): its viewer hears that its camera is unavailable, and stays.
    await desk.child.waitFor(/the server's camera is unavailable/, 30_000, "stderr");
    await until(async () => {
      sources = ((await (await fetch(`${url}state`)).json()) as { sources: Source[] }).sources;
      return sources[1]?.available === false;
    }, 10_000, () => `desk unavailable in /state: ${JSON.stringify(sources)}`);
    expect(sources[0]!.available).toBe(true);

    await expectExit(board.child, 0);
    await expectExit(desk.child, 0);
    const b = JSON.parse(readFileSync(board.stats, "utf8")) as StatsSummary;
    const d = JSON.parse(readFileSync(desk.stats, "utf8")) as StatsSummary;
    // The board camera went on at its rate while the desk's source ended beside it.
    expect(median(b.fpsPerSecond.slice(CLIP_SECONDS + 1, -1))).toBeGreaterThanOrEqual(20);
    expect(d.framesReceived).toBeGreaterThan(0);
    expect(d.framesReceived).toBeLessThanOrEqual(CLIP_SECONDS * 15);
    expect(server.proc.exitCode).toBeNull();

    // Each recording holds its own camera's picture, and every segment plays.
    for (const [out, size] of [[board.out, { width: 640, height: 360 }], [desk.out, { width: 320, height: 240 }]] as const) {
      const files = filesUnder(out);
      expect(files.length).toBeGreaterThanOrEqual(1);
      for (const f of files) expect(await probeVideo(join(out, f))).toMatchObject({ codec: "mjpeg", ...size });
    }
  }, 120_000);

  test("a viewer that asks for a camera the server does not have is refused with the list of cameras, and exits non-zero", async () => {
    await using server = spawnBun(["server.ts", "--source", "board=test", "--source", "test", "--size", "320x240", "--port", "0", "--log", join(dir, "refuse.log")]);
    const port = (await server.waitFor(/lancam server listening tcp=(\d+)/, 30_000))[1]!;
    await using client = spawnBun(["client.ts", "127.0.0.1", port, "0", "--camera", "window", "--no-window", "--no-record", "--duration", "5"]);
    const code = await client.exited;
    expect(code).not.toBe(0);
    expect(client.stderr()).toContain('no camera "window" on this server; it has 2 cameras: 0=board, 1');
    await server.waitFor(/client refused client=127\.0\.0\.1:\d+ udp=\d+ reason="no such camera" camera=window/, 10_000, "stderr");
    // By number, the unnamed second camera is there.
    await using second = spawnBun(["client.ts", "127.0.0.1", port, "0", "--camera", "1", "--no-window", "--no-record", "--frames", "5"]);
    await expectExit(second, 0);
  }, 60_000);

  test("--record on the server records every camera into a folder of its own, each at its own size", async () => {
    const out = join(dir, "server-rec");
    await using server = spawnBun(["server.ts", "--source", "board=test", "--source", "test", "--size", "320x240", "--port", "0", "--log", join(dir, "rec.log"),
      "--record", out, "--segment", "1"]);
    await server.waitFor(/lancam server listening tcp=(\d+)/, 30_000);
    await until(() => ["board", "1"].every((cam) => existsSync(join(out, cam)) && filesUnder(join(out, cam)).some((f) => f.endsWith(".avi"))), 30_000,
      () => `a finished segment in each camera's folder: ${existsSync(out) ? filesUnder(out).join(", ") : "none"}`);
    for (const cam of ["board", "1"]) {
      const f = filesUnder(join(out, cam)).find((x) => x.endsWith(".avi"))!;
      expect(await probeVideo(join(out, cam, f))).toMatchObject({ codec: "mjpeg", width: 320, height: 240 });
    }
  }, 60_000);
});
