import type { ViewerWindow } from "./viewer-window.ts";

/**
 * Feeds a window the newest frame only. Frames arrive from the network callback;
 * showing one (decode, draw, let the window process events) happens in a later turn
 * of the event loop, and a frame that arrives before that replaces the waiting one.
 * A slow display therefore skips frames instead of backing up the receive path.
 */
export class WindowSink {
  /** Frames drawn. */
  shown = 0;
  /** Frames replaced by a newer one before they could be drawn. */
  skipped = 0;
  #buf = new Uint8Array(0);
  #len = 0;
  #scheduled = false;

  constructor(
    private readonly window: ViewerWindow,
    private readonly onKey: (key: number) => void,
  ) {}

  /** Keeps a copy of `jpeg` (the caller's buffer is reused) and schedules drawing it. */
  push(jpeg: Uint8Array): void {
    if (this.#scheduled) this.skipped++;
    if (this.#buf.length < jpeg.length) this.#buf = new Uint8Array(Math.ceil(jpeg.length * 1.25));
    this.#buf.set(jpeg);
    this.#len = jpeg.length;
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#draw());
  }

  #draw(): void {
    this.#scheduled = false;
    if (this.window.show(this.#buf.subarray(0, this.#len))) this.shown++;
    const key = this.window.pollKey(1);
    if (key >= 0) this.onKey(key);
  }
}
