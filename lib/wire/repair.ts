import { DecodeError, hex } from "./decode-error.ts";

/*
 * Loss repair on the TCP control connection (docs/protocol.md §2.14, §2.15): the
 * bodies of two control messages; control.ts frames and tags them. All fields big-endian.
 *
 * repair (12, client to server): the datagrams of these frames did not arrive
 * +---------------+---------------+
 * |  entry count  | reserved (0)  |   0       count 1..MAX_REPAIR_ENTRIES
 * +---------------+---------------+-------------------------------+
 * |                         frame number                          |   2 + 8k
 * +-------------------------------+-------------------------------+
 * |      first missing index      |   mask: bit b = index         |   6 + 8k
 * |                               |   first + 1 + b missing too   |
 * +-------------------------------+-------------------------------+
 * One entry names up to 17 fragment indexes of one frame (RFC 4585's generic NACK
 * shape); a frame with more missing takes several entries.
 *
 * gone (13, server to client): these frames will not be repaired
 * +---------------+---------------+
 * |  reason code  |  frame count  |   0       count 1..MAX_GONE_FRAMES
 * +---------------+---------------+-------------------------------+
 * |                         frame number                          |   2 + 4k
 * +---------------------------------------------------------------+
 */

/** Most entries in one repair message: 2 + 64 * 8 = 514 body bytes, well inside a control message. */
export const MAX_REPAIR_ENTRIES = 64;
/** Most frames one gone message names. */
export const MAX_GONE_FRAMES = 64;
/** Fragment indexes one entry can name: the first and the 16 of its mask. */
export const INDEXES_PER_ENTRY = 17;
/** Highest fragment index the datagram format allows (its count is a u16, at most 0xffff). */
const MAX_INDEX = 0xfffe;
const REPAIR_FIXED = 2;
const REPAIR_ENTRY_SIZE = 8;
const GONE_FIXED = 2;
const GONE_FRAME_SIZE = 4;

/** One frame's missing fragments: `first`, and first + 1 + b for every bit b of `mask`. */
export interface RepairEntry {
  frameNumber: number;
  first: number;
  /** u16; bit b (value 1 << b) names fragment first + 1 + b. */
  mask: number;
}

/** The body of a repair message (type 12). */
export interface RepairBody {
  entries: RepairEntry[];
}

/** Why the server will not repair a frame. */
export const GoneReason = {
  /** The server no longer holds the frame (older than its retransmission window). */
  Expired: 1,
  /** The viewer asked for more than its repair budget allows. */
  OverBudget: 2,
  /** The frame was never sent to this viewer: skipped, its path full (pacing), or before it joined. */
  Skipped: 3,
} as const;
export type GoneReason = (typeof GoneReason)[keyof typeof GoneReason];

const GONE_TEXT: Record<number, string> = {
  [GoneReason.Expired]: "no longer held",
  [GoneReason.OverBudget]: "over the repair budget",
  [GoneReason.Skipped]: "not sent to this viewer",
};

/** Human text for a gone reason code (unknown codes say so, with the code in hex). */
export function goneReasonText(code: number): string {
  return GONE_TEXT[code] ?? `unknown gone reason ${hex(code)}`;
}

/** The body of a gone message (type 13). */
export interface GoneBody {
  reason: GoneReason;
  frames: number[];
}

/** The fragment indexes an entry names, ascending. */
export function entryIndexes(e: RepairEntry): number[] {
  const out = [e.first];
  for (let b = 0; b < 16; b++) if (e.mask & (1 << b)) out.push(e.first + 1 + b);
  return out;
}

/**
 * Packs one frame's missing indexes (any order, duplicates ignored) into as few
 * entries as the format allows.
 */
