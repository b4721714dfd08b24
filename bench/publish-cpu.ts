// What publishing costs the server per frame, at 1280x720 and 30 fps:
//   none   frames written at 30 fps to no publisher (the floor every variant shares)
//   copy   Publisher --publish-codec copy: the JPEGs as RTP/JPEG through ffmpeg, no re-encode
//   h264   Publisher --publish-codec h264: ffmpeg decodes each JPEG and encodes it with libx264
// Each run is a child process driving one publisher in real time; its CPU is the child's rusage,
// which includes the ffmpeg it started and waited for. The receiving RTSP server (ffmpeg in
// listen mode, discarding what it gets) is started by this parent, so its CPU is not counted.
// Frames published and dropped are summed over all runs of a variant.
//   bun bench/publish-cpu.ts [--seconds 10] [--runs 3] [--size 1280x720]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../lib/app/log.ts";
import { cv } from "../lib/native/cv.ts";
import { Publisher, type PublisherStats } from "../lib/publish/publisher.ts";
import { parsePublishUrl } from "../lib/publish/publish-url.ts";
import { resolveFfmpeg } from "../lib/record/ffmpeg.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["seconds", "runs", "size", "variant", "input", "url"] });
const FPS = 30;
const VARIANTS = ["none", "copy", "h264"] as const;
type Variant = (typeof VARIANTS)[number];

interface ChildReport {
  frames: number;
  stats: PublisherStats | null;
  /** Dropped after the first second (connecting, probing and encoder start-up are over by then). */
  droppedSteady: number;
}

/** Child mode: write the frames of `input` at 30 fps for `seconds` to one publisher (or none). */
async function child(variant: Variant, input: string, url: string, seconds: number): Promise<void> {
  const frames = splitJpegs(new Uint8Array(readFileSync(input)));
  const [width, height] = (/(\d+)x(\d+)\.mjpeg$/.exec(input) ?? []).slice(1).map(Number);
  const pub = variant === "none" ? null : new Publisher({ target: parsePublishUrl(url), codec: variant, fps: FPS, log: silentLogger });
  const count = seconds * FPS;
  const t0 = Date.now() * 1000;
  const start = performance.now();
  let droppedAtOneSecond = 0;
  for (let n = 0; n < count; n++) {
    if (n === FPS) droppedAtOneSecond = pub?.stats.dropped ?? 0;
    const wait = start + (n * 1000) / FPS - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    const frame = { seq: n, capturedAt: t0 + Math.round((n * 1e6) / FPS), width: width!, height: height!, jpeg: frames[n % frames.length]! };
    pub?.write(frame);
  }
  await pub?.close();
  const stats = pub?.stats ?? null;
  const report: ChildReport = { frames: count, stats, droppedSteady: (stats?.dropped ?? 0) - droppedAtOneSecond };
  process.stdout.write(JSON.stringify(report));
}

/**
 * Camera-like frames (sensor noise), JPEG-encoded the way the server's capture does it (OpenCV,
 * quality 80): what --publish-codec copy is meant to carry.
 */
