import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { opusPacketSamples } from "../wire/opus-toc.ts";
import { MkvStream } from "../mux/mkv-stream.ts";
import { opusHead } from "../mux/ogg-opus.ts";
import type { AudioTarget } from "./audio-router.ts";
import { type AudioBlock, SEGMENT_PRE_SKIP, SegmentAudio, type SegmentAudioCounts } from "./segment-audio.ts";
import type { Container, SegmentPaths } from "./segment-naming.ts";
import { SegmentProcess } from "./segment-process.ts";
import { GapFiller } from "./segment-timeline.ts";

/** Where a frame sits in its segment, as SegmentTimeline.place gives it. */
export interface Placement {
  slot: number;
  /** Empty slots since the previous frame. */
  gap: number;
  /** Capture time minus the segment's first frame's, µs. */
  offsetMicros: number;
}

/** What one segment is made of. */
export interface OpenSegmentOptions {
  paths: SegmentPaths;
  container: Container;
  /** The first frame's capture time (µs since the epoch) and size. */
  startedAt: number;
  width: number;
  height: number;
  intervalMicros: number;
  /** ffmpeg's command line (segmentArgs). */
  args: string[];
  maxQueuedBytes: number;
  /** The audio track's format; null or absent for video only. */
  audio?: AudioFormat | null;
}

/**
 * Where a frame's timestamp sits in a Matroska stream with audio: its capture offset plus the
 * segment's Opus pre-skip (86.5 ms). The audio track starts at 0 with its pre-roll and decoders
 * drop the first pre-skip samples (pre-roll and the encoder's look-ahead), so the first sample
 * they play, captured at the segment's start, is stamped pre-skip later; the video is moved by as
 * much. (Matroska's CodecDelay could say this in the track header, but ffmpeg 5.1's stream copy
 * applies it twice and moves the audio early; this way every timestamp is >= 0 and is copied as
 * it is.)
 */
const AUDIO_LEAD_MS = (SEGMENT_PRE_SKIP * 1000) / 48_000;

/**
 * One segment being written: its ffmpeg, the way frames reach it (AVI: repeats filling lost
 * slots, from {@link GapFiller}; Matroska: blocks stamped with capture times), and what it holds.
 * Its writer places frames and decides when it ends; this object only carries them out.
 *
 * With audio, frames and Opus packets travel together in one live Matroska stream on ffmpeg's
 * stdin (mkv-stream.ts), for AVI too (the pictures stamped with their slots): one input, so
 * ffmpeg never blocks on one pipe while the other is dry. The audio track is continuous from the
 * segment's start ({@link SegmentAudio}); an audio block that finds the pipe over budget is
 * dropped and later concealed, never queued without bound.
 */
export class OpenSegment implements AudioTarget {
  readonly paths: SegmentPaths;
  /** Capture time of the first frame, µs since the epoch. */
  readonly startedAt: number;
  readonly #proc: SegmentProcess;
  readonly #mkv: MkvStream | null;
  readonly #gaps: GapFiller | null;
  readonly #intervalMicros: number;
  readonly #audio: SegmentAudio | null;
  /** Added to a Matroska frame's capture offset: AUDIO_LEAD_MS with audio, else 0 (AVI stamps slots instead). */
  readonly #leadMs: number;
  #audioDropped = 0;
  #audioRejected = 0;
  #frames = 0;
  #repeats = 0;
  #bytes = 0;
  #lastMs = 0;
  #stopped = false;
  #inputEnded = false;
  #waiters: (() => void)[] = [];

