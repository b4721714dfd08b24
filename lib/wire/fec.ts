import {
  decodeDatagram,
  encodeDatagramHeader,
  fragmentCountFor,
  fragmentPayloadLength,
  FLAG_ENCRYPTED,
  HEADER_SIZE,
  MAGIC,
  MAX_CAPTURE_TIME,
  MAX_DATAGRAM_SIZE,
  MAX_FRAGMENT_SIZE,
  PayloadType,
  TAG_SIZE,
  VERSION,
  type DatagramHeader,
} from "./datagram.ts";
import { DecodeError, hex } from "./decode-error.ts";

/*
 * A parity datagram (payload type 1): the XOR of a group of one frame's datagram
 * payloads, so a receiver that lost any one datagram of the group rebuilds it
 * byte-exact (SMPTE 2022-1's column FEC over one frame). All fields big-endian.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        magic "LC" 0x4C43      |  version = 1  |0 0 0 0|0 0 1|E|   0
 * +-------------------------------+---------------+-------+-----+-+
 * |                          session id                           |   4
 * +---------------------------------------------------------------+
 * |                         frame number                          |   8
 * +-------------------------------+-------------------------------+
 * |  parity index i (0..L-1)      |  interleave L (1..count)      |  12
 * +-------------------------------+-------------------------------+
 * |                   frame length (bytes, >= 1)                  |  16
 * +-------------------------------+-------------------------------+
 * |   fragment size (bytes, >= 1) | key id (E set) or reserved (0)|  20
 * +-------------------------------+-------------------------------+
 * |            capture time, µs since the Unix epoch (u64)        |  24
 * +---------------------------------------------------------------+
 * |   parity: XOR of the payloads of fragments i, i+L, i+2L, ...  |  32
 * +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+
 *
 * Every field but the two at 12 is the frame's, exactly as in its datagrams, so a
 * rebuilt datagram's header is the one that was sent. With E the payloads are the
 * ciphertext and tag as sent: the receiver decrypts (and so checks) a rebuilt
 * fragment like any other, and a forged parity only yields a fragment that fails its tag.
 * A shorter payload (the frame's last fragment) counts as padded with zeros; the parity
 * is as long as the group's longest payload, which index, L and the frame fields give.
 */

/** The decoded header of a parity datagram. */
export interface ParityHeader {
  encrypted: boolean;
  /** Present exactly when `encrypted` is. */
  keyId?: number;
  sessionId: number;
  frameNumber: number;
  /** This parity covers fragments index, index + stride, index + 2 stride, ... */
  parityIndex: number;
  /** L: parities per frame, and the distance between the fragments one covers. */
  stride: number;
  frameLength: number;
  fragmentSize: number;
  capturedAt: number;
}

/** A decoded parity datagram; `parity` is a view into the input. */
export interface ParityDatagram {
  header: ParityHeader;
  parity: Uint8Array;
}

/** What one parity could do for its group, given the payloads a receiver holds. */
export type Recovery =
  | { kind: "complete" }
  | { kind: "recovered"; index: number; datagram: Uint8Array }
  | { kind: "unrecoverable"; missing: number[] };

const OFF_FLAGS = 3;
const OFF_SESSION = 4;
const OFF_FRAME = 8;
const OFF_PARITY_INDEX = 12;
const OFF_STRIDE = 14;
const OFF_LENGTH = 16;
const OFF_FRAGMENT_SIZE = 20;
const OFF_KEY_ID = 22;
const OFF_CAPTURED = 24;
const PARITY_FLAGS = PayloadType.Parity << 1;

/** The fragment count of the frame a parity belongs to. */
export function parityFragmentCount(h: Pick<ParityHeader, "frameLength" | "fragmentSize">): number {
  return fragmentCountFor(h.frameLength, h.fragmentSize);
}

/** Fragment indexes parity `parityIndex` of `stride` covers in a frame of `count` fragments. */
export function coveredIndexes(parityIndex: number, stride: number, count: number): number[] {
  const out: number[] = [];
  for (let i = parityIndex; i < count; i += stride) out.push(i);
  return out;
}

/** The payload length (tag included with E) of fragment `index` of the parity's frame. */
function payloadLength(h: ParityHeader, index: number, count: number): number {
  const n = fragmentPayloadLength({ fragmentIndex: index, fragmentCount: count, fragmentSize: h.fragmentSize, frameLength: h.frameLength });
  return n + (h.encrypted ? TAG_SIZE : 0);
}

