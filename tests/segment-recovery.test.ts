import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { claimOutDir } from "../lib/record/out-dir-lock.ts";
import { findPartials, recoverPartial } from "../lib/record/segment-recovery.ts";
import { SegmentWriter } from "../lib/record/segment-writer.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";
import { readLine, until } from "./helpers/process.ts";

const tempDir = tempDirs("lancam-recovery-");

const lib = (name: string) => JSON.stringify(join(import.meta.dir, "..", name));

/** A recorder in its own process, fed in real time, that prints its ffmpeg pid and open partial. */
const CHILD = `
import { SegmentWriter } from ${lib("lib/record/segment-writer.ts")};
import { silentLogger } from ${lib("lib/log/logger.ts")};
import { jpegFrames } from ${lib("tests/helpers/jpeg-frames.ts")};
const [dir, container] = process.argv.slice(2);
const frames = await jpegFrames(30, 640, 480);
const w = await SegmentWriter.open({ dir, segmentSeconds: 2, container, fps: 30, log: silentLogger });
const t0 = Date.now() * 1000;
let i = 0;
setInterval(() => {
  w.write({ seq: i, capturedAt: t0 + Math.round((i * 1e6) / 30), width: 640, height: 480, jpeg: frames[i % 30] });
  i++;
  if (i === 75) console.log("ready " + w.ffmpegPid + " " + w.openPartial);
}, 1000 / 30);
`;

