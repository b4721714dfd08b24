import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { OpenPartials } from "../lib/record/open-partials.ts";
import { formatBytes, planDeletions, Retention, scanSegments, type SegmentFile } from "../lib/record/retention.ts";
import { type SegmentInfo, SegmentWriter } from "../lib/record/segment-writer.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-retention-");

const DAY = 86_400_000;
const NOW = new Date(2025, 0, 10, 12, 0, 0).getTime();
const seg = (name: string, ageMs: number, size: number): SegmentFile => ({ path: `/rec/${name}`, size, startedAtMs: NOW - ageMs });

describe("planDeletions", () => {
  test("no limits: nothing to delete", () => {
    expect(planDeletions([seg("a", 100 * DAY, 1e12)], {}, NOW, 0)).toEqual([]);
  });

  test("by age: segments started more than keepDays ago", () => {
    const segments = [seg("d", 0, 10), seg("a", 3 * DAY, 10), seg("c", 2 * DAY - 1, 10), seg("b", 2 * DAY + 1, 10)];
    expect(planDeletions(segments, { keepDays: 2 }, NOW, 0)).toEqual([
      { path: "/rec/a", size: 10, reason: "older than 2 days" },
      { path: "/rec/b", size: 10, reason: "older than 2 days" },
    ]);
    expect(planDeletions(segments, { keepDays: 0.5 }, NOW, 0).map((d) => d.path)).toEqual(["/rec/a", "/rec/b", "/rec/c"]);
  });

  test("by total size: the oldest until the rest fits", () => {
    const segments = [seg("e", 1, 100), seg("b", 4, 100), seg("a", 5, 100), seg("d", 2, 100), seg("c", 3, 100)];
    const plan = planDeletions(segments, { maxBytes: 250 }, NOW, 0);
    expect(plan.map((d) => d.path)).toEqual(["/rec/a", "/rec/b", "/rec/c"]);
    expect(plan[0]!.reason).toBe("recordings total 500 over max size 250");
    expect(plan[2]!.reason).toBe("recordings total 300 over max size 250");
    expect(planDeletions(segments, { maxBytes: 500 }, NOW, 0)).toEqual([]);
  });

  test("by free space: the oldest until enough is free", () => {
    const segments = [seg("c", 1, 100), seg("a", 3, 100), seg("b", 2, 100)];
    const plan = planDeletions(segments, { minFreeBytes: 220 }, NOW, 50);
    expect(plan.map((d) => [d.path, d.reason])).toEqual([
      ["/rec/a", "free space 50 under min free 220"],
      ["/rec/b", "free space 150 under min free 220"],
    ]);
    // Never more than there is: with nothing left to delete, the plan stops.
    expect(planDeletions(segments, { minFreeBytes: 1e9 }, NOW, 0).length).toBe(3);
  });

  test("limits combine: age first, and what it frees counts for size and free space", () => {
    const segments = [seg("old", 10 * DAY, 1000), seg("x", 3, 100), seg("y", 2, 100), seg("z", 1, 100)];
    const plan = planDeletions(segments, { keepDays: 7, maxBytes: 250, minFreeBytes: 1100 }, NOW, 0);
    expect(plan.map((d) => [d.path, d.reason])).toEqual([
      ["/rec/old", "older than 7 days"],
      ["/rec/x", "recordings total 300 over max size 250"],
    ]);
  });

  test("equal start times are ordered by path (suffixed names after the plain one)", () => {
    const segments = [seg("2025-01-10/12-00-00-1.avi", 5, 1), seg("2025-01-10/12-00-00.avi", 5, 1)];
    expect(planDeletions(segments, { maxBytes: 1 }, NOW, 0).map((d) => d.path)).toEqual(["/rec/2025-01-10/12-00-00-1.avi"]);
  });

  test("formatBytes uses the flags' binary units", () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(20 * 1024 ** 3)]).toEqual(["512", "1.5K", "20.0G"]);
  });
});

