import { DecodeError, hex } from "./decode-error.ts";

/*
 * One UDP datagram carries one fragment of one frame. All fields big-endian.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        magic "LC" 0x4C43      |  version = 1  |R R R R|type |E|   0
 * +-------------------------------+---------------+-------+-----+-+
 * |                          session id                           |   4
 * +---------------------------------------------------------------+
 * |                         frame number                          |   8
 * +-------------------------------+-------------------------------+
 * |        fragment index         |        fragment count         |  12
 * +-------------------------------+-------------------------------+
 * |                   frame length (bytes, >= 1)                  |  16
 * +-------------------------------+-------------------------------+
 * |   fragment size (bytes, >= 1) | key id (E set) or reserved (0)|  20
 * +-------------------------------+-------------------------------+
 * |                                                               |  24
 * +            capture time, µs since the Unix epoch (u64)        +
 * |                                                               |  28
 * +---------------------------------------------------------------+
 * |                        payload ...                            |  32
 * +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+
 * |        AES-256-GCM tag, 16 bytes (only when E is set)         |
 *
 * flags: E (bit 0) = payload encrypted: the fragment's bytes are AES-256-GCM
 *        ciphertext under the stream key named by the key id, followed by the tag;
 *        type (bits 1-3) = payload type, 0 = JPEG, 1 = FEC parity (another header:
 *        lib/wire/fec.ts; decodeDatagram rejects it), 2 = one Opus packet (the same
 *        header, one fragment: lib/wire/audio-datagram.ts); R (bits 4-7) must be 0.
 * session id: the welcome's session id on datagrams sent to one viewer; the welcome's
 *   stream id on datagrams sent once to a multicast group for every viewer in it.
 * frame length, fragment size: plaintext bytes, with or without E; the tag is extra.
 * fragment size: payload bytes of every fragment but the last, which carries the rest.
 *   It makes each datagram checkable on its own: count = ceil(length / size) and the
 *   payload length follows from index, count, size and length (+ 16 when E is set).
 */

/** "LC" as a big-endian u16. */
export const MAGIC = 0x4c43;
/** Datagram format version this build speaks. */
export const VERSION = 1;
/** Bytes before the payload. */
export const HEADER_SIZE = 32;

const OFF_MAGIC = 0;
const OFF_VERSION = 2;
const OFF_FLAGS = 3;
const OFF_SESSION = 4;
const OFF_FRAME = 8;
const OFF_INDEX = 12;
const OFF_COUNT = 14;
const OFF_LENGTH = 16;
const OFF_FRAGMENT_SIZE = 20;
const OFF_KEY_ID = 22;
const OFF_CAPTURED = 24;

/** flags bit 0: the payload is AES-256-GCM ciphertext followed by its tag. */
export const FLAG_ENCRYPTED = 0x01;
/** Bytes of the GCM tag after an encrypted fragment. */
export const TAG_SIZE = 16;
/** Where the session id sits: the one header field the frame's encryption does not cover. */
export const SESSION_ID_OFFSET = 4;
/** Bytes of the session id field. */
export const SESSION_ID_SIZE = 4;
const PAYLOAD_TYPE_SHIFT = 1;
const PAYLOAD_TYPE_MASK = 0x0e;
const RESERVED_FLAGS_MASK = 0xf0;

/** Payload types (flags bits 1-3). */
export const PayloadType = { Jpeg: 0, Parity: 1, Opus: 2 } as const;
export type PayloadType = (typeof PayloadType)[keyof typeof PayloadType];

/** Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP). */
export const MAX_DATAGRAM_SIZE = 65507;
/** Smallest datagram budget a sender may use: the IPv4 minimum reassembly size. */
export const MIN_MTU = 576;
/** Largest datagram budget: one maximal UDP payload. */
export const MAX_MTU = MAX_DATAGRAM_SIZE;
/**
 * The default budget: under Ethernet's 1472 (1500 - 20 IP - 8 UDP) with room for a
 * VPN, PPPoE or VLAN header, so no datagram is fragmented on a typical LAN.
 */
export const DEFAULT_MTU = 1400;
/** Largest fragment size the format allows. */
export const MAX_FRAGMENT_SIZE = MAX_DATAGRAM_SIZE - HEADER_SIZE;
/** Most fragments per frame (u16 count). */
export const MAX_FRAGMENTS = 0xffff;
/** Largest frame either side handles (a 4K JPEG at high quality stays well below). */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Capture times must survive the u64 to Number conversion exactly. */
export const MAX_CAPTURE_TIME = Number.MAX_SAFE_INTEGER;

/** The decoded fixed header of one datagram. */
export interface DatagramHeader {
  /** Payload is AES-256-GCM ciphertext of the fragment, then a TAG_SIZE tag. */
  encrypted: boolean;
  /** The stream key that encrypted it: present exactly when `encrypted` is. */
  keyId?: number;
  payloadType: PayloadType;
  sessionId: number;
  frameNumber: number;
  /** 0-based position of this fragment in its frame. */
  fragmentIndex: number;
  fragmentCount: number;
  /** Bytes in the whole frame (plaintext: tags are not counted). */
  frameLength: number;
  /** Frame bytes in every fragment but the last (plaintext: tags are not counted). */
  fragmentSize: number;
  /** Capture time, µs since the Unix epoch. */
  capturedAt: number;
}

