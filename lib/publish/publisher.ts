import type { Fields, Logger } from "../app/log.ts";
import { resolveFfmpeg } from "../record/ffmpeg.ts";
import { MkvStream } from "../record/mkv-stream.ts";
import type { Frame } from "../wire/frame.ts";
import { PublishLink, type PublishState, type PublishTimings, type StopReason } from "./publish-link.ts";
import { type PublishCodec, PublishProcess, publishArgs } from "./publish-process.ts";
import type { PublishTarget } from "./publish-url.ts";
import { rtpJpegProblem } from "./rtp-jpeg.ts";

/**
 * Pushes the live stream to one RTSP server with ffmpeg, beside the viewers and the recorder,
 * from the same encoded frames.
 *
 *   write(frame) ──> PublishLink (start / send / drop / stop) ──> PublishProcess (one ffmpeg per connection)
 *
 * A sink like the recorder, never a brake: write() never throws, never waits and never queues.
 * While the server is down, refusing, or slower than the camera, frames for it are dropped and
 * counted; ffmpeg is restarted after 0.5 s, 1 s, 2 s ... at most 10 s. Each connection carries
 * the frames' capture times (Matroska into ffmpeg, RTP timestamps out), so the server sees when
 * each frame was taken, not when it arrived.
 */

/** Options of a {@link Publisher}; the server's flags map onto them. */
export interface PublisherOptions {
  /** One `--publish` URL, parsed (and with `--publish-token-file`'s credentials applied). */
  target: PublishTarget;
  /** `--publish-codec` */
  codec: PublishCodec;
  /** Nominal frame rate of the source (Matroska frame duration; H.264 keyframe interval). */
  fps: number;
  /** Pass e.g. `log.child("publish")`; every line names the target, redacted. */
  log: Logger;
  /** Resolved with resolveFfmpeg() when not given. */
  ffmpegPath?: string;
  /** Retry waits and timeouts (tests shorten them). */
  timings?: Partial<PublishTimings>;
  /** How long close() lets ffmpeg finish before killing it (default 3000 ms). */
  closeTimeoutMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
}

/** One target's state and counters, as /state, /metrics and the stop line show them. */
export interface PublisherStats {
  /** The target, credentials and query values redacted. */
  url: string;
  codec: PublishCodec;
  state: PublishState;
  /** Milliseconds in the current state. */
  stateMs: number;
  /** Frames passed to write(). */
  frames: number;
  /** Frames handed to ffmpeg. */
  sent: number;
  /** Frames ffmpeg reported sent to the server, over every connection. */
  published: number;
  /** Frames not sent: dropped = droppedOffline + droppedSlow + rejected. */
  dropped: number;
  /** While no connection could take them (connecting, backing off, stopping, closed). */
  droppedOffline: number;
  /** While ffmpeg or the server was behind (its input pipe full). */
  droppedSlow: number;
  /** Frames that cannot go out as they are (copy: not RTP/JPEG-compatible; any: not a JPEG). */
  rejected: number;
  /** Connections started after the first. */
  reconnects: number;
  /** Connections that failed or were lost. */
  failures: number;
  /** Wait left before the next attempt while backing off, else null. */
  retryInMs: number | null;
  /** Why the last connection failed or frames were rejected (redacted), kept after recovery; null if never. */
  lastError: string | null;
  /** Bytes handed to ffmpeg. */
  bytesSent: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 3000;
/** How long a failed ffmpeg's stderr may take to arrive before its failure is logged without it. */
const STDERR_WAIT_MS = 500;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isCompleteJpeg(b: Uint8Array): boolean {
  const n = b.length;
  return n >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[n - 2] === 0xff && b[n - 1] === 0xd9;
}

/** One connection: its ffmpeg, its Matroska stream and the frame size it was started for. */
interface Run {
  process: PublishProcess;
  mkv: MkvStream;
  width: number;
  height: number;
  /** Capture time of the run's first frame (µs): Matroska time 0. */
  origin: number;
  /** Set when the link ended this run itself, and why. */
  stopped?: { why: StopReason; waitedMs: number };
}

/** What a log line says for an ffmpeg the link had to end. */
const STOPPED: Record<StopReason, string> = {
  stalled: "the server stopped taking the stream",
  "connect timeout": "the server did not accept the stream in time",
};

/** Publishes to one RTSP target. Create, write() every frame, close() (or `await using`). */
export class Publisher implements AsyncDisposable {
  readonly #target: PublishTarget;
  readonly #codec: PublishCodec;
  readonly #fps: number;
  readonly #log: Logger;
  readonly #ffmpeg: string;
  readonly #now: () => number;
  readonly #closeTimeoutMs: number;
  readonly #link: PublishLink;
  #run: Run | null = null;
  /** A start decided in write(), spawned right after it returns. */
  #startTimer: ReturnType<typeof setImmediate> | null = null;
  #closing: Promise<void> | null = null;
  #publishedBefore = 0;
  #lastError: string | null = null;
  #rejectReason: string | null = null;
  #writeErrorLogged = false;
  readonly #counts = { frames: 0, sent: 0, droppedOffline: 0, droppedSlow: 0, rejected: 0, bytesSent: 0 };

