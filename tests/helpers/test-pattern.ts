/**
 * The frame-number barcode drawn by the native test-pattern renderer, and its
 * reader. A receiver decodes a frame and calls readFrameNumber to check order and
 * loss end to end from the pixels alone.
 *
 * Layout (native/test-pattern.cc draws it; rows 0..BAND_HEIGHT-1, cell i spans
 * x = i*cell .. (i+1)*cell-1 with cell = floor(width / CELLS); white = 1, black = 0):
 *
 *   | 1 | 0 | b31 b30 ... b0 | c3 c2 c1 c0 | 0 | 1 |
 *    start    32 data bits     check nibble   end
 *
 * The check nibble is the XOR of the number's eight nibbles. Pixels right of the
 * last cell are mid grey. Frames narrower than MIN_WIDTH carry no barcode.
 */

/** Height of the barcode band at the top of the frame, px. */
export const BAND_HEIGHT = 16;
/** Cells across the band: 2 start + 32 data + 4 check + 2 end. */
export const CELLS = 40;
/** Narrowest cell that still reads back after JPEG at quality 50. */
export const MIN_CELL_WIDTH = 4;
/** Narrowest frame that carries a barcode. */
export const MIN_WIDTH = CELLS * MIN_CELL_WIDTH;

const START = [1, 0] as const;
const END = [0, 1] as const;
const DATA_BITS = 32;
const CHECK_BITS = 4;
// Cell means between these are neither black nor white: not a barcode.
const BLACK_BELOW = 96;
const WHITE_ABOVE = 160;

/** Width of one cell for a frame `width` px wide. */
export function cellWidth(width: number): number {
  return Math.floor(width / CELLS);
}

/** XOR of the eight nibbles of a 32-bit number. */
export function checkNibble(n: number): number {
  let x = 0;
  for (let i = 0; i < 8; i++) x ^= (n >>> (4 * i)) & 0xf;
  return x;
}

/**
 * Reads the frame number from a decoded packed-BGR image; null when the image
 * is too small or its top band does not look like a valid barcode.
 */
export function readFrameNumber(bgr: Uint8Array, width: number, height: number): number | null {
  if (bgr.length < width * height * 3) {
    throw new RangeError(`readFrameNumber: ${bgr.length} bytes is too short for ${width}x${height} BGR`);
  }
  if (width < MIN_WIDTH || height < BAND_HEIGHT) return null;
  const cell = cellWidth(width);
  // Sample the middle of each cell: JPEG smears edges between black and white.
  const margin = cell >= 8 ? 2 : 1;
  const y0 = BAND_HEIGHT / 4;
  const y1 = (3 * BAND_HEIGHT) / 4;
  const bits: number[] = [];
  for (let i = 0; i < CELLS; i++) {
    let sum = 0;
    let count = 0;
    for (let y = y0; y < y1; y++) {
      const row = y * width * 3;
      for (let x = i * cell + margin; x < (i + 1) * cell - margin; x++) {
        const p = row + x * 3;
        sum += bgr[p]! + bgr[p + 1]! + bgr[p + 2]!;
        count += 3;
      }
    }
    const mean = sum / count;
    if (mean < BLACK_BELOW) bits.push(0);
    else if (mean > WHITE_ABOVE) bits.push(1);
    else return null;
  }
  const startOk = bits[0] === START[0] && bits[1] === START[1];
  const endOk = bits[CELLS - 2] === END[0] && bits[CELLS - 1] === END[1];
  if (!startOk || !endOk) return null;
  let n = 0;
  for (let i = 0; i < DATA_BITS; i++) n = ((n << 1) | bits[2 + i]!) >>> 0;
  let check = 0;
  for (let i = 0; i < CHECK_BITS; i++) check = (check << 1) | bits[2 + DATA_BITS + i]!;
  return check === checkNibble(n) ? n : null;
}
