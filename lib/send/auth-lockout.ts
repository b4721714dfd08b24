import { LockoutTable, type BackoffOptions } from "./lockout-table.ts";

/** How failed token proofs are slowed down: per address (the flat fields), per network, and for the whole server. */
export interface LockoutOptions {
  /** Failures allowed from one address before its first lockout (default 3: a typo or two costs nothing). */
  freeFailures?: number;
  /** The first lockout; each further failure doubles it (default 1000 ms). */
  baseMs?: number;
  /** Longest lockout (default 5 minutes). */
  maxMs?: number;
  /** An address without a failure for this long starts afresh (default 15 minutes). */
  forgetMs?: number;
  /** Addresses remembered at once (default 4096); a locked one is never forgotten to make room. */
  maxAddresses?: number;
  /** Per /24 (IPv4) or /64 (IPv6) network: DEFAULT_NETWORK_BACKOFF, changed by these fields. */
  network?: Partial<BackoffOptions>;
  /** For the whole server: DEFAULT_SERVER_BACKOFF, changed by these fields. */
  server?: Partial<BackoffOptions>;
  /** How long an address that proved the token stays trusted (default 24 h); at most maxAddresses are. */
  trustMs?: number;
}

/**
 * A network's failures: a lab of typing students stays well under 20, while an
 * attacker holding many addresses of one network is held back as one.
 */
export const DEFAULT_NETWORK_BACKOFF: BackoffOptions = { freeFailures: 20, baseMs: 1000, maxMs: 5 * 60_000, forgetMs: 15 * 60_000, maxEntries: 4096 };
/**
 * The whole server's failures, from addresses not trusted: the backstop against an
 * attacker with more networks than the network table holds. Short lockouts, so a new
 * viewer waits seconds, not minutes, once a flood stops.
 */
export const DEFAULT_SERVER_BACKOFF: BackoffOptions = { freeFailures: 100, baseMs: 1000, maxMs: 30_000, forgetMs: 10 * 60_000, maxEntries: 1 };

/** Why a proof from an address will not be looked at now, and for how long. */
export interface Lockout {
  /** address: its own failures; network: its /24 or /64's; server: everyone's; full: no room to count its failures. */
  scope: "address" | "network" | "server" | "full";
  ms: number;
}

/** What an entry that could not be recorded waits before trying again: the shortest lockout. */
const FULL_RETRY_MS = 1000;
/**
 * While the server is locked out, one address with no failures, in a network with none,
 * may start a handshake this often: a new viewer away from the flood gets in, and an
 * attacker gains at most one guess this often, each costing it a network of its own.
 */
const CLEAN_PASS_EVERY_MS = 1000;
/** How long such a pass holds for the proof to arrive (the hello deadline, with room). */
const CLEAN_PASS_MS = 5000;

