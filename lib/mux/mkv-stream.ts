/**
 * A minimal live Matroska stream: one V_MJPEG track and, optionally, one A_OPUS track, in
 * SimpleBlocks with real capture timestamps.
 *
 * ffmpeg's `-f mjpeg` over a pipe has no timestamps (it assumes 25 fps), so the Matroska recorder
 * writes this stream into ffmpeg (`-f matroska -i pipe:0 -c copy`), which then writes a proper
 * seekable file with cues and a duration. Sizes of Segment and Cluster are "unknown", as in any
 * live stream, so nothing has to be patched afterwards.
 *
 *   EBML header                         1A 45 DF A3 <size> { version 1, DocType "matroska" v4 }
 *   Segment                             18 53 80 67 01 FF FF FF FF FF FF FF (unknown size)
 *     Info                              15 49 A9 66 { TimecodeScale 1 ms, apps, DateUTC }
 *     Tracks                            16 54 AE 6B { TrackEntry #1 V_MJPEG WxH
 *                                                     [, TrackEntry #2 A_OPUS, CodecPrivate OpusHead] }
 *     Cluster                           1F 43 B6 75 01 FF FF FF FF FF FF FF (unknown size)
 *       Timecode                        E7 <size> <ms since segment start>
 *       SimpleBlock                     A3 <size> 81 <int16 ms from cluster> 80 <JPEG>
 *       SimpleBlock                     A3 <size> 82 <int16 ms from cluster> 80 <Opus packet>
 *       SimpleBlock ...
 *     Cluster ...
 */

import { concatBytes } from "../wire/bytes.ts";

/** Element IDs (their length marker included, as written). */
export const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  DateUTC: 0x4461,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  FlagLacing: 0x9c,
  CodecID: 0x86,
  DefaultDuration: 0x23e383,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  CodecPrivate: 0x63a2,
  SeekPreRoll: 0x56bb,
  Audio: 0xe1,
  SamplingFrequency: 0xb5,
  Channels: 0x9f,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
} as const;

/** Block timecodes are in milliseconds. */
export const TIMECODE_SCALE_NS = 1_000_000;
/** A cluster is started at least this often, well inside the signed 16-bit block timecode. */
export const MAX_CLUSTER_MS = 5_000;
/** The video track. */
export const TRACK_NUMBER = 1;
/** The audio track, when there is one. */
export const AUDIO_TRACK_NUMBER = 2;
/** Opus decoders need this much audio before a seek point to converge (RFC 7845 and Matroska's Opus mapping: 80 ms). */
export const OPUS_SEEK_PREROLL_NS = 80_000_000;
/** "Unknown size" as an 8-byte EBML size: all value bits set. */
export const UNKNOWN_SIZE = Uint8Array.of(0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
/** SimpleBlock header: track number (1-byte VINT), int16 timecode, flags. */
export const SIMPLE_BLOCK_HEADER_BYTES = 4;
/** SimpleBlock flag: the frame is a keyframe (every JPEG is). */
export const FLAG_KEYFRAME = 0x80;
/** Matroska dates count nanoseconds from 2001-01-01T00:00:00Z. */
const MATROSKA_EPOCH_MICROS = 978_307_200_000_000n;

/** What the track header needs. */
export interface MkvTrack {
  width: number;
  height: number;
  /** Nominal frame interval; written as DefaultDuration so the last frame has a length. */
  frameIntervalMicros: number;
  /** Wall-clock capture time of the first frame (µs since the Unix epoch), written as DateUTC. */
  startedAtMicros?: number;
}

/**
 * The Opus track: its OpusHead goes into CodecPrivate. No CodecDelay is written: decoders take
 * the pre-skip from the OpusHead, and ffmpeg 5.1's stream copy applies a CodecDelay twice (the
 * audio moves that much early); a writer that wants sync to the sample stamps its video later by
 * the pre-skip instead (see lib/record/open-segment.ts).
 */
export interface MkvAudioTrack {
  channels: 1 | 2;
  /** The OpusHead packet (RFC 7845 5.1), as lib/mux/ogg-opus.ts makes it. */
  opusHead: Uint8Array;
}

/** Thrown for a value that cannot be encoded (a bug in the caller, never a stream condition). */
export class MkvEncodeError extends Error {
  override name = "MkvEncodeError";
}

function idBytes(id: number): Uint8Array {
  const n = id > 0xffffff ? 4 : id > 0xffff ? 3 : id > 0xff ? 2 : 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (id >>> (8 * (n - 1 - i))) & 0xff;
  return out;
}

/** An EBML size as the shortest VINT (values with all bits set are reserved for "unknown"). */
export function encodeVint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new MkvEncodeError(`EBML size out of range: ${value}`);
  let n = 1;
  while (n < 8 && value >= 2 ** (7 * n) - 1) n++;
  if (value >= 2 ** (7 * n) - 1) throw new MkvEncodeError(`EBML size too large: ${value}`);
  const out = new Uint8Array(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  out[0]! |= 0x80 >> (n - 1);
  return out;
}


/** One element with a known size. */
export function element(id: number, payload: Uint8Array): Uint8Array {
  return concatBytes([idBytes(id), encodeVint(payload.length), payload]);
}

function master(id: number, children: Uint8Array[]): Uint8Array {
  return element(id, concatBytes(children));
}

/** An unsigned integer element in the fewest bytes (at least one). */
export function uintElement(id: number, value: number | bigint): Uint8Array {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << 64n) throw new MkvEncodeError(`unsigned value out of range: ${value}`);
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  return element(id, Uint8Array.from(bytes));
}

