/**
 * A desktop window showing JPEG frames (OpenCV highgui). Calls must come from
 * the main thread; a bad frame is counted and skipped, never thrown.
 */
import { cv } from "../native/cv.ts";

/** True when an X display can be opened (probed without Qt, which would abort the process). */
export function displayAvailable(): boolean {
  return cv().displayAvailable();
}

/** One on-screen window. */
export class ViewerWindow implements Disposable {
  #name: string | undefined;
  #shown = 0;
  #bad = 0;

  /** Frames shown so far. */
  get shown(): number {
    return this.#shown;
  }

  /** Frames that did not decode (or could not be shown) and were skipped. */
  get badFrames(): number {
    return this.#bad;
  }

  /** Opens the window titled `title`; throws when there is no display or it is already open. */
  open(title: string): this {
    if (this.#name !== undefined) throw new Error(`window "${this.#name}" is already open`);
    if (!displayAvailable()) {
      throw new Error(`cannot open a window: no X display (DISPLAY=${process.env.DISPLAY ?? "unset"})`);
    }
    cv().openWindow(title);
    this.#name = title;
    return this;
  }

  /**
   * Shows one frame, decoding it on a worker thread (only the drawing happens on this
   * one); false (and counted) when it does not decode. Call one at a time.
   */
  async showAsync(jpeg: Uint8Array): Promise<boolean> {
    if (this.#name === undefined) return false; // closed (or never opened): nothing to draw on
    let ok = false;
    try {
      ok = (await cv().decodeForWindow(jpeg)) && this.#name !== undefined && cv().showDecoded(this.#name);
    } catch {
      ok = false;
    }
    if (ok) this.#shown++;
    else this.#bad++;
    return ok;
  }

  /** Lets the window redraw for up to `ms`; the key pressed, or -1. */
  pollKey(ms: number): number {
    if (this.#name === undefined) return -1;
    return cv().pollKey(ms);
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
