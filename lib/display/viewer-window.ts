/**
 * A desktop window showing JPEG frames (OpenCV highgui). Calls must come from
 * the main thread; a bad frame is counted and skipped, never thrown.
 */
import { cv, type WindowText } from "../native/cv.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";

/** A picture size. */
export interface WindowSize {
  width: number;
  height: number;
}

/**
 * The size to show a frame at in a window that shows `current` (null before the first
 * frame). A smaller frame of the same shape (a lower quality layer) is scaled up, so the
 * window keeps its size; a larger one, or one of another shape (another stream), is
 * shown as it is and the window follows it.
 */
export function windowSizeFor(current: WindowSize | null, frame: WindowSize): WindowSize {
  if (!current || frame.width > current.width || frame.height > current.height) return frame;
  // Same shape within the rounding of each side down to an even number: |w/W - h/H| < 2/min(W, H).
  const sameShape = Math.abs(frame.width * current.height - frame.height * current.width) < 2 * Math.max(current.width, current.height);
  return sameShape ? current : frame;
}

/** True when an X display can be opened (probed without Qt, which would abort the process). */
export function displayAvailable(): boolean {
  return cv().displayAvailable();
}

/** One on-screen window. */
export class ViewerWindow implements Disposable {
  #name: string | undefined;
  #shown = 0;
  #bad = 0;
  /** What the window shows frames at; null before the first. */
  #size: WindowSize | null = null;
  #fullScreen = false;
  /** A key read while going full screen, for the next pollKey. */
  #key = -1;

  /** Frames shown so far. */
  get shown(): number {
    return this.#shown;
  }

  /** Frames that did not decode (or could not be shown) and were skipped. */
  get badFrames(): number {
    return this.#bad;
  }

  /** Opens the window titled `title` (full screen when asked); throws when there is no display or it is already open. */
  open(title: string, options: { fullScreen?: boolean } = {}): this {
    if (this.#name !== undefined) throw new Error(`window "${this.#name}" is already open`);
    if (!displayAvailable()) {
      throw new Error(`cannot open a window: no X display (DISPLAY=${process.env.DISPLAY ?? "unset"})`);
    }
    cv().openWindow(title);
    this.#name = title;
    if (options.fullScreen) this.setFullScreen(true);
    return this;
  }

  /** True while the window is full screen. */
  get fullScreen(): boolean {
    return this.#fullScreen;
  }

  /** Full screen on or off, the picture's aspect kept; false when the window is closed or refuses. */
  setFullScreen(on: boolean): boolean {
    if (this.#name === undefined) return false;
    try {
      const { key } = cv().setWindowFullScreen(this.#name, on);
      if (key !== -1) this.#key = key;
      this.#fullScreen = on;
      return true;
    } catch {
      return false;
    }
  }

  /** Draws the last frame again with `text` on it (the text changed, no new frame came); false before the first. */
  redraw(text: WindowText): boolean {
    if (this.#name === undefined) return false;
    try {
      return cv().redrawWindow(this.#name, text);
    } catch {
      return false;
    }
  }

  /** The size frames are shown at (the window's picture area); null before the first. */
  get size(): WindowSize | null {
    return this.#size;
  }

  /**
   * Shows one frame, decoding it on a worker thread (only the drawing happens on this
   * one), scaled to the window's size when it is a smaller layer of the same picture
   * (windowSizeFor), with `text` drawn on it; false (and counted) when it does not decode.
   * Call one at a time.
   */
  async showAsync(jpeg: Uint8Array, text?: WindowText): Promise<boolean> {
    if (this.#name === undefined) return false; // closed (or never opened): nothing to draw on
    const header = readJpegSize(jpeg);
    const target = header ? windowSizeFor(this.#size, header) : null;
    let ok = false;
    try {
      const scale = target && header && (target.width !== header.width || target.height !== header.height);
      ok = (await (scale ? cv().decodeForWindow(jpeg, target.width, target.height) : cv().decodeForWindow(jpeg))) &&
        this.#name !== undefined && cv().showDecoded(this.#name, text);
    } catch {
      ok = false;
    }
    if (ok) {
      this.#shown++;
      this.#size = target;
    } else {
      this.#bad++;
    }
    return ok;
  }

  /** Lets the window redraw for up to `ms`; the key pressed, or -1. */
  pollKey(ms: number): number {
    if (this.#name === undefined) return -1;
    const held = this.#key;
    this.#key = -1;
    return held !== -1 ? held : cv().pollKey(ms);
  }

  /** False once the user has closed the window with its close button. */
  get visible(): boolean {
    if (this.#name === undefined) return false;
    try {
      return cv().windowVisible(this.#name);
    } catch {
      return false;
    }
  }

  /** Closes the window; safe to call twice. */
  close(): void {
    if (this.#name === undefined) return;
    const name = this.#name;
    this.#name = undefined;
    cv().closeWindow(name);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
