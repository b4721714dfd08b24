import { concatBytes } from "../wire/bytes.ts";
import { DecodeError, hex } from "../wire/decode-error.ts";

/*
 * Ogg (RFC 3533) pages carrying one Opus stream (RFC 7845). The audio capture reads
 * them from ffmpeg; the browser view, the recorder and the publishers write them.
 *
 *  0                   1                   2                   3
 * +-------------------------------+---------------+---------------+
 * |        capture pattern "OggS" (4 bytes)                        |   0
 * +---------------+---------------+-------------------------------+
 * | version = 0   | header type   |                                |   4
 * +---------------+---------------+ granule position (i64, LE)     +
 * |                                                                |   8
 * +                               +-------------------------------+
 * |                               |                                |  12
 * +-------------------------------+ serial number (u32, LE)        +
 * |                               |                                |  16
 * +-------------------------------+ page sequence (u32, LE)        +
 * |                               |                                |  20
 * +-------------------------------+ CRC-32 (u32, LE)               +
 * |                               |                                |  24
 * +-------------------------------+---------------+- - - - - - - -+
 * |                               | segment count | segment table  |  26, 27
 * +-------------------------------+---------------+- - - - - - - -+
 * | packet data ...                                                |
 *
 * header type: 0x01 continues a packet of the page before, 0x02 first page (BOS),
 * 0x04 last page (EOS). A packet is the run of segments up to the first one shorter
 * than 255. The CRC (poly 0x04c11db7, not reflected, initial 0) covers the page with
 * its CRC field zero.
 */

const CAPTURE = 0x5367674f; // "OggS" read as a little-endian u32
export const PAGE_HEADER_SIZE = 27;
const OFF_VERSION = 4;
const OFF_TYPE = 5;
const OFF_GRANULE = 6;
const OFF_SERIAL = 14;
const OFF_PAGE_SEQ = 18;
const OFF_CRC = 22;
const OFF_SEGMENTS = 26;
export const OGG_CONTINUED = 0x01;
export const OGG_BOS = 0x02;
export const OGG_EOS = 0x04;
/** Most bytes one page holds: 255 segments of 255. */
const MAX_PAGE_BODY = 255 * 255;
/** Most bytes of one packet the reader keeps while it spans pages. */
export const MAX_OGG_PACKET = 64 * 1024;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** Ogg's CRC-32 over `bytes`. */
export function oggCrc(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]!) & 0xff]!) >>> 0;
  return crc >>> 0;
}

/** One page to write: whole packets only (each at most MAX_PAGE_BODY - 1 bytes in all). */
export interface OggPage {
  headerType: number;
  /** -1 when no packet ends on the page. */
  granule: bigint;
  serial: number;
  pageSeq: number;
  packets: Uint8Array[];
}

/** The bytes of `page`, CRC included. */
export function encodeOggPage(page: OggPage): Uint8Array {
  const lacing: number[] = [];
  let body = 0;
  for (const p of page.packets) {
    for (let left = p.length; ; left -= 255) {
      lacing.push(Math.min(left, 255));
      if (left < 255) break;
    }
    body += p.length;
  }
  if (lacing.length > 255 || body > MAX_PAGE_BODY) throw new RangeError(`Ogg page of ${body} bytes in ${lacing.length} segments: more than one page holds`);
  const out = new Uint8Array(PAGE_HEADER_SIZE + lacing.length + body);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, CAPTURE, true);
  out[OFF_VERSION] = 0;
  out[OFF_TYPE] = page.headerType;
  dv.setBigInt64(OFF_GRANULE, page.granule, true);
  dv.setUint32(OFF_SERIAL, page.serial >>> 0, true);
  dv.setUint32(OFF_PAGE_SEQ, page.pageSeq >>> 0, true);
  out[OFF_SEGMENTS] = lacing.length;
  out.set(lacing, PAGE_HEADER_SIZE);
  let at = PAGE_HEADER_SIZE + lacing.length;
  for (const p of page.packets) {
    out.set(p, at);
    at += p.length;
  }
  dv.setUint32(OFF_CRC, oggCrc(out), true);
  return out;
}