async function makeFrames(size: string, path: string, count: number): Promise<number> {
  const [w, h] = size.split("x").map(Number) as [number, number];
  const frameBytes = w * h * 3;
  const p = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=${size}:rate=${FPS},noise=alls=12:allf=t`, "-frames:v", String(count), "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:1"],
  { stdout: "pipe", stderr: "inherit" });
  const jpegs: Uint8Array[] = [];
  const raw = new Uint8Array(frameBytes);
  let filled = 0;
  for await (const chunk of p.stdout) {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, frameBytes - filled);
      raw.set(chunk.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === frameBytes) {
        jpegs.push(cv().encodeJpeg(raw, w, h, 80));
        filled = 0;
      }
    }
  }
  if ((await p.exited) !== 0 || jpegs.length !== count) throw new Error(`expected ${count} frames from ffmpeg, got ${jpegs.length}`);
  await Bun.write(path, new Blob(jpegs));
  return jpegs.reduce((a, j) => a + j.length, 0) / count;
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function listening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8").split("\n").some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1] === local && f[3] === "0A";
  });
}

interface Run {
  cpuMsPerFrame: number;
  stats: PublisherStats | null;
  droppedSteady: number;
}

async function measure(variant: Variant, input: string, seconds: number): Promise<Run> {
  const port = freePort();
  const url = `rtsp://127.0.0.1:${port}/bench`;
  const receiver = variant === "none" ? null : Bun.spawn(
    [resolveFfmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_flags", "listen", "-i", url, "-c", "copy", "-f", "null", "-"],
    { stdout: "ignore", stderr: "inherit" },
  );
  try {
    const deadline = performance.now() + 10_000;
    while (receiver && !listening(port)) {
      if (performance.now() > deadline) throw new Error("the receiver does not listen");
      await Bun.sleep(20);
    }
    const proc = Bun.spawn([process.execPath, import.meta.path, "--variant", variant, "--input", input, "--url", url, "--seconds", String(seconds)], {
      stdout: "pipe", stderr: "inherit",
    });
    const out = await new Response(proc.stdout).text();
    if ((await proc.exited) !== 0) throw new Error(`${variant} child failed`);
    const ru = proc.resourceUsage();
    if (!ru) throw new Error("no resource usage");
    const report = JSON.parse(out) as ChildReport;
    const cpuMs = (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1000;
    return { cpuMsPerFrame: cpuMs / report.frames, stats: report.stats, droppedSteady: report.droppedSteady };
  } finally {
    if (receiver) {
      // It ends by itself when the publisher tears the session down; a leftover is killed.
      await Promise.race([receiver.exited, Bun.sleep(3000)]);
      receiver.kill("SIGKILL");
    }
  }
}

if (args.variant) {
  await child(String(args.variant) as Variant, String(args.input), String(args.url), Number(args.seconds));
  process.exit(0);
}

const seconds = Number(args.seconds ?? 10);
const runs = Number(args.runs ?? 3);
const size = String(args.size ?? "1280x720");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const work = mkdtempSync(join(tmpdir(), "lancam-publish-bench-"));
try {
  const input = join(work, `${size}.mjpeg`);
  const kb = (await makeFrames(size, input, FPS * 4)) / 1024;
  const results = new Map<Variant, Run[]>(VARIANTS.map((v) => [v, []]));
  for (let r = 0; r < runs; r++) {
    // Interleaved so drift in machine load hits every variant alike.
    for (const v of VARIANTS) results.get(v)!.push(await measure(v, input, seconds));
  }
  const floor = median(results.get("none")!.map((r) => r.cpuMsPerFrame));
  console.log(`# publishing CPU per frame: ${size} at ${FPS} fps, ${kb.toFixed(0)} KB JPEGs, ${seconds} s per run, median of ${runs} runs, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
  console.log("| variant | server CPU ms/frame (bun + its ffmpeg) | publishing's share ms/frame | % of one core | frames published / written | dropped in the first second, after it |");
  console.log("|---|---|---|---|---|---|");
  for (const v of VARIANTS) {
    const rs = results.get(v)!;
    const cpu = median(rs.map((r) => r.cpuMsPerFrame));
    const extra = cpu - floor;
    const published = rs.reduce((a, r) => a + (r.stats?.published ?? 0), 0);
    const written = rs.reduce((a, r) => a + (r.stats?.frames ?? 0), 0);
    const dropped = rs.reduce((a, r) => a + (r.stats?.dropped ?? 0), 0);
    const steady = rs.reduce((a, r) => a + r.droppedSteady, 0);
    const delivery = v === "none" ? "-" : `${published} / ${written}`;
    const drops = v === "none" ? "-" : `${dropped - steady}, ${steady}`;
    console.log(`| ${v} | ${cpu.toFixed(2)} | ${v === "none" ? "-" : extra.toFixed(2)} | ${v === "none" ? "-" : `${((extra * FPS) / 10).toFixed(1)} %`} | ${delivery} | ${drops} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
