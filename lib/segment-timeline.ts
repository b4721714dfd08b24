/** Why a frame starts a new segment. */
export type RotationReason = "first" | "length" | "size" | "clock";

/** A capture time this far behind the previous one means the wall clock was stepped back. */
export const CLOCK_BACK_MICROS = 1_000_000;

/**
 * Where frames go: segment boundaries and, within a segment, the constant-rate slot of each
 * frame. Pure state, driven frame by frame.
 */
export class SegmentTimeline {
  #start = 0;
  #lastSlot = -1;
  #lastAt = 0;
  #width = 0;
  #height = 0;
  #open = false;

  constructor(
    readonly segmentMicros: number,
    readonly intervalMicros: number,
  ) {}

  /** Capture time of the open segment's first frame. */
  get start(): number {
    return this.#start;
  }

  /** Slot of the last placed frame (-1 before the first). */
  get lastSlot(): number {
    return this.#lastSlot;
  }

  /** Why a frame must begin a new segment, or null when it belongs to the open one. */
  rotation(capturedAt: number, width: number, height: number): RotationReason | null {
    if (!this.#open) return "first";
    if (width !== this.#width || height !== this.#height) return "size";
    if (capturedAt < this.#lastAt - CLOCK_BACK_MICROS) return "clock";
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

  /** Forgets the open segment: the next frame begins a new one. */
  reset(): void {
    this.#open = false;
  }
}
