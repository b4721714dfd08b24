import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { OPUS_PRE_SKIP } from "../mux/ogg-opus.ts";
import { type MadePacket, OPUS_GRID_SAMPLES, opusConcealment, opusSilence } from "../mux/opus-silence.ts";
import { celtHeader } from "../wire/opus-celt-header.ts";

/** One Opus packet placed in a segment's audio track. */
export interface AudioBlock {
  /** Where it starts in the track, 48 kHz samples (the segment's start is at PREROLL_SAMPLES). */
  at: number;
  data: Uint8Array;
  samples: number;
  /**
   * audio: a packet of this segment; preroll: one of the packets just before the segment's start
   * (decoded, not played); concealment: stands for lost packets; silence: no audio came.
   */
  kind: "audio" | "preroll" | "concealment" | "silence";
}

/**
 * A segment's track begins with the 80 ms of audio before its start (Matroska's and RFC 7845's
 * Opus pre-roll): an Opus decoder started mid-stream needs that long to converge (CELT predicts
 * each band's energy from the frame before), else the segment's first 40 ms or so come out
 * faint. The decoder decodes and drops it, told by the OpusHead's pre-skip.
 */
export const PREROLL_SAMPLES = 3840;
/** The pre-skip in a segment's OpusHead: the encoder's look-ahead and the pre-roll. */
export const SEGMENT_PRE_SKIP = OPUS_PRE_SKIP + PREROLL_SAMPLES;
/**
 * A packet's decoded sound begins this long (the encoder's look-ahead, OPUS_PRE_SKIP) before its
 * capture time: so a segment ending at capture time T needs the packets captured before T plus
 * this, and its track reaches T's position plus OPUS_PRE_SKIP.
 */
export const LOOKAHEAD_MICROS = (OPUS_PRE_SKIP * 1e6) / 48_000;

/** Lost packets (a gap in packet numbers) concealed at most; a longer gap is placed by capture time, with silence. */
export const MAX_CONCEALED_PACKETS = 50;
/** Lost packets in a row that copies of the packet before them stand in for (40 ms); the decoder conceals the rest. */
export const MAX_REPEATED_PACKETS = 2;
/** Silence written at most in one step (a bad capture time must not write hours of it). */
export const MAX_FILL_SAMPLES = 60 * 48_000;

/** What one segment's audio holds. */
export interface SegmentAudioCounts {
  /** Packets that came and were placed. */
  packets: number;
  /** Packets of the previous segment placed as this one's pre-roll (not played here). */
  preroll: number;
  /** Packets that came too late for their place (it was filled already) or twice; not written. */
  late: number;
  /** Lost packets (gaps in packet numbers) written as concealment (stand-ins; see SegmentAudio). */
  concealed: number;
  /** Samples of silence written where no audio came (in the part that plays). */
  silenceSamples: number;
  /** Times the packets' capture times had drifted more than a packet from the track, and it was put right. */
  resyncs: number;
}

/**
 * One segment's audio track, free of I/O: a continuous run of Opus packets from the segment's
 * start, in which every packet sits where its capture time says. Continuous, because an AVI's
 * audio has no timestamps (its position is its sample count) and a player of any container
 * plays Opus packets back to back: whatever is missing is filled, never skipped.
 *
 *   preroll(packet)  a packet from the 80 ms before the start, placed before it and not played
 *                    (a segment's first packet may start there too: its part after the start is
 *                    played in both segments, at most one packet)
 *   push(packet, samples, "tail")  a packet of the next segment whose sound begins before this
 *                    one's end (within LOOKAHEAD_MICROS after it), placed as any, not counted
 *   push(packet)   next in sequence: right after the previous one; after lost packets:
 *                  stand-ins for them (below); else (first packet, outage, drift beyond one
 *                  packet): silence up to its capture time, or dropped when its place is taken
 *   concealBefore(next, end)   the first packet after the segment's end (the next segment's)
 *                  came: the packets lost before it whose sound begins before the end get
 *                  stand-ins
 *   fillTo(time)   silence up to a capture time (no audio came: outage, segment end)
 *
 * Lost packets are played as copies of their neighbours. A 0-byte frame (a decoder's own
 * concealment) is not concealed alike by every decoder: libopus conceals it, but ffmpeg's own
 * Opus decoder (the one ffmpeg, and players built on it, use; it also makes an AVI's PCM) decodes
 * it as silence and resets its band energies, and since CELT codes each frame's energies as
 * changes from the frame before, the packets after it came out 20-40 dB faint for some 100 ms: one
 * lost packet cost six. A copy of a neighbour carries the decoder's state on in every decoder:
 *
 *   - the last lost packet of a run is played as the packet after it when that one continues the
 *     sound (a CELT frame coded as changes from the one before: not intra, transient or silent),
 *     so the decoder reaches the state it expects, half way at least; a packet that starts a new
 *     sound is not copied early (a beep would start a packet early, even in the segment before);
 *   - the others as the packet before them, up to MAX_REPEATED_PACKETS (as libopus's own
 *     concealment sounds), the rest of a long run as frames of no bytes.
 *
 * Each stand-in decodes to the lost packet's length, so the sound stays where it was.
 *
 * The position of a packet in the track is PREROLL_SAMPLES plus its capture time's distance from
 * the segment's start, round((capturedAt - startedAt) * 48 000 / 1e6). Decoders drop the first
 * SEGMENT_PRE_SKIP samples, so the first sample played is the one captured at the segment's start.
 * Sequence numbers wrap at 2^32.
 */
