import type { Frame } from "../wire/frame.ts";
import { MAX_CLASSIC_DATAGRAM } from "../wire/classic.ts";
import { cv, type FitJpegResult } from "../native/cv.ts";

/** Makes a JPEG of at most `maxBytes` from another (the addon's fitJpeg; tests pass their own). */
export type FitFunction = (jpeg: Uint8Array, maxBytes: number, quality: number) => Promise<FitJpegResult>;

/** How the classic encoder runs. */
export interface ClassicEncoderOptions {
  /** Largest picture, bytes (default MAX_CLASSIC_DATAGRAM). */
  maxBytes?: number;
  /** JPEG quality for re-encoded pictures, 1..100 (default 80, the server's default). */
  quality?: number;
  fit?: FitFunction;
}

/** What the classic encoder has done, for the server's stats. */
export interface ClassicEncoderStats {
  /** Frames that already fitted and went out as they were. */
  passed: number;
  /** Frames shrunk or re-encoded to fit. */
  refitted: number;
  /** Frames that could not be fitted (skipped); the last reason is kept. */
  failed: number;
  /** Frames replaced by a newer one before their turn came. */
  superseded: number;
  lastFailure: string | null;
}

/**
 * Turns the server's frames into pictures that fit one classic datagram, once per
 * frame whoever asks: every classic viewer shares the result. One fit runs at a time
 * and at most one frame waits behind it (the newest), so a slow fit costs frames,
 * never memory. The server calls `fit` only while a classic viewer is connected.
 */
export class ClassicEncoder {
  readonly stats: ClassicEncoderStats = { passed: 0, refitted: 0, failed: 0, superseded: 0, lastFailure: null };
  readonly #maxBytes: number;
  readonly #quality: number;
  readonly #fit: FitFunction;
  /** The frame fitted last (or being fitted) and its outcome. */
  #current: { seq: number; result: Promise<Frame | null> } | null = null;
  /** The frame waiting for the running fit, with the settle function of its promise. */
  #waiting: { frame: Frame; result: Promise<Frame | null>; resolve: (f: Frame | null | Promise<Frame | null>) => void } | null = null;
  #running = false;

  constructor(opts: ClassicEncoderOptions = {}) {
    this.#maxBytes = opts.maxBytes ?? MAX_CLASSIC_DATAGRAM;
    this.#quality = opts.quality ?? 80;
    if (!(Number.isInteger(this.#maxBytes) && this.#maxBytes >= 1)) throw new RangeError(`maxBytes must be a positive integer, got ${this.#maxBytes}`);
    if (!(Number.isInteger(this.#quality) && this.#quality >= 1 && this.#quality <= 100)) throw new RangeError(`quality must be 1..100, got ${this.#quality}`);
    this.#fit = opts.fit ?? ((jpeg, max, q) => cv().fitJpeg(jpeg, max, q));
  }

  /**
   * The frame as a picture of at most maxBytes (same seq and capture time, possibly
   * smaller), or null when it cannot be fitted or a newer frame took its place.
   * Asking again for the same seq returns the same promise without new work.
   */
  fit(frame: Frame): Promise<Frame | null> {
    if (this.#current?.seq === frame.seq) return this.#current.result;
    if (this.#waiting?.frame.seq === frame.seq) return this.#waiting.result;
    if (frame.jpeg.length <= this.#maxBytes) {
      // Nothing to do, and nothing to wait for: the picture goes out as it is.
      this.stats.passed++;
      this.#dropWaiting();
      const result = Promise.resolve(frame);
      this.#current = { seq: frame.seq, result };
      return result;
    }
    if (!this.#running) return this.#start(frame);
    this.#dropWaiting();
    let resolve!: (f: Frame | null | Promise<Frame | null>) => void;
    const result = new Promise<Frame | null>((r) => (resolve = r));
    this.#waiting = { frame, result, resolve };
    return result;
  }

  /** A newer frame came: the one waiting will never be wanted. */
  #dropWaiting(): void {
    if (!this.#waiting) return;
    this.stats.superseded++;
    this.#waiting.resolve(null);
    this.#waiting = null;
  }

  #start(frame: Frame): Promise<Frame | null> {
    this.#running = true;
    const result = this.#fitOne(frame).finally(() => {
      this.#running = false;
      const next = this.#waiting;
      this.#waiting = null;
      if (next) next.resolve(this.#start(next.frame));
    });
    this.#current = { seq: frame.seq, result };
    return result;
  }

  async #fitOne(frame: Frame): Promise<Frame | null> {
    let r: FitJpegResult;
    try {
      r = await this.#fit(frame.jpeg, this.#maxBytes, this.#quality);
    } catch (e) {
      r = { jpeg: null, reason: (e as Error).message };
    }
    // The addon promises the size; checked again because an oversized datagram would
    // not arrive at all, and the viewer would wait for it.
    if (r.jpeg && r.jpeg.length > this.#maxBytes) r = { jpeg: null, reason: `fitted picture of ${r.jpeg.length} bytes exceeds ${this.#maxBytes}` };
    if (!r.jpeg) {
      this.stats.failed++;
      this.stats.lastFailure = r.reason;
      return null;
    }
    this.stats.refitted++;
    return { seq: frame.seq, capturedAt: frame.capturedAt, width: r.width, height: r.height, jpeg: r.jpeg };
  }
}
