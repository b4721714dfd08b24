import { readdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { uptime } from "node:os";
import { join } from "node:path";

/**
 * Each writer marks the output folder it records into with `.lancam-<pid>-<n>.lock`, so that a
 * writer opening later knows whose `.partial` files are still being written: repairing one of
 * them would cut a live recording in two.
 */

const LOCK_RE = /^\.lancam-(\d+)-(\d+)\.lock$/;

/** One writer's mark on its output folder. */
export interface OutDirLock {
  lockPath: string;
  /**
   * Pids of the other live writers into this folder, one entry per writer; this process's pid
   * when another writer in it holds a lock.
   */
  otherPids: number[];
  /** Removes the mark (at close). */
  release: () => void;
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

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/**
 * Marks `outDir` as written by one more writer and reports the other live writers into it,
 * whose partial files must not be "recovered" under them. Locks of dead processes, or from
 * before the last boot, are removed.
 */
export function claimOutDir(outDir: string): OutDirLock {
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
    else otherPids.push(pid);
  }
  const lockPath = join(outDir, `.lancam-${process.pid}-${++lockCounter}.lock`);
  writeFileSync(lockPath, `${process.pid}\n`);
  return { lockPath, otherPids, release: () => rmQuiet(lockPath) };
}
