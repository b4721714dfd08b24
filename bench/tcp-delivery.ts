// What TCP delivery costs against UDP (docs/benchmarks.md "TCP delivery").
//   bun bench/tcp-delivery.ts [--seconds 10] [--parts cpu,link] [--viewers 8]
// cpu: on loopback, one server and 8 viewers, all by UDP, then all by TCP
//      (--transport tcp): the server's CPU per frame captured, user + system and user,
//      the viewers' frame rate and latency; the test pattern and the camera-like clip.
// link (root: network namespaces): latency over TCP and UDP on a free link, and on a
//      100 Mbit/s link (tbf on the server's side) shared by two viewers of the
//      camera-like clip (~50 Mbit/s each: the two copies do not fit).
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { NetnsLan, netnsUnavailable, type HostSpec } from "../tests/helpers/netns.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";
import { cameraClip } from "./camera-clip.ts";
import { cpuSplit } from "./proc-stats.ts";

const args = mri(process.argv.slice(2), { string: ["seconds", "parts", "viewers"] });
const seconds = Number(args.seconds ?? 10);
const parts = String(args.parts ?? "cpu,link").split(",");
const viewerCount = Number(args.viewers ?? 8);
const FPS = 30;

const work = mkdtempSync(join(tmpdir(), "lancam-bench-tcp-"));
const clip = cameraClip(work, FPS);
const SOURCES: Record<string, string[]> = {
  test: ["--source", "test", "--size", "1280x720", "--fps", String(FPS)],
  camera: ["--source", clip.path, "--loop", "--fps", String(FPS)],
};

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");

interface ViewerResult {
  stats: StatsSummary;
  /** Frame numbers its session spanned: received, missing, incomplete and skipped. */
  span: number;
  fps: number;
  lossPct: number;
  skippedPct: number;
}

function viewerResult(path: string): ViewerResult {
  const stats: StatsSummary = JSON.parse(readFileSync(path, "utf8"));
  const span = stats.framesReceived + stats.framesMissing + stats.framesIncomplete + stats.framesSkipped;
  return {
    stats, span, fps: median(stats.fpsPerSecond.slice(1, -1)),
    lossPct: span ? (100 * (stats.framesMissing + stats.framesIncomplete)) / span : NaN,
    skippedPct: span ? (100 * stats.framesSkipped) / span : NaN,
  };
}

/** Runs `viewers` to their end and returns the server's CPU over that time and each viewer's result. */
async function measure(server: Child, viewers: Child[], statsPaths: string[]) {
  await Promise.all(viewers.map((c) => c.waitFor(/receiving udp=(\d+)/, 30_000)));
  const cpu0 = cpuSplit(server.proc.pid);
  const t0 = performance.now();
  const codes = await Promise.all(viewers.map((c) => c.exited));
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSplit(server.proc.pid);
  if (codes.some((c) => c !== 0)) throw new Error(`a viewer exited ${codes.join(",")}:\n${viewers.map((v) => v.stderr()).join("\n")}`);
  const results = statsPaths.map(viewerResult);
  // The frames the server made meanwhile: each viewer's span of frame numbers (a loaded
  // machine captures fewer than the nominal rate, and CPU per frame must not hide that).
  const frames = median(results.map((r) => r.span));
  return {
    msPerFrame: (1000 * (cpu1.total - cpu0.total)) / frames, userMsPerFrame: (1000 * (cpu1.user - cpu0.user)) / frames,
    capturedFps: frames / wall, viewers: results,
  };
}

