import { describe, expect, test } from "bun:test";
import { encodeDatagramHeader, HEADER_SIZE, PayloadType } from "../lib/wire/datagram.ts";
import { Reassembler, RESYNC_DISTANCE, type ReassemblerOptions } from "../lib/receive/reassembler.ts";
import { seqAdd } from "../lib/wire/seq.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { prng } from "./helpers/prng.ts";


const SESSION = 0x5e55;

/** Recognisable frame contents: every frame number gives different bytes. */
function content(fn: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (fn * 31 + i * 7) & 0xff;
  return out;
}

interface Make {
  length?: number;
  size?: number;
  session?: number;
  capturedAt?: number;
  encrypted?: boolean;
}

/** The datagrams of frame `fn`: `length` bytes in `size`-byte fragments (default 10 bytes in 4: three datagrams). */
function frame(fn: number, m: Make = {}): Uint8Array[] {
  const { length = 10, size = 4, session = SESSION, capturedAt = 1000 + fn, encrypted = false } = m;
  const jpeg = content(fn, length);
  const count = Math.ceil(length / size);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const payload = jpeg.subarray(i * size, Math.min(length, (i + 1) * size));
    // An encrypted fragment carries a 16-byte tag after its bytes (zeros here: no key checks it).
    const d = new Uint8Array(HEADER_SIZE + payload.length + (encrypted ? 16 : 0));
    encodeDatagramHeader(d, 0, {
      encrypted, payloadType: PayloadType.Jpeg, sessionId: session, frameNumber: fn, fragmentIndex: i, fragmentCount: count,
      frameLength: length, fragmentSize: size, capturedAt,
    });
    d.set(payload, HEADER_SIZE);
    out.push(d);
  }
  return out;
}

interface Out {
  frameNumber: number;
  missingBefore: number;
  length: number;
}

/** Pushes all datagrams at `now`; returns what was delivered, checking each frame's bytes. */
function feed(r: Reassembler, datagrams: Uint8Array[], now = 0): Out[] {
  const out: Out[] = [];
  for (const d of datagrams) {
    const f = r.push(d, now);
    if (!f) continue;
    expect(Buffer.from(f.jpeg).equals(content(f.frameNumber, f.jpeg.length))).toBe(true);
    expect(f.capturedAt).toBe(1000 + f.frameNumber);
    out.push({ frameNumber: f.frameNumber, missingBefore: f.missingBefore, length: f.jpeg.length });
  }
  return out;
}

const numbers = (out: Out[]) => out.map((o) => o.frameNumber);
const make = (o: Partial<ReassemblerOptions> = {}) => new Reassembler({ sessionId: SESSION, ...o });

