import { DecodeError } from "../wire/decode-error.ts";

/*
 * Padding inside an Opus packet (RFC 6716 3.2.5), which every decoder skips. The browser
 * view pads the packets of /audio.ogg because Chromium hands a media stream to its demuxer
 * in blocks of about 32 KB: a 64 kbit/s stream would reach the player in bursts 3 s apart,
 * 3 s behind. At a few hundred kbit/s the blocks come every fraction of a second.
 *
 * A one-frame packet (code 0) becomes a code 3 packet of one frame with padding:
 *
 *   TOC (config, stereo flag, code 3) | 0x41 (padding flag, 1 frame) | padding length | frame | zeros
 *
 * The padding length is a run of bytes: each 255 adds 254 and goes on, the last (< 255) adds itself.
 */

const CODE_MASK = 0x03;
const CODE_ONE_FRAME = 0;
const CODE_ARBITRARY = 3;
const PADDED_ONE_FRAME = 0x41;

/** How many padding length bytes for `pad` bytes of padding. */
function lengthBytes(pad: number): number {
  return Math.floor(pad / 254) + 1;
}

/**
 * `packet` grown to `size` bytes with padding, or `packet` itself when it is already that
 * large or is not a one-frame packet (left as it is). Throws DecodeError on an empty packet.
 */
export function padOpusPacket(packet: Uint8Array, size: number): Uint8Array {
  if (packet.length === 0) throw new DecodeError("truncated", "an Opus packet has at least its TOC byte");
  if ((packet[0]! & CODE_MASK) !== CODE_ONE_FRAME) return packet;
  const frame = packet.subarray(1);
  // TOC + frame-count byte + the padding's length bytes + frame + padding = size.
  let pad = size - 2 - frame.length - 1;
  if (pad < 1) return packet;
  while (2 + lengthBytes(pad) + frame.length + pad > size && pad > 0) pad--;
  const out = new Uint8Array(2 + lengthBytes(pad) + frame.length + pad);
  out[0] = (packet[0]! & ~CODE_MASK) | CODE_ARBITRARY;
  out[1] = PADDED_ONE_FRAME;
  let at = 2;
  let left = pad;
  while (left >= 254) {
    out[at++] = 255;
    left -= 254;
  }
  out[at++] = left;
  out.set(frame, at);
  return out;
}
