import type { WindowText } from "../native/cv.ts";
import { keyAction } from "./window-keys.ts";
import { ViewerWindow } from "./viewer-window.ts";
import { FrameSchedule, type FrameScheduleStats } from "./frame-schedule.ts";

/** How often keys are read (and the drawn text checked) when no frame is being drawn. */
const KEY_POLL_MS = 50;

/** Why the user asked the viewer to stop: ESC or q pressed, or the window's close button. */
export type QuitReason = "key" | "closed";

/** The part of a ViewerWindow the sink uses (tests pass a fake). */
export type WindowLike = Pick<ViewerWindow, "showAsync" | "pollKey" | "visible" | "close" | "redraw" | "setFullScreen" | "fullScreen">;

/** Which frame a picture is: what a saved picture's name says. */
export interface PictureMeta {
  /** The frame's number. */
  seq: number;
  /** Its capture time, µs since the epoch. */
  capturedAt: number;
}

/** A picture shown in the window, copied out for saving. */
export interface ShownPicture extends PictureMeta {
  jpeg: Uint8Array;
}

/** What the sink draws on the picture (a WindowOverlay); read at each draw and on the key timer. */
export interface OverlaySource {
  text(nowMs: number): Required<WindowText>;
  toggleInfo(): void;
}

/** The sink's extras beyond drawing and quitting. */
export interface WindowSinkOptions {
  /** Text on the picture; when it changes with no frame coming (a stalled stream), the last picture is drawn again with it. */
  overlay?: OverlaySource;
  /** `s` pressed: the picture shown (a copy), or null before the first. */
  onSave?: (picture: ShownPicture | null) => void;
  /** The clock the overlay is read with (ms). */
  now?: () => number;
  /**
   * With sound: the local time (µs, on `clockMicros`) at which the sound captured at a
   * capture time is heard (AudioPlayer.playoutTimeOf), null while none plays. Each
   * frame is held until then, within FrameSchedule's bounds, so picture and sound meet.
   */
  playoutTimeOf?: (capturedAt: number) => number | null;
  /** The clock of playoutTimeOf and onShown, µs since the epoch (lib/wire/frame.ts nowMicros by default). */
  clockMicros?: () => number;
  /** A frame was drawn, at `shownAt` (µs on clockMicros): for --display-log. */
  onShown?: (picture: PictureMeta, shownAt: number) => void;
  /** `m` pressed: mute or unmute the sound (without it the key does nothing). */
  onMute?: () => void;
}

/** One frame's bytes; three of them take turns so that no frame is copied twice. */
interface Slot {
  buf: Uint8Array;
  len: number;
  meta: PictureMeta;
}

const NO_TEXT: Required<WindowText> = { top: "", bottom: "" };
const emptySlot = (): Slot => ({ buf: new Uint8Array(0), len: 0, meta: { seq: 0, capturedAt: 0 } });

/** Copies a frame into a slot, growing its buffer when needed (with room, so it seldom grows again). */
function fill(slot: Slot, jpeg: Uint8Array, meta: PictureMeta): void {
  if (slot.buf.length < jpeg.length) slot.buf = new Uint8Array(Math.ceil(jpeg.length * 1.25));
  slot.buf.set(jpeg);
  slot.len = jpeg.length;
  slot.meta = { seq: meta.seq, capturedAt: meta.capturedAt };
}

/**
 * The viewer's window as a frame sink, and the user's keys to it.
 *
 * Frames: only the newest is drawn. Frames arrive from the network callback; each
 * is decoded on a worker thread and drawn when that finishes. A frame that arrives
 * while one is being decoded waits (only the newest: it replaces any frame already
 * waiting), so a slow display skips frames instead of backing up the receive path,
 * and the JS thread never spends a decode's time per frame.
 *
 * Keys (lib/display/window-keys.ts): ESC or q, or closing the window, calls `onQuit`
 * once; f toggles full screen, i the info line, m the sound (onMute), s saves the
 * picture shown. Keys are
 * read after every draw and on a timer, because with no frames coming the window
 * would otherwise freeze and never see ESC. The timer also redraws the last picture
 * when the overlay's text changes, so a stalled picture's age keeps counting.
 *
 * With sound (playoutTimeOf), frames wait in a FrameSchedule until their sound is
 * heard, each in its own reused slot, and a timer draws each when it is due.
 */
export class WindowSink implements AsyncDisposable {
  /** Frames drawn. */
  shown = 0;
  /** Frames replaced by a newer one before they could be drawn. */
  skipped = 0;
  readonly #window: WindowLike;
  readonly #onQuit: (reason: QuitReason) => void;
  readonly #options: WindowSinkOptions;
  readonly #now: () => number;
  readonly #keys: ReturnType<typeof setInterval>;
  #quit = false;
  /** Filled by push; taken by a draw; kept once drawn, for `s`. */
  #pending = emptySlot();
  #drawing = emptySlot();
  #shownSlot: Slot | null = null;
  /** The text on screen now. */
  #text = NO_TEXT;
  #waiting = false;
  #busy = false;
  #closed = false;
  /** Frames held for their sound, and the slots they may reuse (only with playoutTimeOf). */
  readonly #schedule = new FrameSchedule<Slot>();
  #free: Slot[] = [];
  #dueTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #clockMicros: () => number;
  /** Resolves when nothing is being decoded or waiting (for tests and shutdown). */
  #idle: Promise<void> = Promise.resolve();
  #settle: (() => void) | null = null;

