// Server CPU per frame, side by side on one raw video file: lancam unicast (the file
// as it is: raw YUV, encoded from the planes), lancam passthrough (the same frames as
// an MJPEG file, sent as they are) and Motion (Debian's `motion` on the raw file,
// streaming HTTP MJPEG), at the same size, 30 fps and JPEG quality 80, with 1, 4 and 8
// viewers. Viewers are separate processes: lancam's client for lancam, an HTTP MJPEG
// reader (bench/mjpeg-reader.ts) for Motion. Installs Motion when it is missing.
// "multicast" is passthrough again, sent once to a multicast group on loopback for every viewer.
//   bun bench/capture-cpu.ts [--sizes 640x480,1280x720,1920x1080] [--clients 1,4,8] [--seconds 6]
//                            [--systems unicast,passthrough,multicast,motion] [--plot docs/capture-cpu.png] [--repeat 1]
// With --repeat N each case runs N times and the run with the least server CPU is kept:
// on a shared machine, the least disturbed one.
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { openSource } from "../lib/capture/capture.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";
import { barcodeFilter, MAX_FRAMES } from "./frame-barcode.ts";
import { buildReadLog, ensureMotion, readPacketTimes, startMotion } from "./motion.ts";
import { cpuSeconds, peakRssMiB } from "./proc-stats.ts";

const args = mri(process.argv.slice(2), { string: ["sizes", "clients", "seconds", "systems", "plot", "repeat"] });
const sizes = String(args.sizes ?? "640x480,1280x720,1920x1080").split(",").map((s) => {
  const [w, h] = s.split("x").map(Number);
  return { width: w!, height: h! };
});
const counts = String(args.clients ?? "1,4,8").split(",").map(Number);
const seconds = Number(args.seconds ?? 6);
type System = "unicast" | "passthrough" | "multicast" | "motion";
const SYSTEMS: System[] = ["unicast", "passthrough", "multicast", "motion"];
const systems = String(args.systems ?? SYSTEMS.join(",")).split(",") as System[];
for (const s of systems) if (!SYSTEMS.includes(s)) throw new Error(`--systems: unknown ${s} (${SYSTEMS.join(", ")})`);
const plotPath = args.plot === undefined ? null : String(args.plot);
const repeat = Number(args.repeat ?? 1);
if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got ${args.repeat}`);
const FPS = 30;
const QUALITY = 80;
/** After every viewer is in, before measuring: their start-up (loading OpenCV, JIT) is not the server's doing. */
const SETTLE_MS = 1500;
/** Viewers run this much longer than the measurement, so none leaves inside it. */
const VIEWER_EXTRA_S = Math.ceil(SETTLE_MS / 1000) + 2;
// Long enough that no run reaches the end of the file: Motion reopens a file that
// ends, which would put a reconnect inside the measurement.
const CLIP_SECONDS = seconds + 8;

const ffmpeg = resolveFfmpeg().path;
const work = mkdtempSync(join(tmpdir(), "lancam-capture-cpu-"));

/** The server's CPU over `seconds`, from SETTLE_MS on; the window in wall-clock µs for the viewers' data. */
async function measureCpu(pid: number): Promise<{ cpu: number; wall: number; fromUs: number; toUs: number }> {
  await Bun.sleep(SETTLE_MS);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const fromUs = nowMicros();
  await Bun.sleep(seconds * 1000);
  const cpu = cpuSeconds(pid) - cpu0;
  return { cpu, wall: (performance.now() - t0) / 1000, fromUs, toUs: nowMicros() };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};

interface Clips {
  raw: string;
  mjpeg: string;
  /** Mean JPEG size of the MJPEG clip, in KB: what quality 80 makes of this picture. */
  jpegKB: number;
}

/** The raw clip (testsrc2 with a frame-number band, yuv420p in AVI) and its MJPEG version, encoded by lancam at quality 80. */
async function makeClips(width: number, height: number): Promise<Clips> {
  const frames = CLIP_SECONDS * FPS;
  if (frames > MAX_FRAMES) throw new Error(`--seconds too long: ${frames} frames, the barcode counts ${MAX_FRAMES}`);
  const raw = join(work, `raw-${width}x${height}.avi`);
  const p = Bun.spawnSync([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${width}x${height}:rate=${FPS}`,
    "-vf", barcodeFilter(width, height), "-frames:v", String(frames), "-c:v", "rawvideo", "-pix_fmt", "yuv420p", raw]);
  if (p.exitCode !== 0) throw new Error(`ffmpeg could not make the raw clip: ${p.stderr.toString()}`);
  // The MJPEG version: exactly the JPEG lancam makes of each raw frame, stream-copied into AVI.
  const mjpeg = join(work, `mjpeg-${width}x${height}.avi`);
  const mux = Bun.spawn([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "mjpeg", "-framerate", String(FPS), "-i", "pipe:0", "-c", "copy", mjpeg],
    { stdin: "pipe", stderr: "pipe" });
  await using source = await openSource({ kind: "file", path: raw }, { quality: QUALITY, fps: 10_000 });
  if (source.stats.capturePath !== "yuv") throw new Error(`the raw clip took the ${source.stats.capturePath} path, not yuv`);
  let bytes = 0;
  let n = 0;
  for (let f = await source.next(); f; f = await source.next()) {
    await mux.stdin.write(f.jpeg);
    bytes += f.jpeg.length;
    n++;
  }
  await mux.stdin.end();
  if ((await mux.exited) !== 0) throw new Error(`ffmpeg could not write the MJPEG clip: ${await new Response(mux.stderr).text()}`);
  return { raw, mjpeg, jpegKB: bytes / n / 1024 };
}

