import { randomBytes } from "node:crypto";
import { aadOf, sealFragment, STREAM_KEY_SIZE } from "../net/frame-cipher.ts";
import { encodeAudioHeader, sealedAudioSize } from "../wire/audio-datagram.ts";
import { encodeDatagramHeader, fragmentCountFor, HEADER_SIZE, PayloadType, setFragmentIndex, TAG_SIZE } from "../wire/datagram.ts";
import type { Frame } from "../wire/frame.ts";
import { seqDiff } from "../wire/seq.ts";

/** A stream key and the id datagrams name it by. */
export interface StreamKey {
  readonly id: number;
  readonly key: Uint8Array;
}

/** One frame encrypted once, for every viewer: what each viewer's datagrams carry, apart from the session id. */
export interface SealedFrame {
  seq: number;
  capturedAt: number;
  /** Plaintext bytes of the frame. */
  length: number;
  /** Plaintext bytes per fragment (all but the last). */
  fragmentSize: number;
  count: number;
  keyId: number;
  /** Fragment i's ciphertext and tag at i * (fragmentSize + TAG_SIZE). Overwritten by the next seal. */
  payloads: Uint8Array;
}

/**
 * Frames under one key, at most. The nonce is (frame number, fragment index), so a key
 * must retire long before frame numbers could come round: 2^24 frames is 6 days at 30
 * fps, far inside the 2^31 window in which serial numbers keep their order.
 */
export const MAX_FRAMES_PER_KEY = 2 ** 24;
/** Frame numbers a key may span (its first to its latest), for sources that skip numbers. */
const MAX_SPAN_PER_KEY = 2 ** 30;

/**
 * The server's stream key schedule and the frame encryption (docs/security.md). One
 * key at a time; a new one (random, id + 1) when a viewer leaves, when the key has
 * sealed MAX_FRAMES_PER_KEY frames, or when a frame number is not newer than the
 * last one sealed under it (a source that restarted its numbering): so a nonce never
 * repeats for a key.
 */
export class FrameSealer {
  readonly #randomKey: () => Uint8Array;
  readonly #maxFrames: number;
  #current: StreamKey;
  #frames = 0;
  #first: number | null = null;
  #last = 0;
  #buf = new Uint8Array(0);
  readonly #aad = new Uint8Array(HEADER_SIZE);
  /** Audio packets under the current key, and the last one's number (null: none yet). */
  #audio = 0;
  #audioLast: number | null = null;
  /** Audio packets sealed. */
  audioSealed = 0;
  /** Keys started after the first. */
  rotations = 0;
  /** Frames sealed (each once, whatever the number of viewers). */
  framesSealed = 0;

  constructor(opts: { randomKey?: () => Uint8Array; maxFramesPerKey?: number } = {}) {
    this.#randomKey = opts.randomKey ?? (() => new Uint8Array(randomBytes(STREAM_KEY_SIZE)));
    this.#maxFrames = opts.maxFramesPerKey ?? MAX_FRAMES_PER_KEY;
    this.#current = { id: 0, key: this.#newKey() };
  }

  /** The key frames are sealed with now. */
  get current(): StreamKey {
    return this.#current;
  }

  /** Starts a new key: frames sealed from now on are unreadable with any earlier one. */
  rotate(): StreamKey {
    this.#current = { id: (this.#current.id + 1) & 0xffff, key: this.#newKey() };
    this.#frames = 0;
    this.#first = null;
    this.#audio = 0;
    this.#audioLast = null;
    this.rotations++;
    return this.#current;
  }

  /**
   * Encrypts `frame` in fragments of `fragmentSize` plaintext bytes. `rotated` says a
   * new key was started first: its holders must be sent it before these datagrams.
   */
  seal(frame: Pick<Frame, "seq" | "capturedAt" | "jpeg">, fragmentSize: number): { sealed: SealedFrame; rotated: boolean } {
    const rotated = this.#needsNewKey(frame.seq);
    if (rotated) this.rotate();
    const { id, key } = this.#current;
    const length = frame.jpeg.length;
    const count = fragmentCountFor(length, fragmentSize);
    const stride = fragmentSize + TAG_SIZE;
    if (this.#buf.length < count * stride) this.#buf = new Uint8Array(Math.ceil(count * 1.25) * stride);
    const aad = this.#aad;
    // Session id 0: the field is left out of what the tag covers (each viewer's differs).
    encodeDatagramHeader(aad, 0, {
      encrypted: true, keyId: id, payloadType: PayloadType.Jpeg, sessionId: 0, frameNumber: frame.seq,
      fragmentIndex: 0, fragmentCount: count, frameLength: length, fragmentSize, capturedAt: frame.capturedAt,
    });
    for (let i = 0; i < count; i++) {
      setFragmentIndex(aad, 0, i);
      const piece = frame.jpeg.subarray(i * fragmentSize, Math.min(length, (i + 1) * fragmentSize));
      sealFragment(key, aadOf(aad, aad), frame.seq, i, piece, this.#buf.subarray(i * stride, i * stride + piece.length + TAG_SIZE));
    }
    this.#frames++;
    this.#first ??= frame.seq;
    this.#last = frame.seq;
    this.framesSealed++;
    return { sealed: { seq: frame.seq, capturedAt: frame.capturedAt, length, fragmentSize, count, keyId: id, payloads: this.#buf }, rotated };
  }

  /**
   * One audio datagram, sealed (session id 0: each copy gets its viewer's), from the
   * packet's plaintext payload. Audio numbers its packets on its own; the nonce keeps
   * them apart from frames (lib/net/frame-cipher.ts), and the same rules start a new
   * key, so an audio nonce never repeats either. `rotated` as for `seal`.
   */
  sealAudio(seq: number, capturedAt: number, payload: Uint8Array): { datagram: Uint8Array; rotated: boolean } {
    const last = this.#audioLast;
    const rotated = last !== null && (this.#audio >= this.#maxFrames || seqDiff(seq, last) <= 0);
    if (rotated) this.rotate();
    const { id, key } = this.#current;
    const datagram = new Uint8Array(sealedAudioSize(payload.length));
    encodeAudioHeader(datagram, { sessionId: 0, seq, capturedAt, keyId: id }, payload.length);
    sealFragment(key, aadOf(datagram, this.#aad), seq, 0, payload, datagram.subarray(HEADER_SIZE), PayloadType.Opus);
    this.#audio++;
    this.#audioLast = seq;
    this.audioSealed++;
    return { datagram, rotated };
  }

  #needsNewKey(seq: number): boolean {
    if (this.#first === null) return false;
    return this.#frames >= this.#maxFrames || seqDiff(seq, this.#last) <= 0 || seqDiff(seq, this.#first) >= MAX_SPAN_PER_KEY;
  }

  #newKey(): Uint8Array {
    const k = this.#randomKey();
    if (k.length !== STREAM_KEY_SIZE) throw new RangeError(`a stream key is ${STREAM_KEY_SIZE} bytes, got ${k.length}`);
    return k;
  }
}
