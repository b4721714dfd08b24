/**
 * Whether ffmpeg's RTP/JPEG packetizer (RFC 2435) can carry a JPEG as it is.
 *
 * RTP/JPEG sends no Huffman tables and no sampling factors: the receiver rebuilds the header
 * from a type byte (0 = 4:2:2, 1 = 4:2:0), the size in 8-pixel blocks (one byte each: at most
 * 2040) and the quantization tables. So only baseline 8-bit YCbCr with standard Huffman tables
 * survives. ffmpeg does not refuse anything else up front: it logs an error per frame, sends
 * nothing and keeps counting frames, so a bad source would look healthy. OpenCV's imencode
 * (libjpeg, 4:2:0, standard tables) and camera MJPEG (which usually omits the tables) fit.
 *
 * The header, as far as it is read here (ITU T.81 B.2):
 *
 *   FF D8                                     SOI
 *   FF DB | len | Pq/Tq | 64 or 128 bytes ... DQT   Pq must be 0 (8-bit)
 *   FF C4 | len | Tc/Th | 16 counts | values  DHT   the four tables of Annex K.3, or none
 *   FF DD | len | restart interval             DRI   must be 0 (no restart markers)
 *   FF C0 | len | P | H | W | Nf | Nf x (C, Hi/Vi, Tq)   SOF0: P = 8, Nf = 3, Y 2x1 or 2x2, Cb Cr 1x1
 *   FF DA ...                                 SOS: the scan; the header ends here
 */

const MARKER = 0xff;
const SOI = 0xd8;
const SOS = 0xda;
const SOF0 = 0xc0;
const DHT = 0xc4;
const DQT = 0xdb;
const DRI = 0xdd;
const JPG = 0xc8;
const DAC = 0xcc;
const TEM = 0x01;
const RST0 = 0xd0;
const RST7 = 0xd7;

/** RFC 2435 carries width and height as a byte of 8-pixel blocks. */
export const RTP_JPEG_MAX_SIDE = 255 * 8;
/** The block the sizes are counted in. */
export const RTP_JPEG_BLOCK = 8;

/** Annex K.3 tables: class/id byte, 16 code counts, then the values, as they appear in a DHT. */
const STANDARD_TABLES: ReadonlyMap<number, string> = new Map<number, string>([
  [0x00, "00010501010101010100000000000000" + "000102030405060708090a0b"],
  [0x01, "00030101010101010101010000000000" + "000102030405060708090a0b"],
  [0x10, "0002010303020403050504040000017d" +
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a" +
    "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aa" +
    "b2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"],
  [0x11, "00020102040403040705040400010277" +
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a" +
    "434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aa" +
    "b2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"],
]);

const SOF_NAMES: Record<number, string> = {
  0xc1: "extended sequential", 0xc2: "progressive", 0xc3: "lossless",
  0xc5: "differential sequential", 0xc6: "differential progressive", 0xc7: "differential lossless",
  0xc9: "arithmetic-coded", 0xca: "arithmetic-coded progressive", 0xcb: "arithmetic-coded lossless",
  0xcd: "arithmetic-coded differential", 0xce: "arithmetic-coded differential progressive", 0xcf: "arithmetic-coded differential lossless",
};

