// A frame number drawn into a benchmark clip by ffmpeg, and read back from a JPEG at
// 1/8 scale, so a reader of a stream without frame numbers (Motion's MJPEG over HTTP)
// knows which frame of the file each picture is.
//
// A band of BAND px at the top, CELLS cells of width/CELLS px (white = 1):
//
//   | 1 | 0 | b11 ... b0 | c3 c2 c1 c0 | 0 | 1 |     c = (7 * n + 3) mod 16
//
// Cells are whole 8x8 blocks, so at 1/8 scale, where libjpeg keeps only each block's
// average, every cell is still flat. At the top, so the decoder needs only the first
// part of the JPEG: the reader hands it a prefix, and pays a fraction of a decode.
import { cv } from "../lib/native/cv.ts";

const BAND = 32;
const CELLS = 20;
const DATA_BITS = 12;
/** Share of a JPEG's bytes decoded first: the band is 32 of at least 480 rows (6.7 %). */
const PREFIX = 0.08;
/** Clips may hold at most this many frames; their numbers repeat after it. */
export const MAX_FRAMES = 1 << DATA_BITS;

const check = (n: number) => (7 * n + 3) % 16;

/** The cells of frame `n`, left to right. */
function cells(n: number): number[] {
  const bits = [1, 0];
  for (let i = DATA_BITS - 1; i >= 0; i--) bits.push((n >> i) & 1);
  for (let i = 3; i >= 0; i--) bits.push((check(n) >> i) & 1);
  bits.push(0, 1);
  return bits;
}

/** An ffmpeg filter chain that draws the band on a `width` x `height` picture, per frame number `n`. */
export function barcodeFilter(width: number, height: number): string {
  if (width % CELLS !== 0 || (width / CELLS) % 8 !== 0 || height % 8 !== 0) {
    throw new Error(`barcodeFilter: ${width}x${height} does not split into ${CELLS} cells of whole 8x8 blocks`);
  }
  const w = width / CELLS;
  const y = 0;
  const box = (i: number, enable?: string) =>
    `drawbox=x=${i * w}:y=${y}:w=${w}:h=${BAND}:color=white:t=fill${enable ? `:enable='${enable}'` : ""}`;
  const parts = [`drawbox=x=0:y=${y}:w=${width}:h=${BAND}:color=black:t=fill`, box(0), box(CELLS - 1)];
  for (let i = 0; i < DATA_BITS; i++) parts.push(box(2 + (DATA_BITS - 1 - i), `eq(mod(floor(n/${2 ** i}),2),1)`));
  for (let i = 0; i < 4; i++) parts.push(box(2 + DATA_BITS + (3 - i), `eq(mod(floor(mod(7*n+3,16)/${2 ** i}),2),1)`));
  return parts.join(",");
}

/**
 * The frame number in a JPEG's band; null when the band does not read back (start,
 * end or check wrong). Tries the first PREFIX of the bytes (libjpeg fills the rest in
 * grey, and says so on stderr), then the whole JPEG.
 */
export function readBarcode(jpeg: Uint8Array): number | null {
  const prefix = Math.min(jpeg.length, Math.ceil(jpeg.length * PREFIX));
  return readBand(jpeg.subarray(0, prefix)) ?? (prefix < jpeg.length ? readBand(jpeg) : null);
}

function readBand(jpeg: Uint8Array): number | null {
  const t = cv().jpegThumbnail(jpeg, 8);
  if (!t) return null;
  const row = BAND / 16; // the middle of the band at 1/8
  const cell = t.width / CELLS;
  const bits: number[] = [];
  for (let i = 0; i < CELLS; i++) bits.push(t.grey[row * t.width + Math.floor(i * cell + cell / 2)]! > 128 ? 1 : 0);
  let n = 0;
  for (let i = 0; i < DATA_BITS; i++) n = (n << 1) | bits[2 + i]!;
  const want = cells(n);
  return bits.every((b, i) => b === want[i]) ? n : null;
}
