// Entropy-coded JPEG data never holds FF C0 (a data FF is followed by 00 or RSTn),
// so this byte run finds the baseline frame header: SOF0, length 17, precision 8.
const SOF0_START = [0xff, 0xc0, 0x00, 0x11, 0x08];

/** Offset of the SOF0 marker in a baseline JPEG (throws when there is none). */
export function sofAt(jpeg: Uint8Array): number {
  const at = Buffer.from(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength).indexOf(Buffer.from(SOF0_START));
  if (at < 0) throw new Error("no SOF0 in the test JPEG");
  return at;
}

/** A copy whose frame header claims width x height; the scan data stays that of the original. */
export function withSize(jpeg: Uint8Array, width: number, height: number): Uint8Array {
  const out = jpeg.slice();
  const view = new DataView(out.buffer);
  view.setUint16(sofAt(out) + 5, height);
  view.setUint16(sofAt(out) + 7, width);
  return out;
}

/** Width and height from a baseline JPEG's frame header. */
export function jpegSize(jpeg: Uint8Array): [number, number] {
  const at = sofAt(jpeg);
  const view = new DataView(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
  return [view.getUint16(at + 7), view.getUint16(at + 5)];
}

/**
 * Pads a JPEG with comment segments (skipped by every decoder) to about `size` bytes:
 * the test source compresses far better than a camera picture.
 */
export function padJpeg(jpeg: Uint8Array, size: number): Uint8Array {
  const chunks: Uint8Array[] = [jpeg.subarray(0, 2)];
  let total = jpeg.length;
  while (total < size) {
    const n = Math.min(65_533, size - total);
    const seg = new Uint8Array(4 + n);
    seg.set([0xff, 0xfe, (n + 2) >> 8, (n + 2) & 0xff]);
    chunks.push(seg);
    total += seg.length;
  }
  chunks.push(jpeg.subarray(2));
  return Buffer.concat(chunks);
}