  /** Checks the options (RangeError) and resolves ffmpeg (FfmpegNotFoundError); starts nothing yet. */
  constructor(opts: PublisherOptions) {
    if (!(opts.fps > 0 && opts.fps <= 1000)) throw new RangeError(`fps must be in (0, 1000], got ${opts.fps}`);
    if (opts.codec !== "copy" && opts.codec !== "h264") throw new RangeError(`codec must be copy or h264, got ${String(opts.codec)}`);
    this.#target = opts.target;
    this.#codec = opts.codec;
    this.#fps = opts.fps;
    this.#log = opts.log;
    this.#ffmpeg = opts.ffmpegPath ?? resolveFfmpeg().path;
    this.#now = opts.now ?? (() => performance.now());
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#link = new PublishLink(opts.timings, this.#now());
  }

  /** The target, redacted. */
  get url(): string {
    return this.#target.redacted;
  }

  /** A snapshot of state and counters. */
  get stats(): PublisherStats {
    const now = this.#now();
    const c = this.#counts;
    return {
      url: this.#target.redacted,
      codec: this.#codec,
      state: this.#link.state,
      stateMs: Math.max(0, Math.round(now - this.#link.since)),
      frames: c.frames,
      sent: c.sent,
      published: this.#publishedBefore + (this.#run?.process.framesOut ?? 0),
      dropped: c.droppedOffline + c.droppedSlow + c.rejected,
      droppedOffline: c.droppedOffline,
      droppedSlow: c.droppedSlow,
      rejected: c.rejected,
      reconnects: this.#link.reconnects,
      failures: this.#link.failures,
      retryInMs: this.#link.retryIn(now),
      lastError: this.#lastError,
      bytesSent: c.bytesSent,
    };
  }

  /** Pid of the running ffmpeg, if any (tests and diagnostics). */
  get ffmpegPid(): number | null {
    return this.#run?.process.proc.pid ?? null;
  }

  /** A FrameSink: never throws, never waits; the caller may reuse `frame.jpeg` once it returns. */
  readonly write = (frame: Frame): void => {
    const c = this.#counts;
    c.frames++;
    try {
      const problem = this.#codec === "copy" ? rtpJpegProblem(frame.jpeg) : isCompleteJpeg(frame.jpeg) ? null : "not one complete JPEG (FF D8 ... FF D9)";
      if (problem) {
        c.rejected++;
        this.#reject(problem, frame);
        return;
      }
      this.#rejectReason = null;
      const run = this.#run;
      if (run && (run.width !== frame.width || run.height !== frame.height) && !this.#link.ending && this.#link.restart()) {
        this.#log.info("frame size changed; reconnecting with the new size", {
          url: this.url, from: `${run.width}x${run.height}`, to: `${frame.width}x${frame.height}`,
        });
        run.process.kill();
      }
      const now = this.#now();
      const d = this.#link.offer(now, this.#run?.process.pipeFullSince ?? null);
      switch (d.do) {
        case "start":
          this.#startSoon(frame, now);
          return;
        case "send":
          if (this.#run) this.#send(this.#run, frame, now);
          else c.droppedOffline++; // ffmpeg is being started
          return;
        case "drop":
          if (d.why === "slow") c.droppedSlow++;
          else c.droppedOffline++;
          return;
        case "stop": {
          c.droppedOffline++;
          const run = this.#run;
          if (run) {
            const since = d.why === "stalled" ? run.process.pipeFullSince ?? now : this.#link.since;
            run.stopped = { why: d.why, waitedMs: Math.round(now - since) };
            run.process.kill(); // its exit is logged, with the reason, by #onExit
          }
          return;
        }
      }
    } catch (err) {
      c.droppedOffline++;
      if (!this.#writeErrorLogged) {
        this.#writeErrorLogged = true;
        this.#log.error("unexpected error while publishing a frame", { url: this.url, error: errorText(err) });
      }
    }
  };

  /** Ends the connection: ffmpeg gets the end of its input and tears the session down; killed if it takes too long. */
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
      this.#counts.droppedOffline++; // the first frame of the start that never happened
    }
    const run = this.#run;
    this.#link.close(this.#now());
    if (run) {
      run.process.end();
      const code = await Promise.race([run.process.exited, Bun.sleep(this.#closeTimeoutMs).then(() => "timeout" as const)]);
      if (code === "timeout") {
        this.#log.warn("ffmpeg did not end in time; killing it", { url: this.url, timeoutMs: this.#closeTimeoutMs });
        run.process.kill();
        await run.process.exited;
      }
      await Promise.race([run.process.outputDone, Bun.sleep(STDERR_WAIT_MS)]);
    }
    this.#log.info("publisher closed", statsFields(this.stats));
  }

  /**
   * Starts ffmpeg with `frame` as the first of the stream. Spawning takes milliseconds, so it
   * runs just after write() returns: the frame's other sinks never wait for it.
   */
  #startSoon(frame: Frame, now: number): void {
    this.#link.started(now);
    // The caller may reuse its buffer once write() returns; one copy per connection attempt.
    const first: Frame = { ...frame, jpeg: frame.jpeg.slice() };
    this.#startTimer = setImmediate(() => {
      this.#startTimer = null;
      this.#start(first);
    });
  }