/** A 64-bit float element (SamplingFrequency). */
function floatElement(id: number, value: number): Uint8Array {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setFloat64(0, value);
  return element(id, payload);
}

/** A signed 64-bit integer element (DateUTC). */
function int64Element(id: number, value: bigint): Uint8Array {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setBigInt64(0, value);
  return element(id, payload);
}

function stringElement(id: number, value: string): Uint8Array {
  return element(id, new TextEncoder().encode(value));
}

/** The EBML header declaring a Matroska document. */
export function encodeEbmlHeader(): Uint8Array {
  return master(ID.EBML, [
    uintElement(ID.EBMLVersion, 1),
    uintElement(ID.EBMLReadVersion, 1),
    uintElement(ID.EBMLMaxIDLength, 4),
    uintElement(ID.EBMLMaxSizeLength, 8),
    stringElement(ID.DocType, "matroska"),
    uintElement(ID.DocTypeVersion, 4),
    uintElement(ID.DocTypeReadVersion, 2),
  ]);
}

/** The Segment element's ID and unknown size: everything after it is its content. */
export function encodeSegmentStart(): Uint8Array {
  return concatBytes([idBytes(ID.Segment), UNKNOWN_SIZE]);
}

/** Segment Info: 1 ms timecodes, the writing app, and the first frame's wall-clock time if known. */
export function encodeInfo(startedAtMicros?: number): Uint8Array {
  const children = [
    uintElement(ID.TimecodeScale, TIMECODE_SCALE_NS),
    stringElement(ID.MuxingApp, "lancam"),
    stringElement(ID.WritingApp, "lancam"),
  ];
  if (startedAtMicros !== undefined) {
    children.push(int64Element(ID.DateUTC, (BigInt(Math.round(startedAtMicros)) - MATROSKA_EPOCH_MICROS) * 1000n));
  }
  return master(ID.Info, children);
}

/** Tracks: the MJPEG video track, and the Opus track when `audio` is given. */
export function encodeTracks(track: MkvTrack, audio?: MkvAudioTrack): Uint8Array {
  if (!(track.width > 0 && track.height > 0)) throw new MkvEncodeError(`bad frame size ${track.width}x${track.height}`);
  if (!(track.frameIntervalMicros > 0)) throw new MkvEncodeError(`bad frame interval ${track.frameIntervalMicros} µs`);
  const entries = [
    master(ID.TrackEntry, [
      uintElement(ID.TrackNumber, TRACK_NUMBER),
      uintElement(ID.TrackUID, 1),
      uintElement(ID.TrackType, 1), // video
      uintElement(ID.FlagLacing, 0),
      stringElement(ID.CodecID, "V_MJPEG"),
      uintElement(ID.DefaultDuration, Math.round(track.frameIntervalMicros * 1000)),
      master(ID.Video, [uintElement(ID.PixelWidth, track.width), uintElement(ID.PixelHeight, track.height)]),
    ]),
  ];
  if (audio) entries.push(encodeAudioTrackEntry(audio));
  return master(ID.Tracks, entries);
}

/** The A_OPUS TrackEntry (Matroska's Opus mapping: 48 kHz, CodecPrivate = OpusHead, 80 ms SeekPreRoll). */
export function encodeAudioTrackEntry(audio: MkvAudioTrack): Uint8Array {
  if (audio.channels !== 1 && audio.channels !== 2) throw new MkvEncodeError(`bad channel count ${String(audio.channels)}`);
  if (audio.opusHead.length < 19) throw new MkvEncodeError(`OpusHead of ${audio.opusHead.length} bytes, expected at least 19`);
  return master(ID.TrackEntry, [
    uintElement(ID.TrackNumber, AUDIO_TRACK_NUMBER),
    uintElement(ID.TrackUID, 2),
    uintElement(ID.TrackType, 2), // audio
    uintElement(ID.FlagLacing, 0),
    stringElement(ID.CodecID, "A_OPUS"),
    element(ID.CodecPrivate, audio.opusHead),
    uintElement(ID.SeekPreRoll, OPUS_SEEK_PREROLL_NS),
    master(ID.Audio, [floatElement(ID.SamplingFrequency, 48000), uintElement(ID.Channels, audio.channels)]),
  ]);
}

