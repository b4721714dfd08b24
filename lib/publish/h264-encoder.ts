import type { Logger } from "../log/format.ts";
import { resolveFfmpeg } from "../media/ffmpeg.ts";
import type { Frame } from "../wire/frame.ts";
import { FrameStream } from "./frame-stream.ts";
import { ptsDiff, type TsPiece, TsSplitter } from "../mux/mpegts.ts";
import { PublishLink, type PublishState, type PublishTimings, type StopReason } from "./publish-link.ts";
import { encoderArgs, PublishProcess } from "./publish-process.ts";
import { errorText } from "../errors/error-text.ts";

/**
 * The one H.264 encoding behind every `--publish-codec h264` target: one ffmpeg with libx264
 * whatever the number of targets, its MPEG-TS output cut into frames (mpegts.ts) and handed to
 * each target, which joins, and after falling behind resumes, at a keyframe.
 *
 *   write(frame) ──> PublishLink ──> ffmpeg (Matroska in, libx264, MPEG-TS out) ──> TsSplitter ──> subscribers
 *
 * Bounded like a publisher: write() never waits; while ffmpeg is behind frames are dropped and
 * counted; a crash restarts it with back-off (0.5 s doubling to 10 s). While no target would
 * take its output (every server down, waiting to retry) it stops encoding, and starts again
 * with the first frame one of them wants.
 */

/** What the encoder is doing, as /state shows it. */
export type EncoderState = "idle" | "starting" | "encoding" | "backoff" | "closed";

const STATE_NAMES: Record<PublishState, EncoderState> = {
  idle: "idle", connecting: "starting", publishing: "encoding", backoff: "backoff", closed: "closed",
};

/** Counters of the shared encoder. */
export interface EncoderStats {
  state: EncoderState;
  /** Distinct frames passed to write(). */
  frames: number;
  /** Frames handed to ffmpeg. */
  sent: number;
  /** Frames that came out encoded. */
  encoded: number;
  /** dropped = droppedSlow + droppedOffline + droppedIdle + rejected. */
  dropped: number;
  /** ffmpeg was behind (its input full). */
  droppedSlow: number;
  /** ffmpeg was starting, backing off, stopping, or closed. */
  droppedOffline: number;
  /** No target would take the output. */
  droppedIdle: number;
  /** Not one complete JPEG. */
  rejected: number;
  /** Starts after the first. */
  restarts: number;
  failures: number;
  lastError: string | null;
}

/** One target fed by the encoder. */
export interface EncoderSubscriber {
  /**
   * A piece of the output; `generation` changes whenever ffmpeg was restarted (a new stream).
   * A start piece comes with its frame's capture time (µs since the epoch), others with null.
   */
  piece(piece: TsPiece, generation: number, capturedAt: number | null): void;
  /** True while the target would take frames now (it is not waiting to retry, not closed). */
  wantsInput(now: number): boolean;
}

/** Options of {@link H264Encoder}. */
export interface H264EncoderOptions {
  /** Nominal frame rate: one keyframe per this many frames. */
  fps: number;
  /** Pass e.g. `log.child("publish")`. */
  log: Logger;
  ffmpegPath?: string;
  timings?: Partial<PublishTimings>;
  /** How long close() lets ffmpeg finish before killing it (default 3000 ms). */
  closeTimeoutMs?: number;
  /** How long no target may want frames before encoding stops (default 5000 ms). */
  idleStopMs?: number;
  now?: () => number;
}

interface Run {
  process: PublishProcess;
  stream: FrameStream;
  splitter: TsSplitter;
  generation: number;
  /** The PTS of the run's first output frame, which is its first input frame (the stream's origin). */
  ptsBase: number | null;
  stopped?: { why: StopReason; waitedMs: number };
}

const STOPPED: Record<StopReason, string> = {
  stalled: "the encoder stopped taking frames",
  "connect timeout": "the encoder gave no output in time",
};

const DEFAULT_CLOSE_TIMEOUT_MS = 3000;
const DEFAULT_IDLE_STOP_MS = 5000;
const STDERR_WAIT_MS = 500;

function isCompleteJpeg(b: Uint8Array): boolean {
  const n = b.length;
  return n >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[n - 2] === 0xff && b[n - 1] === 0xd9;
}

/** Encodes frames to H.264 once for any number of subscribers. */
export class H264Encoder implements AsyncDisposable {
  readonly #fps: number;
  readonly #log: Logger;
  readonly #ffmpeg: string;
  readonly #now: () => number;
  readonly #closeTimeoutMs: number;
  readonly #idleStopMs: number;
  readonly #link: PublishLink;
  readonly #subscribers = new Set<EncoderSubscriber>();
  #run: Run | null = null;
  #generation = 0;
  #startTimer: ReturnType<typeof setImmediate> | null = null;
  #idleSince: number | null = null;
  #last: { seq: number; capturedAt: number } | null = null;
  #closing: Promise<void> | null = null;
  #rejectLogged = false;
  #errorLogged = false;
  #lastError: string | null = null;
  readonly #counts = { frames: 0, sent: 0, encoded: 0, droppedSlow: 0, droppedOffline: 0, droppedIdle: 0, rejected: 0 };

