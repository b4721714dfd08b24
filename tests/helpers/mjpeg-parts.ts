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

/**
 * Cuts a stream's bytes into parts as they come: push() each chunk, get the parts it
 * completed, or why the bytes are no lancam stream.
 */
export class MjpegPartParser {
  #buf = Buffer.alloc(0);

  push(chunk: Uint8Array): MjpegPart[] | string {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk);
    if (this.#buf.length > MAX_BUFFER) return `more than ${MAX_BUFFER} bytes without a whole part`;
    const out: MjpegPart[] = [];
    for (;;) {
      const buf = this.#buf;
      const end = buf.indexOf(HEADER_END);
      if (end < 0) break;
      const head = buf.subarray(0, end).toString("latin1");
      const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!Number.isFinite(length)) {
        // The HTTP response's own header, or the boundary before a part.
        this.#buf = buf.subarray(end + HEADER_END.length);
        continue;
      }
      const start = end + HEADER_END.length;
      if (buf.length < start + length) break;
      const stamp = /x-timestamp:\s*(\d+)\.(\d{6})/i.exec(head);
      const frame = /x-frame-number:\s*(\d+)/i.exec(head);
      if (!stamp || !frame) return `part without X-Timestamp or X-Frame-Number: ${head}`;
      out.push({ jpeg: Uint8Array.from(buf.subarray(start, start + length)), capturedAt: Number(stamp[1]) * 1e6 + Number(stamp[2]), frame: Number(frame[1]) });
      this.#buf = buf.subarray(start + length);
    }
    return out;
  }
}

/** A stream being read: every part so far, and whether the connection is still open. */
export interface MjpegStream {
  parts: MjpegPart[];
  /** Arrival time (performance.now()) of each part. */
  arrivals: number[];
  /** Resolves when the server ends the stream or the connection breaks (with why), never on stop(). */
  ended: Promise<string>;
  open: () => boolean;
  stop: () => void;
}

/** Reads /stream.mjpg at `url` until stop(), keeping every part (at most `maxParts`, then it stops). */
export function streamParts(url: string, maxParts = 10_000): MjpegStream {
  const controller = new AbortController();
  const parts: MjpegPart[] = [];
  const arrivals: number[] = [];
  let isOpen = true;
  const ended = (async () => {
    try {
      const res = await fetch(url, { signal: controller.signal });
      if (!res.ok || !res.body) return `HTTP ${res.status}`;
      const parser = new MjpegPartParser();
      for await (const chunk of res.body) {
        const got = parser.push(chunk);
        if (typeof got === "string") return got;
        for (const part of got) {
          parts.push(part);
          arrivals.push(performance.now());
          if (parts.length >= maxParts) controller.abort();
        }
      }
      return "the server ended the stream";
    } catch (err) {
      return controller.signal.aborted ? "stopped" : String(err);
    } finally {
      isOpen = false;
    }
  })();
  return { parts, arrivals, ended, open: () => isOpen, stop: () => controller.abort() };
}

/** The first `count` parts of the stream at `url`; rejects after `timeoutMs`. */
export async function takeParts(url: string, count: number, timeoutMs: number): Promise<MjpegPart[]> {
  const stream = streamParts(url, count);
  const timer = setTimeout(() => stream.stop(), timeoutMs);
  try {
    const why = await stream.ended;
    if (stream.parts.length < count) throw new Error(`${stream.parts.length} of ${count} parts from ${url} (${why === "stopped" ? `not within ${timeoutMs} ms` : why})`);
    return stream.parts;
  } finally {
    clearTimeout(timer);
  }
}
