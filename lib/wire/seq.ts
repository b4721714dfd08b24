/**
 * Serial-number arithmetic for u32 frame numbers (RFC 1982 style): numbers wrap
 * from 0xFFFFFFFF to 0, so "newer" means "less than half the number space ahead".
 * Every wraparound compare in the project goes through here.
 * Arguments are u32 integers; results of seqAdd are u32.
 */

/** Size of the frame-number space. */
export const SEQ_MODULUS = 2 ** 32;
/** Largest distance that still has a direction; exactly half way round is neither ahead nor behind. */
export const SEQ_HALF = 2 ** 31;

/** `a + n` modulo 2^32 (n may be negative); exact for |a + n| < 2^53. */
export function seqAdd(a: number, n: number): number {
  // ToUint32 takes the mathematical value modulo 2^32, negatives included.
  return (a + n) >>> 0;
}

/** Signed distance `a - b` in -2^31..2^31-1: positive when `a` is newer than `b`. */
export function seqDiff(a: number, b: number): number {
  // ToInt32 reduces modulo 2^32 into the signed range.
  return (a - b) | 0;
}

/**
 * True when `a` is older than `b`. At exactly half the space apart the order is
 * undefined (RFC 1982): then neither is less, so the relation stays antisymmetric.
 */
export function seqLess(a: number, b: number): boolean {
  return seqDiff(b, a) > 0;
}
