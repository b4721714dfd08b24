import { DecodeError, hex } from "../wire/decode-error.ts";

/*
 * The header of the WAV files `--audio-out wav:FILE` writes: 16-bit PCM, with a
 * LIST/INFO comment that says when sample 0 was heard, so a test (or a person
 * measuring lip sync) can relate sample i of the file to the wall clock.
 *
 *  offset  size  field
 *       0     4  "RIFF"
 *       4     4  file size - 8                   (u32 LE, updated as the file grows)
 *       8     4  "WAVE"
 *      12     4  "fmt "
 *      16     4  16                              (the fmt chunk's size)
 *      20     2  1                               (PCM)
 *      22     2  channels
 *      24     4  sample rate
 *      28     4  bytes per second
 *      32     2  bytes per sample frame (2 * channels)
 *      34     2  16                              (bits per sample)
 *      36     4  "LIST"
 *      40     4  LIST_SIZE
 *      44     4  "INFO"
 *      48     4  "ICMT"
 *      52     4  COMMENT_SIZE
 *      56    64  "lancam firstSampleAt=NNNNNNNNNNNNNNNNNNNN" NUL-padded: the local
 *                wall-clock time of sample 0, µs since the Unix epoch, 20 digits
 *     120     4  "data"
 *     124     4  data size                       (u32 LE, updated as the file grows)
 *     128        samples, interleaved, little-endian
 */

export const WAV_HEADER_BYTES = 128;
/** Where the two sizes sit, for a writer that updates them in place. */
export const WAV_RIFF_SIZE_OFFSET = 4;
export const WAV_DATA_SIZE_OFFSET = 124;
const FMT_OFFSET = 12;
const LIST_OFFSET = 36;
const COMMENT_OFFSET = 56;
const COMMENT_SIZE = 64;
const LIST_SIZE = 4 + 8 + COMMENT_SIZE;
const DATA_OFFSET = 120;
const START_DIGITS = 20;
/** The comment's text before the time; a reader finds the time after it. */
export const FIRST_SAMPLE_TAG = "lancam firstSampleAt=";

/** What a lancam WAV header says. */
export interface WavInfo {
  channels: number;
  sampleRate: number;
  /** Wall-clock time of sample 0, µs since the Unix epoch. */
  firstSampleAt: number;
  /** The data size the header states (a file cut short may hold less, or more). */
  dataBytes: number;
}

/** The header for `info`; sizes above the u32 range are written as the largest a RIFF file can state. */
export function encodeWavHeader(info: WavInfo): Uint8Array {
  const out = new Uint8Array(WAV_HEADER_BYTES);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string) => {
    for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  };
  const data = Math.min(info.dataBytes, 0xffffffff - (WAV_HEADER_BYTES - 8));
  ascii(0, "RIFF");
  v.setUint32(WAV_RIFF_SIZE_OFFSET, WAV_HEADER_BYTES - 8 + data, true);
  ascii(8, "WAVE");
  ascii(FMT_OFFSET, "fmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, info.channels, true);
  v.setUint32(24, info.sampleRate, true);
  v.setUint32(28, info.sampleRate * info.channels * 2, true);
  v.setUint16(32, info.channels * 2, true);
  v.setUint16(34, 16, true);
  ascii(LIST_OFFSET, "LIST");
  v.setUint32(40, LIST_SIZE, true);
  ascii(44, "INFO");
  ascii(48, "ICMT");
  v.setUint32(52, COMMENT_SIZE, true);
  ascii(COMMENT_OFFSET, FIRST_SAMPLE_TAG + String(Math.max(0, Math.round(info.firstSampleAt))).padStart(START_DIGITS, "0"));
  ascii(DATA_OFFSET, "data");
  v.setUint32(WAV_DATA_SIZE_OFFSET, data, true);
  return out;
}

/** Reads a header encodeWavHeader wrote; throws DecodeError for anything else. */
export function decodeWavHeader(bytes: Uint8Array): WavInfo {
  if (bytes.length < WAV_HEADER_BYTES) throw new DecodeError("truncated", `WAV header needs ${WAV_HEADER_BYTES} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = (at: number, n: number) => String.fromCharCode(...bytes.subarray(at, at + n));
  for (const [at, tag] of [[0, "RIFF"], [8, "WAVE"], [FMT_OFFSET, "fmt "], [LIST_OFFSET, "LIST"], [44, "INFO"], [48, "ICMT"], [DATA_OFFSET, "data"]] as const) {
    if (text(at, 4) !== tag) throw new DecodeError("bad-magic", `WAV header: expected "${tag}" at ${at}, got ${hex(v.getUint32(at, false), 4)}`);
  }
  const format = v.getUint16(20, true);
  const bits = v.getUint16(34, true);
  if (format !== 1 || bits !== 16) throw new DecodeError("bad-value", `WAV header: not 16-bit PCM (format ${hex(format, 2)}, ${bits} bits)`);
  const comment = text(COMMENT_OFFSET, COMMENT_SIZE);
  const m = new RegExp(`^${FIRST_SAMPLE_TAG}(\\d{${START_DIGITS}})\\0*$`).exec(comment);
  if (!m) throw new DecodeError("bad-value", `WAV header: comment is not "${FIRST_SAMPLE_TAG}<20 digits>"`);
  return { channels: v.getUint16(22, true), sampleRate: v.getUint32(24, true), firstSampleAt: Number(m[1]), dataBytes: v.getUint32(WAV_DATA_SIZE_OFFSET, true) };
}
