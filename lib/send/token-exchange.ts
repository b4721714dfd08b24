import { timingSafeEqual } from "node:crypto";
import type { Fields } from "../log/format.ts";
import { deriveSessionKeys, proofMatches, randomNonce, type SessionKeys, type TokenKey } from "../net/session-keys.ts";
import { CAP_DECRYPT, CAP_TOKEN_AUTH, type Challenge, type Hello, type Response } from "../wire/control.ts";
import { AuthLockout, networkOf, type Lockout, type LockoutOptions } from "./auth-lockout.ts";

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
  /** Security events this refusal started (lockouts), each its own log line. */
  events: { message: string; fields: Fields }[];
}

/** At most one "auth lockout table full" line in this interval, with the count since the last. */
const TABLE_FULL_LOG_MS = 10_000;

/**
 * The token exchange on the server's side: a hello is answered with a challenge (a
 * server nonce) or refused; the response's proof is checked against both nonces and
 * the hello and challenge as sent, so a proof recorded from another connection (replay)
 * is wrong here, and a client nonce equal to the server's own (a reflection) is refused
 * outright. Lockouts (AuthLockout) are checked at the hello and again when the proof
 * arrives, so a proof is never looked at while its address, network or the server is
 * locked out; every wrong proof counts toward all three. No sockets: the clock is passed in.
 */
export class TokenExchange {
  readonly #token: TokenKey;
  readonly #nonce: () => Uint8Array;
  readonly #lockout: AuthLockout;
  /** When the table-full line was last logged, and the refusals it has not reported yet. */
  #fullLoggedAt = -Infinity;
  #fullUnlogged = 0;
  /** Wrong token proofs (each logged as refused reason=auth). */
  failures = 0;
  /** Proofs evaluated, right or wrong: what an attacker's guesses cost. */
  proofsEvaluated = 0;
  /** Hellos and proofs refused unlooked-at because of a lockout. */
  lockedRefusals = 0;

  constructor(auth: AdmissionAuth) {
    this.#token = auth.token;
    this.#nonce = auth.nonce ?? randomNonce;
    this.#lockout = new AuthLockout(auth.lockout);
  }

  /** Addresses refused as locked because the lockout table was full of locked ones. */
  get tableRefused(): number {
    return this.#lockout.refusedEntries;
  }

  /** Whether `address` proved the token lately (see AuthLockout). */
  trusted(address: string, now: number): boolean {
    return this.#lockout.trusted(address, now);
  }

  /** A hello from `address`: the challenge to send, or why it is refused before any is spent. */
  hello(address: string, hello: Hello, now: number): { kind: "challenge"; challenge: Challenge } | AuthRefusal {
    const locked = this.#lockedOut(address, now);
    if (locked) return locked;
    if (!(hello.capabilities & CAP_TOKEN_AUTH)) {
      return { kind: "refuse", detail: "no token", text: "this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)", fields: {}, events: [] };
    }
    if (!(hello.capabilities & CAP_DECRYPT)) {
      return { kind: "refuse", detail: "cannot decrypt", text: "this server encrypts its frames and this viewer cannot decrypt them", fields: {}, events: [] };
    }
    return { kind: "challenge", challenge: { type: "challenge", serverNonce: this.#nonce() } };
  }

  /** The response to `challenge`: the session keys when the proof is right, else why not. */
  response(address: string, hello: Hello, challenge: Challenge, response: Response, now: number): { kind: "welcome"; keys: SessionKeys } | AuthRefusal {
    // A lockout that began while the challenge was out holds this proof too.
    const locked = this.#lockedOut(address, now);
    if (locked) return locked;
    this.proofsEvaluated++;
    const transcript = { hello, challenge, clientNonce: response.clientNonce };
    const reflected = timingSafeEqual(transcript.clientNonce, challenge.serverNonce);
    const keys = deriveSessionKeys(this.#token, transcript);
    if (reflected || !proofMatches(keys, transcript, response.proof)) {
      this.failures++;
      const { failures, lockedMs, wider } = this.#lockout.failed(address, now);
      const events: AuthRefusal["events"] = [];
      if (lockedMs > 0) events.push({ message: "auth lockout", fields: { address, seconds: lockedMs / 1000, failures } });
      if (wider) events.push({ message: "auth lockout", fields: { [wider.scope]: wider.scope === "network" ? networkOf(address) : "all untrusted addresses", seconds: wider.ms / 1000 } });
      return { kind: "refuse", detail: reflected ? "reflected nonce" : "wrong token", text: "wrong token", fields: { udp: hello.udpPort, failures }, events };
    }
    this.#lockout.succeeded(address, now);
    return { kind: "welcome", keys };
  }

  #lockedOut(address: string, now: number): AuthRefusal | null {
    const locked = this.#lockout.check(address, now);
    if (!locked) return null;
    this.lockedRefusals++;
    const seconds = Math.ceil(locked.ms / 1000);
    const events: AuthRefusal["events"] = [];
    if (locked.scope === "full") {
      this.#fullUnlogged++;
      if (now - this.#fullLoggedAt >= TABLE_FULL_LOG_MS) {
        events.push({ message: "auth lockout table full", fields: { refused: this.#fullUnlogged, detail: "every address it holds is locked out; new addresses are refused as locked" } });
        this.#fullLoggedAt = now;
        this.#fullUnlogged = 0;
      }
    }
    return { kind: "refuse", detail: "locked out", text: `${lockoutText(locked, address)}: try again in ${seconds} s`, fields: { scope: locked.scope === "address" ? undefined : locked.scope, retryInSec: seconds }, events };
  }
}

function lockoutText(locked: Lockout, address: string): string {
  switch (locked.scope) {
    case "address":
      return `wrong token too often from ${address}`;
    case "network":
      return `wrong token too often from ${networkOf(address)}`;
    case "server":
      return "wrong token too often on this server from addresses it does not know";
    case "full":
      return "too many addresses are locked out for a wrong token";
  }
}
