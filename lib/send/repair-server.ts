import type { Gone, PathCounters, Repair } from "../wire/control.ts";
import { decodeDatagram } from "../wire/datagram.ts";
import { encodeParity } from "../wire/fec.ts";
import { DEFAULT_FEC, LossEstimate, strideFor, type FecSpec } from "./fec-policy.ts";
import { DEFAULT_REPAIR_BUDGET, RepairBudget, type RepairBudgetLimits } from "./repair-budget.ts";
import { RetransmitRing } from "./retransmit-ring.ts";

/** How the server repairs loss; every field has a default. */
export interface RepairServerOptions {
  /** `--fec`: parity per frame (default auto: only where viewers report loss). */
  fec?: FecSpec;
  ring?: { maxAgeMs?: number; maxBytes?: number };
  budget?: RepairBudgetLimits;
}

/** One repairing viewer's counters, for its leave line. */
export interface RepairViewerStats {
  datagramsResent: number;
  bytesResent: number;
  /** Repair messages dropped over the viewer's request rate. */
  requestsDropped: number;
  /** Frames answered gone (no longer held, or over its byte budget). */
  framesGone: number;
  paritiesSent: number;
}

/** What to do for a repair message: datagrams to send to that viewer alone, and gone messages on its control connection. */
export interface RepairReply {
  datagrams: Uint8Array[];
  gone: Gone[];
  /** Over the request rate: nothing looked up, nothing to send. */
  dropped: boolean;
}

interface RepairViewer {
  sessionId: number;
  budget: RepairBudget;
  loss: LossEstimate;
  stats: RepairViewerStats;
}

/**
 * The server's side of loss repair (docs/protocol.md §2.14, §3.5, §9) for the viewers
 * whose welcome set WELCOME_REPAIR: one retransmit ring for all, and per viewer a
 * repair budget (earned by first sends) and a loss estimate (from its reports) that
 * picks the parity per frame under `--fec`. Pure: driven by `(input, now)`; the caller
 * sends what it returns.
 */
export class RepairServer {
  readonly fec: FecSpec;
  readonly ring: RetransmitRing;
  readonly #limits: RepairBudgetLimits;
  readonly #viewers = new Map<number, RepairViewer>();
  /** Repair messages dropped over a viewer's request rate, all viewers. */
  requestsDropped = 0;
  /** Gone messages sent, all viewers. */
  goneSent = 0;
  /** Repair messages from a session that is not repairing (counted, never answered). */
  requestsUnknown = 0;

  constructor(opts: RepairServerOptions = {}) {
    this.fec = opts.fec ?? DEFAULT_FEC;
    this.ring = new RetransmitRing(opts.ring);
    this.#limits = opts.budget ?? DEFAULT_REPAIR_BUDGET;
  }

  /** Viewers repairing now. */
  get size(): number {
    return this.#viewers.size;
  }

  /** Whether session `id` repairs (its welcome set WELCOME_REPAIR). */
  has(id: number): boolean {
    return this.#viewers.has(id);
  }

