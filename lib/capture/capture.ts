/**
 * Capture sources: a camera, a video file, a GStreamer pipeline or the built-in
 * test pattern, all yielding JPEG Frames one at a time. Files and the test
 * pattern are paced to their fps; cameras and pipelines pace themselves.
 *
 * A source that already delivers JPEG (an MJPEG file, a camera in MJPG mode) has
 * its JPEG sent as it is, checked first; raw YUV (rawvideo files, YUYV cameras) is
 * encoded straight from its planes; everything else is decoded by OpenCV and
 * encoded again. While nobody needs frames (pauseWhile), nothing is encoded.
 */
import { existsSync, statSync } from "node:fs";
import { cv, MAX_PICTURE, type NativeCapture, type NativeTestPattern, type OverlaySpec } from "../native/cv.ts";
import { nowMicros, type Frame } from "../wire/frame.ts";
import type { Logger } from "../log/format.ts";
import { silentLogger, throttled } from "../log/logger.ts";
import { seqAdd } from "../wire/seq.ts";
import { choosePath, type CapturePath, type PathChoice } from "./capture-path.ts";
import { inUseFix, PERMISSION_FIX } from "./camera-fixes.ts";
import { checkSourceJpeg } from "./jpeg-check.ts";
import { formatOverlay, type OverlayFields, type OverlayPosition } from "./overlay-text.ts";
import { firstOfSecond, whitenBelow } from "./second-flash.ts";
import { UserError } from "../errors/user-error.ts";
import { errorText } from "../errors/error-text.ts";

export type { CapturePath } from "./capture-path.ts";

/** Where frames come from, as given by `--source`. */
export type SourceSpec =
  | { kind: "camera"; index: number }
  | { kind: "file"; path: string }
  | { kind: "gst"; pipeline: string }
  | { kind: "test" };

/** A source that cannot open or stopped working; the message says what to do. */
export class CaptureError extends UserError {
  override name = "CaptureError";
}

/** What a source has done with its frames, for the server's stop line and stats. */
export interface CaptureStats {
  /** How frames become JPEG now (a raw source that turns out not to fit falls back to "bgr"). */
  capturePath: CapturePath;
  /** JPEG encodes: every frame on the bgr and yuv paths and the test pattern, plus re-encoded bad frames. */
  framesEncoded: number;
  /** The source's own JPEG, sent as it came. */
  framesPassedThrough: number;
  /** The source's JPEG failed the check, and was decoded and encoded again. */
  framesReencoded: number;
  /** Frames that failed the check and could not be re-encoded either (or raw frames of the wrong size): never sent. */
  framesBadDropped: number;
  /** Frames taken from the source (or, for the test pattern, skipped) without encoding while paused. */
  framesIdle: number;
  /** Times a camera stopped delivering and was waited for until it came back. */
  cameraOutages: number;
}

/** An open source of frames. */
export interface CaptureSource extends AsyncDisposable {
  /** "test", "camera:0", "file:/x.mp4", "gst:...". */
  readonly description: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  /** Live counters (the object is updated in place). */
  readonly stats: Readonly<CaptureStats>;
  /**
   * The next frame, paced; null when a non-looping file or a pipeline ends, or after
   * close(). While paused it does not resolve: see pauseWhile.
   */
  next(): Promise<Frame | null>;
  /**
   * Asked before every frame: while `paused()` is true nothing is decoded or encoded,
   * but the source keeps going (a camera's frames are grabbed and dropped, a file
   * keeps its place in time, the test pattern skips frames), so the first frame after
   * it turns false is a fresh one, within a frame interval. null: never paused.
   */
  pauseWhile(paused: (() => boolean) | null): void;
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
  /**
   * Use what the source delivers undecoded where lancam can (default true): its JPEG
   * as it is, raw YUV encoded from the planes. False decodes every frame with OpenCV.
   */
  rawPackets?: boolean;
  /** Never send the source's own JPEG; encode every frame at `quality` (--reencode). */
  reencode?: boolean;
  /** Text drawn on every picture before it is encoded (a source's own JPEG is then decoded first). */
  overlay?: OverlayOptions;
  log?: Logger;
  /**
   * Test pattern only: the first frame at or after each whole second of capture time
   * is white but for its frame-number band (with `--audio test`, whose beeps start at
   * the same seconds).
   */
  flashEachSecond?: boolean;
  /** A camera failed and is being retried (false), or is back (true); the server tells its viewers. */
  onAvailability?: (available: boolean) => void;
}

