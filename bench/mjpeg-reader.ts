// One HTTP MJPEG viewer for the benchmark, in a process of its own like a lancam
// viewer: reads multipart/x-mixed-replace parts, notes each picture's arrival and the
// frame number in its barcode (bench/frame-barcode.ts), and writes them as JSON.
//   bun bench/mjpeg-reader.ts URL SECONDS OUT.json
// Prints "first frame" when the first picture is in; stops SECONDS later.
import { writeFileSync } from "node:fs";
import { cv } from "../lib/native/cv.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { readBarcode } from "./frame-barcode.ts";

/** What the reader writes: [frame number or -1, arrival µs since the epoch, bytes] per part. */
export interface ReaderReport {
  parts: [number, number, number][];
  /** Parts whose barcode did not read back. */
  unreadable: number;
}

/** Nothing a test stream sends comes near this; a part or header block beyond it is an error. */
const MAX_BUFFER = 32 << 20;
const HEADER_END = Buffer.from("\r\n\r\n");
const CONNECT_TIMEOUT_MS = 15_000;

/** Motion's port is open before its camera thread runs, and resets connections until then: retry for a while. */
async function connect(url: string, signal: AbortSignal): Promise<Response & { body: ReadableStream<Uint8Array> }> {
  const deadline = performance.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      const res = await fetch(url, { signal });
      if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
      return res as Response & { body: ReadableStream<Uint8Array> };
    } catch (err) {
      if (performance.now() > deadline) throw err;
      await Bun.sleep(200);
    }
  }
}

async function main(): Promise<void> {
  const [url, seconds, outPath] = process.argv.slice(2);
  if (!url || !seconds || !outPath) throw new Error("usage: bun bench/mjpeg-reader.ts URL SECONDS OUT.json");
  const report: ReaderReport = { parts: [], unreadable: 0 };
  // Loading OpenCV takes a few hundred ms: before the stream, not in the middle of it.
  cv();
  const controller = new AbortController();
  const res = await connect(url, controller.signal);
  let buf = Buffer.alloc(0);
  let endAt = Infinity;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = buf.length ? Buffer.concat([buf, value]) : Buffer.from(value);
      if (buf.length > MAX_BUFFER) throw new Error(`more than ${MAX_BUFFER} bytes without a whole part`);
      // Parts: boundary and headers, a blank line, Content-Length bytes of JPEG.
      for (;;) {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) break;
        const length = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString("latin1"))?.[1] ?? NaN);
        if (!Number.isFinite(length)) {
          buf = buf.subarray(end + HEADER_END.length);
          continue;
        }
        const start = end + HEADER_END.length;
        if (buf.length < start + length) break;
        const at = nowMicros();
        const jpeg = buf.subarray(start, start + length);
        const n = readBarcode(jpeg);
        if (n === null) report.unreadable++;
        report.parts.push([n ?? -1, at, length]);
        buf = buf.subarray(start + length);
        if (endAt === Infinity) {
          endAt = performance.now() + Number(seconds) * 1000;
          console.log("first frame");
        }
      }
      if (performance.now() >= endAt) break;
    }
  } finally {
    controller.abort();
  }
  writeFileSync(outPath, JSON.stringify(report));
}

await main();
