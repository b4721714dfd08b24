import { stat } from "node:fs/promises";
import { rmdirSync, statfsSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../log/format.ts";
import { OpenPartials } from "./open-partials.ts";
import { scanDateFolders } from "./segment-scan.ts";

/** One finished segment on disk. */
export interface SegmentFile {
  path: string;
  size: number;
  /** Start time, ms since the epoch: from the file name, else the file's mtime. */
  startedAtMs: number;
}

/** Limits on what is kept; each is off when undefined. */
export interface RetentionPolicy {
  keepDays?: number;
  maxBytes?: number;
  minFreeBytes?: number;
}

/** A segment to delete and why. */
export interface Deletion {
  path: string;
  size: number;
  reason: string;
}

const DAY_MS = 86_400_000;

/** Bytes as `1.5G`, `300M`, `12K` (binary units, as the flags take them). */
export function formatBytes(n: number): string {
  const units = ["", "K", "M", "G", "T"];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)}${units[i]}`;
}

/**
 * Which finished segments to delete, oldest first: those started more than `keepDays` ago, then
 * the oldest until the total is within `maxBytes`, then the oldest until `freeBytes` (plus what
 * the earlier deletions free) reaches `minFreeBytes`. The caller passes only finished segments,
 * so the open segment and partial files are never candidates.
 */
export function planDeletions(segments: readonly SegmentFile[], policy: RetentionPolicy, nowMs: number, freeBytes: number): Deletion[] {
  const sorted = [...segments].sort((a, b) => a.startedAtMs - b.startedAtMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const out: Deletion[] = [];
  let i = 0;
  let free = freeBytes;
  let total = sorted.reduce((sum, s) => sum + s.size, 0);
  const take = (s: SegmentFile, reason: string) => {
    out.push({ path: s.path, size: s.size, reason });
    total -= s.size;
    free += s.size;
    i++;
  };
  if (policy.keepDays !== undefined) {
    const cutoff = nowMs - policy.keepDays * DAY_MS;
    while (i < sorted.length && sorted[i]!.startedAtMs < cutoff) {
      take(sorted[i]!, `older than ${policy.keepDays} days`);
    }
  }
  if (policy.maxBytes !== undefined) {
    while (i < sorted.length && total > policy.maxBytes) {
      take(sorted[i]!, `recordings total ${formatBytes(total)} over max size ${formatBytes(policy.maxBytes)}`);
    }
  }
  if (policy.minFreeBytes !== undefined) {
    while (i < sorted.length && free < policy.minFreeBytes) {
      take(sorted[i]!, `free space ${formatBytes(free)} under min free ${formatBytes(policy.minFreeBytes)}`);
    }
  }
  return out;
}

/** Finished segments under `outDir` (`<date>/<HH-MM-SS>[-N].<ext>`); partials and other files are ignored. */
export async function scanSegments(outDir: string): Promise<SegmentFile[]> {
  const found: SegmentFile[] = [];
  for (const { path, segment } of await scanDateFolders(outDir)) {
    if (!segment || segment.partial) continue;
    try {
      const st = await stat(path);
      if (st.isFile()) found.push({ path, size: st.size, startedAtMs: Number.isFinite(segment.startedAtMs) ? segment.startedAtMs : st.mtimeMs });
    } catch {
      // vanished between readdir and stat
    }
  }
  return found;
}

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
export function freeBytesAt(dir: string): number {
  const st = statfsSync(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/** What the retention wrapper needs from the outside (injected in tests). */
export interface RetentionEnv {
  now: () => number;
  freeBytes: (dir: string) => number;
}

/**
 * Keeps the list of finished segments under one output folder and deletes the oldest when a limit
 * is exceeded. Deletions are synchronous so that removing an emptied date folder cannot race the
 * writer creating a new segment in it.
 */
export class Retention {
  readonly #files = new Map<string, SegmentFile>();

  private constructor(
    readonly outDir: string,
    readonly policy: RetentionPolicy,
    readonly log: Logger,
    readonly env: RetentionEnv,
    /** The writer's unfinished segments: nothing newer than the oldest of them is deleted first. */
    readonly open: OpenPartials,
  ) {}

  /** True when any limit is set. */
  get active(): boolean {
    const p = this.policy;
    return p.keepDays !== undefined || p.maxBytes !== undefined || p.minFreeBytes !== undefined;
  }

  /**
   * Loads the finished segments under `outDir` (skipped when no limit is set). `open` is the
   * writer's set of unfinished segments, consulted at each enforce().
   */
  static async load(
    outDir: string,
    policy: RetentionPolicy,
    log: Logger,
    env: Partial<RetentionEnv> = {},
    open: OpenPartials = new OpenPartials(),
  ): Promise<Retention> {
    const r = new Retention(outDir, policy, log, { now: env.now ?? Date.now, freeBytes: env.freeBytes ?? freeBytesAt }, open);
    if (r.active) for (const f of await scanSegments(outDir)) r.#files.set(f.path, f);
    return r;
  }

  /** Records a newly finished segment. */
  add(file: SegmentFile): void {
    if (this.active) this.#files.set(file.path, file);
  }

  /** The segments currently known, oldest first. */
  get files(): SegmentFile[] {
    return [...this.#files.values()].sort((a, b) => a.startedAtMs - b.startedAtMs);
  }

  /** Deletes what the policy says must go, logging each deletion with its reason. */
  enforce(): Deletion[] {
    if (!this.active) return [];
    let free = Number.POSITIVE_INFINITY;
    if (this.policy.minFreeBytes !== undefined) {
      try {
        free = this.env.freeBytes(this.outDir);
      } catch (err) {
        this.log.warn("cannot read free space; --min-free not applied", { dir: this.outDir, error: String(err) });
      }
    }
    // Oldest first means oldest first: while an older segment is still being finished,
    // nothing newer than it is deleted (the next enforce, once it is finished, goes on).
    const floor = this.open.oldestStartMs();
    const full = planDeletions([...this.#files.values()], this.policy, this.env.now(), free);
    const blocked = full.findIndex((d) => (this.#files.get(d.path)?.startedAtMs ?? 0) >= floor);
    const plan = blocked < 0 ? full : full.slice(0, blocked);
    const touched = new Set<string>();
    for (const d of plan) {
      this.#files.delete(d.path);
      try {
        unlinkSync(d.path);
        this.log.info("deleted segment", { path: d.path, size: d.size, reason: d.reason });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOENT") this.log.error("cannot delete segment", { path: d.path, reason: d.reason, error: String(err) });
      }
      touched.add(dirname(d.path));
    }
    for (const dir of touched) {
      try {
        rmdirSync(dir); // fails unless empty, which is what we want
        this.log.info("removed empty date folder", { dir });
      } catch {
        // not empty
      }
    }
    const freeAfter = free + plan.reduce((sum, d) => sum + d.size, 0);
    if (this.policy.minFreeBytes !== undefined && freeAfter < this.policy.minFreeBytes) {
      this.log.warn("free space stays under min free with no finished segment left to delete", {
        dir: this.outDir,
        free: formatBytes(freeAfter),
        minFree: formatBytes(this.policy.minFreeBytes),
      });
    }
    return plan;
  }
}
