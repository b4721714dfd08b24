// Per-frame cost of cutting a JPEG into datagrams (server, once per viewer) and of
// putting them back together (viewer), in-process, no sockets.
//   bun bench/fragment.ts [--bytes 150000] [--mtu 1400] [--frames 3000]
import mri from "mri";
import { cpus } from "node:os";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";

const args = mri(process.argv.slice(2), { string: ["bytes", "mtu", "frames"] });
const bytes = Number(args.bytes ?? 150_000);
const mtu = Number(args.mtu ?? 1400);
const frames = Number(args.frames ?? 3000);
const jpeg = new Uint8Array(bytes).map((_, i) => i & 0xff);
const frag = new Fragmenter(mtu);
const reasm = new Reassembler({ sessionId: 5 });

function time(label: string, fn: (i: number) => void): void {
  for (let i = 0; i < 200; i++) fn(i); // warm up
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < frames; i++) fn(i);
    runs.push((performance.now() - t) / frames);
  }
  runs.sort((a, b) => a - b);
  console.log(`| ${label} | ${(runs[2]! * 1000).toFixed(1)} | ${(runs[0]! * 1000).toFixed(1)} | ${(runs[4]! * 1000).toFixed(1)} |`);
}

console.log(`# ${bytes}-byte frame, mtu ${mtu} (${frag.fragmentCount(bytes)} datagrams), ${frames} frames x 5 runs, ${cpus()[0]?.model}, Bun ${Bun.version}`);
console.log("| step | µs/frame median | min | max |");
console.log("|---|---|---|---|");
time("fragment (per viewer)", (i) => frag.fragment({ seq: i, capturedAt: 1_700_000_000_000_000 + i, jpeg }, 5));
let seq = 1_000_000;
time("fragment + reassemble", () => {
  const n = seq++;
  const grams = frag.fragment({ seq: n, capturedAt: 1_700_000_000_000_000, jpeg }, 5);
  let out = null;
  for (const g of grams) out = reasm.push(g, n) ?? out;
  if (!out || out.jpeg.length !== bytes) throw new Error("reassembly failed");
});
