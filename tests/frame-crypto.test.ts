// Frame encryption from the sealer to the reassembler, without sockets: each frame is
// encrypted once whatever the number of viewers, every datagram is checked before the
// reassembler sees it, and the key schedule keeps a viewer that left out of what follows.
import { describe, expect, test } from "bun:test";
import { cipherCounters, openFragment, STREAM_KEY_SIZE } from "../lib/net/frame-cipher.ts";
import { FrameOpener } from "../lib/receive/frame-opener.ts";
import { Reassembler, type ReassembledFrame } from "../lib/receive/reassembler.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { decodeDatagram, HEADER_SIZE, TAG_SIZE } from "../lib/wire/datagram.ts";
import { prng } from "./helpers/prng.ts";

const MTU = 1400;

/** A frame of `n` recognisable bytes. */
function frame(seq: number, n = 10_000) {
  const rnd = prng(seq + 1);
  return { seq, capturedAt: 1_700_000_000_000_000 + seq, jpeg: Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256)) };
}

/** Keys 0x01.., 0x02.., ...: one per rotation. */
function keySource() {
  let n = 1;
  return () => new Uint8Array(STREAM_KEY_SIZE).fill(n++);
}

/** A viewer: its session id, its reassembler and opener, the frames it completed. */
function viewer(sessionId: number) {
  const opener = new FrameOpener();
  const r = new Reassembler({ sessionId });
  r.reset(sessionId, opener);
  const frames: ReassembledFrame[] = [];
  const push = (datagrams: Uint8Array[], now = 0) => {
    for (const d of datagrams) {
      const f = r.push(d, now);
      if (f) frames.push({ ...f, jpeg: f.jpeg.slice() });
    }
  };
  return { sessionId, opener, r, frames, push };
}

describe("one encryption per frame", () => {
  test("a frame for 1 or 8 viewers costs the same AES-GCM operations: one per fragment, not per viewer", () => {
    for (const viewers of [1, 8]) {
      const sealer = new FrameSealer({ randomKey: keySource() });
      const fragmenters = Array.from({ length: viewers }, () => new Fragmenter(MTU));
      const before = cipherCounters.sealed;
      for (let seq = 0; seq < 10; seq++) {
        const { sealed } = sealer.seal(frame(seq), fragmenters[0]!.sealedFragmentSize);
        for (const [i, f] of fragmenters.entries()) f.fragmentSealed(sealed, 0x100 + i);
      }
      const perFrame = Math.ceil(10_000 / (MTU - HEADER_SIZE - TAG_SIZE));
      expect(cipherCounters.sealed - before).toBe(10 * perFrame);
      expect(sealer.framesSealed).toBe(10);
    }
  });

  test("each viewer's datagrams differ only in the session id; each viewer gets the frame back exactly", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const a = viewer(0xaaaa);
    const b = viewer(0xbbbb);
    for (const v of [a, b]) v.opener.addKey(sealer.current.id, sealer.current.key, 0);
    const fa = new Fragmenter(MTU);
    const fb = new Fragmenter(MTU);
    const f = frame(5);
    const { sealed } = sealer.seal(f, fa.sealedFragmentSize);
    const da = fa.fragmentSealed(sealed, a.sessionId);
    const db = fb.fragmentSealed(sealed, b.sessionId);
    expect(da.length).toBe(db.length);
    for (let i = 0; i < da.length; i++) {
      const x = Buffer.from(da[i]!);
      const y = Buffer.from(db[i]!);
      expect(x.length).toBeLessThanOrEqual(MTU);
      x.fill(0, 4, 8);
      y.fill(0, 4, 8);
      expect(x.equals(y)).toBe(true);
      expect(decodeDatagram(da[i]!).header).toMatchObject({ encrypted: true, keyId: 0, fragmentIndex: i });
    }
    // The payload is not the frame in the clear.
    expect(Buffer.from(da[0]!.subarray(HEADER_SIZE, HEADER_SIZE + 64)).equals(Buffer.from(f.jpeg.subarray(0, 64)))).toBe(false);
    a.push(da);
    b.push(db);
    for (const v of [a, b]) {
      expect(v.frames).toHaveLength(1);
      expect(Buffer.from(v.frames[0]!.jpeg).equals(Buffer.from(f.jpeg))).toBe(true);
      expect(v.opener.counters).toEqual({ auth: 0, noKey: 0 });
    }
  });
});

