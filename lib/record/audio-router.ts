import type { AudioPacket } from "../wire/audio-packet.ts";
import { LOOKAHEAD_MICROS } from "./segment-audio.ts";

/**
 * How long (capture time) audio may lag the video before its place is filled with silence, and
 * how long a finished segment's video waits for the audio of its last moments. Audio and video
 * reach the recorder by different paths; this covers the difference, and bounds what ffmpeg
 * holds back to interleave the two (so a stopped audio stream never stalls the video).
 */
export const AUDIO_WAIT_MICROS = 500_000;
/**
 * Packets kept while they are ahead of the video (8 s of 20 ms packets: the viewer hands frames to
 * its recorder up to 5 s late, --record-delay, while audio may come straight); more drop the oldest.
 */
export const MAX_HELD_AUDIO = 400;
/** How far before its start a segment takes packets as pre-roll (SegmentAudio: 80 ms, and the packet that spans the start). */
export const PREROLL_MICROS = 80_000;
/** Recent packets kept for the next segment's pre-roll: 80 ms of 20 ms packets and the one that spans its start, twice over. */
const RECENT_AUDIO = 8;

/** The part of a segment the router drives. */
export interface AudioTarget {
  /** Capture time of the segment's first frame, µs since the epoch. */
  readonly startedAt: number;
  /** Places a packet that belongs to this segment (the segment counts what it cannot place). */
  writeAudio(packet: AudioPacket): void;
  /** Places a packet from just before the segment's start as pre-roll (decoded, not played). */
  prerollAudio(packet: AudioPacket): void;
  /**
   * Places a packet of the next segment whose sound begins before this one's end (it starts
   * within LOOKAHEAD_MICROS after it): this segment plays that part (not counted here).
   */
  tailAudio?(packet: AudioPacket): void;
  /** Silence up to `capturedAt`: whole packets when `whole` (an outage going on), else as close as can be (the end). */
  fillAudio(capturedAt: number, whole: boolean): void;
  /**
   * The first packet known at or after the segment's end `end` (the next segment's, not placed
   * here): packets lost before it whose sound begins before the end are concealed
   * (segment-audio.ts).
   */
  concealBefore?(next: AudioPacket, end: number): void;
}

/** A segment whose video has ended and whose audio is complete: it may be finished. */
export interface AudioDone<S, R> {
  seg: S;
  /** Capture time where its video (and now its audio) ends. */
  end: number;
  reason: R;
}

/**
 * Sends each audio packet to the one segment its capture time belongs to, free of I/O and
 * driven by the packets and the frames' capture times:
 *
 *   - a packet is in segment S when S.start <= capturedAt < start of the next segment, so every
 *     packet lands in exactly one segment; the boundary is the capture time of the frame that
 *     began the next one (for a hole in capture: the end of the last frame before it). A packet's
 *     sound begins LOOKAHEAD_MICROS before its capture time (the encoder's look-ahead), so the
 *     packets of that much after a segment's end go to its tail too, else that much of the sound
 *     at every boundary would be in neither segment;
 *   - a packet ahead of the video is held until a frame at or after its time has come: only then
 *     is it known which segment it is in (the frame may begin a new one);
 *   - a segment whose video has ended still takes its audio until a packet at or after its end
 *     (and look-ahead) has come, or the video is AUDIO_WAIT_MICROS past it (audio that is late or
 *     lost), then it is done;
 *   - the open segment's audio is filled with silence once it lags the video by AUDIO_WAIT_MICROS;
 *   - the packets of the PREROLL_MICROS before a segment's start also go to it as pre-roll, which
 *     its decoder needs and does not play (segment-audio.ts);
 *   - held packets are released in capture order (the network may have swapped two);
 *   - a segment is completed with the first packet known after its end, so that packets lost
 *     just before the end are concealed there like any others, not left silent.
 *
 * Methods return the segments now done (their audio filled up to their end), for the writer to
 * finish.
 */
export class AudioRouter<S extends AudioTarget, R> {
  #held: AudioPacket[] = [];
  /** The last packets routed, oldest first, for the next segment's pre-roll. */
  #recent: AudioPacket[] = [];
  #videoAt = Number.NEGATIVE_INFINITY;
  #audioAt = Number.NEGATIVE_INFINITY;
  #current: S | null = null;
  #ending: AudioDone<S, R> | null = null;
  /** Packets not recorded: outside every segment, too many held, or after close. */
  dropped = 0;

  /** The open segment, if any. */
  get current(): S | null {
    return this.#current;
  }

  /** The segment whose video has ended and which still waits for its audio, if any. */
  get ending(): S | null {
    return this.#ending?.seg ?? null;
  }

  /** Packets held ahead of the video. */
  get held(): number {
    return this.#held.length;
  }