/** Bytes of the parity: the longest payload it covers (only a group of the last fragment alone is shorter). */
export function parityLength(h: ParityHeader): number {
  const count = parityFragmentCount(h);
  const onlyLast = h.parityIndex === count - 1;
  return payloadLength(h, onlyLast ? count - 1 : h.parityIndex, count);
}

/**
 * The `stride` parity datagrams of one frame, from its datagrams exactly as sent (all of
 * them, in index order, one session id). Throws Error for datagrams that are not one
 * whole frame, RangeError for a stride outside 1..count.
 */
export function encodeParity(datagrams: readonly Uint8Array[], stride: number): Uint8Array[] {
  if (datagrams.length === 0) throw new Error("no datagrams to protect");
  const first = decodeDatagram(datagrams[0]!).header;
  const count = first.fragmentCount;
  if (datagrams.length !== count) throw new Error(`frame ${first.frameNumber} has ${count} fragments, ${datagrams.length} datagrams given`);
  if (!Number.isInteger(stride) || stride < 1 || stride > count) throw new RangeError(`parity stride=${stride}: expected an integer 1..${count}`);
  const base: ParityHeader = {
    encrypted: first.encrypted,
    sessionId: first.sessionId,
    frameNumber: first.frameNumber,
    parityIndex: 0,
    stride,
    frameLength: first.frameLength,
    fragmentSize: first.fragmentSize,
    capturedAt: first.capturedAt,
  };
  if (first.encrypted) base.keyId = first.keyId;
  const out: Uint8Array[] = [];
  for (let p = 0; p < stride; p++) {
    const h = { ...base, parityIndex: p };
    const bytes = new Uint8Array(HEADER_SIZE + parityLength(h));
    writeParityHeader(bytes, h);
    const parity = bytes.subarray(HEADER_SIZE);
    for (const i of coveredIndexes(p, stride, count)) {
      const d = decodeDatagram(datagrams[i]!);
      if (d.header.frameNumber !== first.frameNumber || d.header.fragmentIndex !== i) {
        throw new Error(`datagram ${i} is fragment ${d.header.fragmentIndex} of frame ${d.header.frameNumber}, expected fragment ${i} of frame ${first.frameNumber}`);
      }
      xorInto(parity, d.payload);
    }
    out.push(bytes);
  }
  return out;
}

function writeParityHeader(into: Uint8Array, h: ParityHeader): void {
  const dv = new DataView(into.buffer, into.byteOffset, HEADER_SIZE);
  dv.setUint16(0, MAGIC);
  dv.setUint8(2, VERSION);
  dv.setUint8(OFF_FLAGS, PARITY_FLAGS | (h.encrypted ? FLAG_ENCRYPTED : 0));
  dv.setUint32(OFF_SESSION, h.sessionId);
  dv.setUint32(OFF_FRAME, h.frameNumber);
  dv.setUint16(OFF_PARITY_INDEX, h.parityIndex);
  dv.setUint16(OFF_STRIDE, h.stride);
  dv.setUint32(OFF_LENGTH, h.frameLength);
  dv.setUint16(OFF_FRAGMENT_SIZE, h.fragmentSize);
  dv.setUint16(OFF_KEY_ID, h.keyId ?? 0);
  dv.setBigUint64(OFF_CAPTURED, BigInt(h.capturedAt));
}

function xorInto(acc: Uint8Array, b: Uint8Array): void {
  const n = Math.min(acc.length, b.length);
  for (let k = 0; k < n; k++) acc[k]! ^= b[k]!;
}

