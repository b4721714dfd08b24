import { readdirSync, type Dirent } from "node:fs";
import { join, relative } from "node:path";

/** Every file below `root`, as paths relative to it, sorted. */
export function filesUnder(root: string): string[] {
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((d) => d.isFile())
    .map((d) => relative(root, join(d.parentPath, d.name)))
    .sort();
}
