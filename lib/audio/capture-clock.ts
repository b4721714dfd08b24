/**
 * Capture times for the packets ffmpeg's Opus encoder hands back. Two pure parts:
 *
 * - StreamPosition: where each packet starts in the encoder's input, in samples from
 *   its first input sample: packet i encodes input samples 960 i on. That is the
 *   capture time every AudioPacket carries, whoever made it. Opus decodes with a delay
 *   (the OpusHead's pre-skip, 312 samples for libopus): decoded sample k of the stream is
 *   input sample k - preSkip, so whoever decodes places a packet's decoded samples
 *   pre-skip samples before its capture time (the player does; the recorder's and the
 *   browser's containers say the pre-skip, and their decoders drop it).
 * - EnvelopeClock: for a live device, whose samples carry no wall-clock time of their
 *   own, ties the stream position to the wall clock by the lower envelope of
 *   (arrival - position): a packet never arrives before it was captured plus the
 *   pipeline's shortest delay, and the packets that came soonest show that delay.
 */

/** Samples per second of every Opus stream. */
export const OPUS_RATE = 48_000;

/** How a StreamPosition counts: by the pages' granule positions, or by adding up packet lengths. */
export type PositionMode = "granule" | "count";

/**
 * Input position of each packet's first decoded sample. "granule" trusts the Ogg
 * granule (exact for a paced input whose timestamps are the samples themselves: the
 * test tone, a file), "count" adds up what the packets decode to (a live device, whose
 * ffmpeg timestamps jitter with the moment each read returned).
 */
export class StreamPosition {
  readonly #mode: PositionMode;
  /** Decoded samples before the next packet. */
  #decoded = 0;

  constructor(mode: PositionMode) {
    this.#mode = mode;
  }

  /**
   * The input sample (from 0) the packet's encoding starts at; `granule` is the
   * packet's page granule, or -1 when another packet ended that page later.
   */
  push(samples: number, granule: bigint): number {
    // The granule counts decoded samples up to the packet's end, pre-skip included; the
    // decoded stream is the input delayed by the pre-skip, so a packet's decoded start
    // is the input sample its encoding starts at.
    if (this.#mode === "granule" && granule >= 0n) this.#decoded = Number(granule) - samples;
    const at = this.#decoded;
    this.#decoded += samples;
    return at;
  }
}

/** How fast EnvelopeClock lets its offset grow, µs per second of stream: a device clock up to 200 ppm slower than the wall clock. */
export const ENVELOPE_RISE_PER_SECOND = 200;

/**
 * Wall-clock capture times for a live stream: capturedAt = position + offset - latency,
 * where offset is the lower envelope of (arrival - position). It drops at once to any
 * packet that came sooner, and otherwise rises by at most ENVELOPE_RISE_PER_SECOND,
 * so it follows a device clock that runs slow without following the jitter of late
 * packets. `latencyMicros` is the part of the shortest delay the envelope cannot see:
 * the time from a sample's capture to the first moment its packet could leave ffmpeg
 * (device buffering, the encoder's frame and look-ahead), measured once (see
 * LIVE_PIPELINE_LATENCY in audio-capture.ts). Times never go backwards.
 */
export class EnvelopeClock {
  readonly #latency: number;
  readonly #rise: number;
  #offset: number | null = null;
  #lastPosition = 0;
  #last = -Infinity;

  constructor(latencyMicros: number, risePerSecond = ENVELOPE_RISE_PER_SECOND) {
    this.#latency = latencyMicros;
    this.#rise = risePerSecond;
  }

  /** The capture time (µs) of a packet whose first sample is at `positionMicros` of the stream and that arrived at `arrivalMicros`. */
  push(positionMicros: number, arrivalMicros: number): number {
    const seen = arrivalMicros - positionMicros;
    if (this.#offset === null) this.#offset = seen;
    else {
      const allowed = this.#offset + (Math.max(0, positionMicros - this.#lastPosition) * this.#rise) / 1e6;
      this.#offset = Math.min(seen, allowed);
    }
    this.#lastPosition = positionMicros;
    const at = Math.max(this.#last, Math.round(positionMicros + this.#offset - this.#latency));
    this.#last = at;
    return at;
  }

  /** The current offset (arrival - position), µs; null before the first packet. */
  get offset(): number | null {
    return this.#offset;
  }
}