  #start(frame: Frame): void {
    if (this.#link.state !== "connecting") return; // closed meanwhile
    const now = this.#now();
    const attempt = this.#link.starts;
    const args = publishArgs({ ffmpeg: this.#ffmpeg, target: this.#target, codec: this.#codec, fps: this.#fps, width: frame.width, height: frame.height });
    let process: PublishProcess;
    try {
      process = new PublishProcess(args, this.#target.secrets, (n, from) => this.#onProgress(from, n));
    } catch (err) {
      const ended = this.#link.ended(now);
      this.#counts.droppedOffline++;
      this.#lastError = `cannot start ffmpeg: ${errorText(err)}`;
      this.#log.error(`${this.#lastError}; retrying in ${seconds(ended.retryInMs)}`, { url: this.url, ffmpeg: this.#ffmpeg });
      return;
    }
    const mkv = new MkvStream({
      width: frame.width, height: frame.height, frameIntervalMicros: 1_000_000 / this.#fps, startedAtMicros: frame.capturedAt,
    });
    const run: Run = { process, mkv, width: frame.width, height: frame.height, origin: frame.capturedAt };
    this.#run = run;
    this.#counts.bytesSent += process.send([mkv.header()], now);
    this.#send(run, frame, now);
    void process.exited.then(() => this.#onExit(run));
    this.#log.info(attempt === 1 ? "connecting" : "reconnecting", {
      url: this.url, codec: this.#codec, size: `${frame.width}x${frame.height}`, attempt, pid: process.proc.pid,
    });
  }

  #send(run: Run, frame: Frame, now: number): void {
    const { chunks } = run.mkv.frame((frame.capturedAt - run.origin) / 1000, frame.jpeg);
    this.#counts.bytesSent += run.process.send(chunks, now);
    this.#counts.sent++;
  }

  #onProgress(process: PublishProcess, framesOut: number): void {
    if (this.#run?.process !== process || framesOut === 0) return;
    const now = this.#now();
    const connectMs = Math.round(now - this.#link.since);
    if (this.#link.publishing(now)) {
      this.#log.info("publishing", { url: this.url, codec: this.#codec, connectMs });
    }
  }

  async #onExit(run: Run): Promise<void> {
    if (this.#run !== run) return;
    this.#run = null;
    this.#publishedBefore += run.process.framesOut;
    const now = this.#now();
    const ended = this.#link.ended(now);
    if (!ended.failure) return;
    await Promise.race([run.process.outputDone, Bun.sleep(STDERR_WAIT_MS)]);
    const code = run.process.proc.exitCode;
    const signal = run.process.proc.signalCode;
    const retry = this.#link.state === "closed" ? "closing" : `retrying in ${seconds(ended.retryInMs)}`;
    const fields: Fields = { url: this.url, code, signal: signal ?? undefined, framesOut: run.process.framesOut, retryInMs: ended.retryInMs };
    if (run.stopped) {
      this.#lastError = `${STOPPED[run.stopped.why]} (waited ${seconds(run.stopped.waitedMs)})`;
      this.#log.warn(`${STOPPED[run.stopped.why]}; ${retry}`, { ...fields, state: ended.was, waitedMs: run.stopped.waitedMs });
      return;
    }
    const reason = run.process.reason() ?? (signal ? `ffmpeg killed by ${signal}` : `ffmpeg exited with code ${code}`);
    this.#lastError = reason;
    this.#log.warn(`${ended.was === "publishing" ? "publishing stopped" : "cannot publish"}; ${retry}`, { ...fields, error: reason });
  }

  /** A frame that cannot be sent as it is: said once per reason, kept as the last error. */
  #reject(problem: string, frame: Frame): void {
    if (this.#rejectReason === problem) return;
    this.#rejectReason = problem;
    const advice = this.#codec === "copy" ? "; publish with --publish-codec h264, which re-encodes any JPEG" : "";
    this.#lastError = `frames rejected: ${problem}`;
    this.#log.error(`frame cannot be published: ${problem}${advice}`, { url: this.url, seq: frame.seq, size: `${frame.width}x${frame.height}` });
  }
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** A target's stats as log fields (for the stop line and the closing line). */
export function statsFields(s: PublisherStats): Fields {
  return {
    url: s.url, codec: s.codec, state: s.state, frames: s.frames, sent: s.sent, published: s.published,
    dropped: s.dropped, droppedOffline: s.droppedOffline, droppedSlow: s.droppedSlow, rejected: s.rejected,
    reconnects: s.reconnects, failures: s.failures, lastError: s.lastError ?? undefined,
  };
}
