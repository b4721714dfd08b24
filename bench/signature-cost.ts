// Per-frame cost of frame signatures at 1280x720 and 1920x1080, in-process, no sockets:
// what the server spends to sign a frame (once, whatever the number of viewers) and to
// cut it for 1 and 8 viewers, with and without the signature; and what one viewer
// spends to reassemble and check a frame (SHA-256 of the JPEG, one Ed25519 verify).
//   bun bench/signature-cost.ts [--frames 300] [--mtu 1400]
import mri from "mri";
import { cpus, loadavg } from "node:os";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { FrameVerifier } from "../lib/receive/frame-verifier.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { FrameSigner } from "../lib/send/frame-signer.ts";
import { splitJpegs } from "../tests/helpers/jpeg-frames.ts";

const args = mri(process.argv.slice(2), { string: ["frames", "mtu"] });
const frames = Number(args.frames ?? 300);
const mtu = Number(args.mtu ?? 1400);
const CAPTURED_AT = 1_700_000_000_000_000;

/** Camera-like JPEGs (ffmpeg's pattern with sensor-like noise) at `size`. */
async function clip(size: string): Promise<Uint8Array[]> {
  const p = Bun.spawn([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30,noise=alls=12:allf=t`,
    "-frames:v", "30", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", "pipe:1",
  ], { stdout: "pipe", stderr: "pipe" });
  const bytes = await new Response(p.stdout).bytes();
  if ((await p.exited) !== 0) throw new Error(`ffmpeg failed: ${await new Response(p.stderr).text()}`);
  return splitJpegs(bytes);
}

/**
 * Median µs per frame of each function over 5 runs of `frames` frames, after a warm-up.
 * The runs of the functions alternate, so a burst of load from elsewhere on a shared
 * machine falls on all of them alike rather than on whichever ran then.
 */
function time(...fns: (() => void)[]): number[] {
  for (const fn of fns) for (let i = 0; i < 30; i++) fn();
  const runs: number[][] = fns.map(() => []);
  for (let r = 0; r < 5; r++) {
    for (const [k, fn] of fns.entries()) {
      const t = performance.now();
      for (let i = 0; i < frames; i++) fn();
      runs[k]!.push(((performance.now() - t) / frames) * 1000);
    }
  }
  return runs.map((r) => r.sort((a, b) => a - b)[2]!);
}

console.log(`# mtu ${mtu}, ${frames} frames x 5 runs (median), ${cpus().length} x ${cpus()[0]?.model}, Bun ${Bun.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
console.log("| size | KB/frame | viewers | server: sign alone µs/frame | server: cut µs/frame | server: sign + cut µs/frame | signatures/frame | viewer: verify alone µs/frame | viewer: reassemble µs/frame | viewer: reassemble + verify µs/frame |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const size of ["1280x720", "1920x1080"]) {
  const jpegs = await clip(size);
  const kb = jpegs.reduce((a, j) => a + j.length, 0) / jpegs.length / 1024;
  for (const viewers of [1, 8]) {
    const frags = Array.from({ length: viewers }, () => new Fragmenter(mtu));
    const signer = new FrameSigner(0x5eed);
    let seq = 0;
    const next = () => ({ seq: seq++, capturedAt: CAPTURED_AT, jpeg: jpegs[seq % jpegs.length]! });
    // Each viewer's datagrams of the frame, as the server cuts them (unicast: one copy per viewer).
    let framesCut = 0;
    let signedWhileCutting = 0;
    const [signAlone, cut, signedCut] = time(
      () => signer.sign(next()),
      () => {
        const f = next();
        for (const [v, frag] of frags.entries()) frag.fragment(f, v + 1);
      },
      () => {
        const before = signer.framesSigned;
        const f = signer.sign(next());
        for (const [v, frag] of frags.entries()) frag.fragment(f, v + 1);
        signedWhileCutting += signer.framesSigned - before;
        framesCut++;
      },
    );
    const perFrame = signedWhileCutting / framesCut;
    // One viewer: a frame's datagrams reassembled, with and without the signature check.
    const sender = new Fragmenter(mtu);
    const plainReasm = new Reassembler({ sessionId: 1 });
    const signedReasm = new Reassembler({ sessionId: 1 });
    const verifier = new FrameVerifier(signer.signing);
    // The datagrams are made beforehand (copies), so only the viewer's side is timed.
    const plainGrams = jpegs.map((j, i) => sender.fragment({ seq: i, capturedAt: CAPTURED_AT, jpeg: j }, 1).map((d) => d.slice()));
    const signedGrams = jpegs.map((j, i) => sender.fragment(signer.sign({ seq: i, capturedAt: CAPTURED_AT, jpeg: j }), 1).map((d) => d.slice()));
    const receive = (reasm: Reassembler, grams: Uint8Array[][]) => {
      let n = 0;
      let now = 0;
      return () => {
        // Same frame numbers again after each pass: a quiet gap first, so they are not "late".
        if (n % grams.length === 0) {
          now += 10_000;
          reasm.reset(1, null, null, reasm === signedReasm ? verifier : null);
        }
        let out = null;
        for (const g of grams[n % grams.length]!) out = reasm.push(g, now) ?? out;
        if (!out) throw new Error("a frame did not come back");
        n++;
      };
    };
    const payloads = jpegs.map((j, i) => signer.sign({ seq: i, capturedAt: CAPTURED_AT, jpeg: j }).jpeg.slice());
    let k = 0;
    const [verifyAlone, plainReceive, signedReceive] = time(
      () => {
        const i = k++ % payloads.length;
        if (!verifier.verify(i, CAPTURED_AT, payloads[i]!)) throw new Error("a genuine frame failed its signature");
      },
      receive(plainReasm, plainGrams),
      receive(signedReasm, signedGrams),
    );
    if (signedReasm.stats.framesForged !== 0) throw new Error("a genuine frame failed its signature");
    console.log(
      `| ${size} | ${kb.toFixed(0)} | ${viewers} | ${signAlone!.toFixed(0)} | ${cut!.toFixed(0)} | ${signedCut!.toFixed(0)} | ${perFrame.toFixed(0)} | ${verifyAlone!.toFixed(0)} | ${plainReceive!.toFixed(0)} | ${signedReceive!.toFixed(0)} |`,
    );
  }
}
