import { resolveFfmpeg } from "../../lib/media/ffmpeg.ts";

/**
 * Finding the test beep (1 kHz for 100 ms at each whole second of capture time) in decoded
 * sound: ffmpeg decodes whatever it is given (a file, or bytes on its stdin) to 48 kHz mono,
 * and the onsets are where the level rises after a quiet stretch.
 */

const RATE = 48_000;
/** Level windows, samples (5 ms). */
const WINDOW = 240;
/** RMS (of full scale 1) above which a window is sound; the beep is at 0.5 amplitude, ~0.35 RMS. */
const LOUD = 0.05;
/** Quiet needed before a rise counts as a new onset, s. */
const QUIET_BEFORE_S = 0.3;

/** The first audio stream of `input` (a path, or bytes piped in) as 48 kHz mono samples in [-1, 1]. */
export async function decodeMono(input: string | Uint8Array, extraInputArgs: string[] = []): Promise<Float32Array> {
  const proc = Bun.spawn([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", ...extraInputArgs,
    "-i", typeof input === "string" ? input : "pipe:0", "-map", "0:a:0", "-ac", "1", "-ar", String(RATE), "-f", "f32le", "pipe:1",
  ], { stdin: typeof input === "string" ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
  if (typeof input !== "string") {
    proc.stdin!.write(input);
    proc.stdin!.end();
  }
  const [bytes, stderr, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`ffmpeg could not decode the sound (exit ${code}): ${stderr.trim()}`);
  return new Float32Array(bytes, 0, Math.floor(bytes.byteLength / 4));
}

/** A beep heard: when it starts and how long it lasts, s from the start of the samples. */
export interface Beep {
  at: number;
  seconds: number;
}

/** Every beep in `samples` (48 kHz mono). */
export function findBeeps(samples: Float32Array): Beep[] {
  const beeps: Beep[] = [];
  let quiet = Infinity;
  let current: Beep | null = null;
  for (let w = 0; (w + 1) * WINDOW <= samples.length; w++) {
    let sq = 0;
    for (let i = w * WINDOW; i < (w + 1) * WINDOW; i++) sq += samples[i]! * samples[i]!;
    const loud = Math.sqrt(sq / WINDOW) > LOUD;
    const t = (w * WINDOW) / RATE;
    if (loud) {
      if (!current && quiet * (WINDOW / RATE) >= QUIET_BEFORE_S) {
        current = { at: t, seconds: 0 };
        beeps.push(current);
      }
      if (current) current.seconds = t + WINDOW / RATE - current.at;
      quiet = 0;
    } else {
      quiet++;
      if (quiet * (WINDOW / RATE) >= 0.02) current = null;
    }
  }
  return beeps;
}
