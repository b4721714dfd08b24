// Browser view CPU per frame: the server side of /stream.mjpg at 1280x720, 30 fps.
// A child process runs only the HttpView, fed pre-encoded camera-like JPEGs at the frame
// rate (as the server feeds it the frames it already encoded for UDP); N readers (curl,
// or Bun fetch readers when curl is missing) run as other processes, so their CPU is not
// counted. The child measures its own CPU over the measuring window, after a warm-up.
//   bun bench/http-cpu.ts [--readers 0,1,4] [--seconds 10] [--size 1280x720] [--runs 3]
import mri from "mri";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../lib/log/logger.ts";
import { HttpView } from "../lib/http/http-view.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["readers", "seconds", "size", "runs", "serve", "expect"], boolean: ["fetch-reader"] });
const FPS = 30;
const WARMUP_MS = 1500;

interface Result {
  frames: number;
  cpuMs: number;
  wallMs: number;
  rssMB: number;
  readerFps: number[];
  readerSkipped: number[];
}

/** Child mode: serve the frames in `--serve` to `--expect` readers and report this process's CPU. */
async function serve(input: string, readers: number, seconds: number): Promise<void> {
  const jpegs = splitJpegs(new Uint8Array(await Bun.file(input).arrayBuffer()));
  const [width, height] = (/(\d+)x(\d+)\.mjpeg$/.exec(input) ?? []).slice(1).map(Number) as [number, number];
  await using view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log: silentLogger,
    state: () => ({ sources: [{ name: "0", description: "bench", width, height, fps: FPS, available: true, framesCaptured: 0 }], viewers: [], counters: { framesCaptured: 0, framesSent: 0, bytesSent: null, drops: {} } }),
  });
  console.log(`ready port=${view.port}`);
  let seq = 0;
  const t0 = performance.now();
  const due = (n: number) => t0 + (n * 1000) / FPS;
  const push = () => view.push({ seq, capturedAt: nowMicros(), width, height, jpeg: jpegs[seq++ % jpegs.length]! });
  // Paced by deadline, not by interval, so the rate holds however long a push takes.
  const runUntil = async (pred: () => boolean) => {
    while (!pred()) {
      push();
      const wait = due(seq) - performance.now();
      if (wait > 0) await Bun.sleep(wait);
    }
  };
  await runUntil(() => view.browserViewers().length >= readers && performance.now() - t0 > 500);
  const warm = performance.now();
  await runUntil(() => performance.now() - warm > WARMUP_MS);
  const before = view.browserViewers().map((r) => ({ id: r.id, sent: r.framesSent, skipped: r.framesDropped ?? 0 }));
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const seq0 = seq;
  await runUntil(() => performance.now() - wall0 >= seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  const after = new Map(view.browserViewers().map((r) => [r.id, r]));
  const result: Result = {
    frames: seq - seq0,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs,
    rssMB: process.memoryUsage().rss / 2 ** 20,
    readerFps: before.map((b) => ((after.get(b.id)?.framesSent ?? b.sent) - b.sent) / (wallMs / 1000)),
    readerSkipped: before.map((b) => (after.get(b.id)?.framesDropped ?? b.skipped) - b.skipped),
  };
  console.log(`result ${JSON.stringify(result)}`);
}

/** A reader process: curl when there is one, else a Bun fetch that reads and discards. */
function startReader(url: string): Bun.Subprocess {
  if (!args["fetch-reader"] && Bun.which("curl")) {
    return Bun.spawn(["curl", "-s", "-N", "-o", "/dev/null", url], { stdout: "ignore", stderr: "ignore" });
  }
  const code = `const r = (await fetch(${JSON.stringify(url)})).body.getReader(); for (;;) { const { done } = await r.read(); if (done) break; }`;
  return Bun.spawn([process.execPath, "-e", code], { stdout: "ignore", stderr: "ignore" });
}

async function measure(input: string, readers: number, seconds: number): Promise<Result> {
  const child = Bun.spawn([process.execPath, import.meta.path, "--serve", input, "--expect", String(readers), "--seconds", String(seconds)], {
    stdout: "pipe", stderr: "inherit",
  });
  const procs: Bun.Subprocess[] = [];
  try {
    let out = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      const ready = /ready port=(\d+)/.exec(out);
      if (ready && procs.length === 0) {
        for (let i = 0; i < readers; i++) procs.push(startReader(`http://127.0.0.1:${ready[1]}/stream.mjpg`));
      }
    }
    if ((await child.exited) !== 0) throw new Error(`server child failed:\n${out}`);
    const line = /result (.*)/.exec(out);
    if (!line) throw new Error(`no result from the server child:\n${out}`);
    return JSON.parse(line[1]!) as Result;
  } finally {
    for (const p of procs) p.kill();
    child.kill();
  }
}

async function makeFrames(size: string, count: number, path: string): Promise<number> {
  // Sensor-like noise makes camera-sized JPEGs (the plain test pattern compresses far better).
  const proc = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=${size}:rate=${FPS},noise=alls=12:allf=t`, "-frames:v", String(count), "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", path]);
  if (proc.exitCode !== 0) throw new Error(proc.stderr.toString());
  return Bun.file(path).size / count;
}

if (args.serve) {
  await serve(String(args.serve), Number(args.expect ?? 0), Number(args.seconds ?? 10));
  process.exit(0);
}

const readerCounts = String(args.readers ?? "0,1,4").split(",").map(Number);
const seconds = Number(args.seconds ?? 10);
const size = String(args.size ?? "1280x720");
const runs = Number(args.runs ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const work = mkdtempSync(join(tmpdir(), "lancam-http-bench-"));
try {
  const input = join(work, `${size}.mjpeg`);
  const kb = (await makeFrames(size, 60, input)) / 1024;
  const reader = !args["fetch-reader"] && Bun.which("curl") ? "curl" : "Bun fetch";
  console.log(`# browser view CPU per frame: ${size}, ${kb.toFixed(0)} KB/frame, ${FPS} fps, ${seconds} s per run, median of ${runs} runs; readers: ${reader} in other processes; ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
  console.log("| MJPEG readers | server ms CPU/frame | % of one core | per reader ms CPU/frame | readers' fps (min) | frames skipped (max) | RSS MB |");
  console.log("|---|---|---|---|---|---|---|");
  let base: number | null = null;
  for (const n of readerCounts) {
    const rs: Result[] = [];
    for (let r = 0; r < runs; r++) rs.push(await measure(input, n, seconds));
    const perFrame = median(rs.map((x) => x.cpuMs / x.frames));
    const core = median(rs.map((x) => (100 * x.cpuMs) / x.wallMs));
    if (n === 0) base = perFrame;
    const perReader = base !== null && n > 0 ? ((perFrame - base) / n).toFixed(3) : "—";
    const fps = n > 0 ? Math.min(...rs.flatMap((x) => x.readerFps)).toFixed(1) : "—";
    const skipped = n > 0 ? String(Math.max(...rs.flatMap((x) => x.readerSkipped))) : "—";
    console.log(`| ${n} | ${perFrame.toFixed(3)} | ${core.toFixed(1)} | ${perReader} | ${fps} | ${skipped} | ${median(rs.map((x) => x.rssMB)).toFixed(0)} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