describe("Reassembler", () => {
  test("in order: every frame, nothing counted lost", () => {
    const r = make();
    const out = feed(r, Array.from({ length: 10 }, (_, i) => frame(i)).flat());
    expect(out).toEqual(Array.from({ length: 10 }, (_, i) => ({ frameNumber: i, missingBefore: 0, length: 10 })));
    expect(r.stats.datagrams).toBe(30);
    expect(r.stats.framesCompleted).toBe(10);
    expect(r.stats.framesMissing).toBe(0);
    expect(r.stats.incomplete).toEqual({ lostFragment: 0, timeout: 0, evicted: 0 });
    expect(Object.values(r.stats.dropped).every((n) => n === 0)).toBe(true);
    expect(r.inFlight).toBe(0);
  });

  test("fragments out of order within a frame", () => {
    const r = make();
    const [a, b, c] = frame(1);
    expect(r.push(c!, 0)).toBeNull();
    expect(r.push(a!, 0)).toBeNull();
    const f = r.push(b!, 0);
    expect(f?.frameNumber).toBe(1);
    expect([...f!.jpeg]).toEqual([...content(1, 10)]);
  });

  test("two frames interleaved, each complete: both delivered in order", () => {
    const r = make();
    const one = frame(1);
    const two = frame(2);
    expect(numbers(feed(r, [one[0]!, two[0]!, one[1]!, two[1]!, one[2]!, two[2]!]))).toEqual([1, 2]);
    expect(r.stats.incomplete.lostFragment).toBe(0);
  });

  test("duplicates: in flight counted duplicate, after delivery counted late", () => {
    const r = make();
    const [a, b, c] = frame(1);
    feed(r, [a!, a!, b!]);
    expect(r.stats.dropped.duplicate).toBe(1);
    expect(numbers(feed(r, [c!, c!, a!]))).toEqual([1]);
    expect(r.stats.dropped.late).toBe(2);
    expect(r.stats.framesCompleted).toBe(1);
  });

  test("a lost fragment: the frame is dropped when a newer one completes, and counted", () => {
    const r = make();
    const five = frame(5);
    const out = feed(r, [...frame(4), five[0]!, five[2]!, ...frame(6)]);
    expect(numbers(out)).toEqual([4, 6]);
    expect(out[1]!.missingBefore).toBe(1);
    expect(r.stats.incomplete.lostFragment).toBe(1);
    expect(r.stats.framesMissing).toBe(0); // frame 5 was seen, so it is incomplete, not missing
    // Its last fragment arriving now is late.
    expect(r.push(five[1]!, 0)).toBeNull();
    expect(r.stats.dropped.late).toBe(1);
    expect(r.inFlight).toBe(0);
  });

  test("whole frames never seen are counted missing", () => {
    const r = make();
    const out = feed(r, [...frame(1), ...frame(4), ...frame(5)]);
    expect(out.map((o) => o.missingBefore)).toEqual([0, 2, 0]);
    expect(r.stats.framesMissing).toBe(2);
  });

  test("a newer frame completing before an older one drops the older one", () => {
    const r = make();
    const one = frame(1);
    const out = feed(r, [one[0]!, ...frame(2), one[1]!, one[2]!]);
    expect(numbers(out)).toEqual([2]);
    expect(out[0]!.missingBefore).toBe(0); // first frame since the start: nothing to compare with
    expect(r.stats.incomplete.lostFragment).toBe(1);
    expect(r.stats.dropped.late).toBe(2);
  });

  test("timeout via sweep, measured from the frame's first datagram", () => {
    const r = make({ frameTimeoutMs: 500 });
    feed(r, frame(1), 0);
    const two = frame(2);
    r.push(two[0]!, 100);
    r.push(two[1]!, 550);
    r.sweep(599);
    expect(r.inFlight).toBe(1);
    r.sweep(600);
    expect(r.inFlight).toBe(0);
    expect(r.stats.incomplete.timeout).toBe(1);
    // The timed-out frame's straggler is late; the next frame counts it as skipped but not missing.
    expect(r.push(two[2]!, 601)).toBeNull();
    expect(r.stats.dropped.late).toBe(1);
    const out = feed(r, frame(3), 602);
    expect(out).toEqual([{ frameNumber: 3, missingBefore: 1, length: 10 }]);
    expect(r.stats.framesMissing).toBe(0);
  });

  test("sweep keeps frames younger than the timeout", () => {
    const r = make({ frameTimeoutMs: 500 });
    r.push(frame(1)[0]!, 1000);
    r.sweep(1499);
    expect(r.inFlight).toBe(1);
    expect(r.stats.incomplete.timeout).toBe(0);
  });

  test("frame numbers wrap from 0xFFFFFFFF to 0", () => {
    const r = make();
    const fns = [0xfffffffd, 0xfffffffe, 0xffffffff, 0, 1, 2];
    const out = feed(r, fns.map((fn) => frame(fn)).flat());
    expect(numbers(out)).toEqual(fns);
    expect(out.every((o) => o.missingBefore === 0)).toBe(true);
    // Late across the wrap: 0xFFFFFFFF is older than 2.
    expect(r.push(frame(0xffffffff)[0]!, 0)).toBeNull();
    expect(r.stats.dropped.late).toBe(1);
  });

  test("loss across the wrap", () => {
    const r = make();
    const last = frame(0xffffffff);
    const out = feed(r, [...frame(0xfffffffe), last[0]!, ...frame(1)]);
    expect(out.map((o) => [o.frameNumber, o.missingBefore])).toEqual([
      [0xfffffffe, 0],
      [1, 2],
    ]);
    expect(r.stats.incomplete.lostFragment).toBe(1);
    expect(r.stats.framesMissing).toBe(1); // frame 0 was never seen
  });

  test("oversize frames are dropped before any memory is taken", () => {
    const r = make({ maxFrameBytes: 100 });
    expect(feed(r, frame(1, { length: 101, size: 50 }))).toEqual([]);
    expect(r.stats.dropped.oversize).toBe(3);
    expect(r.poolSize).toBe(0);
    expect(numbers(feed(r, frame(2, { length: 100, size: 50 })))).toEqual([2]);
  });

  test("wrong session", () => {
    const r = make();
    expect(feed(r, frame(1, { session: SESSION + 1 }))).toEqual([]);
    expect(r.stats.dropped.wrongSession).toBe(3);
    expect(r.poolSize).toBe(0);
  });

  test("encrypted payloads are not delivered as JPEG", () => {
    const r = make();
    expect(feed(r, frame(1, { encrypted: true }))).toEqual([]);
    expect(r.stats.dropped.unsupported).toBe(3);
  });

  test("fragments that disagree with the frame's first one are inconsistent", () => {
    const r = make();
    const good = frame(1);
    r.push(good[0]!, 0);
    // Same frame number, different length (12 bytes: still index 1 of 3 with size 4).
    expect(r.push(frame(1, { length: 12 })[1]!, 0)).toBeNull();
    // Different fragment size (10 bytes in 5: index 1 of 2).
    expect(r.push(frame(1, { size: 5 })[1]!, 0)).toBeNull();
    // Different capture time.
    expect(r.push(frame(1, { capturedAt: 7 })[1]!, 0)).toBeNull();
    expect(r.stats.dropped.inconsistent).toBe(3);
    // The frame still completes from its own fragments.
    expect(numbers(feed(r, good.slice(1)))).toEqual([1]);
  });

  test("garbage is counted malformed and never throws", () => {
    const r = make();
    const rnd = prng(11);
    const good = frame(1);
    for (let i = 0; i < 3000; i++) {
      let d: Uint8Array;
      if (i % 2) {
        d = good[i % 3]!.slice();
        d[Math.floor(rnd() * d.length)]! ^= 1 << Math.floor(rnd() * 8);
      } else {
        d = Uint8Array.from({ length: Math.floor(rnd() * 60) }, () => Math.floor(rnd() * 256));
      }
      r.push(d, i);
    }
    expect(r.stats.datagrams).toBe(3000);
    expect(r.stats.dropped.malformed).toBeGreaterThan(2000);
    expect(r.poolSize).toBeLessThanOrEqual(4);
  });

  test("more partial frames than maxInFlight: the oldest is evicted", () => {
    const r = make({ maxInFlight: 2 });
    const one = frame(1);
    const two = frame(2);
    const three = frame(3);
    r.push(one[0]!, 0);
    r.push(two[0]!, 0);
    r.push(three[0]!, 0);
    expect(r.stats.incomplete.evicted).toBe(1);
    expect(r.inFlight).toBe(2);
    // The evicted frame's fragments are late now, and do not push out newer frames.
    expect(feed(r, one.slice(1))).toEqual([]);
    expect(r.stats.dropped.late).toBe(2);
    expect(numbers(feed(r, [...two.slice(1), ...three.slice(1)]))).toEqual([2, 3]);
    expect(r.stats.incomplete.evicted).toBe(1);
  });

  test("a frame older than every one in a full pool is the one that does not fit", () => {
    const r = make({ maxInFlight: 2 });
    feed(r, frame(1));
    const five = frame(5);
    const six = frame(6);
    r.push(five[0]!, 0);
    r.push(six[0]!, 0);
    expect(r.push(frame(3)[0]!, 0)).toBeNull();
    expect(r.stats.incomplete.evicted).toBe(1);
    expect(r.inFlight).toBe(2);
    expect(numbers(feed(r, [...five.slice(1), ...six.slice(1)]))).toEqual([5, 6]);
    // 2, 3 and 4 were skipped before 5: 3 was seen (evicted), 2 and 4 never.
    expect(r.stats.framesMissing).toBe(2);
  });

  test("a one-datagram frame completes at once and frees the slots of older partial frames", () => {
    const r = make({ maxInFlight: 2 });
    r.push(frame(1)[0]!, 0);
    r.push(frame(2)[0]!, 0);
    expect(numbers(feed(r, frame(3, { length: 3 })))).toEqual([3]);
    expect(r.stats.incomplete).toEqual({ lostFragment: 2, timeout: 0, evicted: 0 });
    expect(r.poolSize).toBe(2);
  });

  test("bounded memory: thousands of frames with loss and reordering keep at most maxInFlight pooled buffers", () => {
    const r = make({ maxInFlight: 4, maxFrameBytes: 4096 });
    const rnd = prng(3);
    let now = 0;
    let delivered = 0;
    const buffers = new Set<ArrayBufferLike>();
    let heldBack: Uint8Array[] = [];
    for (let fn = 0; fn < 5000; fn++) {
      now += 33;
      const ds = frame(fn, { length: 500 + Math.floor(rnd() * 3000), size: 100 }).filter(() => rnd() > 0.002);
      // Swap neighbours now and then, and hold a few back until after the next frame.
      for (let i = 1; i < ds.length; i++) if (rnd() < 0.05) [ds[i - 1], ds[i]] = [ds[i]!, ds[i - 1]!];
      const late = heldBack;
      heldBack = [];
      for (let i = ds.length - 1; i >= 0; i--) if (rnd() < 0.003) heldBack.push(...ds.splice(i, 1));
      for (const d of [...ds, ...late]) {
        const f = r.push(d, now);
        if (f) {
          delivered++;
          buffers.add(f.jpeg.buffer);
        }
      }
      if (fn % 30 === 0) r.sweep(now);
      expect(r.poolSize).toBeLessThanOrEqual(4);
    }
    expect(delivered).toBeGreaterThan(4000);
    expect(delivered + r.stats.incomplete.lostFragment + r.stats.incomplete.timeout + r.stats.incomplete.evicted + r.stats.framesMissing + r.inFlight).toBe(5000);
    // Every frame came out of one of at most maxInFlight buffers: none allocated per frame.
    expect(buffers.size).toBeLessThanOrEqual(4);
    expect(r.pooledBytes).toBeLessThanOrEqual(4 * 4096);
  });

  test("reset: a new session starts afresh, old-session datagrams are wrong-session, counters go on", () => {
    const r = make();
    feed(r, [...frame(100), ...frame(101)]);
    r.push(frame(102)[0]!, 0);
    r.reset(SESSION + 1);
    expect(r.sessionId).toBe(SESSION + 1);
    expect(r.inFlight).toBe(0);
    // Frame 3 is far behind 101 but this is a new session: not late.
    const out = feed(r, frame(3, { session: SESSION + 1 }));
    expect(out).toEqual([{ frameNumber: 3, missingBefore: 0, length: 10 }]);
    expect(feed(r, frame(104))).toEqual([]);
    expect(r.stats.dropped.wrongSession).toBe(3);
    expect(r.stats.framesCompleted).toBe(3);
    expect(r.stats.dropped.late).toBe(0);
  });

  test("resync after a jump of more than RESYNC_DISTANCE ahead, once the stream has been quiet", () => {
    const r = make();
    feed(r, frame(10));
    const far = seqAdd(10, RESYNC_DISTANCE + 1);
    expect(feed(r, frame(far), 500)).toEqual([]);
    expect(r.stats.dropped.unconfirmed).toBe(3);
    const out = feed(r, frame(far), 501);
    expect(out).toEqual([{ frameNumber: far, missingBefore: 0, length: 10 }]);
    expect(r.stats.resyncs).toBe(1);
    expect(r.stats.framesMissing).toBe(0);
  });

  test("a jump within RESYNC_DISTANCE is a gap, not a resync", () => {
    const r = make();
    feed(r, frame(10));
    const out = feed(r, frame(10 + RESYNC_DISTANCE), 501);
    expect(out[0]!.missingBefore).toBe(RESYNC_DISTANCE - 1);
    expect(r.stats.resyncs).toBe(0);
    expect(r.stats.framesMissing).toBe(RESYNC_DISTANCE - 1);
  });

  test("resync after a jump of more than RESYNC_DISTANCE behind (sender restarted its numbering), once the stream has been quiet", () => {
    const r = make();
    feed(r, frame(0x00100000));
    expect(feed(r, frame(0), 10)).toEqual([]);
    expect(numbers(feed(r, [...frame(0), ...frame(1)], 511))).toEqual([0, 1]);
    expect(r.stats.resyncs).toBe(1);
    expect(r.stats.dropped.late).toBe(0);
  });

  test("frames spoofed far ahead of a live stream are not taken as its position; the real ones keep coming", () => {
    // The attack this stops: frames numbered ahead, from the server's address, made every
    // real datagram "late" and the viewer showed the forgeries.
    const r = make();
    const shown: number[] = [];
    for (let fn = 100; fn < 160; fn++) {
      const now = (fn - 100) * 33;
      shown.push(...numbers(feed(r, frame(fn), now)));
      // Three forgeries per real frame, each far ahead (just past maxJump and beyond).
      for (const ahead of [65, 194, 5000]) shown.push(...numbers(feed(r, frame(fn + ahead), now + 1)));
    }
    expect(shown).toEqual(Array.from({ length: 60 }, (_, i) => 100 + i));
    expect(r.stats.dropped.unconfirmed).toBe(60 * 3 * 3);
    expect(r.stats.dropped.late).toBe(0);
    expect(r.stats.resyncs).toBe(0);
  });

  test("a jump up to maxJump is a gap; past it, it waits for the stream to go quiet for a frame timeout", () => {
    const r = make({ maxJump: 64, frameTimeoutMs: 500 });
    feed(r, frame(1), 0);
    expect(numbers(feed(r, frame(65), 10))).toEqual([65]);
    expect(feed(r, frame(130), 20)).toEqual([]);
    expect(feed(r, frame(131), 510)).toEqual([]);
    expect(r.stats.dropped.unconfirmed).toBe(6);
    // Nothing near 65 for more than 500 ms: the far frames are confirmed as the stream.
    expect(numbers(feed(r, frame(132), 511))).toEqual([132]);
    expect(numbers(feed(r, frame(133), 530))).toEqual([133]);
    expect(r.stats.framesMissing).toBe(63 + 66);
    expect(() => make({ maxJump: 0 })).toThrow(RangeError);
  });

  test("a small step back is late at first, but only-late for a frame timeout means the numbering restarted", () => {
    const r = make({ frameTimeoutMs: 500 });
    feed(r, frame(1000), 0);
    expect(feed(r, frame(0), 100)).toEqual([]);
    expect(r.stats.dropped.late).toBe(3);
    expect(feed(r, frame(1), 400)).toEqual([]);
    expect(r.stats.dropped.late).toBe(6);
    // 500 ms after the last accepted datagram, still only late ones: start over.
    expect(numbers(feed(r, frame(2), 501))).toEqual([2]);
    expect(numbers(feed(r, frame(3), 502))).toEqual([3]);
    expect(r.stats.resyncs).toBe(1);
  });

  test("after a long silence, an older number is taken as a restart at once", () => {
    const r = make({ frameTimeoutMs: 500 });
    feed(r, frame(500), 0);
    expect(numbers(feed(r, frame(0), 60_000))).toEqual([0]);
    expect(r.stats.resyncs).toBe(1);
  });

  test("the delivered frame is a view into the pool, valid until the next push", () => {
    const r = make({ maxInFlight: 1 });
    const first = feed(r, frame(1));
    expect(first.length).toBe(1);
    const a = frame(2);
    let view: Uint8Array | null = null;
    for (const d of a) view = r.push(d, 0)?.jpeg ?? view;
    const snapshot = view!.slice();
    feed(r, frame(3));
    // Same slot reused for frame 3: the old view now shows frame 3's bytes.
    expect([...view!]).not.toEqual([...snapshot]);
    expect(r.poolSize).toBe(1);
  });

  test("options are checked", () => {
    expect(() => make({ maxInFlight: 0 })).toThrow("invalid maxInFlight=0");
    expect(() => make({ maxFrameBytes: 0 })).toThrow("invalid maxFrameBytes=0");
    expect(() => make({ frameTimeoutMs: 0 })).toThrow("invalid frameTimeoutMs=0");
    expect(() => new Reassembler({ sessionId: -1 })).toThrow("invalid sessionId=-1");
    expect(() => make().reset(2 ** 32)).toThrow(RangeError);
  });
});

