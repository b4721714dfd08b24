// What a second camera costs the server: one server process on loopback at 1280x720 and
// 30 fps, its CPU (user + system, and user alone, from /proc) over the time its viewers
// watch, per second of wall time and per frame sent. Cases:
//   one        one camera (--source test), one viewer
//   two        two cameras (--source a=test --source b=test), one viewer on each
//   two-idle   the same two cameras, one viewer on camera a only (b unwatched: it should
//              encode nothing, so cost about nothing)
//   clip-one   one camera on the camera-like clip (bench/camera-clip.ts, ~210 KB a frame,
//              its JPEG passed through without encoding), one viewer
//   clip-two   two cameras on that clip, one viewer on each
// The repeats go round the cases in turn, so load from elsewhere falls on every case
// alike; each figure is the median of the repeats. Before each run the bench waits (up to
// --wait-idle minutes in all) until no test run (`bun test`) or stress-ng is going, and it
// notes the load average before and after each run, the CPU every other process used
// meanwhile, and the CPU the host took from this machine (steal, in a virtual machine):
// on a shared machine, the figures only mean something where both are small.
//   bun bench/cameras.ts [--cases one,two,two-idle,clip-one,clip-two] [--seconds 10] [--repeat 3]
//                        [--wait-idle 25] [--json FILE]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { cpuSplit } from "./proc-stats.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";

const USAGE = "usage: bun bench/cameras.ts [--cases one,two,two-idle,clip-one,clip-two] [--seconds 10] [--repeat 3] [--wait-idle MINUTES] [--json FILE]";
const args = mri(process.argv.slice(2), { string: ["cases", "seconds", "repeat", "wait-idle", "json"], boolean: ["help"], alias: { h: "help" } });
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const SIZE = "1280x720";
const FPS = 30;

interface Case {
  id: string;
  /** What the table calls it. */
  label: string;
  source: "test" | "clip";
  /** The cameras' names, in --source order; null: unnamed (the single-camera command line). */
  cameras: (string | null)[];
  /** The camera (number or name) each viewer watches, one viewer each. */
  viewers: string[];
}

const CASES: Case[] = [
  { id: "one", label: "1 camera, 1 viewer", source: "test", cameras: [null], viewers: ["0"] },
  { id: "two", label: "2 cameras, 1 viewer each", source: "test", cameras: ["a", "b"], viewers: ["a", "b"] },
  { id: "two-idle", label: "2 cameras, 1 viewer on a (b unwatched)", source: "test", cameras: ["a", "b"], viewers: ["a"] },
  { id: "clip-one", label: "clip: 1 camera, 1 viewer", source: "clip", cameras: [null], viewers: ["0"] },
  { id: "clip-two", label: "clip: 2 cameras, 1 viewer each", source: "clip", cameras: ["a", "b"], viewers: ["a", "b"] },
];
/** The ratios printed under the table: [numerator, denominator]. */
const RATIOS: [string, string][] = [["two", "one"], ["two-idle", "one"], ["clip-two", "clip-one"]];

const ids = String(args.cases ?? CASES.map((c) => c.id).join(",")).split(",").filter(Boolean);
const seconds = Number(args.seconds ?? 10);
const repeat = Number(args.repeat ?? 3);
const waitIdleMin = Number(args["wait-idle"] ?? 25);
const jsonPath = args.json === undefined ? null : String(args.json);
const bad = ids.find((id) => !CASES.some((c) => c.id === id));
for (const [ok, what] of [
  [bad === undefined, `unknown case ${bad}`],
  [seconds >= 3 && seconds <= 600, `invalid --seconds=${args.seconds}: expected 3..600 (the first and last second of a viewer are not counted)`],
  [Number.isInteger(repeat) && repeat >= 1 && repeat <= 50, `invalid --repeat=${args.repeat}: expected 1..50`],
  [waitIdleMin >= 0 && waitIdleMin <= 600, `invalid --wait-idle=${args["wait-idle"]}: expected 0..600 minutes`],
] as const) {
  if (!ok) {
    console.error(`${what}\n${USAGE}`);
    process.exit(2);
  }
}
const cases = CASES.filter((c) => ids.includes(c.id));

