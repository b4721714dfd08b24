// Sound with the picture, end to end, with real server and viewer processes: the server
// runs the test pattern and the test audio (`--audio test`: a beep at each whole second
// of capture time, a white frame at the same instant); the viewer shows the picture in a
// window (Xvfb), writes what would be heard to a wav: file and records 2 s segments.
// Each beep must be heard within 45 ms of its flash being shown, and sit within 45 ms of
// its white frame in the recordings, across at least three segment boundaries. With a
// tenth of the audio datagrams dropped at the viewer (iptables in a namespace), the
// sound goes on, concealed, and stays in sync.
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { decodeAudio, streamInfo } from "./helpers/av-sync.ts";
import { displayLog, liveOffsets, onsets, recordedOffsets } from "./helpers/av-offsets.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";
import { netnsUnavailable, NetnsLan } from "./helpers/netns.ts";
import { spawnBun, spawnChild, type Child, expectExit } from "./helpers/process.ts";
import { startXvfb } from "./helpers/xvfb.ts";

const tempDir = tempDirs("lancam-audio-e2e-");
/** 50 fps: the flash frame is at most 20 ms after its whole second, so a beep is at most that before it. */
const SERVER = ["--source", "test", "--size", "320x240", "--fps", "50", "--audio", "test"];
const SECONDS = 9;
const LIMIT_MS = 45;

interface Run {
  live: number[];
  recorded: number[];
  /** Each segment's offsets, in order. */
  perSegment: number[][];
  segments: string[];
  stats: { audio: { datagrams: Record<string, number>; player: Record<string, number> } };
  client: Child;
}

/** One viewer run: `spawn` starts a process (in a namespace or not), `display` is its X display. */
async function watch(dir: string, port: string, host: string, display: string, spawn: (args: string[], env?: Record<string, string | undefined>) => Child, container: "mkv" | "avi", how: "onset" | "edges" = "onset"): Promise<Run> {
  const wav = join(dir, "heard.wav");
  const log = join(dir, "shown.log");
  const rec = join(dir, "rec");
  const statsPath = join(dir, "stats.json");
  const client = spawn(["client.ts", host, port, "0", "--audio-out", `wav:${wav}`, "--display-log", log, "--out", rec, "--segment", "2", "--container", container, "--duration", String(SECONDS), "--stats", statsPath], { DISPLAY: display });
  const firstSampleAt = Number((await client.waitFor(/audio output started .*firstSampleAt=(\d+)/, 30_000, "stderr"))[1]);
  await expectExit(client, 0);
  expect(client.stderr()).not.toMatch(/unexpected error|^\s+at /m);
  const segments = listFiles(rec).filter((n) => n.endsWith(`.${container}`)).map((n) => join(rec, n));
  const perSegment: number[][] = [];
  for (const s of segments) perSegment.push(await recordedOffsets(s, how));
  return { live: await liveOffsets(wav, firstSampleAt, displayLog(log), how), recorded: perSegment.flat(), perSegment, segments, stats: await Bun.file(statsPath).json(), client };
}

/**
 * Every whole segment (all but the last, which the run's end cuts short) holds at least one
 * whole beep, and every whole beep in any segment is within LIMIT_MS of its white frame. A
 * beep that a boundary cuts in two is in both segments, whole in neither: with 2 s segments
 * each segment still has one beep whole.
 */
function expectEverySegmentInSync(run: Run): void {
  expect(run.perSegment.length).toBeGreaterThanOrEqual(4);
  for (const offsets of run.perSegment.slice(0, -1)) expect(offsets.length).toBeGreaterThanOrEqual(1);
  for (const ms of run.recorded) expect(Math.abs(ms)).toBeLessThanOrEqual(LIMIT_MS);
}

