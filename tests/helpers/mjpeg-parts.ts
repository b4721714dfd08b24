// Reads whole parts of a lancam /stream.mjpg: each JPEG with its X-Timestamp and
// X-Frame-Number headers, so a test can hold a picture against its capture time.

/** One part of the stream. */
export interface MjpegPart {
  jpeg: Uint8Array;
  /** X-Timestamp in µs since the epoch: the frame's capture time. */
  capturedAt: number;
  frame: number;
}

const HEADER_END = Buffer.from("\r\n\r\n");
/** No test picture comes near this: a part or header block beyond it is an error. */
const MAX_BUFFER = 32 << 20;

/** The first `count` parts of the stream at `url`; rejects after `timeoutMs`. */
export async function takeParts(url: string, count: number, timeoutMs: number): Promise<MjpegPart[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`fewer than ${count} parts from ${url} within ${timeoutMs} ms`)), timeoutMs);
  const parts: MjpegPart[] = [];
  try {
    const res = await fetch(url, { signal: controller.signal });
    if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
    let buf = Buffer.alloc(0);
    for await (const chunk of res.body) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
      if (buf.length > MAX_BUFFER) throw new Error(`more than ${MAX_BUFFER} bytes without a whole part`);
      for (;;) {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) break;
        const head = buf.subarray(0, end).toString("latin1");
        const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
        if (!Number.isFinite(length)) {
          buf = buf.subarray(end + HEADER_END.length);
          continue;
        }
        const start = end + HEADER_END.length;
        if (buf.length < start + length) break;
        const stamp = /x-timestamp:\s*(\d+)\.(\d{6})/i.exec(head);
        const frame = /x-frame-number:\s*(\d+)/i.exec(head);
        if (!stamp || !frame) throw new Error(`part without X-Timestamp or X-Frame-Number: ${head}`);
        parts.push({ jpeg: Uint8Array.from(buf.subarray(start, start + length)), capturedAt: Number(stamp[1]) * 1e6 + Number(stamp[2]), frame: Number(frame[1]) });
        buf = buf.subarray(start + length);
        if (parts.length >= count) return parts;
      }
    }
    throw new Error(`the stream ended after ${parts.length} of ${count} parts`);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
