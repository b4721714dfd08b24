import { MkvStream } from "../mux/mkv-stream.ts";
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
}

/**
 * One segment being written: its ffmpeg, the way frames reach it (AVI: repeats filling lost
 * slots, from {@link GapFiller}; Matroska: blocks stamped with capture times), and what it holds.
 * Its writer places frames and decides when it ends; this object only carries them out.
 */
export class OpenSegment {
  readonly paths: SegmentPaths;
  /** Capture time of the first frame, µs since the epoch. */
  readonly startedAt: number;
  readonly #proc: SegmentProcess;
  readonly #mkv: MkvStream | null;
  readonly #gaps: GapFiller | null;
  readonly #intervalMicros: number;
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
    this.#mkv = o.container === "mkv"
      ? new MkvStream({ width: o.width, height: o.height, frameIntervalMicros: o.intervalMicros, startedAtMicros: o.startedAt })
      : null;
    this.#gaps = o.container === "avi" ? new GapFiller() : null;
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

  /** From the first frame to the end of the last one handed over (AVI: repeats included). */
  get durationSec(): number {
    if (this.#mkv) return this.#lastMs / 1000 + this.#intervalMicros / 1e6;
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
    if (this.#mkv) {
      const { chunks, timeMs } = this.#mkv.frame(at.offsetMicros / 1000, jpeg);
      this.#lastMs = timeMs;
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
      this.#send(picture.bytes);
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
