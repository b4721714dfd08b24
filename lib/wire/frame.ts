/** One JPEG-encoded picture as it leaves a capture source or the reassembler. */
export interface Frame {
  /** Source frame counter: starts at 0, +1 per frame, wraps at 2^32. */
  seq: number;
  /** Capture time, microseconds since the Unix epoch (wall clock). */
  capturedAt: number;
  width: number;
  height: number;
  jpeg: Uint8Array;
}

/** Wall-clock microseconds since the Unix epoch. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
