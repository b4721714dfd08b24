import { join, sep } from "node:path";

/**
 * Where segments live: `<out>/<YYYY-MM-DD>/<HH-MM-SS>[-N].<ext>`, named for the LOCAL time of the
 * segment's first frame. While being written a segment is `<out>/<date>/.<HH-MM-SS>[-N].<ext>.partial`:
 * hidden, and never mistaken for a finished file.
 */

/** Recording containers and their file extensions. */
export type Container = "avi" | "mkv";
/** The ffmpeg format name (`-f`) of each container. */
export const FFMPEG_FORMAT: Record<Container, string> = { avi: "avi", mkv: "matroska" };
/** Suffix of a file still being written (or left behind by a crash). */
export const PARTIAL_SUFFIX = ".partial";

const FINISHED_RE = /^(\d{2})-(\d{2})-(\d{2})(?:-(\d+))?\.(avi|mkv)$/;
const PARTIAL_RE = /^\.(\d{2})-(\d{2})-(\d{2})(?:-(\d+))?\.(avi|mkv)\.partial$/;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** The local date folder and time stem for a capture time in µs since the epoch. */
export function segmentStem(startedAtMicros: number): { date: string; time: string } {
  const d = new Date(Math.floor(startedAtMicros / 1000));
  return {
    date: `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    time: `${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`,
  };
}

/** The finished and temporary paths of one segment. */
export interface SegmentPaths {
  /** `<out>/<date>` */
  dateDir: string;
  /** `<out>/<date>/<HH-MM-SS>[-N].<ext>` */
  final: string;
  /** `<out>/<date>/.<HH-MM-SS>[-N].<ext>.partial` */
  partial: string;
}

/** Paths for suffix `n` (0 = none, then `-1`, `-2`, ...). */
export function segmentPaths(outDir: string, startedAtMicros: number, container: Container, n = 0): SegmentPaths {
  const { date, time } = segmentStem(startedAtMicros);
  const dateDir = join(outDir, date);
  const base = `${time}${n > 0 ? `-${n}` : ""}.${container}`;
  return { dateDir, final: join(dateDir, base), partial: join(dateDir, `.${base}${PARTIAL_SUFFIX}`) };
}

/**
 * The first paths whose finished and partial names are both free. `taken(path)` says whether a
 * path exists on disk or is reserved by a segment still being finished.
 */
export function freeSegmentPaths(
  outDir: string,
  startedAtMicros: number,
  container: Container,
  taken: (path: string) => boolean,
): SegmentPaths {
  for (let n = 0; ; n++) {
    const paths = segmentPaths(outDir, startedAtMicros, container, n);
    if (!taken(paths.final) && !taken(paths.partial)) return paths;
  }
}

/** The finished name for a partial path, with suffix `n` added if that name is taken. */
export function finalPathFor(partialPath: string, taken: (path: string) => boolean): string {
  const parsed = parseSegmentPath(partialPath);
  if (!parsed || !parsed.partial) throw new Error(`not a partial segment path: ${partialPath}`);
  const dir = partialPath.slice(0, partialPath.lastIndexOf(sep));
  for (let n = parsed.n; ; n++) {
    const candidate = join(dir, `${parsed.time}${n > 0 ? `-${n}` : ""}.${parsed.container}`);
    if (!taken(candidate)) return candidate;
  }
}

/** What a segment's path says about it. */
export interface ParsedSegmentPath {
  date: string;
  time: string;
  /** Collision suffix, 0 when none. */
  n: number;
  container: Container;
  partial: boolean;
  /** Local start time from the name, ms since the epoch (to the second). */
  startedAtMs: number;
}

/** Parses `.../<YYYY-MM-DD>/<HH-MM-SS>[-N].<ext>` or its `.partial` form; null for anything else. */
export function parseSegmentPath(path: string): ParsedSegmentPath | null {
  const parts = path.split(sep);
  const name = parts.at(-1) ?? "";
  const date = parts.at(-2) ?? "";
  const dm = DATE_RE.exec(date);
  const partial = name.startsWith(".");
  const m = (partial ? PARTIAL_RE : FINISHED_RE).exec(name);
  if (!dm || !m) return null;
  const [hh, mm, ss] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (hh > 23 || mm > 59 || ss > 59) return null;
  const startedAtMs = new Date(Number(dm[1]), Number(dm[2]) - 1, Number(dm[3]), hh, mm, ss).getTime();
  return {
    date,
    time: `${m[1]}-${m[2]}-${m[3]}`,
    n: m[4] ? Number(m[4]) : 0,
    container: m[5] as Container,
    partial,
    startedAtMs,
  };
}

/** True for a `<YYYY-MM-DD>` folder name. */
export function isDateDirName(name: string): boolean {
  return DATE_RE.test(name);
}
