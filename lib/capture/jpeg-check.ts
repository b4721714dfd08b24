/**
 * The check a source's own JPEG passes before lancam sends it as it came: whole
 * (SOI first, EOI last) and of the size the stream announced. A frame that fails is
 * decoded and encoded again, or dropped, so no viewer gets one it cannot show.
 */
import { MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";

const MARKER = 0xff;
const SOI = 0xd8;
const EOI = 0xd9;
/** SOI, a frame header and EOI take more than this. */
const MIN_JPEG_BYTES = 4;
/**
 * Zero bytes tolerated after EOI: some cameras hand over their whole buffer, and
 * decoders stop at EOI anyway. More than this is taken for a broken frame.
 */
export const MAX_TRAILING_ZEROS = 1024;

function hex(bytes: Uint8Array, count: number): string {
  return [...bytes.subarray(0, count)].map((b) => b.toString(16).padStart(2, "0")).join(" ") || "nothing";
}

/**
 * Why `bytes` cannot be sent as a `width` x `height` frame of the stream, or null
 * when it can. Reads only the header and the last bytes: no decode.
 */
export function checkSourceJpeg(bytes: Uint8Array, width: number, height: number): string | null {
  if (bytes.length < MIN_JPEG_BYTES) return `${bytes.length} bytes, too short for a JPEG`;
  if (bytes.length > MAX_FRAME_BYTES) return `${bytes.length} bytes, more than the ${MAX_FRAME_BYTES} a frame may have`;
  if (bytes[0] !== MARKER || bytes[1] !== SOI) return `no SOI marker (starts with ${hex(bytes, 4)})`;
  const size = readJpegSize(bytes);
  if (!size) return "no well-formed frame header";
  if (size.width !== width || size.height !== height) {
    return `frame header says ${size.width}x${size.height}, the stream is ${width}x${height}`;
  }
  let end = bytes.length;
  const floor = Math.max(MIN_JPEG_BYTES, bytes.length - MAX_TRAILING_ZEROS);
  while (end > floor && bytes[end - 1] === 0) end--;
  if (bytes[end - 2] !== MARKER || bytes[end - 1] !== EOI) return "no EOI marker at the end (truncated?)";
  return null;
}
