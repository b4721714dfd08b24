// What --overlay adds per frame, in-process, no sockets: the text filled in
// (formatOverlay) and the box drawn (the addon's drawOverlay, on packed BGR as the
// decode-and-encode path has it, and on I420 planes as the raw YUV path does), set
// against the JPEG encode every such frame costs anyway. Then the two ways a frame
// leaves with the overlay through a real capture of a file (readHeld + encodeHeld
// against readJpeg / readYuvJpeg), and what a source's own JPEG costs with it
// (overlayJpeg: decode, draw, encode, where it would otherwise pass through).
//   bun bench/overlay.ts [--frames 300]
import mri from "mri";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, hostname, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { formatOverlay } from "../lib/capture/overlay-text.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { cv, type OverlaySpec } from "../lib/native/cv.ts";
import { nowMicros } from "../lib/wire/frame.ts";

const args = mri(process.argv.slice(2), { string: ["frames"] });
const frames = Number(args.frames ?? 300);
const TEMPLATE = "{host} cam {camera} %F %T #{frame}";
const QUALITY = 80;
const RUNS = 7;

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median µs per call of each function over RUNS runs of `frames` calls: wall time, and
 * CPU time of the whole process (every thread: the addon's work runs on worker threads).
 * The runs alternate, so load from elsewhere falls on all functions alike.
 */
async function measure(...fns: (() => unknown)[]): Promise<{ wall: number[]; cpu: number[]; cpuRuns: number[][] }> {
  for (const fn of fns) for (let i = 0; i < 20; i++) await fn();
  const wall: number[][] = fns.map(() => []);
  const cpu: number[][] = fns.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (const [k, fn] of fns.entries()) {
      const c = process.cpuUsage();
      const t = performance.now();
      for (let i = 0; i < frames; i++) await fn();
      wall[k]!.push(((performance.now() - t) / frames) * 1000);
      const used = process.cpuUsage(c);
      cpu[k]!.push((used.user + used.system) / frames);
    }
  }
  return { wall: wall.map(median), cpu: cpu.map(median), cpuRuns: cpu };
}

/** Wall-clock medians, for calls on this thread. */
async function time(...fns: (() => unknown)[]): Promise<number[]> {
  return (await measure(...fns)).wall;
}

/** A camera-like picture (ffmpeg's pattern with sensor noise) as packed BGR, and as I420 planes. */
async function picture(width: number, height: number): Promise<{ bgr: Uint8Array; i420: Uint8Array }> {
  const grab = async (pixFmt: string) => {
    const p = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
      "-i", `testsrc2=size=${width}x${height}:rate=30,noise=alls=12:allf=t`, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", pixFmt, "pipe:1"],
      { stdout: "pipe", stderr: "pipe" });
    const bytes = await new Response(p.stdout).bytes();
    if ((await p.exited) !== 0) throw new Error(`ffmpeg failed: ${await new Response(p.stderr).text()}`);
    return bytes;
  };
  return { bgr: await grab("bgr24"), i420: await grab("yuv420p") };
}

/** A 300-frame clip of the pattern, as MJPEG (`mjpeg`) or raw I420 (`rawvideo`), for a real capture. */
function clip(dir: string, size: string, codec: "mjpeg" | "rawvideo"): string {
  const path = join(dir, `${size}-${codec}.${codec === "mjpeg" ? "avi" : "nut"}`);
  const p = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
    "-i", `testsrc2=size=${size}:rate=30,noise=alls=12:allf=t`, "-frames:v", "300", "-c:v", codec,
    ...(codec === "mjpeg" ? ["-q:v", "4"] : ["-pix_fmt", "yuv420p"]), path]);
  if (p.exitCode !== 0) throw new Error(`ffmpeg failed: ${p.stderr.toString()}`);
  return path;
}

const host = hostname();
let frame = 0;
const text = () => formatOverlay(TEMPLATE, { camera: "0", frame: frame++, host }, nowMicros());

