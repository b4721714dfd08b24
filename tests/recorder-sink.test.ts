import { expect, test } from "bun:test";
import type { Frame } from "../lib/wire/frame.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { MAX_HELD_FRAMES, RecorderSink, type Writer } from "../lib/record/recorder-sink.ts";
import { SegmentWriter, type SegmentInfo } from "../lib/record/segment-writer.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { cv } from "../lib/native/cv.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { until } from "./helpers/process.ts";

const frame = (seq: number, buf = new Uint8Array([seq & 0xff])): Frame => ({ seq, capturedAt: seq * 33_333, width: 64, height: 48, jpeg: buf });

/** A writer that records what it got and is writable only every other call (a pipe that fills up). */
function fakeWriter(fps = 30) {
  const got: number[] = [];
  let closed = false;
  const stats = {
    framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
    audioIn: 0, audioWritten: 0, audioDropped: 0, audioRejected: 0, audioConcealed: 0, audioSilenceMs: 0,
  };
  const w: Writer = {
    fps,
    stats,
    write: (f: Frame) => {
      stats.framesIn++;
      stats.framesWritten++;
      got.push(f.jpeg[0]!);
    },
    whenWritable: () => Bun.sleep(1),
    close: async () => {
      closed = true;
      stats.segmentsClosed++;
      return null;
    },
  };
  return { w, got, isClosed: () => closed };
}

/** A sink whose writers are attached by hand. */
const manualSink = () => new RecorderSink({ log: silentLogger, open: () => Promise.reject(new Error("not used")) });

test("frames before the writer exists are held and handed over first, in order, then live ones", async () => {
  const sink = manualSink();
  const buf = new Uint8Array(1);
  for (let i = 0; i < 5; i++) {
    buf[0] = i; // the caller reuses its buffer
    sink.write(frame(i, buf));
  }
  const { w, got } = fakeWriter();
  sink.attach(w);
  sink.write(frame(5)); // arrives while the held ones are still going in
  await sink.close();
  expect(got).toEqual([0, 1, 2, 3, 4, 5]);
  expect(sink.stats).toMatchObject({ framesIn: 6, framesWritten: 6, framesNotRecorded: 0, segmentsClosed: 1 });
});

test("holding is bounded: what does not fit is counted, not kept", async () => {
  const sink = manualSink();
  for (let i = 0; i < MAX_HELD_FRAMES + 7; i++) sink.write(frame(i));
  const { w, got } = fakeWriter();
  sink.attach(w);
  await sink.close();
  expect(got).toHaveLength(MAX_HELD_FRAMES);
  expect(sink.stats.framesNotRecorded).toBe(7);
});

test("replacing the writer (another frame rate) keeps the totals of both and loses nothing in between", async () => {
  const sink = manualSink();
  const a = fakeWriter(30);
  sink.attach(a.w);
  sink.write(frame(1));
  expect(sink.fps).toBe(30);
  await sink.detach();
  expect(a.isClosed()).toBe(true);
  expect(sink.fps).toBeNull();
  sink.write(frame(2)); // held: no writer
  const b = fakeWriter(15);
  sink.attach(b.w);
  sink.write(frame(3));
  await sink.close();
  expect(a.got).toEqual([1]);
  expect(b.got).toEqual([2, 3]);
  expect(sink.stats).toMatchObject({ framesIn: 3, framesWritten: 3, segmentsClosed: 2, framesNotRecorded: 0 });
  sink.write(frame(4));
  expect(sink.stats.framesNotRecorded).toBe(1);
});

/** A sink whose writers come from a factory, each opened only when `release` is called. */
function factorySink() {
  const log = memoryLogger("client");
  const opened: ReturnType<typeof fakeWriter>[] = [];
  const pending: { fps: number; release: (fail?: string) => void }[] = [];
  const sink = new RecorderSink({
    log,
    open: (fps) =>
      new Promise<Writer>((resolve, reject) => {
        pending.push({
          fps,
          release: (fail) => {
            if (fail) return reject(new Error(fail));
            const writer = fakeWriter(fps);
            opened.push(writer);
            resolve(writer.w);
          },
        });
      }),
  });
  /** Resolves once the sink has asked for its `n`-th writer. */
  const asked = async (n: number) => {
    await until(() => pending.length >= n, 10_000, `the sink asking for writer ${n}`);
    expect(pending).toHaveLength(n);
    return pending[n - 1]!;
  };
  return { sink, log, opened, pending, asked };
}