async function cpuRun(source: string, transport: "udp" | "tcp") {
  const dir = mkdtempSync(join(work, "cpu-"));
  await using server = spawnBun(["server.ts", ...SOURCES[source]!, "--port", "0", "--log", join(dir, "server.log"), "--max-clients", "64", "--max-per-host", "64"]);
  const port = (await server.waitFor(/tcp=(\d+)/, 30_000))[1]!;
  const paths = Array.from({ length: viewerCount }, (_, i) => join(dir, `v${i}.json`));
  const viewers = paths.map((p) => spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--duration", String(seconds), "--transport", transport, "--stats", p]));
  try {
    return await measure(server, viewers, paths);
  } finally {
    for (const v of viewers) await v[Symbol.asyncDispose]();
  }
}

async function linkRun(link: "free" | "shared", transport: "udp" | "tcp") {
  const dir = mkdtempSync(join(work, "link-"));
  const n = link === "free" ? 1 : 2;
  const hosts: HostSpec[] = [{ name: "srv", address: "10.77.0.1", ...(link === "shared" ? { rate: "100mbit" } : {}) }];
  for (let i = 0; i < n; i++) hosts.push({ name: `v${i}`, address: `10.77.0.${11 + i}` });
  await using lan = new NetnsLan("lct20-b", hosts);
  const server = lan.bun("srv", ["server.ts", ...SOURCES.camera!, "--port", "0", "--log", join(dir, "server.log")]);
  const port = (await server.waitFor(/tcp=(\d+)/, 30_000))[1]!;
  const paths = Array.from({ length: n }, (_, i) => join(dir, `v${i}.json`));
  const viewers = paths.map((p, i) => lan.bun(`v${i}`, ["client.ts", "10.77.0.1", port, "0", "--no-window", "--no-record", "--duration", String(seconds), "--transport", transport, "--stats", p]));
  return await measure(server, viewers, paths);
}

console.log(`# TCP delivery against UDP: 1280x720 at ${FPS} fps (test pattern, and a camera-like clip ~${clip.kbPerFrame.toFixed(0)} KB/frame), ${seconds} s per run, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
try {
  if (parts.includes("cpu")) {
    console.log(`\n## ${viewerCount} viewers on loopback\n`);
    console.log("| source | transport | server CPU ms/frame, user + system / user | frames made per s | fps per viewer (median / worst) | latency p50 / p99 ms (median viewer) | loss % / skipped % (median viewer) |");
    console.log("|---|---|---|---|---|---|---|");
    for (const source of ["test", "camera"]) {
      for (const transport of ["udp", "tcp"] as const) {
        const r = await cpuRun(source, transport);
        const v = r.viewers;
        console.log(`| ${source} | ${transport} | ${f(r.msPerFrame, 2)} / ${f(r.userMsPerFrame, 2)} | ${f(r.capturedFps)} | ${f(median(v.map((x) => x.fps)))} / ${f(Math.min(...v.map((x) => x.fps)))} | ${f(median(v.map((x) => x.stats.latencyMs.p50 ?? NaN)))} / ${f(median(v.map((x) => x.stats.latencyMs.p99 ?? NaN)))} | ${f(median(v.map((x) => x.lossPct)), 2)} / ${f(median(v.map((x) => x.skippedPct)), 2)} |`);
      }
    }
  }
  if (parts.includes("link")) {
    const why = netnsUnavailable();
    if (why) console.log(`\n(link part skipped: ${why})`);
    else {
      console.log("\n## Camera-like clip across network namespaces\n");
      console.log("| link | viewers | transport | fps per viewer (median / worst) | latency p50 / p99 ms (worst viewer) | loss % / skipped % (worst viewer) |");
      console.log("|---|---|---|---|---|---|");
      for (const link of ["free", "shared"] as const) {
        for (const transport of ["udp", "tcp"] as const) {
          const r = await linkRun(link, transport);
          const v = r.viewers;
          const worst = v.reduce((a, b) => ((b.stats.latencyMs.p99 ?? 0) > (a.stats.latencyMs.p99 ?? 0) ? b : a));
          const lossiest = v.reduce((a, b) => (b.lossPct + b.skippedPct > a.lossPct + a.skippedPct ? b : a));
          console.log(`| ${link === "free" ? "free" : "100 Mbit/s, shared"} | ${v.length} | ${transport} | ${f(median(v.map((x) => x.fps)))} / ${f(Math.min(...v.map((x) => x.fps)))} | ${f(worst.stats.latencyMs.p50 ?? NaN)} / ${f(worst.stats.latencyMs.p99 ?? NaN)} | ${f(lossiest.lossPct, 2)} / ${f(lossiest.skippedPct, 2)} |`);
        }
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