function describeOffsets(label: string, xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${label}: ${xs.length} beeps, median ${s[s.length >> 1]?.toFixed(1)} ms, worst ${Math.max(...xs.map(Math.abs)).toFixed(1)} ms`;
}

describe("audio end to end", () => {
  for (const container of ["mkv", "avi"] as const) {
    test(`each beep is heard within ${LIMIT_MS} ms of its flash being shown, and recorded within ${LIMIT_MS} ms of it in ${container} segments`, async () => {
      const dir = tempDir();
      await using x = await startXvfb();
      await using server = spawnBun([...SERVER, "--port", "0", "--bind", "127.0.0.1", "--log", join(dir, "server.log")].flatMap((a, i) => (i === 0 ? ["server.ts", a] : [a])));
      const port = (await server.waitFor(/lancam server listening tcp=(\d+)/, 30_000))[1]!;
      const run = await watch(dir, port, "127.0.0.1", x.display, spawnBun, container);
      console.log(describeOffsets("live", run.live));
      console.log(describeOffsets(`recorded (${container})`, run.recorded));
      // The viewer heard the whole run: the wav is as long as it played, beeps and all.
      const { samples } = await decodeAudio(join(dir, "heard.wav"));
      expect(samples.length / 48_000).toBeGreaterThan(SECONDS - 3);
      expect(onsets(samples).length).toBeGreaterThanOrEqual(SECONDS - 3);
      expect(run.live.length).toBeGreaterThanOrEqual(SECONDS - 3);
      for (const ms of run.live) expect(Math.abs(ms)).toBeLessThanOrEqual(LIMIT_MS);
      // At least four segments, three boundaries, each with its audio track.
      expect(run.segments.length).toBeGreaterThanOrEqual(4);
      for (const s of run.segments) expect((await streamInfo(s)).audio?.codec).toBe(container === "mkv" ? "opus" : "pcm_s16le");
      expectEverySegmentInSync(run);
      expect(run.stats.audio.datagrams).toMatchObject({ forged: 0, auth: 0, malformed: 0 });
      server.proc.kill("SIGTERM");
      await expectExit(server, 0);
    }, 120_000);
  }

  const noNetns = netnsUnavailable();
  test.skipIf(noNetns !== null)("with a tenth of the audio datagrams dropped at the viewer, the sound goes on, concealed, and stays in sync", async () => {
    const dir = tempDir();
    await using lan = new NetnsLan("lcau", [{ name: "s", address: "10.77.0.1" }, { name: "v", address: "10.77.0.2" }]);
    // Audio datagrams only: flags byte 0x04 (type 2, not encrypted), the UDP payload's fourth byte.
    const drop = Bun.spawnSync(["ip", "netns", "exec", lan.ns("v"), "iptables", "-A", "INPUT", "-p", "udp", "-m", "u32", "--u32", "0>>22&0x3C@8&0xFF=0x04", "-m", "statistic", "--mode", "random", "--probability", "0.1", "-j", "DROP"], { stderr: "pipe" });
    expect(drop.stderr.toString()).toBe("");
    const xvfb = spawnChild(["ip", "netns", "exec", lan.ns("v"), "Xvfb", "-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp"]);
    await using _x = xvfb;
    const display = `:${(await xvfb.waitFor(/^(\d+)\s*$/m, 10_000))[1]}`;
    const server = lan.bun("s", ["server.ts", ...SERVER, "--port", "9999", "--bind", "10.77.0.1", "--log", join(dir, "server.log")]);
    await server.waitFor(/lancam server listening tcp=(\d+)/, 30_000);
    // Timed by each beep's edges: a beep whose first packet was lost starts 20-40 ms late
    // (concealed from the silence before it), which is the loss, not the sync.
    const run = await watch(dir, "9999", "10.77.0.1", display, (args, env) => lan.bun("v", args, env), "mkv", "edges");
    console.log(describeOffsets("live, 10 % audio lost", run.live));
    console.log(describeOffsets("recorded, 10 % audio lost", run.recorded));
    const dropped = Bun.spawnSync(["ip", "netns", "exec", lan.ns("v"), "iptables", "-L", "INPUT", "-v", "-x", "-n"]).stdout.toString();
    console.log(dropped.trim().split("\n").at(-1));
    // Datagrams were lost and each was concealed or filled; the sound went on to the end.
    expect(run.stats.audio.datagrams.lost).toBeGreaterThan(10);
    expect(run.stats.audio.player.concealed).toBeGreaterThan(10);
    const { samples } = await decodeAudio(join(dir, "heard.wav"));
    expect(samples.length / 48_000).toBeGreaterThan(SECONDS - 3);
    expect(run.live.length).toBeGreaterThanOrEqual(SECONDS - 4);
    for (const ms of run.live) expect(Math.abs(ms)).toBeLessThanOrEqual(LIMIT_MS);
    expectEverySegmentInSync(run);
    expect(readdirSync(join(dir, "rec")).length).toBeGreaterThan(0);
  }, 120_000);
});
