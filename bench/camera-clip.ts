// The camera-like clip the network benchmarks send: a moving pattern with sensor noise,
// 1280x720 MJPEG at q 4 (~210 KB, ~150 datagrams a frame, ~50 Mbit/s at 30 fps), four
// seconds long, looped by the server (--loop).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";

const SECONDS = 4;

/** Writes the clip into `dir` as noise.avi; its path and mean kB per frame. */
export function cameraClip(dir: string, fps: number): { path: string; kbPerFrame: number } {
  const path = join(dir, "noise.avi");
  const ff = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=1280x720:rate=${fps},noise=alls=12:allf=t`, "-t", String(SECONDS), "-c:v", "mjpeg", "-q:v", "4", path]);
  if (ff.exitCode !== 0) throw new Error(`ffmpeg could not make the noise clip: ${ff.stderr.toString()}`);
  return { path, kbPerFrame: readFileSync(path).length / (SECONDS * fps) / 1000 };
}
