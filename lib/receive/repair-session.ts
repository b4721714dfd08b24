import type { DatagramHeader } from "../wire/datagram.ts";
import { decodeParity } from "../wire/fec.ts";
import { DecodeError } from "../wire/decode-error.ts";
import type { RepairEntry } from "../wire/repair.ts";
import { FecReceiver } from "./fec-receiver.ts";
import { LatencyHistogram } from "./latency-histogram.ts";
import { RepairTracker, type GiveUpReason, type RepairOptions, type RepairStats } from "./repair.ts";

/** What the viewer's `--stats` says about loss repair, over all its sessions. */
export interface RepairSummary {
  /** Datagrams rebuilt from parity (and taken into their frame). */
  datagramsRepairedByFec: number;
  /** Asked-for datagrams that came by resend. */
  datagramsRepairedByNack: number;
  /** Datagrams still missing from the frames given up. */
  datagramsUnrepaired: number;
  /** Frames that needed a repair and were complete in time for the live view. */
  framesRepairedLive: number;
  /** Frames complete too late for the live view, in time for the recorder: recorded, not shown (a newer one was shown already). */
  framesRecordOnly: number;
  /** Frames complete past the live wait but still the newest: shown late rather than not at all (set by the viewer). */
  framesShownLate?: number;
  /** Frames given up for good (neither shown nor recorded). */
  framesGivenUp: number;
  /** From a repaired frame's last first-sent datagram to its completion, ms. */
  repairDelayMs: { p50: number | null; p99: number | null };
  /** Repair messages sent. */
  requestMessages: number;
  /** Parity datagrams that did not decode or named another session. */
  paritiesDropped: number;
}

/** A viewer's repair counters, kept across its sessions; each session adds to them. */
export class RepairCounters {
  datagramsRepairedByFec = 0;
  datagramsRepairedByNack = 0;
  datagramsUnrepaired = 0;
  framesRepairedLive = 0;
  framesRecordOnly = 0;
  framesGivenUp = 0;
  requestMessages = 0;
  paritiesDropped = 0;
  readonly delay = new LatencyHistogram();

  /** The JSON form for `--stats`. */
  summary(): RepairSummary {
    const { delay, ...counts } = this;
    return { ...counts, repairDelayMs: { p50: delay.percentile(50), p99: delay.percentile(99) } };
  }
}

/** What the viewer does after a poll. */
export interface RepairSessionOutput {
  /** Repair messages to send, each a list of entries. */
  requests: RepairEntry[][];
  /** Frames given up: the reassembler drops what it holds of them, the recorder stops waiting for them. */
  givenUp: { frameNumber: number; reason: GiveUpReason }[];
  /** Frames the tracker saw complete that the reassembler never handed out (failed their signature): the recorder stops waiting for them. */
  neverDelivered: number[];
}

/**
 * Payloads are kept for parity only this long after the last parity datagram: the
 * stream stopped carrying it (`--fec auto` saw no loss), or never did.
 */
export const PARITY_QUIET_MS = 2_000;

interface FrameNotes {
  /** Payloads as received (ciphertext and tag when encrypted), by index: what parity rebuilds from. */
  payloads: Map<number, Uint8Array>;
  /** When its last datagram that was not a repair arrived. */
  lastOriginalAt: number;
  repaired: boolean;
}

/** Tracker counters added to the viewer's totals at each poll. */
const TRACKER_TOTALS = ["datagramsUnrepaired", "framesRepairedLive", "framesRecordOnly", "framesGivenUp", "requestMessages"] as const satisfies readonly (keyof RepairStats & keyof RepairCounters)[];

/**
 * One session's loss repair on the viewer (docs/protocol.md §2.14, §3.5, §9): the
 * tracker that asks for what is missing, the FEC receiver that rebuilds from parity,
 * and the received payloads parity needs. Pure: driven by `(input, now)`; the
 * StreamClient pushes what it returns into the reassembler and sends the requests.
 */
export class RepairSession {
  readonly tracker: RepairTracker;
  readonly fec = new FecReceiver();
  readonly #totals: RepairCounters;
  readonly #frames = new Map<number, FrameNotes>();
  /** Frames handed out since the last poll. */
  readonly #delivered = new Set<number>();
  /** When the last parity datagram arrived; null: none yet this session. */
  #parityAt: number | null = null;
  /** The tracker's counters already added to the totals. */
  readonly #added: Record<(typeof TRACKER_TOTALS)[number], number> = { datagramsUnrepaired: 0, framesRepairedLive: 0, framesRecordOnly: 0, framesGivenUp: 0, requestMessages: 0 };

