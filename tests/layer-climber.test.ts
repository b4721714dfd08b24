// The viewer's choice of layer group (receiver-driven, as RLM): down on loss, up after a
// hold, the hold doubling after each try the loss undid. A fake clock, 10 fps.
import { describe, expect, test } from "bun:test";
import { CLIMB_HOLD_MS, CLIMB_SETTLE_MS, CLIMB_WINDOW_MS, LayerClimber, type LayerMove } from "../lib/receive/layer-climber.ts";

/** The times below are for a settling time of 0.5 s (the default is longer: what a switch takes to stop a group left). */
const SETTLE_MS = 500;
const climber = (layers: number, now = 0) => new LayerClimber({ layers, settleMs: SETTLE_MS }, now);

/** A viewer at 10 fps ticking every 250 ms; `lossy(t)` says whether frames at time t are lost. */
function run(climber: LayerClimber, fromMs: number, toMs: number, lossShare: (t: number, layer: number) => number, counts = { complete: 0, lost: 0 }): { moves: (LayerMove & { at: number })[]; counts: { complete: number; lost: number } } {
  const moves: (LayerMove & { at: number })[] = [];
  for (let t = fromMs; t <= toMs; t += 250) {
    // 2.5 frames a tick: alternately 2 and 3.
    const n = (t / 250) % 2 === 0 ? 2 : 3;
    const lost = Math.round(n * lossShare(t, climber.layer));
    counts.lost += lost;
    counts.complete += n - lost;
    const m = climber.tick(t, counts);
    if (m) moves.push({ ...m, at: t });
  }
  return { moves, counts };
}

describe("LayerClimber", () => {
  test("a clean path stays on the full layer", () => {
    const c = climber(3);
    expect(run(c, 0, 60_000, () => 0).moves).toEqual([]);
    expect(c.layer).toBe(0);
  });

  test("loss over 5 % drops one layer after the settling time and a whole window, and again as long later if it goes on; never below the smallest", () => {
    const c = climber(3);
    const { moves } = run(c, 0, 20_000, () => 0.2);
    const step = SETTLE_MS + CLIMB_WINDOW_MS;
    expect(moves.map((m) => [m.at, m.from, m.to, m.why])).toEqual([
      [step, 0, 1, "loss"],
      [2 * step, 1, 2, "loss"],
    ]);
    expect(moves[0]!.lossShare).toBeGreaterThan(0.05);
    expect(c.layer).toBe(2);
  });

  test("loss at or under 5 % is no reason to move; nor are too few frames to tell", () => {
    const c = climber(3);
    // One frame in 25 lost (4 %).
    let i = 0;
    expect(run(c, 0, 20_000, () => (i++ % 10 === 0 ? 0.4 : 0)).moves).toEqual([]);
    const slow = climber(3);
    // Half of everything lost, but only 4 frames in a window (2 fps): not judged.
    let counts = { complete: 0, lost: 0 };
    for (let t = 0; t <= 10_000; t += 500) {
      counts = t % 1000 === 0 ? { complete: counts.complete + 1, lost: counts.lost } : { complete: counts.complete, lost: counts.lost + 1 };
      expect(slow.tick(t, counts)).toBeNull();
    }
  });

  test("after the hold it tries the next larger layer; clean there, it stays, and each step up waits a hold", () => {
    const c = climber(3);
    // Lossy for the first 4 s: down to layer 2 by 5 s, then clean.
    const { moves } = run(c, 0, 30_000, (t) => (t < 4000 ? 0.5 : 0));
    expect(moves.map((m) => [m.at, m.to, m.why])).toEqual([
      [2500, 1, "loss"],
      [5000, 2, "loss"],
      [5000 + CLIMB_HOLD_MS, 1, "probe"],
      [5000 + 2 * CLIMB_HOLD_MS, 0, "probe"],
    ]);
    expect(c.layer).toBe(0);
  });

  test("a try the loss undoes goes back down a window later, and the hold doubles after each failed try; a try that holds resets it", () => {
    const c = climber(2);
    // The path carries layer 1 but not layer 0, for the first minute; then it carries both.
    const { moves, counts } = run(c, 0, 60_000, (_t, layer) => (layer === 0 ? 0.3 : 0));
    const pairs = moves.map((m) => [m.at, m.to, m.why, m.holdMs]);
    expect(pairs.slice(0, 7)).toEqual([
      [2500, 1, "loss", 5000],
      [7500, 0, "probe", 5000],
      [10_000, 1, "loss", 10_000],
      [20_000, 0, "probe", 10_000],
      [22_500, 1, "loss", 20_000],
      [42_500, 0, "probe", 20_000],
      [45_000, 1, "loss", 40_000],
    ]);
    // Never faster than the hold: every try waited at least CLIMB_HOLD_MS after the drop before it.
    for (let i = 1; i < moves.length; i++) if (moves[i]!.why === "probe") expect(moves[i]!.at - moves[i - 1]!.at).toBeGreaterThanOrEqual(CLIMB_HOLD_MS);
    // The path heals: the next try holds, and after it the hold is back to its start.
    const healed = run(c, 60_250, 150_000, () => 0, counts).moves;
    expect(healed.map((m) => [m.at, m.to, m.why])).toEqual([[85_000, 0, "probe"]]);
    expect(c.holdMs).toBe(CLIMB_HOLD_MS);
  });

  test("a move that could not be made is undone; an undone try doubles the hold, an undone drop leaves it", () => {
    const c = climber(2);
    const down = run(c, 0, 2500, () => 0.5).moves;
    expect(down.map((m) => m.to)).toEqual([1]);
    c.revert(2600);
    expect(c.layer).toBe(0);
    expect(c.holdMs).toBe(CLIMB_HOLD_MS);
    // The loss goes on: down again, once the full layer's window is judged anew.
    const again = run(c, 2750, 6000, () => 0.5).moves;
    expect(again.map((m) => [m.at, m.to])).toEqual([[2600 + SETTLE_MS + CLIMB_WINDOW_MS + 150, 1]]);
    const probe = run(c, 6250, 12_000, () => 0).moves;
    expect(probe.map((m) => m.why)).toEqual(["probe"]);
    c.revert(12_000);
    expect([c.layer, c.holdMs]).toEqual([1, 2 * CLIMB_HOLD_MS]);
    // Undoing twice changes nothing.
    c.revert(12_100);
    expect(c.layer).toBe(1);
  });

  test("by default a group is given CLIMB_SETTLE_MS (a switch's IGMP leave) before its window is judged", () => {
    const c = new LayerClimber({ layers: 2 }, 0);
    const { moves } = run(c, 0, 10_000, () => 1);
    expect(moves.map((m) => m.at)).toEqual([CLIMB_SETTLE_MS + CLIMB_WINDOW_MS]);
  });

  test("one layer: nothing to climb", () => {
    const c = climber(1);
    expect(run(c, 0, 10_000, () => 1).moves).toEqual([]);
    expect(() => new LayerClimber({ layers: 0 }, 0)).toThrow(RangeError);
  });
});