/** A decoded datagram; `payload` (ciphertext and tag when encrypted) is a view into the input, not a copy. */
export interface Datagram {
  header: DatagramHeader;
  payload: Uint8Array;
}

/** Fragments needed for `frameLength` bytes cut into `fragmentSize` pieces. */
export function fragmentCountFor(frameLength: number, fragmentSize: number): number {
  return Math.ceil(frameLength / fragmentSize);
}

/** Frame bytes that fragment `index` of such a frame carries (its payload, less the tag when encrypted). */
export function fragmentPayloadLength(h: Pick<DatagramHeader, "fragmentIndex" | "fragmentCount" | "fragmentSize" | "frameLength">): number {
  return h.fragmentIndex < h.fragmentCount - 1 ? h.fragmentSize : h.frameLength - (h.fragmentCount - 1) * h.fragmentSize;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`datagram ${name}=${v}: expected an integer ${min}..${max}`);
}

/**
 * Writes the header for `h` at `into[offset]`; returns the offset just past it.
 * Throws RangeError for values the format cannot carry (a bug in the sender).
 */
export function encodeDatagramHeader(into: Uint8Array, offset: number, h: DatagramHeader): number {
  checkInt("offset", offset, 0, Number.MAX_SAFE_INTEGER);
  if (into.length - offset < HEADER_SIZE) throw new RangeError(`datagram header needs ${HEADER_SIZE} bytes at offset ${offset}, buffer has ${into.length}`);
  if (h.payloadType !== PayloadType.Jpeg && h.payloadType !== PayloadType.Opus) throw new RangeError(`datagram payloadType=${h.payloadType}: expected JPEG (0) or Opus (2)`);
  checkInt("sessionId", h.sessionId, 0, 0xffffffff);
  checkInt("frameNumber", h.frameNumber, 0, 0xffffffff);
  checkInt("frameLength", h.frameLength, 1, 0xffffffff);
  checkInt("fragmentSize", h.fragmentSize, 1, MAX_FRAGMENT_SIZE);
  checkInt("fragmentCount", h.fragmentCount, 1, MAX_FRAGMENTS);
  checkInt("fragmentIndex", h.fragmentIndex, 0, h.fragmentCount - 1);
  checkInt("capturedAt", h.capturedAt, 0, MAX_CAPTURE_TIME);
  checkInt("keyId", h.keyId ?? 0, 0, h.encrypted ? 0xffff : 0);
  const expected = fragmentCountFor(h.frameLength, h.fragmentSize);
  if (h.fragmentCount !== expected) {
    throw new RangeError(`datagram fragmentCount=${h.fragmentCount}: ${h.frameLength} bytes in ${h.fragmentSize}-byte fragments need ${expected}`);
  }
  const dv = new DataView(into.buffer, into.byteOffset + offset, HEADER_SIZE);
  dv.setUint16(OFF_MAGIC, MAGIC);
  dv.setUint8(OFF_VERSION, VERSION);
  dv.setUint8(OFF_FLAGS, (h.encrypted ? FLAG_ENCRYPTED : 0) | (h.payloadType << PAYLOAD_TYPE_SHIFT));
  dv.setUint32(OFF_SESSION, h.sessionId);
  dv.setUint32(OFF_FRAME, h.frameNumber);
  dv.setUint16(OFF_INDEX, h.fragmentIndex);
  dv.setUint16(OFF_COUNT, h.fragmentCount);
  dv.setUint32(OFF_LENGTH, h.frameLength);
  dv.setUint16(OFF_FRAGMENT_SIZE, h.fragmentSize);
  dv.setUint16(OFF_KEY_ID, h.keyId ?? 0);
  dv.setBigUint64(OFF_CAPTURED, BigInt(h.capturedAt));
  return offset + HEADER_SIZE;
}

/**
 * Rewrites only the fragment index of a header already at `into[offset]`: the other
 * fields of a frame's datagrams are the same, so a sender encodes (and checks) the
 * header once per frame and copies it.
 */
export function setFragmentIndex(into: Uint8Array, offset: number, index: number): void {
  into[offset + OFF_INDEX] = index >>> 8;
  into[offset + OFF_INDEX + 1] = index & 0xff;
}

/**
 * The payload type of a datagram that starts with our magic and version, or null for
 * anything else: a receiver dispatches on it (JPEG to decodeDatagram, parity to
 * lib/wire/fec.ts) before decoding.
 */
export function payloadTypeOf(bytes: Uint8Array): number | null {
  if (bytes.length < HEADER_SIZE) return null;
  if (((bytes[OFF_MAGIC]! << 8) | bytes[OFF_MAGIC + 1]!) !== MAGIC || bytes[OFF_VERSION] !== VERSION) return null;
  return (bytes[OFF_FLAGS]! & PAYLOAD_TYPE_MASK) >> PAYLOAD_TYPE_SHIFT;
}

