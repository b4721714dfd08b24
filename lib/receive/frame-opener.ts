import { aadOf, openFragment } from "../net/frame-cipher.ts";
import { fragmentPayloadLength, HEADER_SIZE, MAX_FRAGMENT_SIZE, type DatagramHeader } from "../wire/datagram.ts";

/** Datagram drops that are about keys, for the stats file. */
export interface OpenerCounters {
  /** The tag did not check: forged, damaged, or not encrypted at all in an encrypted session. */
  auth: number;
  /** Under a key this viewer does not hold: one retired before it joined, or one whose key message never came. */
  noKey: number;
}

/** What `open` made of a datagram. */
export type Opened = Uint8Array | "auth" | "noKey" | "held";

/** Keys kept at once: the newest and the one before, for datagrams of frames sent just before a change. */
const KEYS_KEPT = 2;

/**
 * A viewer's stream keys and the check of every encrypted datagram before it reaches
 * the reassembler. Keys arrive over TCP and datagrams over UDP, so the first
 * datagrams under a new key may come before the key does: those (and only those:
 * key ids ahead of the newest) are held, bounded in bytes and time, and handed back
 * when their key arrives. A plain class: the clock is passed in.
 */
export class FrameOpener {
  readonly counters: OpenerCounters = { auth: 0, noKey: 0 };
  readonly #holdMs: number;
  readonly #maxHeldBytes: number;
  /** Newest last. */
  #keys: { id: number; key: Uint8Array }[] = [];
  #held: { at: number; keyId: number; bytes: Uint8Array }[] = [];
  #heldBytes = 0;
  readonly #aad = new Uint8Array(HEADER_SIZE);
  #plain = new Uint8Array(0);

  constructor(opts: { holdMs?: number; maxHeldBytes?: number } = {}) {
    this.#holdMs = opts.holdMs ?? 1000;
    this.#maxHeldBytes = opts.maxHeldBytes ?? 1 << 20;
  }

  /** Key ids held, oldest first. */
  get keyIds(): number[] {
    return this.#keys.map((k) => k.id);
  }

  /** Datagrams waiting for their key. */
  get heldCount(): number {
    return this.#held.length;
  }

  /** A new session: its keys come with it, nothing of the last one is kept. */
  reset(): void {
    this.#keys = [];
    this.#dropHeld(() => true);
  }

  /**
   * A key from a key message. Returns the datagrams held for it (copies, in arrival
   * order), to be pushed again now that they can be opened.
   */
  addKey(id: number, key: Uint8Array, now: number): Uint8Array[] {
    this.expire(now);
    this.#keys = this.#keys.filter((k) => k.id !== id);
    this.#keys.push({ id, key });
    if (this.#keys.length > KEYS_KEPT) this.#keys.shift();
    const ready = this.#held.filter((h) => h.keyId === id);
    this.#held = this.#held.filter((h) => h.keyId !== id);
    for (const h of ready) this.#heldBytes -= h.bytes.length;
    return ready.map((h) => h.bytes);
  }

  /** Drops held datagrams older than holdMs (counted noKey). */
  expire(now: number): void {
    this.#dropHeld((h) => now - h.at > this.#holdMs);
  }

  /**
   * The plaintext of one datagram's payload (a view, valid until the next call), or
   * why not. `raw` is the whole datagram, copied only when held.
   */
  open(h: DatagramHeader, raw: Uint8Array, payload: Uint8Array, now: number): Opened {
    if (!h.encrypted || h.keyId === undefined) {
      this.counters.auth++;
      return "auth";
    }
    const k = this.#keys.find((x) => x.id === h.keyId);
    if (!k) return this.#hold(h.keyId, raw, now);
    const n = fragmentPayloadLength(h);
    if (this.#plain.length < n) this.#plain = new Uint8Array(Math.min(MAX_FRAGMENT_SIZE, Math.max(n, 2048)));
    const out = this.#plain.subarray(0, n);
    if (!openFragment(k.key, aadOf(raw, this.#aad), h.frameNumber, h.fragmentIndex, payload, out, h.payloadType)) {
      this.counters.auth++;
      return "auth";
    }
    return out;
  }

  #hold(keyId: number, raw: Uint8Array, now: number): Opened {
    const newest = this.#keys.at(-1);
    // Serial order on u16 ids: only a key after the newest can still be on its way.
    const ahead = newest === undefined || (((keyId - newest.id) & 0xffff) > 0 && ((keyId - newest.id) & 0xffff) < 0x8000);
    this.expire(now);
    if (!ahead || this.#heldBytes + raw.length > this.#maxHeldBytes) {
      this.counters.noKey++;
      return "noKey";
    }
    // A copy (new Uint8Array: a Buffer's slice is a view of the socket's memory).
    this.#held.push({ at: now, keyId, bytes: new Uint8Array(raw) });
    this.#heldBytes += raw.length;
    return "held";
  }

  #dropHeld(which: (h: { at: number }) => boolean): void {
    const kept = [];
    for (const h of this.#held) {
      if (which(h)) {
        this.counters.noKey++;
        this.#heldBytes -= h.bytes.length;
      } else kept.push(h);
    }
    this.#held = kept;
  }
}
