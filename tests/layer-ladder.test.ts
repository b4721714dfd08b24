import { describe, expect, test } from "bun:test";
import {
  chooseLayer, ladderStart, layerRate, layerSizes, LayersError, parseLayersFlag, HOLD_MS, MAX_HOLD_MS, type Layer, type LadderState,
} from "../lib/send/layer-ladder.ts";

describe("--layers", () => {
  test("auto, off and a list of sizes parse", () => {
    expect(parseLayersFlag("auto")).toEqual({ kind: "auto" });
    expect(parseLayersFlag("off")).toEqual({ kind: "off" });
    expect(parseLayersFlag("640x360,320x180")).toEqual({ kind: "sizes", sizes: [{ width: 640, height: 360 }, { width: 320, height: 180 }] });
  });

  for (const [raw, why] of [
    ["", "expected auto, off"],
    ["on", "\"on\" is not WxH"],
    ["640x", "\"640x\" is not WxH"],
    ["640x360,", "\"\" is not WxH"],
    ["0640x360", "is not WxH"],
    ["640x361", "640x361 has an odd side"],
    ["158x90", "158x90 is narrower than 160"],
    ["70000x360", "70000x360 is larger than 65535"],
    ["640x360,320x180,320x180,320x180,320x180", "at most 4"],
  ] as const) {
    test(`${JSON.stringify(raw)} is refused: ${why}`, () => {
      expect(() => parseLayersFlag(raw)).toThrow(LayersError);
      expect(() => parseLayersFlag(raw)).toThrow(`invalid --layers=${raw}`);
      expect(() => parseLayersFlag(raw)).toThrow(why);
    });
  }

  test("auto is the source, half and quarter, sides even, none narrower than 160", () => {
    const auto = { kind: "auto" } as const;
    expect(layerSizes(auto, { width: 1280, height: 720 })).toEqual([{ width: 1280, height: 720 }, { width: 640, height: 360 }, { width: 320, height: 180 }]);
    expect(layerSizes(auto, { width: 1279, height: 719 })).toEqual([{ width: 1279, height: 719 }, { width: 638, height: 358 }, { width: 318, height: 178 }]);
    expect(layerSizes(auto, { width: 400, height: 300 })).toEqual([{ width: 400, height: 300 }, { width: 200, height: 150 }]);
    expect(layerSizes(auto, { width: 320, height: 240 })).toEqual([{ width: 320, height: 240 }, { width: 160, height: 120 }]);
    expect(layerSizes(auto, { width: 160, height: 120 })).toEqual([{ width: 160, height: 120 }]);
  });

  test("off is the source alone; given sizes follow the source, largest first, without repeats", () => {
    expect(layerSizes({ kind: "off" }, { width: 1280, height: 720 })).toEqual([{ width: 1280, height: 720 }]);
    const given = parseLayersFlag("320x180,1280x720,640x360,320x180");
    expect(layerSizes(given, { width: 1280, height: 720 })).toEqual([{ width: 1280, height: 720 }, { width: 640, height: 360 }, { width: 320, height: 180 }]);
    expect(() => layerSizes(parseLayersFlag("1920x1080"), { width: 1280, height: 720 })).toThrow("--layers size 1920x1080 is larger than the source's 1280x720");
  });
});

const MB = 1_000_000;
/** A 720p ladder at 30 fps: 6, 2 and 0.7 MB/s. */
const LAYERS: Layer[] = [
  { width: 1280, height: 720, bytesPerFrame: 200_000 },
  { width: 640, height: 360, bytesPerFrame: 66_000 },
  { width: 320, height: 180, bytesPerFrame: 23_000 },
];
const OPTS = { fps: 30 };

test("a layer's rate is measured, or guessed from a larger measured one (JPEG bytes grow slower than pixels)", () => {
  expect(layerRate(LAYERS, 0, 30)).toBe(6 * MB);
  const unmeasured: Layer[] = [LAYERS[0]!, { ...LAYERS[1]!, bytesPerFrame: null }, { ...LAYERS[2]!, bytesPerFrame: null }];
  const half = layerRate(unmeasured, 1, 30);
  expect(half).toBeGreaterThan(6 * MB * 0.25);
  expect(half).toBeLessThan(6 * MB * 0.5);
  expect(layerRate(unmeasured, 2, 30)).toBeLessThan(half);
  expect(layerRate([{ ...LAYERS[0]!, bytesPerFrame: null }], 0, 30)).toBe(0);
});

/** Feeds one estimate a second from `t0` for `seconds`; returns the state and the layer after each. */
function feed(s: LadderState, estimate: number, t0: number, seconds: number): { s: LadderState; layers: number[] } {
  const layers: number[] = [];
  for (let i = 1; i <= seconds; i++) {
    s = chooseLayer(LAYERS, estimate, s, (t0 + i) * 1000, OPTS);
    layers.push(s.layer);
  }
  return { s, layers };
}

