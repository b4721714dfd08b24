import { cv } from "../native/cv.ts";
import type { Frame } from "../wire/frame.ts";
import type { Size } from "./layer-ladder.ts";

/** Makes smaller copies of a JPEG (the addon's scaleJpeg; tests pass their own). */
export type ScaleFunction = (jpeg: Uint8Array, sizes: readonly Size[], quality: number) => Promise<{ jpegs: Uint8Array[] } | { jpegs: null; reason: string }>;

/** JPEG quality of the smaller layers (the server's default --quality). */
export const DEFAULT_LAYER_QUALITY = 80;

/** What the layer encoder has done, for the server's stats. */
export interface LayerEncoderStats {
  /** Frames scaled (each once, for every layer asked for at the time). */
  scaled: number;
  /** Frames that did not decode or encode; the last reason is kept. */
  failed: number;
  /** Frames replaced by a newer one before their turn came. */
  superseded: number;
  lastFailure: string | null;
}

/** One frame's smaller copies: layer index to frame. */
export type LayerFrames = Map<number, Frame>;

/**
 * Makes the lower quality layers of the server's frames, off the event loop: the
 * source JPEG is decoded once per frame and encoded at each size some viewer is on.
 * One scale runs at a time and at most the newest frame waits behind it, so a slow
 * machine costs lower-layer frames, never memory or the full layer's timing.
 */
export class LayerEncoder {
  readonly stats: LayerEncoderStats = { scaled: 0, failed: 0, superseded: 0, lastFailure: null };
  readonly #scale: ScaleFunction;
  readonly #quality: number;
  readonly #deliver: (frames: LayerFrames) => void;
  #running = false;
  #waiting: { frame: Frame; layers: Map<number, Size> } | null = null;
  #closed = false;

  /** `deliver` gets each frame's copies when they are made. */
  constructor(deliver: (frames: LayerFrames) => void, opts: { quality?: number; scale?: ScaleFunction } = {}) {
    this.#deliver = deliver;
    this.#quality = opts.quality ?? DEFAULT_LAYER_QUALITY;
    if (!(Number.isInteger(this.#quality) && this.#quality >= 1 && this.#quality <= 100)) throw new RangeError(`layer quality must be 1..100, got ${this.#quality}`);
    this.#scale = opts.scale ?? ((jpeg, sizes, q) => cv().scaleJpeg(jpeg, sizes, q));
  }

  /** A frame (unsigned, as captured) and the layers wanted for it (index to size); copies its bytes if it has to wait. */
  push(frame: Frame, layers: Map<number, Size>): void {
    if (this.#closed || layers.size === 0) return;
    if (this.#waiting) this.stats.superseded++;
    // The capture may reuse its buffer; a frame that waits keeps its own bytes.
    this.#waiting = { frame: { ...frame, jpeg: frame.jpeg.slice() }, layers };
    if (!this.#running) void this.#run();
  }

  /** No more frames: what is running finishes, and nothing is delivered after. */
  close(): void {
    this.#closed = true;
    this.#waiting = null;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#waiting && !this.#closed) {
        const { frame, layers } = this.#waiting;
        this.#waiting = null;
        const entries = [...layers.entries()];
        let result: Awaited<ReturnType<ScaleFunction>>;
        try {
          result = await this.#scale(frame.jpeg, entries.map(([, s]) => s), this.#quality);
        } catch (e) {
          result = { jpegs: null, reason: (e as Error).message };
        }
        if (this.#closed) return;
        const jpegs = result.jpegs;
        if (jpegs === null || jpegs.length !== entries.length) {
          this.stats.failed++;
          this.stats.lastFailure = result.jpegs === null ? result.reason : `${jpegs?.length} copies for ${entries.length} sizes`;
          continue;
        }
        this.stats.scaled++;
        const out: LayerFrames = new Map();
        entries.forEach(([index, size], i) => {
          const jpeg = jpegs[i];
          if (jpeg) out.set(index, { seq: frame.seq, capturedAt: frame.capturedAt, width: size.width, height: size.height, jpeg });
        });
        this.#deliver(out);
      }
    } finally {
      this.#running = false;
    }
  }
}
