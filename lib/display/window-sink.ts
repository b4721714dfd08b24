import { ViewerWindow } from "./viewer-window.ts";

const ESC = 27;
const KEY_Q = "q".charCodeAt(0);
/** How often keys are read when no frame is being drawn. */
const KEY_POLL_MS = 50;

/** Why the user asked the viewer to stop: ESC or q pressed, or the window's close button. */
export type QuitReason = "key" | "closed";

/** The part of a ViewerWindow the sink uses (tests pass a fake). */
export type WindowLike = Pick<ViewerWindow, "showAsync" | "pollKey" | "visible" | "close">;

/**
 * The viewer's window as a frame sink, and the user's way out of it.
 *
 * Frames: only the newest is drawn. Frames arrive from the network callback; each
 * is decoded on a worker thread and drawn when that finishes. A frame that arrives
 * while one is being decoded waits (only the newest: it replaces any frame already
 * waiting), so a slow display skips frames instead of backing up the receive path,
 * and the JS thread never spends a decode's time per frame.
 *
 * Quitting: ESC or q, or closing the window, calls `onQuit` once. Keys are read after
 * every draw and on a timer, because with no frames coming the window would
 * otherwise freeze and never see ESC.
 */
export class WindowSink implements AsyncDisposable {
  /** Frames drawn. */
  shown = 0;
  /** Frames replaced by a newer one before they could be drawn. */
  skipped = 0;
  readonly #window: WindowLike;
  readonly #onQuit: (reason: QuitReason) => void;
  readonly #keys: ReturnType<typeof setInterval>;
  #quit = false;
  #buf = new Uint8Array(0);
  #len = 0;
  #waiting = false;
  #busy = false;
  #closed = false;
  /** Resolves when nothing is being decoded or waiting (for tests and shutdown). */
  #idle: Promise<void> = Promise.resolve();
  #settle: (() => void) | null = null;

  constructor(window: WindowLike, onQuit: (reason: QuitReason) => void, keyPollMs = KEY_POLL_MS) {
    this.#window = window;
    this.#onQuit = onQuit;
    this.#keys = setInterval(() => this.#pollKeys(), keyPollMs);
  }

  /** Opens a window titled `title` on the display and feeds it. */
  static open(title: string, onQuit: (reason: QuitReason) => void): WindowSink {
    return new WindowSink(new ViewerWindow().open(title), onQuit);
  }

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

  /** No more frames are drawn or keys read; once a draw under way has finished, the window closes. */
  async close(): Promise<void> {
    clearInterval(this.#keys);
    this.#closed = true;
    this.#waiting = false;
    await this.#idle;
    this.#window.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #pollKeys(): void {
    this.#key(this.#window.pollKey(1));
    if (!this.#window.visible) this.#quitFor("closed");
  }

  #key(key: number): void {
    if (key === ESC || key === KEY_Q) this.#quitFor("key");
  }

  #quitFor(reason: QuitReason): void {
    if (this.#quit) return;
    this.#quit = true;
    this.#onQuit(reason);
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#waiting && !this.#closed) {
        this.#waiting = false;
        // The native side copies the bytes before it returns, so #buf may be refilled meanwhile.
        if (await this.#window.showAsync(this.#buf.subarray(0, this.#len))) this.shown++;
        if (this.#closed) break;
        this.#key(this.#window.pollKey(1));
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
