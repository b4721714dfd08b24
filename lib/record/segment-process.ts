import type { Subprocess } from "bun";
import type { MkvStream } from "./mkv-stream.ts";
import type { SegmentPaths } from "./segment-naming.ts";
import type { SegmentWriterStats } from "./segment-writer.ts";

/** ffmpeg's last stderr lines kept for the log when it fails. */
const STDERR_LINES = 20;

/** A reusable copy of one JPEG (the caller may reuse its buffer once write() returns). */
export class JpegCopy {
  #buf = new Uint8Array(0);
  bytes = new Uint8Array(0);

  set(src: Uint8Array): void {
    if (this.#buf.length < src.length) this.#buf = new Uint8Array(Math.ceil(src.length * 1.25));
    this.#buf.set(src);
    this.bytes = this.#buf.subarray(0, src.length);
  }
}

/**
 * One ffmpeg process writing one segment: the pipe, its backpressure, the frames owed to it.
 * Thin: the writer decides what to send.
 */
export class Recording {
  readonly proc: Subprocess<"pipe", "ignore", "pipe">;
  readonly stderrTail: string[] = [];
  readonly stderrDone: Promise<void>;
  readonly mkv: MkvStream | null;
  /** ffmpeg has not taken everything yet: the pipe is full and the sink holds the rest. */
  pending = false;
  /** Bytes handed over since the pipe went pending (an upper bound of what the sink holds). */
  queued = 0;
  #token = 0;
  /** AVI: repeats of `prev` still to write, then `held` (a frame that arrived after a gap). */
  owed = 0;
  held: JpegCopy | null = null;
  spare = new JpegCopy();
  prev = new JpegCopy();
  frames = 0;
  repeats = 0;
  lastSlot = -1;
  lastMs = 0;
  /** No more frames go to this recording (being finished, or ffmpeg died). */
  closing = false;
  #waiters: (() => void)[] = [];

  constructor(
    readonly paths: SegmentPaths,
    readonly startedAt: number,
    args: string[],
    mkv: MkvStream | null,
    readonly stats: SegmentWriterStats,
    readonly maxQueuedBytes: number,
    readonly onDrain: (rec: Recording) => void,
  ) {
    this.mkv = mkv;
    // Its own session: a Ctrl-C at the terminal goes to lancam, which ends the segment
    // cleanly, not to ffmpeg, which would abandon it. If lancam dies, ffmpeg sees its
    // input end and finishes the file.
    this.proc = Bun.spawn(args, { stdin: "pipe", stdout: "ignore", stderr: "pipe", detached: true });
    this.stderrDone = this.#readStderr();
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    try {
      for await (const chunk of this.proc.stderr) {
        const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) this.#keep(line);
      }
    } catch {
      // the pipe broke with the process; what was read is kept
    }
    this.#keep(rest);
  }

  #keep(line: string): void {
    const l = line.trim();
    if (!l) return;
    this.stderrTail.push(l);
    if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
  }

  /** True while the sink holds less than the budget: more may be handed over. */
  get hasRoom(): boolean {
    return this.queued < this.maxQueuedBytes;
  }

  /** True when a frame can be written now (nothing owed before it, room in the budget). */
  get writable(): boolean {
    return this.hasRoom && this.owed === 0 && this.held === null;
  }

  /** Resolves once `writable` (or the recording ended). */
  whenWritable(): Promise<void> {
    if (this.writable || this.closing) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }

  wake(): void {
    if (!this.writable && !this.closing) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Hands one chunk to ffmpeg; once the pipe is full, what the sink buffers is counted. */
  send(chunk: Uint8Array): void {
    this.stats.bytesWritten += chunk.length;
    let r: unknown;
    try {
      r = this.proc.stdin.write(chunk);
    } catch {
      return; // ffmpeg is gone; its exit is handled by the writer
    }
    if (r instanceof Promise) {
      this.pending = true;
      this.queued += chunk.length;
      const token = ++this.#token;
      // The sink flushes in order, so when the latest write settles everything has.
      r.then(
        () => {
          if (token !== this.#token) return;
          this.pending = false;
          this.queued = 0;
          this.onDrain(this);
        },
        () => {
          // EPIPE: ffmpeg died; the exit handler takes over
          if (token === this.#token) {
            this.pending = false;
            this.queued = 0;
          }
          this.wake();
        },
      );
    }
  }

  /** Waits until the pipe has drained, or the deadline (performance.now() ms) passes. */
  async drained(deadline: number): Promise<boolean> {
    while (this.pending || this.owed > 0 || this.held) {
      const left = deadline - performance.now();
      if (left <= 0 || this.exitCode !== null) return false;
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), this.proc.exited, Bun.sleep(Math.min(left, 200))]);
      this.onDrain(this);
    }
    return true;
  }

  get exitCode(): number | null {
    return this.proc.exitCode ?? (this.proc.signalCode ? -1 : null);
  }
}