describe("Retention on disk", () => {
  function populate(dir: string): void {
    const files: Record<string, number> = {
      "2025-01-01/10-00-00.avi": 300,
      "2025-01-08/10-00-00.avi": 300,
      "2025-01-08/11-00-00.mkv": 300,
      "2025-01-10/11-00-00.avi": 300,
      "2025-01-10/.11-30-00.avi.partial": 5000, // open or crashed: never deleted by retention
      "2025-01-10/notes.txt": 5000, // not ours
      "unrelated/10-00-00.avi": 5000, // not in a date folder
    };
    for (const [name, size] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), new Uint8Array(size));
    }
  }

  test("scanSegments finds finished segments only, with start times from their names", async () => {
    const dir = tempDir();
    populate(dir);
    const found = (await scanSegments(dir)).sort((a, b) => a.startedAtMs - b.startedAtMs);
    expect(found.map((f) => [relative(dir, f.path), f.size])).toEqual([
      ["2025-01-01/10-00-00.avi", 300],
      ["2025-01-08/10-00-00.avi", 300],
      ["2025-01-08/11-00-00.mkv", 300],
      ["2025-01-10/11-00-00.avi", 300],
    ]);
    expect(found[0]!.startedAtMs).toBe(new Date(2025, 0, 1, 10, 0, 0).getTime());
  });

  test("deletes the oldest by age and size, logs each with its reason, removes emptied date folders", async () => {
    const dir = tempDir();
    populate(dir);
    const log = memoryLogger("recorder");
    const r = await Retention.load(dir, { keepDays: 7, maxBytes: 700 }, log, { now: () => NOW, freeBytes: () => 1e12 });
    const plan = r.enforce();
    expect(plan.map((d) => [relative(dir, d.path), d.reason])).toEqual([
      ["2025-01-01/10-00-00.avi", "older than 7 days"],
      ["2025-01-08/10-00-00.avi", "recordings total 900 over max size 700"],
    ]);
    expect(listFiles(dir)).toEqual([
      "2025-01-08/11-00-00.mkv",
      "2025-01-10/.11-30-00.avi.partial",
      "2025-01-10/11-00-00.avi",
      "2025-01-10/notes.txt",
      "unrelated/10-00-00.avi",
    ]);
    expect(existsSync(join(dir, "2025-01-01"))).toBe(false);
    const deleted = log.lines.filter((l) => l.includes("INFO [recorder] deleted segment"));
    expect(deleted.length).toBe(2);
    expect(deleted[0]).toContain(`path=${join(dir, "2025-01-01/10-00-00.avi")}`);
    expect(deleted[0]).toContain('reason="older than 7 days"');
    expect(log.lines.some((l) => l.includes(`removed empty date folder dir=${join(dir, "2025-01-01")}`))).toBe(true);

    // A segment finished later is counted too.
    writeFileSync(join(dir, "2025-01-10/11-15-00.avi"), new Uint8Array(300));
    r.add({ path: join(dir, "2025-01-10/11-15-00.avi"), size: 300, startedAtMs: new Date(2025, 0, 10, 11, 15).getTime() });
    expect(r.enforce().map((d) => relative(dir, d.path))).toEqual(["2025-01-08/11-00-00.mkv"]);
    expect(existsSync(join(dir, "2025-01-08"))).toBe(false);
  });

  test("min free: reads free space through the injected reader, warns when it cannot be reached", async () => {
    const dir = tempDir();
    populate(dir);
    const log = memoryLogger("recorder");
    const r = await Retention.load(dir, { minFreeBytes: 10_000 }, log, { now: () => NOW, freeBytes: () => 9_500 });
    expect(r.enforce().map((d) => relative(dir, d.path))).toEqual(["2025-01-01/10-00-00.avi", "2025-01-08/10-00-00.avi"]);
    const r2 = await Retention.load(dir, { minFreeBytes: 1e9 }, log, { now: () => NOW, freeBytes: () => 0 });
    expect(r2.enforce().length).toBe(2);
    expect(log.lines.some((l) => l.includes("WARN [recorder] free space stays under min free"))).toBe(true);
    expect(listFiles(dir).filter((f) => f.endsWith(".avi") || f.endsWith(".mkv"))).toEqual(["unrelated/10-00-00.avi"]);
  });

  test("without limits nothing is scanned or deleted", async () => {
    const dir = tempDir();
    populate(dir);
    const r = await Retention.load(dir, {}, memoryLogger(), { now: () => NOW, freeBytes: () => 0 });
    expect(r.files).toEqual([]);
    expect(r.enforce()).toEqual([]);
    expect(listFiles(dir).length).toBe(7);
  });
});