  /** Session `id` was welcomed with WELCOME_REPAIR: it starts with an empty byte budget. */
  join(id: number, now: number): void {
    this.#viewers.set(id, {
      sessionId: id, budget: new RepairBudget(now, this.#limits), loss: new LossEstimate(),
      stats: { datagramsResent: 0, bytesResent: 0, requestsDropped: 0, framesGone: 0, paritiesSent: 0 },
    });
  }

  /** Session `id`'s counters so far, or null when it does not repair. */
  statsOf(id: number): Readonly<RepairViewerStats> | null {
    return this.#viewers.get(id)?.stats ?? null;
  }

  /** Session `id` ended: its counters, or null when it was not repairing. */
  leave(id: number): RepairViewerStats | null {
    const v = this.#viewers.get(id);
    this.#viewers.delete(id);
    return v?.stats ?? null;
  }

  /** One frame's datagrams as first sent (any one copy of a layer): kept for resending. */
  frame(datagrams: readonly Uint8Array[], now: number, layer = 0): void {
    this.ring.push(datagrams, now, layer);
    this.#held = { layer, frameNumber: decodeDatagram(datagrams[0]!).header.frameNumber };
  }

  /** The (layer, frame) last kept: the other viewers' copies of it are not kept again. */
  #held: { layer: number; frameNumber: number } | null = null;

  /**
   * One frame's datagrams about to be first sent to `members` (one viewer, or a
   * group's): the frame is kept (once per frame and layer, whichever copy comes first),
   * each member's budget is credited, and the datagrams come back with any parity
   * `--fec` asks for after them.
   */
  outgoing(datagrams: Uint8Array[], members: readonly number[], now: number, layer = 0): Uint8Array[] {
    if (datagrams.length === 0 || this.#viewers.size === 0) return datagrams;
    const fn = decodeDatagram(datagrams[0]!).header.frameNumber;
    if (this.#held?.layer !== layer || this.#held.frameNumber !== fn) this.frame(datagrams, now, layer);
    let bytes = 0;
    for (const d of datagrams) bytes += d.length;
    for (const id of members) this.sent(id, bytes);
    const parity = this.parityFor(datagrams, members);
    return parity.length > 0 ? [...datagrams, ...parity] : datagrams;
  }

  /** First sends to session `id` (multicast credits every member): they earn its resend budget. */
  sent(id: number, bytes: number): void {
    this.#viewers.get(id)?.budget.sent(bytes);
  }

  /**
   * The parity datagrams to send right after a frame's `datagrams` to `members` (one
   * viewer, or a group's): none unless every member repairs; as many as `--fec` and
   * the worst member's loss ask for.
   */
  parityFor(datagrams: readonly Uint8Array[], members: readonly number[]): Uint8Array[] {
    if (datagrams.length === 0 || members.length === 0) return [];
    let worst = 0;
    const viewers: RepairViewer[] = [];
    for (const id of members) {
      const v = this.#viewers.get(id);
      if (!v) return [];
      viewers.push(v);
      worst = Math.max(worst, v.loss.loss);
    }
    const stride = strideFor(this.fec, datagrams.length, worst);
    if (stride <= 0) return [];
    const parity = encodeParity(datagrams, Math.min(stride, datagrams.length));
    for (const v of viewers) v.stats.paritiesSent += parity.length;
    return parity;
  }

  /** A report's path counters from session `id` (docs/protocol.md §2.6). */
  report(id: number, path: Pick<PathCounters, "datagramsReceived" | "datagramsLost">): void {
    this.#viewers.get(id)?.loss.report(path);
  }

  /**
   * A tagged repair message from session `id`: the held datagrams it asked for within
   * its budget, stamped with its session id, and gone for the rest. `layerOf` says at
   * which layer the viewer was sent a frame (0 when it has one), null for one it was
   * not sent (answered gone as skipped).
   */
  repair(id: number, msg: Repair, now: number, layerOf: (frameNumber: number) => number | null = () => 0): RepairReply {
    const v = this.#viewers.get(id);
    if (!v) {
      this.requestsUnknown++;
      return { datagrams: [], gone: [], dropped: true };
    }
    const a = this.ring.answer(msg, v.sessionId, v.budget, now, layerOf);
    if (a.dropped) {
      v.stats.requestsDropped++;
      this.requestsDropped++;
      return { datagrams: [], gone: [], dropped: true };
    }
    v.stats.datagramsResent += a.datagrams.length;
    for (const d of a.datagrams) v.stats.bytesResent += d.length;
    for (const g of a.gone) v.stats.framesGone += g.frames.length;
    this.goneSent += a.gone.length;
    return { datagrams: a.datagrams, gone: a.gone.map((g) => ({ type: "gone", ...g })), dropped: false };
  }
}
