import { describe, expect, test } from "bun:test";
import { autoStride, FecSpecError, LossEstimate, MAX_FEC_PERCENT, parseFecSpec, residualFrameLoss, strideFor } from "../lib/send/fec-policy.ts";
import { UserError } from "../lib/errors/user-error.ts";
import { prng } from "./helpers/prng.ts";

describe("--fec parsing", () => {
  test("off, auto and percentages", () => {
    expect(parseFecSpec("off")).toEqual({ kind: "off" });
    expect(parseFecSpec("AUTO")).toEqual({ kind: "auto" });
    expect(parseFecSpec("10")).toEqual({ kind: "percent", percent: 10 });
    expect(parseFecSpec("2.5%")).toEqual({ kind: "percent", percent: 2.5 });
    expect(parseFecSpec(String(MAX_FEC_PERCENT))).toEqual({ kind: "percent", percent: MAX_FEC_PERCENT });
  });
  test("anything else is a user error naming the flag and what it expects", () => {
    for (const bad of ["", "0", "51", "-5", "on", "1e1", "10 %", "abc", "100"]) {
      expect(() => parseFecSpec(bad)).toThrow(FecSpecError);
      expect(() => parseFecSpec(bad)).toThrow(`invalid --fec=${bad}: expected off, auto, or a parity percentage above 0 up to 50`);
    }
    expect(new FecSpecError("x")).toBeInstanceOf(UserError);
  });
});

describe("residual frame loss", () => {
  test("without parity it is any loss in the frame; with one parity per datagram (n = stride) two losses of a pair", () => {
    expect(residualFrameLoss(150, 0, 0.01)).toBeCloseTo(1 - 0.99 ** 150, 12);
    expect(residualFrameLoss(1, 1, 0.01)).toBeCloseTo(0.01 * 0.01, 12);
  });
  test("agrees with a Monte Carlo of interleaved XOR groups", () => {
    const rnd = prng(5);
    const n = 150;
    const stride = 10;
    const p = 0.02;
    let lost = 0;
    const trials = 20_000;
    for (let t = 0; t < trials; t++) {
      const perGroup = new Array(stride).fill(0);
      for (let i = 0; i < n; i++) if (rnd() < p) perGroup[i % stride]++;
      for (let g = 0; g < stride; g++) if (rnd() < p) perGroup[g]++;
      if (perGroup.some((c) => c >= 2)) lost++;
    }
    expect(lost / trials).toBeCloseTo(residualFrameLoss(n, stride, p), 2);
  });
});

describe("auto", () => {
  test("a clean link gets no parity", () => {
    expect(autoStride(150, 0)).toBe(0);
    // 0.001 % loss: 150 datagrams arrive whole 99.85 % of the time.
    expect(autoStride(150, 0.00001)).toBe(0);
    expect(autoStride(3, 0.001)).toBe(0);
  });
  test("more loss, more parity, each choice the cheapest under 0.5 % residual", () => {
    let last = 0;
    for (const p of [0.001, 0.005, 0.01, 0.02, 0.05]) {
      const s = autoStride(150, p);
      expect(s).toBeGreaterThanOrEqual(last);
      if (s < 15) {
        expect(residualFrameLoss(150, s, p)).toBeLessThan(0.005);
        if (s > 1) expect(residualFrameLoss(150, s - 1, p)).toBeGreaterThanOrEqual(0.005);
      }
      last = s;
    }
    expect(autoStride(150, 0.01)).toBeGreaterThan(0);
    // Overhead on a camera-like frame stays within its cap.
    expect(autoStride(150, 0.01) / 150).toBeLessThanOrEqual(0.1);
    expect(autoStride(150, 0.001)).toBeLessThanOrEqual(3);
  });
  test("capped at 10 % of the frame's datagrams however bad the loss, where it still spares most round trips", () => {
    expect(autoStride(150, 0.3)).toBe(15);
    expect(residualFrameLoss(150, autoStride(150, 0.01), 0.01)).toBeLessThan(0.1);
    expect(autoStride(2, 0.5)).toBe(1);
  });
  test("a fixed percentage is that share of the datagrams, at least one", () => {
    expect(strideFor({ kind: "percent", percent: 10 }, 150, 0)).toBe(15);
    expect(strideFor({ kind: "percent", percent: 10 }, 3, 0)).toBe(1);
    expect(strideFor({ kind: "off" }, 150, 0.5)).toBe(0);
    expect(strideFor({ kind: "auto" }, 150, 0.01)).toBe(autoStride(150, 0.01));
  });
});

describe("LossEstimate from reports' path counters", () => {
  test("interval loss from cumulative counters, smoothed; small intervals are folded into the next", () => {
    const e = new LossEstimate();
    e.report({ datagramsReceived: 0, datagramsLost: 0 });
    e.report({ datagramsReceived: 99, datagramsLost: 1 });
    expect(e.samples).toBe(0);
    e.report({ datagramsReceived: 198, datagramsLost: 2 });
    expect(e.loss).toBeCloseTo(0.01, 10);
    e.report({ datagramsReceived: 1198, datagramsLost: 2 });
    expect(e.loss).toBeCloseTo(0.007, 10);
  });
  test("counters going back restart the baseline rather than count negative loss", () => {
    const e = new LossEstimate();
    e.report({ datagramsReceived: 10_000, datagramsLost: 500 });
    e.report({ datagramsReceived: 5, datagramsLost: 0 });
    e.report({ datagramsReceived: 1005, datagramsLost: 0 });
    expect(e.loss).toBe(0);
    expect(e.samples).toBe(1);
  });
  test("hostile counters cannot claim loss outside 0..1", () => {
    const e = new LossEstimate();
    e.report({ datagramsReceived: 0, datagramsLost: 0 });
    e.report({ datagramsReceived: 0, datagramsLost: 0xffffffff });
    expect(e.loss).toBe(1);
    expect(autoStride(150, e.loss)).toBe(15);
  });
});
