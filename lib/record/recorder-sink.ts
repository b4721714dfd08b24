import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import type { Logger } from "../log/format.ts";
import type { Frame } from "../wire/frame.ts";
import type { SegmentWriter, SegmentWriterStats } from "./segment-writer.ts";

/** Frames (and bytes) kept while no writer is attached; more are counted as not recorded. */
export const MAX_HELD_FRAMES = 120;
export const MAX_HELD_BYTES = 32 << 20;
/** Audio packets kept while no writer is attached (10 s of 20 ms packets); more are counted as not recorded. */
export const MAX_HELD_AUDIO = 500;
/** How long detaching waits for held frames to reach a writer that has stopped taking them. */
const FLUSH_WAIT_MS = 5000;

/** The part of a SegmentWriter the sink uses (tests pass a fake; one without writeAudio records no audio). */
export type Writer = Pick<SegmentWriter, "write" | "whenWritable" | "close" | "stats" | "fps"> & Partial<Pick<SegmentWriter, "writeAudio">>;

/** What the viewer recorded, over every writer it had. */
export interface RecordingStats extends SegmentWriterStats {
  /** Frames that could not be held while the writer was opening, or arrived after recording failed. */
  framesNotRecorded: number;
  /** Audio packets likewise. */
  audioNotRecorded: number;
}

/** How a RecorderSink gets its writers. */
export interface RecorderSinkOptions {
  /**
   * Opens a writer for a stream of `fps` frames per second with audio of `audio` (null: none),
   * e.g. `SegmentWriter.open({ ...settings, fps, audio })`.
   */
  open: (fps: number, audio: AudioFormat | null) => Promise<Writer>;
  /** Where rate changes and writers that cannot open are reported. */
  log: Logger;
}

const ZERO: SegmentWriterStats = {
  framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
  audioIn: 0, audioWritten: 0, audioDropped: 0, audioRejected: 0, audioConcealed: 0, audioSilenceMs: 0,
};

/** Same track layout: a writer for one may record the other. */
function sameAudio(a: AudioFormat | null, b: AudioFormat | null): boolean {
  return a === b || (!!a && !!b && a.channels === b.channels && a.frameMs === b.frameMs && a.sampleRate === b.sampleRate && a.codec === b.codec);
}

/**
 * The viewer's recorder: a frame sink in front of a SegmentWriter that may not exist
 * yet (it opens after the welcome, which gives the stream's rate) or may be being
 * replaced (the rate changed on reconnect). Meanwhile frames are held, bounded, and
 * then handed over in order at the writer's pace, so a recording starts with the
 * session's first frame and nothing held is dropped for backpressure. Audio packets are
 * held likewise and handed over among the frames, in capture order.
 */
export class RecorderSink implements AsyncDisposable {
  readonly #open: (fps: number, audio: AudioFormat | null) => Promise<Writer>;
  readonly #log: Logger;
  #writer: Writer | null = null;
  /** A writer being opened for a new stream rate; closing waits for it. */
  #opening: Promise<void> | null = null;
  #held: Frame[] = [];
  #heldBytes = 0;
  #heldAudio: AudioPacket[] = [];
  /** The audio format of the attached writer (or the one being opened). */
  #audio: AudioFormat | null = null;
  #flushing: Promise<void> | null = null;
  #closed = false;
  /** Set when close() starts: no writer opens after that. */
  #closing = false;
  readonly #totals: SegmentWriterStats = { ...ZERO };
  #notRecorded = 0;
  #audioNotRecorded = 0;

  constructor(opts: RecorderSinkOptions) {
    this.#open = opts.open;
    this.#log = opts.log;
  }

  /** The attached writer's frame rate, or null while none is attached. */
  get fps(): number | null {
    return this.#writer?.fps ?? null;
  }

  /** A FrameSink: never throws, never waits. */
  readonly write = (frame: Frame): void => {
    if (this.#closed) {
      this.#notRecorded++;
    } else if (this.#writer && this.#held.length === 0) {
      this.#writer.write(frame);
    } else if (this.#held.length >= MAX_HELD_FRAMES || this.#heldBytes + frame.jpeg.length > MAX_HELD_BYTES) {
      this.#notRecorded++;
    } else {
      // The caller reuses its buffer once this returns.
      this.#held.push({ ...frame, jpeg: frame.jpeg.slice() });
      this.#heldBytes += frame.jpeg.length;
    }
  };