/** Everything before the first cluster: EBML header, Segment start, Info, Tracks. */
export function encodeStreamHeader(track: MkvTrack, audio?: MkvAudioTrack): Uint8Array {
  return concatBytes([encodeEbmlHeader(), encodeSegmentStart(), encodeInfo(track.startedAtMicros), encodeTracks(track, audio)]);
}

/** A Cluster of unknown size and its Timecode (ms since the segment start). */
export function encodeClusterStart(timecodeMs: number): Uint8Array {
  return concatBytes([idBytes(ID.Cluster), UNKNOWN_SIZE, uintElement(ID.Timecode, timecodeMs)]);
}

/** The SimpleBlock element header for a keyframe of `payloadLength` bytes on `track`; the payload follows it. */
export function encodeSimpleBlockHeader(relativeMs: number, payloadLength: number, track: number = TRACK_NUMBER): Uint8Array {
  if (!Number.isInteger(relativeMs) || relativeMs < -32768 || relativeMs > 32767) {
    throw new MkvEncodeError(`block timecode ${relativeMs} ms does not fit in int16`);
  }
  const size = encodeVint(SIMPLE_BLOCK_HEADER_BYTES + payloadLength);
  const out = new Uint8Array(1 + size.length + SIMPLE_BLOCK_HEADER_BYTES);
  out[0] = ID.SimpleBlock;
  out.set(size, 1);
  const at = 1 + size.length;
  if (!(Number.isInteger(track) && track >= 1 && track <= 126)) throw new MkvEncodeError(`track number ${track} is not a 1-byte VINT`);
  out[at] = 0x80 | track; // track number as a 1-byte VINT
  new DataView(out.buffer).setInt16(at + 1, relativeMs);
  out[at + 3] = FLAG_KEYFRAME;
  return out;
}

/**
 * Turns frames (and Opus packets) with millisecond timestamps into stream chunks: starts clusters
 * as needed and keeps each track's timestamps increasing (a frame at or before the previous one
 * is moved 1 ms after it; an audio block never goes back before the previous one). The tracks may
 * run a little apart (audio that arrives late); a block earlier than its cluster starts a new one.
 */
export class MkvStream {
  #clusterMs = -1;
  #lastMs = -1;
  #lastAudioMs = -1;

  constructor(
    readonly track: MkvTrack,
    readonly audioTrack?: MkvAudioTrack,
  ) {}

  /** The bytes before the first frame. */
  header(): Uint8Array {
    return encodeStreamHeader(this.track, this.audioTrack);
  }

  /**
   * The chunks for one frame at `timeMs` since the segment start, to be written in order; the last
   * chunk is `jpeg` itself (not copied). Returns the timestamp actually used.
   */
  frame(timeMs: number, jpeg: Uint8Array): { chunks: Uint8Array[]; timeMs: number } {
    const ms = Math.max(Math.round(timeMs), this.#lastMs + 1);
    this.#lastMs = ms;
    return { chunks: this.#block(ms, jpeg, TRACK_NUMBER), timeMs: ms };
  }

  /**
   * The chunks for one Opus packet at `timeMs` since the segment start (the time of its first
   * sample), the last being `packet` itself. Only for a stream opened with an audio track.
   */
  audio(timeMs: number, packet: Uint8Array): { chunks: Uint8Array[]; timeMs: number } {
    if (!this.audioTrack) throw new MkvEncodeError("audio block for a stream without an audio track");
    const ms = Math.max(Math.round(timeMs), this.#lastAudioMs);
    this.#lastAudioMs = ms;
    return { chunks: this.#block(ms, packet, AUDIO_TRACK_NUMBER), timeMs: ms };
  }

  #block(ms: number, payload: Uint8Array, track: number): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    if (this.#clusterMs < 0 || ms < this.#clusterMs || ms - this.#clusterMs >= MAX_CLUSTER_MS) {
      this.#clusterMs = ms;
      chunks.push(encodeClusterStart(ms));
    }
    chunks.push(encodeSimpleBlockHeader(ms - this.#clusterMs, payload.length, track), payload);
    return chunks;
  }
}
