/**
 * The viewer's audio jitter buffer: packets in (each with its local arrival time),
 * packets out in order at their local playout time, and the concealments to play
 * where a packet never came. Pure: the clock is whatever the caller passes in.
 *
 * Timing. The sender stamps each packet with the capture time of its first sample;
 * this viewer's clock differs from the sender's by an unknown offset, and the
 * network adds a delay. `arrival - capturedAt` (the transit) is that offset plus the
 * delay of this packet; its minimum over a window is the offset plus the least delay.
 * Packet p plays at `capturedAt + mapping`, where the mapping aims at
 * `minTransit + targetDelay`, and targetDelay (MIN..MAX_TARGET_DELAY_US) covers the
 * spread of the transits (their 95th percentile above the minimum, plus the player's
 * margin). The mapping grows at once when that needs more (a gap of silence), and
 * shrinks slowly (at most SHRINK_STEP_US once per SHRINK_EVERY_US: a short cut), so
 * a burst of jitter costs one gap and the delay comes back down afterwards.
 *
 * Since video frames carry capture times on the same clock, `playoutTimeOf` tells the
 * window when to show the picture that goes with the sound.
 */
import type { AudioPacket } from "../wire/audio-packet.ts";
import { seqAdd, seqDiff } from "../wire/seq.ts";

/** The least and most target delay (above the least transit), µs. */
export const MIN_TARGET_DELAY_US = 40_000;
export const MAX_TARGET_DELAY_US = 120_000;
/** The target delay before any jitter was measured. */
export const INITIAL_TARGET_DELAY_US = 60_000;
/** Packets queued at most (1.28 s of 20 ms packets); more is dropped as overflow. */
export const JITTER_CAPACITY = 64;
/** Consecutive missing packets concealed (libopus fades out by then); later ones are silence. */
export const MAX_CONCEALED_RUN = 5;

/** Transits kept for the minimum: this long, at most MAX_MIN_ENTRIES of them. */
const MIN_WINDOW_US = 5_000_000;
const MAX_MIN_ENTRIES = 512;
/** Transits kept for the spread's percentile (2 s of 20 ms packets). */
const SPREAD_WINDOW = 100;
const SPREAD_PERCENTILE = 0.95;
/** How fast the target comes down when the jitter has gone, µs per second. */
const TARGET_DECAY_US_PER_S = 2_000;
/** The mapping moves up only by more than this (the minimum wobbles by microseconds). */
const GROW_HYSTERESIS_US = 2_000;
/** It moves down only when this much too long, by at most SHRINK_STEP_US, once per SHRINK_EVERY_US. */
const SHRINK_HYSTERESIS_US = 10_000;
const SHRINK_STEP_US = 20_000;
const SHRINK_EVERY_US = 1_000_000;
/** Seqs remembered as played, to tell a duplicate from a late packet. */
const HISTORY = 256;
/** A packet this far from the expected capture time, or outside the seq window, starts a new stream. */
const RESYNC_US = 1_000_000;
/** Playouts one pull returns at most; a long pause is skipped in one step. */
const MAX_PULL = 256;

/** Why a pushed packet was not queued. */
export type JitterDrop = "duplicate" | "late" | "overflow";

/** What push did with a packet. */
export type PushResult = "queued" | JitterDrop;

/** One thing to play from `playAt` (local µs): a packet, or the concealment of a missing one. */
export type Playout =
  | { kind: "packet"; packet: AudioPacket; playAt: number }
  | { kind: "conceal"; seq: number; samples: number; playAt: number };

/** Counters since creation (reset() keeps them). */
export interface JitterStats {
  /** Packets pushed. */
  received: number;
  /** Packets handed out to play. */
  played: number;
  /** Missing packets handed out as concealment. */
  concealed: number;
  /** Missing packets past MAX_CONCEALED_RUN in a row: played as silence. */
  silent: number;
  /** Pushed after their turn had come (they had been concealed or skipped). */
  late: number;
  /** Pushed again (already queued or played). */
  duplicate: number;
  /** Dropped because the queue was full. */
  overflow: number;
  /** Times the stream started over (a jump in seq or capture time). */
  resyncs: number;
  /** Times the playout delay grew, and shrank. */
  delayGrown: number;
  delayShrunk: number;
}

/** Tuning; every field has a default. */
export interface JitterBufferOptions {
  /** Added to the measured spread: how far ahead of playout the player must have a packet (its write-ahead and timer slack), µs. */
  marginUs?: number;
  minDelayUs?: number;
  maxDelayUs?: number;
  initialDelayUs?: number;
  capacity?: number;
  maxConcealedRun?: number;
}

/** The packet and where the stream stands, once a first packet has anchored it. */
interface Anchor {
  /** The next seq to play and the capture time it should have. */
  seq: number;
  capturedAt: number;
  /** Local playout time = capturedAt + mapping. */
  mapping: number;
  /** Samples of the last packet played (a missing one is taken to be as long). */
  samples: number;
  /** Missing packets in a row so far. */
  missingRun: number;
}

