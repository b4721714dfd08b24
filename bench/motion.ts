// Motion (the C daemon, Debian's `motion`) as the benchmark's yardstick: installed on
// demand, configured to stream a file over HTTP MJPEG the way lancam streams it, and
// watched through a small preloaded library that notes when Motion reads each frame,
// since Motion's stream carries no capture time (latency needs one).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnChild, type Child } from "../tests/helpers/process.ts";

/** The motion binary, installed with apt-get when missing (as root; otherwise says how). */
export function ensureMotion(): string {
  const found = Bun.which("motion");
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error("motion is not installed: sudo apt-get install -y motion");
  console.error("installing Debian's motion (apt-get install -y motion)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let p = Bun.spawnSync(["apt-get", "install", "-y", "-q", "motion"], { env });
  if (p.exitCode !== 0) {
    Bun.spawnSync(["apt-get", "update", "-q"], { env });
    p = Bun.spawnSync(["apt-get", "install", "-y", "-q", "motion"], { env });
  }
  if (p.exitCode !== 0) throw new Error(`apt-get install motion failed: ${p.stderr.toString()}`);
  const path = Bun.which("motion");
  if (!path) throw new Error("motion installed but not on PATH");
  return path;
}

// Interposes av_read_frame (Motion's netcam thread reads every file frame through it)
// and writes "pts wall-clock-µs" per packet. One line per frame: noise next to a decode.
const READ_LOG_C = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <libavformat/avformat.h>

static int (*real_read)(AVFormatContext *, AVPacket *);
static FILE *out;

int av_read_frame(AVFormatContext *s, AVPacket *pkt) {
  if (!real_read) {
    real_read = (int (*)(AVFormatContext *, AVPacket *))dlsym(RTLD_NEXT, "av_read_frame");
    const char *path = getenv("LANCAM_READ_LOG");
    if (path) out = fopen(path, "w");
  }
  int r = real_read(s, pkt);
  if (r >= 0 && out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(out, "%lld %lld\\n", (long long)pkt->pts, (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000);
    fflush(out);
  }
  return r;
}
`;

/** Compiles the read-time library into `dir`; needs a C compiler and libavformat-dev's headers. */
export function buildReadLog(dir: string): string {
  const src = join(dir, "read-log.c");
  const lib = join(dir, "read-log.so");
  writeFileSync(src, READ_LOG_C);
  const cc = Bun.which("cc") ?? Bun.which("gcc");
  if (!cc) throw new Error("no C compiler for the read-time library: sudo apt-get install gcc");
  const p = Bun.spawnSync([cc, "-O2", "-shared", "-fPIC", "-o", lib, src, "-ldl"]);
  if (p.exitCode !== 0) throw new Error(`cannot build the read-time library (needs libavformat-dev): ${p.stderr.toString()}`);
  return lib;
}

/** What the Motion instance streams and how. */
export interface MotionOptions {
  dir: string;
  file: string;
  width: number;
  height: number;
  fps: number;
  quality: number;
  port: number;
  readLog: string;
}

/** A running Motion streaming `file` on `port`. */
export interface MotionRun extends AsyncDisposable {
  child: Child;
  /** Where each packet's read time goes. */
  readTimes: string;
}

/**
 * Starts Motion on `file` (netcam_url file://, read at `fps`), streaming MJPEG at
 * `quality` on 127.0.0.1:`port`; resolves once the stream port takes connections.
 * Motion's motion detection stays on (it cannot be switched off), as in any install;
 * recording and text overlays are off.
 */
export async function startMotion(o: MotionOptions): Promise<MotionRun> {
  const conf = join(o.dir, "motion.conf");
  const readTimes = join(o.dir, "read-times.txt");
  writeFileSync(conf, [
    "daemon off", "setup_mode off", "log_level 5", `log_file ${join(o.dir, "motion.log")}`, `target_dir ${o.dir}`,
    `netcam_url file://${o.file}`, `netcam_params capture_rate=${o.fps}`,
    `width ${o.width}`, `height ${o.height}`, `framerate ${o.fps}`,
    'text_left ""', 'text_right ""', "emulate_motion off", "picture_output off", "movie_output off",
    "webcontrol_port 0", `stream_port ${o.port}`, "stream_localhost on", `stream_quality ${o.quality}`,
    `stream_maxrate ${o.fps}`, "stream_motion off", "stream_auth_method 0", "",
  ].join("\n"));
  const child = spawnChild(["motion", "-n", "-c", conf], { LD_PRELOAD: o.readLog, LANCAM_READ_LOG: readTimes });
  const deadline = performance.now() + 15_000;
  for (;;) {
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: o.port, socket: { data() {} } });
      s.end();
      break;
    } catch {
      if (child.proc.exitCode !== null) throw new Error(`motion exited: ${child.stderr()}`);
      if (performance.now() > deadline) throw new Error(`motion did not open port ${o.port}: ${child.stderr()}`);
      await Bun.sleep(100);
    }
  }
  return {
    child,
    readTimes,
    async [Symbol.asyncDispose]() {
      if (child.proc.exitCode === null) {
        child.proc.kill("SIGTERM");
        const done = await Promise.race([child.exited.then(() => true), Bun.sleep(5000).then(() => false)]);
        if (!done) child.proc.kill("SIGKILL");
      }
      await child[Symbol.asyncDispose]();
    },
  };
}

/** When Motion read each packet: per pts (the frame number in a 1/fps time base), the read times in µs, ascending. */
export function readPacketTimes(path: string): Map<number, number[]> {
  const out = new Map<number, number[]>();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const [pts, at] = line.split(" ").map(Number);
    if (!Number.isFinite(pts) || !Number.isFinite(at)) continue;
    const list = out.get(pts!) ?? [];
    list.push(at!);
    out.set(pts!, list);
  }
  return out;
}
