/** What the server knows about one viewer. */
export interface Session {
  readonly id: number;
  /** The TCP peer's address: the only place this session's frames go. */
  readonly address: string;
  readonly tcpPort: number;
  readonly udpPort: number;
  readonly name: string;
  readonly joinedAt: number;
  /** What its viewer presents to replace it after reconnecting; nobody else can. */
  readonly resume: Uint8Array;
  /**
   * How its datagrams go: in the stream's multicast group (one copy for every such
   * viewer), or to its own address and UDP port.
   */
  delivery: "multicast" | "unicast";
  lastHeardAt: number;
  /** The sender's counts, bumped as it sends; the leave line reports framesSent. */
  framesSent: number;
  datagramsSent: number;
  /** Datagrams of an older frame not yet sent when a newer frame replaced them. */
  datagramsSuperseded: number;
  /** Frame numbers of the first and the latest frame sent to it; null before the first. */
  firstFrame: number | null;
  lastFrame: number | null;
  lastReport: ViewerReport | null;
  /** Reports (and bye totals) that claimed more than was sent, ignored. */
  reportsRejected: number;
  /** A streak of ICMP errors while it was being sent to: when it began (null: none), when last seen. */
  unreachableSince: number | null;
  unreachableLastAt: number;
  /** Its report's framesReceived when the streak began: a viewer whose count grows is receiving. */
  receivedWhenUnreachable: number;
}

/** The viewer's own account of what arrived (from its receiver reports). */
export interface ViewerReport {
  framesReceived: number;
  framesLost: number;
  framesIncomplete: number;
  latencyP50Us: number;
  /** Frames per second it received over its last second, x 1000. */
  fpsMillihertz: number;
}

/** Why a session ended, as written in the server log. */
export type LeaveReason =
  | "goodbye" | "timeout" | "connection closed" | "protocol error" | "server shutdown" | "replaced by a new session"
  | "udp port unreachable" | "not reading";

/** Outcome of a join request. */
export type Admission = { ok: true; session: Session } | { ok: false; reason: "full" | "duplicate" };

/**
 * The set of active viewers: admission (bounded by maxClients), liveness and
 * removal. Plain bookkeeping, no sockets: the clock is passed in.
 */
export class SessionTable {
  readonly #sessions = new Map<number, Session>();
  readonly #maxClients: number;
  readonly #timeoutMs: number;
  readonly #randomId: () => number;

  constructor(opts: { maxClients: number; timeoutMs: number; randomId?: () => number }) {
    this.#maxClients = opts.maxClients;
    this.#timeoutMs = opts.timeoutMs;
    this.#randomId = opts.randomId ?? (() => crypto.getRandomValues(new Uint32Array(1))[0]!);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Admits a viewer unless the server is full or that address and UDP port already
   * get the stream (a second session would double the traffic to one socket); ids
   * are random, non-zero and unique. `others` is how many viewers of other kinds
   * (classroom viewers, browsers) share the maxClients places.
   */
  admit(peer: { address: string; tcpPort: number; udpPort: number; name: string; resume: Uint8Array }, nowMs: number, others = 0): Admission {
    for (const s of this.#sessions.values()) {
      if (s.address === peer.address && s.udpPort === peer.udpPort) return { ok: false, reason: "duplicate" };
    }
    if (this.#sessions.size + others >= this.#maxClients) return { ok: false, reason: "full" };
    let id = 0;
    for (let tries = 0; id === 0 || this.#sessions.has(id); tries++) {
      if (tries > 64) throw new Error("cannot draw a unique session id");
      id = this.#randomId() >>> 0;
    }
    const session: Session = {
      id, ...peer, joinedAt: nowMs, lastHeardAt: nowMs, delivery: "unicast",
      framesSent: 0, datagramsSent: 0, datagramsSuperseded: 0, firstFrame: null, lastFrame: null, lastReport: null, reportsRejected: 0,
      unreachableSince: null, unreachableLastAt: 0, receivedWhenUnreachable: 0,
    };
    this.#sessions.set(id, session);
    return { ok: true, session };
  }

  /** Every session, in the order they joined. */
  values(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  get(id: number): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Any message from the viewer proves it is alive. */
  heard(id: number, nowMs: number): void {
    const s = this.#sessions.get(id);
    if (s) s.lastHeardAt = nowMs;
  }

  /** Removes a session; returns it, or undefined when it was already gone. */
  remove(id: number): Session | undefined {
    const s = this.#sessions.get(id);
    this.#sessions.delete(id);
    return s;
  }

  /** Sessions silent for longer than the timeout. */
  expired(nowMs: number): Session[] {
    const out: Session[] = [];
    for (const s of this.#sessions.values()) if (nowMs - s.lastHeardAt > this.#timeoutMs) out.push(s);
    return out;
  }
}