/** Decodes one parity datagram, checking everything it can tell on its own. Throws DecodeError. */
export function decodeParity(bytes: Uint8Array): ParityDatagram {
  if (bytes.length < HEADER_SIZE) throw new DecodeError("truncated", `parity datagram of ${hex(bytes.length, 2)} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  if (bytes.length > MAX_DATAGRAM_SIZE) throw new DecodeError("bad-length", `parity datagram of ${hex(bytes.length, 4)} bytes exceeds ${MAX_DATAGRAM_SIZE}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const magic = dv.getUint16(0);
  if (magic !== MAGIC) throw new DecodeError("bad-magic", `parity datagram magic ${hex(magic, 2)}, expected ${hex(MAGIC, 2)} ("LC")`);
  const version = dv.getUint8(2);
  if (version !== VERSION) throw new DecodeError("bad-version", `parity datagram version ${hex(version)}, this build speaks ${hex(VERSION)}`);
  const flags = dv.getUint8(OFF_FLAGS);
  if ((flags & ~FLAG_ENCRYPTED) !== PARITY_FLAGS) throw new DecodeError("bad-type", `datagram flags ${hex(flags)} are not a parity datagram's`);
  const encrypted = (flags & FLAG_ENCRYPTED) !== 0;
  const keyId = dv.getUint16(OFF_KEY_ID);
  if (!encrypted && keyId !== 0) throw new DecodeError("bad-value", `parity reserved field ${hex(keyId, 2)}, expected 0 without encryption`);
  const frameLength = dv.getUint32(OFF_LENGTH);
  if (frameLength === 0) throw new DecodeError("bad-length", `parity frame length ${hex(frameLength, 4)}: a frame has at least one byte`);
  const fragmentSize = dv.getUint16(OFF_FRAGMENT_SIZE);
  if (fragmentSize === 0 || fragmentSize > MAX_FRAGMENT_SIZE) throw new DecodeError("bad-value", `parity fragment size ${hex(fragmentSize, 2)}: expected 1..${MAX_FRAGMENT_SIZE}`);
  const count = fragmentCountFor(frameLength, fragmentSize);
  if (count > 0xffff) throw new DecodeError("bad-value", `parity frame length ${hex(frameLength, 4)} in ${hex(fragmentSize, 2)}-byte fragments needs ${count} fragments, above 0xffff`);
  const stride = dv.getUint16(OFF_STRIDE);
  if (stride < 1 || stride > count) throw new DecodeError("bad-value", `parity interleave ${hex(stride, 2)} outside 1..${count} (the frame's fragments)`);
  const parityIndex = dv.getUint16(OFF_PARITY_INDEX);
  if (parityIndex >= stride) throw new DecodeError("bad-value", `parity index ${hex(parityIndex, 2)} not below its interleave ${hex(stride, 2)}`);
  const captured = dv.getBigUint64(OFF_CAPTURED);
  if (captured > BigInt(MAX_CAPTURE_TIME)) throw new DecodeError("bad-value", `parity capture time ${hex(captured, 8)} exceeds 2^53-1 µs`);
  const header: ParityHeader = {
    encrypted,
    sessionId: dv.getUint32(OFF_SESSION),
    frameNumber: dv.getUint32(OFF_FRAME),
    parityIndex,
    stride,
    frameLength,
    fragmentSize,
    capturedAt: Number(captured),
  };
  if (encrypted) header.keyId = keyId;
  const want = parityLength(header);
  const got = bytes.length - HEADER_SIZE;
  if (got !== want) {
    throw new DecodeError(got < want ? "truncated" : "bad-length", `parity of ${hex(got, 2)} bytes, group ${parityIndex}/${stride} of a ${frameLength}-byte frame needs ${hex(want, 2)}`);
  }
  return { header, parity: bytes.subarray(HEADER_SIZE) };
}

/**
 * What `p` can do given the payloads held for its frame (`payloadOf(i)`: fragment i's
 * payload as received, or undefined when missing). With exactly one covered fragment
 * missing, the whole datagram as sent (header with `p`'s session id, then payload) is
 * rebuilt; with two or more, the group cannot be repaired and says which are missing.
 */
export function recoverWithParity(p: ParityDatagram, payloadOf: (index: number) => Uint8Array | undefined): Recovery {
  const h = p.header;
  const count = parityFragmentCount(h);
  const missing: number[] = [];
  for (const i of coveredIndexes(h.parityIndex, h.stride, count)) if (payloadOf(i) === undefined) missing.push(i);
  if (missing.length === 0) return { kind: "complete" };
  if (missing.length > 1) return { kind: "unrecoverable", missing };
  const index = missing[0]!;
  const acc = new Uint8Array(p.parity);
  for (const i of coveredIndexes(h.parityIndex, h.stride, count)) {
    const payload = payloadOf(i);
    if (payload !== undefined) xorInto(acc, payload);
  }
  const n = payloadLength(h, index, count);
  const datagram = new Uint8Array(HEADER_SIZE + n);
  const dh: DatagramHeader = {
    encrypted: h.encrypted,
    payloadType: PayloadType.Jpeg,
    sessionId: h.sessionId,
    frameNumber: h.frameNumber,
    fragmentIndex: index,
    fragmentCount: count,
    frameLength: h.frameLength,
    fragmentSize: h.fragmentSize,
    capturedAt: h.capturedAt,
  };
  if (h.encrypted) dh.keyId = h.keyId;
  encodeDatagramHeader(datagram, 0, dh);
  datagram.set(acc.subarray(0, n), HEADER_SIZE);
  return { kind: "recovered", index, datagram };
}
