import { beforeAll, describe, expect, test } from "bun:test";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { CLIENT_RECORD_CLI } from "../lib/app/client-flags.ts";
import { checkWritable, RecordError } from "../lib/record/record-dir.ts";
import { type SegmentInfo, SegmentWriter } from "../lib/record/segment-writer.ts";
import { MAX_GAP_MICROS } from "../lib/record/segment-timeline.ts";
import { jpegFrames, splitJpegs } from "./helpers/jpeg-frames.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-writer-");

const FPS = 30;
const INTERVAL = 1_000_000 / FPS;
const W = 640;
const H = 480;
/** 2025-01-02 03:04:05 local time, in µs. */
const T0 = new Date(2025, 0, 2, 3, 4, 5).getTime() * 1000;

let frames: Uint8Array[] = [];

beforeAll(async () => {
  frames = await jpegFrames(90, W, H, FPS);
});

const pad = (n: number) => String(n).padStart(2, "0");

/** `<YYYY-MM-DD>/<HH-MM-SS>` of a capture time in local time, computed independently of the writer. */
function localStem(micros: number): string {
  const d = new Date(micros / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}/${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** Capture times on the 30 fps grid, skipping `skips[i]` slots before frame i. */
function captureTimes(count: number, skips: Record<number, number> = {}): number[] {
  const out: number[] = [];
  let slot = 0;
  for (let i = 0; i < count; i++) {
    slot += skips[i] ?? 0;
    out.push(T0 + Math.round(slot * INTERVAL));
    slot++;
  }
  return out;
}

/**
 * Splits capture times into segments by the documented rules: a frame ≥ length after the start,
 * or more than MAX_GAP_MICROS after the previous frame, begins a new one.
 */
function expectedSegments(times: number[], segmentSeconds: number): number[][] {
  const groups: number[][] = [];
  for (const t of times) {
    const g = groups.at(-1);
    if (!g || t - g[0]! >= segmentSeconds * 1_000_000 || t - g.at(-1)! > MAX_GAP_MICROS) groups.push([t]);
    else g.push(t);
  }
  return groups;
}

/** Feeds every time without drops (waiting for the writer between frames) and closes. */
async function record(container: "avi" | "mkv", times: number[], segmentSeconds: number) {
  const dir = tempDir();
  const infos: SegmentInfo[] = [];
  const log = memoryLogger("recorder");
  const writer = await SegmentWriter.open({ dir, segmentSeconds, container, fps: FPS, log, onSegment: (i) => infos.push(i) });
  for (let i = 0; i < times.length; i++) {
    await writer.whenWritable();
    writer.write({ seq: i, capturedAt: times[i]!, width: W, height: H, jpeg: frames[i % frames.length]! });
  }
  const last = await writer.close();
  const byStart = infos.toSorted((a, b) => a.startedAt - b.startedAt); // reported in the order they finish
  return { dir, infos: byStart, last, log, stats: { ...writer.stats } };
}

/** Checks names, codec, size, frame counts and durations of recorded segments against the capture times. */
async function checkSegments(container: "avi" | "mkv", times: number[], segmentSeconds: number, r: Awaited<ReturnType<typeof record>>) {
  const groups = expectedSegments(times, segmentSeconds);
  const ext = container;
  expect(r.stats.dropped).toBe(0);
  expect(r.stats.framesWritten).toBe(times.length);
  expect(r.stats.ffmpegFailures).toBe(0);
  expect(r.infos.length).toBe(groups.length);
  expect(r.last).toEqual(r.infos.at(-1)!); // close() returns the segment it finished, the last one
  expect(listFiles(r.dir)).toEqual(groups.map((g) => `${localStem(g[0]!)}.${ext}`).sort());
  let probedFrames = 0;
  let repeats = 0;
  for (let k = 0; k < groups.length; k++) {
    const g = groups[k]!;
    const info = r.infos[k]!;
    expect(info.path).toBe(join(r.dir, `${localStem(g[0]!)}.${ext}`));
    expect(info.startedAt).toBe(g[0]!);
    expect(info.frames).toBe(g.length);
    const probe = await probeVideo(info.path);
    expect(probe.codec).toBe("mjpeg");
    expect([probe.width, probe.height]).toEqual([W, H]);
    const covered = (g.at(-1)! - g[0]! + INTERVAL) / 1e6;
    expect(Math.abs(probe.durationSec! - covered)).toBeLessThanOrEqual(INTERVAL / 1e6);
    expect(Math.abs(info.durationSec - covered)).toBeLessThanOrEqual(INTERVAL / 1e6);
    expect(probe.frames).toBe(info.frames + info.repeats);
    if (container === "avi") {
      // A true 30 fps AVI: no empty "skip" chunks between frames, no doubled rate.
      expect(probe.frameRate).toBe("30/1");
      expect(probe.declaredFrames).toBe(probe.frames);
    }
    probedFrames += probe.frames!;
    repeats += info.repeats;
  }
  expect(repeats).toBe(r.stats.repeats);
  expect(probedFrames).toBe(r.stats.framesWritten + r.stats.repeats);
  return { repeats };
}

describe("SegmentWriter", () => {
  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: 7 s at 30 fps in 2 s segments: names, codec, sizes, counts and durations`, async () => {
      const times = captureTimes(7 * FPS);
      const r = await record(container, times, 2);
      expect(r.infos.map((i) => i.frames)).toEqual([60, 60, 60, 30]);
      expect(r.infos.map((i) => i.recovered)).toEqual([false, false, false, false]);
      const { repeats } = await checkSegments(container, times, 2, r);
      expect(repeats).toBe(0);
      expect(r.stats.segmentsClosed).toBe(4);
      expect(r.log.lines.filter((l) => l.includes("segment finished")).length).toBe(4);
    }, 30_000);

    test(`${container}: lost frames (a 0.5 s hole, and one across a boundary) keep durations true`, async () => {
      // 15 slots lost inside the first segment, 20 slots lost across the 4 s boundary.
      const times = captureTimes(150, { 40: 15, 100: 20 });
      const r = await record(container, times, 2);
      const { repeats } = await checkSegments(container, times, 2, r);
      if (container === "avi") expect(repeats).toBeGreaterThanOrEqual(15);
      else expect(repeats).toBe(0);
    }, 30_000);
  }

  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: a 3 s hole in capture times starts a new segment instead of being filled`, async () => {
      // 60 frames, 90 slots (3 s) without frames, 60 frames, all inside one 60 s segment length.
      const times = captureTimes(120, { 60: 90 });
      expect(times[60]! - times[59]!).toBeGreaterThan(MAX_GAP_MICROS);
      const r = await record(container, times, 60);
      await checkSegments(container, times, 60, r); // the groups split at the hole; durations true
      expect(r.infos.map((i) => [i.startedAt, i.frames, i.repeats])).toEqual([[T0, 60, 0], [times[60]!, 60, 0]]);
      expect(r.stats.repeats).toBe(0);
      // The segment before the hole ends at its last frame: 60 frames, 2 s, not 5 s.
      const before = await probeVideo(r.infos[0]!.path);
      expect(before.frames).toBe(60);
      expect(Math.abs(before.durationSec! - 60 * INTERVAL / 1e6)).toBeLessThanOrEqual(INTERVAL / 1e6);
      const finished = r.log.lines.filter((l) => l.includes("INFO [recorder] segment finished"));
      expect(finished.length).toBe(2);
      expect(finished.filter((l) => l.includes("reason=gap") && l.includes("frames=60 repeats=0")).length).toBe(1);
      expect(finished.filter((l) => l.includes("reason=close")).length).toBe(1);
      const resumed = r.log.lines.filter((l) => l.includes("INFO [recorder] capture resumed after a gap; starting a new segment"));
      expect(resumed.length).toBe(1);
      expect(resumed[0]).toContain(`gapSec=${((times[60]! - times[59]!) / 1e6).toFixed(3)} maxGapSec=2`);
    }, 30_000);
  }

  test("fps reads back what the writer was opened with", async () => {
    await using writer = await SegmentWriter.open({ dir: tempDir(), segmentSeconds: 2, container: "avi", fps: 12.5, log: silentLogger });
    expect(writer.fps).toBe(12.5);
  });

  test("a change of frame size starts a new segment", async () => {
    const small = await jpegFrames(10, 320, 240, FPS);
    const dir = tempDir();
    const infos: SegmentInfo[] = [];
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 10, container: "mkv", fps: FPS, log: silentLogger, onSegment: (i) => infos.push(i) });
    for (let i = 0; i < 20; i++) {
      await writer.whenWritable();
      const big = i < 10;
      writer.write({ seq: i, capturedAt: T0 + Math.round(i * INTERVAL), width: big ? W : 320, height: big ? H : 240, jpeg: big ? frames[i]! : small[i - 10]! });
    }
    await writer.close();
    expect(infos.length).toBe(2);
    infos.sort((a, b) => a.startedAt - b.startedAt); // reported in the order they finish
    const sizes = await Promise.all(infos.map(async (i) => probeVideo(i.path)));
    expect(sizes.map((p) => `${p.width}x${p.height}:${p.frames}`)).toEqual(["640x480:10", "320x240:10"]);
    expect(infos[1]!.path).toEndWith("-1.mkv"); // same second as the first: suffixed
  }, 30_000);

  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: ffmpeg killed mid-recording: logged, repaired, and a new segment starts with the next frames`, async () => {
      const dir = tempDir();
      const infos: SegmentInfo[] = [];
      const log = memoryLogger("recorder");
      const writer = await SegmentWriter.open({ dir, segmentSeconds: 60, container, fps: FPS, log, onSegment: (i) => infos.push(i) });
      let i = 0;
      const feed = () => writer.write({ seq: i, capturedAt: T0 + Math.round(i * INTERVAL), width: W, height: H, jpeg: frames[i++ % frames.length]! });
      for (let k = 0; k < 60; k++) {
        await writer.whenWritable();
        feed();
      }
      const partial = writer.openPartial!;
      await waitFor(() => statSync(partial).size > 200_000, 10_000, "ffmpeg to write the first frames");
      const dead = writer.ffmpegPid!;
      process.kill(dead, "SIGKILL");
      const killedAt = performance.now();
      // The live source keeps sending at its own pace; the recorder must pick up again by itself.
      while (writer.ffmpegPid === null || writer.ffmpegPid === dead) {
        // A deadline only: retryInMs=0 below says it is retried at once; how soon that is depends on the load.
        if (performance.now() - killedAt > 10_000) throw new Error("no new segment within 10 s of ffmpeg's death");
        await Bun.sleep(INTERVAL / 1000);
        feed();
      }
      const firstAfter = i - 1;
      for (let k = 0; k < 60; k++) {
        await writer.whenWritable();
        feed();
      }
      await writer.close();
      expect(writer.stats.ffmpegFailures).toBe(1);
      // Every frame is accounted for, the one ffmpeg died holding included.
      expect(writer.stats.framesWritten + writer.stats.dropped).toBe(writer.stats.framesIn);
      expect(log.lines.some((l) => l.includes("ERROR [recorder] ffmpeg exited mid-segment; a new segment starts with the next frame") && l.includes("signal=SIGKILL") && l.includes("retryInMs=0"))).toBe(true);
      expect(log.lines.some((l) => l.includes("INFO [recorder] recovered partial segment"))).toBe(true);
      expect(infos.length).toBe(2);
      // The repair may finish after the next segment: order by start.
      const [repaired, next] = infos.sort((a, b) => a.startedAt - b.startedAt) as [SegmentInfo, SegmentInfo];
      expect(repaired.recovered).toBe(true);
      const repairedProbe = await probeVideo(repaired.path);
      expect(repairedProbe.frames!).toBeGreaterThan(0);
      expect(repairedProbe.frames!).toBeLessThanOrEqual(60 + (firstAfter - 60));
      // Every frame from the restart on is in the later segment.
      expect(next.recovered).toBe(false);
      expect(next.startedAt).toBe(T0 + Math.round(firstAfter * INTERVAL));
      expect(next.frames).toBe(i - firstAfter);
      expect((await probeVideo(next.path)).frames).toBe(next.frames + next.repeats);
      expect(listFiles(dir).filter((f) => f.endsWith(".partial"))).toEqual([]);
    }, 30_000);
  }

  test("slow ffmpeg (SIGSTOP): frames are dropped and counted, memory stays flat, timing stays true", async () => {
    const dir = tempDir();
    const infos: SegmentInfo[] = [];
    const budget = 512 * 1024;
    const writer = await SegmentWriter.open({
      dir, segmentSeconds: 120, container: "avi", fps: FPS, log: silentLogger, maxQueuedBytes: budget, onSegment: (i) => infos.push(i),
    });
    let i = 0;
    const feed = () => writer.write({ seq: i, capturedAt: T0 + Math.round(i * INTERVAL), width: W, height: H, jpeg: frames[i++ % frames.length]! });
    for (let k = 0; k < 30; k++) {
      await writer.whenWritable();
      feed();
    }
    const pid = writer.ffmpegPid!;
    process.kill(pid, "SIGSTOP");
    try {
      const before = { ...writer.stats };
      Bun.gc(true);
      const rssBefore = process.memoryUsage().rss;
      const STOPPED = 1_500; // ~27 MB of JPEG if it were buffered
      for (let k = 0; k < STOPPED; k++) {
        feed();
        if (k % 100 === 0) await Bun.sleep(1); // let pipe callbacks run, as a live loop would
      }
      Bun.gc(true);
      const grew = process.memoryUsage().rss - rssBefore;
      const accepted = writer.stats.framesWritten - before.framesWritten;
      const dropped = writer.stats.dropped - before.dropped;
      expect(accepted + dropped).toBe(STOPPED);
      // What the pipe takes, plus the budget waiting in the sink, plus the frame that crossed it.
      expect(accepted * frames[0]!.length).toBeLessThan(1_100_000 + budget);
      expect(dropped).toBeGreaterThan(STOPPED - 100);
      expect(grew).toBeLessThan(12_000_000);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    for (let k = 0; k < 30; k++) {
      await writer.whenWritable();
      feed();
    }
    await writer.close();
    expect(infos.length).toBe(1);
    const info = infos[0]!;
    const probe = await probeVideo(info.path);
    // Dropped frames become repeats in AVI, so the file still spans every capture time.
    expect(info.repeats).toBe(writer.stats.repeats);
    expect(probe.frames).toBe(writer.stats.framesWritten + writer.stats.repeats);
    const covered = ((i - 1) * INTERVAL + INTERVAL) / 1e6;
    expect(Math.abs(probe.durationSec! - covered)).toBeLessThanOrEqual(INTERVAL / 1e6);
  }, 60_000);

  test("an ffmpeg that does not finish at close is killed after the timeout and its file repaired", async () => {
    const dir = tempDir();
    const log = memoryLogger("recorder");
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 60, container: "avi", fps: FPS, log, closeTimeoutMs: 300 });
    for (let i = 0; i < 30; i++) {
      await writer.whenWritable();
      writer.write({ seq: i, capturedAt: T0 + Math.round(i * INTERVAL), width: W, height: H, jpeg: frames[i]! });
    }
    const partial = writer.openPartial!;
    await waitFor(() => statSync(partial).size > 200_000, 10_000, "frames in the partial file");
    process.kill(writer.ffmpegPid!, "SIGSTOP"); // hung: never reads the end of its input
    const started = performance.now();
    const info = await writer.close();
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(info).toMatchObject({ recovered: true, path: join(dir, `${localStem(T0)}.avi`) });
    expect(info!.frames).toBeGreaterThan(0);
    expect((await probeVideo(info!.path)).frames).toBe(info!.frames);
    expect(log.lines.some((l) => l.includes("ERROR [recorder] ffmpeg did not finish the segment in time") && l.includes("timeoutMs=300"))).toBe(true);
    expect(writer.stats.ffmpegFailures).toBe(1);
    expect(listFiles(dir)).toEqual([`${localStem(T0)}.avi`]);
  }, 30_000);

  test("ffmpeg that cannot start: write() never throws, failures are logged and retried with backoff", async () => {
    const dir = tempDir();
    const log = memoryLogger("recorder");
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "avi", fps: FPS, log, ffmpegPath: join(dir, "no-such-ffmpeg") });
    for (let k = 0; k < 90; k++) writer.write({ seq: k, capturedAt: T0 + Math.round(k * INTERVAL), width: W, height: H, jpeg: frames[0]! });
    expect(writer.stats.framesIn).toBe(90);
    expect(writer.stats.dropped).toBe(90);
    // Tried at once, again at the next frame, then waits a second: two attempts, not ninety.
    expect(writer.stats.ffmpegFailures).toBe(2);
    const failures = log.lines.filter((l) => l.includes("ERROR [recorder] cannot start ffmpeg"));
    expect(failures.length).toBe(2);
    // Each line says when the next attempt is.
    expect(failures[0]).toContain("; a new segment starts with the next frame");
    expect(failures[0]).toContain("retryInMs=0");
    expect(failures[1]).toContain("; next attempt in 1 s; frames until then are dropped");
    expect(failures[1]).toContain("retryInMs=1000");
    expect(await writer.close()).toBeNull();
    expect(listFiles(dir)).toEqual([]);
  });

  /** A clock the test moves by hand: the writer's retries follow it, not the time the test takes. */
  function fakeClock(startMs = 5_000) {
    let t = startMs;
    return { now: () => t, advance: (ms: number) => void (t += ms) };
  }

  /** `retryInMs` of each failure line so far. */
  const retryWaits = (lines: string[]) => lines.filter((l) => l.includes("ERROR [recorder]")).map((l) => Number(/retryInMs=(\d+)/.exec(l)![1]));

  test("repeated failures wait 1, 2, 4 ... s, at most 30 s, on the injected clock; frames in between start nothing", async () => {
    const dir = tempDir();
    const log = memoryLogger("recorder");
    const clock = fakeClock();
    const writer = await SegmentWriter.open({
      dir, segmentSeconds: 60, container: "avi", fps: FPS, log, ffmpegPath: join(dir, "no-such-ffmpeg"), now: clock.now,
    });
    let k = 0;
    const feed = () => writer.write({ seq: k, capturedAt: T0 + Math.round(k++ * INTERVAL), width: W, height: H, jpeg: frames[0]! });
    feed();
    feed(); // the first retry is at once
    expect(retryWaits(log.lines)).toEqual([0, 1000]);
    for (const wait of [1000, 2000, 4000, 8000, 16000, 30000, 30000]) {
      const before = writer.stats.ffmpegFailures;
      clock.advance(wait - 1);
      feed(); // a millisecond early: dropped, nothing tried
      expect(writer.stats.ffmpegFailures).toBe(before);
      clock.advance(1);
      feed();
      expect(writer.stats.ffmpegFailures).toBe(before + 1);
    }
    expect(retryWaits(log.lines)).toEqual([0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(log.lines.at(-1)).toContain("; next attempt in 30 s; frames until then are dropped");
    expect(writer.stats).toMatchObject({ framesIn: k, dropped: k, ffmpegFailures: 9 });
    await writer.close();
  });

  test("the backoff never waits longer than a segment", async () => {
    const dir = tempDir();
    const log = memoryLogger("recorder");
    const clock = fakeClock();
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "mkv", fps: FPS, log, ffmpegPath: join(dir, "no-such-ffmpeg"), now: clock.now });
    for (let k = 0; k < 6; k++) {
      writer.write({ seq: k, capturedAt: T0 + Math.round(k * INTERVAL), width: W, height: H, jpeg: frames[0]! });
      clock.advance(2000); // every wait is over by the next frame: each one is an attempt
    }
    expect(retryWaits(log.lines)).toEqual([0, 1000, 2000, 2000, 2000, 2000]);
    await writer.close();
  });

  test("a cleanly finished segment starts the backoff count again (ffmpeg that dies at start, then works)", async () => {
    const dir = tempDir();
    const works = join(dir, "ffmpeg-works");
    const flaky = join(dir, "flaky-ffmpeg");
    // Dies at once until the flag file exists, then is the real ffmpeg.
    writeFileSync(flaky, `#!/bin/sh\n[ -e '${works}' ] && exec '${resolveFfmpeg().path}' "$@"\nexit 1\n`, { mode: 0o755 });
    const log = memoryLogger("recorder");
    const clock = fakeClock();
    const infos: SegmentInfo[] = [];
    const writer = await SegmentWriter.open({
      dir: join(dir, "rec"), segmentSeconds: 3, container: "avi", fps: FPS, log, ffmpegPath: flaky, now: clock.now, onSegment: (i) => infos.push(i),
    });
    let k = 0;
    const feed = () => writer.write({ seq: k, capturedAt: T0 + Math.round(k++ * INTERVAL), width: W, height: H, jpeg: frames[k % frames.length]! });
    const failuresSoFar = () => log.lines.filter((l) => l.includes("ffmpeg exited mid-segment")).length;
    for (let n = 1; n <= 3; n++) {
      feed();
      expect(writer.ffmpegPid).not.toBeNull(); // started, then dies
      await waitFor(() => failuresSoFar() === n, 10_000, `failure ${n} to be handled`);
      clock.advance(1000 * 2 ** (n - 2));
    }
    expect(retryWaits(log.lines)).toEqual([0, 1000, 2000]);
    writeFileSync(works, "");
    // 3 s of frames, then the next one rotates: the first segment finishes cleanly.
    for (let n = 0; n <= 3 * FPS; n++) {
      await writer.whenWritable();
      feed();
    }
    const second = writer.ffmpegPid!;
    await waitFor(() => infos.length === 1, 10_000, "the first segment to finish");
    expect(infos[0]!.recovered).toBe(false);
    process.kill(second, "SIGKILL");
    await waitFor(() => failuresSoFar() === 4, 10_000, "the killed ffmpeg to be handled");
    expect(retryWaits(log.lines)).toEqual([0, 1000, 2000, 0]); // not 4000: the count started again
    await writer.close();
    expect(writer.stats.ffmpegFailures).toBe(4);
  }, 30_000);

  test("frames that are not a complete JPEG are rejected and counted, once logged", async () => {
    const dir = tempDir();
    const log = memoryLogger("recorder");
    const writer = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "avi", fps: FPS, log });
    const truncated = frames[0]!.subarray(0, 1000);
    writer.write({ seq: 0, capturedAt: T0, width: W, height: H, jpeg: truncated });
    writer.write({ seq: 1, capturedAt: T0 + 33_333, width: W, height: H, jpeg: new Uint8Array(0) });
    expect(writer.stats.rejected).toBe(2);
    expect(writer.ffmpegPid).toBeNull();
    expect(log.lines.filter((l) => l.includes("not one complete JPEG")).length).toBe(1);
    await writer.close();
    writer.write({ seq: 2, capturedAt: T0 + 66_666, width: W, height: H, jpeg: frames[0]! }); // after close: ignored, no throw
    expect(writer.stats.dropped).toBe(1);
  });

  for (const container of ["avi", "mkv"] as const) {
    test(`${container}: the caller may reuse its JPEG buffer as soon as write() returns, also while ffmpeg lags`, async () => {
      const dir = tempDir();
      const infos: SegmentInfo[] = [];
      const writer = await SegmentWriter.open({ dir, segmentSeconds: 10, container, fps: FPS, log: silentLogger, onSegment: (i) => infos.push(i) });
      const buf = new Uint8Array(64_000);
      const write = (k: number, slot: number) => {
        buf.set(frames[k]!);
        writer.write({ seq: k, capturedAt: T0 + Math.round(slot * INTERVAL), width: W, height: H, jpeg: buf.subarray(0, frames[k]!.length) });
        buf.fill(0x55); // clobber: the writer must have copied or sent what it keeps
      };
      write(0, 0);
      await writer.whenWritable();
      const pid = writer.ffmpegPid!;
      process.kill(pid, "SIGSTOP"); // the pipe fills up and the rest waits in the sink's buffer
      try {
        for (let k = 1; k < 20; k++) write(k, k < 5 ? k : k + 2); // 2 slots lost after frame 4
        expect(writer.stats.dropped).toBe(0);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      await writer.close();
      const ff = Bun.spawnSync(["ffmpeg", "-v", "error", "-i", infos[0]!.path, "-c", "copy", "-f", "image2pipe", "pipe:1"]);
      expect(ff.exitCode).toBe(0);
      const got = splitJpegs(ff.stdout);
      // AVI fills the lost slots with frame 4 (from the writer's own copy); Matroska keeps times instead.
      const want = container === "avi" ? [0, 1, 2, 3, 4, 4, 4, ...Array.from({ length: 15 }, (_, j) => j + 5)] : Array.from({ length: 20 }, (_, j) => j);
      expect(got.length).toBe(want.length);
      const mismatched = want.filter((k, j) => !Buffer.from(got[j]!).equals(frames[k]!));
      expect(mismatched).toEqual([]);
    }, 30_000);
  }

  test("an output folder whose parent is a file fails at open with the documented message", async () => {
    const dir = tempDir();
    const file = join(dir, "not-a-folder");
    writeFileSync(file, "x");
    const out = join(file, "recordings");
    const err = await SegmentWriter.open({ dir: out, segmentSeconds: 2, container: "avi", fps: FPS, log: silentLogger, cliFlags: CLIENT_RECORD_CLI }).catch((e) => e);
    expect(err).toBeInstanceOf(RecordError);
    expect(err.message).toBe(
      `cannot record into ${out}: a part of the path is a file, not a folder (ENOTDIR); choose another --out or pass --no-record`,
    );
  });

  test("an output folder under /proc fails at open with the documented message", async () => {
    const err = await SegmentWriter.open({ dir: "/proc/lancam-x", segmentSeconds: 2, container: "avi", fps: FPS, log: silentLogger, cliFlags: CLIENT_RECORD_CLI }).catch((e) => e);
    expect(err).toBeInstanceOf(RecordError);
    expect(err.message).toStartWith("cannot record into /proc/lancam-x: ");
    expect(err.message).toEndWith("; choose another --out or pass --no-record");
  });

  test("errors give the caller's own flags when it passes them (the server records with --record DIR)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "a-file"), "x");
    const out = join(dir, "a-file", "rec");
    const cliFlags = { dir: "--record", off: "leave out --record" };
    const err = await SegmentWriter.open({ dir: out, segmentSeconds: 2, container: "avi", fps: FPS, log: silentLogger, cliFlags }).catch((e) => e);
    expect(err).toBeInstanceOf(RecordError);
    expect(err.message).toBe(`cannot record into ${out}: a part of the path is a file, not a folder (ENOTDIR); choose another --record or leave out --record`);
    expect(() => checkWritable(out, cliFlags)).toThrow(err.message);
    expect(() => checkWritable(out, CLIENT_RECORD_CLI)).toThrow(`${out}: a part of the path is a file, not a folder (ENOTDIR); choose another --out or pass --no-record`);
  });

  test("no usable ffmpeg: a RecordError that says how to go on without recording, in the caller's flags", async () => {
    const saved = process.env.FFMPEG_BIN;
    const bogus = join(tempDir(), "not-ffmpeg");
    process.env.FFMPEG_BIN = bogus;
    try {
      const open = (cliFlags?: { dir: string; off: string }) =>
        SegmentWriter.open({ dir: tempDir(), segmentSeconds: 2, container: "avi", fps: FPS, log: silentLogger, cliFlags }).catch((e) => e);
      const client = await open(CLIENT_RECORD_CLI);
      expect(client).toBeInstanceOf(RecordError);
      expect(client.message).toStartWith(`cannot record: FFMPEG_BIN=${bogus} is not an executable file`);
      expect(client.message).toEndWith("; or pass --no-record");
      const server = await open({ dir: "--record", off: "leave out --record" });
      expect(server.message).toBe(client.message.replace("; or pass --no-record", "; or leave out --record"));
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_BIN;
      else process.env.FFMPEG_BIN = saved;
    }
  });
});