  /** Records one audio packet (an AudioSink): never throws, never waits; the caller may reuse `packet.data`. */
  readonly writeAudio = (packet: AudioPacket): void => {
    if (this.#closed) {
      this.#audioNotRecorded++;
    } else if (this.#writer && this.#held.length === 0 && this.#heldAudio.length === 0) {
      if (this.#writer.writeAudio) this.#writer.writeAudio(packet);
      else this.#audioNotRecorded++;
    } else if (this.#heldAudio.length >= MAX_HELD_AUDIO) {
      this.#audioNotRecorded++;
    } else {
      this.#heldAudio.push({ ...packet, data: packet.data.slice() });
      if (this.#writer && this.#held.length === 0) this.#flush();
    }
  };

  /**
   * The stream's frame rate, told at every welcome. The first opens a writer; a
   * different one (a server restarted at another rate) finishes the current writer
   * and opens another, since an AVI's timing is fixed by its rate. Frames are held
   * meanwhile. A writer that cannot open is logged, not thrown: the live view goes
   * on, and the next welcome tries again. `audio` is the stream's audio format (null or
   * absent: none); a change of it starts a new recording too (the tracks are fixed per file).
   */
  onStreamRate(fps: number, audio: AudioFormat | null = null): Promise<void> {
    const opening = this.#switchTo(fps, audio);
    this.#opening = opening;
    return opening.finally(() => {
      if (this.#opening === opening) this.#opening = null;
    });
  }

  async #switchTo(fps: number, audio: AudioFormat | null): Promise<void> {
    // One change at a time: a welcome that comes while a writer opens waits for it.
    if (this.#opening) await this.#opening;
    if (this.#closing || (this.fps === fps && sameAudio(this.#audio, audio))) return;
    if (this.fps !== null) {
      if (this.fps !== fps) this.#log.info("stream rate changed; starting a new recording", { from: this.fps, to: fps });
      else this.#log.info("stream audio changed; starting a new recording", { from: this.#audio ? `opus/${this.#audio.channels}ch` : "none", to: audio ? `opus/${audio.channels}ch` : "none" });
      await this.detach();
    }
    this.#audio = audio;
    let writer: Writer;
    try {
      writer = await this.#open(fps, audio);
    } catch (e) {
      this.#log.error("cannot start recording; viewing only", { error: (e as Error).message });
      return;
    }
    this.attach(writer);
  }

  /** Starts recording into `writer`: first what was held, then live frames. */
  attach(writer: Writer): void {
    this.#writer = writer;
    this.#flush();
  }

  /** Finishes the current writer (frames are held meanwhile); attach another after. */
  async detach(): Promise<void> {
    // Held frames go first, unless the writer is stuck: a shutdown must not hang on it.
    if (this.#flushing) await Promise.race([this.#flushing, Bun.sleep(FLUSH_WAIT_MS)]);
    const w = this.#writer;
    this.#writer = null;
    if (w) {
      await w.close();
      this.#add(w.stats);
    }
  }

  /** Records what is still held, closes the writer, and takes no more frames. */
  async close(): Promise<void> {
    this.#closing = true;
    // A writer still opening is closed too, not left running behind us.
    if (this.#opening) await this.#opening;
    await this.detach();
    this.#closed = true;
    this.#notRecorded += this.#held.length;
    this.#held = [];
    this.#audioNotRecorded += this.#heldAudio.length;
    this.#heldAudio = [];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Totals over every writer, the current one included. */
  get stats(): RecordingStats {
    const t = { ...this.#totals };
    if (this.#writer) for (const k of Object.keys(t) as (keyof SegmentWriterStats)[]) t[k] += this.#writer.stats[k] ?? 0;
    return { ...t, framesNotRecorded: this.#notRecorded, audioNotRecorded: this.#audioNotRecorded };
  }

  /**
   * Frames written or on their way to be: held, queued, or written, less those dropped or
   * rejected. After a clean close it equals `stats.framesWritten`, so a viewer can report
   * its final count before the last segment has finished.
   */
  get framesAccepted(): number {
    const s = this.stats;
    return s.framesIn - s.dropped - s.rejected + this.#held.length;
  }

  /** Hands the held audio captured before `at` to `w`, in order. */
  #audioBefore(w: Writer, at: number): void {
    while (this.#heldAudio.length > 0 && this.#heldAudio[0]!.capturedAt < at) {
      const p = this.#heldAudio.shift()!;
      if (w.writeAudio) w.writeAudio(p);
      else this.#audioNotRecorded++;
    }
  }

  #add(s: Readonly<SegmentWriterStats>): void {
    for (const k of Object.keys(this.#totals) as (keyof SegmentWriterStats)[]) this.#totals[k] += s[k] ?? 0;
  }

  #flush(): void {
    if (this.#flushing || (this.#held.length === 0 && this.#heldAudio.length === 0)) return;
    this.#flushing = (async () => {
      while (this.#held.length > 0 && this.#writer) {
        const w = this.#writer;
        await w.whenWritable();
        if (this.#writer !== w) break;
        const frame = this.#held.shift()!;
        this.#heldBytes -= frame.jpeg.length;
        this.#audioBefore(w, frame.capturedAt);
        w.write(frame);
      }
      if (this.#held.length === 0 && this.#writer) this.#audioBefore(this.#writer, Number.POSITIVE_INFINITY);
    })().finally(() => {
      this.#flushing = null;
    });
  }
}
