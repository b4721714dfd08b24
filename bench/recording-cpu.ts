// Recording cost per frame, side by side:
//   copy  lancam's SegmentWriter: MJPEG frames stream-copied into AVI segments by ffmpeg
//   xvid  what the classroom program did: decode every JPEG and re-encode it to XVID
//         (MPEG-4 Part 2 with the XVID tag, as cv2.VideoWriter('XVID') does)
// Each variant runs as its own child process reading the same pre-generated frames;
// its CPU is the child's rusage, which includes the ffmpeg it waited for.
//   bun bench/recording-cpu.ts [--frames 300] [--sizes 640x480,1280x720] [--runs 3]
import mri from "mri";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { SegmentWriter } from "../lib/record/segment-writer.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["frames", "sizes", "runs", "variant", "input", "out", "fps"] });
const FPS = 30;

/** Child mode: record the frames in `--input` one way and exit. */
async function child(variant: string, input: string, out: string): Promise<void> {
  const frames = splitJpegs(new Uint8Array(await Bun.file(input).arrayBuffer()));
  const ffmpeg = resolveFfmpeg().path;
  const t0 = Date.now() * 1000;
  const [width, height] = (/(\d+)x(\d+)\.mjpeg$/.exec(input) ?? []).slice(1).map(Number);
  if (variant === "copy") {
    const writer = await SegmentWriter.open({ dir: out, segmentSeconds: 5, container: "avi", fps: FPS, log: silentLogger, ffmpegPath: ffmpeg });
    for (const [i, jpeg] of frames.entries()) {
      // Never drop here: the benchmark measures the cost of every frame written.
      await writer.whenWritable();
      writer.write({ seq: i, capturedAt: t0 + Math.round((i * 1e6) / FPS), width: width!, height: height!, jpeg });
    }
    await writer.close();
    if (writer.stats.framesWritten !== frames.length) throw new Error(`copy wrote ${writer.stats.framesWritten} of ${frames.length}`);
  } else if (variant === "xvid") {
    const proc = Bun.spawn(
      [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "mjpeg", "-framerate", String(FPS), "-i", "pipe:0",
        "-c:v", "mpeg4", "-vtag", "xvid", "-q:v", "5", "-threads", "1", "-f", "avi", "-y", join(out, "xvid.avi")],
      { stdin: "pipe", stdout: "ignore", stderr: "inherit" },
    );
    for (const jpeg of frames) await proc.stdin.write(jpeg);
    await proc.stdin.end();
    if ((await proc.exited) !== 0) throw new Error("ffmpeg xvid encode failed");
  } else {
    throw new Error(`unknown variant ${variant}`);
  }
}

async function makeFrames(size: string, count: number, path: string): Promise<number> {
  // Sensor-like noise makes camera-sized JPEGs (the plain test pattern compresses far better).
  const proc = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=${size}:rate=${FPS},noise=alls=12:allf=t`, "-frames:v", String(count), "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", path]);
  if (proc.exitCode !== 0) throw new Error(proc.stderr.toString());
  return Bun.file(path).size / count;
}

async function measure(variant: string, input: string): Promise<{ cpuMs: number; wallMs: number }> {
  const out = mkdtempSync(join(tmpdir(), `lancam-rec-${variant}-`));
  try {
    const t = performance.now();
    const proc = Bun.spawn([process.execPath, import.meta.path, "--variant", variant, "--input", input, "--out", out], { stdout: "inherit", stderr: "inherit" });
    if ((await proc.exited) !== 0) throw new Error(`${variant} child failed`);
    const wallMs = performance.now() - t;
    const ru = proc.resourceUsage();
    if (!ru) throw new Error("no resource usage");
    return { cpuMs: (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1000, wallMs };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The same child doing nothing but reading and splitting the frames: the floor both share. */
async function baseline(input: string): Promise<number> {
  const proc = Bun.spawn([process.execPath, "-e", `const {splitJpegs}=await import(${JSON.stringify(join(import.meta.dir, "../tests/helpers/jpeg-frames.ts"))}); splitJpegs(new Uint8Array(await Bun.file(${JSON.stringify(input)}).arrayBuffer()));`]);
  await proc.exited;
  const ru = proc.resourceUsage()!;
  return (Number(ru.cpuTime.user) + Number(ru.cpuTime.system)) / 1000;
}

if (args.variant) {
  await child(String(args.variant), String(args.input), String(args.out));
  process.exit(0);
}

const count = Number(args.frames ?? 300);
const sizes = String(args.sizes ?? "640x480,1280x720").split(",");
const runs = Number(args.runs ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`# recording CPU per frame: ${count} frames per run, median of ${runs} runs, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
console.log("| size | JPEG KB/frame | stream copy (lancam) ms CPU/frame | re-encode to XVID (classroom) ms CPU/frame | XVID / copy |");
console.log("|---|---|---|---|---|");
const work = mkdtempSync(join(tmpdir(), "lancam-rec-bench-"));
try {
  for (const size of sizes) {
    const input = join(work, `${size}.mjpeg`);
    const kb = (await makeFrames(size, count, input)) / 1024;
    const floor = median(await Promise.all([baseline(input)]));
    const copy: number[] = [];
    const xvid: number[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternate the two so drift in machine speed hits both alike.
      copy.push(((await measure("copy", input)).cpuMs - floor) / count);
      xvid.push(((await measure("xvid", input)).cpuMs - floor) / count);
    }
    const c = median(copy);
    const x = median(xvid);
    console.log(`| ${size} | ${kb.toFixed(0)} | ${c.toFixed(2)} | ${x.toFixed(2)} | ${(x / c).toFixed(1)}x |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
