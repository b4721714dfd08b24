import { describe, expect, test } from "bun:test";
import type { AudioPacket } from "../lib/wire/audio-packet.ts";
import { INITIAL_TARGET_DELAY_US, JitterBuffer, MAX_CONCEALED_RUN, MAX_TARGET_DELAY_US, MIN_TARGET_DELAY_US, type Playout } from "../lib/audio/jitter-buffer.ts";
import { prng } from "./helpers/prng.ts";

/** Capture time of packet 0 (the sender's clock); this viewer's clock is OFFSET ahead. */
const T0 = 1_700_000_000_000_000;
const OFFSET = 42_000_000;
const PACKET_US = 20_000;

const pkt = (seq: number, capturedAt = T0 + seq * PACKET_US): AudioPacket => ({ seq: seq >>> 0, capturedAt, samples: 960, data: new Uint8Array([seq & 0xff]) });
/** Arrival of packet `seq` after `delay` µs of network. */
const arrival = (seq: number, delay: number) => T0 + OFFSET + seq * PACKET_US + delay;
const what = (out: Playout[]) => out.map((o) => (o.kind === "packet" ? `p${o.packet.seq}` : `c${o.seq}`));

/**
 * Drives a buffer on a fake clock in 5 ms steps: packets arrive at their `arrivals`
 * (in arrival order; undefined = lost), and each step pulls what is due up to now +
 * `lead`. Returns everything pulled, with the clock at the pull.
 */
function drive(jb: JitterBuffer, arrivals: (number | undefined)[], opts: { lead?: number; until?: number } = {}): { at: number; out: Playout }[] {
  const lead = opts.lead ?? 20_000;
  const order = arrivals.map((at, seq) => ({ at, seq })).filter((a): a is { at: number; seq: number } => a.at !== undefined).sort((a, b) => a.at - b.at);
  const end = opts.until ?? Math.max(...order.map((o) => o.at)) + 300_000;
  const pulled: { at: number; out: Playout }[] = [];
  let k = 0;
  for (let now = order[0]!.at; now <= end; now += 5000) {
    while (k < order.length && order[k]!.at <= now) {
      jb.push(pkt(order[k]!.seq), order[k]!.at);
      k++;
    }
    for (const out of jb.pull(now + lead)) pulled.push({ at: now, out });
  }
  return pulled;
}

