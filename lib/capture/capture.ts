/**
 * Capture sources: a camera, a video file, a GStreamer pipeline or the built-in
 * test pattern, all yielding JPEG Frames one at a time. Files and the test
 * pattern are paced to their fps; cameras and pipelines pace themselves.
 */
import { existsSync, statSync } from "node:fs";
import { cv, type NativeCapture, type NativeTestPattern } from "../native/cv.ts";
import { nowMicros, type Frame } from "../wire/frame.ts";
import { silentLogger, type Logger } from "../app/log.ts";
import { seqAdd } from "../wire/seq.ts";

/** Where frames come from, as given by `--source`. */
export type SourceSpec =
  | { kind: "camera"; index: number }
  | { kind: "file"; path: string }
  | { kind: "gst"; pipeline: string }
  | { kind: "test" };

/** A source that cannot open or stopped working; the message says what to do. */
export class CaptureError extends Error {
  override name = "CaptureError";
}

/** An open source of frames. */
export interface CaptureSource extends AsyncDisposable {
  /** "test", "camera:0", "file:/x.mp4", "gst:...". */
  readonly description: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** The next frame, paced; null when a non-looping file or a pipeline ends, or after close(). */
  next(): Promise<Frame | null>;
  close(): Promise<void>;
}

/** Options of openSource. */
export interface OpenOptions {
  /** Requested size (camera, test); files and pipelines keep their own. */
  size?: { width: number; height: number };
  /** Frames per second: requested from a camera, overrides a file's own rate. */
  fps?: number;
  /** JPEG quality 1..100. */
  quality: number;
  /** Rewind a file at its end instead of ending. */
  loop?: boolean;
  log?: Logger;
}

const TEST_DEFAULT = { width: 1280, height: 720, fps: 30 };
const FILE_FALLBACK_FPS = 25;
const TRY_TEST = "use --source test for the built-in test pattern";

/** The `description` of a spec: "test", "camera:0", "file:/x.mp4", "gst:...". */
export function describeSource(spec: SourceSpec): string {
  switch (spec.kind) {
    case "test":
      return "test";
    case "camera":
      return `camera:${spec.index}`;
    case "file":
      return `file:${spec.path}`;
    case "gst":
      return `gst:${spec.pipeline}`;
  }
}

/**
 * Release times for a fixed-rate source: frame k is due at anchor + k/fps. A
 * frame asked for more than one interval late restarts the schedule at that
 * moment, so a stalled consumer never gets a burst of catch-up frames.
 */
export class FramePacer {
  readonly #intervalMs: number;
  #anchorMs: number | undefined;
  #count = 0;

  constructor(fps: number) {
    if (!(fps > 0)) throw new RangeError(`FramePacer: fps must be positive, got ${fps}`);
    this.#intervalMs = 1000 / fps;
  }

  /** When (ms, same clock as `nowMs`) the next frame may go out; never earlier than `nowMs`. */
  schedule(nowMs: number): number {
    this.#anchorMs ??= nowMs;
    let due = this.#anchorMs + this.#count * this.#intervalMs;
    if (nowMs - due > this.#intervalMs) {
      this.#anchorMs = nowMs;
      this.#count = 0;
      due = nowMs;
    }
    this.#count++;
    return Math.max(due, nowMs);
  }
}

/** Opens a source; fails with CaptureError (suggesting `--source test`) when it cannot. */
export async function openSource(spec: SourceSpec, opts: OpenOptions): Promise<CaptureSource> {
  if (!Number.isInteger(opts.quality) || opts.quality < 1 || opts.quality > 100) {
    throw new RangeError(`openSource: quality must be an integer 1..100, got ${opts.quality}`);
  }
  if (opts.fps !== undefined && !(opts.fps > 0)) throw new RangeError(`openSource: fps must be positive, got ${opts.fps}`);
  const log = (opts.log ?? silentLogger).child("capture");
  if (spec.kind === "test") return openTest(opts, log);
  return openDevice(spec, opts, log);
}

