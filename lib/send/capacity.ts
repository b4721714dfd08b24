/** Viewers from one address by default: generous (a lab machine may run several), but not the whole server. */
export const DEFAULT_MAX_PER_HOST = 16;

/** Why a viewer has no place, with the limit it hit (for the refuse text and the log line). */
export type NoPlace =
  | { reason: "per-host"; max: number; text: string }
  | { reason: "full"; max: number; text: string };

/** Why a place was refused, as the log's reason= says it. */
export const noPlaceReason = (n: NoPlace) => (n.reason === "full" ? "server full" : "too many viewers from this address");

/**
 * The one count of viewers of every kind (lancam sessions, classroom viewers, browser
 * readers) against --max-clients and --max-per-host. Every kind asks `check` before it
 * takes a place and `add`s itself once it has one, so no kind can fill what another
 * kind's count does not see. Keys are the owner's: "udp:ID", "classic:ID", "browser:ID".
 */
export class Capacity {
  readonly maxClients: number;
  readonly maxPerHost: number;
  readonly #viewers = new Map<string, string>();
  readonly #perHost = new Map<string, number>();

  constructor(opts: { maxClients: number; maxPerHost?: number }) {
    this.maxClients = opts.maxClients;
    this.maxPerHost = opts.maxPerHost ?? DEFAULT_MAX_PER_HOST;
  }

  /** Viewers of every kind. */
  get size(): number {
    return this.#viewers.size;
  }

  /** Viewers of every kind from `address`. */
  at(address: string): number {
    return this.#perHost.get(address) ?? 0;
  }

  /**
   * Whether one more viewer from `address` fits, or why not. `replacing`: the key of a
   * viewer it replaces (a restarted viewer at the same socket), whose place it takes.
   */
  check(address: string, replacing: string | null = null): NoPlace | null {
    const at = replacing === null ? undefined : this.#viewers.get(replacing);
    const freed = at === undefined ? 0 : 1;
    const freedHere = at === address ? 1 : 0;
    if (this.at(address) - freedHere >= this.maxPerHost) {
      return { reason: "per-host", max: this.maxPerHost, text: `too many viewers from ${address}: at most ${this.maxPerHost} per address` };
    }
    if (this.size - freed >= this.maxClients) {
      return { reason: "full", max: this.maxClients, text: `server full: ${this.maxClients} viewers already connected` };
    }
    return null;
  }

  /** Takes a place; a key already held is an error in the caller. */
  add(key: string, address: string): void {
    if (this.#viewers.has(key)) throw new Error(`viewer ${key} counted twice`);
    this.#viewers.set(key, address);
    this.#perHost.set(address, this.at(address) + 1);
  }

  /** Frees a place; unknown keys are ignored. */
  remove(key: string): void {
    const address = this.#viewers.get(key);
    if (address === undefined) return;
    this.#viewers.delete(key);
    const n = this.at(address) - 1;
    if (n > 0) this.#perHost.set(address, n);
    else this.#perHost.delete(address);
  }
}
