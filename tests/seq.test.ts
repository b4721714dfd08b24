import { describe, expect, test } from "bun:test";
import { SEQ_HALF, seqAdd, seqDiff, seqLess } from "../lib/wire/seq.ts";
import { prng } from "./helpers/prng.ts";


describe("seqAdd", () => {
  test.each([
    [0, 1, 1],
    [0xffffffff, 1, 0],
    [0xfffffffe, 5, 3],
    [0, -1, 0xffffffff],
    [3, -5, 0xfffffffe],
    [7, 2 ** 32, 7],
    [7, -(2 ** 32), 7],
    [0x80000000, 0x80000000, 0],
  ])("seqAdd(%p, %p) = %p", (a, n, want) => {
    expect(seqAdd(a, n)).toBe(want);
  });
});

describe("seqDiff", () => {
  test.each([
    [1, 0, 1],
    [0, 1, -1],
    [0, 0xffffffff, 1],
    [0xffffffff, 0, -1],
    [5, 0xfffffffb, 10],
    [0x7fffffff, 0, 0x7fffffff],
    [0x80000000, 0, -0x80000000],
    [0, 0x80000000, -0x80000000],
  ])("seqDiff(%p, %p) = %p", (a, b, want) => {
    expect(seqDiff(a, b)).toBe(want);
  });

  test("inverts seqAdd for every distance in range, across the wrap", () => {
    const rnd = prng(1);
    for (let i = 0; i < 5000; i++) {
      const a = Math.floor(rnd() * 2 ** 32);
      const n = Math.floor(rnd() * 2 ** 32) - SEQ_HALF; // -2^31 .. 2^31-1
      const b = seqAdd(a, n);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(2 ** 32);
      expect(seqDiff(b, a)).toBe(n);
    }
  });
});

describe("seqLess", () => {
  test("orders across the wrap", () => {
    expect(seqLess(0xffffffff, 0)).toBe(true);
    expect(seqLess(0, 0xffffffff)).toBe(false);
    expect(seqLess(0xfffffff0, 0x10)).toBe(true);
    expect(seqLess(1, 2)).toBe(true);
    expect(seqLess(2, 1)).toBe(false);
    expect(seqLess(5, 5)).toBe(false);
  });

  test("exactly half the space apart: neither is less (RFC 1982 leaves it undefined)", () => {
    expect(seqLess(0, SEQ_HALF)).toBe(false);
    expect(seqLess(SEQ_HALF, 0)).toBe(false);
    expect(seqLess(0, SEQ_HALF - 1)).toBe(true);
    expect(seqLess(SEQ_HALF + 1, 0)).toBe(true);
  });

  test("is antisymmetric: of two different numbers not half apart, exactly one is less", () => {
    const rnd = prng(2);
    for (let i = 0; i < 5000; i++) {
      const a = Math.floor(rnd() * 2 ** 32);
      const b = Math.floor(rnd() * 2 ** 32);
      if (a === b || seqDiff(a, b) === -SEQ_HALF) continue;
      expect(seqLess(a, b)).not.toBe(seqLess(b, a));
      expect(seqLess(a, b)).toBe(seqDiff(a, b) < 0);
    }
  });
});
