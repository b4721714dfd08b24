import type { Logger } from "../log/format.ts";
import type { Frame } from "../wire/frame.ts";
import type { SegmentWriter, SegmentWriterStats } from "./segment-writer.ts";

/** Frames (and bytes) kept while no writer is attached; more are counted as not recorded. */
export const MAX_HELD_FRAMES = 120;
export const MAX_HELD_BYTES = 32 << 20;
/** How long detaching waits for held frames to reach a writer that has stopped taking them. */
const FLUSH_WAIT_MS = 5000;

/** The part of a SegmentWriter the sink uses (tests pass a fake). */
export type Writer = Pick<SegmentWriter, "write" | "whenWritable" | "close" | "stats" | "fps">;

/** What the viewer recorded, over every writer it had. */
export interface RecordingStats extends SegmentWriterStats {
  /** Frames that could not be held while the writer was opening, or arrived after recording failed. */
  framesNotRecorded: number;
}

/** How a RecorderSink gets its writers. */
export interface RecorderSinkOptions {
  /** Opens a writer for a stream of `fps` frames per second, e.g. `SegmentWriter.open({ ...settings, fps })`. */
  open: (fps: number) => Promise<Writer>;
  /** Where rate changes and writers that cannot open are reported. */
  log: Logger;
}

const ZERO: SegmentWriterStats = {
  framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
  audioIn: 0, audioWritten: 0, audioDropped: 0, audioRejected: 0, audioConcealed: 0, audioSilenceMs: 0,
};

/**
 * The viewer's recorder: a frame sink in front of a SegmentWriter that may not exist
 * yet (it opens after the welcome, which gives the stream's rate) or may be being
 * replaced (the rate changed on reconnect). Meanwhile frames are held, bounded, and
 * then handed over in order at the writer's pace, so a recording starts with the
 * session's first frame and nothing held is dropped for backpressure.
 */
export class RecorderSink implements AsyncDisposable {
  readonly #open: (fps: number) => Promise<Writer>;
  readonly #log: Logger;
  #writer: Writer | null = null;
  /** A writer being opened for a new stream rate; closing waits for it. */
  #opening: Promise<void> | null = null;
  #held: Frame[] = [];
  #heldBytes = 0;
  #flushing: Promise<void> | null = null;
  #closed = false;
  /** Set when close() starts: no writer opens after that. */
  #closing = false;
  readonly #totals: SegmentWriterStats = { ...ZERO };
  #notRecorded = 0;

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

  /**
   * The stream's frame rate, told at every welcome. The first opens a writer; a
   * different one (a server restarted at another rate) finishes the current writer
   * and opens another, since an AVI's timing is fixed by its rate. Frames are held
   * meanwhile. A writer that cannot open is logged, not thrown: the live view goes
   * on, and the next welcome tries again.
   */
  onStreamRate(fps: number): Promise<void> {
    const opening = this.#switchTo(fps);
    this.#opening = opening;
    return opening.finally(() => {
      if (this.#opening === opening) this.#opening = null;
    });
  }

  async #switchTo(fps: number): Promise<void> {
    // One change at a time: a welcome that comes while a writer opens waits for it.
    if (this.#opening) await this.#opening;
    if (this.#closing || this.fps === fps) return;
    if (this.fps !== null) {
      this.#log.info("stream rate changed; starting a new recording", { from: this.fps, to: fps });
      await this.detach();
    }
    let writer: Writer;
    try {
      writer = await this.#open(fps);
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
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Totals over every writer, the current one included. */
  get stats(): RecordingStats {
    const t = { ...this.#totals };
    if (this.#writer) for (const k of Object.keys(t) as (keyof SegmentWriterStats)[]) t[k] += this.#writer.stats[k];
    return { ...t, framesNotRecorded: this.#notRecorded };
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

  #add(s: Readonly<SegmentWriterStats>): void {
    for (const k of Object.keys(this.#totals) as (keyof SegmentWriterStats)[]) this.#totals[k] += s[k];
  }

  #flush(): void {
    if (this.#flushing || this.#held.length === 0) return;
    this.#flushing = (async () => {
      while (this.#held.length > 0 && this.#writer) {
        const w = this.#writer;
        await w.whenWritable();
        if (this.#writer !== w) break;
        const frame = this.#held.shift()!;
        this.#heldBytes -= frame.jpeg.length;
        w.write(frame);
      }
    })().finally(() => {
      this.#flushing = null;
    });
  }
}