console.log(`# ${frames} frames x ${RUNS} runs (median), ${cpus().length} x ${cpus()[0]?.model}, Bun ${Bun.version}, OpenCV ${cv().opencvVersion}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
console.log(`# overlay: ${JSON.stringify(TEMPLATE)} -> ${JSON.stringify(text())}, top-left`);
console.log("| size | fill in the text µs | draw on BGR µs | draw on I420 µs | format + draw (BGR) µs | JPEG encode of the BGR picture µs | overlay / encode |");
console.log("|---|---|---|---|---|---|---|");
for (const [width, height] of [[1280, 720], [1920, 1080]] as const) {
  const { bgr, i420 } = await picture(width, height);
  const spec = (): OverlaySpec => ({ text: text(), position: "top-left" });
  const [fill, drawBgr, drawI420, both, encode] = await time(
    () => text(),
    () => cv().drawOverlay(bgr, width, height, "bgr", { text: "lab-pc cam 0 2026-12-07 05:53:37 #123456", position: "top-left" }),
    () => cv().drawOverlay(i420, width, height, "i420", { text: "lab-pc cam 0 2026-12-07 05:53:37 #123456", position: "top-left" }),
    () => cv().drawOverlay(bgr, width, height, "bgr", spec()),
    () => cv().encodeJpeg(bgr, width, height, QUALITY),
  );
  console.log(`| ${width}x${height} | ${fill!.toFixed(1)} | ${drawBgr!.toFixed(1)} | ${drawI420!.toFixed(1)} | ${both!.toFixed(1)} | ${encode!.toFixed(0)} | ${((both! / encode!) * 100).toFixed(1)} % |`);
}

const dir = mkdtempSync(join(tmpdir(), "lancam-bench-overlay-"));
try {
  console.log("");
  console.log("| 1280x720 file, through a capture: CPU µs/frame, all threads (wall) | without overlay | with overlay | added | spread of the runs without (2nd to 6th of 7) |");
  console.log("|---|---|---|---|---|");
  const row = (what: string, m: { wall: number[]; cpu: number[]; cpuRuns: number[][] }) => {
    const [a, b] = m.cpu as [number, number];
    const [wa, wb] = m.wall as [number, number];
    const runs = m.cpuRuns[0]!;
    console.log(`| ${what} | ${a.toFixed(0)} (${wa.toFixed(0)}) | ${b.toFixed(0)} (${wb.toFixed(0)}) | ${(b - a).toFixed(0)} (${(wb - wa).toFixed(0)}) | ${runs[1]!.toFixed(0)}-${runs[RUNS - 2]!.toFixed(0)} |`);
  };
  const overlay = (): OverlaySpec => ({ text: text(), position: "top-left" });
  // Each loop reads the clip from the start: 300 frames, then reopened.
  const reader = async (path: string, raw: boolean) => {
    const cap = new (cv().Capture)();
    const open = async () => {
      if (!(await cap.open(path, "ffmpeg"))) throw new Error(`cannot open ${path}`);
      if (raw && !cap.setRawPackets()) throw new Error("no raw packets");
    };
    await open();
    return {
      cap,
      async again<T>(read: () => Promise<T | null>): Promise<T> {
        const r = await read();
        if (r !== null) return r;
        cap.release();
        await open();
        return (await read())!;
      },
    };
  };
  const mjpeg = clip(dir, "1280x720", "mjpeg");
  const raw = clip(dir, "1280x720", "rawvideo");
  {
    const plain = await reader(mjpeg, false);
    const held = await reader(mjpeg, false);
    row("MJPEG decoded by OpenCV, encoded (readJpeg; readHeld + encodeHeld)", await measure(
      () => plain.again(() => plain.cap.readJpeg(QUALITY)),
      async () => {
        await held.again(() => held.cap.readHeld());
        return held.cap.encodeHeld(QUALITY, overlay());
      },
    ));
  }
  {
    const plain = await reader(raw, true);
    const held = await reader(raw, true);
    const yuv = { layout: "i420", width: 1280, height: 720 } as const;
    row("raw I420 encoded from its planes (readYuvJpeg; readHeld + encodeHeld)", await measure(
      () => plain.again(() => plain.cap.readYuvJpeg("i420", 1280, 720, QUALITY)),
      async () => {
        await held.again(() => held.cap.readHeld());
        return held.cap.encodeHeld(QUALITY, overlay(), yuv);
      },
    ));
  }
  {
    const source = await reader(mjpeg, true);
    const packets: Uint8Array[] = [];
    for (let i = 0; i < 30; i++) packets.push((await source.cap.readPacket())!.packet);
    let k = 0;
    row("the source's own JPEG (passed through; overlayJpeg: decode, draw, encode)", await measure(
      () => packets[k++ % packets.length],
      () => cv().overlayJpeg(packets[k++ % packets.length]!, overlay(), QUALITY),
    ));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
