import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { SIGNING_KEY_SIZE } from "../wire/control.ts";

/*
 * Every frame of a signed stream ends with the server's Ed25519 signature: the
 * frame's payload (what the datagrams carry, fragmented, encrypted or not) is
 *
 * +- - - - - - - - - - - - - - - - - -+---------------------------------------+
 * |  JPEG, frame length - 64 bytes    |  Ed25519 signature, 64 bytes          |
 * +- - - - - - - - - - - - - - - - - -+---------------------------------------+
 *
 * and the signature is over these 64 bytes, never over the datagram header, so one
 * signature serves every viewer (each unicast viewer's header has its own session id):
 *
 * +---------------------------------------------------------------+
 * |         context "lancam frame v1" and a 0 byte (16 bytes)      |   0
 * +---------------------------------------------------------------+
 * |        signing stream id (u32, from the welcome)               |  16
 * +---------------------------------------------------------------+
 * |        frame number (u32, as in the datagram header)           |  20
 * +---------------------------------------------------------------+
 * |        capture time, µs since the Unix epoch (u64)             |  24
 * +---------------------------------------------------------------+
 * |        SHA-256 of the JPEG bytes (32 bytes)                    |  32
 * +---------------------------------------------------------------+  64
 *
 * Ed25519 hashes its whole message; hashing the JPEG first keeps that to one pass
 * over the frame (SHA-256), whatever Ed25519 does inside.
 *
 * An audio packet is signed the same way, its Opus bytes in place of the JPEG, its
 * packet number in place of the frame number and the context "lancam audio v1": a
 * signature of one can never pass for the other.
 */

/** Bytes of an Ed25519 signature, the trailer of every signed frame. */
export const SIGNATURE_SIZE = 64;
/** Bytes of what is signed. */
export const SIGNED_MESSAGE_SIZE = 64;
const CONTEXT_SIZE = 16;
function context(text: string): Uint8Array {
  const c = new Uint8Array(CONTEXT_SIZE);
  c.set(new TextEncoder().encode(text));
  return c;
}
/** What a frame's signature starts with. */
export const FRAME_CONTEXT = context("lancam frame v1");
/** What an audio packet's signature starts with. */
export const AUDIO_CONTEXT = context("lancam audio v1");
const OFF_STREAM = 16;
const OFF_FRAME = 20;
const OFF_CAPTURED = 24;
const OFF_DIGEST = 32;
// An Ed25519 SubjectPublicKeyInfo is this prefix and the 32 raw key bytes (RFC 8410).
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** What a frame signature covers, besides the JPEG bytes. */
export interface SignedFields {
  streamId: number;
  frameNumber: number;
  capturedAt: number;
}

/** Writes the signed message for a frame (or, with AUDIO_CONTEXT, an audio packet) into `into` (SIGNED_MESSAGE_SIZE bytes) and returns it. */
export function signedMessage(into: Uint8Array, f: SignedFields, jpeg: Uint8Array, ctx: Uint8Array = FRAME_CONTEXT): Uint8Array {
  into.set(ctx, 0);
  const dv = new DataView(into.buffer, into.byteOffset, SIGNED_MESSAGE_SIZE);
  dv.setUint32(OFF_STREAM, f.streamId);
  dv.setUint32(OFF_FRAME, f.frameNumber);
  dv.setBigUint64(OFF_CAPTURED, BigInt(f.capturedAt));
  into.set(createHash("sha256").update(jpeg).digest(), OFF_DIGEST);
  return into;
}

/** A server's signing key pair; the private half never leaves this object. */
export class SigningKey {
  /** SIGNING_KEY_SIZE raw bytes, for the welcome. */
  readonly publicKey: Uint8Array;
  readonly #private: KeyObject;

  private constructor(privateKey: KeyObject, publicKey: KeyObject) {
    this.#private = privateKey;
    this.publicKey = rawPublicKey(publicKey);
  }

  /** A fresh random key pair. */
  static generate(): SigningKey {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    return new SigningKey(privateKey, publicKey);
  }

  /** The signature (SIGNATURE_SIZE bytes) of `message`. */
  sign(message: Uint8Array): Uint8Array {
    return sign(null, message, this.#private);
  }
}

/** A public key from its raw bytes, ready to verify with; RangeError when the bytes are no Ed25519 key. */
export function verifyingKey(raw: Uint8Array): KeyObject {
  if (raw.length !== SIGNING_KEY_SIZE) throw new RangeError(`an Ed25519 public key is ${SIGNING_KEY_SIZE} bytes, got ${raw.length}`);
  const der = new Uint8Array(SPKI_PREFIX.length + SIGNING_KEY_SIZE);
  der.set(SPKI_PREFIX);
  der.set(raw, SPKI_PREFIX.length);
  try {
    return createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
  } catch (e) {
    throw new RangeError(`not an Ed25519 public key: ${(e as Error).message}`);
  }
}

/** Whether `signature` is the holder of `key`'s signature of `message`. */
export function checkSignature(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_SIZE) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * How people compare a signing key by eye: the first 16 bytes of its SHA-256 in
 * hex, in groups of four ("3f2a:9c01:..."). Server and viewer print the same text.
 */
export function keyFingerprint(raw: Uint8Array): string {
  const hexText = createHash("sha256").update(raw).digest("hex").slice(0, 32);
  return hexText.match(/.{4}/g)!.join(":");
}

function rawPublicKey(k: KeyObject): Uint8Array {
  const der = new Uint8Array(k.export({ format: "der", type: "spki" }));
  if (der.length !== SPKI_PREFIX.length + SIGNING_KEY_SIZE) throw new Error(`unexpected Ed25519 SPKI of ${der.length} bytes`);
  return der.slice(SPKI_PREFIX.length);
}