  /** Starts ffmpeg (throws when it cannot be spawned) and, for Matroska, sends the stream header. */
  constructor(o: OpenSegmentOptions) {
    this.paths = o.paths;
    this.startedAt = o.startedAt;
    this.#intervalMicros = o.intervalMicros;
    const audioTrack = o.audio ? { channels: o.audio.channels, opusHead: opusHead(o.audio, SEGMENT_PRE_SKIP) } : undefined;
    this.#mkv = o.container === "mkv" || o.audio
      ? new MkvStream({ width: o.width, height: o.height, frameIntervalMicros: o.intervalMicros, startedAtMicros: o.startedAt }, audioTrack)
      : null;
    this.#gaps = o.container === "avi" ? new GapFiller() : null;
    this.#audio = o.audio ? new SegmentAudio(o.startedAt, o.audio) : null;
    this.#leadMs = o.audio && o.container === "mkv" ? AUDIO_LEAD_MS : 0;
    this.#proc = new SegmentProcess(o.args, { maxQueuedBytes: o.maxQueuedBytes, onDrain: () => this.pump(), onBroken: () => this.#wake() });
    if (this.#mkv) this.#send(this.#mkv.header());
  }

  get pid(): number {
    return this.#proc.pid;
  }

  /** Resolves when ffmpeg has exited, however it ended. */
  get exited(): Promise<number> {
    return this.#proc.exited;
  }

  /** ffmpeg's exit code once it has ended (-1 for a signal), else null. */
  get exitCode(): number | null {
    return this.#proc.exitCode;
  }

  get signalCode(): NodeJS.Signals | number | null {
    return this.#proc.signalCode;
  }

  /** Resolves once ffmpeg's stderr is read to its end. */
  get stderrDone(): Promise<void> {
    return this.#proc.stderrDone;
  }

  /** ffmpeg's last stderr lines, joined for one log field. */
  stderrTail(n = 5): string {
    return this.#proc.stderrTail(n);
  }

  /** Distinct frames handed to ffmpeg. */
  get frames(): number {
    return this.#frames;
  }

  /** AVI: copies of a previous frame handed to ffmpeg to fill lost slots. */
  get repeats(): number {
    return this.#repeats;
  }

  /** Bytes handed to ffmpeg's stdin. */
  get bytes(): number {
    return this.#bytes;
  }

  /** What the audio track holds (null without audio). */
  get audio(): Readonly<SegmentAudioCounts> | null {
    return this.#audio?.counts ?? null;
  }

  /** Audio packets not written: the pipe was over budget, or the segment had stopped. */
  get audioDropped(): number {
    return this.#audioDropped;
  }

  /** Audio packets that were not Opus (no valid TOC). */
  get audioRejected(): number {
    return this.#audioRejected;
  }

  /** From the first frame to the end of the last one handed over (AVI: repeats included). */
  get durationSec(): number {
    if (!this.#gaps) return this.#lastMs / 1000 + this.#intervalMicros / 1e6;
    return ((this.#frames + this.#repeats) * this.#intervalMicros) / 1e6;
  }

  /** True once ffmpeg's input was ended on purpose: its exit is expected, not a failure. */
  get inputEnded(): boolean {
    return this.#inputEnded;
  }

  /** True when a frame can be written now: nothing waits before it, and the budget has room. */
  get writable(): boolean {
    return !this.#stopped && this.#proc.hasRoom && !this.#gaps?.waiting;
  }

  /** Resolves once `writable`, or once the segment takes no more frames. */
  whenWritable(): Promise<void> {
    if (this.writable || this.#stopped) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }

  /** Writes a frame at its placement; AVI first fills the empty slots before it. Only when `writable`. */
  write(jpeg: Uint8Array, at: Placement): void {
    if (this.#mkv && !this.#gaps) {
      const { chunks, timeMs } = this.#mkv.frame(at.offsetMicros / 1000 + this.#leadMs, jpeg);
      this.#lastMs = timeMs - this.#leadMs;
      for (const c of chunks) this.#send(c);
      this.#frames++;
      return;
    }
    this.#gaps!.add(jpeg, at.gap);
    this.pump();
  }

  /** AVI: hands over what the gap filler holds while the pipe takes it without queueing. */
  pump(): void {
    const gaps = this.#gaps;
    while (gaps && this.#proc.hasRoom && this.#proc.exitCode === null) {
      const picture = gaps.next();
      if (!picture) break;
      if (this.#mkv) {
        // AVI with audio: the picture's slot is its timestamp (every slot has one picture).
        const slot = this.#frames + this.#repeats;
        for (const c of this.#mkv.frame((slot * this.#intervalMicros) / 1000, picture.bytes).chunks) this.#send(c);
      } else {
        this.#send(picture.bytes);
      }
      if (picture.repeat) this.#repeats++;
      else this.#frames++;
    }
    this.#wake();
  }

  /**
   * Waits until ffmpeg has taken everything handed over, including what the gap filler holds.
   * False when ffmpeg ended or `expired` resolved first.
   */
  async flush(expired: Promise<unknown>): Promise<boolean> {
    let late = false;
    void expired.then(() => {
      late = true;
    });
    while (this.#proc.pending || this.#gaps?.waiting) {
      if (late || this.#proc.exitCode !== null) return false;
      // The short sleep re-checks in case a drain came and went between two checks.
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), this.#proc.exited, expired, Bun.sleep(200)]);
      this.pump();
    }
    return true;
  }

  /** Places one audio packet of this segment (see SegmentAudio); dropped when the pipe is over budget. */
  writeAudio(packet: AudioPacket): void {
    this.#place(packet, "audio");
  }

  /** Places a packet from just before this segment's start as its pre-roll (see SegmentAudio.preroll). */
  prerollAudio(packet: AudioPacket): void {
    this.#place(packet, "preroll");
  }

  /** Places a packet of the next segment whose sound begins before this one's end (see AudioTarget.tailAudio). */
  tailAudio(packet: AudioPacket): void {
    this.#place(packet, "tail");
  }

  #place(packet: AudioPacket, kind: "audio" | "preroll" | "tail"): void {
    if (!this.#audio || this.#stopped || !this.#proc.hasRoom || this.#proc.exitCode !== null) {
      if (kind === "audio") this.#audioDropped++;
      return;
    }
    let samples: number;
    try {
      samples = opusPacketSamples(packet.data);
    } catch {
      if (kind === "audio") this.#audioRejected++;
      return;
    }
    this.#sendAudio(kind === "preroll" ? this.#audio.preroll(packet, samples) : this.#audio.push(packet, samples, kind));
  }

  /** Conceals packets lost just before the segment's end, told by the first packet after it (see SegmentAudio.concealBefore). */
  concealBefore(next: AudioPacket, end: number): void {
    if (!this.#audio || this.#stopped || !this.#proc.hasRoom || this.#proc.exitCode !== null) return;
    let samples: number;
    try {
      samples = opusPacketSamples(next.data);
    } catch {
      return; // not Opus: counted where it is placed
    }
    this.#sendAudio(this.#audio.concealBefore(next, samples, end));
  }

  /** Silence in the audio track up to capture time `capturedAt` (see SegmentAudio.fillTo). */
  fillAudio(capturedAt: number, whole: boolean): void {
    if (!this.#audio || this.#stopped || !this.#proc.hasRoom || this.#proc.exitCode !== null) return;
    this.#sendAudio(this.#audio.fillTo(capturedAt, whole));
  }

  /** Takes no more frames and forgets what still waits; true when a frame was forgotten (not recorded). */
  stop(): boolean {
    this.#stopped = true;
    const lost = this.#gaps?.clear() ?? false;
    this.#wake();
    return lost;
  }

  /** Ends ffmpeg's input so it finishes the file; its exit is then expected. */
  endInput(): void {
    this.#inputEnded = true;
    this.#proc.endInput();
  }

  /** Kills a hung ffmpeg. */
  kill(): void {
    this.#proc.kill();
  }

  #sendAudio(blocks: AudioBlock[]): void {
    for (const b of blocks) for (const c of this.#mkv!.audio((b.at * 1000) / 48_000, b.data).chunks) this.#send(c);
  }

  #send(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    this.#proc.send(chunk);
  }

  #wake(): void {
    if (!this.writable && !this.#stopped) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
