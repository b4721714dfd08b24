import type { Frame } from "../wire/frame.ts";
import { frameOffered, readerLayerStart, type ReaderLayerOptions, type ReaderLayerState } from "./reader-layer.ts";

/**
 * Newest-frame-per-reader bookkeeping for MJPEG over HTTP. Each reader holds at most
 * one pending frame: a newer frame replaces it (the older one is counted as skipped),
 * so a slow reader gets the newest picture, never a backlog, and memory stays at one
 * frame reference per reader. Each reader watches one camera and is offered only that
 * camera's frames; one set holds every camera's readers, so one limit bounds them.
 *
 * Each reader is also on one of its camera's picture sizes (layers, 0 = the source's)
 * and is offered only that layer's frames; its skips move it between them
 * (reader-layer.ts). No sockets and no scaling: the wrapper calls take() when its
 * connection wants more and pushes each layer's frames, and the clock (ms) is passed in.
 */

/** One MJPEG reader and its counters. */
export interface MjpegReader {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly name: string;
  /** The camera it watches, by number. */
  readonly camera: number;
  /** How many picture sizes its camera has (1: the source's only, it never moves). */
  readonly layers: number;
  /** The layer it is offered frames of now, 0 = the source's size. */
  readonly layer: number;
  /** Clock ms when it was added. */
  readonly joinedAt: number;
  framesSent: number;
  /** Frames replaced by a newer one before the reader took them. */
  framesSkipped: number;
  bytesSent: number;
  /** Frames taken per second over the last sample() window. */
  fps: number;
  /** Median capture-to-take time over the last sample() window, ms; null when it took none. */
  latencyP50Ms: number | null;
}

interface ReaderState extends MjpegReader {
  layers: number;
  layer: number;
  ladder: ReaderLayerState;
  pending: Frame | null;
  /** The connection asked for a frame and none was there: push() wakes it. */
  waiting: boolean;
  /** Clock ms of the last take that returned a frame (or of joining). */
  lastTakeAt: number;
  window: { at: number; frames: number; latencies: number[] };
}

/** Latencies kept per window; a reader at any sane rate takes fewer in a second. */
const MAX_WINDOW_SAMPLES = 256;

/** The reader limit is reached; the message says how many. */
export class ReadersFullError extends Error {
  override name = "ReadersFullError";
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A reader that moved to another layer, and the layer it left. */
export interface LayerMove {
  reader: MjpegReader;
  from: number;
}

/** What push() did: the readers to wake (their connections should call take() now) and those that moved. */
export interface PushResult {
  wake: string[];
  moved: LayerMove[];
}

/** The set of MJPEG readers, bounded by maxReaders. */
export class MjpegReaders {
  /** Sums over every reader since the start, including those that left. */
  readonly totals = { framesSent: 0, framesSkipped: 0, bytesSent: 0 };
  readonly #readers = new Map<string, ReaderState>();
  readonly #maxReaders: number;
  readonly #stallMs: number;
  readonly #ladder: ReaderLayerOptions;

  /**
   * `stallMs`: a reader that leaves a frame untaken this long is reported by stalled().
   * `ladder`: how readers move between layers (reader-layer.ts's defaults; tests shorten them).
   */
  constructor(opts: { maxReaders: number; stallMs: number; ladder?: ReaderLayerOptions }) {
    if (!(opts.maxReaders >= 1)) throw new RangeError(`maxReaders must be at least 1, got ${opts.maxReaders}`);
    if (!(opts.stallMs > 0)) throw new RangeError(`stallMs must be positive, got ${opts.stallMs}`);
    this.#maxReaders = opts.maxReaders;
    this.#stallMs = opts.stallMs;
    this.#ladder = opts.ladder ?? {};
  }

  get size(): number {
    return this.#readers.size;
  }

