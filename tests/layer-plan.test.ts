import { describe, expect, test } from "bun:test";
import { layerPlan } from "../lib/send/layer-plan.ts";
import { StartError } from "../lib/send/start-error.ts";
import { parseLayersFlag } from "../lib/send/layer-ladder.ts";

const HD = { width: 1280, height: 720 };

describe("the sizes a server sends frames in", () => {
  test("auto: the source, then smaller copies; off: the source alone", () => {
    const auto = layerPlan(parseLayersFlag("auto"), HD, false);
    expect(auto[0]).toEqual(HD);
    expect(auto.length).toBeGreaterThan(1);
    for (let i = 1; i < auto.length; i++) expect(auto[i]!.width).toBeLessThan(auto[i - 1]!.width);
    expect(layerPlan(parseLayersFlag("off"), HD, false)).toEqual([HD]);
  });

  test("an encrypted stream keeps the source size only: a second copy under one frame number would reuse its nonces", () => {
    expect(layerPlan(parseLayersFlag("auto"), HD, true)).toEqual([HD]);
  });

  test("a ladder no delivery message can name is a StartError that says why", () => {
    const flat = () => layerPlan(parseLayersFlag("1280x8"), { width: 2560, height: 16 }, false);
    expect(flat).toThrow(StartError);
    expect(flat).toThrow(/lower than 16/);
  });
});
