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
