import { expect, test } from "bun:test";
import { existsSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { claimOutDir } from "../lib/record/out-dir-lock.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-lock-");

test("each writer gets its own lock; another writer in this process is reported like one in another process", () => {
  const dir = tempDir();
  const a = claimOutDir(dir);
  expect(a.otherPids).toEqual([]);
  expect(basename(a.lockPath)).toMatch(new RegExp(`^\\.lancam-${process.pid}-\\d+\\.lock$`));
  const b = claimOutDir(dir);
  expect(b.lockPath).not.toBe(a.lockPath);
  expect(b.otherPids).toEqual([process.pid]); // a is still writing here
  a.release();
  expect(existsSync(a.lockPath)).toBe(false);
  const c = claimOutDir(dir);
  expect(c.otherPids).toEqual([process.pid]); // b only
  b.release();
  c.release();
  expect(readdirSync(dir)).toEqual([]);
});

test("locks of dead processes, or older than the last boot, are removed; other files are left alone", async () => {
  const dir = tempDir();
  const gone = Bun.spawn(["true"]);
  await gone.exited;
  const other = Bun.spawn(["sleep", "30"]);
  try {
    writeFileSync(join(dir, `.lancam-${gone.pid}-1.lock`), "");
    writeFileSync(join(dir, `.lancam-${other.pid}-1.lock`), "");
    writeFileSync(join(dir, `.lancam-${other.pid}-2.lock`), "");
    utimesSync(join(dir, `.lancam-${other.pid}-2.lock`), new Date(0), new Date(0)); // written before this boot
    writeFileSync(join(dir, "notes.txt"), "");
    const lock = claimOutDir(dir);
    expect(lock.otherPids).toEqual([other.pid]);
    expect(readdirSync(dir).sort()).toEqual([`.lancam-${other.pid}-1.lock`, basename(lock.lockPath), "notes.txt"].sort());
    lock.release();
  } finally {
    other.kill();
    await other.exited;
  }
});
