/**
 * One Opus packet as it leaves the audio capture, crosses the network and reaches
 * the player, the recorder, the browser view and the publishers.
 */
export interface AudioPacket {
  /** Packet counter: +1 per packet, wraps at 2^32; a gap is a lost packet. */
  seq: number;
  /** Capture time of the packet's first sample, µs since the Unix epoch, on the same clock as Frame.capturedAt. */
  capturedAt: number;
  /** Samples per channel the packet decodes to, at 48 kHz (960 for 20 ms). */
  samples: number;
  /** The Opus packet (RFC 6716), as the encoder made it. */
  data: Uint8Array;
}

/** What an audio stream is: the welcome says it, every consumer needs it. */
export interface AudioFormat {
  codec: "opus";
  /** Always 48000: Opus decodes at 48 kHz, whatever the input rate. */
  sampleRate: 48000;
  channels: 1 | 2;
  /** Duration of one packet, ms (20). */
  frameMs: number;
  /** Target bits per second of the encoder. */
  bitrate: number;
}

/** Opus at 48 kHz, mono, 20 ms packets, 64 kbit/s. */
export const DEFAULT_AUDIO_FORMAT: AudioFormat = { codec: "opus", sampleRate: 48000, channels: 1, frameMs: 20, bitrate: 64_000 };

/** Samples per channel in one packet of `format`. */
export function samplesPerPacket(format: AudioFormat): number {
  return (format.sampleRate * format.frameMs) / 1000;
}

/** Largest Opus packet accepted anywhere (RFC 6716 3.4: 1275 bytes a frame, a 20 ms packet has at most 1). */
export const MAX_OPUS_PACKET = 1275 * 3;
