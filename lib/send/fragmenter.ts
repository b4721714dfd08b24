import {
  encodeDatagramHeader,
  setFragmentIndex,
  fragmentCountFor,
  HEADER_SIZE,
  MAX_FRAGMENTS,
  MAX_FRAME_BYTES,
  MAX_MTU,
  MIN_MTU,
  PayloadType,
  TAG_SIZE,
} from "../wire/datagram.ts";
import type { Frame } from "../wire/frame.ts";
import type { SealedFrame } from "./frame-sealer.ts";

/** Headroom when the buffer grows, so a stream whose frames creep up in size does not regrow every frame. */
const GROWTH = 1.25;

/**
 * Cuts frames into datagrams (header + payload <= mtu) for one session, writing
 * them into one reused buffer: datagram i sits at i * mtu. The buffer grows only
 * when a bigger frame arrives; per-datagram allocations would cost page faults.
 * An encrypted frame comes already sealed (FrameSealer, once for all viewers): only
 * this session's header is written around each fragment's ciphertext.
 */
export class Fragmenter {
  /** Largest datagram this fragmenter makes (UDP payload bytes). */
  readonly mtu: number;
  /** Payload bytes in every datagram but a frame's last. */
  readonly payloadSize: number;
  /** Frame bytes in every encrypted datagram but a frame's last: the payload less the GCM tag. */
  readonly sealedFragmentSize: number;
  #buf = new Uint8Array(0);
  /** Cached full-size views, one per slot of #buf; only a frame's last datagram needs a fresh one. */
  #slots: Uint8Array[] = [];

  /** `mtu`: the UDP payload budget per datagram, MIN_MTU..MAX_MTU (DEFAULT_MTU fits any Ethernet LAN). */
  constructor(mtu: number) {
    if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
      throw new RangeError(`invalid mtu=${mtu}: expected an integer ${MIN_MTU}..${MAX_MTU}`);
    }
    this.mtu = mtu;
    this.payloadSize = mtu - HEADER_SIZE;
    this.sealedFragmentSize = this.payloadSize - TAG_SIZE;
  }

  /** Datagrams needed for a frame of `length` bytes. */
  fragmentCount(length: number): number {
    return fragmentCountFor(length, this.payloadSize);
  }

  /** Bytes held by the reused buffer. */
  get capacity(): number {
    return this.#buf.length;
  }

  /**
   * The datagrams for `frame` (its `seq` is the frame number). The array is the
   * caller's; the bytes it views are overwritten by the next call. Throws an Error
   * for an empty frame, one above MAX_FRAME_BYTES or needing more than MAX_FRAGMENTS
   * datagrams, and a RangeError for a session id, seq or capture time the header cannot carry.
   */
  fragment(frame: Pick<Frame, "seq" | "capturedAt" | "jpeg">, sessionId: number): Uint8Array[] {
    const { jpeg } = frame;
    const length = jpeg.length;
    if (length === 0) throw new Error(`frame ${frame.seq} is empty: nothing to send`);
    if (length > MAX_FRAME_BYTES) {
      throw new Error(`frame ${frame.seq} is ${length} bytes, above the ${MAX_FRAME_BYTES}-byte maximum (lower the quality or the resolution)`);
    }
    const count = this.fragmentCount(length);
    if (count > MAX_FRAGMENTS) {
      throw new Error(`frame ${frame.seq} of ${length} bytes needs ${count} datagrams at mtu=${this.mtu}, at most ${MAX_FRAGMENTS} allowed`);
    }
    this.#reserve(count);
    const buf = this.#buf;
    const mtu = this.mtu;
    const p = this.payloadSize;
    const header = {
      encrypted: false,
      payloadType: PayloadType.Jpeg,
      sessionId,
      frameNumber: frame.seq,
      fragmentIndex: 0,
      fragmentCount: count,
      frameLength: length,
      fragmentSize: p,
      capturedAt: frame.capturedAt,
    };
    encodeDatagramHeader(buf, 0, header);
    for (let i = 0; i < count; i++) {
      const at = i * mtu;
      if (i > 0) {
        buf.copyWithin(at, 0, HEADER_SIZE);
        setFragmentIndex(buf, at, i);
      }
      buf.set(jpeg.subarray(i * p, Math.min(length, (i + 1) * p)), at + HEADER_SIZE);
    }
    return this.#views(count, HEADER_SIZE + length - (count - 1) * p);
  }

  /**
   * The datagrams of a frame FrameSealer encrypted (with fragments of
   * sealedFragmentSize), stamped with `sessionId`. Like `fragment`, the bytes are
   * overwritten by the next call.
   */
  fragmentSealed(sealed: SealedFrame, sessionId: number): Uint8Array[] {
    const { count, fragmentSize, length } = sealed;
    if (fragmentSize !== this.sealedFragmentSize) throw new RangeError(`sealed fragments of ${fragmentSize} bytes, this fragmenter makes ${this.sealedFragmentSize}`);
    this.#reserve(count);
    const buf = this.#buf;
    const mtu = this.mtu;
    const stride = fragmentSize + TAG_SIZE;
    encodeDatagramHeader(buf, 0, {
      encrypted: true, keyId: sealed.keyId, payloadType: PayloadType.Jpeg, sessionId, frameNumber: sealed.seq,
      fragmentIndex: 0, fragmentCount: count, frameLength: length, fragmentSize, capturedAt: sealed.capturedAt,
    });
    const lastPiece = length - (count - 1) * fragmentSize;
    for (let i = 0; i < count; i++) {
      const at = i * mtu;
      if (i > 0) {
        buf.copyWithin(at, 0, HEADER_SIZE);
        setFragmentIndex(buf, at, i);
      }
      const n = (i < count - 1 ? fragmentSize : lastPiece) + TAG_SIZE;
      buf.set(sealed.payloads.subarray(i * stride, i * stride + n), at + HEADER_SIZE);
    }
    return this.#views(count, HEADER_SIZE + lastPiece + TAG_SIZE);
  }

  /** The first `count` slots, the last cut to `lastBytes`. */
  #views(count: number, lastBytes: number): Uint8Array[] {
    const out = this.#slots.slice(0, count);
    const lastAt = (count - 1) * this.mtu;
    out[count - 1] = this.#buf.subarray(lastAt, lastAt + lastBytes);
    return out;
  }

  #reserve(count: number): void {
    if (this.#slots.length >= count) return;
    const maxSlots = Math.min(MAX_FRAGMENTS, this.fragmentCount(MAX_FRAME_BYTES));
    const slots = Math.min(maxSlots, Math.max(count, Math.ceil(count * GROWTH)));
    this.#buf = new Uint8Array(slots * this.mtu);
    this.#slots = [];
    for (let i = 0; i < slots; i++) this.#slots.push(this.#buf.subarray(i * this.mtu, (i + 1) * this.mtu));
  }
}
