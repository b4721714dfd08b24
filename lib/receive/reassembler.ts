import { decodeDatagram, MAX_FRAME_BYTES, type DatagramHeader } from "../wire/datagram.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { seqAdd, seqDiff, seqLess } from "../wire/seq.ts";
import type { FrameOpener } from "./frame-opener.ts";
import type { FrameVerifier } from "./frame-verifier.ts";

/**
 * A frame number this far from the last delivered one (either way) means the
 * sender's numbering changed (restart, long outage): start over instead of
 * calling everything late or counting billions of frames missing.
 */
export const RESYNC_DISTANCE = 2 ** 16;
/**
 * A frame number further ahead than this of the last delivered one is not believed
 * while the stream is live: it becomes the position only once nothing nearer has been
 * accepted for frameTimeoutMs (a datagram spoofed with a number far ahead would
 * otherwise make every real datagram "late").
 */
export const DEFAULT_MAX_JUMP = 64;
/** Headroom when a pool buffer grows, so slowly growing frames do not reallocate every time. */
const GROWTH = 1.25;

/** How a Reassembler is bounded. */
export interface ReassemblerOptions {
  /** Datagrams with another session id are dropped. */
  sessionId: number;
  /** Frames announcing more bytes are dropped as "oversize" (default MAX_FRAME_BYTES). */
  maxFrameBytes?: number;
  /** Partial frames kept at once; one more evicts the oldest (default 4). */
  maxInFlight?: number;
  /** A partial frame older than this (since its first datagram) is dropped by sweep (default 500). */
  frameTimeoutMs?: number;
  /** Largest jump ahead accepted at once while the stream is live (default DEFAULT_MAX_JUMP). */
  maxJump?: number;
  /** Called for each datagram taken into a frame (authentic, not a duplicate): the viewer's path meter. */
  onAccepted?: (h: DatagramHeader, bytes: number, nowMs: number) => void;
  /** Called for each authentic datagram dropped as late or a duplicate: it crossed the path all the same. */
  onRedundant?: (bytes: number) => void;
}

/**
 * How a session whose lost datagrams are repaired (docs/protocol.md §2.14) is put back
 * together: a frame completes whenever its last datagram arrives, resends included, so
 * frames may come out of order; a newer frame completing does not give up older ones.
 */
export interface RepairMode {
  /** Partial frames kept at once (a repair takes a round trip or more; 30 fps over 500 ms is 15). */
  maxInFlight: number;
  /** At least the recorder's repair wait. */
  frameTimeoutMs: number;
}

/** One complete frame, delivered in frame-number order (out of order in repair mode). */
export interface ReassembledFrame {
  frameNumber: number;
  /** Capture time, µs since the Unix epoch (sender's clock). */
  capturedAt: number;
  /** View into a pooled buffer: valid until the next push, sweep or reset call. Copy to keep. */
  jpeg: Uint8Array;
  /** Frame numbers skipped since the previous delivered frame (0 for the first one after a (re)sync). */
  missingBefore: number;
}

interface Counters {
  /** Every datagram pushed. */
  datagrams: number;
  framesCompleted: number;
  /**
   * Complete frames of a signed session whose signature did not check (forged,
   * altered, unsigned): not delivered, and the numbering is left as it was.
   */
  framesForged: number;
  /** Frame numbers between delivered frames that never had a partial frame in flight. */
  framesMissing: number;
  /** Times the numbering was given up and started over (big jump, or only late datagrams for a while). */
  resyncs: number;
  /** Frames started but never completed, by why they were given up. */
  incomplete: {
    /** A newer frame completed first: a fragment of this one was lost. */
    lostFragment: number;
    /** Still partial frameTimeoutMs after its first datagram (found by sweep). */
    timeout: number;
    /** Pushed out by a newer frame when maxInFlight were partial, or dropped at a resync. */
    evicted: number;
  };
  /** Datagrams not used, by why. */
  dropped: {
    /** Failed to decode (DecodeError). */
    malformed: number;
    wrongSession: number;
    /** For a frame already delivered or given up. */
    late: number;
    /** Fragment already received. */
    duplicate: number;
    /** Frame length above maxFrameBytes. */
    oversize: number;
    /** Frame length, size, count or capture time disagree with the frame's first fragment. */
    inconsistent: number;
    /** Encrypted payload in a session without keys (the server did not say it would encrypt). */
    unsupported: number;
    /** A frame number far from the live stream's, not (yet) confirmed by the stream going quiet. */
    unconfirmed: number;
    /**
     * By the multicast group before its first frame start: the viewer joined while a
     * frame was on its way, whose first fragments went out before it was a member.
     */
    joinedMidFrame: number;
  };
}