  constructor(opts: RepairOptions, totals: RepairCounters) {
    this.tracker = new RepairTracker(opts);
    this.#totals = totals;
  }

  /**
   * A parity datagram arrived; `sessionId`: the id its way of arrival carries (the
   * session's, or the group's stream id). Returns the datagram it rebuilds, if any.
   */
  parity(bytes: Uint8Array, sessionId: number, now: number): Uint8Array | null {
    let p;
    try {
      p = decodeParity(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.#totals.paritiesDropped++;
      return null;
    }
    if (p.header.sessionId !== sessionId) {
      this.#totals.paritiesDropped++;
      return null;
    }
    this.tracker.parity(p.header, now);
    this.#parityAt = now;
    const notes = this.#frames.get(p.header.frameNumber);
    return this.fec.parity(p, (i) => notes?.payloads.get(i));
  }

  /**
   * A datagram was taken into a frame by the reassembler (authentic, not a duplicate);
   * `payload` as received; `rebuilt`: it came from parity. Returns a datagram parity
   * now rebuilds, if any.
   */
  accepted(h: DatagramHeader, payload: Uint8Array, now: number, rebuilt: boolean): Uint8Array | null {
    const fn = h.frameNumber;
    const asked = this.tracker.stats.datagramsRepaired;
    this.tracker.datagram(h, now);
    const resent = !rebuilt && this.tracker.stats.datagramsRepaired > asked;
    if (rebuilt) this.#totals.datagramsRepairedByFec++;
    if (resent) this.#totals.datagramsRepairedByNack++;
    let notes = this.#frames.get(fn);
    if (!notes) {
      notes = { payloads: new Map(), lastOriginalAt: now, repaired: false };
      this.#frames.set(fn, notes);
      // Bounded like the tracker: a frame older than it follows is settled anyway.
      while (this.#frames.size > this.tracker.maxTracked) this.#forget(this.#frames.keys().next().value!);
    }
    if (rebuilt || resent) notes.repaired = true;
    else notes.lastOriginalAt = now;
    // Payloads are what parity rebuilds from: copied only while the stream carries
    // parity. Copying every payload of a 50 Mbit/s stream that has none is work a busy
    // viewer pays for in datagrams its socket drops. (The caller's buffer is reused
    // once this returns, hence the copy.)
    if (this.#parityAt === null || now - this.#parityAt > PARITY_QUIET_MS) return null;
    notes.payloads.set(h.fragmentIndex, new Uint8Array(payload));
    const held = notes.payloads;
    return this.fec.datagram(fn, h.fragmentIndex, (i) => held.get(i));
  }

  /** How the frame the reassembler just completed is used: shown (and recorded), recorded only, or neither (given up already). */
  verdict(fn: number, now: number): "live" | "recordOnly" | null {
    const v = this.tracker.settledAs(fn);
    if (v === null) return null;
    this.#delivered.add(fn);
    const notes = this.#frames.get(fn);
    if (notes?.repaired) this.#totals.delay.add(now - notes.lastOriginalAt);
    return v;
  }

  /** The server will not repair these frames; `skipped`: it never sent them to this viewer. */
  gone(frames: readonly number[], skipped = false): void {
    this.tracker.gone(frames, skipped);
  }

  /** Due requests, and frames settled since the last poll. Call after each batch of datagrams and at `nextDueMs`. */
  poll(now: number): RepairSessionOutput {
    const out = this.tracker.poll(now);
    const neverDelivered: number[] = [];
    for (const fn of [...out.live, ...out.recordOnly]) {
      if (!this.#delivered.has(fn)) neverDelivered.push(fn);
      this.#forget(fn);
    }
    for (const g of out.givenUp) this.#forget(g.frameNumber);
    this.#delivered.clear();
    const t = this.tracker.stats;
    for (const k of TRACKER_TOTALS) {
      this.#totals[k] += t[k] - this.#added[k];
      this.#added[k] = t[k];
    }
    return { requests: out.requests, givenUp: out.givenUp, neverDelivered };
  }

  /** When `poll` next has something to do, or null. */
  nextDueMs(): number | null {
    return this.tracker.nextDueMs();
  }

  #forget(fn: number): void {
    this.#frames.delete(fn);
    this.fec.forget(fn);
  }
}
