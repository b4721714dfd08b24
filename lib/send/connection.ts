import type { Challenge, Hello } from "../wire/control.ts";
import type { Session } from "./sessions.ts";

/** The socket wrapper's name for one TCP connection. */
export type ConnId = number;

/** What a connection is whatever its state. */
interface ConnBase {
  readonly id: ConnId;
  /** address:port, as logged. */
  readonly peer: string;
  readonly address: string;
  readonly tcpPort: number;
}

/**
 * One TCP connection's state; fields exist only in the states that have them:
 * - sniffing: its first bytes have not said yet whether it speaks lancam or is a classroom viewer;
 * - pending: it speaks lancam and has not said hello;
 * - challenged: (with a token) it said hello and was sent a challenge;
 * - streaming: it has a session;
 * - classic: a classroom viewer (ClassicViewers serves it).
 */
export type Conn =
  | (ConnBase & {
    kind: "sniffing";
    /** Until when it may take to say what it is and hello. */
    deadline: number;
    /**
     * Its first bytes while they decide nothing. classifyFirstBytes is undecided only
     * for nothing or a port number with a CR, so this holds at most 6 bytes.
     */
    head: Uint8Array;
  })
  | (ConnBase & { kind: "pending"; deadline: number })
  | (ConnBase & { kind: "challenged"; deadline: number; hello: Hello; challenge: Challenge })
  | (ConnBase & { kind: "streaming"; session: Session; nextHeartbeatAt: number })
  | (ConnBase & { kind: "classic" });

/** The states a connection can be in. */
export type ConnKind = Conn["kind"];
/** A connection in one state. */
export type ConnIn<K extends ConnKind> = Extract<Conn, { kind: K }>;

/** Connections that have said nothing useful yet: the only ones a flood may evict. */
export const evictable = (c: Conn): c is ConnIn<"sniffing" | "pending"> => c.kind === "sniffing" || c.kind === "pending";

/** Base fields of `c`, to build its next state from. */
export const baseOf = (c: Conn): ConnBase => ({ id: c.id, peer: c.peer, address: c.address, tcpPort: c.tcpPort });

/**
 * Which connection without hello makes room for a new one from `address`, or null when
 * there is room. Past `maxPerAddress` from that address, its own oldest goes; past
 * `maxPending` in all, the oldest of the address holding the most (so a flood from
 * some addresses evicts its own, not a viewer connecting from another). A connection
 * that said hello is never chosen. `conns` is in arrival order.
 */
export function evictionFor(
  conns: Iterable<Conn>, address: string, maxPending: number, maxPerAddress: number,
): { conn: Conn; why: string } | null {
  let pending = 0;
  const byAddress = new Map<string, { n: number; oldest: Conn }>();
  for (const c of conns) {
    if (!evictable(c)) continue;
    pending++;
    const a = byAddress.get(c.address);
    if (a) a.n++;
    else byAddress.set(c.address, { n: 1, oldest: c });
  }
  const here = byAddress.get(address);
  if (here && here.n >= maxPerAddress) return { conn: here.oldest, why: "too many connections without hello from this address" };
  if (pending < maxPending) return null;
  let most: { n: number; oldest: Conn } | null = null;
  for (const a of byAddress.values()) if (!most || a.n > most.n) most = a;
  return most && { conn: most.oldest, why: "too many connections without hello" };
}
