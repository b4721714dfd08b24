import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { OPUS_PRE_SKIP } from "../mux/ogg-opus.ts";
import { type MadePacket, OPUS_GRID_SAMPLES, opusConcealment, opusSilence } from "../mux/opus-silence.ts";

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

/** Lost packets (a gap in packet numbers) concealed at most; a longer gap is placed by capture time, with silence. */
export const MAX_CONCEALED_PACKETS = 50;
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
  /** Lost packets (gaps in packet numbers) written as concealment. */
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
 *   push(packet)   next in sequence: right after the previous one; after lost packets:
 *                  concealment for them; else (first packet, outage, drift beyond one packet):
 *                  silence up to its capture time, or dropped when its place is taken
 *   fillTo(time)   silence up to a capture time (no audio came: outage, segment end)
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
    const late = this.counts.late;
    const out = this.push(packet, samples, "preroll");
    this.counts.late = late; // not this segment's packet: a pre-roll that does not fit is no loss
    return out;
  }

  /**
   * Places `packet`, which decodes to `samples` per channel (from its TOC). Returns the blocks to
   * write in order (concealment or silence before it, then the packet), or none when it is dropped.
   */
  push(packet: AudioPacket, samples: number, kind: "audio" | "preroll" = "audio"): AudioBlock[] {
    const out: AudioBlock[] = [];
    const pos = this.positionOf(packet.capturedAt);
    if (this.#lastSeq !== null) {
      const step = (packet.seq - this.#lastSeq) | 0;
      if (step <= 0) {
        this.counts.late++; // a duplicate, or older than one already placed
        return out;
      }
      const lost = step - 1;
      if (lost > 0 && lost <= MAX_CONCEALED_PACKETS && this.#continuous) {
        const lostSamples = lost * this.#lastSamples;
        if (Math.abs(pos - (this.#cursor + lostSamples)) <= this.#tolerance) {
          for (const p of opusConcealment(this.#lastToc, lostSamples, this.#channels)) out.push(this.#block(p, "concealment"));
          this.counts.concealed += lost;
        }
      }
    }
    const delta = pos - this.#cursor;
    if (this.#continuous) {
      if (delta < -this.#tolerance) return this.#late(packet, samples, out);
      if (delta > this.#tolerance) {
        this.counts.resyncs++;
        out.push(...this.#silence(delta));
      }
    } else {
      // After silence (or at the start) nothing has to follow on: place the packet by its capture time.
      if (delta < -this.#tolerance / 2) return this.#late(packet, samples, out);
      if (delta >= OPUS_GRID_SAMPLES / 2) out.push(...this.#silence(delta));
    }
    out.push({ at: this.#cursor, data: packet.data, samples, kind });
    this.#cursor += samples;
    this.#remember(packet, samples);
    this.#continuous = true;
    this.counts[kind === "audio" ? "packets" : "preroll"]++;
    return out;
  }

  /**
   * Silence from where the track is up to `capturedAt`: in whole 20 ms packets when `whole` (an
   * outage that goes on), else to the nearest 2.5 ms (a segment's end). Nothing when the track
   * is there already.
   */
  fillTo(capturedAt: number, whole: boolean): AudioBlock[] {
    let n = this.positionOf(capturedAt) - this.#cursor;
    if (whole) n -= n % this.#tolerance;
    return n > 0 ? this.#silence(n) : [];
  }

  #late(packet: AudioPacket, samples: number, out: AudioBlock[]): AudioBlock[] {
    this.counts.late++;
    // Its number still counts: the next packet follows it, and is not taken for one after a loss.
    this.#remember(packet, samples);
    return out;
  }

  #remember(packet: AudioPacket, samples: number): void {
    this.#lastSeq = packet.seq;
    this.#lastToc = packet.data[0]!;
    this.#lastSamples = samples;
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