  /**
   * Adds a reader of `peer.camera` (default 0), whose camera has `peer.layers` picture
   * sizes (default 1), on the source's; throws ReadersFullError at the limit and
   * RangeError for a known id.
   */
  add(peer: { id: string; address: string; port: number; name: string; camera?: number; layers?: number }, nowMs: number): MjpegReader {
    if (this.#readers.has(peer.id)) throw new RangeError(`reader ${peer.id} already exists`);
    if (this.#readers.size >= this.#maxReaders) throw new ReadersFullError(`${this.#maxReaders} MJPEG readers already connected`);
    const layers = peer.layers ?? 1;
    if (!(Number.isInteger(layers) && layers >= 1)) throw new RangeError(`a camera has at least 1 picture size, got ${layers}`);
    const r: ReaderState = {
      ...peer, camera: peer.camera ?? 0, layers, layer: 0, ladder: readerLayerStart(nowMs, this.#ladder),
      joinedAt: nowMs, framesSent: 0, framesSkipped: 0, bytesSent: 0, fps: 0, latencyP50Ms: null,
      pending: null, waiting: false, lastTakeAt: nowMs, window: { at: nowMs, frames: 0, latencies: [] },
    };
    this.#readers.set(peer.id, r);
    return r;
  }

  /**
   * Offers a frame of `camera` at `layer` (0: the source's, as captured; else that
   * layer's smaller copy) to every reader of that camera on that layer, at `nowMs`.
   * Returns the readers that were waiting for one, and those whose skips moved them to
   * another layer: from the next frame on they are offered that layer's.
   */
  push(frame: Frame, camera: number, nowMs: number, layer = 0): PushResult {
    const out: PushResult = { wake: [], moved: [] };
    for (const r of this.#readers.values()) {
      if (r.camera !== camera || r.layer !== layer) continue;
      const skipped = r.pending !== null;
      if (skipped) {
        r.framesSkipped++;
        this.totals.framesSkipped++;
      }
      r.pending = frame;
      if (r.waiting) {
        r.waiting = false;
        out.wake.push(r.id);
      }
      r.ladder = frameOffered(r.ladder, skipped, r.layers, nowMs, this.#ladder);
      if (r.ladder.layer !== r.layer) {
        out.moved.push({ reader: r, from: r.layer });
        r.layer = r.ladder.layer;
      }
    }
    return out;
  }

  /** The smaller layers (index above 0) some reader of `camera` is on now: the only ones worth making. */
  layersWanted(camera: number): number[] {
    const wanted = new Set<number>();
    for (const r of this.#readers.values()) if (r.camera === camera && r.layer > 0) wanted.add(r.layer);
    return [...wanted].sort((a, b) => a - b);
  }

  /**
   * From now on `camera` has the source's size only (its smaller copies cannot be made):
   * its readers are put back on it, and stay. Returns those that moved.
   */
  sourceOnly(camera: number, nowMs: number): LayerMove[] {
    const moved: LayerMove[] = [];
    for (const r of this.#readers.values()) {
      if (r.camera !== camera) continue;
      r.layers = 1;
      r.ladder = readerLayerStart(nowMs, this.#ladder);
      if (r.layer === 0) continue;
      moved.push({ reader: r, from: r.layer });
      r.layer = 0;
    }
    return moved;
  }

  /**
   * The reader's connection wants a frame: returns the newest one not yet taken and
   * counts it as sent, or null (then the reader waits and push() names it).
   * `nowMicros` is wall-clock time, for the latency from capture.
   */
  take(id: string, nowMs: number, nowMicros: number): Frame | null {
    const r = this.#readers.get(id);
    if (!r) return null;
    const f = r.pending;
    if (!f) {
      r.waiting = true;
      return null;
    }
    r.pending = null;
    r.waiting = false;
    r.lastTakeAt = nowMs;
    r.framesSent++;
    r.bytesSent += f.jpeg.length;
    this.totals.framesSent++;
    this.totals.bytesSent += f.jpeg.length;
    r.window.frames++;
    if (r.window.latencies.length < MAX_WINDOW_SAMPLES) r.window.latencies.push((nowMicros - f.capturedAt) / 1000);
    return f;
  }

  /** Counts bytes the connection wrote around the frame (part headers). */
  addBytes(id: string, bytes: number): void {
    const r = this.#readers.get(id);
    if (!r) return;
    r.bytesSent += bytes;
    this.totals.bytesSent += bytes;
  }

  /**
   * Readers that have left a frame untaken for longer than stallMs: they stopped
   * reading. A reader with nothing pending is not stalled (the source may be paused).
   */
  stalled(nowMs: number): MjpegReader[] {
    const out: MjpegReader[] = [];
    for (const r of this.#readers.values()) if (r.pending && nowMs - r.lastTakeAt > this.#stallMs) out.push(r);
    return out;
  }

  /** Ends each reader's rate window: fps and latency now describe the time since the last call. */
  sample(nowMs: number): void {
    for (const r of this.#readers.values()) {
      const seconds = (nowMs - r.window.at) / 1000;
      if (seconds <= 0) continue;
      r.fps = r.window.frames / seconds;
      r.latencyP50Ms = median(r.window.latencies);
      r.window = { at: nowMs, frames: 0, latencies: [] };
    }
  }

  get(id: string): MjpegReader | undefined {
    return this.#readers.get(id);
  }

  /** Removes a reader and drops its pending frame; returns it, or undefined when already gone. */
  remove(id: string): MjpegReader | undefined {
    const r = this.#readers.get(id);
    if (!r) return undefined;
    this.#readers.delete(id);
    r.pending = null;
    return r;
  }

  all(): MjpegReader[] {
    return [...this.#readers.values()];
  }
}
