import { seqLess } from "../wire/seq.ts";

/**
 * Tells frames the server skipped (pacing a slow path) from frames lost on the way.
 * The reassembler counts every frame number it never saw as missing; a delivery
 * message says how many of this session's frames the server skipped, complete up to
 * a frame number. That count is believed once the viewer has delivered a frame at or
 * past that number (before, the gaps it covers may not have been seen yet), and never
 * for more frames than the session is missing: so received + missing + incomplete +
 * skipped stays exactly the frame numbers spanned, whatever the server says.
 * A pure state machine; the viewer feeds it the reassembler's cumulative count.
 */
export class SkipLedger {
  /** Skipped frames settled in earlier sessions. */
  #earlier = 0;
  /** The reassembler's missing count when this session began. */
  #sessionBase = 0;
  /** The skipped count in force: its frame number has been reached. */
  #applied = 0;
  /** The latest announcement not yet in force. */
  #pending: { skipped: number; through: number } | null = null;
  #lastFrame: number | null = null;

  /** A new session (welcome): its server counts skips from 0 again. */
  session(rawMissing: number): void {
    this.#earlier = this.skipped(rawMissing);
    this.#sessionBase = rawMissing;
    this.#applied = 0;
    this.#pending = null;
    this.#lastFrame = null;
  }

  /** A delivery message: `skipped` frames of this session skipped, complete up to frame `through`. */
  announce(skipped: number, through: number): void {
    this.#pending = { skipped, through };
    this.#settle();
  }

  /** A frame was delivered (in frame-number order). */
  frame(frameNumber: number): void {
    this.#lastFrame = frameNumber;
    this.#settle();
  }

  /** Frames skipped so far (all sessions), given the reassembler's cumulative missing count. */
  skipped(rawMissing: number): number {
    const missing = Math.max(0, rawMissing - this.#sessionBase);
    return this.#earlier + Math.min(this.#applied, missing);
  }

  #settle(): void {
    const p = this.#pending;
    if (!p || this.#lastFrame === null || seqLess(this.#lastFrame, p.through)) return;
    this.#applied = p.skipped;
    this.#pending = null;
  }
}