/** See the file comment. */
export class JitterBuffer {
  readonly stats: JitterStats = { received: 0, played: 0, concealed: 0, silent: 0, late: 0, duplicate: 0, overflow: 0, resyncs: 0, delayGrown: 0, delayShrunk: 0 };
  readonly #margin: number;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #initialDelay: number;
  readonly #capacity: number;
  readonly #maxConcealed: number;
  /** Queued packets, in seq order. */
  #queue: AudioPacket[] = [];
  #anchor: Anchor | null = null;
  /** Monotonic deque of (arrival, transit) for the windowed minimum. */
  #minAt: number[] = [];
  #minTransit: number[] = [];
  /** The latest SPREAD_WINDOW transits, a ring. */
  readonly #spread = new Float64Array(SPREAD_WINDOW);
  #spreadCount = 0;
  #spreadNext = 0;
  #target: number;
  #lastArrival: number | null = null;
  #lastShrinkAt = -Infinity;
  /** seq & (HISTORY-1) -> the seq played there, for duplicates. */
  readonly #played = new Float64Array(HISTORY).fill(-1);

  constructor(opts: JitterBufferOptions = {}) {
    this.#margin = opts.marginUs ?? 0;
    this.#minDelay = opts.minDelayUs ?? MIN_TARGET_DELAY_US;
    this.#maxDelay = opts.maxDelayUs ?? MAX_TARGET_DELAY_US;
    this.#initialDelay = opts.initialDelayUs ?? INITIAL_TARGET_DELAY_US;
    this.#capacity = opts.capacity ?? JITTER_CAPACITY;
    this.#maxConcealed = opts.maxConcealedRun ?? MAX_CONCEALED_RUN;
    this.#target = this.#clamp(this.#initialDelay);
  }

  /** The playout delay aimed at above the least transit, µs. */
  get targetDelayUs(): number {
    return this.#target;
  }

  /** The least transit in the window (clock offset plus least network delay), µs; null before the first packet. */
  get minTransitUs(): number | null {
    return this.#minTransit.length > 0 ? this.#minTransit[0]! : null;
  }

  /** capturedAt -> local playout time, µs; null before the first packet. */
  get mappingUs(): number | null {
    return this.#anchor?.mapping ?? null;
  }

  /** Packets waiting. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The local time (µs) at which a sample captured at `capturedAt` plays; null before the first packet. */
  playoutTimeOf(capturedAt: number): number | null {
    const a = this.#anchor;
    return a ? capturedAt + a.mapping : null;
  }

  /** Takes a packet that arrived at `arrivedAt` (local µs). */
  push(packet: AudioPacket, arrivedAt: number): PushResult {
    this.stats.received++;
    let a = this.#anchor;
    if (a && !this.#belongs(a, packet)) {
      this.#restart();
      this.stats.resyncs++;
      a = null;
    }
    if (a) {
      const d = seqDiff(packet.seq, a.seq);
      if (d < 0) {
        if (this.#played[packet.seq & (HISTORY - 1)] === packet.seq) {
          this.stats.duplicate++;
          return "duplicate";
        }
        // Too late to play, but what it says about the path counts.
        this.#measure(packet, arrivedAt);
        this.stats.late++;
        return "late";
      }
      if (this.#queue.some((q) => q.seq === packet.seq)) {
        this.stats.duplicate++;
        return "duplicate";
      }
    }
    this.#measure(packet, arrivedAt);
    if (!a) {
      this.#anchor = { seq: packet.seq, capturedAt: packet.capturedAt, mapping: this.minTransitUs! + this.#target, samples: packet.samples, missingRun: 0 };
      // The first second settles before anything is cut.
      this.#lastShrinkAt = arrivedAt;
    } else {
      this.#adjust(a, arrivedAt);
    }
    this.#insert(packet);
    if (this.#queue.length > this.#capacity) {
      // The oldest goes: its turn is nearest, and what is dropped is concealed like a loss.
      const dropped = this.#queue.shift();
      this.stats.overflow++;
      if (dropped === packet) return "overflow";
    }
    return "queued";
  }