/** One way of reading the clips, for the capture-only table. */
interface CapturePathCase {
  name: string;
  file: (c: Clips) => string;
  rawPackets: boolean;
  reencode: boolean;
}

const CAPTURE_CASES: CapturePathCase[] = [
  { name: "raw file, decoded to BGR by OpenCV and encoded (before)", file: (c) => c.raw, rawPackets: false, reencode: false },
  { name: "raw file, encoded from the YUV planes", file: (c) => c.raw, rawPackets: true, reencode: false },
  { name: "MJPEG file, --reencode (decode + encode)", file: (c) => c.mjpeg, rawPackets: true, reencode: true },
  { name: "MJPEG file, passed through", file: (c) => c.mjpeg, rawPackets: true, reencode: false },
];
const CAPTURE_FRAMES = 150;

/**
 * The capture alone, in this process, frames back to back: CPU (every thread) and
 * minor page faults per frame, JS side included (the worker hand-off, the copy out).
 */
async function captureOnly(clips: Clips, c: CapturePathCase): Promise<{ path: string; msPerFrame: number; faultsPerFrame: number }> {
  await using source = await openSource({ kind: "file", path: c.file(clips) }, { quality: QUALITY, fps: 100_000, rawPackets: c.rawPackets, reencode: c.reencode });
  for (let i = 0; i < 10; i++) await source.next(); // warm: buffers sized, code paths taken
  const cpu0 = process.cpuUsage();
  const faults0 = process.resourceUsage().minorPageFault;
  let n = 0;
  for (; n < CAPTURE_FRAMES; n++) if (!(await source.next())) break;
  const cpu = process.cpuUsage(cpu0);
  const faults = process.resourceUsage().minorPageFault - faults0;
  return { path: source.stats.capturePath, msPerFrame: (cpu.user + cpu.system) / 1000 / n, faultsPerFrame: faults / n };
}

interface Row {
  system: System;
  size: string;
  clients: number;
  /** lancam's capture path as its stop line says; "-" for Motion. */
  path: string;
  serverCpuMsPerFrame: number;
  serverCpuPct: number;
  fpsMedian: number;
  lossPct: number;
  worstLossPct: number;
  latencyP50: number;
  latencyP99: number;
  peakRssMiB: number;
  kbPerFrame: number;
}

