import { opusPacketSamples } from "../wire/opus-toc.ts";

/*
 * Opus packets (RFC 6716) made without an encoder, for the stretches of a recording where no
 * audio came: silence where there was none (before the first packet, an outage), concealment
 * where packets were lost. Either keeps the track's sample count true, so what follows stays
 * in sync with the video.
 *
 * Silence is a CELT-only fullband frame whose first symbol, the silence flag, is set:
 *
 *   TOC  config 31 (CELT FB 20 ms) | s | c=0      F8 (mono) / FC (stereo)
 *   frame  FF FE                                  the range decoder reads "silence" and stops
 *
 * A stretch that is not a whole number of 20 ms packets ends with one code 3 packet of 2.5 ms
 * frames (config 28), each the same two bytes:
 *
 *   TOC  config 28 | s | c=3     E3 / E7
 *   count byte  v=0 p=0 M        M frames of equal size (CBR)
 *   M x  FF FE
 *
 * Concealment is a packet of the lost packet's configuration with no frame data (the TOC byte
 * alone, code 0): a decoder treats a frame of 0 bytes as lost and conceals it (libopus and
 * ffmpeg's own decoder both do, measured with ffmpeg 5.1).
 */

/** Silence and concealment are made in steps of this many 48 kHz samples (2.5 ms, the shortest Opus frame). */
export const OPUS_GRID_SAMPLES = 120;
/** Samples in one 20 ms silence packet. */
const PACKET_SAMPLES = 960;
/** Most 2.5 ms frames in the one short packet that ends a stretch of silence. */
const MAX_SHORT_FRAMES = PACKET_SAMPLES / OPUS_GRID_SAMPLES - 1;
const SILENT_FRAME = [0xff, 0xfe] as const;
const TOC_CELT_FB_20MS = 31 << 3;
const TOC_CELT_FB_2_5MS = 28 << 3;
const TOC_STEREO = 0x04;
const TOC_CODE_3 = 0x03;

/** One made-up packet and the samples (per channel, 48 kHz) it decodes to. */
export interface MadePacket {
  data: Uint8Array;
  samples: number;
}

const silence20 = [Uint8Array.of(TOC_CELT_FB_20MS, ...SILENT_FRAME), Uint8Array.of(TOC_CELT_FB_20MS | TOC_STEREO, ...SILENT_FRAME)];

/**
 * Packets decoding to `samples` of silence, rounded down to {@link OPUS_GRID_SAMPLES}: 20 ms
 * packets, then at most one shorter packet. The 20 ms packets are shared (never modify them).
 */
export function opusSilence(samples: number, channels: 1 | 2): MadePacket[] {
  const out: MadePacket[] = [];
  const whole = Math.floor(Math.max(0, samples) / PACKET_SAMPLES);
  const stereo = channels === 2 ? 1 : 0;
  for (let i = 0; i < whole; i++) out.push({ data: silence20[stereo]!, samples: PACKET_SAMPLES });
  const short = Math.floor((Math.max(0, samples) - whole * PACKET_SAMPLES) / OPUS_GRID_SAMPLES);
  if (short > 0 && short <= MAX_SHORT_FRAMES) {
    const data = new Uint8Array(2 + short * SILENT_FRAME.length);
    data[0] = TOC_CELT_FB_2_5MS | (stereo ? TOC_STEREO : 0) | TOC_CODE_3;
    data[1] = short; // v=0 (equal sizes), p=0 (no padding), M=short
    for (let i = 0; i < short; i++) data.set(SILENT_FRAME, 2 + i * SILENT_FRAME.length);
    out.push({ data, samples: short * OPUS_GRID_SAMPLES });
  }
  return out;
}

/**
 * Packets concealing `samples` lost after a packet whose first byte (TOC) is `lastToc`: empty
 * frames of its configuration, so the decoder carries the sound on (packet loss concealment).
 * What does not fill a whole frame is made up with silence.
 */
export function opusConcealment(lastToc: number, samples: number, channels: 1 | 2): MadePacket[] {
  const toc = lastToc & ~TOC_CODE_3 & 0xff; // code 0: one frame, here of 0 bytes
  const data = Uint8Array.of(toc);
  const frame = opusPacketSamples(data);
  const out: MadePacket[] = [];
  const count = Math.floor(Math.max(0, samples) / frame);
  for (let i = 0; i < count; i++) out.push({ data, samples: frame });
  out.push(...opusSilence(samples - count * frame, channels));
  return out;
}
