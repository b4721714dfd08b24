/**
 * Whether a JPEG survives RTP/JPEG (RFC 2435) as ffmpeg sends it and receivers rebuild it.
 *
 * RTP/JPEG sends no Huffman tables and no sampling factors: the receiver rebuilds the header
 * from a type byte (0 = 4:2:2, 1 = 4:2:0), the size in 8-pixel blocks (one byte each: at most
 * 2040) and the two quantization tables. So only baseline 8-bit YCbCr laid out the way RFC 2435
 * rebuilds it comes through. ffmpeg refuses nothing up front: some frames it drops with an
 * error per frame while counting them as sent, others it sends and the receiver discards, so a
 * bad source would look healthy. OpenCV's imencode (libjpeg, 4:2:0, standard tables) and camera
 * MJPEG (which usually omits the Huffman tables) fit; ffmpeg's own MJPEG encoder does not (one
 * quantization table, optimized Huffman tables).
 *
 * The header, as far as it is read here (ITU T.81 B.2):
 *
 *   FF D8                                     SOI
 *   FF DB | len | Pq/Tq | 64 bytes ...         DQT   two 8-bit tables in all, ids 0 then 1
 *   FF C4 | len | Tc/Th | 16 counts | values  DHT   the four tables of Annex K.3, or none
 *   FF DD | len | restart interval             DRI   must be 0 (no restart markers)
 *   FF C0 | len | P | H | W | Nf | Nf x (C, Hi/Vi, Tq)   SOF0: P = 8, Nf = 3, Y 2x1 or 2x2, Cb Cr 1x1,
 *                                                         quantization tables Y 0, Cb 1, Cr 1
 *   FF DA | len | Ns | Ns x (Cs, Td/Ta) | ...  SOS   Y, Cb, Cr with Huffman tables 0/0, 1/1, 1/1;
 *                                                    the scan follows and the header ends here
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
const RTP_JPEG_BLOCK = 8;

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
  const quantIds: number[] = [];
  let sof: Sof | null = null;
  let sos: Uint8Array | null = null;
  let pos = 2;
  while (!sos) {
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
    if (code === SOS) {
      sos = body;
    } else if (code === SOF0) {
      const problem = readSof0(body);
      if (typeof problem === "string") return problem;
      sof = problem;
    } else if (isSof(code)) {
      return `${SOF_NAMES[code] ?? "non-baseline"} JPEG; RTP/JPEG carries baseline (SOF0) only`;
    } else if (code === DHT) {
      const problem = checkDht(body, huffman);
      if (problem) return problem;
    } else if (code === DQT) {
      const problem = readDqt(body, quantIds);
      if (problem) return problem;
    } else if (code === DRI) {
      if (body.length >= 2 && (body[0]! << 8 | body[1]!) !== 0) return "restart markers (DRI); ffmpeg's RTP/JPEG does not carry them";
    }
  }
  if (!sof) return "no baseline frame header (SOF0) before the scan";
  // The receiver rebuilds the header as RFC 2435 appendix A does: quantization table 0 for Y,
  // 1 for Cb and Cr, sent in that order; Huffman tables the same way.
  if (quantIds.length !== 2 || quantIds[0] !== 0 || quantIds[1] !== 1) {
    return `${quantIds.length === 2 ? `quantization tables ${quantIds.join(", ")}` : `${quantIds.length} quantization table${quantIds.length === 1 ? "" : "s"}`}; RTP/JPEG carries exactly two, 0 (luma) then 1 (chroma)`;
  }
  const tq = sof.components.map((c) => c.tq);
  if (tq.join() !== "0,1,1") return `quantization tables used Y ${tq[0]}, Cb ${tq[1]}, Cr ${tq[2]}; RTP/JPEG rebuilds Y 0, Cb 1, Cr 1`;
  const scan = readSos(sos);
  if (typeof scan === "string") return scan;
  if (scan.join() !== "0,17,17") {
    const f = (b: number) => `${b >> 4}/${b & 15}`;
    return `Huffman tables used Y ${f(scan[0]!)}, Cb ${f(scan[1]!)}, Cr ${f(scan[2]!)} (DC/AC); RTP/JPEG rebuilds Y 0/0, Cb 1/1, Cr 1/1`;
  }
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

/** What the frame header says, as far as RTP/JPEG cares. */
interface Sof {
  width: number;
  height: number;
  /** Y, Cb, Cr: sampling factors (H << 4 | V) and quantization table. */
  components: { hv: number; tq: number }[];
}

function readSof0(body: Uint8Array): Sof | string {
  // P, height, width, Nf, then per component: id, H/V, table.
  if (body.length < 6) return "truncated frame header";
  const precision = body[0]!;
  const height = (body[1]! << 8) | body[2]!;
  const width = (body[3]! << 8) | body[4]!;
  const count = body[5]!;
  if (precision !== 8) return `${precision}-bit samples; RTP/JPEG carries 8-bit only`;
  if (count !== 3) return `${count === 1 ? "grayscale" : `${count}-component`} JPEG; RTP/JPEG carries YCbCr (3 components) only`;
  if (body.length < 6 + 3 * count) return "truncated frame header";
  const components = [0, 1, 2].map((i) => ({ hv: body[7 + 3 * i]!, tq: body[8 + 3 * i]! }));
  const [y, cb, cr] = components.map((c) => c.hv) as [number, number, number];
  if (cb !== 0x11 || cr !== 0x11 || (y !== 0x22 && y !== 0x21)) {
    return `chroma subsampling ${sampling(y, cb, cr)}; RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only`;
  }
  if (width === 0 || height === 0) return `frame size ${width}x${height}`;
  return { width, height, components };
}

/** The scan's DC/AC table selectors per component, in order. */
function readSos(body: Uint8Array): number[] | string {
  const count = body[0] ?? 0;
  if (body.length < 1 + 2 * count + 3) return "truncated scan header";
  if (count !== 3) return `a scan of ${count} component${count === 1 ? "" : "s"}; RTP/JPEG carries one scan of Y, Cb and Cr`;
  return [0, 1, 2].map((i) => body[2 + 2 * i]!);
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

/** Appends the ids of the tables in one DQT segment to `ids`. */
function readDqt(body: Uint8Array, ids: number[]): string | null {
  let at = 0;
  while (at < body.length) {
    if (body[at]! >> 4 !== 0) return "16-bit quantization tables; RTP/JPEG carries 8-bit tables only";
    ids.push(body[at]! & 15);
    at += 1 + 64;
  }
  return at === body.length ? null : "truncated quantization table";
}
