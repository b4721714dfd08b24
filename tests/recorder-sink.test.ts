import { expect, test } from "bun:test";
import type { Frame } from "../lib/wire/frame.ts";
import { MAX_HELD_FRAMES, RecorderSink, type Writer } from "../lib/record/recorder-sink.ts";

const frame = (seq: number, buf = new Uint8Array([seq & 0xff])): Frame => ({ seq, capturedAt: seq * 33_333, width: 64, height: 48, jpeg: buf });

/** A writer that records what it got and is writable only every other call (a pipe that fills up). */
function fakeWriter(fps = 30) {
  const got: number[] = [];
  let closed = false;
  const stats = { framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0 };
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

test("frames before the writer exists are held and handed over first, in order, then live ones", async () => {
  const sink = new RecorderSink();
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
  const sink = new RecorderSink();
  for (let i = 0; i < MAX_HELD_FRAMES + 7; i++) sink.write(frame(i));
  const { w, got } = fakeWriter();
  sink.attach(w);
  await sink.close();
  expect(got).toHaveLength(MAX_HELD_FRAMES);
  expect(sink.stats.framesNotRecorded).toBe(7);
});

test("replacing the writer (another frame rate) keeps the totals of both and loses nothing in between", async () => {
  const sink = new RecorderSink();
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