describe("choosing a viewer's layer", () => {
  test("a new viewer starts on the full layer and stays while its estimate carries it", () => {
    const { layers } = feed(ladderStart(OPTS), 6 * MB, 0, 10);
    expect(layers.every((l) => l === 0)).toBe(true);
  });

  test("down at once, several steps in one report when the estimate collapses", () => {
    const s = chooseLayer(LAYERS, 1 * MB, ladderStart(OPTS), 1000, OPTS);
    expect(s.layer).toBe(2);
    expect(chooseLayer(LAYERS, 3 * MB, ladderStart(OPTS), 1000, OPTS).layer).toBe(1);
    // Nothing fits: the smallest layer, never none.
    expect(chooseLayer(LAYERS, 1, ladderStart(OPTS), 1000, OPTS).layer).toBe(2);
  });

  test("up one step only after the estimate has cleared the next layer with margin for the hold time", () => {
    let s = chooseLayer(LAYERS, 0.5 * MB, ladderStart(OPTS), 0, OPTS);
    expect(s.layer).toBe(2);
    // 2.4 MB/s is above the half layer's 2 MB/s but within the 25 % margin: no move.
    expect(feed(s, 2.4 * MB, 0, 20).layers.every((l) => l === 2)).toBe(true);
    // 2.6 MB/s clears it: up after HOLD_MS, not before.
    const r = feed(s, 2.6 * MB, 0, 6);
    expect(r.layers.indexOf(1) + 1).toBe(HOLD_MS / 1000 + 1);
    s = r.s;
    // Plenty of room: one step at a time, each after its own hold.
    const r2 = feed(s, 10 * MB, 6, 10);
    expect(r2.layers.slice(0, HOLD_MS / 1000)).toEqual(Array(HOLD_MS / 1000).fill(1));
    expect(r2.s.layer).toBe(0);
  });

  test("an estimate that dips during the hold starts it over", () => {
    let s = chooseLayer(LAYERS, 0.5 * MB, ladderStart(OPTS), 0, OPTS);
    s = feed(s, 2.6 * MB, 0, 2).s;
    s = chooseLayer(LAYERS, 2.2 * MB, s, 3000, OPTS);
    // The hold counts from the first clear report after the dip (4 s), so up at 7 s.
    const r = feed(s, 2.6 * MB, 3, 4);
    expect(r.layers).toEqual([2, 2, 2, 1]);
  });

  test("between the margins a viewer stays put, up or down: no flapping on a path near a layer's rate", () => {
    // On the half layer (2 MB/s): kept down to 1.8 MB/s, the full layer (6 MB/s) needs 7.5.
    let s: LadderState = { ...ladderStart(OPTS), layer: 1 };
    for (const e of [1.85, 7.4, 2, 5, 1.81, 7.49]) {
      s = chooseLayer(LAYERS, e * MB, s, 1000, OPTS);
      expect(s.layer).toBe(1);
    }
    expect(chooseLayer(LAYERS, 1.7 * MB, s, 1000, OPTS).layer).toBe(2);
  });

  test("a step up that has to be undone doubles the next hold, up to a limit, and a calm spell forgives it", () => {
    let s = chooseLayer(LAYERS, 0.5 * MB, ladderStart(OPTS), 0, OPTS);
    let t = 0;
    const holds: number[] = [];
    for (let round = 0; round < 6; round++) {
      let waited = 0;
      while (s.layer === 2) {
        t++;
        waited++;
        s = chooseLayer(LAYERS, 2.6 * MB, s, t * 1000, OPTS);
      }
      holds.push(waited);
      // The path cannot carry the half layer after all: back down two seconds later.
      t += 2;
      s = chooseLayer(LAYERS, 0.5 * MB, s, t * 1000, OPTS);
      expect(s.layer).toBe(2);
    }
    // Reports needed: the first clear one starts the hold, which then doubles: 3, 6, 12, 24, 30 s.
    expect(holds).toEqual([4, 7, 13, 25, 31, 31]);
    expect(s.holdMs).toBe(MAX_HOLD_MS);
    s = feed(s, 0.5 * MB, t, (2 * MAX_HOLD_MS) / 1000).s;
    expect(s.holdMs).toBe(HOLD_MS);
  });

  test("a step up that holds for the flap window forgives the old flaps", () => {
    // A viewer on the quarter layer whose hold has grown to 24 s after flaps.
    let s: LadderState = { layer: 2, upSince: null, holdMs: 24_000, upAt: null, flapAt: 0 };
    let t = 0;
    while (s.layer === 2) s = chooseLayer(LAYERS, 2.6 * MB, s, ++t * 1000, OPTS);
    expect(t).toBe(25);
    // It stays on the half layer for 10 s, then the path clears further: the next step needs the base hold only.
    s = feed(s, 2.6 * MB, t, 10).s;
    t += 10;
    const r = feed(s, 10 * MB, t, 5);
    expect(r.layers).toEqual([1, 1, 1, 0, 0]);
    expect(r.s.holdMs).toBe(HOLD_MS);
  });
});
