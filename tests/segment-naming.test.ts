import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  finalPathFor,
  freeSegmentPaths,
  isDateDirName,
  parseSegmentPath,
  segmentPaths,
  segmentStem,
} from "../lib/record/segment-naming.ts";

/** 2025-01-02T03:04:05.678Z in µs. */
const UTC_MICROS = Date.UTC(2025, 0, 2, 3, 4, 5, 678) * 1000;
const OUT = "/rec";

const savedTz = process.env.TZ;
beforeEach(() => {
  // Names must follow the local clock, not UTC: pick zones where they differ (Bun applies TZ at once).
  process.env.TZ = "Asia/Kolkata"; // UTC+05:30
});
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe("segment names use the local time of the first frame", () => {
  test("date folder and HH-MM-SS in local time", () => {
    expect(segmentStem(UTC_MICROS)).toEqual({ date: "2025-01-02", time: "08-34-05" });
    process.env.TZ = "America/New_York"; // UTC-05:00: the previous day
    expect(segmentStem(UTC_MICROS)).toEqual({ date: "2025-01-01", time: "22-04-05" });
  });

  test("finished and partial paths", () => {
    expect(segmentPaths(OUT, UTC_MICROS, "avi")).toEqual({
      dateDir: "/rec/2025-01-02",
      final: "/rec/2025-01-02/08-34-05.avi",
      partial: "/rec/2025-01-02/.08-34-05.avi.partial",
    });
    expect(segmentPaths(OUT, UTC_MICROS, "mkv", 2)).toEqual({
      dateDir: "/rec/2025-01-02",
      final: "/rec/2025-01-02/08-34-05-2.mkv",
      partial: "/rec/2025-01-02/.08-34-05-2.mkv.partial",
    });
  });

  test("the name parses back to its local start time (to the second)", () => {
    const p = parseSegmentPath("/rec/2025-01-02/08-34-05.avi");
    expect(p).toEqual({ date: "2025-01-02", time: "08-34-05", n: 0, container: "avi", partial: false, startedAtMs: Date.UTC(2025, 0, 2, 3, 4, 5) });
  });
});

describe("suffixes when a name is taken", () => {
  test("freeSegmentPaths skips names whose finished or partial file is taken", () => {
    const taken = new Set(["/rec/2025-01-02/08-34-05.avi", "/rec/2025-01-02/.08-34-05-1.avi.partial"]);
    const paths = freeSegmentPaths(OUT, UTC_MICROS, "avi", (p) => taken.has(p));
    expect(paths).toEqual({
      dateDir: "/rec/2025-01-02",
      final: "/rec/2025-01-02/08-34-05-2.avi",
      partial: "/rec/2025-01-02/.08-34-05-2.avi.partial",
    });
  });

  test("finalPathFor keeps the partial's name, or the next free suffix", () => {
    const partial = join("/rec/2025-01-02", ".08-34-05-1.mkv.partial");
    expect(finalPathFor(partial, () => false)).toBe("/rec/2025-01-02/08-34-05-1.mkv");
    const taken = new Set(["/rec/2025-01-02/08-34-05-1.mkv", "/rec/2025-01-02/08-34-05-2.mkv"]);
    expect(finalPathFor(partial, (p) => taken.has(p))).toBe("/rec/2025-01-02/08-34-05-3.mkv");
    expect(() => finalPathFor("/rec/2025-01-02/08-34-05.mkv", () => false)).toThrow("not a partial segment path");
  });
});

describe("parseSegmentPath", () => {
  const table: [string, Partial<ReturnType<typeof parseSegmentPath>> | null][] = [
    ["/rec/2025-01-02/08-34-05.avi", { time: "08-34-05", n: 0, container: "avi", partial: false }],
    ["/rec/2025-01-02/08-34-05-12.mkv", { time: "08-34-05", n: 12, container: "mkv", partial: false }],
    ["/rec/2025-01-02/.08-34-05.avi.partial", { time: "08-34-05", n: 0, container: "avi", partial: true }],
    ["/rec/2025-01-02/.08-34-05-3.mkv.partial", { n: 3, container: "mkv", partial: true }],
    ["/rec/2025-01-02/08-34-05.mp4", null], // other containers
    ["/rec/2025-01-02/.08-34-05.avi.partial.repair", null], // a repair in progress
    ["/rec/2025-01-02/08-34-05.avi.partial", null], // partials are hidden
    ["/rec/2025-01-02/.08-34-05.avi", null],
    ["/rec/2025-1-02/08-34-05.avi", null], // not a date folder
    ["/rec/2025-01-02/24-00-00.avi", null], // not a time
    ["/rec/2025-01-02/notes.txt", null],
  ];
  for (const [path, want] of table) {
    test(path, () => {
      const got = parseSegmentPath(path);
      if (want === null) expect(got).toBeNull();
      else expect(got).toMatchObject(want);
    });
  }

  test("date folder names", () => {
    expect(isDateDirName("2025-01-02")).toBe(true);
    expect(isDateDirName("2025-01-02x")).toBe(false);
    expect(isDateDirName(".lancam-1-1.lock")).toBe(false);
  });
});