async function runLancam(system: Exclude<System, "motion">, clips: Clips, size: string, n: number): Promise<Row> {
  const dir = mkdtempSync(join(work, "run-"));
  const log = join(dir, "server.log");
  const file = system === "unicast" ? clips.raw : clips.mjpeg;
  const group = `239.255.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 254)}`;
  const delivery = system === "multicast" ? ["--bind", "127.0.0.1", "--multicast", group] : [];
  await using server = spawnBun(["server.ts", "--source", file, "--loop", "--fps", String(FPS), "--quality", String(QUALITY), "--port", "0", "--log", log, "--max-clients", "1024", "--max-per-host", "1024", ...delivery]);
  const port = (await server.waitFor(/tcp=(\d+)/))[1]!;
  const clients: Child[] = [];
  try {
    for (let i = 0; i < n; i++) {
      clients.push(spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--duration", String(seconds + VIEWER_EXTRA_S), "--stats", join(dir, `c${i}.json`)]));
    }
    const udps = await Promise.all(clients.map(async (c) => Number((await c.waitFor(/receiving udp=(\d+)/))[1])));
    if (system === "multicast") await Promise.all(clients.map((c) => c.waitFor(/multicast group joined/, 15_000, "stderr")));
    const { cpu, wall } = await measureCpu(server.proc.pid);
    const rss = peakRssMiB(server.proc.pid);
    await Promise.all(clients.map((c) => c.exited));
    server.proc.kill("SIGTERM");
    await server.exited;
    const lines = readFileSync(log, "utf8").split("\n");
    const stop = lines.find((l) => l.includes(" stopped ")) ?? "";
    const perClient = udps.map((udp, i) => {
      const stats = JSON.parse(readFileSync(join(dir, `c${i}.json`), "utf8"));
      const leave = lines.find((l) => l.includes("client left") && l.includes(` udp=${udp} `)) ?? "";
      const sent = Number(/framesSent=(\d+)/.exec(leave)?.[1] ?? NaN);
      return { stats, loss: 100 * (1 - stats.framesReceived / sent), fps: median(stats.fpsPerSecond.slice(1, -1)) };
    });
    return {
      system, size, clients: n,
      path: /capturePath=(\w+)/.exec(stop)?.[1] ?? "?",
      serverCpuMsPerFrame: (1000 * cpu) / (wall * FPS),
      serverCpuPct: (100 * cpu) / wall,
      fpsMedian: median(perClient.map((c) => c.fps)),
      lossPct: median(perClient.map((c) => c.loss)),
      worstLossPct: Math.max(...perClient.map((c) => c.loss)),
      latencyP50: median(perClient.map((c) => c.stats.latencyMs.p50)),
      latencyP99: median(perClient.map((c) => c.stats.latencyMs.p99)),
      peakRssMiB: rss,
      kbPerFrame: median(perClient.map((c) => c.stats.bytes / c.stats.framesReceived / 1024)),
    };
  } finally {
    for (const c of clients) await c[Symbol.asyncDispose]();
  }
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

let readLogLib: string | null = null;

async function runMotion(clips: Clips, width: number, height: number, n: number): Promise<Row> {
  const dir = mkdtempSync(join(work, "motion-"));
  readLogLib ??= buildReadLog(work);
  const port = await freePort();
  await using motion = await startMotion({ dir, file: clips.raw, width, height, fps: FPS, quality: QUALITY, port, readLog: readLogLib });
  const pid = motion.child.proc.pid;
  const readers: Child[] = [];
  try {
    for (let i = 0; i < n; i++) {
      readers.push(spawnBun(["bench/mjpeg-reader.ts", `http://127.0.0.1:${port}/`, String(seconds + VIEWER_EXTRA_S), join(dir, `r${i}.json`)]));
    }
    await Promise.all(readers.map((r) => r.waitFor(/first frame/, 20_000)));
    const { cpu, wall, fromUs, toUs } = await measureCpu(pid);
    const rss = peakRssMiB(pid);
    const codes = await Promise.all(readers.map((r) => r.exited));
    if (codes.some((c) => c !== 0)) throw new Error(`a reader failed: ${readers.map((r) => r.stderr()).join("\n")}`);
    await motion[Symbol.asyncDispose]();
    const reads = readPacketTimes(motion.readTimes);
    const perReader = readers.map((_, i) => {
      const report = JSON.parse(readFileSync(join(dir, `r${i}.json`), "utf8")) as { parts: [number, number, number][] };
      const parts = report.parts.filter(([, at]) => at >= fromUs && at <= toUs);
      // Each picture is the frame Motion read last under that number before it arrived
      // (the clip may have been read more than once); repeats of it are not new pictures.
      const firstArrival = new Map<number, number>();
      const perSecond = new Map<number, number>();
      const start = parts[0]?.[1] ?? 0;
      let bytes = 0;
      for (const [k, at, size] of parts) {
        bytes += size;
        const readAt = reads.get(k)?.filter((t) => t <= at).at(-1);
        if (readAt === undefined || firstArrival.has(readAt)) continue;
        firstArrival.set(readAt, at);
        const s = Math.floor((at - start) / 1e6);
        perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
      }
      const readTimes = [...firstArrival.keys()];
      const [from, to] = [Math.min(...readTimes), Math.max(...readTimes)];
      const readInWindow = [...reads.values()].flat().filter((t) => t >= from && t <= to).length;
      const latencies = [...firstArrival].map(([readAt, at]) => (at - readAt) / 1000);
      const whole = [...perSecond.entries()].sort((a, b) => a[0] - b[0]).slice(1, -1).map(([, c]) => c);
      return { latencies, loss: 100 * (1 - firstArrival.size / readInWindow), fps: median(whole), kb: bytes / parts.length / 1024 };
    });
    return {
      system: "motion", size: `${width}x${height}`, clients: n, path: "-",
      serverCpuMsPerFrame: (1000 * cpu) / (wall * FPS),
      serverCpuPct: (100 * cpu) / wall,
      fpsMedian: median(perReader.map((r) => r.fps)),
      lossPct: median(perReader.map((r) => r.loss)),
      worstLossPct: Math.max(...perReader.map((r) => r.loss)),
      latencyP50: median(perReader.map((r) => quantile(r.latencies, 0.5))),
      latencyP99: median(perReader.map((r) => quantile(r.latencies, 0.99))),
      peakRssMiB: rss,
      kbPerFrame: median(perReader.map((r) => r.kb)),
    };
  } finally {
    for (const r of readers) await r[Symbol.asyncDispose]();
  }
}

const COLOURS: Record<System, string> = { unicast: "#1f6fb4", passthrough: "#2a9d3a", multicast: "#8e44ad", motion: "#e07b00" };
const LABELS: Record<System, string> = {
  unicast: "lancam unicast (raw, YUV encode)", passthrough: "lancam passthrough (MJPEG)",
  multicast: "lancam passthrough, multicast", motion: "Motion (raw, HTTP MJPEG)",
};

/** A TrueType font for the plot's text: ImageMagick's default (Helvetica via Ghostscript) is often missing. */
function plotFont(): string {
  const p = Bun.spawnSync(["fc-match", "-f", "%{file}", "sans"]);
  const file = p.stdout.toString().trim();
  if (p.exitCode !== 0 || !file) throw new Error("no font for the plot (fc-match sans found none)");
  return file;
}

/**
 * CPU per frame against viewers, one panel per size, drawn with ImageMagick's own
 * vector format (MVG): Debian's ImageMagick reads SVG only through optional delegates.
 */
function plotMvg(rows: Row[]): { mvg: string; width: number; height: number } {
  const panelW = 300;
  const panelH = 220;
  const left = 50;
  const top = 40;
  const gap = 40;
  const width = Math.max(560, left + sizes.length * (panelW + gap));
  const height = top + panelH + 60 + systems.length * 18;
  const maxY = Math.ceil(Math.max(...rows.map((r) => r.serverCpuMsPerFrame)) + 0.5);
  const xs = (i: number) => 20 + (i * (panelW - 40)) / Math.max(1, counts.length - 1);
  const ys = (v: number) => panelH - (v / maxY) * panelH;
  const text = (x: number, y: number, str: string, anchor = "start") => `text-anchor ${anchor} text ${x},${y} '${str}'`;
  const out: string[] = [
    `viewbox 0 0 ${width} ${height}`,
    `fill white rectangle 0,0 ${width},${height}`,
    `font '${plotFont()}' font-size 13 fill black stroke none`,
    text(left, 20, `Server CPU per frame (ms) against viewers, ${FPS} fps, JPEG quality ${QUALITY}`),
  ];
  sizes.forEach(({ width: w, height: h }, p) => {
    const x0 = left + p * (panelW + gap);
    out.push("push graphic-context", `translate ${x0},${top}`, `stroke #999999 fill none rectangle 0,0 ${panelW},${panelH}`, "stroke none fill black");
    out.push(text(panelW / 2, -6, `${w}x${h}`, "middle"));
    for (let v = 0; v <= maxY; v++) {
      out.push(`stroke #eeeeee line 0,${ys(v)} ${panelW},${ys(v)}`, "stroke none");
      if (p === 0) out.push(text(-6, ys(v) + 4, String(v), "end"));
    }
    counts.forEach((c, i) => out.push(text(xs(i), panelH + 16, String(c), "middle")));
    out.push(text(panelW / 2, panelH + 32, "viewers", "middle"));
    for (const s of systems) {
      const pts = counts.flatMap((c, i) => {
        const r = rows.find((x) => x.system === s && x.size === `${w}x${h}` && x.clients === c);
        return r ? [[xs(i), ys(r.serverCpuMsPerFrame)] as const] : [];
      });
      if (pts.length > 1) out.push(`stroke ${COLOURS[s]} stroke-width 2 fill none polyline ${pts.map(([x, y]) => `${x},${y}`).join(" ")}`);
      for (const [x, y] of pts) out.push(`stroke none fill ${COLOURS[s]} circle ${x},${y} ${x + 3.5},${y}`);
      out.push("stroke none fill black stroke-width 1");
    }
    out.push("pop graphic-context");
  });
  systems.forEach((s, i) => {
    const y = top + panelH + 55 + i * 18;
    const x = left;
    out.push(`stroke ${COLOURS[s]} stroke-width 3 line ${x},${y - 4} ${x + 24},${y - 4}`, "stroke none stroke-width 1 fill black", text(x + 30, y, LABELS[s]));
  });
  return { mvg: out.join("\n"), width, height };
}

try {
  if (systems.includes("motion")) ensureMotion();
  console.log(`# capture CPU: testsrc2 raw yuv420p AVI (and its MJPEG version), ${FPS} fps, quality ${QUALITY}, ${seconds} s per run${repeat > 1 ? `, least CPU of ${repeat} runs` : ""}, ` +
    `${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
  console.log("| size | viewers | system | server CPU ms/frame (%) | fps (median viewer) | loss % (median / worst) | latency p50 / p99 ms | server peak RSS MiB | KB/frame |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  const rows: Row[] = [];
  const captureRows: string[] = [];
  for (const { width, height } of sizes) {
    const clips = await makeClips(width, height);
    for (const c of CAPTURE_CASES) {
      const r = await captureOnly(clips, c);
      captureRows.push(`| ${width}x${height} | ${c.name} | ${r.path} | ${r.msPerFrame.toFixed(2)} | ${r.faultsPerFrame.toFixed(1)} |`);
    }
    for (const n of counts) {
      for (const s of systems) {
        const size = `${width}x${height}`;
        let r: Row | null = null;
        for (let i = 0; i < repeat; i++) {
          const run = s === "motion" ? await runMotion(clips, width, height, n) : await runLancam(s, clips, size, n);
          if (!r || run.serverCpuMsPerFrame < r.serverCpuMsPerFrame) r = run;
        }
        if (!r) throw new Error("no run");
        rows.push(r);
        const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
        const name = s === "motion" ? "Motion" : `lancam ${s === "multicast" ? "passthrough multicast" : s}${r.path === (s === "unicast" ? "yuv" : "passthrough") ? "" : ` (path ${r.path}!)`}`;
        console.log(`| ${size} | ${n} | ${name} | ${f(r.serverCpuMsPerFrame, 2)} (${f(r.serverCpuPct, 0)}) | ${f(r.fpsMedian)} | ${f(r.lossPct, 2)} / ${f(r.worstLossPct, 2)} | ${f(r.latencyP50)} / ${f(r.latencyP99)} | ${f(r.peakRssMiB, 0)} | ${f(r.kbPerFrame, 0)} |`);
      }
    }
    rmSync(clips.raw, { force: true });
  }
  console.log(`\n# capture alone (one process, frames back to back, ${CAPTURE_FRAMES} per case)`);
  console.log("| size | source | path | CPU ms/frame | page faults/frame |");
  console.log("|---|---|---|---|---|");
  for (const r of captureRows) console.log(r);
  if (plotPath) {
    const plot = plotMvg(rows);
    const mvg = join(work, "plot.mvg");
    writeFileSync(mvg, plot.mvg);
    const p = Bun.spawnSync(["convert", "-size", `${plot.width}x${plot.height}`, `mvg:${mvg}`, plotPath]);
    if (p.exitCode !== 0) throw new Error(`ImageMagick convert failed: ${p.stderr.toString()}`);
    console.log(`plot: ${plotPath}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
