import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { concatBytes } from "../wire/bytes.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { encodeOggPage, OGG_BOS, OGG_EOS } from "./ogg.ts";

/*
 * Opus in Ogg (RFC 7845): an identification header page, a comment header page, then
 * audio pages. The writer puts each packet on a page of its own, so a reader gets every
 * packet the moment it is written (the browser view, the recorder's and publishers'
 * ffmpeg). A lost packet leaves a gap in the granule positions, which decoders fill.
 *
 * OpusHead:  "OpusHead" | version 1 | channels | pre-skip (u16 LE) | input rate (u32 LE)
 *            | output gain (i16 LE) | channel mapping family 0
 * OpusTags:  "OpusTags" | vendor length (u32 LE) | vendor | comment count (u32 LE) = 0
 */

const HEAD_SIZE = 19;
const VENDOR = new TextEncoder().encode("lancam");
/** Samples at 48 kHz a decoder drops at the start (RFC 7845 5.1: the encoder's look-ahead; 312 is libopus's at 48 kHz). */
export const OPUS_PRE_SKIP = 312;

/** The OpusHead packet for `format`. */
export function opusHead(format: Pick<AudioFormat, "channels">, preSkip = OPUS_PRE_SKIP): Uint8Array {
  const out = new Uint8Array(HEAD_SIZE);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode("OpusHead"), 0);
  out[8] = 1;
  out[9] = format.channels;
  dv.setUint16(10, preSkip, true);
  dv.setUint32(12, 48000, true);
  dv.setInt16(16, 0, true);
  out[18] = 0;
  return out;
}

/** What an OpusHead packet says. */
export interface OpusHeadInfo {
  channels: number;
  preSkip: number;
}

/** Reads an OpusHead packet; throws DecodeError when `bytes` is not one. */
export function decodeOpusHead(bytes: Uint8Array): OpusHeadInfo {
  if (bytes.length < HEAD_SIZE) throw new DecodeError("truncated", `OpusHead of ${bytes.length} bytes, expected at least ${HEAD_SIZE}`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== "OpusHead") throw new DecodeError("bad-magic", "not an OpusHead packet");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { channels: bytes[9]!, preSkip: dv.getUint16(10, true) };
}

/** The OpusTags packet, with no comments. */
export function opusTags(): Uint8Array {
  const out = new Uint8Array(8 + 4 + VENDOR.length + 4);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode("OpusTags"), 0);
  dv.setUint32(8, VENDOR.length, true);
  out.set(VENDOR, 12);
  dv.setUint32(12 + VENDOR.length, 0, true);
  return out;
}

/**
 * Audio packets in, Ogg Opus bytes out. The granule position follows the packets'
 * numbers: a packet that did not come (a loss, a packet number skipped) still moves
 * the granule on by its length, so the decoder fills the gap and the audio keeps time.
 */
export class OggOpusWriter {
  readonly #serial: number;
  readonly #channels: 1 | 2;
  readonly #samplesPerPacket: number;
  #pageSeq = 0;
  #first: number | null = null;
  #lastSeq = 0;
  #granule = BigInt(OPUS_PRE_SKIP);

  constructor(format: Pick<AudioFormat, "channels" | "frameMs">, serial = (Math.random() * 0x100000000) >>> 0) {
    this.#serial = serial;
    this.#channels = format.channels;
    this.#samplesPerPacket = (48000 * format.frameMs) / 1000;
  }

  /** The two header pages every stream starts with. */
  header(): Uint8Array {
    const head = encodeOggPage({ headerType: OGG_BOS, granule: 0n, serial: this.#serial, pageSeq: this.#pageSeq++, packets: [opusHead({ channels: this.#channels })] });
    const tags = encodeOggPage({ headerType: 0, granule: 0n, serial: this.#serial, pageSeq: this.#pageSeq++, packets: [opusTags()] });
    return concatBytes([head, tags]);
  }

  /** The page for `packet`; a packet not newer than the last written is skipped (empty result). */
  page(packet: AudioPacket, last = false): Uint8Array {
    if (this.#first !== null) {
      const gap = (packet.seq - this.#lastSeq) | 0;
      if (gap <= 0) return new Uint8Array(0);
      // Bounded: a jump of more than a minute restarts the count rather than writing an hour of silence.
      if (gap > 1 && gap <= 3000) this.#granule += BigInt((gap - 1) * this.#samplesPerPacket);
    }
    this.#first ??= packet.seq;
    this.#lastSeq = packet.seq;
    this.#granule += BigInt(packet.samples);
    return encodeOggPage({ headerType: last ? OGG_EOS : 0, granule: this.#granule, serial: this.#serial, pageSeq: this.#pageSeq++, packets: [packet.data] });
  }
}