/** One packet out of an Ogg stream. */
export interface OggPacket {
  data: Uint8Array;
  /** The page's granule position when this packet is the last to end on its page, else -1. */
  granule: bigint;
  /** The packet starts the stream (its page is BOS). */
  bos: boolean;
  /** The packet ends the stream (its page is EOS and it is the last on it). */
  eos: boolean;
}

/**
 * Ogg pages in, packets out, from a byte stream cut anywhere (ffmpeg's stdout). A
 * page with a bad capture pattern, version or CRC throws DecodeError: the producer is
 * ours, so a broken page means the pipe is broken, not that a byte was flipped.
 */
export class OggReader {
  #buf: Uint8Array = new Uint8Array(0);
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  /** Pages read. */
  pages = 0;

  /** Packets completed by `bytes`. */
  push(bytes: Uint8Array): OggPacket[] {
    // A copy (new Uint8Array: a Buffer's slice is a view, and the CRC check writes into it).
    this.#buf = this.#buf.length === 0 ? new Uint8Array(bytes) : concatBytes([this.#buf, bytes]);
    const out: OggPacket[] = [];
    for (;;) {
      const page = this.#page();
      if (!page) break;
      out.push(...page);
    }
    return out;
  }

  #page(): OggPacket[] | null {
    const b = this.#buf;
    if (b.length < PAGE_HEADER_SIZE) return null;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (dv.getUint32(0, true) !== CAPTURE) throw new DecodeError("bad-magic", `not an Ogg page: ${hex(dv.getUint32(0, false), 4)}`);
    if (b[OFF_VERSION] !== 0) throw new DecodeError("bad-version", `Ogg version ${hex(b[OFF_VERSION]!)}`);
    const nseg = b[OFF_SEGMENTS]!;
    if (b.length < PAGE_HEADER_SIZE + nseg) return null;
    const lacing = b.subarray(PAGE_HEADER_SIZE, PAGE_HEADER_SIZE + nseg);
    let body = 0;
    for (const l of lacing) body += l;
    const size = PAGE_HEADER_SIZE + nseg + body;
    if (b.length < size) return null;
    const page = b.slice(0, size);
    const want = dv.getUint32(OFF_CRC, true);
    page.fill(0, OFF_CRC, OFF_CRC + 4);
    if (oggCrc(page) !== want) throw new DecodeError("bad-value", `Ogg page CRC ${hex(oggCrc(page), 4)}, expected ${hex(want, 4)}`);
    const type = b[OFF_TYPE]!;
    const granule = dv.getBigInt64(OFF_GRANULE, true);
    this.#buf = b.subarray(size);
    this.pages++;
    if (!(type & OGG_CONTINUED)) this.#dropPartial();
    const packets: OggPacket[] = [];
    let at = PAGE_HEADER_SIZE + nseg;
    let start = at;
    for (const l of lacing) {
      at += l;
      if (l === 255) continue;
      this.#partial.push(page.subarray(start, at));
      this.#partialBytes += at - start;
      packets.push({ data: this.#takePartial(), granule: -1n, bos: (type & OGG_BOS) !== 0, eos: false });
      start = at;
    }
    if (start < at) {
      this.#partialBytes += at - start;
      if (this.#partialBytes > MAX_OGG_PACKET) throw new DecodeError("bad-length", `Ogg packet longer than ${MAX_OGG_PACKET} bytes`);
      this.#partial.push(page.subarray(start, at));
    }
    const last = packets.at(-1);
    if (last) {
      last.granule = granule;
      last.eos = (type & OGG_EOS) !== 0;
    }
    return packets;
  }

  #takePartial(): Uint8Array {
    const data = this.#partial.length === 1 ? this.#partial[0]! : concatBytes(this.#partial);
    this.#dropPartial();
    return data;
  }

  #dropPartial(): void {
    this.#partial = [];
    this.#partialBytes = 0;
  }
}
