/**
 * One Opus stream's decoder (libopus in the addon): packets in, 48 kHz signed 16-bit
 * PCM out, and packet loss concealment for a packet that never came.
 */
import { cv, type NativeOpusDecoder } from "../native/cv.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { MAX_PACKET_SAMPLES } from "../wire/opus-toc.ts";

/** Concealment comes in whole 2.5 ms steps (libopus's shortest frame): 120 samples at 48 kHz. */
export const CONCEAL_STEP_SAMPLES = 120;

/** A decoder for 1 or 2 channels; `decode` and `conceal` return interleaved samples. */
export class OpusDecoder implements Disposable {
  readonly channels: 1 | 2;
  #native: NativeOpusDecoder | null;

  private constructor(native: NativeOpusDecoder, channels: 1 | 2) {
    this.#native = native;
    this.channels = channels;
  }

  /** A fresh decoder; throws (CvLoadError when the addon does not load, Error when libopus refuses). */
  static create(channels: 1 | 2): OpusDecoder {
    const made = cv().opusDecoderCreate(channels);
    if (typeof made === "number") throw new Error(`cannot create an Opus decoder: ${cv().opusErrorText(made)}`);
    return new OpusDecoder(made, channels);
  }

  /**
   * The samples `packet` decodes to (at most `maxSamples` per channel, MAX_PACKET_SAMPLES
   * by default); throws DecodeError for a packet libopus refuses, which the caller
   * conceals instead.
   */
  decode(packet: Uint8Array, maxSamples = MAX_PACKET_SAMPLES): Int16Array {
    return this.#run(packet, maxSamples);
  }

  /**
   * `samples` per channel of concealment for a lost packet (rounded up to a whole
   * CONCEAL_STEP_SAMPLES): libopus continues the sound it last decoded and fades it.
   */
  conceal(samples: number): Int16Array {
    const n = Math.min(MAX_PACKET_SAMPLES, Math.max(CONCEAL_STEP_SAMPLES, Math.ceil(samples / CONCEAL_STEP_SAMPLES) * CONCEAL_STEP_SAMPLES));
    return this.#run(null, n);
  }

  #run(packet: Uint8Array | null, maxSamples: number): Int16Array {
    if (!this.#native) throw new Error("the Opus decoder is closed");
    const out = cv().opusDecode(this.#native, packet, maxSamples);
    if (typeof out === "number") {
      throw new DecodeError("bad-value", `Opus ${packet ? `packet of ${packet.length} bytes` : "concealment"} does not decode: ${cv().opusErrorText(out)} (${out})`);
    }
    // The addon's Buffer is a fresh copy: view it as samples where it is aligned.
    if (out.byteOffset % 2 === 0) return new Int16Array(out.buffer, out.byteOffset, out.byteLength / 2);
    return new Int16Array(new Uint8Array(out).buffer);
  }

  /** Frees the native decoder; later calls throw. */
  close(): void {
    if (!this.#native) return;
    cv().opusDecoderDestroy(this.#native);
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
