// Properties of frame-number arithmetic over the whole u32 space: adding and taking
// distances invert each other across the wrap, and "older than" is a strict order
// within any half of the space, undefined only at exactly half way.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { SEQ_HALF, SEQ_MODULUS, seqAdd, seqDiff, seqLess } from "../lib/wire/seq.ts";

/** Seeded, so a failure replays; bounded in runs and, on a slow machine, in time. */
const RUN = { seed: 0x5e9, numRuns: 10_000, interruptAfterTimeLimit: 5000 };

/** Frame numbers, with the edges of the space and of its halves more often than chance would give. */
const seq = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.constantFrom(0, 1, SEQ_HALF - 1, SEQ_HALF, SEQ_HALF + 1, 0xfffffffe, 0xffffffff),
);
/** Distances that have a direction. */
const distance = fc.integer({ min: -SEQ_HALF, max: SEQ_HALF - 1 });

describe("frame numbers, generated", () => {
  test("seqAdd stays in u32 and is addition modulo 2^32, for any integer step", () => {
    fc.assert(
      fc.property(seq, fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (a, n) => {
        const r = seqAdd(a, n);
        expect(Number.isInteger(r) && r >= 0 && r <= 0xffffffff).toBe(true);
        expect(r).toBe((((a + n) % SEQ_MODULUS) + SEQ_MODULUS) % SEQ_MODULUS);
      }),
      RUN,
    );
  });

  test("seqDiff undoes seqAdd for every distance in range, wherever it starts", () => {
    fc.assert(fc.property(seq, distance, (a, n) => expect(seqDiff(seqAdd(a, n), a)).toBe(n)), RUN);
  });

  test("seqDiff is antisymmetric but at half way, where both directions read -2^31", () => {
    fc.assert(
      fc.property(seq, seq, (a, b) => {
        const d = seqDiff(a, b);
        expect(d >= -SEQ_HALF && d < SEQ_HALF).toBe(true);
        if (d === -SEQ_HALF) expect(seqDiff(b, a)).toBe(-SEQ_HALF);
        else expect(seqDiff(b, a)).toBe(-d === 0 ? 0 : -d);
      }),
      RUN,
    );
  });

  test("of two numbers less than half apart, exactly one is older; half apart, neither; equal, neither", () => {
    fc.assert(
      fc.property(seq, fc.integer({ min: 0, max: SEQ_HALF }), (a, n) => {
        const b = seqAdd(a, n);
        const ab = seqLess(a, b);
        const ba = seqLess(b, a);
        if (n === 0 || n === SEQ_HALF) expect([ab, ba]).toEqual([false, false]);
        else expect([ab, ba]).toEqual([true, false]);
      }),
      RUN,
    );
  });

  test("older-than is transitive along a run shorter than half the space", () => {
    fc.assert(
      fc.property(seq, fc.integer({ min: 1, max: SEQ_HALF / 2 - 1 }), fc.integer({ min: 1, max: SEQ_HALF / 2 - 1 }), (a, x, y) => {
        const b = seqAdd(a, x);
        const c = seqAdd(b, y);
        expect(seqLess(a, b) && seqLess(b, c) && seqLess(a, c)).toBe(true);
      }),
      RUN,
    );
  });
});
