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

const ZERO: SegmentWriterStats = {
  framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
};

/**
 * The viewer's recorder: a frame sink in front of a SegmentWriter that may not exist
 * yet (it opens after the welcome, which gives the stream's rate) or may be being
 * replaced (the rate changed on reconnect). Meanwhile frames are held, bounded, and
 * then handed over in order at the writer's pace, so a recording starts with the
 * session's first frame and nothing held is dropped for backpressure.
 */
export class RecorderSink {
  #writer: Writer | null = null;
  #held: Frame[] = [];
  #heldBytes = 0;
  #flushing: Promise<void> | null = null;
  #closed = false;
  readonly #totals: SegmentWriterStats = { ...ZERO };
  #notRecorded = 0;

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
    await this.detach();
    this.#closed = true;
    this.#notRecorded += this.#held.length;
    this.#held = [];
  }

  /** Totals over every writer, the current one included. */
  get stats(): RecordingStats {
    const t = { ...this.#totals };
    if (this.#writer) for (const k of Object.keys(t) as (keyof SegmentWriterStats)[]) t[k] += this.#writer.stats[k];
    return { ...t, framesNotRecorded: this.#notRecorded };
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