  constructor(window: WindowLike, onQuit: (reason: QuitReason) => void, keyPollMs = KEY_POLL_MS, options: WindowSinkOptions = {}) {
    this.#window = window;
    this.#onQuit = onQuit;
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#clockMicros = options.clockMicros ?? (() => Math.round((performance.timeOrigin + performance.now()) * 1000));
    this.#keys = setInterval(() => this.#tick(), keyPollMs);
  }

  /** Opens a window titled `title` on the display (full screen when asked) and feeds it. */
  static open(title: string, onQuit: (reason: QuitReason) => void, options: WindowSinkOptions & { fullScreen?: boolean } = {}): WindowSink {
    return new WindowSink(new ViewerWindow().open(title, { fullScreen: options.fullScreen }), onQuit, KEY_POLL_MS, options);
  }

  /**
   * Keeps a copy of `jpeg` (the caller's buffer is reused) and has it drawn as soon as
   * the window is free, or with sound (playoutTimeOf) once its sound is heard.
   */
  push(jpeg: Uint8Array, meta: PictureMeta = { seq: 0, capturedAt: Date.now() * 1000 }): void {
    if (this.#closed) return;
    const playoutTimeOf = this.#options.playoutTimeOf;
    if (!playoutTimeOf) {
      fill(this.#pending, jpeg, meta);
      this.#ready();
      return;
    }
    const slot = this.#free.pop() ?? emptySlot();
    fill(slot, jpeg, meta);
    this.#scheduled(this.#schedule.push(slot, playoutTimeOf(meta.capturedAt), this.#clockMicros()));
  }

  /** How frames met their sound (all zero without playoutTimeOf). */
  get sync(): Readonly<FrameScheduleStats> {
    return this.#schedule.stats;
  }

  /** The frame waiting in #pending is to be drawn next. */
  #ready(): void {
    if (this.#waiting) this.skipped++;
    this.#waiting = true;
    if (!this.#busy) {
      this.#idle = new Promise((r) => (this.#settle = r));
      void this.#drain();
    }
  }

  /** Acts on what the schedule decided: frees the dropped slots, draws the one due, re-arms the timer. */
  #scheduled(r: { show: Slot | null; dropped: Slot[] }): void {
    this.#free.push(...r.dropped);
    if (r.show && !this.#closed) {
      // The due frame's slot becomes the pending one: no second copy.
      this.#free.push(this.#pending);
      this.#pending = r.show;
      this.#ready();
    }
    if (this.#dueTimer) clearTimeout(this.#dueTimer);
    this.#dueTimer = null;
    const next = this.#schedule.nextDueAt();
    if (next === null || this.#closed) return;
    const ms = Math.max(0, (next - this.#clockMicros()) / 1000);
    this.#dueTimer = setTimeout(() => this.#scheduled(this.#schedule.take(this.#clockMicros())), ms);
  }

  /** Resolves once every pushed frame has been drawn or skipped. */
  idle(): Promise<void> {
    return this.#idle;
  }

  /** No more frames are drawn or keys read; once a draw under way has finished, the window closes. */
  async close(): Promise<void> {
    clearInterval(this.#keys);
    if (this.#dueTimer) clearTimeout(this.#dueTimer);
    this.#free.push(...this.#schedule.clear());
    this.#closed = true;
    this.#waiting = false;
    await this.#idle;
    this.#window.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #tick(): void {
    this.#key(this.#window.pollKey(1));
    if (!this.#window.visible) {
      this.#quitFor("closed");
      return;
    }
    this.#refreshText();
  }

  /** Draws the last picture again when the overlay's text changed and no draw is under way. */
  #refreshText(): void {
    const overlay = this.#options.overlay;
    if (!overlay || this.#busy || this.#closed || !this.#shownSlot) return;
    const text = overlay.text(this.#now());
    if (text.top === this.#text.top && text.bottom === this.#text.bottom) return;
    if (this.#window.redraw(text)) this.#text = text;
  }

  #key(key: number): void {
    switch (keyAction(key)) {
      case "quit":
        this.#quitFor("key");
        break;
      case "fullscreen":
        if (this.#window.setFullScreen(!this.#window.fullScreen) && this.#shownSlot && !this.#busy) this.#window.redraw(this.#text);
        break;
      case "info":
        this.#options.overlay?.toggleInfo();
        this.#refreshText();
        break;
      case "mute":
        this.#options.onMute?.();
        this.#refreshText();
        break;
      case "save": {
        const s = this.#shownSlot;
        this.#options.onSave?.(s ? { jpeg: s.buf.slice(0, s.len), ...s.meta } : null);
        break;
      }
      case null:
        break;
    }
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
        // Take the waiting frame: push fills the other slot meanwhile.
        [this.#pending, this.#drawing] = [this.#drawing, this.#pending];
        const slot = this.#drawing;
        const text = this.#options.overlay?.text(this.#now()) ?? NO_TEXT;
        if (await this.#window.showAsync(slot.buf.subarray(0, slot.len), text)) {
          this.shown++;
          this.#options.onShown?.(slot.meta, this.#clockMicros());
          this.#text = text;
          // Keep the drawn frame for `s`; its old slot takes the next draw.
          this.#drawing = this.#shownSlot ?? emptySlot();
          this.#shownSlot = slot;
        }
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