/** The /24 of an IPv4 address or the /64 of an IPv6 one, as a table key. */
export function networkOf(address: string): string {
  if (address.includes(".") && !address.includes(":")) return `${address.slice(0, address.lastIndexOf("."))}.0/24`;
  const [head = "", tail] = address.toLowerCase().split("%")[0]!.split("::");
  const left = head ? head.split(":") : [];
  const right = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/**
 * Wrong token proofs, slowed down three ways, each with a lockout that doubles past its
 * free failures: per address, per network (/24, /64), and for the whole server. An
 * address that proved the token lately is trusted: only its own failures hold it back,
 * so a viewer that has watched before gets in while a flood from elsewhere runs; any
 * failure ends its trust. Every other address also waits out its network's and the
 * server's lockouts (except, once a second, one with no failures in a network with
 * none), and is refused as locked when the address table, full of locked addresses,
 * has no room to count its failures. Plain bookkeeping: the clock is passed in.
 */
export class AuthLockout {
  readonly #addresses: LockoutTable;
  readonly #networks: LockoutTable;
  readonly #server: LockoutTable;
  readonly #trusted = new Map<string, number>();
  readonly #trustMs: number;
  readonly #maxTrusted: number;
  /** Addresses let past the server's lockout (see CLEAN_PASS_EVERY_MS), until when. */
  readonly #passes = new Map<string, number>();
  #nextPassAt = -Infinity;

  constructor(opts: LockoutOptions = {}) {
    this.#maxTrusted = opts.maxAddresses ?? 4096;
    this.#addresses = new LockoutTable({
      freeFailures: opts.freeFailures ?? 3, baseMs: opts.baseMs ?? 1000, maxMs: opts.maxMs ?? 5 * 60_000, forgetMs: opts.forgetMs ?? 15 * 60_000,
      maxEntries: this.#maxTrusted,
    });
    this.#networks = new LockoutTable({ ...DEFAULT_NETWORK_BACKOFF, ...opts.network });
    this.#server = new LockoutTable({ ...DEFAULT_SERVER_BACKOFF, ...opts.server, maxEntries: 1 });
    this.#trustMs = opts.trustMs ?? 24 * 3600_000;
  }

  /** Addresses remembered right now. */
  get size(): number {
    return this.#addresses.size;
  }

  /** Addresses whose first failure found the table full of locked ones (refused as locked). */
  get refusedEntries(): number {
    return this.#addresses.refused;
  }

  /** How much longer `address` itself is locked out, ms; 0 when it may try. */
  lockedFor(address: string, now: number): number {
    return this.#addresses.lockedFor(address, now);
  }

  /** Whether `address` proved the token within trustMs. */
  trusted(address: string, now: number): boolean {
    const at = this.#trusted.get(address);
    if (at === undefined) return false;
    if (now - at <= this.#trustMs) return true;
    this.#trusted.delete(address);
    return false;
  }

  /** Why a proof from `address` is not to be looked at now; null when it may be. */
  check(address: string, now: number): Lockout | null {
    const own = this.#addresses.lockedFor(address, now);
    if (own > 0) return { scope: "address", ms: own };
    if (this.trusted(address, now)) return null;
    const network = this.#networks.lockedFor(networkOf(address), now);
    if (network > 0) return { scope: "network", ms: network };
    const server = this.#server.lockedFor("", now);
    if (server > 0 && !this.#pass(address, now)) return { scope: "server", ms: server };
    if (!this.#addresses.canRecord(address, now)) {
      this.#addresses.refused++;
      return { scope: "full", ms: FULL_RETRY_MS };
    }
    return null;
  }

  /**
   * Whether `address` may go past the server's lockout: it holds a pass, or it and its
   * network have no failures and the next pass is due. A pass is used by the proof.
   */
  #pass(address: string, now: number): boolean {
    const until = this.#passes.get(address);
    if (until !== undefined && now <= until) return true;
    this.#passes.delete(address);
    if (now < this.#nextPassAt || this.#addresses.known(address, now) || this.#networks.known(networkOf(address), now)) return false;
    this.#nextPassAt = now + CLEAN_PASS_EVERY_MS;
    // At most CLEAN_PASS_MS / CLEAN_PASS_EVERY_MS of them at once.
    for (const [a, t] of this.#passes) if (now > t) this.#passes.delete(a);
    this.#passes.set(address, now + CLEAN_PASS_MS);
    return true;
  }

  /**
   * A wrong proof from `address`: its failures so far and the lockout it now has (0
   * while failures are free); the longest lockout it started for its network or the
   * server too, with its scope.
   */
  failed(address: string, now: number): { failures: number; lockedMs: number; wider: Lockout | null } {
    this.#trusted.delete(address);
    this.#passes.delete(address);
    const own = this.#addresses.failed(address, now);
    const network = this.#networks.failed(networkOf(address), now);
    const server = this.#server.failed("", now);
    let wider: Lockout | null = null;
    if (network && network.lockedMs > 0) wider = { scope: "network", ms: network.lockedMs };
    if (server && server.lockedMs > 0 && server.lockedMs > (wider?.ms ?? 0)) wider = { scope: "server", ms: server.lockedMs };
    return { failures: own?.failures ?? 1, lockedMs: own?.lockedMs ?? 0, wider };
  }

  /** A right proof: the address starts afresh and is trusted from now on. */
  succeeded(address: string, now: number): void {
    this.#passes.delete(address);
    this.#addresses.succeeded(address);
    this.#trusted.delete(address);
    this.#trusted.set(address, now);
    // The longest-trusted first: a new viewer is worth more than the oldest memory.
    while (this.#trusted.size > this.#maxTrusted) this.#trusted.delete(this.#trusted.keys().next().value!);
  }
}