describe("forged datagrams are caught before reassembly", () => {
  test("a flipped bit anywhere but the session id, a made-up datagram, or a plain one: dropped as auth, the reassembler untouched", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const v = viewer(0x42);
    v.opener.addKey(sealer.current.id, sealer.current.key, 0);
    const frag = new Fragmenter(MTU);
    const { sealed } = sealer.seal(frame(1), frag.sealedFragmentSize);
    const good = frag.fragmentSealed(sealed, 0x42).map((d) => d.slice());
    let forged = 0;
    // Every header byte but magic, version, flags and the session id, and payload bytes.
    for (const at of [8, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 31, 32, 100, good[0]!.length - 1]) {
      const d = good[0]!.slice();
      d[at]! ^= 0x01;
      v.push([d]);
      forged++;
    }
    // A datagram made without the key, in the session, numbered far ahead.
    const fake = new Fragmenter(MTU).fragment({ seq: 5000, capturedAt: 1, jpeg: new Uint8Array(100) }, 0x42)[0]!;
    v.push([fake]);
    forged++;
    // Bits that make it malformed are counted as that, not auth; a key id changed to one ahead
    // waits (bounded) for a key that never comes; everything else fails its tag.
    const { auth } = v.opener.counters;
    expect(v.opener.heldCount).toBe(2);
    expect(auth + v.r.stats.dropped.malformed + v.r.stats.dropped.wrongSession + v.opener.heldCount).toBe(forged);
    // Frame number, capture time, payload bytes and the plain datagram: 9 that decode but fail their tag.
    expect(auth).toBe(9);
    expect(v.r.inFlight).toBe(0);
    expect(v.r.stats.dropped.unconfirmed + v.r.stats.dropped.late + v.r.stats.dropped.inconsistent).toBe(0);
    // The genuine datagrams still make the frame.
    v.push(good);
    expect(v.frames.map((f) => f.frameNumber)).toEqual([1]);
  });

  test("the session id is outside the tag: rewritten, the datagram still opens (it is the same frame); the reassembler's session check drops it", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const v = viewer(0x42);
    v.opener.addKey(0, sealer.current.key, 0);
    const frag = new Fragmenter(MTU);
    const d = frag.fragmentSealed(sealer.seal(frame(1, 100), frag.sealedFragmentSize).sealed, 0x43)[0]!;
    v.push([d]);
    expect(v.r.stats.dropped.wrongSession).toBe(1);
    const ok = d.slice();
    ok.set([0, 0, 0, 0x42], 4);
    v.push([ok]);
    expect(v.frames).toHaveLength(1);
  });
});

