import { AUDIO_CONTEXT, keyFingerprint, SIGNATURE_SIZE, SIGNED_MESSAGE_SIZE, signedMessage, SigningKey } from "../net/frame-signature.ts";
import type { AudioPacket } from "../wire/audio-packet.ts";
import type { FrameSigning } from "../wire/control.ts";
import type { Frame } from "../wire/frame.ts";

/** Headroom when the buffer grows, so frames that creep up in size do not reallocate every time. */
const GROWTH = 1.25;

/**
 * Signs each frame once, for every viewer and the multicast group alike: the
 * frame's bytes become the JPEG followed by the server's Ed25519 signature
 * (lib/net/frame-signature.ts), and are then fragmented (and encrypted) as before.
 * The key is made at each start and kept in memory only (docs/security.md says why).
 */
export class FrameSigner {
  /** What every welcome carries so viewers can check the signatures. */
  readonly signing: FrameSigning;
  /** How people compare the key by eye; the server prints it at start. */
  readonly fingerprint: string;
  /** Frames signed (each once, whatever the number of viewers). */
  framesSigned = 0;
  readonly #key: SigningKey;
  readonly #message = new Uint8Array(SIGNED_MESSAGE_SIZE);
  #buf = new Uint8Array(0);

  /** `streamId`: the u32 the signatures cover; new at each start, so frames of one run are never valid in another. */
  constructor(streamId: number, key: SigningKey = SigningKey.generate()) {
    if (!Number.isInteger(streamId) || streamId < 0 || streamId > 0xffffffff) throw new RangeError(`invalid streamId=${streamId}: expected a u32`);
    this.#key = key;
    this.signing = { publicKey: key.publicKey, streamId };
    this.fingerprint = keyFingerprint(key.publicKey);
  }

  /**
   * `frame` with its signature appended: `jpeg` of the result is a view of a reused
   * buffer, valid until the next call (the fragmenters copy it at once).
   */
  sign<F extends Pick<Frame, "seq" | "capturedAt" | "jpeg">>(frame: F): F {
    const n = frame.jpeg.length;
    if (this.#buf.length < n + SIGNATURE_SIZE) this.#buf = new Uint8Array(Math.ceil((n + SIGNATURE_SIZE) * GROWTH));
    const message = signedMessage(this.#message, { streamId: this.signing.streamId, frameNumber: frame.seq, capturedAt: frame.capturedAt }, frame.jpeg);
    this.#buf.set(frame.jpeg, 0);
    this.#buf.set(this.#key.sign(message), n);
    this.framesSigned++;
    return { ...frame, jpeg: this.#buf.subarray(0, n + SIGNATURE_SIZE) };
  }

  /** An audio packet's payload: its Opus bytes followed by their signature (a new buffer). */
  signAudio(packet: Pick<AudioPacket, "seq" | "capturedAt" | "data">): Uint8Array {
    const n = packet.data.length;
    const out = new Uint8Array(n + SIGNATURE_SIZE);
    out.set(packet.data, 0);
    const message = signedMessage(this.#message, { streamId: this.signing.streamId, frameNumber: packet.seq, capturedAt: packet.capturedAt }, packet.data, AUDIO_CONTEXT);
    out.set(this.#key.sign(message), n);
    this.audioSigned++;
    return out;
  }

  /** Audio packets signed. */
  audioSigned = 0;
}
