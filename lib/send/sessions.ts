import type { RepairCounts } from "../wire/control.ts";

import type { TransportCounters } from "./tcp-delivery.ts";
/** What the server knows about one lancam viewer (what was sent to it is the sender's, see SendCounters). */
export interface Session {
  readonly id: number;
  /** The TCP peer's address: the only place this session's frames go. */
  readonly address: string;
  readonly tcpPort: number;
  readonly udpPort: number;
  readonly name: string;
  /** The camera it watches: its number among the server's cameras (0 on a server with one). */
  readonly camera: number;
  readonly joinedAt: number;
  /** What its viewer presents to replace it after reconnecting; nobody else can. */
  readonly resume: Uint8Array;
  /**
   * How its datagrams go: in the stream's multicast group (one copy for every such
   * viewer), or to its own address and UDP port.
   */
  delivery: "multicast" | "unicast";
  /**
   * Layers whose multicast groups its welcome listed (WELCOME_MULTICAST_LAYERS), the full
   * one included; 0 when it listed none: the viewer then stays in the full layer's group.
   */
  groupLayers: number;
  /** The layer group its viewer last said it is in (layer messages); 0 until it says otherwise. */
  groupLayer: number;
  /** Its welcome set WELCOME_PATH_REPORTS: its reports' path counters steer its own rate and layer (unicast), and its parity (`--fec auto`). */
  pathReports: boolean;
  lastHeardAt: number;
  lastReport: ViewerReport | null;
  /** A repairing viewer's own repair counts, from its last report that had them. */
  lastRepair: RepairCounts | null;
  /** Reports (and bye totals) that claimed more than was sent, ignored. */
  reportsRejected: number;
  /** A streak of ICMP errors while it was being sent to: when it began (null: none), when last seen. */
  unreachableSince: number | null;
  unreachableLastAt: number;
  /** Its report's framesReceived when the streak began: a viewer whose count grows is receiving. */
  receivedWhenUnreachable: number;
}

/** What the sender handed to one session, kept where the sending happens and read by admission. */
export interface SendCounters {
  framesSent: number;
  /** Frame numbers of the first and the latest frame sent to it; null before the first. */
  firstFrame: number | null;
  lastFrame: number | null;
  /** How a path-reports viewer is being sent (its layer, rate, skipped frames); absent for the others. */
  adaptive?: AdaptiveCounters;
  /** What the server resent a repairing viewer; absent for the others. */
  repair?: Readonly<{ datagramsResent: number; bytesResent: number; paritiesSent: number; framesGone: number; requestsDropped: number }>;
  /** Which way its datagrams go and whether UDP reached it (lib/send/tcp-delivery.ts); absent where not tracked. */
  transport?: TransportCounters;
}

/** One path-reports viewer's delivery as the sender chose it. */
export interface AdaptiveCounters {
  /** Its layer: 0 = full size. */
  layer: number;
  width: number;
  height: number;
  /** The rate it is paced at, bytes per second; null while not limited (sent as everyone is). */
  rateBytesPerS: number | null;
  /** Whole frames not sent to it because its previous frame was still on its way. */
  framesSkipped: number;
  /** Its path reports refused as impossible (claiming more than was sent, absurd values). */
  reportsRefused: number;
}

/** Nothing sent yet. */
export const NOTHING_SENT: Readonly<SendCounters> = Object.freeze({ framesSent: 0, firstFrame: null, lastFrame: null });

/** Where a session's frames go, as handed to the sender: a copy, not the session. */
export type StreamTarget = Readonly<Pick<Session, "id" | "address" | "tcpPort" | "udpPort" | "name" | "delivery" | "pathReports"> & Partial<Pick<Session, "camera">>>;

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
export type Admission = { ok: true; session: Session } | { ok: false; reason: "duplicate" };

/** A session id as logged (`session=`): eight hex digits. */
export const sessionHex = (s: Pick<Session, "id">) => s.id.toString(16).padStart(8, "0");

/** ICMP errors further apart than this are not one streak (Linux rate-limits them). */
const UNREACHABLE_GAP_MS = 2000;

/**
 * The set of active lancam viewers: ids, liveness, ICMP streaks and removal. Places
 * (maxClients, maxPerHost) are Capacity's. Plain bookkeeping, no sockets: the clock
 * is passed in.
 */
export class SessionTable {
  readonly #sessions = new Map<number, Session>();
  readonly #timeoutMs: number;
  readonly #randomId: () => number;

  constructor(opts: { timeoutMs: number; randomId?: () => number }) {
    this.#timeoutMs = opts.timeoutMs;
    this.#randomId = opts.randomId ?? (() => crypto.getRandomValues(new Uint32Array(1))[0]!);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Admits a viewer unless that address and UDP port already get the stream (a second
   * session would double the traffic to one socket); ids are random, non-zero and unique.
   */
  admit(peer: { address: string; tcpPort: number; udpPort: number; name: string; resume: Uint8Array; camera?: number }, nowMs: number): Admission {
    if (this.at(peer.address, peer.udpPort)) return { ok: false, reason: "duplicate" };
    let id = 0;
    for (let tries = 0; id === 0 || this.#sessions.has(id); tries++) {
      if (tries > 64) throw new Error("cannot draw a unique session id");
      id = this.#randomId() >>> 0;
    }
    const session: Session = {
      id, camera: 0, ...peer, joinedAt: nowMs, lastHeardAt: nowMs, delivery: "unicast", groupLayers: 0, groupLayer: 0, pathReports: false, lastReport: null, lastRepair: null, reportsRejected: 0,
      unreachableSince: null, unreachableLastAt: 0, receivedWhenUnreachable: 0,
    };
    this.#sessions.set(id, session);
    return { ok: true, session };
  }

  /** The session receiving at address:udpPort, if any. */
  at(address: string, udpPort: number): Session | undefined {
    for (const s of this.#sessions.values()) if (s.address === address && s.udpPort === udpPort) return s;
    return undefined;
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

  /** The UDP socket reported ICMP errors; every session in `ids` was sent to meanwhile, so each is a suspect. */
  unreachable(ids: Iterable<number>, nowMs: number): void {
    for (const id of ids) {
      const s = this.#sessions.get(id);
      if (!s) continue;
      if (s.unreachableSince === null || nowMs - s.unreachableLastAt > UNREACHABLE_GAP_MS) {
        s.unreachableSince = nowMs;
        s.receivedWhenUnreachable = s.lastReport?.framesReceived ?? 0;
      }
      s.unreachableLastAt = nowMs;
    }
  }

  /**
   * Sessions whose errors went on for `forMs` while their reports showed nothing
   * arriving. A streak ends when the errors stop or the viewer's count grows.
   */
  deadPorts(nowMs: number, forMs: number): Session[] {
    const out: Session[] = [];
    for (const s of this.#sessions.values()) {
      if (s.unreachableSince === null) continue;
      if (nowMs - s.unreachableLastAt > UNREACHABLE_GAP_MS || (s.lastReport?.framesReceived ?? 0) > s.receivedWhenUnreachable) {
        s.unreachableSince = null;
        continue;
      }
      if (nowMs - s.unreachableSince >= forMs) out.push(s);
    }
    return out;
  }
}
