import { describe, expect, test } from "bun:test";
import { RepairTracker, type RepairOptions, type RepairOutput } from "../lib/receive/repair.ts";
import { entryIndexes, type RepairEntry } from "../lib/wire/repair.ts";
import { prng } from "./helpers/prng.ts";

/** The (frame, index) pairs a batch of requests names. */
function asked(out: RepairOutput): string[] {
  return out.requests.flat().flatMap((e: RepairEntry) => entryIndexes(e).map((i) => `${e.frameNumber}:${i}`));
}

function arrive(t: RepairTracker, frameNumber: number, indexes: number[], count: number, now: number): void {
  for (const i of indexes) t.datagram({ frameNumber, fragmentIndex: i, fragmentCount: count }, now);
}

describe("RepairTracker: what it asks for", () => {
  test("a gap before a later index is asked for at once, exactly those indexes", () => {
    const t = new RepairTracker();
    arrive(t, 100, [0, 1, 4, 5, 9], 12, 0);
    expect(asked(t.poll(0))).toEqual(["100:2", "100:3", "100:6", "100:7", "100:8"]);
  });

  test("nothing is asked twice within a round trip, and asked again after it", () => {
    const t = new RepairTracker({ initialRttMs: 2, minRetryMs: 1, stallMs: 100 });
    arrive(t, 1, [0, 2], 4, 0);
    expect(asked(t.poll(0))).toEqual(["1:1"]);
    expect(asked(t.poll(1))).toEqual([]);
    expect(t.retryMs).toBe(4); // srtt + 2 rttvar
    expect(asked(t.poll(4))).toEqual(["1:1"]);
  });

  test("a datagram that still does not come is asked for again less and less often (twice as long each time, up to 64 round trips)", () => {
    const t = new RepairTracker({ initialRttMs: 2, minRetryMs: 1, stallMs: 100, recordDelayMs: 10_000 });
    arrive(t, 1, [0, 2, 3], 4, 0);
    const times: number[] = [];
    for (let now = 0; now <= 1200; now += 0.5) if (asked(t.poll(now)).length > 0) times.push(now);
    // The retransmission timeout is 4 ms: asked at 0, then 4, 8, 16, ... ms after the previous ask.
    const gaps = times.slice(1).map((x, k) => x - times[k]!);
    expect(gaps.slice(0, 7)).toEqual([4, 8, 16, 32, 64, 128, 256]);
    expect(gaps.slice(7).every((g) => g === 256)).toBe(true);
  });

  test("a frame's missing tail is asked for when a later frame starts", () => {
    const t = new RepairTracker();
    arrive(t, 1, [0, 1], 5, 0);
    expect(asked(t.poll(0))).toEqual([]);
    arrive(t, 2, [0], 5, 0.5);
    expect(asked(t.poll(0.5))).toEqual(["1:2", "1:3", "1:4"]);
  });

  test("a frame that goes quiet has its tail asked for after stallMs, or four of its own datagram spacings", () => {
    const t = new RepairTracker({ stallMs: 3 });
    arrive(t, 1, [0, 1], 4, 0);
    expect(asked(t.poll(2.9))).toEqual([]);
    expect(t.nextDueMs()).toBe(3);
    expect(asked(t.poll(3))).toEqual(["1:2", "1:3"]);
    // Paced 5 ms apart: it waits 20 ms, not 3.
    const paced = new RepairTracker({ stallMs: 3 });
    paced.datagram({ frameNumber: 7, fragmentIndex: 0, fragmentCount: 3 }, 0);
    paced.datagram({ frameNumber: 7, fragmentIndex: 1, fragmentCount: 3 }, 5);
    expect(asked(paced.poll(20))).toEqual([]);
    expect(asked(paced.poll(25))).toEqual(["7:2"]);
  });

  test("a frame lost whole is asked for by its first datagram, then the rest once its count is known", () => {
    const t = new RepairTracker();
    arrive(t, 1, [0, 1, 2], 3, 0);
    arrive(t, 3, [0], 3, 1);
    expect(asked(t.poll(1))).toEqual(["2:0"]);
    t.datagram({ frameNumber: 2, fragmentIndex: 0, fragmentCount: 3 }, 1.5);
    expect(asked(t.poll(1.5))).toEqual(["2:1", "2:2"]);
  });

  test("the measured round trip (request to repair) sets the retry interval", () => {
    const t = new RepairTracker({ initialRttMs: 50, minRetryMs: 0.1 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    t.datagram({ frameNumber: 1, fragmentIndex: 1, fragmentCount: 3 }, 0.4);
    expect(t.rttMs).toBeCloseTo(0.4, 5);
    t.rttSample(0.4);
    expect(t.retryMs).toBeLessThan(1);
  });

  test("many missing indexes are batched into messages of at most 64 entries", () => {
    const t = new RepairTracker();
    // Every other index of 3000 missing: 1500 indexes, 9 per entry (odd ones): 167 entries.
    arrive(t, 1, Array.from({ length: 1500 }, (_, i) => 2 * i), 3000, 0);
    const out = t.poll(0);
    expect(out.requests.length).toBe(3);
    for (const m of out.requests) expect(m.length).toBeLessThanOrEqual(64);
    expect(asked(out)).toHaveLength(1499);
  });
});

describe("RepairTracker: settling every frame exactly once", () => {
  test("a frame repaired within maxDelayMs is live", () => {
    const t = new RepairTracker({ maxDelayMs: 5 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    t.datagram({ frameNumber: 1, fragmentIndex: 1, fragmentCount: 3 }, 1);
    const out = t.poll(1);
    expect(out.live).toEqual([1]);
    expect(t.stats.framesRepairedLive).toBe(1);
  });

  test("a repair later than maxDelayMs but inside recordDelayMs is for the recorder only; the live view was told to move on first", () => {
    const t = new RepairTracker({ maxDelayMs: 5, recordDelayMs: 500 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    expect(t.poll(6).liveMissed).toEqual([1]);
    t.datagram({ frameNumber: 1, fragmentIndex: 1, fragmentCount: 3 }, 100);
    const out = t.poll(100);
    expect(out.recordOnly).toEqual([1]);
    expect(out.live).toEqual([]);
    expect(t.stats).toMatchObject({ framesLive: 0, framesRecordOnly: 1, framesGivenUp: 0 });
  });

  test("without a recorder (recordDelayMs 0) a frame is given up at maxDelayMs", () => {
    const t = new RepairTracker({ maxDelayMs: 5, recordDelayMs: 0 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    const out = t.poll(5.5);
    expect(out.liveMissed).toEqual([1]);
    expect(out.givenUp).toEqual([{ frameNumber: 1, reason: "deadline" }]);
    expect(t.tracked).toBe(0);
  });

  test("gone from the server ends the asking; the frame is still waited for, and given up as gone at its deadline", () => {
    const t = new RepairTracker({ recordDelayMs: 500 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    t.gone([1, 99]);
    const out = t.poll(10);
    expect(out.givenUp).toEqual([]);
    expect(asked(t.poll(50))).toEqual([]);
    expect(t.poll(501).givenUp).toEqual([{ frameNumber: 1, reason: "gone" }]);
  });

  test("a frame answered gone that completes after all (its datagram was late, not lost) is settled as any other", () => {
    const t = new RepairTracker({ recordDelayMs: 500 });
    arrive(t, 1, [0, 2], 3, 0);
    t.poll(0);
    t.gone([1]);
    arrive(t, 1, [1], 3, 40);
    const out = t.poll(41);
    expect(out.givenUp).toEqual([]);
    expect(out.recordOnly).toEqual([1]);
    expect(t.stats.framesGivenUp).toBe(0);
  });

  test("a frame the server skipped for this viewer is settled without asking again, and is not counted as given up", () => {
    const t = new RepairTracker();
    arrive(t, 1, [0, 1], 2, 0);
    arrive(t, 3, [0, 1], 2, 1);
    // Frame 2 never came: asked for its first datagram.
    expect(asked(t.poll(2))).toEqual(["2:0"]);
    t.gone([2], true);
    const out = t.poll(3);
    expect(out.givenUp).toEqual([{ frameNumber: 2, reason: "skipped" }]);
    expect(asked(t.poll(50))).toEqual([]);
    expect(t.stats).toMatchObject({ framesGivenUp: 0, framesSkipped: 1, datagramsUnrepaired: 0 });
  });

  test("late and duplicate datagrams are counted, not settled twice", () => {
    const t = new RepairTracker();
    arrive(t, 1, [0, 1], 2, 0);
    arrive(t, 1, [1], 2, 0.1);
    arrive(t, 2, [0], 2, 0.2);
    arrive(t, 2, [0], 2, 0.3);
    expect(t.poll(0.3).live).toEqual([1]);
    expect(t.stats.datagramsLate).toBe(2);
  });

  test("state is bounded: a jump ahead gives up the oldest beyond maxTracked, and a far jump resyncs", () => {
    const t = new RepairTracker({ maxTracked: 8 });
    arrive(t, 1, [0], 2, 0);
    arrive(t, 100, [0], 2, 1);
    expect(t.tracked).toBeLessThanOrEqual(8);
    const out = t.poll(1);
    expect(out.givenUp.filter((g) => g.reason === "evicted").length).toBe(100 - 8);
    arrive(t, 100_000, [0], 2, 2);
    expect(t.tracked).toBe(1);
    expect(t.poll(2).givenUp.every((g) => g.reason === "resync")).toBe(true);
    expect(t.stats.framesGivenUp).toBe(100);
  });
});

/**
 * Frames of `n` datagrams at 30 fps sent `spacingMs` apart over a path losing each
 * datagram (first sends and resends alike) with probability `loss`; requests reach
 * the server after half the round trip, and it resends what it holds.
 */
function simulate(o: { loss: number; n: number; frames: number; rttMs: number; spacingMs: number; seed: number; opts: RepairOptions; serverLoss?: number }) {
  const rnd = prng(o.seed);
  const t = new RepairTracker({ initialRttMs: o.rttMs, ...o.opts });
  const events: { at: number; frame: number; index: number }[] = [];
  const frameMs = 1000 / 30;
  for (let f = 0; f < o.frames; f++) {
    for (let i = 0; i < o.n; i++) if (rnd() >= o.loss) events.push({ at: f * frameMs + i * o.spacingMs + o.rttMs / 2, frame: f, index: i });
  }
  const resends: { at: number; frame: number; index: number }[] = [];
  const settled = new Map<number, string>();
  const liveMissed = new Set<number>();
  const take = (out: RepairOutput, now: number) => {
    for (const f of out.live) settled.set(f, settled.has(f) ? "twice" : "live");
    for (const f of out.recordOnly) settled.set(f, settled.has(f) ? "twice" : "record");
    for (const g of out.givenUp) settled.set(g.frameNumber, settled.has(g.frameNumber) ? "twice" : "lost");
    for (const f of out.liveMissed) liveMissed.add(f);
    for (const entries of out.requests) {
      for (const e of entries) {
        for (const i of entryIndexes(e)) {
          if (e.frameNumber < 0 || e.frameNumber >= o.frames || i >= o.n) continue;
          if (rnd() >= o.loss) resends.push({ at: now + o.rttMs, frame: e.frameNumber, index: i });
        }
      }
    }
  };
  // First sends are in time order, and so are resends (each due a round trip after its request): merge the two queues.
  const end = o.frames * frameMs + 1000;
  const step = 0.05;
  let next = 0;
  let nextResend = 0;
  for (let now = 0; now < end; now += step) {
    for (;;) {
      const a = events[next];
      const b = resends[nextResend];
      const e = a && a.at <= now && (!b || a.at <= b.at) ? a : b && b.at <= now ? b : undefined;
      if (!e) break;
      if (e === a) next++;
      else nextResend++;
      t.datagram({ frameNumber: e.frame, fragmentIndex: e.index, fragmentCount: o.n }, now);
    }
    take(t.poll(now), now);
  }
  return { t, settled, liveMissed };
}

describe("RepairTracker under simulated random loss", () => {
  test("1 % datagram loss, 150 datagrams a frame: nearly every frame live, every frame recorded, the accounting exact", () => {
    const frames = 300;
    const { t, settled, liveMissed } = simulate({ loss: 0.01, n: 150, frames, rttMs: 0.5, spacingMs: 0.05, seed: 1, opts: { maxDelayMs: 5, recordDelayMs: 500 } });
    // Without repair 1 - 0.99^150 = 78 % of frames would be lost.
    const live = [...settled.values()].filter((v) => v === "live").length;
    const record = [...settled.values()].filter((v) => v === "record").length;
    const lost = [...settled.values()].filter((v) => v === "lost").length;
    // Frame 0 may lose its first datagrams before the tracker knows the stream: it is still followed from its first arrival.
    expect(settled.size).toBe(frames);
    expect([...settled.values()]).not.toContain("twice");
    expect(live / frames).toBeGreaterThanOrEqual(0.99);
    expect(lost).toBe(0);
    expect(t.stats).toMatchObject({ framesLive: live, framesRecordOnly: record, framesGivenUp: lost });
    // The live view moved on exactly for the frames it did not get live.
    expect([...liveMissed].sort((a, b) => a - b)).toEqual([...settled].filter(([, v]) => v !== "live").map(([f]) => f).sort((a, b) => a - b));
    // One round of repair for most losses: requests stay close to the datagrams lost (1.5 per frame), no storm.
    expect(t.stats.datagramsRequested).toBeLessThan(frames * 150 * 0.01 * 1.5);
    expect(t.stats.datagramsRepaired).toBeGreaterThan(frames * 150 * 0.01 * 0.7);
  });

  test("5 % loss with no recorder: frames are live or given up, never recorded, each settled once", () => {
    const frames = 150;
    const { t, settled, liveMissed } = simulate({ loss: 0.05, n: 150, frames, rttMs: 0.5, spacingMs: 0.05, seed: 2, opts: { maxDelayMs: 5, recordDelayMs: 0 } });
    expect(settled.size).toBe(frames);
    expect([...settled.values()]).not.toContain("twice");
    expect([...settled.values()]).not.toContain("record");
    expect(t.stats.framesLive + t.stats.framesGivenUp).toBe(frames);
    expect(t.stats.framesLive / frames).toBeGreaterThan(0.9);
    expect(liveMissed.size).toBe(t.stats.framesGivenUp);
  });
});

describe("RepairTracker with parity in the stream", () => {
  test("once a stream carries parity, gaps wait for the frame's last parity, then only what parity did not rebuild is asked", () => {
    const t = new RepairTracker();
    // Frame 1 carries parity: the tracker learns the stream does.
    arrive(t, 1, [0, 1, 2, 3], 4, 0);
    t.parity({ frameNumber: 1, parityIndex: 0, stride: 2 }, 0.1);
    t.parity({ frameNumber: 1, parityIndex: 1, stride: 2 }, 0.2);
    // Frame 2 lost 1 and 2; its parity rebuilt 1 (fed back as a datagram) but not 2 yet.
    arrive(t, 2, [0, 3], 4, 33);
    expect(asked(t.poll(33))).toEqual([]);
    t.parity({ frameNumber: 2, parityIndex: 0, stride: 2 }, 33.1);
    t.datagram({ frameNumber: 2, fragmentIndex: 1, fragmentCount: 4 }, 33.1);
    expect(asked(t.poll(33.1))).toEqual([]);
    t.parity({ frameNumber: 2, parityIndex: 1, stride: 2 }, 33.2);
    expect(asked(t.poll(33.2))).toEqual(["2:2"]);
  });

  test("the last parity lost: the frame's silence ends the wait", () => {
    const t = new RepairTracker({ stallMs: 3 });
    arrive(t, 1, [0, 1], 2, 0);
    t.parity({ frameNumber: 1, parityIndex: 0, stride: 1 }, 0.1);
    arrive(t, 2, [1], 2, 33);
    expect(asked(t.poll(35))).toEqual([]);
    expect(asked(t.poll(36))).toEqual(["2:0"]);
  });

  test("a frame that ends without parity turns the waiting off: the next gap is asked at once", () => {
    const t = new RepairTracker({ stallMs: 3 });
    arrive(t, 1, [0, 1], 2, 0);
    t.parity({ frameNumber: 1, parityIndex: 0, stride: 1 }, 0.1);
    arrive(t, 2, [1], 2, 33);
    t.poll(40); // frame 2 closed by silence, no parity seen
    arrive(t, 3, [0, 2], 3, 66);
    expect(asked(t.poll(66)).filter((a) => a.startsWith("3:"))).toEqual(["3:1"]);
  });
});
