import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { OggOpusWriter } from "../mux/ogg-opus.ts";
import { concatBytes } from "../wire/bytes.ts";

/**
 * The listeners of /audio.ogg: each gets a live Ogg Opus stream of one camera's audio, its
 * own header pages first, then one page per packet (lib/mux/ogg-opus.ts). Apart from any
 * socket: the wrapper calls take() when its connection wants more, push() says whom to wake,
 * and the clock (ms) is passed in.
 *
 * Bounded: a listener holds at most `maxQueued` packets not yet taken (references to the
 * packets every listener shares). A listener that falls further behind loses its oldest
 * ones (counted as skipped); its writer then moves the granule over the gap, so the player
 * keeps time and stays near live instead of growing a backlog. One that takes nothing for
 * `stallMs` while packets wait has stopped reading and is reported by stalled().
 */

/** One listener and its counters. */
export interface AudioReader {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly camera: number;
  /** Clock ms when it was added. */
  readonly joinedAt: number;
  packetsSent: number;
  /** Packets dropped because the listener was more than maxQueued behind. */
  packetsSkipped: number;
  bytesSent: number;
}

interface ReaderState extends AudioReader {
  writer: OggOpusWriter;
  queue: AudioPacket[];
  waiting: boolean;
  lastTakeAt: number;
}

/** Packets a listener may be behind (at 20 ms each, half a second) before it skips. */
export const DEFAULT_AUDIO_QUEUE = 25;

/** The set of audio listeners, bounded by maxReaders. */
export class AudioReaders {
  /** Sums over every listener since the start, including those that left. */
  readonly totals = { packetsSent: 0, packetsSkipped: 0, bytesSent: 0 };
  readonly #readers = new Map<string, ReaderState>();
  readonly #maxReaders: number;
  readonly #maxQueued: number;
  readonly #stallMs: number;

  constructor(opts: { maxReaders: number; stallMs: number; maxQueued?: number }) {
    const maxQueued = opts.maxQueued ?? DEFAULT_AUDIO_QUEUE;
    if (!(Number.isInteger(opts.maxReaders) && opts.maxReaders >= 1)) throw new RangeError(`maxReaders must be a whole number of at least 1, got ${opts.maxReaders}`);
    if (!(opts.stallMs > 0)) throw new RangeError(`stallMs must be positive, got ${opts.stallMs}`);
    if (!(Number.isInteger(maxQueued) && maxQueued >= 1)) throw new RangeError(`maxQueued must be a whole number of at least 1, got ${maxQueued}`);
    this.#maxReaders = opts.maxReaders;
    this.#maxQueued = maxQueued;
    this.#stallMs = opts.stallMs;
  }

  get size(): number {
    return this.#readers.size;
  }

  /** True when another listener would exceed maxReaders. */
  get full(): boolean {
    return this.#readers.size >= this.#maxReaders;
  }

  /**
   * Adds a listener of `peer.camera`, whose audio is `format`; returns the bytes its stream
   * starts with (the Ogg Opus header pages). Throws RangeError when full or for a known id.
   */
  add(peer: { id: string; address: string; port: number; camera: number }, format: AudioFormat, nowMs: number): Uint8Array {
    if (this.#readers.has(peer.id)) throw new RangeError(`audio reader ${peer.id} already exists`);
    if (this.full) throw new RangeError(`${this.#maxReaders} audio readers already listening`);
    const writer = new OggOpusWriter(format);
    const header = writer.header();
    this.#readers.set(peer.id, {
      ...peer, joinedAt: nowMs, packetsSent: 0, packetsSkipped: 0, bytesSent: header.length,
      writer, queue: [], waiting: false, lastTakeAt: nowMs,
    });
    this.totals.bytesSent += header.length;
    return header;
  }

  /** Offers a packet of `camera` to its listeners; returns the ids of those waiting for one (wake them). */
  push(packet: AudioPacket, camera: number): string[] {
    const wake: string[] = [];
    for (const r of this.#readers.values()) {
      if (r.camera !== camera) continue;
      r.queue.push(packet);
      if (r.queue.length > this.#maxQueued) {
        r.queue.shift();
        r.packetsSkipped++;
        this.totals.packetsSkipped++;
      }
      if (r.waiting) {
        r.waiting = false;
        wake.push(r.id);
      }
    }
    return wake;
  }

  /**
   * The listener's connection wants more: the pages of every packet waiting, in order, as one
   * chunk, counted as sent; or null (it waits and push() names it).
   */
  take(id: string, nowMs: number): Uint8Array | null {
    const r = this.#readers.get(id);
    if (!r) return null;
    if (r.queue.length === 0) {
      r.waiting = true;
      return null;
    }
    const pages = r.queue.map((p) => r.writer.page(p));
    r.queue = [];
    r.waiting = false;
    r.lastTakeAt = nowMs;
    const out = concatBytes(pages);
    const bytes = out.length;
    r.packetsSent += pages.length;
    r.bytesSent += bytes;
    this.totals.packetsSent += pages.length;
    this.totals.bytesSent += bytes;
    return out;
  }

  /** Listeners that left packets untaken for longer than stallMs: they stopped reading. */
  stalled(nowMs: number): AudioReader[] {
    const out: AudioReader[] = [];
    for (const r of this.#readers.values()) if (r.queue.length > 0 && nowMs - r.lastTakeAt > this.#stallMs) out.push(r);
    return out;
  }

  /** Listeners of `camera` now. */
  count(camera: number): number {
    let n = 0;
    for (const r of this.#readers.values()) if (r.camera === camera) n++;
    return n;
  }

  get(id: string): AudioReader | undefined {
    return this.#readers.get(id);
  }

  /** Removes a listener and what it had waiting; returns it, or undefined when already gone. */
  remove(id: string): AudioReader | undefined {
    const r = this.#readers.get(id);
    if (!r) return undefined;
    this.#readers.delete(id);
    r.queue = [];
    return r;
  }
}
