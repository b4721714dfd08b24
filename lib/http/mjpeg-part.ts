import type { Frame } from "../wire/frame.ts";

/**
 * The multipart framing of /stream.mjpg (multipart/x-mixed-replace), as browsers,
 * VLC and ffmpeg's mpjpeg demuxer read it:
 *
 *   --lancamframe\r\n                         sent once, when the stream opens
 *   Content-Type: image/jpeg\r\n              then, per frame:
 *   Content-Length: 51234\r\n
 *   X-Timestamp: 1764000000.123456\r\n        capture time, s since the Unix epoch
 *   X-Frame-Number: 42\r\n                    the source's frame counter
 *   \r\n
 *   <JPEG bytes>\r\n--lancamframe\r\n
 *
 * The boundary follows each frame rather than preceding the next, so a browser can
 * show a frame as soon as it has arrived instead of one frame later.
 */

/** Separates the parts; never occurs in a JPEG's header lines. */
export const BOUNDARY = "lancamframe";

/** The Content-Type of the stream response. */
export const MJPEG_CONTENT_TYPE = `multipart/x-mixed-replace; boundary=${BOUNDARY}`;

const encoder = new TextEncoder();

/** The first bytes of the stream. */
export const STREAM_START: Uint8Array = encoder.encode(`--${BOUNDARY}\r\n`);

/** What follows each JPEG: the end of the part and the next boundary. */
export const PART_END: Uint8Array = encoder.encode(`\r\n--${BOUNDARY}\r\n`);

/** Capture time (µs since the epoch) as X-Timestamp writes it: seconds with six decimals. */
export function timestampHeader(capturedAtMicros: number): string {
  const us = Math.max(0, Math.round(capturedAtMicros));
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
}

/** The header lines of one part, up to and including the empty line. */
export function partHeader(frame: Frame): Uint8Array {
  return encoder.encode(
    "Content-Type: image/jpeg\r\n" +
      `Content-Length: ${frame.jpeg.length}\r\n` +
      `X-Timestamp: ${timestampHeader(frame.capturedAt)}\r\n` +
      `X-Frame-Number: ${frame.seq}\r\n` +
      "\r\n",
  );
}
