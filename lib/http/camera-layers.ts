import type { Frame } from "../wire/frame.ts";
import type { ReaderLayerOptions } from "./reader-layer.ts";

/**
 * The smaller pictures of one camera for MJPEG readers that fall behind: its sizes, and
 * the scaler that makes a frame's copies at the sizes readers are on. The server gives
 * the sizes of its --layers ladder and its layer encoder (HttpViewOptions.layers), so
 * this folder never imports the sending side.
 */

/** A picture size. */
export interface PictureSize {
  width: number;
  height: number;
}

/**
 * Makes smaller copies of a camera's frames off the event loop, one frame at a time,
 * the newest waiting (the server's LayerEncoder): `layers` maps a layer's index to its
 * size; the copies are delivered to the function the scaler was made with.
 */
export interface PictureScaler {
  push(frame: Frame, layers: Map<number, PictureSize>): void;
  close(): void;
  /** Why the last frame that could not be scaled failed, when the scaler says. */
  readonly stats?: { readonly lastFailure: string | null };
}

/** What HttpView needs to send readers that fall behind smaller pictures. */
export interface ReaderLayers {
  /**
   * Each camera's sizes (index = its number), largest first; the first is the source's,
   * sent as captured. A camera with one size has no smaller pictures.
   */
  sizes: readonly (readonly PictureSize[])[];
  /** A scaler for `camera`; `deliver` takes each frame's copies (layer index to frame). */
  scaler: (camera: number, deliver: (frames: Map<number, Frame>) => void) => PictureScaler;
  /** How readers move between sizes (reader-layer.ts's defaults; tests shorten them). */
  ladder?: ReaderLayerOptions;
}

/** Smaller copies asked for and none delivered for this long, ms: the scaler is taken as failed. */
export const SCALE_GIVE_UP_MS = 3000;

/**
 * One camera's sizes and its scaler, made when first needed. Copies are made only of the
 * layers some reader is on, once per frame for all of them; a camera whose copies stop
 * coming (failing()) can be put back on its source's size for good (sourceOnly()).
 */
export class CameraLayers {
  #sizes: readonly PictureSize[];
  readonly #makeScaler: ((deliver: (frames: Map<number, Frame>) => void) => PictureScaler) | null;
  readonly #deliver: (frames: Map<number, Frame>) => void;
  #scaler: PictureScaler | null = null;
  /** When copies were first asked for since the last delivery; null when none are awaited. */
  #awaitedSince: number | null = null;

  /**
   * `makeScaler` is called once, when a copy is first wanted (null: the camera has one
   * size, no copies); `deliver` gets each frame's copies.
   */
  constructor(sizes: readonly PictureSize[], makeScaler: ((deliver: (frames: Map<number, Frame>) => void) => PictureScaler) | null, deliver: (frames: Map<number, Frame>) => void) {
    if (sizes.length < 1) throw new RangeError("a camera has at least its source's picture size");
    if (sizes.length > 1 && !makeScaler) throw new RangeError("a camera with smaller picture sizes needs a scaler");
    this.#sizes = sizes;
    this.#makeScaler = makeScaler;
    this.#deliver = (frames) => {
      this.#awaitedSince = null;
      deliver(frames);
    };
  }

  /** Its sizes, largest first; one (the source's) when it has no smaller pictures. */
  get sizes(): readonly PictureSize[] {
    return this.#sizes;
  }

  /** A frame of the camera, and the layers (above 0) readers are on now: their copies are made. */
  offer(frame: Frame, wanted: readonly number[], nowMs: number): void {
    const layers = new Map<number, PictureSize>();
    for (const i of wanted) {
      const size = this.#sizes[i];
      if (i > 0 && size) layers.set(i, size);
    }
    if (layers.size === 0 || !this.#makeScaler) {
      this.#awaitedSince = null;
      return;
    }
    this.#scaler ??= this.#makeScaler(this.#deliver);
    this.#awaitedSince ??= nowMs;
    this.#scaler.push(frame, layers);
  }

  /** Copies have been asked for and none came for SCALE_GIVE_UP_MS: the readers on them get nothing. */
  failing(nowMs: number): boolean {
    return this.#awaitedSince !== null && nowMs - this.#awaitedSince > SCALE_GIVE_UP_MS;
  }

  /** Why its copies failed, when the scaler says. */
  get lastFailure(): string | null {
    return this.#scaler?.stats?.lastFailure ?? null;
  }

  /** From now on the source's size only: the scaler is closed, nothing more is made. */
  sourceOnly(): void {
    this.#sizes = this.#sizes.slice(0, 1);
    this.#awaitedSince = null;
    this.close();
  }

  close(): void {
    this.#scaler?.close();
    this.#scaler = null;
  }
}