describe("Retention while an older segment is still being finished", () => {
  test("nothing newer than it is deleted first; once it is finished, deletion goes on oldest first", async () => {
    const dir = tempDir();
    const names = ["2025-01-10/11-00-00.avi", "2025-01-10/11-00-01.avi", "2025-01-10/11-00-02.avi", "2025-01-10/11-00-03.avi"];
    const startOf = (i: number) => new Date(2025, 0, 10, 11, 0, i).getTime();
    mkdirSync(join(dir, "2025-01-10"), { recursive: true });
    const log = memoryLogger("recorder");
    const open = new OpenPartials();
    const r = await Retention.load(dir, { maxBytes: 150 }, log, { now: () => NOW, freeBytes: () => 1e12 }, open);
    // Segment 0 is finished; 1 is still closing; 2 and 3 finished before it.
    for (const i of [0, 2, 3]) {
      writeFileSync(join(dir, names[i]!), new Uint8Array(100));
      r.add({ path: join(dir, names[i]!), size: 100, startedAtMs: startOf(i) });
    }
    const partial = join(dir, "2025-01-10/.11-00-01.avi.partial");
    open.add({ partial, final: join(dir, names[1]!), startedAtMs: startOf(1) });
    expect(r.enforce().map((d) => relative(dir, d.path))).toEqual([names[0]!]);
    expect(existsSync(join(dir, names[2]!))).toBe(true); // over the limit, but newer than the one still closing
    writeFileSync(join(dir, names[1]!), new Uint8Array(100));
    open.delete(partial);
    r.add({ path: join(dir, names[1]!), size: 100, startedAtMs: startOf(1) });
    expect(r.enforce().map((d) => relative(dir, d.path))).toEqual([names[1]!, names[2]!]);
    expect(listFiles(dir)).toEqual([names[3]!]);
  });
});

describe("SegmentWriter applies retention", () => {
  test("at open (by age, injected clock) and at each rotation (by size), oldest first, never the open segment", async () => {
    const dir = tempDir();
    // Old finished segments from earlier runs; the writer's clock says it is 2025-01-10 12:00.
    for (const name of ["2025-01-01/09-00-00.avi", "2025-01-09/13-00-00.avi"]) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), new Uint8Array(10));
    }
    const frames = await jpegFrames(30, 640, 480);
    const log = memoryLogger("recorder");
    const infos: SegmentInfo[] = [];
    const segBytes = frames.reduce((s, f) => s + f.length, 0); // one 1 s segment, roughly
    const writer = await SegmentWriter.open({
      dir, segmentSeconds: 1, container: "avi", fps: 30, log, keepDays: 7, maxBytes: Math.round(segBytes * 2.5),
      retentionEnv: { now: () => NOW, freeBytes: () => 1e12 }, onSegment: (i) => infos.push(i),
    });
    expect(listFiles(dir).filter((f) => !f.includes(".lancam-"))).toEqual(["2025-01-09/13-00-00.avi"]);
    expect(log.lines.some((l) => l.includes("deleted segment") && l.includes("2025-01-01/09-00-00.avi") && l.includes("older than 7 days"))).toBe(true);

    const t0 = new Date(2025, 0, 10, 11, 0, 0).getTime() * 1000;
    const partialsSeen = new Set<string>();
    for (let i = 0; i < 6 * 30; i++) {
      await writer.whenWritable();
      writer.write({ seq: i, capturedAt: t0 + Math.round((i * 1e6) / 30), width: 640, height: 480, jpeg: frames[i % 30]! });
      const open = writer.openPartial;
      if (open) {
        partialsSeen.add(open);
        expect(existsSync(open)).toBe(true); // the open segment is never deleted
      }
    }
    await writer.close();
    expect(partialsSeen.size).toBe(6);
    expect(writer.stats.ffmpegFailures).toBe(0);
    infos.sort((a, b) => a.startedAt - b.startedAt);
    expect(infos.length).toBe(6);
    const kept = listFiles(dir).filter((f) => !f.includes(".lancam-"));
    // The two newest fit under 2.5 segments; the older ones and the 10-byte file went, oldest first.
    expect(kept).toEqual(["2025-01-10/11-00-04.avi", "2025-01-10/11-00-05.avi"]);
    const deleted = log.lines
      .filter((l) => l.includes("INFO [recorder] deleted segment") && l.includes("over max size"))
      .map((l) => /path=(\S+)/.exec(l)![1]!);
    expect(deleted).toEqual([join(dir, "2025-01-09/13-00-00.avi"), ...infos.slice(0, 4).map((i) => i.path)]);
    expect(existsSync(join(dir, "2025-01-09"))).toBe(false);
  }, 30_000);
});
