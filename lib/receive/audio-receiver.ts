import type { AudioPacket } from "../wire/audio-packet.ts";
import { opusPacketSamples } from "../wire/opus-toc.ts";
import { decodeAudioDatagram } from "../wire/audio-datagram.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { seqDiff } from "../wire/seq.ts";
import type { FrameOpener } from "./frame-opener.ts";
import type { FrameVerifier } from "./frame-verifier.ts";

/** Audio datagrams dropped or missed, by reason, for the stats file and the report. */
export interface AudioCounters {
  /** Packets delivered to the player. */
  received: number;
  /** Packet numbers that never came (gaps), less those that came late after all. */
  lost: number;
  /** Came after a later packet (still delivered: the jitter buffer decides). */
  reordered: number;
  /** A packet already delivered. */
  duplicate: number;
  /** Not an audio datagram (bad header, lengths, an Opus packet that is not one). */
  malformed: number;
  /** Another session's or stream's. */
  foreign: number;
  /** The tag did not check or the datagram was not encrypted in an encrypted session. */
  auth: number;
  /** The signature did not check, or there was none, in a signed session. */
  forged: number;
  /** Under a key this viewer does not hold (one retired, or whose key message never came). */
  noKey: number;
}

/** Packet numbers remembered to spot duplicates. */
const SEEN_KEPT = 256;
/** A jump larger than this is a restart of the numbering, not this many losses (about a minute at 20 ms). */
const MAX_GAP = 3000;

/**
 * Audio datagrams in, checked AudioPackets out: the session or group id, the key (an
 * encrypted session), the signature (a signed session), the Opus packet's own TOC; then
 * losses, duplicates and reordering by packet number. A plain class: the caller owns the
 * socket and the clock, and the opener it shares with the frames.
 */
export class AudioReceiver {
  readonly counters: AudioCounters = { received: 0, lost: 0, reordered: 0, duplicate: 0, malformed: 0, foreign: 0, auth: 0, forged: 0, noKey: 0 };
  #sessionId: number | null = null;
  #streamId: number | null = null;
  #opener: FrameOpener | null = null;
  #verifier: FrameVerifier | null = null;
  #highest: number | null = null;
  readonly #seen = new Set<number>();

  /** A new session: its ids, its opener (encrypted) and verifier (signed); counters go on. */
  reset(sessionId: number, streamId: number | null, opener: FrameOpener | null, verifier: FrameVerifier | null): void {
    this.#sessionId = sessionId;
    this.#streamId = streamId;
    this.#opener = opener;
    this.#verifier = verifier;
    this.#highest = null;
    this.#seen.clear();
  }

  /** One audio datagram; the packet, or null when it is dropped (counted) or held for its key. */
  push(datagram: Uint8Array, nowMs: number, viaGroup = false): AudioPacket | null {
    if (this.#sessionId === null) {
      this.counters.foreign++;
      return null;
    }
    let d;
    try {
      d = decodeAudioDatagram(datagram);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.counters.malformed++;
      return null;
    }
    const h = d.header;
    if (h.sessionId !== (viaGroup ? this.#streamId : this.#sessionId)) {
      this.counters.foreign++;
      return null;
    }
    let payload = d.payload;
    if (this.#opener) {
      const opened = this.#opener.open(h, datagram, payload, nowMs);
      if (opened === "held") return null;
      if (opened === "noKey" || opened === "auth") {
        this.counters[opened]++;
        return null;
      }
      payload = opened;
    } else if (h.encrypted) {
      // Encrypted datagrams in a session without a key: nothing here can open them.
      this.counters.auth++;
      return null;
    }
    if (this.#verifier) {
      const opus = this.#verifier.verifyAudio(h.frameNumber, h.capturedAt, payload);
      if (!opus) {
        this.counters.forged++;
        return null;
      }
      payload = opus;
    }
    let samples;
    try {
      samples = opusPacketSamples(payload);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.counters.malformed++;
      return null;
    }
    const seq = h.frameNumber;
    if (this.#seen.has(seq)) {
      this.counters.duplicate++;
      return null;
    }
    this.#remember(seq);
    const high = this.#highest;
    if (high === null) this.#highest = seq;
    else {
      const gap = seqDiff(seq, high);
      if (gap > 0) {
        if (gap <= MAX_GAP) this.counters.lost += gap - 1;
        this.#highest = seq;
      } else {
        // A packet counted lost came after all.
        this.counters.reordered++;
        if (-gap <= MAX_GAP && this.counters.lost > 0) this.counters.lost--;
      }
    }
    this.counters.received++;
    // A copy: the opener's plaintext is reused by the next datagram.
    return { seq, capturedAt: h.capturedAt, samples, data: payload.slice() };
  }

  #remember(seq: number): void {
    this.#seen.add(seq);
    if (this.#seen.size > SEEN_KEPT) this.#seen.delete(this.#seen.values().next().value!);
  }
}
