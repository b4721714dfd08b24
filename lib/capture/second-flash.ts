/**
 * The test pattern's white flash at each whole second of capture time, which the test
 * tone's beeps (lib/audio/test-tone.ts) match: a viewer that sees both can measure
 * how far apart picture and sound arrive.
 */

/**
 * Whether the frame captured at `capturedAt` (µs) is the first at or after a whole
 * second, given when the frame before it was captured, or skipped while paused (null
 * for the first frame, which flashes only when it falls on the second exactly).
 */
export function firstOfSecond(previous: number | null, capturedAt: number): boolean {
  if (previous === null) return capturedAt % 1_000_000 === 0;
  return Math.floor(capturedAt / 1_000_000) > Math.floor(previous / 1_000_000);
}

/**
 * `bgr` (packed, `width` x `height`) turned white below the first `keepRows` rows, in
 * place: the flash keeps the test pattern's frame-number band, so a reader still
 * checks order and loss on it, and is otherwise white for a mean-brightness check.
 */
export function whitenBelow(bgr: Uint8Array, width: number, height: number, keepRows: number): void {
  const from = Math.min(height, Math.max(0, keepRows)) * width * 3;
  bgr.fill(255, from, width * height * 3);
}
