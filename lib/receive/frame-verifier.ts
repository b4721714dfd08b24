import type { KeyObject } from "node:crypto";
import { AUDIO_CONTEXT, checkSignature, FRAME_CONTEXT, keyFingerprint, SIGNATURE_SIZE, SIGNED_MESSAGE_SIZE, signedMessage, verifyingKey } from "../net/frame-signature.ts";
import type { FrameSigning } from "../wire/control.ts";

/**
 * Checks the server's signature on each completed frame of a signed session
 * (lib/net/frame-signature.ts), before anything shows or records it. Built from the
 * welcome's signing key; once the welcome said frames are signed, a frame without a
 * valid signature (forged, altered, unsigned, another key or stream) is refused.
 */
export class FrameVerifier {
  /** How people compare the key by eye (as the server prints it). */
  readonly fingerprint: string;
  readonly #key: KeyObject;
  readonly #streamId: number;
  readonly #message = new Uint8Array(SIGNED_MESSAGE_SIZE);

  /** Throws RangeError when the welcome's key is no Ed25519 public key. */
  constructor(signing: FrameSigning) {
    this.#key = verifyingKey(signing.publicKey);
    this.#streamId = signing.streamId;
    this.fingerprint = keyFingerprint(signing.publicKey);
  }

  /**
   * The JPEG of a completed frame's payload (a view of it, the signature cut off),
   * or null when the signature does not check or there is no room for one.
   */
  verify(frameNumber: number, capturedAt: number, payload: Uint8Array, ctx: Uint8Array = FRAME_CONTEXT): Uint8Array | null {
    if (payload.length <= SIGNATURE_SIZE) return null;
    const jpeg = payload.subarray(0, payload.length - SIGNATURE_SIZE);
    const message = signedMessage(this.#message, { streamId: this.#streamId, frameNumber, capturedAt }, jpeg, ctx);
    return checkSignature(this.#key, message, payload.subarray(payload.length - SIGNATURE_SIZE)) ? jpeg : null;
  }

  /** The Opus bytes of an audio packet's payload (a view), or null when its signature does not check. */
  verifyAudio(seq: number, capturedAt: number, payload: Uint8Array): Uint8Array | null {
    return this.verify(seq, capturedAt, payload, AUDIO_CONTEXT);
  }
}
