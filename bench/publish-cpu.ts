// What publishing costs the server per frame, at 1280x720 and 30 fps:
//   none     frames written at 30 fps to no publisher (the floor every variant shares)
//   copy     --publish-codec copy: the JPEGs as RTP/JPEG through ffmpeg, no re-encode
//   h264     --publish-codec h264: one ffmpeg decodes each JPEG and encodes it with libx264,
//            another sends the result as RTP/H.264
//   h264 x2  the same to two servers: still one encoder, one more sending ffmpeg
// Each run is a child process driving Publishers in real time; its CPU is the child's rusage,
// which includes the ffmpegs it started and waited for. The receiving RTSP servers (ffmpeg in
// listen mode, discarding what they get) are started by this parent, so their CPU is not counted.
// Frames published and dropped are summed over all runs of a variant.
//   bun bench/publish-cpu.ts [--seconds 10] [--runs 3] [--size 1280x720]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../lib/log/logger.ts";
import { cv } from "../lib/native/cv.ts";
import type { PublisherStats } from "../lib/publish/publisher.ts";
import { Publishers, parsePublishTargets } from "../lib/publish/publishers.ts";
import { parsePublishCodec, type PublishCodec } from "../lib/publish/publish-process.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["seconds", "runs", "size", "variant", "input", "urls"] });
const FPS = 30;
/** Name, codec and number of targets. */
const VARIANTS = [
  { name: "none", codec: "copy", targets: 0 },
  { name: "copy", codec: "copy", targets: 1 },
  { name: "h264", codec: "h264", targets: 1 },
  { name: "h264 x2", codec: "h264", targets: 2 },
] as const;
type Variant = (typeof VARIANTS)[number];

interface ChildReport {
  frames: number;
  /** The first target's. */
  stats: PublisherStats | null;
  /** Dropped after the first two seconds: start-up (encoder, connection, h264: the wait for a keyframe) is over by then. */
  droppedSteady: number;
}

/** Child mode: write the frames of `input` at 30 fps for `seconds` to a publisher per URL (or none). */
async function child(codec: PublishCodec, input: string, urls: string[], seconds: number): Promise<void> {
  const frames = splitJpegs(new Uint8Array(readFileSync(input)));
  const [width, height] = (/(\d+)x(\d+)\.mjpeg$/.exec(input) ?? []).slice(1).map(Number);
  const pubs = urls.length > 0 ? new Publishers({ targets: parsePublishTargets(urls), codec, fps: FPS, log: silentLogger }) : null;
  const count = seconds * FPS;
  const t0 = Date.now() * 1000;
  const start = performance.now();
  let droppedAtStart = 0;
  for (let n = 0; n < count; n++) {
    if (n === 2 * FPS) droppedAtStart = pubs?.stats[0]?.dropped ?? 0;
    const wait = start + (n * 1000) / FPS - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    pubs?.write({ seq: n, capturedAt: t0 + Math.round((n * 1e6) / FPS), width: width!, height: height!, jpeg: frames[n % frames.length]! });
  }
  await pubs?.close();
  const stats = pubs?.stats[0] ?? null;
  const report: ChildReport = { frames: count, stats, droppedSteady: (stats?.dropped ?? 0) - droppedAtStart };
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
  frames: number;
  cpuMsPerFrame: number;
  stats: PublisherStats | null;
  droppedSteady: number;
}

async function measure(variant: Variant, input: string, seconds: number): Promise<Run> {
  const ports = Array.from({ length: variant.targets }, freePort);
  const urls = ports.map((p) => `rtsp://127.0.0.1:${p}/bench`);
  const receivers = urls.map((url) => Bun.spawn(
    [resolveFfmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-rtsp_flags", "listen", "-i", url, "-c", "copy", "-f", "null", "-"],
    { stdout: "ignore", stderr: "inherit" },
  ));
  try {
    const deadline = performance.now() + 10_000;
    while (!ports.every(listening)) {
      if (performance.now() > deadline) throw new Error("a receiver does not listen");
      await Bun.sleep(20);
    }
    const proc = Bun.spawn([process.execPath, import.meta.path, "--variant", variant.codec, "--input", input, "--urls", urls.join(","), "--seconds", String(seconds)], {
      stdout: "pipe", stderr: "inherit",
    });
    const out = await new Response(proc.stdout).text();
    if ((await proc.exited) !== 0) throw new Error(`${variant.name} child failed`);
    const ru = proc.resourceUsage();
    if (!ru) throw new Error("no resource usage");
    const report = JSON.parse(out) as ChildReport;
    const cpuMs = (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1000;
    return { frames: report.frames, cpuMsPerFrame: cpuMs / report.frames, stats: report.stats, droppedSteady: report.droppedSteady };
  } finally {
    // They end by themselves when the publisher ends the session; a leftover is killed.
    await Promise.race([Promise.all(receivers.map((r) => r.exited)), Bun.sleep(3000)]);
    for (const r of receivers) r.kill("SIGKILL");
  }
}

if (args.variant) {
  await child(parsePublishCodec(String(args.variant)), String(args.input), String(args.urls ?? "").split(",").filter(Boolean), Number(args.seconds));
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
  const floor = median(results.get(VARIANTS[0])!.map((r) => r.cpuMsPerFrame));
  console.log(`# publishing CPU per frame: ${size} at ${FPS} fps, ${kb.toFixed(0)} KB JPEGs, ${seconds} s per run, median of ${runs} runs, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
  console.log("| variant | server CPU ms/frame (bun + its ffmpeg) | publishing's share ms/frame | % of one core | frames published / written (first target) | dropped in the first 2 s, after them |");
  console.log("|---|---|---|---|---|---|");
  for (const v of VARIANTS) {
    const rs = results.get(v)!;
    const cpu = median(rs.map((r) => r.cpuMsPerFrame));
    const extra = cpu - floor;
    const published = rs.reduce((a, r) => a + (r.stats?.published ?? 0), 0);
    const written = rs.reduce((a, r) => a + r.frames, 0);
    const dropped = rs.reduce((a, r) => a + (r.stats?.dropped ?? 0), 0);
    const steady = rs.reduce((a, r) => a + r.droppedSteady, 0);
    const none = v.targets === 0;
    const delivery = none ? "-" : `${published} / ${written}`;
    const drops = none ? "-" : `${dropped - steady}, ${steady}`;
    console.log(`| ${v.name} | ${cpu.toFixed(2)} | ${none ? "-" : extra.toFixed(2)} | ${none ? "-" : `${((extra * FPS) / 10).toFixed(1)} %`} | ${delivery} | ${drops} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