/** Reassembler counters; cumulative for the object's life (reset keeps them). */
export type ReassemblerStats = { readonly [K in keyof Counters]: Counters[K] extends object ? Readonly<Counters[K]> : Counters[K] };

/** One pooled partial frame; its buffers are allocated once and grow only when a bigger frame needs them. */
class Slot {
  active = false;
  frameNumber = 0;
  frameLength = 0;
  fragmentCount = 0;
  fragmentSize = 0;
  capturedAt = 0;
  received = 0;
  firstSeenMs = 0;
  data = new Uint8Array(0);
  /** seen[i] = 1 once fragment i arrived. */
  seen = new Uint8Array(0);

  /** `sizeHint`: the largest buffer in the pool, so slots converge on the stream's frame size instead of growing one by one. */
  start(h: DatagramHeader, nowMs: number, maxFrameBytes: number, sizeHint: number): void {
    if (this.data.length < h.frameLength) {
      this.data = new Uint8Array(Math.min(maxFrameBytes, Math.max(sizeHint, Math.ceil(h.frameLength * GROWTH))));
    }
    if (this.seen.length < h.fragmentCount) this.seen = new Uint8Array(Math.ceil(h.fragmentCount * GROWTH));
    this.seen.fill(0, 0, h.fragmentCount);
    this.active = true;
    this.frameNumber = h.frameNumber;
    this.frameLength = h.frameLength;
    this.fragmentCount = h.fragmentCount;
    this.fragmentSize = h.fragmentSize;
    this.capturedAt = h.capturedAt;
    this.received = 0;
    this.firstSeenMs = nowMs;
  }

  matches(h: DatagramHeader): boolean {
    return (
      h.frameLength === this.frameLength &&
      h.fragmentCount === this.fragmentCount &&
      h.fragmentSize === this.fragmentSize &&
      h.capturedAt === this.capturedAt
    );
  }
}

/**
 * Puts frames back together from datagrams: a pure state machine, driven by
 * `push(datagram, nowMs)` and `sweep(nowMs)` with the caller's clock. Memory is
 * bounded: at most maxInFlight pooled slots of at most maxFrameBytes each.
 * Frames come out in frame-number order (wrapping at 2^32); a frame that cannot
 * complete is dropped and counted under `stats.incomplete`.
 */
