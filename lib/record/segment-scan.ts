import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { isDateDirName, type ParsedSegmentPath, parseSegmentPath } from "./segment-naming.ts";

/** One entry of a `<out>/<YYYY-MM-DD>/` folder. */
export interface DatedEntry {
  /** `<out>/<date>/<name>` */
  path: string;
  name: string;
  /** What the name says, or null when it is no segment name (a repair leftover, a stray file). */
  segment: ParsedSegmentPath | null;
}

/**
 * Every entry of the date folders under `outDir`, folders and names in order (so oldest name
 * first). Anything beside the date folders is not ours and is left out; a folder that cannot be
 * read (gone, or not a folder) is skipped, and a missing `outDir` has no entries.
 */
export async function scanDateFolders(outDir: string): Promise<DatedEntry[]> {
  const found: DatedEntry[] = [];
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
      found.push({ path, name, segment: parseSegmentPath(path) });
    }
  }
  return found;
}