/** What --overlay asks for: the template (checked by overlayTextProblem) and what fills it. */
export interface OverlayOptions {
  template: string;
  position: OverlayPosition;
  /** The camera's name, or its number. */
  camera: string;
  host: string;
}

/** The overlay for frame `seq` captured at `capturedAt`, or undefined without one. */
function overlayFor(opts: OpenOptions, seq: number, capturedAt: number): OverlaySpec | undefined {
  const o = opts.overlay;
  if (!o) return undefined;
  const fields: OverlayFields = { camera: o.camera, frame: seq, host: o.host };
  return { text: formatOverlay(o.template, fields, capturedAt), position: o.position };
}

/** What `--source test` makes when --size and --fps do not say. */
export const TEST_DEFAULT = { width: 1280, height: 720, fps: 30 } as const;
const FILE_FALLBACK_FPS = 25;
const TRY_TEST = "use --source test for the built-in test pattern";
/**
 * How long a camera that stopped delivering (unplugged, reset) is waited for between
 * tries to open it again: doubling from the first to the last, so frames resume within
 * about a second of its return without a busy loop while it is away.
 */
export const CAMERA_RETRY_MS = { first: 250, max: 1000 } as const;
/** At most one warning about bad frames per this many ms; the rest are counted in it. */
const BAD_FRAME_WARN_MS = 10_000;