  /** Checks the options (RangeError) and resolves ffmpeg (FfmpegNotFoundError); starts nothing yet. */
  constructor(opts: H264EncoderOptions) {
    if (!(opts.fps > 0 && opts.fps <= 1000)) throw new RangeError(`fps must be in (0, 1000], got ${opts.fps}`);
    this.#fps = opts.fps;
    this.#log = opts.log;
    this.#ffmpeg = opts.ffmpegPath ?? resolveFfmpeg().path;
    this.#now = opts.now ?? (() => performance.now());
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#idleStopMs = opts.idleStopMs ?? DEFAULT_IDLE_STOP_MS;
    this.#link = new PublishLink(opts.timings, this.#now());
  }

  /** Adds a target; returns the function that removes it. */
  subscribe(s: EncoderSubscriber): () => void {
    this.#subscribers.add(s);
    return () => this.#subscribers.delete(s);
  }

  /** A snapshot of the counters. */
  get stats(): EncoderStats {
    const c = this.#counts;
    return {
      state: STATE_NAMES[this.#link.state], frames: c.frames, sent: c.sent, encoded: c.encoded,
      dropped: c.droppedSlow + c.droppedOffline + c.droppedIdle + c.rejected,
      droppedSlow: c.droppedSlow, droppedOffline: c.droppedOffline, droppedIdle: c.droppedIdle, rejected: c.rejected,
      restarts: this.#link.reconnects, failures: this.#link.failures, lastError: this.#lastError,
    };
  }

  /**
   * Encodes one frame. Never throws, never waits; the caller may reuse `frame.jpeg` once it
   * returns. The same frame handed again (each target of a fan-out passes it on) is ignored.
   */
  write(frame: Frame): void {
    if (this.#last && this.#last.seq === frame.seq && this.#last.capturedAt === frame.capturedAt) return;
    this.#last = { seq: frame.seq, capturedAt: frame.capturedAt };
    const c = this.#counts;
    c.frames++;
    if (!isCompleteJpeg(frame.jpeg) || !(frame.width > 0 && frame.height > 0)) {
      c.rejected++;
      if (!this.#rejectLogged) {
        this.#rejectLogged = true;
        this.#log.warn("frame is not one complete JPEG (FF D8 ... FF D9) with a size; not encoded", { seq: frame.seq, bytes: frame.jpeg.length });
      }
      return;
    }
    try {
      const now = this.#now();
      if (this.#link.state !== "closed" && !this.#wanted(now)) {
        c.droppedIdle++;
        this.#idleSince ??= now;
        const run = this.#run;
        if (run && now - this.#idleSince >= this.#idleStopMs && !this.#link.ending && this.#link.restart()) {
          this.#log.info("no target is taking the stream; encoding stops until one is", { idleMs: Math.round(now - this.#idleSince) });
          run.process.end();
        }
        return;
      }
      this.#idleSince = null;
      const run = this.#run;
      if (run && run.stream.differs(frame) && !this.#link.ending && this.#link.restart()) {
        this.#log.info("frame size changed; restarting the encoder", { from: `${run.stream.width}x${run.stream.height}`, to: `${frame.width}x${frame.height}` });
        run.process.kill();
      }
      const d = this.#link.offer(now, this.#run?.process.pipeFullSince ?? null);
      switch (d.do) {
        case "start":
          this.#startSoon(frame, now);
          return;
        case "send":
          if (this.#run) this.#send(this.#run, frame, now);
          else c.droppedOffline++;
          return;
        case "drop":
          if (d.why === "slow") c.droppedSlow++;
          else c.droppedOffline++;
          return;
        case "stop": {
          c.droppedOffline++;
          const r = this.#run;
          if (r) {
            const since = d.why === "stalled" ? r.process.pipeFullSince ?? now : this.#link.since;
            r.stopped = { why: d.why, waitedMs: Math.round(now - since) };
            r.process.kill();
          }
          return;
        }
      }
    } catch (err) {
      c.droppedOffline++;
      if (!this.#errorLogged) {
        this.#errorLogged = true;
        this.#log.error("unexpected error while encoding a frame", { error: errorText(err) });
      }
    }
  }

  /** Stops encoding; waits for ffmpeg to end (killed after closeTimeoutMs). */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    if (this.#startTimer) {
      clearImmediate(this.#startTimer);
      this.#startTimer = null;
      this.#counts.droppedOffline++;
    }
    const run = this.#run;
    this.#link.close(this.#now());
    if (run) {
      run.process.end();
      const code = await Promise.race([run.process.exited, Bun.sleep(this.#closeTimeoutMs).then(() => "timeout" as const)]);
      if (code === "timeout") {
        this.#log.warn("the encoder did not end in time; killing it", { timeoutMs: this.#closeTimeoutMs });
        run.process.kill();
        await run.process.exited;
      }
      await Promise.race([run.process.outputDone, Bun.sleep(STDERR_WAIT_MS)]);
    }
    this.#subscribers.clear();
  }

  #wanted(now: number): boolean {
    for (const s of this.#subscribers) if (s.wantsInput(now)) return true;
    return false;
  }

  /** Spawning takes milliseconds: it runs just after write() returns, so the caller never waits for it. */
  #startSoon(frame: Frame, now: number): void {
    this.#link.started(now);
    const first: Frame = { ...frame, jpeg: frame.jpeg.slice() };
    this.#startTimer = setImmediate(() => {
      this.#startTimer = null;
      this.#start(first);
    });
  }

  #start(frame: Frame): void {
    if (this.#link.state !== "connecting") return;
    const now = this.#now();
    let process: PublishProcess;
    const splitter = new TsSplitter();
    const generation = ++this.#generation;
    try {
      process = new PublishProcess(encoderArgs(this.#ffmpeg, this.#fps, frame.width, frame.height), [], (chunk) => this.#onOutput(run, chunk));
    } catch (err) {
      const ended = this.#link.ended(now);
      this.#counts.droppedOffline++;
      this.#lastError = `cannot start ffmpeg: ${errorText(err)}`;
      this.#log.error(`${this.#lastError}; retrying in ${ended.retryInMs / 1000} s`, { ffmpeg: this.#ffmpeg });
      return;
    }
    const stream = new FrameStream(frame, this.#fps);
    const run: Run = { process, stream, splitter, generation, ptsBase: null };
    this.#run = run;
    process.send([stream.header()], now);
    this.#send(run, frame, now);
    void process.exited.then(() => this.#onExit(run));
    this.#log.info(this.#link.starts === 1 ? "encoder starting" : "encoder restarting", {
      codec: "h264", size: `${frame.width}x${frame.height}`, attempt: this.#link.starts, pid: process.proc.pid,
    });
  }

  #send(run: Run, frame: Frame, now: number): void {
    run.process.send(run.stream.chunks(frame), now);
    this.#counts.sent++;
  }

  #onOutput(run: Run, chunk: Uint8Array): void {
    // Output can still come after the exit is known; only a newer run makes it stale.
    if (run.generation !== this.#generation) return;
    let pieces: TsPiece[];
    try {
      pieces = run.splitter.push(chunk);
    } catch (err) {
      this.#lastError = errorText(err);
      this.#log.error("the encoder's output is not MPEG-TS; restarting it", { error: this.#lastError });
      run.process.kill();
      return;
    }
    for (const piece of pieces) {
      let capturedAt: number | null = null;
      if (piece.start && piece.pts !== null) {
        run.ptsBase ??= piece.pts;
        capturedAt = run.stream.origin + Math.round((ptsDiff(piece.pts, run.ptsBase) * 1000) / 90);
      }
      if (piece.start) {
        this.#counts.encoded++;
        const now = this.#now();
        const startMs = Math.round(now - this.#link.since);
        if (this.#run === run && this.#link.publishing(now)) this.#log.info("encoding", { codec: "h264", startMs });
      }
      for (const s of this.#subscribers) s.piece(piece, run.generation, capturedAt);
    }
  }

  async #onExit(run: Run): Promise<void> {
    if (this.#run !== run) return;
    this.#run = null;
    const ended = this.#link.ended(this.#now());
    if (!ended.failure) return;
    await Promise.race([run.process.outputDone, Bun.sleep(STDERR_WAIT_MS)]);
    const code = run.process.proc.exitCode;
    const signal = run.process.proc.signalCode;
    const retry = this.#link.state === "closed" ? "closing" : `retrying in ${ended.retryInMs / 1000} s`;
    const what = run.stopped ? STOPPED[run.stopped.why] : "the encoder stopped";
    this.#lastError = run.stopped
      ? `${what} (waited ${run.stopped.waitedMs / 1000} s)`
      : run.process.reason() ?? (signal ? `ffmpeg killed by ${signal}` : `ffmpeg exited with code ${code}`);
    this.#log.warn(`${what}; ${retry}`, { code, signal: signal ?? undefined, retryInMs: ended.retryInMs, error: this.#lastError });
  }
}
