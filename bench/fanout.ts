// Fan-out benchmark: one server on the test source, N headless viewers on 127.0.0.1.
// Reports per-viewer frame rate, loss against what the server sent, latency, and the
// CPU the server and each viewer used.
//   bun bench/fanout.ts [--clients 1,4,8] [--browsers 0] [--seconds 10] [--size 1280x720] [--fps 30] [--extra=--spread=0.25] [--client-extra=--recv-buffer=200K]
// --browsers B adds B MJPEG readers (curl on /stream.mjpg of the server's --http view) to every run.
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { spawnBun, spawnChild, type Child } from "../tests/helpers/process.ts";
import { cpuSeconds, peakRssMiB } from "./proc-stats.ts";

const args = mri(process.argv.slice(2), { string: ["clients", "browsers", "seconds", "size", "fps", "extra", "client-extra", "source"] });
const browsers = Number(args.browsers ?? 0);
const counts = String(args.clients ?? "1,4,8").split(",").map(Number);
const seconds = Number(args.seconds ?? 10);
const size = String(args.size ?? "1280x720");
const fps = Number(args.fps ?? 30);
const extra = args.extra ? String(args.extra).split(" ").filter(Boolean) : [];
const clientExtra = args["client-extra"] ? String(args["client-extra"]).split(" ").filter(Boolean) : [];
const sourceKind = String(args.source ?? "test");

/**
 * The test pattern compresses to ~45 KB at 720p; a camera's picture is several times
 * bigger. `--source noise` replays a generated clip with sensor-like noise instead.
 */
async function sourceArgs(): Promise<string[]> {
  if (sourceKind === "test") return ["--source", "test", "--size", size, "--fps", String(fps)];
  if (sourceKind !== "noise") throw new Error(`--source must be test or noise, got ${sourceKind}`);
  const clip = join(mkdtempSync(join(tmpdir(), "lancam-bench-src-")), "noise.avi");
  const ff = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=${size}:rate=${fps},noise=alls=12:allf=t`, "-t", "4", "-c:v", "mjpeg", "-q:v", "4", clip]);
  if (ff.exitCode !== 0) throw new Error(`ffmpeg could not make the noise clip: ${ff.stderr.toString()}`);
  return ["--source", clip, "--loop", "--fps", String(fps)];
}
const SOURCE = await sourceArgs();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

interface Row {
  clients: number;
  sentPerClient: number;
  fpsMedian: number;
  lossPct: number;
  worstLossPct: number;
  latencyP50: number;
  latencyP95: number;
  latencyP99: number;
  serverCpuPct: number;
  serverCpuMsPerFrame: number;
  serverPeakRssMiB: number;
  clientCpuPct: number;
}

async function run(n: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), "lancam-bench-"));
  const log = join(dir, "server.log");
  const http = browsers > 0 ? ["--http", "0", "--http-bind", "127.0.0.1"] : [];
  await using server = spawnBun(["server.ts", ...SOURCE, "--port", "0", "--log", log, "--quality", "80", "--max-clients", "1024", "--max-per-host", "1024", ...http, ...extra]);
  const port = (await server.waitFor(/tcp=(\d+)/))[1]!;
  const clients: Child[] = [];
  const readers: Child[] = [];
  try {
    if (browsers > 0) {
      const url = (await server.waitFor(/lancam http listening url=(\S+)/))[1]!;
      // Readers run a little longer than the viewers, so they cover the whole measured window.
      for (let i = 0; i < browsers; i++) readers.push(spawnChild(["curl", "-s", "-o", "/dev/null", "-m", String(seconds + 2), `${url}stream.mjpg`]));
    }
    for (let i = 0; i < n; i++) {
      clients.push(spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--duration", String(seconds), "--stats", join(dir, `c${i}.json`), ...clientExtra]));
    }
    const udps = await Promise.all(clients.map(async (c) => Number((await c.waitFor(/receiving udp=(\d+)/))[1])));
    const serverCpu0 = cpuSeconds(server.proc.pid);
    const t0 = performance.now();
    const clientCpu = await Promise.all(clients.map(async (c) => {
      let last = 0;
      const timer = setInterval(() => {
        const v = cpuSeconds(c.proc.pid);
        if (Number.isFinite(v)) last = v;
      }, 200);
      await c.exited;
      clearInterval(timer);
      return last;
    }));
    const wall = (performance.now() - t0) / 1000;
    const serverCpu = cpuSeconds(server.proc.pid) - serverCpu0;
    const serverRss = peakRssMiB(server.proc.pid);
    server.proc.kill("SIGTERM");
    await server.exited;
    const lines = readFileSync(log, "utf8").split("\n");
    const perClient = udps.map((udp, i) => {
      const stats = JSON.parse(readFileSync(join(dir, `c${i}.json`), "utf8"));
      const leave = lines.find((l) => l.includes("client left") && l.includes(` udp=${udp} `)) ?? "";
      const sent = Number(/framesSent=(\d+)/.exec(leave)?.[1] ?? NaN);
      const fpsSeconds: number[] = stats.fpsPerSecond.slice(1, -1);
      return { stats, sent, loss: 100 * (1 - stats.framesReceived / sent), fps: median(fpsSeconds) };
    });
    return {
      clients: n,
      sentPerClient: median(perClient.map((c) => c.sent)),
      fpsMedian: median(perClient.map((c) => c.fps)),
      lossPct: median(perClient.map((c) => c.loss)),
      worstLossPct: Math.max(...perClient.map((c) => c.loss)),
      latencyP50: median(perClient.map((c) => c.stats.latencyMs.p50)),
      latencyP95: median(perClient.map((c) => c.stats.latencyMs.p95)),
      latencyP99: median(perClient.map((c) => c.stats.latencyMs.p99)),
      serverCpuPct: (100 * serverCpu) / wall,
      serverCpuMsPerFrame: (1000 * serverCpu) / (wall * fps),
      serverPeakRssMiB: serverRss,
      clientCpuPct: (100 * median(clientCpu)) / seconds,
    };
  } finally {
    for (const c of [...clients, ...readers]) await c[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`# fan-out: ${size} at ${fps} fps, ${sourceKind} source q80, ${seconds} s per run,${browsers ? ` plus ${browsers} browser readers,` : ""} ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}${extra.length ? `, server ${extra.join(" ")}` : ""}${clientExtra.length ? `, viewers ${clientExtra.join(" ")}` : ""}`);
console.log("| viewers | frames sent/viewer | fps (median viewer) | loss % (median / worst) | latency p50 / p95 / p99 ms | server CPU % (ms/frame) | server peak RSS MiB | CPU % per viewer |");
console.log("|---|---|---|---|---|---|---|---|");
for (const n of counts) {
  const r = await run(n);
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
  console.log(`| ${r.clients} | ${r.sentPerClient} | ${f(r.fpsMedian)} | ${f(r.lossPct, 2)} / ${f(r.worstLossPct, 2)} | ${f(r.latencyP50)} / ${f(r.latencyP95)} / ${f(r.latencyP99)} | ${f(r.serverCpuPct, 0)} (${f(r.serverCpuMsPerFrame, 2)}) | ${f(r.serverPeakRssMiB, 0)} | ${f(r.clientCpuPct, 0)} |`);
}
