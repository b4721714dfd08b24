// Per-frame cost of frame encryption at 1280x720, in-process, no sockets: what the
// server spends per frame with 1 and 8 viewers, plain (--token unset) and encrypted
// (one AES-256-GCM pass per frame, then each viewer's datagrams around the ciphertext),
// and what one viewer spends to check, decrypt and reassemble a frame.
//   bun bench/crypto-cost.ts [--frames 600] [--mtu 1400]
import mri from "mri";
import { cpus } from "node:os";
import { cipherCounters } from "../lib/net/frame-cipher.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { FrameOpener } from "../lib/receive/frame-opener.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["frames", "mtu"] });
const frames = Number(args.frames ?? 600);
const mtu = Number(args.mtu ?? 1400);

/** 1280x720 JPEGs: ffmpeg's test pattern (small, flat) and the same with sensor-like noise (camera-sized). */
async function clip(filter: string): Promise<Uint8Array[]> {
  const p = Bun.spawn([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", filter,
    "-frames:v", "30", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", "pipe:1",
  ], { stdout: "pipe", stderr: "pipe" });
  const bytes = await new Response(p.stdout).bytes();
  if ((await p.exited) !== 0) throw new Error(`ffmpeg failed: ${await new Response(p.stderr).text()}`);
  return splitJpegs(bytes);
}

/** Median µs per frame of `fn` over 5 runs of `frames` frames, after a warm-up. */
function time(fn: (i: number) => void): number {
  for (let i = 0; i < 60; i++) fn(i);
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < frames; i++) fn(i);
    runs.push(((performance.now() - t) / frames) * 1000);
  }
  return runs.sort((a, b) => a - b)[2]!;
}

const sets = [
  { name: "test pattern", jpegs: await clip("testsrc2=size=1280x720:rate=30") },
  { name: "camera-like (noise)", jpegs: await clip("testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t") },
];

console.log(`# 1280x720, mtu ${mtu}, ${frames} frames x 5 runs (median), ${cpus()[0]?.model}, Bun ${Bun.version}`);
console.log("| frames | KB/frame | viewers | plain µs/frame | encrypted µs/frame | encryption µs/frame | AES-GCM ops/frame | viewer: open + reassemble µs/frame |");
console.log("|---|---|---|---|---|---|---|---|");
for (const { name, jpegs } of sets) {
  const kb = jpegs.reduce((a, j) => a + j.length, 0) / jpegs.length / 1024;
  for (const viewers of [1, 8]) {
    const frags = Array.from({ length: viewers }, () => new Fragmenter(mtu));
    const sealer = new FrameSealer();
    let seq = 0;
    const plain = time(() => {
      const f = { seq: seq++, capturedAt: 1_700_000_000_000_000, jpeg: jpegs[seq % jpegs.length]! };
      for (const [v, frag] of frags.entries()) frag.fragment(f, v + 1);
    });
    const opsBefore = cipherCounters.sealed;
    const sealedBefore = sealer.framesSealed;
    const encrypted = time(() => {
      const f = { seq: seq++, capturedAt: 1_700_000_000_000_000, jpeg: jpegs[seq % jpegs.length]! };
      const { sealed } = sealer.seal(f, frags[0]!.sealedFragmentSize);
      for (const [v, frag] of frags.entries()) frag.fragmentSealed(sealed, v + 1);
    });
    const ops = (cipherCounters.sealed - opsBefore) / (sealer.framesSealed - sealedBefore);
    // One viewer's side: every datagram checked and decrypted, then reassembled.
    const opener = new FrameOpener();
    opener.addKey(sealer.current.id, sealer.current.key, 0);
    const reasm = new Reassembler({ sessionId: 1 });
    reasm.reset(1, opener);
    const receive = time(() => {
      const f = { seq: seq++, capturedAt: 1_700_000_000_000_000, jpeg: jpegs[seq % jpegs.length]! };
      const grams = frags[0]!.fragmentSealed(sealer.seal(f, frags[0]!.sealedFragmentSize).sealed, 1);
      let out = null;
      for (const g of grams) out = reasm.push(g, seq) ?? out;
      if (!out) throw new Error("a frame did not come back");
    });
    const sealOnly = time(() => {
      const f = { seq: seq++, capturedAt: 1_700_000_000_000_000, jpeg: jpegs[seq % jpegs.length]! };
      sealer.seal(f, frags[0]!.sealedFragmentSize);
    });
    console.log(
      `| ${name} | ${kb.toFixed(0)} | ${viewers} | ${plain.toFixed(0)} | ${encrypted.toFixed(0)} | ${(encrypted - plain).toFixed(0)} | ${ops.toFixed(0)} | ${(receive - sealOnly).toFixed(0)} |`,
    );
  }
}
