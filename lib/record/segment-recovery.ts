import { existsSync, renameSync, statSync, unlinkSync } from "node:fs";
import { resolveFfprobe } from "../media/ffmpeg.ts";
import { probeVideo } from "../media/ffprobe.ts";
import type { Logger } from "../log/format.ts";
import { FFMPEG_FORMAT, finalPathFor, parseSegmentPath, PARTIAL_SUFFIX } from "./segment-naming.ts";
import { scanDateFolders } from "./segment-scan.ts";

/**
 * Turns `.partial` files (left by `kill -9`, a crash, or an ffmpeg that died) into finished
 * segments: remux with `-c copy` into a temporary file, check it with ffprobe, rename it to the
 * finished name. A partial that holds nothing readable is removed with a warning. The audio track
 * (Opus in Matroska, PCM in AVI), when there is one, is copied along with the video.
 */

/** Suffix of the remux output while it is being written; a leftover one is garbage. */
export const REPAIR_SUFFIX = ".repair";

/** How one partial file was handled. */
export interface RecoveryResult {
  partial: string;
  /** recovered: `path` is a finished segment; removed: nothing readable; failed: left in place. */
  action: "recovered" | "removed" | "failed";
  path: string | null;
  frames: number;
  durationSec: number | null;
  /** The codec of the audio track kept (e.g. `opus`, `pcm_s16le`), or null when there is none. */
  audio: string | null;
}

/** What recovery needs. */
export interface RecoveryOptions {
  ffmpegPath: string;
  ffprobePath?: string;
  log: Logger;
}

/** `.partial` files under `<out>/<date>/`, oldest name first; leftover repair outputs are deleted. */
export async function findPartials(outDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const { path, name, segment } of await scanDateFolders(outDir)) {
    if (name.startsWith(".") && name.endsWith(PARTIAL_SUFFIX + REPAIR_SUFFIX)) {
      rmQuiet(path); // a repair interrupted by another crash; its partial is still there
    } else if (segment?.partial) {
      found.push(path);
    }
  }
  return found;
}

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn(args, { stdin: "ignore", stdout: "ignore", stderr: "pipe", detached: true }); // not stopped by the terminal's Ctrl-C
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr };
}

/** The codec of the first audio stream of `path`, or null when it has none (or ffprobe is missing). */
async function probeAudioCodec(path: string, ffprobePath: string | undefined): Promise<string | null> {
  try {
    const proc = Bun.spawn([ffprobePath ?? resolveFfprobe(), "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path], {
      stdin: "ignore", stdout: "pipe", stderr: "ignore",
    });
    const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    return out.trim() || null;
  } catch {
    return null;
  }
}

/** Repairs one partial file into a finished segment, or removes it if it holds nothing readable. */
export async function recoverPartial(partial: string, opts: RecoveryOptions): Promise<RecoveryResult> {
  const { log } = opts;
  const parsed = parseSegmentPath(partial);
  const fail = (message: string, fields: Record<string, string | number>): RecoveryResult => {
    log.error(message, { partial, ...fields });
    return { partial, action: "failed", path: null, frames: 0, durationSec: null, audio: null };
  };
  const remove = (why: string): RecoveryResult => {
    rmQuiet(partial);
    log.warn("removed partial segment with nothing readable", { partial, why });
    return { partial, action: "removed", path: null, frames: 0, durationSec: null, audio: null };
  };
  if (!parsed?.partial) return fail("not a partial segment name", {});
  let size: number;
  try {
    size = statSync(partial).size;
  } catch (err) {
    return fail("cannot read partial segment", { error: String(err) });
  }
  if (size === 0) return remove("empty file");

  const format = FFMPEG_FORMAT[parsed.container];
  const temp = partial + REPAIR_SUFFIX;
  // An AVI cut short has no index: packets are read in file order and need generated timestamps.
  // A frame cut off mid-write is dropped rather than copied as a broken picture.
  const fflags = parsed.container === "avi" ? "+genpts+discardcorrupt" : "+discardcorrupt";
  let remux: { code: number; stderr: string };
  try {
    remux = await run([
      opts.ffmpegPath, "-hide_banner", "-nostdin", "-loglevel", "error",
      "-fflags", fflags, "-f", format, "-i", partial,
      "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-f", format, "-y", temp,
    ]);
  } catch (err) {
    return fail("cannot run ffmpeg to repair partial segment", { error: String(err) });
  }
  let frames = 0;
  let durationSec: number | null = null;
  if (existsSync(temp)) {
    try {
      const probe = await probeVideo(temp, { ffprobePath: opts.ffprobePath });
      frames = probe.frames ?? 0;
      durationSec = probe.durationSec;
    } catch {
      frames = 0;
    }
  }
  if (frames === 0) {
    rmQuiet(temp);
    const why = remux.stderr.trim().split("\n").slice(-2).join(" | ") || "no frames";
    // The copy failed, but the partial may still hold frames (e.g. the disk is full): keep it for
    // the next open rather than lose them.
    let inPartial = 0;
    try {
      inPartial = (await probeVideo(partial, { ffprobePath: opts.ffprobePath })).frames ?? 0;
    } catch {
      inPartial = 0;
    }
    if (inPartial > 0) return fail("cannot repair partial segment; keeping it for the next start", { frames: inPartial, error: why });
    return remove(why);
  }
  try {
    const audio = await probeAudioCodec(temp, opts.ffprobePath);
    const path = finalPathFor(partial, existsSync);
    renameSync(temp, path);
    rmQuiet(partial);
    log.info("recovered partial segment", { partial, path, frames, duration: durationSec?.toFixed(3), audio: audio ?? undefined });
    return { partial, action: "recovered", path, frames, durationSec, audio };
  } catch (err) {
    rmQuiet(temp);
    return fail("cannot rename repaired segment", { error: String(err) });
  }
}

/**
 * Recovers every partial under `outDir`. Only for a folder no live writer records into (see
 * out-dir-lock.ts): a partial being written looks just like one left by a crash.
 */
export async function recoverPartials(outDir: string, opts: RecoveryOptions): Promise<RecoveryResult[]> {
  const results: RecoveryResult[] = [];
  for (const partial of await findPartials(outDir)) results.push(await recoverPartial(partial, opts));
  return results;
}
