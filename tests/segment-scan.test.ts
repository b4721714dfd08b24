import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { scanDateFolders } from "../lib/record/segment-scan.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-scan-");

function populate(dir: string, names: string[]): void {
  for (const name of names) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), "x");
  }
}

test("every entry of the date folders, folders and names in order, with what each name says", async () => {
  const dir = tempDir();
  populate(dir, [
    "2025-01-10/11-00-00.avi",
    "2025-01-02/.03-04-05.mkv.partial",
    "2025-01-02/03-04-05-1.avi",
    "2025-01-02/03-04-05.avi",
    "2025-01-02/.03-04-06.avi.partial.repair",
    "2025-01-02/notes.txt",
    "other/10-00-00.avi", // not a date folder: not ours
    "2025-1-02/10-00-00.avi", // nor is this
    ".lancam-1-1.lock",
  ]);
  const found = await scanDateFolders(dir);
  expect(found.map((e) => [relative(dir, e.path), e.name, e.segment && `${e.segment.time}/${e.segment.n}/${e.segment.container}/${e.segment.partial}`])).toEqual([
    ["2025-01-02/.03-04-05.mkv.partial", ".03-04-05.mkv.partial", "03-04-05/0/mkv/true"],
    ["2025-01-02/.03-04-06.avi.partial.repair", ".03-04-06.avi.partial.repair", null],
    ["2025-01-02/03-04-05-1.avi", "03-04-05-1.avi", "03-04-05/1/avi/false"],
    ["2025-01-02/03-04-05.avi", "03-04-05.avi", "03-04-05/0/avi/false"],
    ["2025-01-02/notes.txt", "notes.txt", null],
    ["2025-01-10/11-00-00.avi", "11-00-00.avi", "11-00-00/0/avi/false"],
  ]);
  expect(found.at(-1)!.segment!.startedAtMs).toBe(new Date(2025, 0, 10, 11, 0, 0).getTime());
});

test("a missing output folder has no entries; a date 'folder' that is a file or cannot be read is skipped", async () => {
  const dir = tempDir();
  expect(await scanDateFolders(join(dir, "not-there"))).toEqual([]);
  populate(dir, ["2025-01-03/10-00-00.avi", "2025-01-05/10-00-00.avi"]);
  writeFileSync(join(dir, "2025-01-04"), "a file named like a date");
  mkdirSync(join(dir, "2025-01-06"));
  writeFileSync(join(dir, "2025-01-06/10-00-00.avi"), "x");
  chmodSync(join(dir, "2025-01-06"), 0);
  try {
    const found = (await scanDateFolders(dir)).map((e) => relative(dir, e.path));
    // Root reads any folder: then the locked one is listed too.
    const locked = process.getuid?.() === 0 ? ["2025-01-06/10-00-00.avi"] : [];
    expect(found).toEqual(["2025-01-03/10-00-00.avi", "2025-01-05/10-00-00.avi", ...locked]);
  } finally {
    chmodSync(join(dir, "2025-01-06"), 0o755);
  }
});