describe("JitterBuffer", () => {
  test("plays packets in seq order at capturedAt + least transit + target delay, whatever order they came in", () => {
    const jb = new JitterBuffer();
    // 1 and 2 swapped, 4 before 3: all within the delay.
    for (const [seq, delay] of [[0, 5000], [2, 6000], [1, 9000], [4, 5000], [3, 15_000]] as const) expect(jb.push(pkt(seq), arrival(seq, delay))).toBe("queued");
    expect(jb.minTransitUs).toBe(OFFSET + 5000);
    const mapping = jb.mappingUs!;
    // Anchored by the first packet at the initial target (no cut within the first second).
    expect(mapping).toBe(OFFSET + 5000 + INITIAL_TARGET_DELAY_US);
    expect(jb.playoutTimeOf(T0)).toBe(T0 + mapping);
    // Nothing is due before packet 0's time; then each at its own.
    expect(jb.pull(T0 + mapping)).toEqual([]);
    const out = jb.pull(T0 + mapping + 5 * PACKET_US);
    expect(what(out)).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect(out.map((o) => o.playAt - mapping)).toEqual([0, 1, 2, 3, 4].map((i) => T0 + i * PACKET_US));
    expect(jb.stats).toMatchObject({ received: 5, played: 5, concealed: 0, late: 0, duplicate: 0 });
  });

  test("duplicates (queued or already played) are dropped and counted apart from late packets", () => {
    const jb = new JitterBuffer();
    jb.push(pkt(0), arrival(0, 5000));
    jb.push(pkt(1), arrival(1, 5000));
    expect(jb.push(pkt(1), arrival(1, 7000))).toBe("duplicate"); // still queued
    jb.pull(jb.playoutTimeOf(T0 + PACKET_US)! + 1); // plays 0 and 1
    expect(jb.push(pkt(0), arrival(0, 90_000))).toBe("duplicate"); // already played
    expect(jb.stats).toMatchObject({ duplicate: 2, late: 0, played: 2 });
  });

  test("a lost packet is concealed when its turn comes; arriving after that it is late", () => {
    const jb = new JitterBuffer();
    const arrivals: (number | undefined)[] = [0, 1, 2, 3, 4, 5, 6].map((s) => arrival(s, 5000));
    arrivals[3] = undefined; // lost...
    const pulled = drive(jb, arrivals);
    expect(what(pulled.map((p) => p.out))).toEqual(["p0", "p1", "p2", "c3", "p4", "p5", "p6", "c7", "c8", "c9", "c10", "c11"]);
    // The concealment sits exactly where packet 3 would have played.
    const c3 = pulled.find((p) => p.out.kind === "conceal")!.out;
    expect(c3.playAt).toBe(jb.playoutTimeOf(T0 + 3 * PACKET_US)!);
    expect(c3.kind === "conceal" && c3.samples).toBe(960);
    // ...and arrives after all: too late.
    expect(jb.push(pkt(3), arrival(3, 400_000))).toBe("late");
    // After MAX_CONCEALED_RUN concealments the stream is silent, and counted so.
    expect(jb.stats).toMatchObject({ concealed: 1 + MAX_CONCEALED_RUN, late: 1 });
    expect(jb.stats.silent).toBeGreaterThan(0);
  });

  test("a packet that comes back after a long silence plays at its time; the silence in between is skipped in one step", () => {
    const jb = new JitterBuffer();
    jb.push(pkt(0), arrival(0, 5000));
    const m = jb.mappingUs!;
    expect(what(jb.pull(T0 + m + 1))).toEqual(["p0"]);
    // 10 s without packets: 5 concealments, then silence, without a pull per packet.
    expect(what(jb.pull(T0 + m + 10_000_000))).toEqual(["c1", "c2", "c3", "c4", "c5"]);
    expect(jb.stats.silent).toBe(500 - 1 - 5);
    const back = 501;
    expect(jb.push(pkt(back), arrival(back, 5000))).toBe("queued");
    // (10 s on, the target has come down from its initial guess: the mapping with it.)
    const m2 = jb.mappingUs!;
    expect(m2).toBeLessThan(m);
    expect(jb.pull(T0 + m2 + back * PACKET_US + 1).map((o) => [o.kind, o.playAt])).toEqual([["packet", T0 + back * PACKET_US + m2]]);
  });

  test("the delay adapts to the jitter within 40..120 ms: none, moderate, severe, and back down slowly", () => {
    const rnd = prng(7);
    const jb = new JitterBuffer({ marginUs: 20_000 });
    // No jitter: down from the initial guess to the least target (2 ms a second).
    drive(jb, Array.from({ length: 750 }, (_, s) => arrival(s, 3000)));
    expect(jb.targetDelayUs).toBe(MIN_TARGET_DELAY_US);
    // 0..50 ms of jitter: the 95th percentile of the spread plus the margin.
    const moderate = new JitterBuffer({ marginUs: 20_000 });
    const pulled = drive(moderate, Array.from({ length: 500 }, (_, s) => arrival(s, 3000 + rnd() * 50_000)));
    expect(moderate.targetDelayUs).toBeGreaterThan(60_000);
    expect(moderate.targetDelayUs).toBeLessThanOrEqual(73_000);
    // Nearly everything is played on time.
    expect(moderate.stats.late).toBeLessThan(500 * 0.05);
    expect(pulled.filter((p) => p.out.kind === "packet").length).toBeGreaterThan(500 * 0.95);
    // 0..400 ms: capped at the most; many are late, none is held longer.
    const severe = new JitterBuffer({ marginUs: 20_000 });
    drive(severe, Array.from({ length: 500 }, (_, s) => arrival(s, 3000 + rnd() * 400_000)));
    expect(severe.targetDelayUs).toBe(MAX_TARGET_DELAY_US);
    // (The mapping comes down only once more than 10 ms too long, a step a second.)
    expect(severe.mappingUs! - severe.minTransitUs!).toBeLessThanOrEqual(MAX_TARGET_DELAY_US + 10_000);
    expect(severe.stats.late).toBeGreaterThan(50);
    // The jitter goes: the target comes down, slowly (not within 2 s), but surely (within 60 s).
    const calm = new JitterBuffer({ marginUs: 20_000 });
    const burst = Array.from({ length: 100 }, (_, s) => arrival(s, 3000 + rnd() * 100_000));
    const steady = Array.from({ length: 3000 }, (_, i) => arrival(100 + i, 3000));
    const arrivals = [...burst, ...steady];
    let k = 0;
    const order = arrivals.map((at, seq) => ({ at, seq })).sort((a, b) => a.at - b.at);
    const targetAt = (seconds: number) => {
      const end = T0 + OFFSET + seconds * 1e6;
      for (; k < order.length && order[k]!.at <= end; k++) {
        calm.push(pkt(order[k]!.seq), order[k]!.at);
        calm.pull(order[k]!.at + 20_000);
      }
      return calm.targetDelayUs;
    };
    const high = targetAt(2);
    expect(high).toBeGreaterThan(100_000);
    expect(targetAt(4)).toBeGreaterThan(high - 15_000);
    expect(targetAt(60)).toBe(MIN_TARGET_DELAY_US);
    expect(calm.mappingUs! - calm.minTransitUs!).toBeLessThan(MIN_TARGET_DELAY_US + 10_001);
    expect(calm.stats.delayShrunk).toBeGreaterThan(0);
  });

  test("a delay that grows at once leaves a gap, never an overlap; one that shrinks cuts at most 20 ms once a second", () => {
    const jb = new JitterBuffer({ marginUs: 20_000 });
    const arrivals = Array.from({ length: 1500 }, (_, s) => arrival(s, 3000));
    // A burst of 80 ms late packets at 2 s.
    for (let s = 100; s < 110; s++) arrivals[s] = arrival(s, 83_000);
    const pulled = drive(jb, arrivals).map((p) => p.out);
    expect(jb.stats.delayGrown).toBeGreaterThan(0);
    expect(jb.stats.delayShrunk).toBeGreaterThan(0);
    const grown: number[] = [];
    const shrunk: number[] = [];
    for (let i = 1; i < pulled.length; i++) {
      const step = pulled[i]!.playAt - pulled[i - 1]!.playAt;
      if (step > PACKET_US) grown.push(step - PACKET_US);
      if (step < PACKET_US) shrunk.push(pulled[i]!.playAt);
      expect(step).toBeGreaterThanOrEqual(PACKET_US - 20_000);
    }
    // The burst grew the delay (by the 80 ms it lacked, at once or nearly);
    expect(grown.reduce((a, b) => a + b, 0)).toBeGreaterThan(60_000);
    // it came back down a step a second at most.
    for (let i = 1; i < shrunk.length; i++) expect(shrunk[i]! - shrunk[i - 1]!).toBeGreaterThanOrEqual(1_000_000 - PACKET_US);
  });

  test("bounded: packets far ahead in seq, or a capture time that jumps, start the stream over", () => {
    const jb = new JitterBuffer();
    jb.push(pkt(10), arrival(10, 5000));
    jb.push(pkt(11), arrival(11, 5000));
    // A new session: seq from 0 again, the capture clock going on.
    const fresh = { ...pkt(0), capturedAt: T0 + 100 * PACKET_US };
    expect(jb.push(fresh, arrival(100, 5000))).toBe("queued");
    expect(jb.stats.resyncs).toBe(1);
    expect(jb.queued).toBe(1);
    // A capture time 2 s off what the seq says.
    expect(jb.push({ ...pkt(1), capturedAt: T0 + 5_000_000 }, arrival(101, 5000))).toBe("queued");
    expect(jb.stats.resyncs).toBe(2);
    // seq wraps at 2^32 without a resync.
    const wrap = new JitterBuffer();
    wrap.push(pkt(0xffffffff, T0), T0 + OFFSET);
    expect(wrap.push(pkt(0, T0 + PACKET_US), T0 + OFFSET + PACKET_US)).toBe("queued");
    expect(what(wrap.pull(T0 + OFFSET + 1_000_000))).toEqual(["p4294967295", "p0", "c1", "c2", "c3", "c4", "c5"]);
    expect(wrap.stats.resyncs).toBe(0);
  });

  test("reset() forgets the stream but keeps the counters", () => {
    const jb = new JitterBuffer();
    jb.push(pkt(0), arrival(0, 5000));
    jb.reset();
    expect(jb.playoutTimeOf(T0)).toBeNull();
    expect(jb.pull(T0 + OFFSET + 10_000_000)).toEqual([]);
    expect(jb.stats.received).toBe(1);
    jb.push(pkt(7), arrival(7, 9000));
    expect(jb.minTransitUs).toBe(OFFSET + 9000);
  });
});