/** Runs one operation at a time, in call order. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(op);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

async function waitUntil(pacer: FramePacer): Promise<void> {
  const wait = pacer.schedule(performance.now()) - performance.now();
  if (wait > 0) await Bun.sleep(wait);
}

function openTest(opts: OpenOptions, log: Logger): CaptureSource {
  const width = opts.size?.width ?? TEST_DEFAULT.width;
  const height = opts.size?.height ?? TEST_DEFAULT.height;
  const fps = opts.fps ?? TEST_DEFAULT.fps;
  const renderer: NativeTestPattern = new (cv().TestPattern)();
  const pacer = new FramePacer(fps);
  const serial = new Serial();
  let seq = 0;
  let closed = false;
  log.info("opened source", { source: "test", width, height, fps });

  const produce = async (): Promise<Frame | null> => {
    if (closed) return null;
    await waitUntil(pacer);
    const capturedAt = nowMicros();
    const text = `#${seq} ${new Date(capturedAt / 1000).toISOString()}`;
    const jpeg = await renderer.render(width, height, seq, text, opts.quality);
    const frame: Frame = { seq, capturedAt, width, height, jpeg };
    seq = seqAdd(seq, 1);
    return frame;
  };
  const close = async () => {
    closed = true;
    await serial.run(async () => undefined);
  };
  return {
    description: "test",
    width,
    height,
    fps,
    next: () => serial.run(produce),
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function openDevice(spec: Exclude<SourceSpec, { kind: "test" }>, opts: OpenOptions, log: Logger): Promise<CaptureSource> {
  const description = describeSource(spec);
  if (spec.kind === "file") checkFile(spec.path);
  const cap: NativeCapture = new (cv().Capture)();
  const open = () =>
    spec.kind === "camera" ? cap.open(spec.index) : spec.kind === "file" ? cap.open(spec.path, "ffmpeg") : cap.open(spec.pipeline, "gstreamer");
  if (!(await open())) throw new CaptureError(openFailure(spec));

  if (spec.kind === "camera") {
    // Most USB cameras reach 720p/1080p at full rate only as MJPEG; raw YUYV tops
    // out near 10 fps there. V4L2 wants the format before the size.
    cap.setFourcc("MJPG");
    if (opts.size) {
      cap.set("width", opts.size.width);
      cap.set("height", opts.size.height);
    }
    if (opts.fps) cap.set("fps", opts.fps);
  } else if (opts.size) {
    log.warn("--size is ignored for this source; it keeps its own size", { source: description });
  }
  const width = cap.get("width");
  const height = cap.get("height");
  const reported = cap.get("fps");
  const fps = spec.kind === "file" && opts.fps ? opts.fps : validFps(reported) ? reported : opts.fps ?? FILE_FALLBACK_FPS;
  if (!validFps(reported) && !opts.fps) log.warn("source reports no frame rate; assuming one", { source: description, fps });
  if (spec.kind === "camera" && opts.size && (width !== opts.size.width || height !== opts.size.height)) {
    log.warn("camera chose another size", { requested: `${opts.size.width}x${opts.size.height}`, got: `${width}x${height}` });
  }
  log.info("opened source", { source: description, backend: cap.backendName(), width, height, fps, fourcc: cap.getFourcc() });

  // Only files are paced here: a camera or a live pipeline delivers at its own rate.
  const pacer = spec.kind === "file" ? new FramePacer(fps) : undefined;
  const serial = new Serial();
  let seq = 0;
  let closed = false;

  const read = async () => {
    try {
      return await cap.readJpeg(opts.quality);
    } catch (err) {
      throw new CaptureError(`${description}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const rewind = async () => {
    log.info("end of file; looping", { source: description });
    if (cap.set("posFrames", 0)) {
      const first = await read();
      if (first) return first;
    }
    // Some containers cannot seek: reopen instead.
    cap.release();
    if (!(await open())) throw new CaptureError(`${description}: cannot reopen the file to loop it`);
    const first = await read();
    if (!first) throw new CaptureError(`${description}: the file has no readable frames`);
    return first;
  };
  const produce = async (): Promise<Frame | null> => {
    if (closed) return null;
    if (pacer) await waitUntil(pacer);
    let got = await read();
    if (!got && spec.kind === "file" && opts.loop) got = await rewind();
    if (!got) {
      if (spec.kind === "camera") throw new CaptureError(`${description} stopped delivering frames (unplugged?)`);
      log.info("end of stream", { source: description, frames: seq });
      return null;
    }
    const frame: Frame = { seq, capturedAt: nowMicros() - got.ageMicros, width: got.width, height: got.height, jpeg: got.jpeg };
    seq = seqAdd(seq, 1);
    return frame;
  };
  const close = async () => {
    if (closed) return;
    closed = true;
    await serial.run(async () => cap.release());
  };
  return {
    description,
    width,
    height,
    fps,
    next: () => serial.run(produce),
    close,
    [Symbol.asyncDispose]: close,
  };
}

function validFps(fps: number): boolean {
  return Number.isFinite(fps) && fps > 0 && fps <= 1000;
}

function checkFile(path: string): void {
  if (!existsSync(path)) {
    const hint = /^\d+$/.test(path) ? ` (for a camera write camera:${path})` : "";
    throw new CaptureError(`cannot open video file ${path}: no such file${hint}; ${TRY_TEST}`);
  }
  if (statSync(path).isDirectory()) throw new CaptureError(`cannot open video file ${path}: it is a directory; ${TRY_TEST}`);
}

function openFailure(spec: Exclude<SourceSpec, { kind: "test" }>): string {
  switch (spec.kind) {
    case "camera": {
      const device = `/dev/video${spec.index}`;
      const why =
        process.platform !== "linux"
          ? "OpenCV could not open it"
          : existsSync(device)
            ? `${device} exists but could not be opened: busy, no permission, or not a capture device`
            : "no such device";
      return `cannot open camera:${spec.index} (${why}): check the camera or use --source test`;
    }
    case "file":
      return `cannot open video file ${spec.path}: OpenCV cannot read it (not a video, or an unsupported codec); ${TRY_TEST}`;
    case "gst":
      return (
        `cannot open gst:${spec.pipeline}: GStreamer did not start the pipeline ` +
        `(try it with gst-launch-1.0, or set OPENCV_LOG_LEVEL=WARNING to see why; it must end in appsink); ${TRY_TEST}`
      );
  }
}