/**
 * Decodes one datagram. Checks everything one datagram can tell on its own,
 * including that the payload length matches index, count, size and frame length;
 * whether fragments of one frame agree with each other is the reassembler's job.
 * `accept`: the payload type wanted (JPEG; the audio codec asks for Opus). Throws DecodeError.
 */
export function decodeDatagram(bytes: Uint8Array, accept: PayloadType = PayloadType.Jpeg): Datagram {
  if (bytes.length < HEADER_SIZE) {
    throw new DecodeError("truncated", `datagram of ${bytes.length} (${hex(bytes.length, 2)}) bytes is shorter than the ${HEADER_SIZE}-byte header`);
  }
  if (bytes.length > MAX_DATAGRAM_SIZE) {
    throw new DecodeError("bad-length", `datagram of ${bytes.length} (${hex(bytes.length, 4)}) bytes exceeds ${MAX_DATAGRAM_SIZE}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const magic = dv.getUint16(OFF_MAGIC);
  if (magic !== MAGIC) throw new DecodeError("bad-magic", `datagram magic ${hex(magic, 2)}, expected ${hex(MAGIC, 2)} ("LC")`);
  const version = dv.getUint8(OFF_VERSION);
  if (version !== VERSION) throw new DecodeError("bad-version", `datagram version ${hex(version)}, this build speaks ${hex(VERSION)}`);
  const flags = dv.getUint8(OFF_FLAGS);
  if (flags & RESERVED_FLAGS_MASK) throw new DecodeError("bad-value", `datagram flags ${hex(flags)} set reserved bits ${hex(flags & RESERVED_FLAGS_MASK)}`);
  const payloadType = (flags & PAYLOAD_TYPE_MASK) >> PAYLOAD_TYPE_SHIFT;
  if (payloadType !== accept) throw new DecodeError("bad-type", `datagram payload type ${hex(payloadType)} is unknown (flags ${hex(flags)})`);
  const encrypted = (flags & FLAG_ENCRYPTED) !== 0;
  const keyId = dv.getUint16(OFF_KEY_ID);
  if (!encrypted && keyId !== 0) throw new DecodeError("bad-value", `datagram reserved field ${hex(keyId, 2)}, expected 0 without encryption`);

  const frameLength = dv.getUint32(OFF_LENGTH);
  if (frameLength === 0) throw new DecodeError("bad-length", `datagram frame length ${hex(frameLength, 4)}: a frame has at least one byte`);
  const fragmentSize = dv.getUint16(OFF_FRAGMENT_SIZE);
  if (fragmentSize === 0 || fragmentSize > MAX_FRAGMENT_SIZE) {
    throw new DecodeError("bad-value", `datagram fragment size ${hex(fragmentSize, 2)}: expected 1..${MAX_FRAGMENT_SIZE}`);
  }
  const fragmentCount = dv.getUint16(OFF_COUNT);
  const expectedCount = fragmentCountFor(frameLength, fragmentSize);
  if (fragmentCount !== expectedCount) {
    throw new DecodeError(
      "bad-value",
      `datagram fragment count ${hex(fragmentCount, 2)}: frame length ${hex(frameLength, 4)} in ${hex(fragmentSize, 2)}-byte fragments needs ${hex(expectedCount, 2)}`,
    );
  }
  const fragmentIndex = dv.getUint16(OFF_INDEX);
  if (fragmentIndex >= fragmentCount) {
    throw new DecodeError("bad-value", `datagram fragment index ${hex(fragmentIndex, 2)} not below count ${hex(fragmentCount, 2)}`);
  }
  const captured = dv.getBigUint64(OFF_CAPTURED);
  if (captured > BigInt(MAX_CAPTURE_TIME)) {
    throw new DecodeError("bad-value", `datagram capture time ${hex(captured, 8)} exceeds 2^53-1 µs`);
  }
  const header: DatagramHeader = {
    encrypted,
    payloadType: accept,
    sessionId: dv.getUint32(OFF_SESSION),
    frameNumber: dv.getUint32(OFF_FRAME),
    fragmentIndex,
    fragmentCount,
    frameLength,
    fragmentSize,
    capturedAt: Number(captured),
  };
  if (encrypted) header.keyId = keyId;
  const payloadLength = bytes.length - HEADER_SIZE;
  const expectedPayload = fragmentPayloadLength(header) + (encrypted ? TAG_SIZE : 0);
  if (payloadLength !== expectedPayload) {
    throw new DecodeError(
      payloadLength < expectedPayload ? "truncated" : "bad-length",
      `datagram payload of ${hex(payloadLength, 2)} bytes, fragment ${fragmentIndex}/${fragmentCount} of a ${frameLength}-byte frame carries ${hex(expectedPayload, 2)}${encrypted ? " with its tag" : ""}`,
    );
  }
  return { header, payload: bytes.subarray(HEADER_SIZE) };
}
