/**
 * Which picture size (quality layer) one MJPEG reader is sent. A browser's connection
 * says one thing about its path: Bun asks for the next part only once the socket has
 * taken the last, so a reader that cannot carry the stream leaves frames untaken and
 * newer ones replace them (skips). That is the signal; the server cannot see further
 * (how much the kernel's buffers hold, what the browser has read).
 *
 * The kernel takes what it can buffer first, so a reader skips only once its
 * connection's buffers are full: by then it may be seconds behind, and it is again after
 * a move up that its path cannot carry. On the smaller picture it keeps up, the buffers
 * drain, and it watches live again.
 *
 * Down fast: a window of WINDOW_MS in which the reader fell behind (at least
 * BEHIND_SKIPS skips and at least BEHIND_SHARE of the frames offered to it) moves it
 * one layer down when the window ends. The window after a move down is not judged: the
 * larger part still being written when it moved holds up the first smaller ones, and
 * judged, it would send the reader one layer too far. Up slowly: once it has kept up
 * (at most KEPT_UP_SKIPS skips a window) for the hold, it is moved one layer up to try;
 * a step up undone within FLAP_WINDOW_MS doubles the hold (up to MAX_HOLD_MS), and one
 * that held for the flap window brings it back to the base. Between the two (some
 * skips, not many) it stays where it is and its hold starts over, so a reader near a
 * layer's rate does not move back and forth.
 *
 * Pure: each function returns the new state; the clock (ms) is passed in. Only frame
 * offers move time on: with no frames (a paused source) nothing is judged.
 */

/** How long one judgement looks back, ms. */
export const WINDOW_MS = 1000;
/** Skips in a window that, with BEHIND_SHARE, mean the reader cannot carry its layer. */
export const BEHIND_SKIPS = 2;
/** Share of a window's frames skipped that, with BEHIND_SKIPS, mean the reader is behind. */
export const BEHIND_SHARE = 0.25;
/** Skips a window may have and still count as kept up: one late frame is the machine's hiccup, not the path's. */
export const KEPT_UP_SKIPS = 1;
/** How long a reader must keep up on a lower layer before it tries the next one up, ms. */
export const HOLD_MS = 5000;
/**
 * A step up undone within this long was a failed try: the next hold is twice as long.
 * Longer than the UDP ladder's: TCP tells of a failed try only once the connection's
 * buffers are full, which can take seconds.
 */
export const FLAP_WINDOW_MS = 15_000;
/** The longest hold after repeated failed tries, ms. */
export const MAX_HOLD_MS = 60_000;

/** Timing of the ladder; tests shorten it. */
export interface ReaderLayerOptions {
  /** Base hold before a step up, ms (default HOLD_MS). */
  holdMs?: number;
  /** Longest hold after failed tries, ms (default MAX_HOLD_MS, at least holdMs). */
  maxHoldMs?: number;
  /** A step up undone within this long doubles the hold, ms (default FLAP_WINDOW_MS). */
  flapWindowMs?: number;
}

/** One reader's place on its camera's ladder. */
export interface ReaderLayerState {
  /** Index into its camera's sizes, 0 = the source's. */
  readonly layer: number;
  /** When the current window began, and the frames offered and skipped in it. */
  readonly windowAt: number;
  readonly offered: number;
  readonly skipped: number;
  /** How long it has kept up on this layer, over whole windows, ms. */
  readonly keptUpMs: number;
  /** The hold the next step up needs, ms. */
  readonly holdMs: number;
  /** When it last moved up (a move down soon after is a failed try), or null. */
  readonly upAt: number | null;
  /** The current window follows a move down: it is not judged. */
  readonly settling: boolean;
}

/** Where a reader starts: the full layer (a reader that keeps up must see no change), with the base hold. */
export function readerLayerStart(nowMs: number, opts: ReaderLayerOptions = {}): ReaderLayerState {
  return { layer: 0, windowAt: nowMs, offered: 0, skipped: 0, keptUpMs: 0, holdMs: opts.holdMs ?? HOLD_MS, upAt: null, settling: false };
}

/**
 * A frame was offered to the reader at `nowMs`; `skipped`: it replaced one the reader had
 * not taken. `layers`: how many sizes its camera has (it never goes below the last).
 * A window that has ended is judged first, so the new frame counts in the next one.
 */
export function frameOffered(s: ReaderLayerState, skipped: boolean, layers: number, nowMs: number, opts: ReaderLayerOptions = {}): ReaderLayerState {
  if (nowMs - s.windowAt >= WINDOW_MS) s = judge(s, layers, nowMs, opts);
  return { ...s, offered: s.offered + 1, skipped: s.skipped + (skipped ? 1 : 0) };
}

/** The window that ended at `nowMs`: down, up, or stay; a new window starts. */
function judge(s: ReaderLayerState, layers: number, nowMs: number, opts: ReaderLayerOptions): ReaderLayerState {
  const baseHold = opts.holdMs ?? HOLD_MS;
  const maxHold = Math.max(baseHold, opts.maxHoldMs ?? MAX_HOLD_MS);
  const flapWindow = opts.flapWindowMs ?? FLAP_WINDOW_MS;
  const last = Math.max(0, layers - 1);
  const layer = Math.min(s.layer, last);
  // A step up that held for the flap window was no failed try: old failures are forgiven.
  const forgiven = s.upAt !== null && nowMs - s.upAt >= flapWindow;
  const next: ReaderLayerState = { ...s, layer, windowAt: nowMs, offered: 0, skipped: 0, settling: false, ...(forgiven && { upAt: null, holdMs: baseHold }) };

  if (s.settling) return next;
  const behind = s.skipped >= BEHIND_SKIPS && s.skipped >= s.offered * BEHIND_SHARE;
  if (behind) {
    if (layer >= last) return { ...next, keptUpMs: 0 };
    const failedTry = next.upAt !== null;
    return { ...next, layer: layer + 1, keptUpMs: 0, upAt: null, holdMs: failedTry ? Math.min(maxHold, next.holdMs * 2) : next.holdMs, settling: true };
  }
  if (s.skipped > KEPT_UP_SKIPS) return { ...next, keptUpMs: 0 };
  // A window stretched by a pause in the frames shows no more than one window's keeping up.
  const keptUpMs = s.keptUpMs + Math.min(nowMs - s.windowAt, WINDOW_MS);
  if (layer === 0 || keptUpMs < next.holdMs) return { ...next, keptUpMs };
  return { ...next, layer: layer - 1, keptUpMs: 0, upAt: nowMs };
}
