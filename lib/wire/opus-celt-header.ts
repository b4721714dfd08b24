/*
 * The first symbols of a CELT frame (RFC 6716 4.3, Table 56), read with the Opus range decoder
 * (RFC 6716 4.1). Only as far as the intra flag, which says whether the frame codes its band
 * energies on their own (intra) or as changes from the frame before:
 *
 *   symbol        PDF / how read            present when (tell = bits read so far)
 *   silence       {32767, 1}/32768          tell == 1 (the first symbol)
 *   post-filter   {1, 1}/2                  tell + 16 <= frame bits
 *     octave      uniform (6)               post-filter on
 *     period      4 + octave raw bits       post-filter on (read from the end; they count in tell)
 *     gain        3 raw bits                post-filter on
 *     tapset      {2, 1, 1}/4               post-filter on and tell + 2 <= frame bits
 *   transient     {7, 1}/8                  frames longer than 2.5 ms and tell + 3 <= frame bits
 *   intra         {7, 1}/8                  tell + 3 <= frame bits
 *
 * Only a CELT-only packet of one frame (TOC config 16..31, code 0) is read: in SILK and hybrid
 * packets SILK comes first, and further frames would need their lengths.
 */

/** What a CELT frame's header says. */
export interface CeltHeader {
  silence: boolean;
  postFilter: boolean;
  transient: boolean;
  /** The band energies are coded without the previous frame's (a decoder's state does not matter for them). */
  intra: boolean;
}

/** CELT-only configs are 16..31 (RFC 6716 Table 2). */
const FIRST_CELT_CONFIG = 16;
/** TOC config 16..31 in steps of 4 per bandwidth: 2.5, 5, 10, 20 ms (LM 0..3). */
const CELT_LM_MASK = 0x03;
const TAPSET_ICDF = [2, 1, 0] as const;

/** The range decoder of RFC 6716 4.1 (libopus entdec.c), over the front of one frame. */
class RangeDecoder {
  readonly #buf: Uint8Array;
  #offs = 0;
  #rng = 128; // 1 << EC_CODE_EXTRA
  #val: number;
  #rem: number;
  /** Bits counted so far, as libopus's nbits_total. */
  #bits = 9; // EC_CODE_BITS + 1 - ((EC_CODE_BITS - EC_CODE_EXTRA) / EC_SYM_BITS) * EC_SYM_BITS
  #ext = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
    this.#rem = this.#byte();
    this.#val = this.#rng - 1 - (this.#rem >> 1);
    this.#normalize();
  }

  /** Bits read so far, rounded up (ec_tell). */
  get tell(): number {
    return this.#bits - (32 - Math.clz32(this.#rng));
  }

  /** Counts `n` raw bits, which are read from the frame's end and do not touch the range coder. */
  skipRawBits(n: number): void {
    this.#bits += n;
  }

  bitLogp(logp: number): boolean {
    const s = this.#rng >>> logp;
    const one = this.#val < s;
    if (one) this.#rng = s;
    else {
      this.#val -= s;
      this.#rng -= s;
    }
    this.#normalize();
    return one;
  }

  icdf(icdf: readonly number[], ftb: number): number {
    let s = this.#rng;
    const r = s >>> ftb;
    let k = -1;
    let t: number;
    do {
      t = s;
      s = r * icdf[++k]!;
    } while (this.#val < s);
    this.#val -= s;
    this.#rng = t - s;
    this.#normalize();
    return k;
  }

  /** A value uniform in [0, ft), for ft <= 256. */
  uniform(ft: number): number {
    this.#ext = Math.floor(this.#rng / ft);
    const s = ft - Math.min(Math.floor(this.#val / this.#ext) + 1, ft);
    const step = this.#ext * (ft - (s + 1));
    this.#val -= step;
    this.#rng = s > 0 ? this.#ext : this.#rng - step;
    this.#normalize();
    return s;
  }

  #byte(): number {
    return this.#offs < this.#buf.length ? this.#buf[this.#offs++]! : 0;
  }

  #normalize(): void {
    while (this.#rng <= 1 << 23) {
      this.#bits += 8;
      this.#rng = (this.#rng * 256) >>> 0;
      const sym = this.#rem;
      this.#rem = this.#byte();
      const bits = ((sym << 8) | this.#rem) >> 1;
      this.#val = ((this.#val * 256 + (255 & ~bits)) >>> 0) & 0x7fffffff;
    }
  }
}

/**
 * The header of the one CELT frame in `packet`, or null when the packet is not a CELT-only
 * packet of one frame (or too short to say). Never throws.
 */
export function celtHeader(packet: Uint8Array): CeltHeader | null {
  if (packet.length < 2) return null;
  const toc = packet[0]!;
  const config = toc >> 3;
  if (config < FIRST_CELT_CONFIG || (toc & 0x03) !== 0) return null;
  const lm = config & CELT_LM_MASK;
  const frame = packet.subarray(1);
  const total = frame.length * 8;
  const d = new RangeDecoder(frame);
  const out: CeltHeader = { silence: false, postFilter: false, transient: false, intra: false };
  // As libopus's celt_decode_with_ec: `tell` is updated only where it is.
  let tell = d.tell;
  if (tell >= total || (tell === 1 && d.bitLogp(15))) return { ...out, silence: true };
  if (tell + 16 <= total) {
    if (d.bitLogp(1)) {
      out.postFilter = true;
      const octave = d.uniform(6);
      d.skipRawBits(4 + octave + 3);
      if (d.tell + 2 <= total) d.icdf(TAPSET_ICDF, 2);
    }
    tell = d.tell;
  }
  if (lm > 0 && tell + 3 <= total) {
    out.transient = d.bitLogp(3);
    tell = d.tell;
  }
  if (tell + 3 <= total) out.intra = d.bitLogp(3);
  return out;
}
