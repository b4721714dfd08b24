import { timingSafeEqual } from "node:crypto";
import type { Fields } from "../log/format.ts";
import { deriveSessionKeys, proofMatches, randomNonce, type SessionKeys, type TokenKey } from "../net/session-keys.ts";
import { CAP_DECRYPT, CAP_TOKEN_AUTH, type Challenge, type Hello, type Response } from "../wire/control.ts";
import { AuthLockout, type LockoutOptions } from "./auth-lockout.ts";

/** How viewers prove the token. */
export interface AdmissionAuth {
  /** The server's token, stretched (lib/net/session-keys.ts). */
  token: TokenKey;
  /** Server nonces; random by default. */
  nonce?: () => Uint8Array;
  lockout?: LockoutOptions;
}

/** A refusal for a reason of authentication: logged `client refused reason=auth detail=...`, final for the viewer. */
export interface AuthRefusal {
  kind: "refuse";
  detail: string;
  /** What the viewer is told. */
  text: string;
  fields: Fields;
  /** A lockout that this failure started or lengthened, for its own log line. */
  lockout?: { address: string; seconds: number; failures: number };
}

/**
 * The token exchange on the server's side: a hello is answered with a challenge (a
 * server nonce) or refused; the response's proof is checked against both nonces and
 * the hello and challenge as sent, so a proof recorded from another connection (replay)
 * is wrong here, and a client nonce equal to the server's own (a reflection) is refused
 * outright. Every wrong proof counts toward its address's lockout (AuthLockout).
 * No sockets: the clock is passed in.
 */
export class TokenExchange {
  readonly #token: TokenKey;
  readonly #nonce: () => Uint8Array;
  readonly #lockout: AuthLockout;
  /** Wrong token proofs (each logged as refused reason=auth). */
  failures = 0;

  constructor(auth: AdmissionAuth) {
    this.#token = auth.token;
    this.#nonce = auth.nonce ?? randomNonce;
    this.#lockout = new AuthLockout(auth.lockout);
  }

  /** A hello from `address`: the challenge to send, or why it is refused before any is spent. */
  hello(address: string, hello: Hello, now: number): { kind: "challenge"; challenge: Challenge } | AuthRefusal {
    const locked = this.#lockedOut(address, now);
    if (locked) return locked;
    if (!(hello.capabilities & CAP_TOKEN_AUTH)) {
      return { kind: "refuse", detail: "no token", text: "this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)", fields: {} };
    }
    if (!(hello.capabilities & CAP_DECRYPT)) {
      return { kind: "refuse", detail: "cannot decrypt", text: "this server encrypts its frames and this viewer cannot decrypt them", fields: {} };
    }
    return { kind: "challenge", challenge: { type: "challenge", serverNonce: this.#nonce() } };
  }

  /** The response to `challenge`: the session keys when the proof is right, else why not. */
  response(address: string, hello: Hello, challenge: Challenge, response: Response, now: number): { kind: "welcome"; keys: SessionKeys } | AuthRefusal {
    const transcript = { hello, challenge, clientNonce: response.clientNonce };
    const reflected = timingSafeEqual(transcript.clientNonce, challenge.serverNonce);
    const keys = deriveSessionKeys(this.#token, transcript);
    if (reflected || !proofMatches(keys, transcript, response.proof)) {
      this.failures++;
      const { failures, lockedMs } = this.#lockout.failed(address, now);
      const refusal: AuthRefusal = { kind: "refuse", detail: reflected ? "reflected nonce" : "wrong token", text: "wrong token", fields: { udp: hello.udpPort, failures } };
      if (lockedMs > 0) refusal.lockout = { address, seconds: lockedMs / 1000, failures };
      return refusal;
    }
    this.#lockout.succeeded(address);
    return { kind: "welcome", keys };
  }

  #lockedOut(address: string, now: number): AuthRefusal | null {
    const locked = this.#lockout.lockedFor(address, now);
    if (locked <= 0) return null;
    const seconds = Math.ceil(locked / 1000);
    return { kind: "refuse", detail: "locked out", text: `wrong token too often from ${address}: try again in ${seconds} s`, fields: { retryInSec: seconds } };
  }
}