test("the first stream rate opens a writer, which gets the frames held meanwhile; the same rate again opens nothing", async () => {
  const { sink, opened, pending, log, asked } = factorySink();
  const welcome = sink.onStreamRate(30);
  sink.write(frame(1));
  (await asked(1)).release();
  expect(pending.map((p) => p.fps)).toEqual([30]);
  await welcome;
  sink.write(frame(2));
  await sink.onStreamRate(30);
  expect(pending).toHaveLength(1);
  await sink.close();
  expect(opened[0]!.got).toEqual([1, 2]);
  expect(opened[0]!.isClosed()).toBe(true);
  expect(log.lines).toEqual([]);
});

test("another stream rate finishes the current writer and opens one at the new rate, saying so", async () => {
  const { sink, opened, pending, log, asked } = factorySink();
  const first = sink.onStreamRate(30);
  (await asked(1)).release();
  await first;
  sink.write(frame(1));
  const second = sink.onStreamRate(15);
  const next = await asked(2);
  expect(opened[0]!.isClosed()).toBe(true);
  sink.write(frame(2)); // held while the new writer opens
  expect(pending.map((p) => p.fps)).toEqual([30, 15]);
  next.release();
  await second;
  expect(sink.fps).toBe(15);
  await sink.close();
  expect([opened[0]!.got, opened[1]!.got]).toEqual([[1], [2]]);
  expect(log.lines).toHaveLength(1);
  expect(log.lines[0]).toEndWith("INFO [client] stream rate changed; starting a new recording from=30 to=15");
});

test("a writer that cannot open is logged, not thrown; frames are held and the next welcome tries again", async () => {
  const { sink, opened, log, asked } = factorySink();
  const first = sink.onStreamRate(30);
  (await asked(1)).release("ffmpeg would not start");
  await first;
  expect(sink.fps).toBeNull();
  expect(log.lines).toHaveLength(1);
  expect(log.lines[0]).toEndWith('ERROR [client] cannot start recording; viewing only error="ffmpeg would not start"');
  sink.write(frame(1));
  const retry = sink.onStreamRate(30);
  (await asked(2)).release();
  await retry;
  await sink.close();
  expect(opened[0]!.got).toEqual([1]);
  expect(sink.stats).toMatchObject({ framesWritten: 1, framesNotRecorded: 0 });
});

test("disposing while a writer is still opening waits for it and closes it, rather than leaving it running", async () => {
  const { sink, opened, pending, asked } = factorySink();
  const welcome = sink.onStreamRate(30);
  sink.write(frame(1));
  const opening = await asked(1);
  let disposed = false;
  const disposing = sink[Symbol.asyncDispose]().then(() => (disposed = true));
  await Bun.sleep(5);
  expect(disposed).toBe(false);
  opening.release();
  await Promise.all([welcome, disposing]);
  expect(opened[0]!.isClosed()).toBe(true);
  expect(opened[0]!.got).toEqual([1]);
  // Closed for good: a late welcome opens nothing.
  await sink.onStreamRate(25);
  expect(pending).toHaveLength(1);
});

test("a change of picture size (the server moved the viewer to another layer) starts a new AVI segment; both play at their size", async () => {
  const dir = tempDirs("lancam-sink-")();
  const segments: SegmentInfo[] = [];
  const sink = new RecorderSink({ log: silentLogger, open: (fps) => SegmentWriter.open({ dir, segmentSeconds: 60, container: "avi", fps, log: silentLogger, onSegment: (i) => segments.push(i) }) });
  const t0 = Date.UTC(2025, 0, 2, 3, 4, 5) * 1000;
  for (let i = 0; i < 12; i++) {
    const [w, h] = i < 6 ? [96, 64] : [48, 32];
    const jpeg = cv().encodeJpeg(new Uint8Array(w * h * 3).fill(20 * i), w, h, 90);
    // Held until the writer opens, then handed over at its pace: none dropped.
    sink.write({ seq: i, capturedAt: t0 + i * 100_000, width: w, height: h, jpeg });
  }
  await sink.onStreamRate(10);
  await sink.close();
  expect(sink.stats).toMatchObject({ framesWritten: 12, segmentsClosed: 2, framesNotRecorded: 0 });
  segments.sort((a, b) => a.startedAt - b.startedAt);
  const probes = await Promise.all(segments.map((i) => probeVideo(i.path)));
  expect(probes.map((p) => `${p.codec} ${p.width}x${p.height} ${p.frames}`)).toEqual(["mjpeg 96x64 6", "mjpeg 48x32 6"]);
}, 30_000);