function newStats(capturePath: CapturePath): CaptureStats {
  return { capturePath, framesEncoded: 0, framesPassedThrough: 0, framesReencoded: 0, framesBadDropped: 0, framesIdle: 0, cameraOutages: 0 };
}

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
  const stats = newStats("bgr");
  let paused: (() => boolean) | null = null;
  let seq = 0;
  let closed = false;
  // When the last frame was captured or skipped, for the flash at each whole second.
  let previous: number | null = null;
  log.info("opened source", { source: "test", width, height, fps, path: stats.capturePath, overlay: opts.overlay ? "drawn-before-encode" : undefined, flash: opts.flashEachSecond ? "each-second" : undefined });

  const produce = async (): Promise<Frame | null> => {
    for (;;) {
      if (closed) return null;
      await waitUntil(pacer);
      if (closed) return null;
      if (paused?.()) {
        stats.framesIdle++;
        if (opts.flashEachSecond) previous = nowMicros();
        continue;
      }
      const capturedAt = nowMicros();
      const text = `#${seq} ${new Date(capturedAt / 1000).toISOString()}`;
      let jpeg: Uint8Array = await renderer.render(width, height, seq, text, opts.quality, overlayFor(opts, seq, capturedAt));
      if (opts.flashEachSecond && firstOfSecond(previous, capturedAt)) {
        // Once a second: a decode and an encode more, on this thread (a few ms at 720p).
        const picture = cv().decodeJpeg(jpeg);
        whitenBelow(picture.bgr, picture.width, picture.height, cv().testPatternLayout.bandHeight);
        jpeg = cv().encodeJpeg(picture.bgr, picture.width, picture.height, opts.quality);
        stats.framesEncoded++;
      }
      previous = capturedAt;
      stats.framesEncoded++;
      const frame: Frame = { seq, capturedAt, width, height, jpeg };
      seq = seqAdd(seq, 1);
      return frame;
    }
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
    stats,
    next: () => serial.run(produce),
    pauseWhile: (p) => {
      paused = p;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** One frame read from a device, before it gets its sequence number. */
interface DeviceRead {
  jpeg: Uint8Array;
  width: number;
  height: number;
  capturedAt: number;
}

async function openDevice(spec: Exclude<SourceSpec, { kind: "test" }>, opts: OpenOptions, log: Logger): Promise<CaptureSource> {
  const description = describeSource(spec);
  if (spec.kind === "file") checkFile(spec.path);
  const cap: NativeCapture = new (cv().Capture)();
  const open = () =>
    spec.kind === "camera" ? cap.open(spec.index) : spec.kind === "file" ? cap.open(spec.path, "ffmpeg") : cap.open(spec.pipeline, "gstreamer");
  if (!(await open())) throw new CaptureError(openFailure(spec));

  // Most USB cameras reach 720p/1080p at full rate only as MJPEG; raw YUYV tops
  // out near 10 fps there. V4L2 wants the format before the size.
  const setUpCamera = () => {
    cap.setFourcc("MJPG");
    if (opts.size) {
      cap.set("width", opts.size.width);
      cap.set("height", opts.size.height);
    }
    if (opts.fps) cap.set("fps", opts.fps);
  };
  if (spec.kind === "camera") {
    setUpCamera();
  } else if (opts.size) {
    log.warn("--size is ignored for this source; it keeps its own size", { source: description });
  }
  const width = cap.get("width");
  const height = cap.get("height");
  // Refused before the first frame is read, so a hostile or mistaken file never costs an allocation of its size.
  if (width > MAX_PICTURE.width || height > MAX_PICTURE.height) {
    cap.release();
    throw new CaptureError(`${description}: its pictures are ${width}x${height}, larger than the largest lancam takes, ${MAX_PICTURE.width}x${MAX_PICTURE.height}`);
  }
  const reported = cap.get("fps");
  const fps = spec.kind === "file" && opts.fps ? opts.fps : validFps(reported) ? reported : opts.fps ?? FILE_FALLBACK_FPS;
  if (!validFps(reported) && !opts.fps) log.warn("source reports no frame rate; assuming one", { source: description, fps });
  if (spec.kind === "camera" && opts.size && (width !== opts.size.width || height !== opts.size.height)) {
    log.warn("camera chose another size", { requested: `${opts.size.width}x${opts.size.height}`, got: `${width}x${height}` });
  }
  const format = { backend: cap.backendName(), fourcc: cap.getFourcc(), pixelFormat: spec.kind === "file" ? cap.getFourcc("pixelFormat") : "" };
  let choice: PathChoice = choosePath(format, { rawPackets: opts.rawPackets ?? true, reencode: opts.reencode ?? false });
  if (choice.path !== "bgr" && !cap.setRawPackets()) {
    log.warn("the source cannot hand over raw frames; decoding them instead", { source: description, backend: format.backend });
    choice = { path: "bgr" };
  }
  const stats = newStats(choice.path);
  // With an overlay a source's own JPEG cannot pass through as it is: said here, and with its cost at the first frame.
  const overlayWay = !opts.overlay ? undefined : choice.path === "passthrough" ? "decode-draw-encode" : "drawn-before-encode";
  log.info("opened source", { source: description, backend: format.backend, width, height, fps, fourcc: format.fourcc, path: choice.path, overlay: overlayWay });

  // Only files are paced here: a camera or a live pipeline delivers at its own rate.
  const pacer = spec.kind === "file" ? new FramePacer(fps) : undefined;
  const serial = new Serial();
  let paused: (() => boolean) | null = null;
  let seq = 0;
  let closed = false;
  // A raw YUV source whose first frame does not fit its layout goes back to OpenCV's decoding.
  let yuvProven = false;
  const warnBad = throttled(BAD_FRAME_WARN_MS, (detail, suppressed) =>
    log.warn("bad frame from the source", { source: description, detail, similar: suppressed || undefined }));

  const native = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw new CaptureError(`${description}: ${errorText(err)}`);
    }
  };
  const reopen = async () => {
    cap.release();
    if (!(await open())) throw new CaptureError(`${description}: cannot reopen the source`);
    if (choice.path !== "bgr" && !cap.setRawPackets()) throw new CaptureError(`${description}: raw frames refused after reopening`);
  };
  // A camera that stopped delivering is closed and opened again, with backoff, until it
  // is back as it was; meanwhile next() waits and the server's viewers stay connected.
  const awaitCamera = async (reason: string): Promise<boolean> => {
    stats.cameraOutages++;
    log.warn("camera unavailable: waiting for it to come back", { source: description, reason });
    opts.onAvailability?.(false);
    const since = performance.now();
    cap.release();
    let saidOtherwise = false;
    for (let wait: number = CAMERA_RETRY_MS.first; ; wait = Math.min(CAMERA_RETRY_MS.max, wait * 2)) {
      if (closed) return false;
      await Bun.sleep(wait);
      if (closed) return false;
      let now: string | null;
      try {
        if (!(await open())) continue;
        setUpCamera();
        const [w, h, fourcc] = [cap.get("width"), cap.get("height"), cap.getFourcc()];
        const same = w === width && h === height && fourcc === format.fourcc && (choice.path === "bgr" || cap.setRawPackets());
        now = same ? null : `${w}x${h} ${fourcc}`;
      } catch (err) {
        // A device half gone can make OpenCV throw; it is one more failed try.
        now = `unusable (${errorText(err)})`;
      }
      if (now === null) {
        log.info("camera back", { source: description, downMs: Math.round(performance.now() - since) });
        opts.onAvailability?.(true);
        return true;
      }
      // Viewers were told the size: a camera that comes back otherwise is waited for still.
      if (!saidOtherwise) log.warn("camera is back but not as it was; waiting still", { source: description, was: `${width}x${height} ${format.fourcc}`, now });
      saidOtherwise = true;
      cap.release();
    }
  };
  const rewind = async () => {
    log.info("end of file; looping", { source: description });
    // Some containers cannot seek: reopen instead.
    if (!cap.set("posFrames", 0)) await reopen();
  };

  // null at the end of the stream; "dropped" for a frame that cannot be sent (counted).
  const read = async (): Promise<DeviceRead | null | "dropped"> => {
    if (opts.overlay && choice.path !== "passthrough") return readOverlaid(choice);
    switch (choice.path) {
      case "bgr": {
        const r = await native(() => cap.readJpeg(opts.quality));
        if (!r) return null;
        stats.framesEncoded++;
        return { jpeg: r.jpeg, width: r.width, height: r.height, capturedAt: nowMicros() - r.ageMicros };
      }
      case "yuv": {
        const layout = choice.layout;
        const r = await native(() => cap.readYuvJpeg(layout, width, height, opts.quality));
        if (!r) return null;
        const capturedAt = nowMicros() - r.ageMicros;
        if (r.jpeg) {
          yuvProven = true;
          stats.framesEncoded++;
          return { jpeg: r.jpeg, width, height, capturedAt };
        }
        if (!yuvProven) {
          log.warn("raw frames do not match their format; decoding them instead", { source: description, reason: r.reason });
          choice = { path: "bgr" };
          stats.capturePath = "bgr";
          await reopen();
          return read();
        }
        stats.framesBadDropped++;
        warnBad(`${r.reason} (dropped)`);
        return "dropped";
      }
      case "passthrough": {
        const r = await native(() => cap.readPacket());
        if (!r) return null;
        const capturedAt = nowMicros() - r.ageMicros;
        const bad = checkSourceJpeg(r.packet, width, height);
        if (bad === null && opts.overlay) return overlaySourceJpeg(r.packet, capturedAt);
        if (bad === null) {
          stats.framesPassedThrough++;
          return { jpeg: r.packet, width, height, capturedAt };
        }
        const again = await cv().reencodeJpeg(r.packet, opts.quality);
        if (again.jpeg && again.width === width && again.height === height) {
          stats.framesReencoded++;
          stats.framesEncoded++;
          warnBad(`${bad} (re-encoded)`);
          return { jpeg: again.jpeg, width, height, capturedAt };
        }
        stats.framesBadDropped++;
        warnBad(`${bad} (dropped: ${again.jpeg ? `it decodes as ${again.width}x${again.height}` : again.reason})`);
        return "dropped";
      }
    }
  };

  // The overlay's text needs the capture time, known once the frame is in: read, then
  // draw and encode in a second step (BGR, or raw YUV drawn on its planes).
  const readOverlaid = async (how: Exclude<PathChoice, { path: "passthrough" }>): Promise<DeviceRead | null | "dropped"> => {
    const r = await native(() => cap.readHeld());
    if (!r) return null;
    const capturedAt = nowMicros() - r.ageMicros;
    const overlay = overlayFor(opts, seq, capturedAt)!;
    const yuv = how.path === "yuv" ? { layout: how.layout, width, height } : undefined;
    const e = await native(() => cap.encodeHeld(opts.quality, overlay, yuv));
    if (e.jpeg) {
      if (yuv) yuvProven = true;
      stats.framesEncoded++;
      return { jpeg: e.jpeg, width: e.width, height: e.height, capturedAt };
    }
    if (yuv && !yuvProven) {
      log.warn("raw frames do not match their format; decoding them instead", { source: description, reason: e.reason });
      choice = { path: "bgr" };
      stats.capturePath = "bgr";
      await reopen();
      return read();
    }
    stats.framesBadDropped++;
    warnBad(`${e.reason} (dropped)`);
    return "dropped";
  };
  // A source's own JPEG cannot take the overlay as it is: decoded, drawn, encoded again.
  let overlayCostLogged = false;
  const overlaySourceJpeg = async (packet: Uint8Array, capturedAt: number): Promise<DeviceRead | "dropped"> => {
    const started = performance.now();
    const r = await cv().overlayJpeg(packet, overlayFor(opts, seq, capturedAt)!, opts.quality);
    if (!r.jpeg || r.width !== width || r.height !== height) {
      stats.framesBadDropped++;
      warnBad(`cannot draw the overlay (dropped: ${r.jpeg ? `it decodes as ${r.width}x${r.height}` : r.reason})`);
      return "dropped";
    }
    if (!overlayCostLogged) {
      overlayCostLogged = true;
      log.info("the source delivers JPEG, which would pass through untouched; for the overlay each frame is decoded, drawn on and encoded again",
        { source: description, costMs: Number((performance.now() - started).toFixed(2)) });
    }
    stats.framesEncoded++;
    return { jpeg: r.jpeg, width, height, capturedAt };
  };

  const produce = async (): Promise<Frame | null> => {
    // Set right after a rewind: a file whose first read ends it again has nothing to play.
    let rewound = false;
    for (;;) {
      if (closed) return null;
      // A rewind is not a new frame: the first frame of the file takes the slot of the one that was missing.
      if (pacer && !rewound) await waitUntil(pacer);
      if (closed) return null;
      const idle = paused?.() ?? false;
      let got: Awaited<ReturnType<typeof read>> | "idle";
      try {
        got = idle ? ((await native(() => cap.grab())) ? "idle" : null) : await read();
      } catch (err) {
        if (spec.kind !== "camera" || !(err instanceof CaptureError)) throw err;
        if (await awaitCamera(err.message)) continue;
        return null;
      }
      if (got === null && spec.kind === "camera") {
        if (await awaitCamera("it stopped delivering frames (unplugged?)")) continue;
        return null;
      }
      if (got === null) {
        if (spec.kind === "file" && opts.loop) {
          if (rewound) throw new CaptureError(`${description}: the file has no readable frames`);
          await rewind();
          rewound = true;
          continue;
        }
        log.info("end of stream", { source: description, frames: seq });
        return null;
      }
      rewound = false;
      if (got === "idle") {
        stats.framesIdle++;
        continue;
      }
      if (got === "dropped") continue;
      const frame: Frame = { seq, ...got };
      seq = seqAdd(seq, 1);
      return frame;
    }
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
    stats,
    next: () => serial.run(produce),
    pauseWhile: (p) => {
      paused = p;
    },
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
      if (process.platform !== "linux") return `cannot open camera:${spec.index} (OpenCV could not open it): check the camera or use --source test`;
      // OpenCV says only that it failed; the device itself says which fix applies.
      const errno = cv().probeDevice(device);
      if (errno === "EBUSY") return `cannot open camera:${spec.index}: ${device} is in use by another program; ${inUseFix(device)} or use another camera`;
      if (errno === "EACCES" || errno === "EPERM") return `cannot open camera:${spec.index}: no permission to open ${device}; ${PERMISSION_FIX}`;
      const why = errno === "ENOENT" || errno === "ENODEV" || errno === "ENXIO" || !existsSync(device)
        ? "no such device"
        : `${device} opens but OpenCV cannot capture from it: not a capture device, or a format it does not know`;
      return `cannot open camera:${spec.index} (${why}): check the camera (--list-cameras shows those there are) or use --source test`;
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
