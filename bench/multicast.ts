// Multicast against unicast, two ways (root, for the namespaces):
//  classroom: a server and N viewers, each in its own network namespace on one bridge,
//    the server's link limited to 100 Mbit/s (tbf), a camera-like 1280x720 picture
//    (~200 KB a frame); frames per second and loss per viewer, unicast and multicast,
//    and a plot of fps per viewer against viewers (PNG, through ImageMagick's convert).
//  cpu: on loopback, the server's CPU per frame with N viewers, unicast and multicast.
//   bun bench/multicast.ts [--part classroom,cpu] [--classroom 1,2,4,8,16,32] [--cpu 1,4,8,32] [--seconds 8] [--plot docs/multicast-classroom.png]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { cpuSplit } from "./proc-stats.ts";
import { NetnsLan, netnsUnavailable, type HostSpec } from "../tests/helpers/netns.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";

const args = mri(process.argv.slice(2), { string: ["part", "classroom", "cpu", "seconds", "plot", "rate", "replot"] });
const parts = String(args.part ?? "classroom,cpu").split(",");
const classroomCounts = String(args.classroom ?? "1,2,4,8,16,32").split(",").map(Number);
const cpuCounts = String(args.cpu ?? "1,4,8,32").split(",").map(Number);
const seconds = Number(args.seconds ?? 8);
const plotPath = String(args.plot ?? "docs/multicast-classroom.png");
const rate = String(args.rate ?? "100mbit");
const FPS = 30;

