import { createHmac, timingSafeEqual } from "node:crypto";
import { CONTROL_TAG_SIZE, encodeControl, type ControlMessage } from "../wire/control.ts";

/*
 * The tag on every control message of an authenticated connection:
 *
 *   tag = first 16 bytes of HMAC-SHA-256(direction's MAC key,
 *                                        u64 message number || framed message up to the tag)
 *
 * "Framed message up to the tag" is the length prefix, the type byte with T set and the
 * body, exactly as on the wire. The message number counts that direction's tagged
 * messages from 0, so a message replayed, dropped or reordered by someone on the path
 * fails; TCP delivers the genuine ones in order.
 */

const ZERO_TAG = new Uint8Array(CONTROL_TAG_SIZE);

function tagOf(key: Uint8Array, seq: bigint, signed: Uint8Array): Uint8Array {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(seq);
  return new Uint8Array(createHmac("sha256", key).update(n).update(signed).digest().subarray(0, CONTROL_TAG_SIZE));
}

/** Tags what one side sends and checks what it receives, each direction with its own key and count. */
export class ControlMac {
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  #sent = 0n;
  #received = 0n;
  /** Received messages whose tag was missing or wrong (dropped). */
  forged = 0;

  constructor(keys: { send: Uint8Array; receive: Uint8Array }) {
    this.#sendKey = keys.send;
    this.#receiveKey = keys.receive;
  }

  /** The framed bytes of `msg` with its tag. */
  seal(msg: ControlMessage): Uint8Array {
    const bytes = encodeControl({ ...msg, tag: ZERO_TAG });
    const end = bytes.length - CONTROL_TAG_SIZE;
    bytes.set(tagOf(this.#sendKey, this.#sent++, bytes.subarray(0, end)), end);
    return bytes;
  }

  /**
   * Whether `msg` (as decoded) carries the right tag for the next message from the peer.
   * A wrong or missing tag does not advance the count, so the genuine message that
   * follows a forged one still checks; it is counted in `forged`.
   */
  open(msg: ControlMessage): boolean {
    if (!msg.tag || msg.tag.length !== CONTROL_TAG_SIZE) {
      this.forged++;
      return false;
    }
    // Decoded messages re-encode to the bytes they came from, so this is what the sender tagged.
    const bytes = encodeControl(msg);
    const end = bytes.length - CONTROL_TAG_SIZE;
    const want = tagOf(this.#receiveKey, this.#received, bytes.subarray(0, end));
    if (!timingSafeEqual(want, msg.tag)) {
      this.forged++;
      return false;
    }
    this.#received++;
    return true;
  }
}
