/**
 * Cuts the MPEG transport stream of the shared H.264 encoder into frames, so one encoding can be
 * handed to several publish targets, each joining (or, after falling behind, resuming) at a
 * keyframe.
 *
 * The encoder runs with `-mpegts_flags +pat_pmt_at_frames`, so every frame is
 *
 *   PAT  PMT  [SDT]  PES start (video, random access flag on keyframes)  PES continuation ...
 *
 * and a frame begins at the first table packet (or PES start) after the previous frame's data.
 * Each frame is therefore complete on its own for a target that starts with a keyframe.
 *
 * One TS packet (ISO/IEC 13818-1 2.4.3.2):
 *
 *   byte 0     1                          2         3                               4 ...
 *   +------+--------------------------+---------+-------------------------------+--------------------+
 *   | 0x47 | TEI PUSI prio PID[12..8] | PID[7..0] | scrambling(2) AFC(2) CC(4)  | adaptation field?  | payload
 *   +------+--------------------------+---------+-------------------------------+--------------------+
 *   adaptation field: length (1), flags (1: 0x40 = random access), ...
 *   a payload that starts a PES (PUSI set) begins 00 00 01; one that starts a table begins with a pointer field.
 */

/** Bytes in a TS packet. */
export const TS_PACKET = 188;
const SYNC = 0x47;
const PUSI = 0x40;
const AF_PRESENT = 0x20;
const PAYLOAD_PRESENT = 0x10;
const RANDOM_ACCESS = 0x40;
/** The null packet's PID: stuffing, never part of a frame's structure. */
const NULL_PID = 0x1fff;
/** Table packets held while waiting for the PES start that says whether the frame is a keyframe. */
const MAX_HEAD_PACKETS = 16;

/** A run of packets: the start of a frame (with whether it is a keyframe), or more of the current one. */
export interface TsPiece {
  bytes: Uint8Array;
  /** True for the first piece of a frame: its tables and the first packet of its PES. */
  start: boolean;
  /** On a start piece: the frame is a keyframe (a target may begin or resume here). */
  key: boolean;
  /** On a start piece: its PES header's presentation time (90 kHz, 33 bits), when it has one; else null. */
  pts: number | null;
}

/** PTS values wrap at 2^33 (26.5 hours at 90 kHz). */
export const PTS_WRAP = 2 ** 33;

/** `pts` minus `base` in 90 kHz ticks, across a wrap: the shorter way round. */
export function ptsDiff(pts: number, base: number): number {
  let d = (pts - base) % PTS_WRAP;
  if (d >= PTS_WRAP / 2) d -= PTS_WRAP;
  if (d < -PTS_WRAP / 2) d += PTS_WRAP;
  return d;
}

/** The stream is not MPEG-TS: a byte where a packet should begin is not 0x47. */
export class TsSyncError extends Error {
  override name = "TsSyncError";
}

/** Splits a TS byte stream, in chunks of any size, into frame pieces. Bounded: holds at most one packet plus a frame's tables. */
export class TsSplitter {
  #partial = new Uint8Array(TS_PACKET);
  #partialLength = 0;
  /** Table packets of the frame being started (its PES start not seen yet). */
  #head: Uint8Array[] = [];
  /** The previous packet belonged to a frame's data: a table packet now starts the next frame. */
  #inData = false;