describe("kill -9 of the recording process", () => {
  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: finished segments play, and the next open repairs the partial and logs it`, async () => {
      const dir = tempDir();
      const script = join(dir, "child.ts");
      writeFileSync(script, CHILD);
      const out = join(dir, "rec");
      const child = Bun.spawn([process.execPath, script, out, container], { stdout: "pipe", stderr: "pipe" });
      let partial = "";
      try {
        const [, ffmpegPid, path] = (await readLine(child.stdout, "ready ", 15_000)).split(" ");
        partial = path!;
        await until(() => statSync(partial).size > 100_000, 10_000, "frames in the partial file");
        // Stop the recorder first so it cannot react, then kill ffmpeg and the recorder without warning,
        // as a power cut or the OOM killer would: nothing gets to finish the file.
        process.kill(child.pid, "SIGSTOP");
        process.kill(Number(ffmpegPid), "SIGKILL");
        process.kill(child.pid, "SIGKILL");
      } finally {
        child.kill("SIGKILL");
      }
      expect(await child.exited).not.toBe(0);
      expect(child.signalCode).toBe("SIGKILL");

      const before = listFiles(out);
      const finished = before.filter((f) => f.endsWith(`.${container}`));
      expect(finished.length).toBe(1); // the first 2 s segment
      expect(before).toContain(relative(out, partial));
      const first = await probeVideo(join(out, finished[0]!));
      expect([first.codec, first.frames]).toEqual(["mjpeg", 60]);
      expect(Math.abs(first.durationSec! - 2)).toBeLessThanOrEqual(1 / 30);

      const log = memoryLogger("recorder");
      const writer = await SegmentWriter.open({ dir: out, segmentSeconds: 2, container, fps: 30, log });
      await writer.close();
      const after = listFiles(out).filter((f) => !f.includes(".lancam-"));
      const repairedName = relative(out, partial).replace(/\/\.([^/]+)\.partial$/, "/$1");
      expect(after).toEqual([...finished, repairedName].sort());
      const repaired = await probeVideo(join(out, repairedName));
      expect(repaired.codec).toBe("mjpeg");
      expect([repaired.width, repaired.height]).toEqual([640, 480]);
      expect(repaired.frames!).toBeGreaterThan(0);
      expect(repaired.durationSec!).toBeGreaterThan(0);
      if (container === "avi") expect([repaired.frameRate, repaired.declaredFrames]).toEqual(["30/1", repaired.frames]);
      const line = log.lines.find((l) => l.includes("INFO [recorder] recovered partial segment"));
      expect(line).toBeDefined();
      expect(line).toContain(`frames=${repaired.frames}`);
      expect(line).toContain(`path=${join(out, repairedName)}`);
      expect(line).toMatch(/duration=\d+\.\d{3}/);
    }, 60_000);
  }
});

describe("recoverPartial", () => {
  const opts = () => ({ ffmpegPath: resolveFfmpeg().path, log: memoryLogger("recorder") });

  test("an empty partial is removed with a warning", async () => {
    const dir = tempDir();
    const partial = join(dir, "2025-01-02", ".03-04-05.avi.partial");
    mkdirSync(join(dir, "2025-01-02"));
    writeFileSync(partial, "");
    const o = opts();
    expect(await recoverPartial(partial, o)).toEqual({ partial, action: "removed", path: null, frames: 0, durationSec: null, audio: null });
    expect(existsSync(partial)).toBe(false);
    expect(o.log.lines.some((l) => l.includes("WARN [recorder] removed partial segment with nothing readable") && l.includes('why="empty file"'))).toBe(true);
  });

  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: a partial holding no readable frame is removed with a warning, no temp file left`, async () => {
      const dir = tempDir();
      mkdirSync(join(dir, "2025-01-02"));
      const partial = join(dir, "2025-01-02", `.03-04-05.${container}.partial`);
      writeFileSync(partial, new Uint8Array(4096).fill(0x41));
      const o = opts();
      const r = await recoverPartial(partial, o);
      expect(r.action).toBe("removed");
      expect(listFiles(dir)).toEqual([]);
      expect(o.log.lines.some((l) => l.includes("WARN [recorder] removed partial segment with nothing readable"))).toBe(true);
    });
  }

  test("a complete file left under its partial name (rename never happened) is kept, and a taken name gets a suffix", async () => {
    const dir = tempDir();
    const day = join(dir, "2025-01-02");
    mkdirSync(day);
    const frames = await jpegFrames(15, 320, 240);
    const partial = join(day, ".03-04-05.avi.partial");
    const ff = Bun.spawn([resolveFfmpeg().path, "-v", "error", "-f", "mjpeg", "-framerate", "30", "-i", "pipe:0", "-c", "copy", "-f", "avi", partial], { stdin: "pipe" });
    for (const f of frames) ff.stdin.write(f);
    await ff.stdin.end();
    expect(await ff.exited).toBe(0);
    writeFileSync(join(day, "03-04-05.avi"), "taken");
    const o = opts();
    const r = await recoverPartial(partial, o);
    expect(r).toMatchObject({ action: "recovered", path: join(day, "03-04-05-1.avi"), frames: 15 });
    expect(Math.abs(r.durationSec! - 0.5)).toBeLessThanOrEqual(1 / 30);
    expect(listFiles(dir)).toEqual(["2025-01-02/03-04-05-1.avi", "2025-01-02/03-04-05.avi"]);
  }, 30_000);
});

describe("recoverPartial when the copy cannot be written", () => {
  test("a partial that still holds frames is kept (e.g. disk full) and the failure logged", async () => {
    const dir = tempDir();
    const day = join(dir, "2025-01-02");
    mkdirSync(day);
    const frames = await jpegFrames(5, 320, 240);
    const partial = join(day, ".03-04-05.avi.partial");
    const ff = Bun.spawn([resolveFfmpeg().path, "-v", "error", "-f", "mjpeg", "-framerate", "30", "-i", "pipe:0", "-c", "copy", "-f", "avi", partial], { stdin: "pipe" });
    for (const f of frames) ff.stdin.write(f);
    await ff.stdin.end();
    expect(await ff.exited).toBe(0);
    const fake = join(dir, "ffmpeg-disk-full");
    writeFileSync(fake, "#!/bin/sh\necho 'Error writing trailer: No space left on device' >&2\nexit 1\n", { mode: 0o755 });
    const log = memoryLogger("recorder");
    const r = await recoverPartial(partial, { ffmpegPath: fake, log });
    expect(r.action).toBe("failed");
    expect(existsSync(partial)).toBe(true);
    expect(listFiles(dir)).toEqual(["2025-01-02/.03-04-05.avi.partial", "ffmpeg-disk-full"]);
    const line = log.lines.find((l) => l.includes("ERROR [recorder] cannot repair partial segment; keeping it for the next start"));
    expect(line).toContain("frames=5");
    expect(line).toContain("No space left on device");
  }, 30_000);
});