  /**
   * Everything whose playout starts before `until` (local µs), in order: the queued
   * packets whose turn has come, and a concealment for each missing one whose turn has
   * come (up to MAX_CONCEALED_RUN in a row; after that the stream is silent and counted so).
   */
  pull(until: number): Playout[] {
    const out: Playout[] = [];
    const a = this.#anchor;
    if (!a) return out;
    while (out.length < MAX_PULL) {
      const playAt = a.capturedAt + a.mapping;
      if (playAt >= until) break;
      const head = this.#queue[0];
      if (head && head.seq === a.seq) {
        this.#queue.shift();
        out.push({ kind: "packet", packet: head, playAt: head.capturedAt + a.mapping });
        this.#played[head.seq & (HISTORY - 1)] = head.seq;
        this.stats.played++;
        a.seq = seqAdd(head.seq, 1);
        a.capturedAt = head.capturedAt + samplesToMicros(head.samples);
        a.samples = head.samples;
        a.missingRun = 0;
        continue;
      }
      const step = samplesToMicros(a.samples);
      if (a.missingRun < this.#maxConcealed) {
        out.push({ kind: "conceal", seq: a.seq, samples: a.samples, playAt });
        this.stats.concealed++;
        a.missingRun++;
        a.seq = seqAdd(a.seq, 1);
        a.capturedAt += step;
        continue;
      }
      // Silent: skip at once to the next packet queued or to `until`, whichever is first.
      const toUntil = Math.ceil((until - playAt) / step);
      const skip = head ? Math.min(toUntil, seqDiff(head.seq, a.seq)) : toUntil;
      this.stats.silent += skip;
      a.missingRun += skip;
      a.seq = seqAdd(a.seq, skip);
      a.capturedAt += skip * step;
    }
    return out;
  }

  /** Forgets the stream (the audio stopped): the next packet anchors anew. Counters stay. */
  reset(): void {
    this.#restart();
  }

  #restart(): void {
    this.#queue = [];
    this.#anchor = null;
    this.#minAt = [];
    this.#minTransit = [];
    this.#spreadCount = 0;
    this.#spreadNext = 0;
    this.#target = this.#clamp(this.#initialDelay);
    this.#lastArrival = null;
    this.#lastShrinkAt = -Infinity;
    this.#played.fill(-1);
  }

  /** False when `p` cannot be the same stream: its seq far outside the window, or its capture time far from what its seq says. */
  #belongs(a: Anchor, p: AudioPacket): boolean {
    const d = seqDiff(p.seq, a.seq);
    if (d < -HISTORY || d > this.#capacity) return false;
    const expected = a.capturedAt + d * samplesToMicros(a.samples);
    return Math.abs(p.capturedAt - expected) <= RESYNC_US;
  }

  /** Takes a packet's transit into the minimum and the spread, and moves the target. */
  #measure(p: AudioPacket, arrivedAt: number): void {
    const transit = arrivedAt - p.capturedAt;
    // Windowed minimum: drop entries that left the window, then those the new one beats.
    while (this.#minAt.length > 0 && (this.#minAt[0]! < arrivedAt - MIN_WINDOW_US || this.#minAt.length >= MAX_MIN_ENTRIES)) {
      this.#minAt.shift();
      this.#minTransit.shift();
    }
    while (this.#minTransit.length > 0 && this.#minTransit[this.#minTransit.length - 1]! >= transit) {
      this.#minAt.pop();
      this.#minTransit.pop();
    }
    this.#minAt.push(arrivedAt);
    this.#minTransit.push(transit);
    this.#spread[this.#spreadNext] = transit;
    this.#spreadNext = (this.#spreadNext + 1) % SPREAD_WINDOW;
    this.#spreadCount = Math.min(SPREAD_WINDOW, this.#spreadCount + 1);

    const sorted = this.#spread.slice(0, this.#spreadCount).sort();
    const p95 = sorted[Math.floor(SPREAD_PERCENTILE * (this.#spreadCount - 1))]!;
    const wanted = this.#clamp(p95 - this.minTransitUs! + this.#margin);
    const elapsed = this.#lastArrival === null ? 0 : Math.max(0, arrivedAt - this.#lastArrival);
    this.#lastArrival = Math.max(arrivedAt, this.#lastArrival ?? arrivedAt);
    // Grow at once; come down slowly.
    this.#target = wanted >= this.#target ? wanted : Math.max(wanted, this.#target - (TARGET_DECAY_US_PER_S * elapsed) / 1e6);
  }

  /** Moves the mapping toward minTransit + target: up at once, down a step at a time. */
  #adjust(a: Anchor, arrivedAt: number): void {
    const wanted = this.minTransitUs! + this.#target;
    if (wanted > a.mapping + GROW_HYSTERESIS_US) {
      a.mapping = wanted;
      this.stats.delayGrown++;
    } else if (a.mapping - wanted > SHRINK_HYSTERESIS_US && arrivedAt - this.#lastShrinkAt >= SHRINK_EVERY_US) {
      a.mapping -= Math.min(a.mapping - wanted, SHRINK_STEP_US);
      this.#lastShrinkAt = arrivedAt;
      this.stats.delayShrunk++;
    }
  }

  #insert(p: AudioPacket): void {
    const q = this.#queue;
    let i = q.length;
    while (i > 0 && seqDiff(q[i - 1]!.seq, p.seq) > 0) i--;
    q.splice(i, 0, p);
  }

  #clamp(us: number): number {
    return Math.min(this.#maxDelay, Math.max(this.#minDelay, us));
  }
}

/** Duration of `samples` at 48 kHz, µs. */
export function samplesToMicros(samples: number): number {
  return (samples * 1e6) / 48_000;
}