function isSof(code: number): boolean {
  return code >= 0xc0 && code <= 0xcf && code !== DHT && code !== JPG && code !== DAC;
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * Why RTP/JPEG cannot carry `jpeg` as it is, in words for a log line; null when it can.
 * Reads only the header (up to SOS); never throws.
 */
export function rtpJpegProblem(jpeg: Uint8Array): string | null {
  if (jpeg.length < 4 || jpeg[0] !== MARKER || jpeg[1] !== SOI) return "not a JPEG (no FF D8 at the start)";
  const view = new DataView(jpeg.buffer, jpeg.byteOffset, jpeg.byteLength);
  const huffman = new Set<number>();
  let sof: { width: number; height: number } | null = null;
  let pos = 2;
  for (;;) {
    if (pos >= jpeg.length || jpeg[pos] !== MARKER) return "malformed JPEG header";
    while (pos < jpeg.length && jpeg[pos] === MARKER) pos++;
    if (pos >= jpeg.length) return "malformed JPEG header";
    const code = jpeg[pos++]!;
    if (code === TEM || (code >= RST0 && code <= RST7)) continue;
    if (pos + 2 > jpeg.length) return "truncated JPEG header";
    const length = view.getUint16(pos);
    if (length < 2 || pos + length > jpeg.length) return "truncated JPEG header";
    const body = jpeg.subarray(pos + 2, pos + length);
    pos += length;
    if (code === SOS) break;
    if (code === SOF0) {
      const problem = checkSof0(body);
      if (typeof problem === "string") return problem;
      sof = problem;
    } else if (isSof(code)) {
      return `${SOF_NAMES[code] ?? "non-baseline"} JPEG; RTP/JPEG carries baseline (SOF0) only`;
    } else if (code === DHT) {
      const problem = checkDht(body, huffman);
      if (problem) return problem;
    } else if (code === DQT) {
      const problem = checkDqt(body);
      if (problem) return problem;
    } else if (code === DRI) {
      if (body.length >= 2 && (body[0]! << 8 | body[1]!) !== 0) return "restart markers (DRI); ffmpeg's RTP/JPEG does not carry them";
    }
  }
  if (!sof) return "no baseline frame header (SOF0) before the scan";
  if (huffman.size > 0 && huffman.size !== STANDARD_TABLES.size) {
    return "incomplete Huffman tables; RTP/JPEG needs the four standard tables (or none)";
  }
  const { width, height } = sof;
  if (width > RTP_JPEG_MAX_SIDE || height > RTP_JPEG_MAX_SIDE) {
    return `${width}x${height} is larger than RTP/JPEG's ${RTP_JPEG_MAX_SIDE}x${RTP_JPEG_MAX_SIDE}`;
  }
  if (width % RTP_JPEG_BLOCK !== 0 || height % RTP_JPEG_BLOCK !== 0) {
    return `${width}x${height} is not a multiple of 8 pixels; RTP/JPEG would show it padded`;
  }
  return null;
}

function checkSof0(body: Uint8Array): { width: number; height: number } | string {
  // P, height, width, Nf, then three bytes per component.
  if (body.length < 6) return "truncated frame header";
  const precision = body[0]!;
  const height = (body[1]! << 8) | body[2]!;
  const width = (body[3]! << 8) | body[4]!;
  const components = body[5]!;
  if (precision !== 8) return `${precision}-bit samples; RTP/JPEG carries 8-bit only`;
  if (components !== 3) return `${components === 1 ? "grayscale" : `${components}-component`} JPEG; RTP/JPEG carries YCbCr (3 components) only`;
  if (body.length < 6 + 3 * components) return "truncated frame header";
  const y = body[7]!;
  const cb = body[10]!;
  const cr = body[13]!;
  if (cb !== 0x11 || cr !== 0x11 || (y !== 0x22 && y !== 0x21)) {
    return `chroma subsampling ${sampling(y, cb, cr)}; RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only`;
  }
  if (width === 0 || height === 0) return `frame size ${width}x${height}`;
  return { width, height };
}

/** E.g. `4:2:2 (Y 2x2, Cb 1x2, Cr 1x2)`: the ratio, and the factors RTP/JPEG cares about. */
function sampling(y: number, cb: number, cr: number): string {
  const [yh, yv, ch, cv] = [y >> 4, y & 15, cb >> 4, cb & 15];
  const ratios: Record<string, string> = { "1x1": "4:4:4", "2x1": "4:2:2", "2x2": "4:2:0", "1x2": "4:4:0", "4x1": "4:1:1" };
  const ratio = cb === cr && ch > 0 && cv > 0 && yh % ch === 0 && yv % cv === 0 ? ratios[`${yh / ch}x${yv / cv}`] : undefined;
  const f = (b: number) => `${b >> 4}x${b & 15}`;
  return `${ratio ? `${ratio} ` : ""}(Y ${f(y)}, Cb ${f(cb)}, Cr ${f(cr)})`;
}

function checkDht(body: Uint8Array, seen: Set<number>): string | null {
  let at = 0;
  while (at < body.length) {
    if (at + 17 > body.length) return "truncated Huffman table";
    const id = body[at]!;
    let count = 0;
    for (let i = 1; i <= 16; i++) count += body[at + i]!;
    const end = at + 17 + count;
    if (end > body.length) return "truncated Huffman table";
    if (STANDARD_TABLES.get(id) !== hex(body.subarray(at + 1, end))) {
      return "optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones";
    }
    seen.add(id);
    at = end;
  }
  return null;
}

function checkDqt(body: Uint8Array): string | null {
  let at = 0;
  while (at < body.length) {
    const precision = body[at]! >> 4;
    if (precision !== 0) return "16-bit quantization tables; RTP/JPEG carries 8-bit tables only";
    at += 1 + 64;
  }
  return at === body.length ? null : "truncated quantization table";
}