describe("stream keys", () => {
  test("after a rotation a viewer that left cannot open the frames that follow; those still here switch without losing one", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const stays = viewer(1);
    const leaves = viewer(2);
    for (const v of [stays, leaves]) v.opener.addKey(sealer.current.id, sealer.current.key, 0);
    const frag = new Fragmenter(MTU);
    const send = (seq: number, now: number) => {
      const d = frag.fragmentSealed(sealer.seal(frame(seq, 3000), frag.sealedFragmentSize).sealed, 0).map((x) => x.slice());
      return d;
    };
    for (const v of [stays, leaves]) v.r.reset(0, v.opener);
    const first = send(1, 0);
    stays.push(first);
    leaves.push(first);
    // Viewer 2 leaves: a new key, given to viewer 1 only.
    const next = sealer.rotate();
    expect(next.id).toBe(1);
    stays.opener.addKey(next.id, next.key, 10);
    for (let seq = 2; seq <= 5; seq++) {
      const d = send(seq, seq * 33);
      stays.push(d, seq * 33);
      leaves.push(d, seq * 33);
    }
    expect(stays.frames.map((f) => f.frameNumber)).toEqual([1, 2, 3, 4, 5]);
    expect(leaves.frames.map((f) => f.frameNumber)).toEqual([1]);
    // What it captured it cannot open with the key it had, by any means.
    const captured = send(6, 300)[0]!;
    const h = decodeDatagram(captured);
    const out = new Uint8Array(4000);
    expect(openFragment(new Uint8Array(STREAM_KEY_SIZE).fill(1), captured.subarray(0, HEADER_SIZE).map((b, i) => (i >= 4 && i < 8 ? 0 : b)), 6, 0, h.payload, out)).toBe(false);
  });

  test("overlap: datagrams of the last frame under the old key still open after the new key arrived", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const v = viewer(0);
    v.opener.addKey(0, sealer.current.key, 0);
    const frag = new Fragmenter(MTU);
    const old = frag.fragmentSealed(sealer.seal(frame(1, 3000), frag.sealedFragmentSize).sealed, 0).map((x) => x.slice());
    v.push(old.slice(0, 1));
    const k = sealer.rotate();
    v.opener.addKey(k.id, k.key, 5);
    v.push(old.slice(1), 6);
    expect(v.frames.map((f) => f.frameNumber)).toEqual([1]);
    expect(v.opener.keyIds).toEqual([0, 1]);
    // A third key retires the first: only the newest two are kept.
    const k2 = sealer.rotate();
    v.opener.addKey(k2.id, k2.key, 7);
    expect(v.opener.keyIds).toEqual([1, 2]);
  });

  test("datagrams that overtake their key (UDP before TCP) are held, bounded, and taken when the key comes; too old, they are dropped as noKey", () => {
    const sealer = new FrameSealer({ randomKey: keySource() });
    const v = viewer(0);
    v.opener.addKey(0, sealer.current.key, 0);
    const frag = new Fragmenter(MTU);
    const k = sealer.rotate();
    const early = frag.fragmentSealed(sealer.seal(frame(1, 3000), frag.sealedFragmentSize).sealed, 0).map((x) => x.slice());
    v.push(early, 0);
    expect(v.frames).toHaveLength(0);
    expect(v.opener.heldCount).toBe(early.length);
    for (const d of v.opener.addKey(k.id, k.key, 100)) v.push([d], 100);
    expect(v.frames.map((f) => f.frameNumber)).toEqual([1]);
    expect(v.r.stats.datagrams).toBe(early.length);
    // A key that never comes: held for a second, then counted noKey.
    const never = frag.fragmentSealed(new FrameSealer({ randomKey: () => new Uint8Array(32).fill(9) }).rotate() && {
      ...sealer.seal(frame(2, 100), frag.sealedFragmentSize).sealed, keyId: 7,
    }, 0)[0]!.slice();
    v.push([never], 200);
    expect(v.opener.heldCount).toBe(1);
    v.opener.expire(1201);
    expect(v.opener.heldCount).toBe(0);
    expect(v.opener.counters.noKey).toBe(1);
    // A key id behind the ones held is never coming: dropped at once.
    const stale = frag.fragmentSealed({ ...sealer.seal(frame(3, 100), frag.sealedFragmentSize).sealed, keyId: 0xffff }, 0)[0]!.slice();
    v.push([stale], 1300);
    expect(v.opener.counters.noKey).toBe(2);
    // Bounded: a flood under a future key holds at most maxHeldBytes.
    const small = new FrameOpener({ maxHeldBytes: 10_000 });
    const r = new Reassembler({ sessionId: 0 });
    r.reset(0, small);
    for (let i = 0; i < 100; i++) r.push(early[0]!, 0);
    expect(small.heldCount).toBe(Math.floor(10_000 / early[0]!.length));
    expect(small.counters.noKey).toBe(100 - small.heldCount);
  });

  test("a key retires before a nonce could repeat: after MAX frames, and when the frame numbering does not move forward", () => {
    const sealer = new FrameSealer({ randomKey: keySource(), maxFramesPerKey: 3 });
    const seen = new Set<string>();
    const seal = (seq: number) => {
      const { sealed, rotated } = sealer.seal(frame(seq, 10), 1352);
      const nonce = `${sealed.keyId}:${seq}`;
      expect(seen.has(nonce)).toBe(false);
      seen.add(nonce);
      return rotated;
    };
    expect([seal(1), seal(2), seal(3), seal(4)]).toEqual([false, false, false, true]);
    expect(sealer.current.id).toBe(1);
    // The source restarted its numbering: the same numbers again need a new key.
    expect(seal(1)).toBe(true);
    expect(seal(1)).toBe(true);
    expect(seal(0xffffffff)).toBe(true);
    expect(seal(0)).toBe(false); // wraps forward from 2^32-1
    expect(sealer.rotations).toBe(4);
  });
});
