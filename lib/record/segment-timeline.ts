/** Why a frame starts a new segment. */
export type RotationReason = "first" | "length" | "size" | "clock" | "gap";

/** A capture time this far behind the previous one means the wall clock was stepped back. */
export const CLOCK_BACK_MICROS = 1_000_000;

/**
 * A hole in capture times longer than this starts a new segment instead of being bridged. It is
 * longer than any network hiccup that AVI's repeat-filling is meant for, and short enough that an
 * outage or a reconnect never becomes gigabytes of one frame repeated (AVI) or a segment that
 * silently spans minutes without a picture (Matroska).
 */
export const MAX_GAP_MICROS = 2_000_000;

/**
 * The timing rules of a recording, in one place and free of I/O:
 *
 *   SegmentTimeline   which segment a frame belongs to (length, size, clock and hole rules) and
 *                     its slot on the segment's constant-rate grid, driven by capture times;
 *   GapFiller         AVI only: the repeats of the previous frame that fill the empty slots
 *                     before a frame, handed out as fast as the pipe takes them.
 *
 * Matroska needs no filling: each frame carries its capture time (mkv-stream.ts).
 */

/**
 * Where frames go: segment boundaries and, within a segment, the constant-rate slot of each
 * frame. Pure state, driven frame by frame.
 */
export class SegmentTimeline {
  /**
   * Holes longer than this start a new segment: {@link MAX_GAP_MICROS}, or two and a half frame
   * intervals when the source is that slow, so that one lost frame (a hole of two intervals,
   * plus jitter) is bridged, never taken for an outage.
   */
  readonly gapMicros: number;
  #start = 0;
  #lastSlot = -1;
  #lastAt = 0;
  #width = 0;
  #height = 0;
  #open = false;

  constructor(
    readonly segmentMicros: number,
    readonly intervalMicros: number,
  ) {
    this.gapMicros = Math.max(MAX_GAP_MICROS, 2.5 * intervalMicros);
  }

  /** Capture time of the open segment's first frame. */
  get start(): number {
    return this.#start;
  }

  /** Slot of the last placed frame (-1 before the first). */
  get lastSlot(): number {
    return this.#lastSlot;
  }

  /** Latest capture time seen in the open segment, placed or skipped. */
  get lastAt(): number {
    return this.#lastAt;
  }

  /**
   * Why a frame must begin a new segment, or null when it belongs to the open one. A hole counts
   * as "gap" even when it also crosses the segment length: the file ends because capture stopped.
   */
  rotation(capturedAt: number, width: number, height: number): RotationReason | null {
    if (!this.#open) return "first";
    if (width !== this.#width || height !== this.#height) return "size";
    if (capturedAt < this.#lastAt - CLOCK_BACK_MICROS) return "clock";
    if (capturedAt - this.#lastAt > this.gapMicros) return "gap";
    if (capturedAt - this.#start >= this.segmentMicros) return "length";
    return null;
  }

  /** Opens a segment whose first frame is captured at `capturedAt`. */
  begin(capturedAt: number, width: number, height: number): void {
    this.#open = true;
    this.#start = capturedAt;
    this.#lastSlot = -1;
    this.#lastAt = capturedAt;
    this.#width = width;
    this.#height = height;
  }

  /**
   * Places a frame of the open segment: its slot, round((capturedAt - start) / interval), and the
   * slots left empty since the previous frame. A frame is never dropped for timing: one that falls
   * on or before the previous slot takes the next one.
   */
  place(capturedAt: number): { slot: number; gap: number; offsetMicros: number } {
    const ideal = Math.round((capturedAt - this.#start) / this.intervalMicros);
    const slot = Math.max(ideal, this.#lastSlot + 1);
    const gap = slot - this.#lastSlot - 1;
    this.#lastSlot = slot;
    this.#lastAt = Math.max(this.#lastAt, capturedAt);
    return { slot, gap, offsetMicros: capturedAt - this.#start };
  }

  /**
   * Notes a frame of the open segment that arrived but was not placed (the writer dropped it
   * because ffmpeg was behind). The source did not stop, so the slots it leaves empty are filled
   * as lost frames, never taken for a hole that starts a new segment.
   */
  skip(capturedAt: number): void {
    if (this.#open) this.#lastAt = Math.max(this.#lastAt, capturedAt);
  }

  /** Forgets the open segment: the next frame begins a new one. */
  reset(): void {
    this.#open = false;
  }
}

/** A reusable copy of one JPEG (the caller may reuse its buffer once write() returns). */
class JpegCopy {
  #buf = new Uint8Array(0);
  bytes = new Uint8Array(0);

  set(src: Uint8Array): void {
    if (this.#buf.length < src.length) this.#buf = new Uint8Array(Math.ceil(src.length * 1.25));
    this.#buf.set(src);
    this.bytes = this.#buf.subarray(0, src.length);
  }
}

/** One picture for the AVI stream: a frame, or a repeat of the previous one filling a lost slot. */
export interface Picture {
  bytes: Uint8Array;
  repeat: boolean;
}

/**
 * AVI has one picture per slot of a constant-rate grid and no timestamps, so a slot left empty by
 * a lost frame is filled with the previous frame again; otherwise everything after it would play
 * early. Takes each placed frame with the number of empty slots before it ({@link
 * SegmentTimeline.place}'s `gap`) and hands out the repeats, then the frame, one at a time, so the
 * writer sends only what the pipe takes and the rest waits here (one frame, never a backlog).
 */
export class GapFiller {
  #prev = new JpegCopy();
  #next = new JpegCopy();
  #held = false;
  #owed = 0;

  /** True while repeats or a frame are still to be handed out: no new frame may be added. */
  get waiting(): boolean {
    return this.#owed > 0 || this.#held;
  }

  /** Repeats still owed before the held frame. */
  get owed(): number {
    return this.#owed;
  }

  /**
   * Takes the frame that comes `gap` empty slots after the previous one. It is copied, so the
   * caller may reuse `jpeg` at once. Throws while an earlier frame is still waiting.
   */
  add(jpeg: Uint8Array, gap: number): void {
    if (this.waiting) throw new Error("GapFiller.add: the previous frame has not been handed out yet");
    if (!(Number.isInteger(gap) && gap >= 0)) throw new RangeError(`gap must be a whole number >= 0, got ${gap}`);
    // Nothing to repeat before the first frame of a segment (its slot is 0, so its gap is 0 too).
    this.#owed = this.#prev.bytes.length > 0 ? gap : 0;
    this.#next.set(jpeg);
    this.#held = true;
  }

  /**
   * The next picture to write, or null when none waits. Send it before the next add(), which may
   * reuse its buffer; a repeat hands out the same bytes as the frame before it.
   */
  next(): Picture | null {
    if (this.#owed > 0) {
      this.#owed--;
      return { bytes: this.#prev.bytes, repeat: true };
    }
    if (!this.#held) return null;
    this.#held = false;
    [this.#prev, this.#next] = [this.#next, this.#prev];
    return { bytes: this.#prev.bytes, repeat: false };
  }

  /** Forgets what waits (the segment ends); true when a frame, not only repeats, was forgotten. */
  clear(): boolean {
    const hadFrame = this.#held;
    this.#held = false;
    this.#owed = 0;
    return hadFrame;
  }
}
