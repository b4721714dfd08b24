/**
 * The frame size a JPEG declares, read from its header without decoding, so a
 * receiver can refuse a picture before a decoder allocates it: a few hundred bytes
 * can claim 65535x65535, and libjpeg fills the missing data in (ITU T.81 B.1).
 */

/** Width and height from a JPEG's frame header, in pixels. */
export interface JpegSize {
  width: number;
  height: number;
}

// A JPEG is a sequence of marker segments up to the entropy-coded scan (SOS):
//
//   SOI    marker segment (APPn, DQT, DHT, COM, ...)    SOFn (frame header)
//  +-----+ +-----+--------+------------------+  ...  +-----+--------+---+--------+--------+----+--------------+
//  |FF D8| |FF mm| length | length - 2 bytes |       |FF Cn| length | P | height | width  | Nf | Nf * 3 bytes |
//  +-----+ +-----+--------+------------------+       +-----+--------+---+--------+--------+----+--------------+
//                  u16 BE, counts itself                              u8  u16 BE   u16 BE   u8
//
// Any number of FF fill bytes may precede a marker code. RSTn (D0-D7) and TEM (01)
// carry no length. The scan, and with it a second SOI or an EOI, may only follow a
// frame header, so meeting one first means the header is missing.
const MARKER = 0xff;
const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const TEM = 0x01;
const RST0 = 0xd0;
const RST7 = 0xd7;
// SOF0..SOF15 are C0..CF, except these three codes in the same range.
const SOF0 = 0xc0;
const SOF15 = 0xcf;
const DHT = 0xc4;
const JPG = 0xc8;
const DAC = 0xcc;

// Offsets within a segment, from its length field.
const LENGTH_SIZE = 2;
const SOF_HEIGHT = 3;
const SOF_WIDTH = 5;
const SOF_COMPONENTS = 7;
const SOF_FIXED_LENGTH = 8;
const SOF_COMPONENT_SIZE = 3;

function isSof(code: number): boolean {
  return code >= SOF0 && code <= SOF15 && code !== DHT && code !== JPG && code !== DAC;
}

/**
 * The size in the first SOFn frame header; null when the bytes do not start with
 * a well-formed header (truncated, garbage, no frame header, a zero side).
 */
export function readJpegSize(bytes: Uint8Array): JpegSize | null {
  if (bytes.length < 2 || bytes[0] !== MARKER || bytes[1] !== SOI) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Every pass moves pos forward by at least one byte: at most bytes.length passes.
  let pos = 2;
  while (pos < bytes.length) {
    // Strict where libjpeg is lenient (it skips stray bytes): doubt means "no size".
    if (bytes[pos] !== MARKER) return null;
    while (pos < bytes.length && bytes[pos] === MARKER) pos++;
    if (pos >= bytes.length) return null;
    const code = bytes[pos++]!;
    if (code === TEM || (code >= RST0 && code <= RST7)) continue;
    if (code === 0 || code === SOI || code === EOI || code === SOS) return null;
    if (pos + LENGTH_SIZE > bytes.length) return null;
    const length = view.getUint16(pos);
    if (length < LENGTH_SIZE || pos + length > bytes.length) return null;
    if (isSof(code)) return readSof(view, pos, length);
    pos += length;
  }
  return null;
}

// The frame header whose length field is at `at`; its `length` bytes are in the buffer.
function readSof(view: DataView, at: number, length: number): JpegSize | null {
  if (length < SOF_FIXED_LENGTH) return null;
  const components = view.getUint8(at + SOF_COMPONENTS);
  // libjpeg refuses any other length, and a frame without components or with a zero side.
  if (components === 0 || length !== SOF_FIXED_LENGTH + components * SOF_COMPONENT_SIZE) return null;
  const height = view.getUint16(at + SOF_HEIGHT);
  const width = view.getUint16(at + SOF_WIDTH);
  if (width === 0 || height === 0) return null;
  return { width, height };
}