describe("who owns a partial", () => {
  test("findPartials lists partials in date folders and deletes leftovers of an interrupted repair", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "2025-01-02"));
    mkdirSync(join(dir, "other"));
    for (const f of ["2025-01-02/.03-04-05.avi.partial", "2025-01-02/.03-04-05.avi.partial.repair", "2025-01-02/03-04-06.avi", "other/.03-04-05.avi.partial"]) {
      writeFileSync(join(dir, f), "x");
    }
    expect(await findPartials(dir)).toEqual([join(dir, "2025-01-02/.03-04-05.avi.partial")]);
    expect(existsSync(join(dir, "2025-01-02/.03-04-05.avi.partial.repair"))).toBe(false);
  });

  test("a live recorder in another process keeps its partials; a dead one's lock is removed", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "2025-01-02"));
    const partial = join(dir, "2025-01-02/.03-04-05.avi.partial");
    writeFileSync(partial, "");
    const other = Bun.spawn(["sleep", "30"]);
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    try {
      writeFileSync(join(dir, `.lancam-${other.pid}-1.lock`), `${other.pid}\n`);
      writeFileSync(join(dir, `.lancam-${gone.pid}-1.lock`), `${gone.pid}\n`);
      const log = memoryLogger("recorder");
      const writer = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "avi", fps: 30, log });
      expect(existsSync(partial)).toBe(true);
      expect(existsSync(join(dir, `.lancam-${gone.pid}-1.lock`))).toBe(false);
      expect(log.lines.some((l) => l.includes("WARN [recorder] another recorder is writing into this folder") && l.includes(`pids=${other.pid}`))).toBe(true);
      await writer.close();
      const lock = claimOutDir(dir);
      expect(lock.otherPids).toEqual([other.pid]);
      lock.release();
    } finally {
      other.kill();
      await other.exited;
    }
    // Once that process is gone, the next open recovers (here: removes the empty partial).
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "avi", fps: 30, log: silentLogger });
    await writer.close();
    expect(existsSync(partial)).toBe(false);
    expect(listFiles(dir)).toEqual([]);
  });

  test("two writers in one process share a folder without touching each other's open segment", async () => {
    const dir = tempDir();
    const frames = await jpegFrames(10, 320, 240);
    const t0 = new Date(2025, 0, 2, 3, 4, 5).getTime() * 1000;
    const a = await SegmentWriter.open({ dir, segmentSeconds: 10, container: "avi", fps: 30, log: silentLogger });
    for (let i = 0; i < 5; i++) {
      await a.whenWritable();
      a.write({ seq: i, capturedAt: t0 + i * 33_333, width: 320, height: 240, jpeg: frames[i]! });
    }
    const open = a.openPartial!;
    const b = await SegmentWriter.open({ dir, segmentSeconds: 10, container: "avi", fps: 30, log: silentLogger });
    expect(existsSync(open)).toBe(true);
    b.write({ seq: 0, capturedAt: t0, width: 320, height: 240, jpeg: frames[0]! }); // same second: gets a suffix
    expect(b.openPartial).not.toBe(open);
    for (let i = 5; i < 10; i++) {
      await a.whenWritable();
      a.write({ seq: i, capturedAt: t0 + i * 33_333, width: 320, height: 240, jpeg: frames[i]! });
    }
    const [ia, ib] = await Promise.all([a.close(), b.close()]);
    expect(ia!.frames).toBe(10);
    expect(ib!.frames).toBe(1);
    expect(listFiles(dir)).toEqual(["2025-01-02/03-04-05-1.avi", "2025-01-02/03-04-05.avi"]);
    expect((await probeVideo(ia!.path)).frames).toBe(10);
  }, 30_000);
});
