import type { WindowText } from "../native/cv.ts";
import { StreamStatus } from "./stream-status.ts";

/**
 * What the window draws on the picture: the stream's status at the top when it is not
 * live, and (toggled by the user) the fps and latency line at the bottom. Pure: the
 * figures and the time come from the caller.
 */
export class WindowOverlay {
  readonly status = new StreamStatus();
  #info = false;
  #figures = "";

  /** True while the fps/latency line is shown. */
  get info(): boolean {
    return this.#info;
  }

  /** Shows the fps/latency line, or hides it. */
  toggleInfo(): void {
    this.#info = !this.#info;
  }

  /** The latest fps/latency line (the terminal's status line, once a second). */
  figures(line: string): void {
    this.#figures = line;
  }

  /** The text to draw at `nowMs`; both parts "" when nothing is to be drawn. */
  text(nowMs: number): Required<WindowText> {
    return {
      top: this.status.text(nowMs),
      bottom: this.#info ? this.#figures || "waiting for the first second's figures" : "",
    };
  }
}