export class Reassembler {
  readonly #stats: Counters = {
    datagrams: 0,
    framesCompleted: 0,
    framesForged: 0,
    framesMissing: 0,
    resyncs: 0,
    incomplete: { lostFragment: 0, timeout: 0, evicted: 0 },
    dropped: { malformed: 0, wrongSession: 0, late: 0, duplicate: 0, oversize: 0, inconsistent: 0, unsupported: 0, unconfirmed: 0, joinedMidFrame: 0 },
  };
  readonly #maxJump: number;
  #opener: FrameOpener | null = null;
  #verifier: FrameVerifier | null = null;
  readonly #maxFrameBytes: number;
  #maxInFlight: number;
  #timeoutMs: number;
  readonly #baseInFlight: number;
  readonly #baseTimeoutMs: number;
  /** Repair mode: frames complete out of order (see RepairMode). */
  #repair = false;
  /** In repair mode, frames delivered or abandoned lately: their datagrams are late (duplicates of resends). */
  readonly #done = new Set<number>();
  readonly #pool: Slot[] = [];
  #sessionId = 0;
  /** The id of datagrams that came by the multicast group; null when the session has none. */
  #streamId: number | null = null;
  /** The viewer moved to another layer's group and its first frame has not begun yet. */
  #regrouped = false;
  /** A frame's first fragment has come by the group since the last reset. */
  #groupStarted = false;
  /** Frames at or before this number are late: delivered or given up. null before the first (re)sync. */
  #floor: number | null = null;
  #lastDelivered: number | null = null;
  /** Frames started and given up since the last delivery, so they are not also counted missing. */
  #givenUpSinceDelivery = 0;
  #lastAcceptedMs = -Infinity;
  readonly #onAccepted: ReassemblerOptions["onAccepted"] | null;
  readonly #onRedundant: ReassemblerOptions["onRedundant"] | null;

  constructor(opts: ReassemblerOptions) {
    this.#onAccepted = opts.onAccepted ?? null;
    this.#onRedundant = opts.onRedundant ?? null;
    const { maxFrameBytes = MAX_FRAME_BYTES, maxInFlight = 4, frameTimeoutMs = 500, maxJump = DEFAULT_MAX_JUMP } = opts;
    if (!Number.isInteger(maxJump) || maxJump < 1 || maxJump > RESYNC_DISTANCE) {
      throw new RangeError(`invalid maxJump=${maxJump}: expected an integer 1..${RESYNC_DISTANCE}`);
    }
    this.#maxJump = maxJump;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`invalid maxFrameBytes=${maxFrameBytes}: expected an integer 1..${0xffffffff}`);
    }
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 1024) {
      throw new RangeError(`invalid maxInFlight=${maxInFlight}: expected an integer 1..1024`);
    }
    if (!(frameTimeoutMs > 0) || !Number.isFinite(frameTimeoutMs)) {
      throw new RangeError(`invalid frameTimeoutMs=${frameTimeoutMs}: expected a positive number`);
    }
    this.#maxFrameBytes = maxFrameBytes;
    this.#maxInFlight = this.#baseInFlight = maxInFlight;
    this.#timeoutMs = this.#baseTimeoutMs = frameTimeoutMs;
    this.#sessionId = checkSessionId(opts.sessionId);
  }

  /** Counters, live (the object changes as datagrams arrive). */
  get stats(): ReassemblerStats {
    return this.#stats;
  }

  /** The session whose datagrams are accepted. */
  get sessionId(): number {
    return this.#sessionId;
  }

  /** Partial frames held right now. */
  get inFlight(): number {
    let n = 0;
    for (const s of this.#pool) if (s.active) n++;
    return n;
  }

  /** Pooled slots allocated so far (never more than maxInFlight). */
  get poolSize(): number {
    return this.#pool.length;
  }

  /** Bytes held by the pool's frame buffers. */
  get pooledBytes(): number {
    let n = 0;
    for (const s of this.#pool) n += s.data.length;
    return n;
  }

  /**
   * Forgets all partial frames and the numbering, and accepts `sessionId` from now on
   * (counters keep counting). With `opener` the session is encrypted: every datagram
   * must open with its keys before it counts for anything. `streamId` is the id of the
   * datagrams sent to the session's multicast group, accepted only from there. With
   * `verifier` the session is signed: a complete frame is delivered only when its
   * signature checks, and without it.
   */
  reset(sessionId: number, opener: FrameOpener | null = null, streamId: number | null = null, verifier: FrameVerifier | null = null, repair: RepairMode | null = null): void {
    this.#sessionId = checkSessionId(sessionId);
    this.#repair = repair !== null;
    this.#maxInFlight = Math.min(1024, Math.max(this.#baseInFlight, repair?.maxInFlight ?? 0));
    this.#timeoutMs = Math.max(this.#baseTimeoutMs, repair?.frameTimeoutMs ?? 0);
    this.#done.clear();
    this.#streamId = streamId === null ? null : checkSessionId(streamId);
    this.#groupStarted = false;
    this.#regrouped = false;
    this.#opener = opener;
    this.#verifier = verifier;
    for (const s of this.#pool) s.active = false;
    this.#floor = null;
    this.#lastDelivered = null;
    this.#givenUpSinceDelivery = 0;
    this.#lastAcceptedMs = -Infinity;
  }

  /**
   * The viewer moved to another layer's multicast group: datagrams by the group carry
   * `streamId` from now on. The old group's partial frames are let go uncounted (the
   * viewer left them; the same frame numbers come again in another size, which would
   * not fit their slots), and the new group's first whole frame starts it, as at a join.
   * The numbering stays: a frame neither group brought is still missing; the new
   * group's first frame moves the position to it (see push).
   */
  moveGroup(streamId: number): void {
    this.#streamId = checkSessionId(streamId);
    this.#groupStarted = false;
    this.#regrouped = true;
    for (const s of this.#pool) s.active = false;
  }

  /**
   * Takes one datagram; returns the frame it completed, if any. Never throws for bad
   * input: it counts it. `viaGroup`: it came by the multicast group, so it carries the
   * stream id; one that came to this viewer's own port carries the session id. The
   * same frame may arrive partly each way while the server switches a viewer to unicast.
   */
  push(datagram: Uint8Array, nowMs: number, viaGroup = false): ReassembledFrame | null {
    const st = this.#stats;
    st.datagrams++;
    let h: DatagramHeader;
    let payload: Uint8Array;
    try {
      ({ header: h, payload } = decodeDatagram(datagram));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      st.dropped.malformed++;
      return null;
    }
    if (h.sessionId !== (viaGroup ? this.#streamId : this.#sessionId)) {
      st.dropped.wrongSession++;
      return null;
    }
    if (this.#opener) {
      // Before anything else looks at the numbers: a forged datagram must not move them.
      const opened = this.#opener.open(h, datagram, payload, nowMs);
      if (typeof opened === "string") {
        // A held datagram is counted when it comes back (or when it expires, by the opener).
        if (opened === "held") st.datagrams--;
        return null;
      }
      payload = opened;
    } else if (h.encrypted) {
      st.dropped.unsupported++;
      return null;
    }
    if (viaGroup && !this.#groupStarted) {
      // The rest of a frame begun before this viewer joined can never complete: not a loss.
      if (h.fragmentIndex !== 0) {
        st.dropped.joinedMidFrame++;
        return null;
      }
      if (this.#regrouped) {
        // A frame already shown (or passed) in the old group's size is late in the new one's.
        if (this.#lastDelivered !== null && !seqLess(this.#lastDelivered, h.frameNumber)) {
          st.dropped.late++;
          return null;
        }
        // The new group's first frame is where the stream goes on, however far the old
        // group's losses left the numbering behind (a stray datagram cannot do this: it
        // came by a group this viewer just joined, from the server's address and port).
        this.#regrouped = false;
        this.#floor = seqAdd(h.frameNumber, -1);
      }
      this.#groupStarted = true;
    }
    if (h.frameLength > this.#maxFrameBytes) {
      st.dropped.oversize++;
      return null;
    }
    const fn = h.frameNumber;
    if (this.#floor !== null) {
      const ahead = seqDiff(fn, this.#floor);
      const live = nowMs - this.#lastAcceptedMs <= this.#timeoutMs;
      if ((ahead > this.#maxJump || ahead < -RESYNC_DISTANCE) && !this.#find(fn)) {
        // Far away while the stream is live: one stray (or spoofed) datagram does not get
        // to move the position. Once the stream has been quiet for a frame timeout, the
        // datagrams still arriving from afar are the stream (and the rest of a frame
        // begun that way belongs to it).
        if (live) {
          st.dropped.unconfirmed++;
          return null;
        }
        if (ahead > RESYNC_DISTANCE || ahead < -RESYNC_DISTANCE) this.#resync();
      } else if (ahead <= 0) {
        // Only late datagrams for a whole frame timeout: the sender restarted its numbering.
        if (nowMs - this.#lastAcceptedMs <= this.#timeoutMs) {
          st.dropped.late++;
          this.#onRedundant?.(datagram.length);
          return null;
        }
        this.#resync();
      }
    }
    if (this.#repair && this.#done.has(fn)) {
      st.dropped.late++;
      this.#onRedundant?.(datagram.length);
      return null;
    }
    let slot: Slot | null = this.#find(fn) ?? null;
    if (slot) {
      if (!slot.matches(h)) {
        st.dropped.inconsistent++;
        return null;
      }
      if (slot.seen[h.fragmentIndex]) {
        st.dropped.duplicate++;
        this.#onRedundant?.(datagram.length);
        return null;
      }
    } else {
      // A one-datagram frame completes at once: older partial frames are lost, and their
      // slots free. Not in a signed session before its signature checked: a forged one
      // would otherwise cost the frames before it.
      if (h.fragmentCount === 1 && !this.#verifier && !this.#repair) this.#giveUpOlderThan(fn);
      slot = this.#admit(h, nowMs);
      if (!slot) return null;
    }
    slot.data.set(payload, h.fragmentIndex * slot.fragmentSize);
    slot.seen[h.fragmentIndex] = 1;
    slot.received++;
    this.#lastAcceptedMs = nowMs;
    this.#onAccepted?.(h, datagram.length, nowMs);
    return slot.received === slot.fragmentCount ? this.#complete(slot) : null;
  }

  /** A frame whose every fragment arrived: delivered when it is the server's, else dropped without a trace on the numbering. */
  #complete(slot: Slot): ReassembledFrame | null {
    if (!this.#verifier) return this.#deliver(slot, slot.data.subarray(0, slot.frameLength));
    const jpeg = this.#verifier.verify(slot.frameNumber, slot.capturedAt, slot.data.subarray(0, slot.frameLength));
    if (jpeg) return this.#deliver(slot, jpeg);
    // Neither the floor nor older partial frames move: the real frame of this number
    // (and those before it) can still complete.
    slot.active = false;
    this.#stats.framesForged++;
    return null;
  }

  /** Drops partial frames whose first datagram is frameTimeoutMs old or older. */
  sweep(nowMs: number): void {
    const expired = this.#pool.filter((s) => s.active && nowMs - s.firstSeenMs >= this.#timeoutMs);
    expired.sort((a, b) => seqDiff(a.frameNumber, b.frameNumber));
    for (const s of expired) this.#giveUp(s, "timeout");
  }

  #find(fn: number): Slot | undefined {
    for (const s of this.#pool) if (s.active && s.frameNumber === fn) return s;
    return undefined;
  }

  #oldestActive(): Slot | undefined {
    let oldest: Slot | undefined;
    for (const s of this.#pool) if (s.active && (!oldest || seqLess(s.frameNumber, oldest.frameNumber))) oldest = s;
    return oldest;
  }

  /** A slot for a new frame: a free one with room, a new one, a free one to grow, or the oldest partial one. */
  #admit(h: DatagramHeader, nowMs: number): Slot | null {
    let slot: Slot | undefined;
    for (const s of this.#pool) {
      if (!s.active && s.data.length >= h.frameLength) {
        slot = s;
        break;
      }
    }
    if (!slot && this.#pool.length < this.#maxInFlight) {
      slot = new Slot();
      this.#pool.push(slot);
    }
    slot ??= this.#pool.find((s) => !s.active);
    if (!slot) {
      const oldest = this.#oldestActive()!;
      if (seqLess(h.frameNumber, oldest.frameNumber)) {
        // The newcomer is the oldest of all: it is the one that does not fit.
        this.#countGivenUp("evicted");
        this.#raiseFloor(h.frameNumber);
        return null;
      }
      this.#giveUp(oldest, "evicted");
      slot = oldest;
    }
    let largest = 0;
    for (const s of this.#pool) largest = Math.max(largest, s.data.length);
    slot.start(h, nowMs, this.#maxFrameBytes, largest);
    return slot;
  }

  #markDone(fn: number): void {
    if (!this.#repair) return;
    this.#done.add(fn);
    // Bounded: only recent frames can still see a duplicate.
    if (this.#done.size > 4 * this.#maxInFlight + 64) this.#done.delete(this.#done.values().next().value!);
  }

  #deliver(slot: Slot, jpeg: Uint8Array): ReassembledFrame {
    const fn = slot.frameNumber;
    if (this.#repair) return this.#deliverRepaired(slot, jpeg);
    this.#giveUpOlderThan(fn);
    slot.active = false;
    let missingBefore = 0;
    if (this.#lastDelivered !== null) {
      missingBefore = seqDiff(fn, this.#lastDelivered) - 1;
      this.#stats.framesMissing += Math.max(0, missingBefore - this.#givenUpSinceDelivery);
    }
    this.#givenUpSinceDelivery = 0;
    this.#lastDelivered = fn;
    this.#floor = fn;
    this.#stats.framesCompleted++;
    return { frameNumber: fn, capturedAt: slot.capturedAt, jpeg, missingBefore };
  }

  /**
   * Repair mode: older partial frames stay (their repairs may still come). A frame older
   * than the newest delivered was counted missing when that one came: no longer.
   */
  #deliverRepaired(slot: Slot, jpeg: Uint8Array): ReassembledFrame {
    const fn = slot.frameNumber;
    slot.active = false;
    this.#markDone(fn);
    let missingBefore = 0;
    if (this.#lastDelivered !== null && seqLess(fn, this.#lastDelivered)) {
      this.#stats.framesMissing = Math.max(0, this.#stats.framesMissing - 1);
    } else {
      if (this.#lastDelivered !== null) {
        missingBefore = seqDiff(fn, this.#lastDelivered) - 1;
        this.#stats.framesMissing += Math.max(0, missingBefore - this.#givenUpSinceDelivery);
      }
      this.#givenUpSinceDelivery = 0;
      this.#lastDelivered = fn;
    }
    // The floor trails the newest frame by the frames in flight: a resend for an older
    // one (even one lost whole, never started) is not late; duplicates are told by #done.
    this.#raiseFloor(seqAdd(this.#lastDelivered, -this.#maxInFlight));
    this.#stats.framesCompleted++;
    return { frameNumber: fn, capturedAt: slot.capturedAt, jpeg, missingBefore };
  }

  #giveUpOlderThan(fn: number): void {
    for (const s of this.#pool) if (s.active && seqLess(s.frameNumber, fn)) this.#giveUp(s, "lostFragment");
  }

  #giveUp(slot: Slot, why: keyof Counters["incomplete"]): void {
    slot.active = false;
    this.#markDone(slot.frameNumber);
    // Repair mode: a frame older than the newest delivered was already counted missing then.
    if (this.#repair && this.#lastDelivered !== null && seqLess(slot.frameNumber, this.#lastDelivered)) {
      this.#stats.incomplete[why]++;
      this.#stats.framesMissing = Math.max(0, this.#stats.framesMissing - 1);
      return;
    }
    this.#countGivenUp(why);
    // Repair mode: the floor trails delivery (see #deliverRepaired), and given-up frames
    // as well: under heavy loss (a multicast group wider than the viewer's path) nothing
    // may be delivered for seconds, and a floor held at the last delivered frame would
    // make every newer frame "too far ahead" while resends kept the stream live.
    // #done tells what is late.
    if (this.#repair) {
      this.#raiseFloor(seqAdd(slot.frameNumber, -this.#maxInFlight));
      return;
    }
    // Only the oldest partial frame moves the floor: an older one may still complete.
    const older = this.#oldestActive();
    if (!older || seqLess(slot.frameNumber, older.frameNumber)) this.#raiseFloor(slot.frameNumber);
  }

  #countGivenUp(why: keyof Counters["incomplete"]): void {
    this.#stats.incomplete[why]++;
    this.#givenUpSinceDelivery++;
  }

  #raiseFloor(fn: number): void {
    if (this.#floor === null || seqLess(this.#floor, fn)) this.#floor = fn;
  }

  /** Gives up the old numbering: partial frames go (counted evicted), the next frame starts afresh. */
  #resync(): void {
    for (const s of this.#pool) {
      if (!s.active) continue;
      s.active = false;
      this.#stats.incomplete.evicted++;
    }
    this.#floor = null;
    this.#lastDelivered = null;
    this.#givenUpSinceDelivery = 0;
    this.#stats.resyncs++;
  }
}

function checkSessionId(id: number): number {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`invalid sessionId=${id}: expected a u32`);
  return id;
}
