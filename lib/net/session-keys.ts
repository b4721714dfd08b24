import { createHash, createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { encodeControl, NONCE_SIZE, PROOF_SIZE, type Challenge, type Hello } from "../wire/control.ts";

/*
 * The key schedule of one authenticated control connection (docs/security.md):
 *
 *   token (UTF-8)
 *     | scrypt(N=2^14, r=8, p=1, salt "lancam-v1 token"), once per process
 *     v
 *   token key T (32)
 *     | HKDF-SHA-256(IKM = T, salt = server nonce || client nonce,
 *     |              info = "lancam-v1 session" || SHA-256(hello || challenge))
 *     v
 *   128 bytes = proof key | client MAC key | server MAC key | wrap key
 *
 * The client proves the token with HMAC(proof key, "lancam-v1 client proof" || transcript);
 * the server proves it with the tag on its welcome (the server MAC key). Both nonces are
 * fresh per connection, so nothing recorded from one handshake is worth anything in
 * another; each purpose and each direction has its own key, so nothing one side sends
 * can be reflected as the other side's proof.
 */

/** scrypt cost: ~90 ms once per process, and the same for every offline guess at a recorded handshake. */
const SCRYPT = { N: 1 << 14, r: 8, p: 1, maxmem: 64 << 20 } as const;
const TOKEN_SALT = "lancam-v1 token";
const SESSION_INFO = "lancam-v1 session";
const PROOF_LABEL = "lancam-v1 client proof";
/** Bytes of each derived key. */
export const KEY_SIZE = 32;

/** A token stretched for use as key material; computed once, kept for the process's life. */
export interface TokenKey {
  readonly bytes: Uint8Array;
}

/** The keys of one authenticated connection; each serves one purpose in one direction. */
export interface SessionKeys {
  /** Keys the client's proof. */
  readonly proof: Uint8Array;
  /** Tags every message the client sends after its response. */
  readonly clientMac: Uint8Array;
  /** Tags every message the server sends from its welcome on. */
  readonly serverMac: Uint8Array;
  /** Wraps the stream keys sent to this viewer (AES-256-GCM). */
  readonly wrap: Uint8Array;
}

/** Stretches `token` (slow on purpose: a recorded handshake can only be attacked by guessing tokens). */
export function tokenKey(token: string): TokenKey {
  if (token.length === 0) throw new RangeError("the token must not be empty");
  return { bytes: new Uint8Array(scryptSync(token.normalize("NFC"), TOKEN_SALT, KEY_SIZE, SCRYPT)) };
}

/** NONCE_SIZE fresh random bytes. */
export function randomNonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_SIZE));
}

/** The handshake so far, as both sides saw it: the hello, the challenge, and the client's nonce. */
export interface Transcript {
  hello: Hello;
  challenge: Challenge;
  clientNonce: Uint8Array;
}

/**
 * The connection's keys. The salt makes them unique to this pair of nonces; the info
 * binds them to the hello and challenge exactly as sent (canonical encodings), so a
 * peer that altered either on the way ends up with other keys.
 */
export function deriveSessionKeys(token: TokenKey, t: Transcript): SessionKeys {
  if (t.clientNonce.length !== NONCE_SIZE || t.challenge.serverNonce.length !== NONCE_SIZE) throw new RangeError(`nonces must be ${NONCE_SIZE} bytes`);
  const digest = createHash("sha256")
    .update(encodeControl({ ...t.hello, tag: undefined }))
    .update(encodeControl({ ...t.challenge, tag: undefined }))
    .digest();
  const salt = Buffer.concat([t.challenge.serverNonce, t.clientNonce]);
  const info = Buffer.concat([Buffer.from(SESSION_INFO), digest]);
  const okm = new Uint8Array(hkdfSync("sha256", token.bytes, salt, info, 4 * KEY_SIZE));
  return {
    proof: okm.slice(0, KEY_SIZE),
    clientMac: okm.slice(KEY_SIZE, 2 * KEY_SIZE),
    serverMac: okm.slice(2 * KEY_SIZE, 3 * KEY_SIZE),
    wrap: okm.slice(3 * KEY_SIZE),
  };
}

/** The client's proof that it holds the token, for this connection only. */
export function clientProof(keys: SessionKeys, t: Transcript): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", keys.proof).update(PROOF_LABEL).update(t.challenge.serverNonce).update(t.clientNonce).digest(),
  );
}

/** Whether `proof` is the client's proof for these keys; constant time. */
export function proofMatches(keys: SessionKeys, t: Transcript, proof: Uint8Array): boolean {
  if (proof.length !== PROOF_SIZE) return false;
  return timingSafeEqual(clientProof(keys, t), proof);
}
