import { DecodeError, hex } from "./decode-error.ts";

/*
 * The Opus TOC byte (RFC 6716 3.1) says how long a packet plays:
 *
 *  0 1 2 3 4 5 6 7
 * +-+-+-+-+-+-+-+-+
 * | config  |s| c |
 * +-+-+-+-+-+-+-+-+
 *
 * config 0..31 picks the mode and the frame duration, c the frame count code
 * (0: one frame, 1 and 2: two frames, 3: the count is in the next byte's low 6 bits).
 */

/** Frame duration in 48 kHz samples for each config (RFC 6716 table 2). */
const FRAME_SAMPLES = [
  480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, // SILK NB, MB, WB
  480, 960, 480, 960, // hybrid SWB, FB
  120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, // CELT NB, WB, SWB, FB
];

/** Most a packet may play (RFC 6716 3.2.5: 120 ms). */
export const MAX_PACKET_SAMPLES = 5760;

/** Samples per channel at 48 kHz that `packet` decodes to; throws DecodeError on a packet that is not Opus. */
export function opusPacketSamples(packet: Uint8Array): number {
  if (packet.length < 1) throw new DecodeError("truncated", "empty Opus packet");
  const toc = packet[0]!;
  const perFrame = FRAME_SAMPLES[toc >> 3]!;
  const code = toc & 0x03;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code !== 3) frames = 2;
  else {
    if (packet.length < 2) throw new DecodeError("truncated", "Opus code 3 packet without its frame count byte");
    frames = packet[1]! & 0x3f;
    if (frames === 0) throw new DecodeError("bad-value", `Opus code 3 packet with 0 frames: byte 1 = ${hex(packet[1]!)}`);
  }
  const samples = perFrame * frames;
  if (samples > MAX_PACKET_SAMPLES) throw new DecodeError("bad-value", `Opus packet of ${samples} samples: more than 120 ms (toc ${hex(toc)})`);
  return samples;
}
