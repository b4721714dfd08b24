import type { WindowText } from "../native/cv.ts";
import { StreamStatus } from "./stream-status.ts";

/** The sound as the meter shows it (an AudioPlayer). */
export interface SoundLevel {
  /** The recent peak, dBFS (-96 for silence). */
  level(): number;
  readonly muted: boolean;
}

/** The meter's range: from this level (an empty bar) to 0 dBFS (a full one). */
export const METER_FLOOR_DBFS = -60;
/** Cells in the meter's bar; each is METER_FLOOR_DBFS / METER_CELLS dB (3 dB). */
export const METER_CELLS = 20;

/**
 * The level meter as text on the picture: `sound [||||||......] -18 dB`, or
 * `sound muted (m)`. ASCII only (the window draws nothing else); whole dB and whole
 * cells, so the text (and with it a redraw) changes only when the level moves.
 */
export function meterText(dbfs: number, muted: boolean): string {
  if (muted) return "sound muted (m)";
  const db = Math.max(METER_FLOOR_DBFS, Math.min(0, Math.round(dbfs)));
  const cells = Math.round(((db - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS) * METER_CELLS);
  const label = dbfs <= METER_FLOOR_DBFS ? "silent" : `${db} dB`;
  return `sound [${"|".repeat(cells)}${".".repeat(METER_CELLS - cells)}] ${label}`;
}

/**
 * What the window draws on the picture: the stream's status at the top when it is not
 * live, and at the bottom (toggled by the user) the fps and latency line and, with
 * sound, the level meter. Pure: the figures and the time come from the caller.
 */
export class WindowOverlay {
  readonly status = new StreamStatus();
  #info = false;
  #figures = "";
  #sound: SoundLevel | null = null;

  /** Shows the level meter of `sound` (null: no meter, no sound). */
  sound(source: SoundLevel | null): void {
    this.#sound = source;
  }

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
    const info = this.#info ? this.#figures || "waiting for the first second's figures" : "";
    const meter = this.#sound ? meterText(this.#sound.level(), this.#sound.muted) : "";
    return { top: this.status.text(nowMs), bottom: info && meter ? `${meter}   ${info}` : info || meter };
  }
}