const work = mkdtempSync(join(tmpdir(), "lancam-bench-cams-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/**
 * Command lines of other benchmark or test work that would share the two cores: a test run
 * (`bun test ...`, not `bun tests/...`, which would be one of our own children's paths) or stress-ng.
 */
const BUSY_PATTERN = "(^|/)bun test( |$)|stress-ng";

function busyProcesses(): string[] {
  const r = Bun.spawnSync(["pgrep", "-af", BUSY_PATTERN], { stdout: "pipe", stderr: "pipe" });
  return r.stdout.toString().split("\n").filter(Boolean);
}

/** When the wait for a quiet machine gives up: one budget for the whole bench, so it cannot hang. */
const waitDeadline = performance.now() + waitIdleMin * 60_000;

/** Waits (polling every 10 s) until no test run or stress-ng is going, or the budget is spent; true when quiet. */
async function waitQuiet(): Promise<boolean> {
  let told = false;
  for (;;) {
    const busy = busyProcesses();
    if (busy.length === 0) return true;
    if (performance.now() > waitDeadline) {
      console.error(`still busy after ${waitIdleMin} min, measuring anyway: ${busy.join("; ")}`);
      return false;
    }
    if (!told) console.error(`waiting for a quiet machine (up to ${waitIdleMin} min in all): ${busy.join("; ")}`);
    told = true;
    await Bun.sleep(10_000);
  }
}

/**
 * Jiffies of the whole machine, every core: busy in this machine, stolen (a virtual
 * machine's CPU given to others by the host) and in all. Time stolen during a tick is not
 * charged to the process that was running, so a host busy elsewhere makes the server's
 * CPU read low, not high: it is counted apart.
 */
function machineJiffies(): { busy: number; steal: number; total: number } {
  const parts = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user and nice already)
  const total = parts.slice(0, 8).reduce((a, b) => a + b, 0);
  const steal = parts[7] ?? 0;
  return { busy: total - parts[3]! - (parts[4] ?? 0) - steal, steal, total };
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** One run of one case: what was measured, raw. */
interface Run {
  case: string;
  repeat: number;
  wallSec: number;
  serverUserSec: number;
  serverTotalSec: number;
  /** Per viewer: the camera it watched, frames the server sent it, and what its stats file says. */
  viewers: { camera: string; framesSent: number; framesReceived: number; gaps: number; fps: number; cpuSec: number }[];
  /** Per camera, over the server's whole life: frames captured and JPEG encodes (from the stop lines). */
  cameras: { camera: string; framesCaptured: number; framesEncoded: number; framesPassedThrough: number }[];
  /** CPU seconds the rest of the machine used in the window: every core's busy time less the server's and the viewers'. */
  othersSec: number;
  /** CPU seconds the host took from this virtual machine in the window, every core. */
  stolenSec: number;
  loadBefore: number[];
  loadAfter: number[];
  /** A test run or stress-ng was going before or after the run. */
  busy: boolean;
}

/** Where each camera comes from on the server's command line. */
function sourceArgs(c: Case, clip: string): string[] {
  const src = c.source === "test" ? "test" : clip;
  const out = c.cameras.flatMap((name) => ["--source", name === null ? src : `${name}=${src}`]);
  // The test pattern is drawn at --size; the clip is 1280x720 already, replayed at --fps.
  return c.source === "test" ? [...out, "--size", SIZE, "--fps", String(FPS)] : [...out, "--loop", "--fps", String(FPS)];
}

/** A number from a `key=value` log line; NaN when missing. */
const field = (line: string, key: string) => Number(new RegExp(`\\b${key}=(\\d+)`).exec(line)?.[1] ?? NaN);

async function runOnce(c: Case, rep: number, clip: string): Promise<Run> {
  const quiet = await waitQuiet();
  const loadBefore = loadavg();
  const dir = mkdtempSync(join(work, `${c.id}-${rep}-`));
  const log = join(dir, "server.log");
  const server = spawnBun(["server.ts", ...sourceArgs(c, clip), "--port", "0", "--bind", "127.0.0.1", "--log", log]);
  const viewers: Child[] = [];
  try {
    const port = (await server.waitFor(/listening tcp=(\d+)/, 30_000))[1]!;
    const stats = c.viewers.map((_, i) => join(dir, `v${i}.json`));
    for (const [i, camera] of c.viewers.entries()) {
      viewers.push(spawnBun(["client.ts", "127.0.0.1", port, "0", "--camera", camera, "--no-window", "--no-record", "--duration", String(seconds), "--stats", stats[i]!]));
    }
    const udps = await Promise.all(viewers.map(async (v) => Number((await v.waitFor(/receiving udp=(\d+)/, 30_000))[1])));
    // The window: from every viewer receiving to the last one gone.
    const s0 = cpuSplit(server.proc.pid);
    const m0 = machineJiffies();
    const t0 = performance.now();
    const viewerCpu = await Promise.all(viewers.map(async (v) => {
      // A viewer's /proc entry goes with it: keep the last reading before it exits.
      const first = cpuSplit(v.proc.pid).total;
      let last = first;
      const timer = setInterval(() => {
        const now = cpuSplit(v.proc.pid).total;
        if (Number.isFinite(now)) last = now;
      }, 100);
      await v.exited;
      clearInterval(timer);
      return last - first;
    }));
    const wallSec = (performance.now() - t0) / 1000;
    const m1 = machineJiffies();
    const s1 = cpuSplit(server.proc.pid);
    server.proc.kill("SIGTERM");
    await server.exited;
    const loadAfter = loadavg();
    const busyAfter = busyProcesses().length > 0;

    const serverUserSec = s1.user - s0.user;
    const serverTotalSec = s1.total - s0.total;
    const perJiffy = (cpus().length * wallSec) / (m1.total - m0.total);
    const machineSec = (m1.busy - m0.busy) * perJiffy;
    const lines = readFileSync(log, "utf8").split("\n");
    const perViewer = c.viewers.map((camera, i) => {
      const s = JSON.parse(readFileSync(stats[i]!, "utf8"));
      const leave = lines.find((l) => l.includes("client left") && l.includes(` udp=${udps[i]} `)) ?? "";
      // Lost as the viewer sees it: frame numbers between its first and last that it never
      // completed (against the server's count, a frame still paced out at the goodbye would count).
      const gaps = s.framesMissing + s.framesIncomplete;
      // Whole seconds only: the first and last are cut by the join and the goodbye.
      const fps = median(s.fpsPerSecond.slice(1, -1));
      return { camera, framesSent: field(leave, "framesSent"), framesReceived: s.framesReceived, gaps, fps, cpuSec: viewerCpu[i]! };
    });
    // Several cameras: one "camera stopped" line each; one camera: its counts are on the "stopped" line.
    const stopLines = lines.filter((l) => l.includes("camera stopped camera="));
    const cameraLines = stopLines.length > 0 ? stopLines : lines.filter((l) => l.includes("[server] stopped "));
    const perCamera = cameraLines.map((l, i) => ({
      camera: /camera="?\d+=([^"\s]+)"?/.exec(l)?.[1] ?? String(i),
      // The one-camera stop line has no framesCaptured: its frames are the ones encoded or passed through.
      framesCaptured: stopLines.length > 0 ? field(l, "framesCaptured") : field(l, "framesEncoded") + field(l, "framesPassedThrough"),
      framesEncoded: field(l, "framesEncoded"),
      framesPassedThrough: field(l, "framesPassedThrough"),
    }));
    return {
      case: c.id, repeat: rep, wallSec, serverUserSec, serverTotalSec, viewers: perViewer, cameras: perCamera,
      othersSec: machineSec - serverTotalSec - viewerCpu.reduce((a, b) => a + b, 0),
      stolenSec: (m1.steal - m0.steal) * perJiffy,
      loadBefore, loadAfter, busy: !quiet || busyAfter,
    };
  } finally {
    for (const v of viewers) await v[Symbol.asyncDispose]();
    await server[Symbol.asyncDispose]();
  }
}

/** A case's figures: the median over its repeats, each figure on its own. */
interface Row {
  case: Case;
  runs: Run[];
  cpuMsPerSec: number;
  userMsPerSec: number;
  cpuMsPerFrame: number;
  userMsPerFrame: number;
  framesSent: number;
  fps: number;
  lost: number;
  camerasText: string;
  othersMsPerSec: number;
  stolenMsPerSec: number;
  loadBefore: number;
  loadAfter: number;
  busyRuns: number;
}

function summarize(c: Case, runs: Run[]): Row {
  const sent = (r: Run) => r.viewers.reduce((a, v) => a + v.framesSent, 0);
  const m = (fn: (r: Run) => number) => median(runs.map(fn));
  // Per camera: frames captured / encoded (a passed-through frame is captured, not encoded).
  const camerasText = runs[0]!.cameras.map((cam, k) =>
    `${cam.camera}: ${m((r) => r.cameras[k]?.framesCaptured ?? NaN)}/${m((r) => r.cameras[k]?.framesEncoded ?? NaN)}`).join("; ");
  return {
    case: c, runs,
    cpuMsPerSec: m((r) => (1000 * r.serverTotalSec) / r.wallSec),
    userMsPerSec: m((r) => (1000 * r.serverUserSec) / r.wallSec),
    cpuMsPerFrame: m((r) => (1000 * r.serverTotalSec) / sent(r)),
    userMsPerFrame: m((r) => (1000 * r.serverUserSec) / sent(r)),
    framesSent: m(sent),
    fps: m((r) => median(r.viewers.map((v) => v.fps))),
    lost: m((r) => r.viewers.reduce((a, v) => a + v.gaps, 0)),
    camerasText,
    othersMsPerSec: m((r) => (1000 * r.othersSec) / r.wallSec),
    stolenMsPerSec: m((r) => (1000 * r.stolenSec) / r.wallSec),
    loadBefore: m((r) => r.loadBefore[0]!),
    loadAfter: m((r) => r.loadAfter[0]!),
    busyRuns: runs.filter((r) => r.busy).length,
  };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");

const needsClip = cases.some((c) => c.source === "clip");
const clip = needsClip ? cameraClip(work, FPS) : { path: "", kbPerFrame: NaN };
console.log(`# cameras: ${SIZE} at ${FPS} fps on loopback, test pattern${needsClip ? ` and camera-like clip ~${clip.kbPerFrame.toFixed(0)} KB/frame (passed through)` : ""}, ${seconds} s per run, median of ${repeat}, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
console.log(`# load average at the start: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

const runs: Run[] = [];
for (let rep = 1; rep <= repeat; rep++) {
  for (const c of cases) {
    const r = await runOnce(c, rep, clip.path);
    console.error(`${c.id} #${rep}: server ${f((1000 * r.serverTotalSec) / r.wallSec, 0)} ms/s (user ${f((1000 * r.serverUserSec) / r.wallSec, 0)}), others ${f((1000 * r.othersSec) / r.wallSec, 0)} ms/s, stolen ${f((1000 * r.stolenSec) / r.wallSec, 0)} ms/s, load ${f(r.loadBefore[0]!, 2)} -> ${f(r.loadAfter[0]!, 2)}${r.busy ? ", BESIDE A TEST RUN" : ""}`);
    runs.push(r);
  }
}
const rows = cases.map((c) => summarize(c, runs.filter((r) => r.case === c.id)));

console.log("");
console.log("| case | server CPU ms/s, user + system / user | server CPU ms/frame sent, user + system / user | frames sent | fps per viewer (median) | frames lost | frames captured/encoded per camera | others' CPU / stolen ms/s | load 1 min before / after | runs beside a test run |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.case.label} | ${f(r.cpuMsPerSec, 0)} / ${f(r.userMsPerSec, 0)} | ${f(r.cpuMsPerFrame, 2)} / ${f(r.userMsPerFrame, 2)} | ${r.framesSent} | ${f(r.fps)} | ${r.lost} | ${r.camerasText} | ${f(r.othersMsPerSec, 0)} / ${f(r.stolenMsPerSec, 0)} | ${f(r.loadBefore, 2)} / ${f(r.loadAfter, 2)} | ${r.busyRuns}/${r.runs.length} |`);
}
const byId = new Map(rows.map((r) => [r.case.id, r]));
const ratioLines = RATIOS.filter(([a, b]) => byId.has(a) && byId.has(b)).map(([a, b]) => {
  const x = byId.get(a)!, y = byId.get(b)!;
  return { a, b, cpuPerSec: x.cpuMsPerSec / y.cpuMsPerSec, userPerSec: x.userMsPerSec / y.userMsPerSec, cpuPerFrame: x.cpuMsPerFrame / y.cpuMsPerFrame, userPerFrame: x.userMsPerFrame / y.userMsPerFrame };
});
if (ratioLines.length) {
  console.log("");
  console.log("| ratio | server CPU per second, user + system / user | per frame sent, user + system / user |");
  console.log("|---|---|---|");
  for (const q of ratioLines) console.log(`| ${q.a} / ${q.b} | ${f(q.cpuPerSec, 2)} / ${f(q.userPerSec, 2)} | ${f(q.cpuPerFrame, 2)} / ${f(q.userPerFrame, 2)} |`);
}
console.log(`\n# load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

if (jsonPath) {
  const summary = rows.map(({ case: c, runs: _runs, ...rest }) => ({ case: c.id, label: c.label, ...rest }));
  writeFileSync(jsonPath, JSON.stringify({ size: SIZE, fps: FPS, seconds, repeat, cores: cpus().length, cpu: cpus()[0]?.model, bun: Bun.version, clipKbPerFrame: clip.kbPerFrame, summary, ratios: ratioLines, runs }, null, 2) + "\n");
  console.log(`raw results: ${jsonPath}`);
}
