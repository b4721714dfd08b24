// What the viewer window's text costs on the JS thread: drawing a decoded 1280x720
// picture as it is, with the status line, with the status and the info line, and
// drawing it again (a stalled picture whose age counts up), each timed around the call
// (the decode on the worker thread is not counted), and drawing it again with a new text
// each time (the age counting up). Needs a display: run it under
// xvfb-run. Prints the median and p95 per draw, and the machine's load.
//   xvfb-run -a bun bench/window-text.ts [--frames 200] [--size 1280x720]
import mri from "mri";
import { cpus, loadavg } from "node:os";
import { cv, renderTestFrame } from "../lib/native/cv.ts";

const args = mri(process.argv.slice(2), { string: ["frames", "size"] });
const frames = Number(args.frames ?? 200);
const [width, height] = String(args.size ?? "1280x720").split("x").map(Number) as [number, number];
const c = cv();
if (!c.displayAvailable()) {
  console.error("no display: run under xvfb-run -a");
  process.exit(2);
}
const NAME = "lancam window-text bench";
c.openWindow(NAME);
const jpeg = await renderTestFrame(width, height, 1, "bench", 80);
const STATUS = { top: "no datagrams arriving, picture 4.2 s old" };
const BOTH = { ...STATUS, bottom: `${width}x${height}  30.0 fps  11.2 Mbit/s  loss 0.0%  latency p50 3.1 ms` };

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  return `median ${at(0.5)} ms, p95 ${at(0.95)} ms`;
}

const cases: [string, (() => Promise<void>) | null, () => void][] = [
  ["picture alone", () => c.decodeForWindow(jpeg).then(() => undefined), () => c.showDecoded(NAME)],
  ["with the status", () => c.decodeForWindow(jpeg).then(() => undefined), () => c.showDecoded(NAME, STATUS)],
  ["with status and info", () => c.decodeForWindow(jpeg).then(() => undefined), () => c.showDecoded(NAME, BOTH)],
  ["redraw with the status", null, () => c.redrawWindow(NAME, STATUS)],
  // The text is rendered once and kept while it stays the same; a stalled picture's age changes it 10 times a second.
  ["redraw, new text each", null, () => c.redrawWindow(NAME, { top: `no datagrams arriving, picture ${(n++ / 10).toFixed(1)} s old` })],
];
let n = 0;
console.log(`${width}x${height}, ${frames} draws each; ${cpus().length} cores (${cpus()[0]?.model}), load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
for (const [label, prepare, draw] of cases) {
  const ms: number[] = [];
  for (let i = 0; i < frames; i++) {
    if (prepare) await prepare();
    const t0 = performance.now();
    draw();
    ms.push(performance.now() - t0);
    c.pollKey(1);
  }
  console.log(`${label.padEnd(24)} ${stats(ms)}`);
}
c.closeWindow(NAME);
