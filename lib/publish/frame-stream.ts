import { MkvStream } from "../mux/mkv-stream.ts";
import type { Frame } from "../wire/frame.ts";

/**
 * The frames of one ffmpeg run as a live Matroska stream (lib/mux/mkv-stream.ts): ffmpeg's
 * MJPEG pipe input has no timestamps, this one carries each frame's capture time, counted from
 * the run's first frame.
 */
export class FrameStream {
  readonly width: number;
  readonly height: number;
  readonly #mkv: MkvStream;
  readonly #origin: number;

  /** Capture time (µs since the epoch) of the stream's time zero: its first frame. */
  get origin(): number {
    return this.#origin;
  }

  /** A stream whose first frame is `first`, at nominal `fps` (the last frame's duration). */
  constructor(first: Frame, fps: number) {
    this.width = first.width;
    this.height = first.height;
    this.#origin = first.capturedAt;
    this.#mkv = new MkvStream({ width: first.width, height: first.height, frameIntervalMicros: 1_000_000 / fps, startedAtMicros: first.capturedAt });
  }

  /** The bytes before the first frame. */
  header(): Uint8Array {
    return this.#mkv.header();
  }

  /** True when `frame` cannot join this stream (its track has another size). */
  differs(frame: Frame): boolean {
    return frame.width !== this.width || frame.height !== this.height;
  }

  /** The chunks carrying `frame`, to be written in order; the last is `frame.jpeg` itself (not copied). */
  chunks(frame: Frame): Uint8Array[] {
    return this.#mkv.frame((frame.capturedAt - this.#origin) / 1000, frame.jpeg).chunks;
  }
}