test("an authentic datagram dropped as a duplicate or late is told to the path meter, as it crossed the path", () => {
  const redundant: number[] = [];
  const r = new Reassembler({ sessionId: 7, onRedundant: (bytes) => redundant.push(bytes) });
  const grams = new Fragmenter(1200).fragment({ seq: 1, capturedAt: 1, jpeg: new Uint8Array(3000).fill(1) }, 7).map((d) => Uint8Array.from(d));
  r.push(grams[0]!, 0);
  r.push(grams[0]!, 1);
  expect(redundant).toEqual([grams[0]!.length]);
});

describe("Reassembler, moving between layer groups", () => {
  const A = 0xa0a0;
  const B = 0xb0b0;
  const group = (r: Reassembler, datagrams: Uint8Array[], now = 0) => datagrams.map((d) => r.push(d, now, true)).filter((f) => f !== null).map((f) => f!.frameNumber);

  test("after a move only the new group's stream id counts; its frames start whole, after the last shown, and the old group's partial frame is let go uncounted", () => {
    const r = make();
    r.reset(SESSION, null, A);
    expect(group(r, [1, 2, 3].flatMap((fn) => frame(fn, { session: A })))).toEqual([1, 2, 3]);
    // Frame 4 in part by the old group, then the move.
    group(r, frame(4, { session: A }).slice(0, 2));
    r.moveGroup(B);
    const before = { ...r.stats.incomplete, dropped: { ...r.stats.dropped } };
    // The old group's rest: another stream id now.
    expect(group(r, frame(4, { session: A }).slice(2))).toEqual([]);
    expect(r.stats.dropped.wrongSession).toBe(before.dropped.wrongSession + 1);
    // The new group's copy of frame 3 (shown already, in the other size) is late; the middle of frame 4 cannot start a frame.
    expect(group(r, frame(3, { session: B, length: 6 }))).toEqual([]);
    expect(group(r, frame(4, { session: B, length: 6 }).slice(1))).toEqual([]);
    // Frame 5 whole, in the new size: shown, frame 4 counted missing (neither group brought it).
    const f5 = frame(5, { session: B, length: 6 }).map((d) => r.push(d, 0, true)).find((f) => f !== null)!;
    expect([f5.frameNumber, f5.jpeg.length, f5.missingBefore]).toEqual([5, 6, 1]);
    expect(r.stats.incomplete).toEqual({ lostFragment: before.lostFragment, timeout: before.timeout, evicted: before.evicted });
  });

  test("a move far ahead of the last frame shown (the old group lost everything for seconds) goes on from the new group's first frame", () => {
    const r = make();
    r.reset(SESSION, null, A);
    group(r, frame(1, { session: A }));
    r.moveGroup(B);
    expect(group(r, [500, 501].flatMap((fn) => frame(fn, { session: B })), 10)).toEqual([500, 501]);
    expect(r.stats.dropped.unconfirmed).toBe(0);
  });

  test("in repair mode, frames given up move the floor too: after seconds of nothing but partial frames the next whole one is taken", () => {
    const r = make({ maxInFlight: 4 });
    r.reset(SESSION, null, A, null, { maxInFlight: 16, frameTimeoutMs: 750 });
    group(r, frame(1, { session: A }), 0);
    // 200 frames, each missing its last datagram, 33 ms apart: none completes, the stream stays live.
    for (let fn = 2; fn <= 200; fn++) group(r, frame(fn, { session: A }).slice(0, 2), fn * 33);
    expect(group(r, frame(201, { session: A }), 201 * 33)).toEqual([201]);
  });
});
