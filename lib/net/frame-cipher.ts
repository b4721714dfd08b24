import { createCipheriv, createDecipheriv } from "node:crypto";
import { WRAP_NONCE_SIZE, WRAPPED_KEY_SIZE } from "../wire/control.ts";
import { HEADER_SIZE, SESSION_ID_OFFSET, SESSION_ID_SIZE, TAG_SIZE } from "../wire/datagram.ts";

/*
 * AES-256-GCM for frames and for the keys that decrypt them (docs/security.md).
 *
 * A fragment is sealed on its own, so a viewer checks every datagram before it
 * touches the reassembler:
 *
 *   nonce (12)  = frame number (u32) || fragment index (u16) || payload type (u8) || 5 zero bytes
 *   AAD   (32)  = the datagram header with the session id field zeroed
 *   payload     = ciphertext of the fragment's bytes || 16-byte tag
 *
 * The session id is the only header field left out: it differs per viewer, so
 * covering it would mean one encryption per viewer. Every other field (frame number,
 * index, count, lengths, key id, capture time) is authenticated. A nonce repeats only
 * if a frame number repeats under one key, which the sender's key schedule prevents
 * (lib/send/frame-sealer.ts). Audio packets (payload type 2) are numbered on their own
 * under the same key: the payload type in the nonce keeps frame 7 and audio packet 7
 * apart (JPEG is type 0, so frames' nonces are as they always were).
 */

const ALGORITHM = "aes-256-gcm";
/** Bytes of a stream key. */
export const STREAM_KEY_SIZE = 32;
const NONCE_SIZE = 12;
const WRAP_LABEL = Buffer.from("lancam-v1 stream key");

/** AEAD operations done by this process: tests and benchmarks count them. */
export const cipherCounters = { sealed: 0, opened: 0 };

function datagramNonce(frameNumber: number, index: number, payloadType: number): Buffer {
  const n = Buffer.alloc(NONCE_SIZE);
  n.writeUInt32BE(frameNumber >>> 0, 0);
  n.writeUInt16BE(index, 4);
  n.writeUInt8(payloadType, 6);
  return n;
}

/** Copies the header into `into` (HEADER_SIZE bytes) with the session id zeroed: the AAD of its fragment. */
export function aadOf(header: Uint8Array, into: Uint8Array): Uint8Array {
  into.set(header.subarray(0, HEADER_SIZE));
  into.fill(0, SESSION_ID_OFFSET, SESSION_ID_OFFSET + SESSION_ID_SIZE);
  return into;
}

/**
 * Encrypts one fragment: `out` receives plaintext.length bytes of ciphertext and the
 * TAG_SIZE tag. `aad` must be the fragment's header with the session id zeroed.
 */
export function sealFragment(key: Uint8Array, aad: Uint8Array, frameNumber: number, index: number, plaintext: Uint8Array, out: Uint8Array, payloadType = 0): void {
  const c = createCipheriv(ALGORITHM, key, datagramNonce(frameNumber, index, payloadType), { authTagLength: TAG_SIZE });
  c.setAAD(aad);
  const body = c.update(plaintext);
  c.final();
  out.set(body, 0);
  out.set(c.getAuthTag(), plaintext.length);
  cipherCounters.sealed++;
}

/**
 * Decrypts one fragment's payload (ciphertext and tag) into `out`; false, with `out`
 * unspecified, when the tag does not check (forged, damaged, or another key).
 */
export function openFragment(key: Uint8Array, aad: Uint8Array, frameNumber: number, index: number, payload: Uint8Array, out: Uint8Array, payloadType = 0): boolean {
  if (payload.length < TAG_SIZE) return false;
  const n = payload.length - TAG_SIZE;
  const d = createDecipheriv(ALGORITHM, key, datagramNonce(frameNumber, index, payloadType), { authTagLength: TAG_SIZE });
  d.setAAD(aad);
  d.setAuthTag(payload.subarray(n));
  const body = d.update(payload.subarray(0, n));
  try {
    d.final();
  } catch {
    return false;
  }
  out.set(body, 0);
  cipherCounters.opened++;
  return true;
}

function wrapAad(keyId: number): Buffer {
  const b = Buffer.alloc(WRAP_LABEL.length + 2);
  WRAP_LABEL.copy(b);
  b.writeUInt16BE(keyId, WRAP_LABEL.length);
  return b;
}

/** The stream key encrypted for one session (its key message's `wrapped`), bound to `keyId`. */
export function wrapStreamKey(wrapKey: Uint8Array, nonce: Uint8Array, keyId: number, streamKey: Uint8Array): Uint8Array {
  if (nonce.length !== WRAP_NONCE_SIZE || streamKey.length !== STREAM_KEY_SIZE) throw new RangeError("bad wrap nonce or stream key size");
  const c = createCipheriv(ALGORITHM, wrapKey, nonce, { authTagLength: TAG_SIZE });
  c.setAAD(wrapAad(keyId));
  const body = Buffer.concat([c.update(streamKey), c.final(), c.getAuthTag()]);
  return new Uint8Array(body);
}

/** The stream key from a key message, or null when it does not check (forged, another session's). */
export function unwrapStreamKey(wrapKey: Uint8Array, nonce: Uint8Array, keyId: number, wrapped: Uint8Array): Uint8Array | null {
  if (nonce.length !== WRAP_NONCE_SIZE || wrapped.length !== WRAPPED_KEY_SIZE) return null;
  const d = createDecipheriv(ALGORITHM, wrapKey, nonce, { authTagLength: TAG_SIZE });
  d.setAAD(wrapAad(keyId));
  d.setAuthTag(wrapped.subarray(STREAM_KEY_SIZE));
  const body = d.update(wrapped.subarray(0, STREAM_KEY_SIZE));
  try {
    d.final();
  } catch {
    return null;
  }
  return new Uint8Array(body);
}
