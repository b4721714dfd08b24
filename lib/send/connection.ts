import type { Challenge, Hello } from "../wire/control.ts";
import type { Session } from "./sessions.ts";

/*
 * One connection's life on the server (its `kind`, lib/send/connection.ts):
 *
 *   connected --(shutting down: refuse 255)----------------------------------> ended
 *       |      (over a pending limit: a sniffing or pending connection is evicted instead)
 *       v
 *   sniffing --(neither lancam nor classroom; nothing decided within
 *       |   |    helloTimeoutMs; connection closed; shutdown)---------------> ended
 *       |   |
 *       |   | an ASCII port number: classic, a classroom viewer (ClassicViewers), out of
 *       |   | hello and heartbeat handling, until "end", its silence on UDP, a
 *       |   | close or shutdown; refused (closed) when it has no place or the server
 *       |   | has a token (a classroom viewer cannot prove one) ----------------> ended
 *       |
 *       | a lancam message's first byte: every byte so far goes to the decoder
 *       v
 *    pending --(malformed hello: refuse 1 or 3; first message not a hello:
 *       |       refuse 3; with a token: no token capability, or the address is
 *       |       locked out: refuse 4; no hello within helloTimeoutMs;
 *       |       connection closed; shutdown)--------------------------------> ended
 *       |
 *       | with a token: challenge (server nonce); never evicted from here on. While
 *       | another connection from its address is challenged it is `waiting` (at most
 *       | MAX_PENDING_PER_ADDRESS; all handshakes together at most maxPending, unless
 *       | its address is trusted: refuse 255), then challenged (or refused) in turn
 *       v
 *   challenged --(anything but a response, or none within helloTimeoutMs;
 *       |          a wrong proof: refuse 4, counted toward the address's lockout)-> ended
 *       |
 *       | admitted (right proof, or no token): unless its address and UDP port
 *       | are taken (its own viewer's resume secret replaces that session), or
 *       | Capacity has no place for it (refuse 255 or 2):
 *       | [secure: tags from here on], welcome, start streaming
 *       v
 *   streaming --(fallback: a session in the multicast group is sent to its own
 *       |        address and port from now on, logged `fallback`; it goes on)
 *       |
 *       +-------(bye; silent for timeoutMs: bye 3; malformed or unexpected
 *                message: bye 4; replaced by its own viewer: bye 255; its UDP
 *                port answering only with ICMP errors for unreachableMs: bye 255;
 *                not reading its control messages; shutdown: bye 2; connection
 *                closed) stop streaming, log the leave ------------------------> ended
 *
 * Only connections in one of these states are held; an ended one is forgotten at
 * once, so input that still arrives for it is ignored. Classroom viewers, lancam
 * sessions and viewers served elsewhere (admitOther, no connection) take their places
 * from one Capacity: one --max-clients, one --max-per-host.
 */

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
 * - waiting: (with a token) it said hello while another connection from its address
 *   was challenged; it is challenged when that one is done (one challenge per address);
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
  | (ConnBase & { kind: "waiting"; deadline: number; hello: Hello })
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

/** Handshakes (waiting or challenged connections) from `address` and in all, and whether one from `address` is challenged. */
export function handshakesAt(conns: Iterable<Conn>, address: string): { here: number; all: number; challengedHere: boolean } {
  const n = { here: 0, all: 0, challengedHere: false };
  for (const c of conns) {
    if (c.kind !== "challenged" && c.kind !== "waiting") continue;
    n.all++;
    if (c.address !== address) continue;
    n.here++;
    n.challengedHere ||= c.kind === "challenged";
  }
  return n;
}

/** The first waiting connection of every address that has none challenged: the ones to challenge now. */
export function dueForChallenge(conns: Iterable<Conn>): ConnIn<"waiting">[] {
  const all = [...conns];
  const busy = new Set(all.flatMap((c) => (c.kind === "challenged" ? [c.address] : [])));
  const due: ConnIn<"waiting">[] = [];
  for (const c of all) {
    if (c.kind !== "waiting" || busy.has(c.address)) continue;
    busy.add(c.address);
    due.push(c);
  }
  return due;
}