  /** A packet came. Never throws; holds a copy of a packet ahead of the video. */
  audio(packet: AudioPacket): AudioDone<S, R>[] {
    if (packet.capturedAt > this.#audioAt) this.#audioAt = packet.capturedAt;
    if (packet.capturedAt >= this.#videoAt) {
      if (this.#held.length >= MAX_HELD_AUDIO) {
        this.#held.shift();
        this.dropped++;
      }
      // The caller may reuse its buffer once this returns.
      this.#held.push({ ...packet, data: packet.data.slice() });
    } else {
      this.#route({ ...packet, data: packet.data.slice() });
    }
    return this.#settle();
  }

  /**
   * A frame captured at `capturedAt` was handled (written or dropped). Releases the packets it
   * has passed, fills an audio outage of the open segment, and says which segments are done.
   */
  video(capturedAt: number): AudioDone<S, R>[] {
    if (capturedAt > this.#videoAt) this.#videoAt = capturedAt;
    this.#release(this.#videoAt);
    this.#current?.fillAudio(this.#videoAt - AUDIO_WAIT_MICROS, true);
    return this.#settle();
  }

  /**
   * The open segment's video ended at capture time `end` (a new segment begins, or a failure
   * ended it). It keeps taking audio before `end` for a while; an earlier one still waiting is
   * done now and returned.
   */
  endSegment(end: number, reason: R): AudioDone<S, R>[] {
    const done = this.#ending ? [this.#complete(this.#ending)] : [];
    this.#ending = this.#current ? { seg: this.#current, end, reason } : null;
    this.#current = null;
    return done;
  }

  /** A segment begins with a frame captured at `seg.startedAt`. */
  begin(seg: S): void {
    this.#current = seg;
    // A clock stepped back starts a segment before the time seen so far: count from here.
    this.#videoAt = seg.startedAt;
    for (const p of this.#recent) this.#preroll(seg, p);
  }

  /** A segment that takes nothing more (its ffmpeg died): forget it. */
  forget(seg: S): void {
    if (this.#current === seg) this.#current = null;
    if (this.#ending?.seg === seg) this.#ending = null;
  }

  /**
   * Recording stops; the open segment's video ends at `videoEnd`. Packets held before that still
   * go into it; the rest are dropped. Returns the segments to finish (audio filled), oldest first.
   */
  close(videoEnd: number, reason: R): AudioDone<S, R>[] {
    this.#release(videoEnd);
    const done = this.endSegment(videoEnd, reason);
    if (this.#ending) done.push(this.#complete(this.#ending));
    this.#ending = null;
    this.dropped += this.#held.length;
    this.#held = [];
    return done;
  }

  #release(before: number): void {
    if (this.#held.length === 0) return;
    const keep: AudioPacket[] = [];
    const go: AudioPacket[] = [];
    for (const p of this.#held) (p.capturedAt < before ? go : keep).push(p);
    this.#held = keep;
    go.sort((a, b) => a.capturedAt - b.capturedAt);
    for (const p of go) this.#route(p);
  }

  /** Sends a packet (a copy the router may keep) to its segment. */
  #route(p: AudioPacket): void {
    const t = p.capturedAt;
    const cur = this.#current;
    const ending = this.#ending;
    this.#recent.push(p);
    if (this.#recent.length > RECENT_AUDIO) this.#recent.shift();
    if (ending && t >= ending.end && t < ending.end + LOOKAHEAD_MICROS) ending.seg.tailAudio?.(p);
    if (cur && t >= cur.startedAt) {
      cur.writeAudio(p);
      return;
    }
    if (cur) this.#preroll(cur, p);
    if (ending && t >= ending.seg.startedAt && t < ending.end) ending.seg.writeAudio(p);
    else this.dropped++;
  }

  #preroll(seg: S, p: AudioPacket): void {
    if (p.capturedAt < seg.startedAt && p.capturedAt >= seg.startedAt - PREROLL_MICROS) seg.prerollAudio(p);
  }

  #settle(): AudioDone<S, R>[] {
    const e = this.#ending;
    if (!e || (this.#audioAt < e.end + LOOKAHEAD_MICROS && this.#videoAt < e.end + AUDIO_WAIT_MICROS)) return [];
    this.#ending = null;
    return [this.#complete(e)];
  }

  #complete(e: AudioDone<S, R>): AudioDone<S, R> {
    // Its tail among the packets still held (ahead of the video): no frame can change that they follow its end.
    const tail = this.#held.filter((p) => p.capturedAt >= e.end && p.capturedAt < e.end + LOOKAHEAD_MICROS);
    for (const p of tail.sort((a, b) => a.capturedAt - b.capturedAt)) e.seg.tailAudio?.(p);
    const next = this.#firstFrom(e.end);
    if (next) e.seg.concealBefore?.(next, e.end);
    e.seg.fillAudio(e.end, false);
    return e;
  }

  /** The packet with the earliest capture time at or after `t` among those held and routed last, if any. */
  #firstFrom(t: number): AudioPacket | null {
    let first: AudioPacket | null = null;
    for (const list of [this.#held, this.#recent]) {
      for (const p of list) if (p.capturedAt >= t && (!first || p.capturedAt < first.capturedAt)) first = p;
    }
    return first;
  }
}
