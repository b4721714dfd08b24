// Classroom viewers: pictures per second each gets from the classroom server (which
// splits its camera between them) and from lancam's classic modules (newest picture
// per answer), with 1, 2 and 4 viewers, all the classroom program's own viewer.
// The camera is synthetic at --fps; the viewer paces itself (cv2.waitKey(50) per picture).
// Servers: python (the classroom server, 160x90), lancam-160 (160x90 pictures as they
// are), lancam-720 (1280x720 camera pictures fitted to one datagram: bigger pictures
// cost the viewer more to decode).
//   bun bench/classic.ts [--viewers 1,2,4] [--seconds 6] [--fps 30] [--servers python,lancam-160,lancam-720]
import mri from "mri";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cv } from "../lib/native/cv.ts";
import {
  freeUdpPort,
  noisyCameraJpegs,
  startClassicFront,
  startPythonServer,
  startPythonViewer,
  untilDecoded,
  type PythonViewer,
} from "../tests/helpers/classic-python.ts";

const args = mri(process.argv.slice(2), { string: ["viewers", "seconds", "fps", "servers"] });
const counts = String(args.viewers ?? "1,2,4").split(",").map(Number);
const seconds = Number(args.seconds ?? 6);
const fps = Number(args.fps ?? 30);
const SERVERS = ["python", "lancam-160", "lancam-720"];
const servers = String(args.servers ?? SERVERS.join(",")).split(",");
for (const s of servers) if (!SERVERS.includes(s)) throw new Error(`--servers: ${SERVERS.join(", ")}; got ${s}`);

/** Starts `n` viewers, waits for all to show pictures, then counts what each shows in `seconds`. */
async function measure(dir: string, port: number, n: number): Promise<number[]> {
  const viewers: PythonViewer[] = [];
  try {
    for (let i = 0; i < n; i++) viewers.push(startPythonViewer(dir, "127.0.0.1", port, await freeUdpPort()));
    // The classroom server may never serve a viewer whose first picture was lost: report 0 for it.
    await untilDecoded(viewers, 5, 15_000).catch(() => {});
    const start = viewers.map((v) => v.decoded());
    const t0 = performance.now();
    await Bun.sleep(seconds * 1000);
    const elapsed = (performance.now() - t0) / 1000;
    return viewers.map((v, i) => (v.decoded() - start[i]!) / elapsed);
  } finally {
    for (const v of viewers) await v[Symbol.asyncDispose]();
  }
}

const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1).padStart(5)).join(" ");
console.log(`camera ${fps} fps; ${seconds} s per run; pictures per second shown by each classroom viewer`);
console.log("server      viewers  each                        sum");
/** 160x90 pictures like the classroom camera's, a little different each. */
const small = Array.from({ length: 4 }, (_, k) => cv().encodeJpeg(new Uint8Array(160 * 90 * 3).map((_, i) => (i * 7 + k * 40) & 255), 160, 90, 80));
const big = servers.includes("lancam-720") ? noisyCameraJpegs(4) : [];
for (const server of servers) {
  for (const n of counts) {
    const dir = mkdtempSync(join(tmpdir(), "lancam-bench-classic-"));
    try {
      let rates: number[];
      if (server === "python") {
        await using s = await startPythonServer(dir, { fps });
        rates = await measure(dir, s.port, n);
      } else {
        await using s = await startClassicFront(server === "lancam-160" ? small : big, fps);
        rates = await measure(dir, s.port, n);
      }
      const sum = rates.reduce((a, b) => a + b, 0);
      console.log(`${server.padEnd(11)} ${String(n).padStart(7)}  ${fmt(rates).padEnd(27)} ${sum.toFixed(1).padStart(5)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