  /** Pieces completed by `chunk`, in order. Throws {@link TsSyncError} on a stream out of sync. */
  push(chunk: Uint8Array): TsPiece[] {
    const out: TsPiece[] = [];
    let at = 0;
    let dataFrom = -1; // start, in `chunk`, of consecutive data packets not yet emitted
    const flushData = (end: number) => {
      if (dataFrom >= 0 && end > dataFrom) out.push({ bytes: chunk.slice(dataFrom, end), start: false, key: false, pts: null });
      dataFrom = -1;
    };
    if (this.#partialLength > 0) {
      const need = TS_PACKET - this.#partialLength;
      const n = Math.min(need, chunk.length);
      this.#partial.set(chunk.subarray(0, n), this.#partialLength);
      this.#partialLength += n;
      at = n;
      if (this.#partialLength < TS_PACKET) return out;
      this.#partialLength = 0;
      this.#packet(this.#partial.slice(), out);
    }
    while (at + TS_PACKET <= chunk.length) {
      const packet = chunk.subarray(at, at + TS_PACKET);
      const kind = classify(packet);
      if (kind === "data" && this.#head.length === 0 && this.#inData) {
        if (dataFrom < 0) dataFrom = at; // the common case: copied once, in one run
      } else {
        flushData(at);
        this.#packet(packet.slice(), out);
      }
      at += TS_PACKET;
    }
    flushData(at);
    if (at < chunk.length) {
      if (chunk[at] !== SYNC) throw new TsSyncError(`expected a TS packet (0x47) at stream byte ${at}, found 0x${chunk[at]!.toString(16).padStart(2, "0")}`);
      this.#partial.set(chunk.subarray(at), 0);
      this.#partialLength = chunk.length - at;
    }
    return out;
  }

  /** Drops what is held (the stream restarts). */
  reset(): void {
    this.#partialLength = 0;
    this.#head = [];
    this.#inData = false;
  }

  #packet(packet: Uint8Array, out: TsPiece[]): void {
    const kind = classify(packet);
    if (kind === "table") {
      // A table after frame data starts the next frame; tables in a row belong to one head.
      this.#inData = false;
      if (this.#head.length >= MAX_HEAD_PACKETS) this.#head.shift();
      this.#head.push(packet);
    } else if (kind === "pes-start") {
      const key = isRandomAccess(packet);
      this.#head.push(packet);
      out.push({ bytes: concat(this.#head), start: true, key, pts: pesPts(packet) });
      this.#head = [];
      this.#inData = true;
    } else if (this.#head.length > 0 || !this.#inData) {
      // Data before any PES start (the stream began mid-frame), or inside a head: not a frame of ours.
      if (this.#head.length > 0) this.#head.push(packet);
    } else {
      out.push({ bytes: packet, start: false, key: false, pts: null });
    }
  }
}

type Kind = "table" | "pes-start" | "data";

/** What a packet is, checked for sync first. */
function classify(packet: Uint8Array): Kind {
  if (packet[0] !== SYNC) throw new TsSyncError(`expected a TS packet (0x47), found 0x${packet[0]!.toString(16).padStart(2, "0")}`);
  const pid = ((packet[1]! & 0x1f) << 8) | packet[2]!;
  if (pid === NULL_PID || !(packet[1]! & PUSI)) return "data";
  const payload = payloadStart(packet);
  if (payload < 0) return "data";
  return packet[payload] === 0 && packet[payload + 1] === 0 && packet[payload + 2] === 1 ? "pes-start" : "table";
}

/** Offset of the payload, or -1 when the packet has none. */
function payloadStart(packet: Uint8Array): number {
  const control = packet[3]!;
  if (!(control & PAYLOAD_PRESENT)) return -1;
  const at = control & AF_PRESENT ? 5 + packet[4]! : 4;
  return at + 3 <= TS_PACKET ? at : -1;
}

/**
 * The PTS of a packet that starts a PES (ISO/IEC 13818-1 2.4.3.7), or null when it carries none:
 *
 *   00 00 01 | stream id | length (2) | flags (2: PTS present = 0x80 of the second) | header length
 *   | PTS: 0010 p32..30 1 | p29..22 | p21..15 1 | p14..7 | p6..0 1
 */
function pesPts(packet: Uint8Array): number | null {
  const at = payloadStart(packet);
  if (at < 0 || at + 14 > TS_PACKET) return null;
  if (!(packet[at + 7]! & 0x80)) return null;
  const b = packet.subarray(at + 9, at + 14);
  return ((b[0]! >> 1) & 7) * 2 ** 30 + (b[1]! << 22) + ((b[2]! >> 1) << 15) + (b[3]! << 7) + (b[4]! >> 1);
}

function isRandomAccess(packet: Uint8Array): boolean {
  return (packet[3]! & AF_PRESENT) !== 0 && packet[4]! > 0 && (packet[5]! & RANDOM_ACCESS) !== 0;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.length * TS_PACKET);
  parts.forEach((p, i) => out.set(p, i * TS_PACKET));
  return out;
}
