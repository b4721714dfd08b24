import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { encodeOggPage, OGG_BOS } from "../mux/ogg.ts";
import { OPUS_PRE_SKIP, opusHead, opusTags } from "../mux/ogg-opus.ts";
import { concatBytes } from "../wire/bytes.ts";

/**
 * The sound of one publish connection as live Ogg Opus, timed by capture time against the
 * connection's picture. ffmpeg, given the picture on one pipe and this on another, starts each
 * input's clock at its first packet; so this stream's first packet is a 20 ms silence at the
 * capture time of the picture's first frame (`origin`), and every later packet's granule says
 * how long after that it was captured. Both RTP tracks then carry capture time, and the server
 * (and its readers, through RTCP) keep them in step.
 *
 * Packets captured before the origin, or overlapping the last one written (a clock step back),
 * are left out (the owner counts them); a gap (a lost packet, a pause) is a jump in the granule,
 * which decoders fill. Nothing is held: each page is written as its packet comes.
 */

/** A 20 ms Opus packet of silence (CELT, fullband, one frame), mono; the stereo flag (0x04) is set for two channels. */
const SILENCE = [0xf8, 0xff, 0xfe];
const SAMPLES_20MS = 960;

/** A packet this far (µs) into what was already written still counts as in order: capture clocks jitter. */
const OVERLAP_TOLERANCE_US = 2_000;

export class PublishAudioStream {
  /** Capture time (µs since the epoch) of the picture's first frame on this connection. */
  readonly origin: number;
  readonly #channels: 1 | 2;
  readonly #serial: number;
  #pageSeq = 0;
  /** End of the last packet written, µs after the origin. */
  #endUs = 0;

  constructor(format: Pick<AudioFormat, "channels">, origin: number, serial = (Math.random() * 0x100000000) >>> 0) {
    this.#channels = format.channels;
    this.origin = origin;
    this.#serial = serial;
  }

  /** The header pages and the silence at the origin: what ffmpeg reads before it opens its output. */
  header(): Uint8Array {
    const silence = new Uint8Array(SILENCE);
    if (this.#channels === 2) silence[0]! |= 0x04;
    const pages = [
      encodeOggPage({ headerType: OGG_BOS, granule: 0n, serial: this.#serial, pageSeq: this.#pageSeq++, packets: [opusHead({ channels: this.#channels })] }),
      encodeOggPage({ headerType: 0, granule: 0n, serial: this.#serial, pageSeq: this.#pageSeq++, packets: [opusTags()] }),
      encodeOggPage({ headerType: 0, granule: BigInt(OPUS_PRE_SKIP + SAMPLES_20MS), serial: this.#serial, pageSeq: this.#pageSeq++, packets: [silence] }),
    ];
    this.#endUs = (SAMPLES_20MS / 48_000) * 1e6;
    return concatBytes(pages);
  }

  /** The page of `packet`, or null when it cannot join this stream (before the origin, or out of order). */
  page(packet: AudioPacket): Uint8Array | null {
    const startUs = packet.capturedAt - this.origin;
    if (startUs < this.#endUs - OVERLAP_TOLERANCE_US) return null;
    // Granules are whole samples at 48 kHz; a start within the tolerance is put right after the last.
    const startSamples = Math.max(Math.round((Math.max(startUs, this.#endUs) * 48_000) / 1e6), 0);
    const end = startSamples + packet.samples;
    this.#endUs = (end * 1e6) / 48_000;
    return encodeOggPage({ headerType: 0, granule: BigInt(OPUS_PRE_SKIP + end), serial: this.#serial, pageSeq: this.#pageSeq++, packets: [packet.data] });
  }
}
