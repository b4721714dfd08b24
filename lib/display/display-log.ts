/**
 * `--display-log FILE`: one line per frame drawn in the window, `capturedAt shownAt`,
 * both µs since the Unix epoch (capturedAt on the server's clock, shownAt on this
 * viewer's), so a user can measure glass-to-glass latency and a test can check that the
 * picture met its sound. Written as it goes (a killed viewer leaves every whole line).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { errorText } from "../errors/error-text.ts";
import type { Logger } from "../log/format.ts";

/** Lines written at most (about 9 hours at 30 fps, 40 MB); the rest are not written, and that is said once. */
export const MAX_DISPLAY_LOG_LINES = 1_000_000;

/** See the file comment. */
export class DisplayLog implements Disposable {
  readonly path: string;
  lines = 0;
  #fd: number | null;
  readonly #log: Logger;

  /** Creates (or truncates) `path`; throws when it cannot. */
  constructor(path: string, log: Logger) {
    this.path = path;
    this.#log = log;
    this.#fd = openSync(path, "w");
  }

  /** One frame drawn: captured at `capturedAt`, shown at `shownAt` (µs). */
  shown(capturedAt: number, shownAt: number): void {
    if (this.#fd === null) return;
    if (this.lines >= MAX_DISPLAY_LOG_LINES) {
      this.#log.warn("--display-log is full; no more lines are written", { path: this.path, lines: this.lines });
      this.close();
      return;
    }
    try {
      writeSync(this.#fd, `${Math.round(capturedAt)} ${Math.round(shownAt)}\n`);
      this.lines++;
    } catch (e) {
      this.#log.error("cannot write --display-log; no more lines are written", { path: this.path, error: errorText(e) });
      this.close();
    }
  }

  close(): void {
    if (this.#fd === null) return;
    try {
      closeSync(this.#fd);
    } catch {
      // nothing more to write anyway
    }
    this.#fd = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
