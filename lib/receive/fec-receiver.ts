import { recoverWithParity, type ParityDatagram } from "../wire/fec.ts";
import { seqDiff } from "../wire/seq.ts";

/** Frames whose parities are kept at once; one more forgets the oldest. */
export const DEFAULT_FEC_FRAMES = 8;

/** Fragment i's payload as received for the frame asked about, or undefined while it is missing. */
export type PayloadOf = (index: number) => Uint8Array | undefined;

/** Counters of a FecReceiver; cumulative. */
export interface FecReceiverStats {
  paritiesReceived: number;
  /** Datagrams rebuilt from parity. */
  datagramsRecovered: number;
  /** Groups found with two or more fragments missing when their parity was tried. */
  groupsUnrecoverable: number;
  /** Parities not kept: a duplicate, another interleave than the frame's first parity, or a frame already forgotten. */
  paritiesDropped: number;
}

interface FrameParities {
  stride: number;
  byIndex: Map<number, ParityDatagram>;
}

/**
 * The viewer's side of FEC (docs/protocol.md §3.5): keeps the parity datagrams of the
 * last few frames and rebuilds a lost datagram as soon as its group lacks only it:
 * when the parity arrives (sent after the frame's datagrams, so what is missing then
 * was lost) and when a datagram of a group whose parity is held arrives (a resend).
 * The rebuilt datagram is fed to the reassembler like a received one, which checks it
 * (its tag, or the frame signature) like any other. Pure and bounded.
 */
export class FecReceiver {
  readonly maxFrames: number;
  readonly #frames = new Map<number, FrameParities>();
  /** Frames forgotten recently, so a late parity does not bring them back. */
  readonly #forgotten = new Set<number>();
  readonly stats: FecReceiverStats = { paritiesReceived: 0, datagramsRecovered: 0, groupsUnrecoverable: 0, paritiesDropped: 0 };

  constructor(maxFrames = DEFAULT_FEC_FRAMES) {
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new RangeError(`FEC frames=${maxFrames}: expected an integer >= 1`);
    this.maxFrames = maxFrames;
  }

  /** Frames with parities held now. */
  get framesHeld(): number {
    return this.#frames.size;
  }

  /** A parity arrived (already checked to be this session's): the datagram it rebuilds now, if any. */
  parity(p: ParityDatagram, payloadOf: PayloadOf): Uint8Array | null {
    this.stats.paritiesReceived++;
    const fn = p.header.frameNumber;
    if (this.#forgotten.has(fn)) {
      this.stats.paritiesDropped++;
      return null;
    }
    let f = this.#frames.get(fn);
    if (!f) {
      while (this.#frames.size >= this.maxFrames) this.#forgetOldest();
      f = { stride: p.header.stride, byIndex: new Map() };
      this.#frames.set(fn, f);
    }
    if (p.header.stride !== f.stride || f.byIndex.has(p.header.parityIndex)) {
      this.stats.paritiesDropped++;
      return null;
    }
    // The parity's bytes may be a view into a reused receive buffer.
    const held: ParityDatagram = { header: p.header, parity: new Uint8Array(p.parity) };
    f.byIndex.set(p.header.parityIndex, held);
    return this.#try(held, payloadOf);
  }

  /** Fragment `index` of frame `frameNumber` arrived: the datagram its group's parity rebuilds now, if any. */
  datagram(frameNumber: number, index: number, payloadOf: PayloadOf): Uint8Array | null {
    const f = this.#frames.get(frameNumber);
    if (!f) return null;
    const p = f.byIndex.get(index % f.stride);
    return p ? this.#try(p, payloadOf) : null;
  }

  /** The frame is complete or given up: its parities are no longer needed. */
  forget(frameNumber: number): void {
    this.#frames.delete(frameNumber);
    this.#forgotten.add(frameNumber);
    if (this.#forgotten.size > 4 * this.maxFrames) this.#forgotten.delete(this.#forgotten.values().next().value!);
  }

  #try(p: ParityDatagram, payloadOf: PayloadOf): Uint8Array | null {
    const r = recoverWithParity(p, payloadOf);
    if (r.kind === "recovered") {
      this.stats.datagramsRecovered++;
      return r.datagram;
    }
    if (r.kind === "unrecoverable") this.stats.groupsUnrecoverable++;
    return null;
  }

  #forgetOldest(): void {
    let oldest: number | null = null;
    for (const fn of this.#frames.keys()) if (oldest === null || seqDiff(fn, oldest) < 0) oldest = fn;
    if (oldest !== null) this.forget(oldest);
  }
}
