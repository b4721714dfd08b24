import { expect, test } from "bun:test";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { SkipLedger } from "../lib/receive/skip-ledger.ts";
import { prng } from "./helpers/prng.ts";

test("an announced skip counts once the viewer has reached its frame number, never more than is missing", () => {
  const l = new SkipLedger();
  l.session(0);
  l.frame(10);
  // Frames 11 and 12 were skipped; the message comes before frame 13 shows the gap.
  l.announce(2, 12);
  expect(l.skipped(0)).toBe(0);
  l.frame(13);
  expect(l.skipped(2)).toBe(2);
  // A later loss (frame 15) stays a loss.
  l.frame(16);
  expect(l.skipped(3)).toBe(2);
  // A server claiming more than is missing cannot turn received frames into skipped ones.
  l.announce(50, 16);
  expect(l.skipped(3)).toBe(3);
});

test("each session counts its own skips; earlier sessions' stay", () => {
  const l = new SkipLedger();
  l.session(0);
  l.frame(1);
  l.announce(4, 1);
  expect(l.skipped(5)).toBe(4);
  l.session(5);
  expect(l.skipped(5)).toBe(4);
  l.frame(100);
  l.announce(1, 100);
  expect(l.skipped(7)).toBe(5);
});

test("frame numbers wrap: a skip counted up to 0xFFFFFFFF is reached by frame 2", () => {
  const l = new SkipLedger();
  l.session(0);
  l.frame(0xfffffff0);
  l.announce(3, 0xffffffff);
  l.frame(2);
  expect(l.skipped(5)).toBe(3);
});

test("received + missing + incomplete + skipped is every frame number spanned, over a random stream", () => {
  const rnd = prng(18);
  const frag = new Fragmenter(576);
  const r = new Reassembler({ sessionId: 1 });
  const l = new SkipLedger();
  l.session(0);
  let received = 0;
  let serverSkipped = 0;
  let first: number | null = null;
  let last = 0;
  for (let n = 0; n < 2000; n++) {
    const fate = rnd();
    if (fate < 0.1) {
      serverSkipped++; // the server skipped it: nothing sent
    } else {
      const grams = frag.fragment({ seq: n, capturedAt: n, jpeg: new Uint8Array(1500).fill(n & 0xff) }, 1);
      grams.forEach((g, i) => {
        if (fate < 0.15) return; // lost entirely
        if (fate < 0.2 && i === 1) return; // lost a fragment: incomplete
        const f = r.push(g, n);
        if (f) {
          received++;
          first ??= f.frameNumber;
          last = f.frameNumber;
          l.frame(f.frameNumber);
        }
      });
    }
    if (n % 30 === 29) l.announce(serverSkipped, n);
  }
  const s = r.stats;
  const incomplete = s.incomplete.lostFragment + s.incomplete.timeout + s.incomplete.evicted;
  const skipped = l.skipped(s.framesMissing);
  const missing = s.framesMissing - skipped;
  expect(received + missing + incomplete + skipped).toBe(last - first! + 1);
  // Skips the stream reached are all told apart from losses.
  expect(skipped).toBeGreaterThan(0.9 * serverSkipped - 10);
  expect(skipped).toBeLessThanOrEqual(serverSkipped);
});
