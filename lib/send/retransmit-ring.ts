import { decodeDatagram, SESSION_ID_OFFSET } from "../wire/datagram.ts";
import { seqLess } from "../wire/seq.ts";
import { entryIndexes, GoneReason, MAX_GONE_FRAMES, type GoneBody, type RepairBody } from "../wire/repair.ts";
import type { RepairBudget } from "./repair-budget.ts";

/** How long the server keeps a frame's datagrams for resending: past a recorder's repair wait, with margin. */
export const DEFAULT_RING_AGE_MS = 250;
/** Most bytes the ring holds (about 1 s of a 60 Mbit/s stream), whichever limit is reached first. */
export const DEFAULT_RING_BYTES = 8 * 1024 * 1024;

/** Quality layers the ring tells apart (lib/send/layer-ladder.ts has at most 4). */
export const MAX_RING_LAYERS = 16;

interface HeldFrame {
  at: number;
  /** The frame's datagrams as sent, one copy, back to back. */
  bytes: Uint8Array;
  /** Where datagram i starts in `bytes`; one more entry for the end. */
  offsets: number[];
}

/** What the ring answers a repair message with. */
export interface RepairAnswer {
  /** Datagrams to send to the viewer now, stamped with its session id; each a fresh copy. */
  datagrams: Uint8Array[];
  /** Gone messages to send (frames the ring no longer holds, or over the viewer's budget). */
  gone: GoneBody[];
  /** The message was over the viewer's request rate: nothing was looked up and nothing should be answered. */
  dropped: boolean;
}

/**
 * The server's last frames, as sent, for resending on a viewer's request
 * (docs/protocol.md §2.14). Bounded by age and bytes, whichever is smaller; one copy per
 * frame whatever the number of viewers: the session id is the one header field neither
 * encryption nor the frame signature covers, so a resend is the held bytes with the
 * asking viewer's id written in. Pure: driven by `now` (ms).
 */
export class RetransmitRing {
  readonly maxAgeMs: number;
  readonly maxBytes: number;
  /** By layer * 2^32 + frame number; insertion order is age order: eviction takes from the front. */
  readonly #frames = new Map<number, HeldFrame>();
  #bytes = 0;
  /** Frames pushed. */
  framesPushed = 0;
  /** Frames dropped for age or bytes. */
  framesEvicted = 0;
  /** Frames larger than the whole ring, never held. */
  framesTooLarge = 0;
  /** Datagrams handed out for resending. */
  datagramsResent = 0;
  /** Bytes handed out for resending. */
  bytesResent = 0;
  /** Frames answered gone because the ring no longer held them. */
  framesGone = 0;
  /** Frames (or parts) answered gone for a viewer's byte budget. */
  framesOverBudget = 0;
  /** Frames answered gone because they were never sent to the asking viewer (skipped for its path). */
  framesSkipped = 0;
  /**
   * Frames asked for that the server has not made yet (ahead of the newest pushed): not
   * answered, not even gone. A viewer sees such a number only from a stranger's datagram
   * (a forger's), and its own frame of that number is still to come.
   */
  framesAhead = 0;
  /** The newest frame number pushed, any layer; null before the first. */
  #newest: number | null = null;
  /** Indexes asked for that the frame does not have (a confused or hostile viewer). */
  badIndexes = 0;

  constructor(opts: { maxAgeMs?: number; maxBytes?: number } = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_RING_AGE_MS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_RING_BYTES;
    if (!(this.maxAgeMs > 0) || !(this.maxBytes > 0)) throw new RangeError(`retransmit ring maxAgeMs=${this.maxAgeMs} maxBytes=${this.maxBytes}: expected both above 0`);
  }

  /** Frames held now. */
  get framesHeld(): number {
    return this.#frames.size;
  }

  /** Bytes held now. */
  get bytesHeld(): number {
    return this.#bytes;
  }

