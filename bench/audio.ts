// What sound costs and how well it keeps with the picture, on this machine:
//   cost     the server (its process and its ffmpeg) and one viewer (--no-window), CPU
//            per second of wall time, with and without `--audio test` (the viewer writes
//            what it would hear to a wav: file, so the player, decoder and jitter buffer run)
//   sync     one run with the picture in a window (Xvfb), `--display-log`, a wav: output
//            and 5 s mkv segments: the end-to-end audio latency (a beep's capture second to
//            the moment it is heard), the picture's (capture to shown), and the A/V offset
//            of each beep, live (heard minus its flash shown) and recorded (its start minus
//            its white frame's timestamp), median and worst
// Test pattern 1280x720 at 30 fps on loopback. The cost repeats alternate the two cases
// so load from elsewhere falls on both alike; each figure is the median of the repeats.
//   bun bench/audio.ts [--seconds 20] [--repeat 3] [--json FILE]
import mri from "mri";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSeconds } from "./proc-stats.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";
import { displayLog, liveOffsets, onsets, recordedOffsets } from "../tests/helpers/av-offsets.ts";
import { decodeAudio } from "../tests/helpers/av-sync.ts";
import { startXvfb } from "../tests/helpers/xvfb.ts";

const USAGE = "usage: bun bench/audio.ts [--seconds 20] [--repeat 3] [--json FILE]";
const args = mri(process.argv.slice(2), { string: ["seconds", "repeat", "json"], boolean: ["help"], alias: { h: "help" } });
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const seconds = Number(args.seconds ?? 20);
const repeat = Number(args.repeat ?? 3);
for (const [ok, what] of [
  [seconds >= 8 && seconds <= 600, `invalid --seconds=${args.seconds}: expected 8..600`],
  [Number.isInteger(repeat) && repeat >= 1 && repeat <= 20, `invalid --repeat=${args.repeat}: expected 1..20`],
] as const) {
  if (!ok) {
    console.error(`${what}\n${USAGE}`);
    process.exit(2);
  }
}
const work = mkdtempSync(join(tmpdir(), "lancam-bench-audio-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/** CPU seconds of `pid` and every process below it (the server's ffmpeg, a viewer's). */
function treeCpu(pid: number): number {
  let total = cpuSeconds(pid);
  let kids: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) kids.push(...readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    kids = [];
  }
  for (const k of kids) total += treeCpu(k);
  return total;
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const worst = (xs: number[]) => (xs.length ? Math.max(...xs.map(Math.abs)) : NaN);

async function server(extra: string[]): Promise<{ child: Child; port: string }> {
  const child = spawnBun(["server.ts", "--source", "test", "--port", "0", "--bind", "127.0.0.1", "--log", join(work, `server-${Date.now()}.log`), ...extra]);
  const port = (await child.waitFor(/lancam server listening tcp=(\d+)/, 30_000))[1]!;
  return { child, port };
}

async function stop(c: Child): Promise<void> {
  c.proc.kill("SIGTERM");
  await c.exited;
}

/** One cost run: CPU per wall second of the server tree and the viewer tree, over `seconds` after a 2 s settle. */
async function cost(withAudio: boolean): Promise<{ server: number; viewer: number; load: number }> {
  const s = await server(withAudio ? ["--audio", "test"] : []);
  const wav = join(work, "cost.wav");
  const viewer = spawnBun(["client.ts", "127.0.0.1", s.port, "0", "--no-window", "--no-record", "--audio-out", withAudio ? `wav:${wav}` : "none"]);
  await viewer.waitFor(/first frame/, 30_000, "stderr");
  await Bun.sleep(2000); // settle: the first second's start-up is not the steady cost
  const t0 = performance.now();
  const s0 = treeCpu(s.child.proc.pid);
  const v0 = treeCpu(viewer.proc.pid);
  await Bun.sleep(seconds * 1000);
  const wall = (performance.now() - t0) / 1000;
  const out = { server: (treeCpu(s.child.proc.pid) - s0) / wall, viewer: (treeCpu(viewer.proc.pid) - v0) / wall, load: loadavg()[0]! };
  await stop(viewer);
  await stop(s.child);
  return out;
}

/** The sync run. */
async function sync(): Promise<Record<string, number>> {
  await using x = await startXvfb();
  const s = await server(["--audio", "test"]);
  const wav = join(work, "heard.wav");
  const log = join(work, "shown.log");
  const rec = join(work, "rec");
  const viewer = spawnBun(["client.ts", "127.0.0.1", s.port, "0", "--audio-out", `wav:${wav}`, "--display-log", log, "--out", rec, "--segment", "5", "--container", "mkv", "--duration", String(seconds)], { DISPLAY: x.display });
  const firstSampleAt = Number((await viewer.waitFor(/audio output started .*firstSampleAt=(\d+)/, 30_000, "stderr"))[1]);
  await viewer.exited;
  await stop(s.child);
  const shown = displayLog(log);
  const live = await liveOffsets(wav, firstSampleAt, shown);
  const { samples } = await decodeAudio(wav);
  // A beep is captured at a whole second and heard less than a second later.
  const audioLatency = onsets(samples).map((i) => firstSampleAt + (i * 1e6) / 48_000).map((t) => (t - Math.floor(t / 1e6) * 1e6) / 1000);
  const pictureLatency = shown.map(([c, t]) => (t - c) / 1000);
  const recorded: number[] = [];
  const dayDirs = readdirSync(rec).map((d) => join(rec, d));
  for (const d of dayDirs) for (const f of readdirSync(d).filter((n) => n.endsWith(".mkv"))) recorded.push(...(await recordedOffsets(join(d, f))));
  return {
    beepsLive: live.length, liveMedianMs: median(live), liveWorstMs: worst(live), liveMinMs: Math.min(...live), liveMaxMs: Math.max(...live),
    beepsRecorded: recorded.length, recordedMedianMs: median(recorded), recordedWorstMs: worst(recorded), recordedMinMs: Math.min(...recorded), recordedMaxMs: Math.max(...recorded),
    audioLatencyMedianMs: median(audioLatency), audioLatencyMaxMs: Math.max(...audioLatency), pictureLatencyMedianMs: median(pictureLatency),
  };
}

console.error(`machine: ${cpus().length} x ${cpus()[0]?.model}, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const runs: { audio: boolean; server: number; viewer: number; load: number }[] = [];
for (let r = 0; r < repeat; r++) {
  for (const withAudio of [false, true]) {
    const c = await cost(withAudio);
    runs.push({ audio: withAudio, ...c });
    console.error(`cost ${withAudio ? "audio" : "video"} #${r + 1}: server ${(c.server * 100).toFixed(1)} % CPU, viewer ${(c.viewer * 100).toFixed(1)} % CPU, load ${c.load.toFixed(2)}`);
  }
}
const pick = (audio: boolean, k: "server" | "viewer") => median(runs.filter((r) => r.audio === audio).map((r) => r[k]));
const table = [
  "| case | server CPU (one core = 100 %) | viewer CPU |",
  "|---|---|---|",
  `| video only | ${(pick(false, "server") * 100).toFixed(1)} % | ${(pick(false, "viewer") * 100).toFixed(1)} % |`,
  `| video and audio (--audio test; viewer plays to wav:) | ${(pick(true, "server") * 100).toFixed(1)} % | ${(pick(true, "viewer") * 100).toFixed(1)} % |`,
  `| audio's share | +${((pick(true, "server") - pick(false, "server")) * 100).toFixed(1)} points | +${((pick(true, "viewer") - pick(false, "viewer")) * 100).toFixed(1)} points |`,
];
console.log(table.join("\n"));
const s = await sync();
console.log(`\nsync over ${seconds} s: ${JSON.stringify(s, (_k, v) => (typeof v === "number" ? Math.round(v * 10) / 10 : v))}`);
if (args.json) writeFileSync(String(args.json), JSON.stringify({ seconds, repeat, runs, sync: s }, null, 2) + "\n");