export function entriesFor(frameNumber: number, indexes: Iterable<number>): RepairEntry[] {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const out: RepairEntry[] = [];
  let cur: RepairEntry | null = null;
  for (const i of sorted) {
    if (cur && i - cur.first <= 16) {
      cur.mask |= 1 << (i - cur.first - 1);
      continue;
    }
    cur = { frameNumber, first: i, mask: 0 };
    out.push(cur);
  }
  return out;
}

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what}=${v}: expected an integer ${min}..${max}`);
}

/** The highest index an entry names. */
function lastIndex(e: RepairEntry): number {
  return e.mask === 0 ? e.first : e.first + 1 + (31 - Math.clz32(e.mask));
}

/** Body bytes of a repair message. Throws RangeError for values the format cannot carry. */
export function encodeRepairBody(msg: RepairBody): Uint8Array {
  checkInt("repair entries", msg.entries.length, 1, MAX_REPAIR_ENTRIES);
  const out = new Uint8Array(REPAIR_FIXED + msg.entries.length * REPAIR_ENTRY_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, msg.entries.length);
  msg.entries.forEach((e, k) => {
    checkInt("repair frameNumber", e.frameNumber, 0, 0xffffffff);
    checkInt("repair first", e.first, 0, MAX_INDEX);
    checkInt("repair mask", e.mask, 0, 0xffff);
    if (lastIndex(e) > MAX_INDEX) throw new RangeError(`repair entry first=${e.first} mask=${hex(e.mask, 2)} names index ${lastIndex(e)} above ${MAX_INDEX}`);
    const at = REPAIR_FIXED + k * REPAIR_ENTRY_SIZE;
    dv.setUint32(at, e.frameNumber);
    dv.setUint16(at + 4, e.first);
    dv.setUint16(at + 6, e.mask);
  });
  return out;
}

/** Decodes a repair body (the bytes between type and tag). Throws DecodeError. */
export function decodeRepairBody(body: Uint8Array): RepairBody {
  if (body.length < REPAIR_FIXED) throw new DecodeError("truncated", `repair body of ${hex(body.length)} bytes ends inside its entry count`);
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const count = dv.getUint8(0);
  if (count < 1 || count > MAX_REPAIR_ENTRIES) throw new DecodeError("bad-value", `repair entry count ${hex(count)} outside 1..${MAX_REPAIR_ENTRIES}`);
  const reserved = dv.getUint8(1);
  if (reserved !== 0) throw new DecodeError("bad-value", `repair reserved field ${hex(reserved)}, expected 0`);
  const size = REPAIR_FIXED + count * REPAIR_ENTRY_SIZE;
  if (body.length < size) throw new DecodeError("truncated", `repair body of ${hex(body.length, 2)} bytes, ${count} entries need ${hex(size, 2)}`);
  if (body.length > size) throw new DecodeError("bad-length", `repair body has ${hex(body.length - size, 2)} trailing bytes after ${count} entries`);
  const entries: RepairEntry[] = [];
  for (let k = 0; k < count; k++) {
    const at = REPAIR_FIXED + k * REPAIR_ENTRY_SIZE;
    const e = { frameNumber: dv.getUint32(at), first: dv.getUint16(at + 4), mask: dv.getUint16(at + 6) };
    if (lastIndex(e) > MAX_INDEX) throw new DecodeError("bad-value", `repair entry first ${hex(e.first, 2)} mask ${hex(e.mask, 2)} names an index above ${hex(MAX_INDEX, 2)}`);
    entries.push(e);
  }
  return { entries };
}

/** Body bytes of a gone message. Throws RangeError for values the format cannot carry. */
export function encodeGoneBody(msg: GoneBody): Uint8Array {
  if (!Object.hasOwn(GONE_TEXT, msg.reason)) throw new RangeError(`gone reason=${msg.reason} is not a known reason code`);
  checkInt("gone frames", msg.frames.length, 1, MAX_GONE_FRAMES);
  const out = new Uint8Array(GONE_FIXED + msg.frames.length * GONE_FRAME_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, msg.reason);
  dv.setUint8(1, msg.frames.length);
  msg.frames.forEach((f, k) => {
    checkInt("gone frameNumber", f, 0, 0xffffffff);
    dv.setUint32(GONE_FIXED + k * GONE_FRAME_SIZE, f);
  });
  return out;
}

/** Decodes a gone body. Throws DecodeError. */
export function decodeGoneBody(body: Uint8Array): GoneBody {
  if (body.length < GONE_FIXED) throw new DecodeError("truncated", `gone body of ${hex(body.length)} bytes ends inside its reason and count`);
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const reason = dv.getUint8(0);
  if (!Object.hasOwn(GONE_TEXT, reason)) throw new DecodeError("bad-value", `gone reason ${hex(reason)} is unknown`);
  const count = dv.getUint8(1);
  if (count < 1 || count > MAX_GONE_FRAMES) throw new DecodeError("bad-value", `gone frame count ${hex(count)} outside 1..${MAX_GONE_FRAMES}`);
  const size = GONE_FIXED + count * GONE_FRAME_SIZE;
  if (body.length < size) throw new DecodeError("truncated", `gone body of ${hex(body.length, 2)} bytes, ${count} frames need ${hex(size, 2)}`);
  if (body.length > size) throw new DecodeError("bad-length", `gone body has ${hex(body.length - size, 2)} trailing bytes after ${count} frames`);
  const frames: number[] = [];
  for (let k = 0; k < count; k++) frames.push(dv.getUint32(GONE_FIXED + k * GONE_FRAME_SIZE));
  return { reason: reason as GoneReason, frames };
}