const work = mkdtempSync(join(tmpdir(), "lancam-bench-mc-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

// CPU seconds a process used: user (lancam's own work) and system. On loopback and
// through veth pairs the kernel delivers each datagram to its receivers (one clone per
// socket or bridge port) inside the sender's system call, so system time also holds
// what a real network's switch would do.
const cpuSeconds = cpuSplit;

/** Busy and total jiffies of the whole machine, to see whether the CPUs were the limit. */
function machineJiffies(): { busy: number; total: number } {
  const parts = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = parts.reduce((a, b) => a + b, 0);
  return { busy: total - parts[3]! - (parts[4] ?? 0), total };
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

interface Row {
  mode: "unicast" | "multicast";
  viewers: number;
  fpsMedian: number;
  fpsWorst: number;
  lossMedian: number;
  lossWorst: number;
  fallbacks: number;
  serverCpuMsPerFrame: number;
  serverUserMsPerFrame: number;
  serverMbps: number;
  machineBusyPct: number;
  holds: boolean;
}

interface Viewer {
  child: Child;
  stats: string;
}

/** What the viewers and the server's log say after a run. */
function results(mode: Row["mode"], viewers: Viewer[], log: string, udps: number[], serverCpu: { user: number; total: number }, frames: number, wall: number, busyPct: number): Row {
  const lines = readFileSync(log, "utf8").split("\n");
  const per = viewers.map((v, i) => {
    const s = JSON.parse(readFileSync(v.stats, "utf8"));
    const leave = lines.find((l) => l.includes("client left") && l.includes(` udp=${udps[i]} `)) ?? "";
    const sent = Number(/framesSent=(\d+)/.exec(leave)?.[1] ?? NaN);
    const perSecond: number[] = s.fpsPerSecond.slice(1, -1);
    // Loss as the viewer sees it: frame numbers between its first and last frame that it
    // never completed. Against the server's count a frame still in flight at the goodbye,
    // or begun before a viewer joined the group, would count as one lost.
    const gaps = s.framesMissing + s.framesIncomplete;
    return { fps: median(perSecond), loss: (100 * gaps) / (s.framesReceived + gaps), sentLoss: 100 * (1 - s.framesReceived / sent), fallbacks: s.delivery?.fallbacks ?? 0 };
  });
  const stop = lines.find((l) => l.includes("[server] stopped")) ?? "";
  // Nearly every datagram is a full 1400 bytes: a close enough bitrate.
  const bytesGuess = Number(/datagramsSent=(\d+)/.exec(stop)?.[1] ?? NaN) * 1400 * 8;
  const fpsMedian = median(per.map((p) => p.fps));
  const lossMedian = median(per.map((p) => p.loss));
  const fpsWorst = Math.min(...per.map((p) => p.fps));
  const lossWorst = Math.max(...per.map((p) => p.loss));
  return {
    mode, viewers: viewers.length, fpsMedian, fpsWorst, lossMedian, lossWorst, fallbacks: per.reduce((a, p) => a + p.fallbacks, 0),
    serverCpuMsPerFrame: (1000 * serverCpu.total) / frames, serverUserMsPerFrame: (1000 * serverCpu.user) / frames, serverMbps: bytesGuess / wall / 1e6, machineBusyPct: busyPct,
    holds: fpsWorst >= 29.5 && lossWorst < 0.5,
  };
}

/** One run: server, viewers for `seconds`, then the numbers. `start` spawns a process where it belongs. */
async function runOnce(
  mode: Row["mode"], n: number, clip: string, start: (who: string, args: string[]) => Child, serverAddress: string, serverArgs: string[],
): Promise<Row> {
  const dir = mkdtempSync(join(work, `${mode}-${n}-`));
  const log = join(dir, "server.log");
  const group = mode === "multicast" ? ["--multicast", "239.255.77.1:9998"] : [];
  const server = start("srv", ["server.ts", "--source", clip, "--loop", "--fps", String(FPS), "--port", "0", "--log", log, "--max-clients", "64", "--max-per-host", "64", ...serverArgs, ...group]);
  try {
    const port = (await server.waitFor(/tcp=(\d+)/))[1]!;
    const viewers: Viewer[] = [];
    for (let i = 0; i < n; i++) {
      const stats = join(dir, `v${i}.json`);
      viewers.push({ child: start(`v${i + 1}`, ["client.ts", serverAddress, port, "0", "--no-window", "--no-record", "--duration", String(seconds), "--stats", stats]), stats });
    }
    const udps = await Promise.all(viewers.map(async (v) => Number((await v.child.waitFor(/receiving udp=(\d+)/, 30_000))[1])));
    const cpu0 = cpuSeconds(server.proc.pid);
    const m0 = machineJiffies();
    const t0 = performance.now();
    await Promise.all(viewers.map((v) => v.child.exited));
    const wall = (performance.now() - t0) / 1000;
    const m1 = machineJiffies();
    const cpu1 = cpuSeconds(server.proc.pid);
    const serverCpu = { user: cpu1.user - cpu0.user, total: cpu1.total - cpu0.total };
    server.proc.kill("SIGTERM");
    await server.exited;
    const busyPct = (100 * (m1.busy - m0.busy)) / (m1.total - m0.total);
    return results(mode, viewers, log, udps, serverCpu, wall * FPS, wall, busyPct);
  } finally {
    await server[Symbol.asyncDispose]();
  }
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");

function table(rows: Row[], title: string): void {
  console.log(`\n${title}\n`);
  console.log("| viewers | mode | fps per viewer (median / worst) | loss % (median / worst) | holds 29.5 fps, < 0.5 % loss | fallbacks | server CPU ms/frame (user + system / user) | server Mbit/s sent | machine CPU busy % |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.viewers} | ${r.mode} | ${f(r.fpsMedian)} / ${f(r.fpsWorst)} | ${f(r.lossMedian, 2)} / ${f(r.lossWorst, 2)} | ${r.holds ? "yes" : "no"} | ${r.fallbacks} | ${f(r.serverCpuMsPerFrame, 2)} / ${f(r.serverUserMsPerFrame, 2)} | ${f(r.serverMbps, 0)} | ${f(r.machineBusyPct, 0)} |`);
  }
}

/** A TrueType font for the plot's text (ImageMagick's default, Helvetica, is often not installed). */
function fontFile(): string {
  const r = Bun.spawnSync(["fc-match", "-f", "%{file}", "DejaVu Sans"], { stdout: "pipe", stderr: "pipe" });
  const file = r.exitCode === 0 ? r.stdout.toString().trim() : "";
  return file || "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
}

/**
 * fps per viewer against viewers, both modes, drawn in MVG (ImageMagick's own vector
 * format: its SVG reader needs a delegate that is often missing) and made a PNG by `convert`.
 */
function plot(rows: Row[], path: string, subtitle: string): void {
  const W = 760, H = 440, L = 70, R = 150, T = 60, B = 60;
  const xs = [...new Set(rows.map((r) => r.viewers))].sort((a, b) => a - b);
  const span = Math.log2(Math.max(2, xs.at(-1)!));
  const x = (n: number) => (L + ((W - L - R) * Math.log2(n)) / span).toFixed(1);
  const y = (fps: number) => (T + (H - T - B) * (1 - Math.min(32, Math.max(0, fps)) / 32)).toFixed(1);
  const font = fontFile().replace(/'/g, "");
  const text = (px: number | string, py: number | string, s: string, size = 13, color = "black") =>
    `push graphic-context\nstroke none fill '${color}' font '${font}' font-size ${size} text ${px},${py} '${s.replace(/'/g, "")}'\npop graphic-context`;
  const out: string[] = [`viewbox 0 0 ${W} ${H}`, "fill white rectangle 0,0 " + `${W},${H}`];
  out.push(text(L, 24, "Frames per second per viewer, server link 100 Mbit/s, 1280x720 ~200 KB a frame", 15));
  out.push(text(L, 44, subtitle, 12, "#555555"));
  for (const fps of [0, 5, 10, 15, 20, 25, 30]) {
    out.push(`stroke '#dddddd' stroke-width 1 fill none line ${L},${y(fps)} ${W - R},${y(fps)}`);
    out.push(text(L - 30, Number(y(fps)) + 4, String(fps)));
  }
  out.push(`stroke '#22aa22' stroke-width 1 stroke-dasharray 4 3 fill none line ${L},${y(29.5)} ${W - R},${y(29.5)}`);
  out.push("stroke-dasharray none");
  out.push(text(W - R + 6, Number(y(29.5)) + 4, "29.5 fps", 12, "#22aa22"));
  for (const n of xs) out.push(text(Number(x(n)) - 6, H - B + 20, String(n)));
  out.push(text((L + W - R) / 2 - 60, H - 15, "viewers (log scale)"));
  out.push(text(8, T - 8, "fps, median viewer", 12));
  const series: [Row["mode"], string][] = [["unicast", "#c0392b"], ["multicast", "#1f6fb2"]];
  series.forEach(([mode, color], k) => {
    const pts = rows.filter((r) => r.mode === mode).sort((a, b) => a.viewers - b.viewers);
    // Separate segments: an MVG polyline is closed when it is stroked.
    for (let i = 1; i < pts.length; i++) {
      out.push(`stroke '${color}' stroke-width 2.5 fill none line ${x(pts[i - 1]!.viewers)},${y(pts[i - 1]!.fpsMedian)} ${x(pts[i]!.viewers)},${y(pts[i]!.fpsMedian)}`);
    }
    for (const r of pts) out.push(`stroke none fill '${color}' circle ${x(r.viewers)},${y(r.fpsMedian)} ${Number(x(r.viewers)) + 4},${y(r.fpsMedian)}`);
    out.push(`stroke none fill '${color}' rectangle ${W - R + 10},${T + 70 + k * 22} ${W - R + 24},${T + 74 + k * 22}`);
    out.push(text(W - R + 30, T + 76 + k * 22, mode));
  });
  const mvg = join(work, "plot.mvg");
  writeFileSync(mvg, out.join("\n") + "\n");
  const c = Bun.spawnSync(["convert", `mvg:${mvg}`, path], { stdout: "pipe", stderr: "pipe" });
  if (c.exitCode !== 0) throw new Error(`convert failed: ${c.stderr.toString()}`);
  console.log(`\nplot: ${path}`);
}

if (args.replot) {
  // Draws the plot again from the rows a classroom run printed (its "rows:" line), without measuring.
  plot(JSON.parse(readFileSync(String(args.replot), "utf8")), plotPath, "each viewer its own network namespace on one bridge; 2 cores share server and viewers");
  process.exit(0);
}

const clip = cameraClip(work, FPS);
console.log(`# multicast against unicast: 1280x720 at ${FPS} fps, camera-like clip ~${clip.kbPerFrame.toFixed(0)} KB/frame (sent as it is), ${seconds} s per run, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);

if (parts.includes("classroom")) {
  const why = netnsUnavailable();
  if (why) throw new Error(`the classroom part needs network namespaces: ${why}`);
  const most = Math.max(...classroomCounts);
  const hosts: HostSpec[] = [{ name: "srv", address: "10.77.0.1", multicastRoute: true, rate }];
  for (let i = 1; i <= most; i++) hosts.push({ name: `v${i}`, address: `10.77.0.${10 + i}`, multicastRoute: true });
  await using lan = new NetnsLan("lcmb-", hosts);
  const rows: Row[] = [];
  for (const n of classroomCounts) {
    for (const mode of ["unicast", "multicast"] as const) {
      const r = await runOnce(mode, n, clip.path, (who, a) => lan.bun(who, a), "10.77.0.1", []);
      console.error(`classroom ${mode} ${n}: fps ${f(r.fpsMedian)} worst ${f(r.fpsWorst)}, loss ${f(r.lossWorst, 2)} %, machine ${f(r.machineBusyPct, 0)} % busy`);
      rows.push(r);
    }
  }
  table(rows, `Classroom in namespaces: server link ${rate} (tbf), each viewer in its own namespace on one bridge`);
  console.error(`rows: ${JSON.stringify(rows)}`);
  plot(rows, plotPath, `each viewer its own network namespace on one bridge; ${cpus().length} cores share server and viewers`);
}

if (parts.includes("cpu")) {
  const rows: Row[] = [];
  for (const n of cpuCounts) {
    for (const mode of ["unicast", "multicast"] as const) {
      const r = await runOnce(mode, n, clip.path, (_who, a) => spawnBun(a), "127.0.0.1", ["--bind", "127.0.0.1"]);
      console.error(`cpu ${mode} ${n}: server ${f(r.serverCpuMsPerFrame, 2)} ms/frame`);
      rows.push(r);
    }
  }
  table(rows, "Loopback: server CPU per frame");
}