  /**
   * Keeps one frame's datagrams, exactly as sent (any one viewer's, or the multicast
   * group's: the session id is rewritten on resend). The bytes are copied: a
   * fragmenter reuses its buffer. `layer` tells apart the sizes one frame number is
   * sent at (0 = the source's). A frame already held is replaced (a source that
   * restarted its numbering).
   */
  push(datagrams: readonly Uint8Array[], now: number, layer = 0): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= MAX_RING_LAYERS) throw new RangeError(`retransmit ring layer=${layer}: expected an integer 0..${MAX_RING_LAYERS - 1}`);
    this.framesPushed++;
    this.#expire(now);
    if (datagrams.length === 0) return;
    const fn = decodeDatagram(datagrams[0]!).header.frameNumber;
    if (this.#newest === null || seqLess(this.#newest, fn)) this.#newest = fn;
    const key = keyOf(layer, fn);
    this.#drop(key);
    let total = 0;
    for (const d of datagrams) total += d.length;
    if (total > this.maxBytes) {
      this.framesTooLarge++;
      return;
    }
    const bytes = new Uint8Array(total);
    const offsets = [0];
    for (const d of datagrams) {
      bytes.set(d, offsets[offsets.length - 1]!);
      offsets.push(offsets[offsets.length - 1]! + d.length);
    }
    while (this.#bytes + total > this.maxBytes) this.#evictOldest();
    this.#frames.set(key, { at: now, bytes, offsets });
    this.#bytes += total;
  }

  /**
   * Answers one viewer's repair message: the requested datagrams still held and within
   * its budget, stamped with `sessionId`; gone for the rest. `layerOf` says which
   * layer the viewer was sent a frame at (the source's when left out), or null for a
   * frame it was not sent: that one is gone as skipped, not resent (another viewer's
   * copy may be held, but the viewer's path had no room for it). A message over the
   * viewer's request rate is dropped whole (counted in the budget).
   */
  answer(req: RepairBody, sessionId: number, budget: RepairBudget, now: number, layerOf: (frameNumber: number) => number | null = () => 0): RepairAnswer {
    if (!budget.takeRequest(now)) return { datagrams: [], gone: [], dropped: true };
    this.#expire(now);
    const datagrams: Uint8Array[] = [];
    const expired: number[] = [];
    const overBudget: number[] = [];
    const skipped: number[] = [];
    for (const entry of req.entries) {
      if (this.#newest === null || seqLess(this.#newest, entry.frameNumber)) {
        this.framesAhead++;
        continue;
      }
      const layer = layerOf(entry.frameNumber);
      if (layer === null) {
        if (!skipped.includes(entry.frameNumber)) {
          skipped.push(entry.frameNumber);
          this.framesSkipped++;
        }
        continue;
      }
      const f = this.#frames.get(keyOf(layer, entry.frameNumber));
      if (!f) {
        if (!expired.includes(entry.frameNumber)) {
          expired.push(entry.frameNumber);
          this.framesGone++;
        }
        continue;
      }
      const count = f.offsets.length - 1;
      for (const i of entryIndexes(entry)) {
        if (i >= count) {
          this.badIndexes++;
          continue;
        }
        const src = f.bytes.subarray(f.offsets[i]!, f.offsets[i + 1]!);
        if (!budget.takeBytes(src.length)) {
          if (!overBudget.includes(entry.frameNumber)) {
            overBudget.push(entry.frameNumber);
            this.framesOverBudget++;
          }
          continue;
        }
        const copy = new Uint8Array(src);
        new DataView(copy.buffer).setUint32(SESSION_ID_OFFSET, sessionId);
        datagrams.push(copy);
        this.datagramsResent++;
        this.bytesResent += copy.length;
      }
    }
    const gone: GoneBody[] = [];
    for (const [reason, frames] of [[GoneReason.Expired, expired], [GoneReason.OverBudget, overBudget], [GoneReason.Skipped, skipped]] as const) {
      for (let k = 0; k < frames.length; k += MAX_GONE_FRAMES) gone.push({ reason, frames: frames.slice(k, k + MAX_GONE_FRAMES) });
    }
    return { datagrams, gone, dropped: false };
  }

  #expire(now: number): void {
    for (const [, f] of this.#frames) {
      if (now - f.at <= this.maxAgeMs) break;
      this.#evictOldest();
    }
  }

  #evictOldest(): void {
    const first = this.#frames.keys().next();
    if (first.done) return;
    this.#drop(first.value);
    this.framesEvicted++;
  }

  #drop(key: number): void {
    const f = this.#frames.get(key);
    if (!f) return;
    this.#bytes -= f.bytes.length;
    this.#frames.delete(key);
  }
}

/** One number for (layer, frame number): exact below 2^53 with layers under MAX_RING_LAYERS. */
function keyOf(layer: number, frameNumber: number): number {
  return layer * 2 ** 32 + frameNumber;
}
