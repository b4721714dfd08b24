import { existsSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { uptime } from "node:os";
import { join } from "node:path";
import { probeVideo } from "./ffprobe.ts";
import type { Logger } from "../app/log.ts";
import { FFMPEG_FORMAT, finalPathFor, isDateDirName, parseSegmentPath, PARTIAL_SUFFIX } from "./segment-naming.ts";

/**
 * Turns `.partial` files (left by `kill -9`, a crash, or an ffmpeg that died) into finished
 * segments: remux with `-c copy` into a temporary file, check it with ffprobe, rename it to the
 * finished name. A partial that holds nothing readable is removed with a warning.
 */

/** Suffix of the remux output while it is being written; a leftover one is garbage. */
export const REPAIR_SUFFIX = ".repair";
const LOCK_RE = /^\.lancam-(\d+)-(\d+)\.lock$/;

/** Partials being written by writers in this process: never touched by recovery. */
export const activePartials = new Set<string>();

/** How one partial file was handled. */
export interface RecoveryResult {
  partial: string;
  /** recovered: `path` is a finished segment; removed: nothing readable; failed: left in place. */
  action: "recovered" | "removed" | "failed";
  path: string | null;
  frames: number;
  durationSec: number | null;
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
  let days: string[];
  try {
    days = await readdir(outDir);
  } catch {
    return found;
  }
  for (const day of days.filter(isDateDirName).sort()) {
    let names: string[];
    try {
      names = await readdir(join(outDir, day));
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      const path = join(outDir, day, name);
      if (name.startsWith(".") && name.endsWith(PARTIAL_SUFFIX + REPAIR_SUFFIX)) {
        rmQuiet(path); // a repair interrupted by another crash; its partial is still there
        continue;
      }
      const parsed = parseSegmentPath(path);
      if (parsed?.partial && !activePartials.has(path)) found.push(path);
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

/** Repairs one partial file into a finished segment, or removes it if it holds nothing readable. */
export async function recoverPartial(partial: string, opts: RecoveryOptions): Promise<RecoveryResult> {
  const { log } = opts;
  const parsed = parseSegmentPath(partial);
  const fail = (message: string, fields: Record<string, string | number>): RecoveryResult => {
    log.error(message, { partial, ...fields });
    return { partial, action: "failed", path: null, frames: 0, durationSec: null };
  };
  const remove = (why: string): RecoveryResult => {
    rmQuiet(partial);
    log.warn("removed partial segment with nothing readable", { partial, why });
    return { partial, action: "removed", path: null, frames: 0, durationSec: null };
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
      "-map", "0:v:0", "-c", "copy", "-f", format, "-y", temp,
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
    const path = finalPathFor(partial, existsSync);
    renameSync(temp, path);
    rmQuiet(partial);
    log.info("recovered partial segment", { partial, path, frames, duration: durationSec?.toFixed(3) });
    return { partial, action: "recovered", path, frames, durationSec };
  } catch (err) {
    rmQuiet(temp);
    return fail("cannot rename repaired segment", { error: String(err) });
  }
}

/** Recovers every partial under `outDir` not being written by a live writer. */
export async function recoverPartials(outDir: string, opts: RecoveryOptions): Promise<RecoveryResult[]> {
  const results: RecoveryResult[] = [];
  for (const partial of await findPartials(outDir)) results.push(await recoverPartial(partial, opts));
  return results;
}

let lockCounter = 0;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Marks `outDir` as written by this writer (`.lancam-<pid>-<n>.lock`) and reports other live
 * processes writing into it, whose partial files must not be "recovered" under them. Locks of dead
 * processes, or from before the last boot, are removed.
 */
export function claimOutDir(outDir: string): { lockPath: string; otherPids: number[]; release: () => void } {
  const bootMs = Date.now() - uptime() * 1000;
  const otherPids: number[] = [];
  for (const name of readdirSync(outDir)) {
    const m = LOCK_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const path = join(outDir, name);
    let stale = !alive(pid);
    try {
      if (statSync(path).mtimeMs < bootMs - 60_000) stale = true;
    } catch {
      continue;
    }
    if (stale) rmQuiet(path);
    else if (pid !== process.pid) otherPids.push(pid);
  }
  const lockPath = join(outDir, `.lancam-${process.pid}-${++lockCounter}.lock`);
  writeFileSync(lockPath, `${process.pid}\n`);
  return { lockPath, otherPids, release: () => rmQuiet(lockPath) };
}
