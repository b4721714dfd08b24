import type { Frame } from "../wire/frame.ts";
import { StreamMeter } from "./rates.ts";
import { ViewHistory } from "./view-state.ts";

/**
 * What the view keeps of one camera's frames: the newest (for /snapshot.jpg), how many
 * came, their rates and the last minute. Readers are not here: one MjpegReaders holds
 * the readers of every camera, so one limit bounds them all.
 */
export class CameraFeed {
  readonly meter = new StreamMeter();
  readonly history: ViewHistory;
  #latest: Frame | null = null;
  #framesEncoded = 0;

  /** `historySeconds`: points the chart keeps, one a second. */
  constructor(historySeconds: number) {
    this.history = new ViewHistory(historySeconds);
  }

  /** A frame of this camera reached the view at `nowMs` (performance clock). */
  push(frame: Frame, nowMs: number): void {
    this.#latest = frame;
    this.#framesEncoded++;
    this.meter.frame(frame.jpeg.length, nowMs);
  }

  /** The newest frame, or null before the first. */
  get latest(): Frame | null {
    return this.#latest;
  }

  get framesEncoded(): number {
    return this.#framesEncoded;
  }

  /** The newest frame's number and capture time, as /state shows them. */
  lastFrame(): { seq: number; capturedAt: number } | null {
    const f = this.#latest;
    return f ? { seq: f.seq, capturedAt: f.capturedAt } : null;
  }
}
