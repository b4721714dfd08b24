import type { ViewerWindow } from "./viewer-window.ts";

/**
 * Feeds a window the newest frame only. Frames arrive from the network callback;
 * each is decoded on a worker thread and drawn when that finishes. A frame that
 * arrives while one is being decoded waits (only the newest: it replaces any frame
 * already waiting), so a slow display skips frames instead of backing up the
 * receive path, and the JS thread never spends a decode's time per frame.
 */
export class WindowSink {
  /** Frames drawn. */
  shown = 0;
  /** Frames replaced by a newer one before they could be drawn. */
  skipped = 0;
  #buf = new Uint8Array(0);
  #len = 0;
  #waiting = false;
  #busy = false;
  #closed = false;
  /** Resolves when nothing is being decoded or waiting (for tests and shutdown). */
  #idle: Promise<void> = Promise.resolve();
  #settle: (() => void) | null = null;

  constructor(
    private readonly window: Pick<ViewerWindow, "showAsync" | "pollKey">,
    private readonly onKey: (key: number) => void,
  ) {}

  /** Keeps a copy of `jpeg` (the caller's buffer is reused) and has it drawn as soon as the window is free. */
  push(jpeg: Uint8Array): void {
    if (this.#closed) return;
    if (this.#waiting) this.skipped++;
    if (this.#buf.length < jpeg.length) this.#buf = new Uint8Array(Math.ceil(jpeg.length * 1.25));
    this.#buf.set(jpeg);
    this.#len = jpeg.length;
    this.#waiting = true;
    if (!this.#busy) {
      this.#idle = new Promise((r) => (this.#settle = r));
      void this.#drain();
    }
  }

  /** Resolves once every pushed frame has been drawn or skipped. */
  idle(): Promise<void> {
    return this.#idle;
  }

  /** No more frames are drawn; resolves once a draw under way has finished. */
  close(): Promise<void> {
    this.#closed = true;
    this.#waiting = false;
    return this.#idle;
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#waiting && !this.#closed) {
        this.#waiting = false;
        // The native side copies the bytes before it returns, so #buf may be refilled meanwhile.
        if (await this.window.showAsync(this.#buf.subarray(0, this.#len))) this.shown++;
        if (this.#closed) break;
        const key = this.window.pollKey(1);
        if (key >= 0) this.onKey(key);
      }
    } catch {
      // A window that went away mid-draw: nothing more to show, and nothing to crash over.
      this.#closed = true;
    } finally {
      this.#busy = false;
      this.#settle?.();
    }
  }
}