export class SegmentAudio {
  readonly startedAt: number;
  readonly #channels: 1 | 2;
  /** Drift tolerated before the track is put right: one packet. */
  readonly #tolerance: number;
  #cursor = 0;
  #lastSeq: number | null = null;
  #lastToc = 0;
  #lastSamples = 0;
  /** The last packet placed (or dropped as late), the stand-in for packets lost after it. */
  #lastData: Uint8Array | null = null;
  /** True when the track's last block is a packet that came (or concealment of one): the next one follows on. */
  #continuous = false;
  readonly counts: SegmentAudioCounts = { packets: 0, preroll: 0, late: 0, concealed: 0, silenceSamples: 0, resyncs: 0 };

  /** A track for the segment whose first frame was captured at `startedAt` (µs since the epoch). */
  constructor(startedAt: number, format: Pick<AudioFormat, "channels" | "frameMs">) {
    this.startedAt = startedAt;
    this.#channels = format.channels;
    this.#tolerance = Math.round(48 * format.frameMs);
  }

  /** Samples written so far, pre-roll included: where the next block goes. */
  get samples(): number {
    return this.#cursor;
  }

  /** Capture time (µs since the epoch) the track has reached. */
  get endAt(): number {
    return this.startedAt + ((this.#cursor - PREROLL_SAMPLES) * 1e6) / 48_000;
  }

  /** The position in the track of a capture time. */
  positionOf(capturedAt: number): number {
    return PREROLL_SAMPLES + Math.round(((capturedAt - this.startedAt) * 48_000) / 1e6);
  }

  /**
   * Places a packet captured before the segment's start as pre-roll. Only before the segment's
   * own packets, and only what fits in the pre-roll (a packet that would start before the track
   * is left out); returns the blocks to write, or none.
   */
  preroll(packet: AudioPacket, samples: number): AudioBlock[] {
    if (this.counts.packets > 0 || this.positionOf(packet.capturedAt) < 0 || packet.capturedAt >= this.startedAt) return [];
    return this.push(packet, samples, "preroll");
  }

  /**
   * Places `packet`, which decodes to `samples` per channel (from its TOC). Returns the blocks to
   * write in order (concealment or silence before it, then the packet), or none when it is dropped.
   */
  push(packet: AudioPacket, samples: number, kind: "audio" | "preroll" | "tail" = "audio"): AudioBlock[] {
    const out: AudioBlock[] = [];
    const pos = this.positionOf(packet.capturedAt);
    if (this.#lastSeq !== null) {
      const step = (packet.seq - this.#lastSeq) | 0;
      if (step <= 0) {
        if (kind === "audio") this.counts.late++; // a duplicate, or older than one already placed
        return out;
      }
      const lost = this.#lostBefore(step, pos);
      if (lost > 0) {
        for (const p of this.#standIns(lost, lost, { data: packet.data, samples })) out.push(this.#block(p, "concealment"));
        this.counts.concealed += lost;
      }
    }
    const delta = pos - this.#cursor;
    if (this.#continuous) {
      if (delta < -this.#tolerance) return this.#late(packet, samples, out, kind);
      if (delta > this.#tolerance) {
        this.counts.resyncs++;
        out.push(...this.#silence(delta));
      }
    } else {
      // After silence (or at the start) nothing has to follow on: place the packet by its capture time.
      if (delta < -this.#tolerance / 2) return this.#late(packet, samples, out, kind);
      if (delta >= OPUS_GRID_SAMPLES / 2) out.push(...this.#silence(delta));
    }
    out.push({ at: this.#cursor, data: packet.data, samples, kind: kind === "tail" ? "audio" : kind });
    this.#cursor += samples;
    this.#remember(packet, samples);
    this.#continuous = true;
    if (kind !== "tail") this.counts[kind === "audio" ? "packets" : "preroll"]++;
    return out;
  }

  /**
   * `next` is the first packet come at or after the segment's end `endAt` (µs since the epoch),
   * the next segment's, decoding to `samples`: packets lost between the last one placed and it
   * (a gap in numbers that the capture times agree with) whose sound begins before the end get
   * stand-ins here, as within a segment. `next` itself is not placed. Returns the blocks.
   */
  concealBefore(next: AudioPacket, samples: number, endAt: number): AudioBlock[] {
    if (this.#lastSeq === null) return [];
    const lost = this.#lostBefore((next.seq - this.#lastSeq) | 0, this.positionOf(next.capturedAt));
    const room = this.positionOf(endAt) + OPUS_PRE_SKIP - this.#cursor;
    const before = room > 0 ? Math.min(lost, Math.ceil(room / this.#lastSamples)) : 0;
    if (before === 0) return [];
    const out = this.#standIns(lost, before, { data: next.data, samples }).map((p) => this.#block(p, "concealment"));
    this.counts.concealed += before;
    // They count as placed: a later packet is not taken for one after a loss again.
    this.#lastSeq = (this.#lastSeq + before) | 0;
    return out;
  }

  /**
   * Silence from where the track is up to `capturedAt`: in whole 20 ms packets when `whole` (an
   * outage that goes on), else to the nearest 2.5 ms of where the sound captured before
   * `capturedAt` ends in the track, look-ahead included (a segment's end). Nothing when the
   * track is there already.
   */
  fillTo(capturedAt: number, whole: boolean): AudioBlock[] {
    let n = this.positionOf(capturedAt) + (whole ? 0 : OPUS_PRE_SKIP) - this.#cursor;
    if (whole) n -= n % this.#tolerance;
    return n > 0 ? this.#silence(n) : [];
  }

  /**
   * Packets lost between the last one and one `step` numbers on at track position `pos`: a gap
   * in numbers that the capture times agree with, right after a packet that came, else 0.
   */
  #lostBefore(step: number, pos: number): number {
    const lost = step - 1;
    if (lost <= 0 || lost > MAX_CONCEALED_PACKETS || !this.#continuous || this.#lastData === null) return 0;
    return Math.abs(pos - (this.#cursor + lost * this.#lastSamples)) <= this.#tolerance ? lost : 0;
  }

  /**
   * Stand-ins for the first `count` of `lost` packets lost between the last one and `next` (see
   * the class comment), each of the last one's length.
   */
  #standIns(lost: number, count: number, next: MadePacket): MadePacket[] {
    const n = this.#lastSamples;
    const header = next.samples === n ? celtHeader(next.data) : null;
    const after = header && !header.intra && !header.transient && !header.silence ? 1 : 0;
    const before = Math.min(lost - after, MAX_REPEATED_PACKETS);
    const out: MadePacket[] = [];
    for (let i = 0; i < count; i++) {
      if (i < before) out.push({ data: this.#lastData!, samples: n });
      else if (i < lost - after) out.push(...opusConcealment(this.#lastToc, n, this.#channels));
      else out.push(next);
    }
    return out;
  }

  #late(packet: AudioPacket, samples: number, out: AudioBlock[], kind: "audio" | "preroll" | "tail"): AudioBlock[] {
    if (kind === "audio") this.counts.late++; // a pre-roll or a tail that does not fit is no loss
    // Its number still counts: the next packet follows it, and is not taken for one after a loss.
    this.#remember(packet, samples);
    return out;
  }

  #remember(packet: AudioPacket, samples: number): void {
    this.#lastSeq = packet.seq;
    this.#lastToc = packet.data[0]!;
    this.#lastSamples = samples;
    this.#lastData = packet.data;
  }

  /** Silence of `samples` rounded to the 2.5 ms grid (at most MAX_FILL_SAMPLES). */
  #silence(samples: number): AudioBlock[] {
    const n = Math.min(Math.round(samples / OPUS_GRID_SAMPLES) * OPUS_GRID_SAMPLES, MAX_FILL_SAMPLES);
    if (n <= 0) return [];
    // Only what plays counts as silence: not the pre-roll's.
    this.counts.silenceSamples += Math.min(n, Math.max(0, this.#cursor + n - PREROLL_SAMPLES));
    const out = opusSilence(n, this.#channels).map((p) => this.#block(p, "silence"));
    this.#continuous = false;
    return out;
  }

  #block(p: MadePacket, kind: AudioBlock["kind"]): AudioBlock {
    const b = { at: this.#cursor, data: p.data, samples: p.samples, kind };
    this.#cursor += p.samples;
    return b;
  }
}
