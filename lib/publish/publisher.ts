import type { Fields, Logger } from "../log/format.ts";
import { resolveFfmpeg } from "../media/ffmpeg.ts";
import type { Frame } from "../wire/frame.ts";
import { FrameStream } from "./frame-stream.ts";
import { type EncoderStats, H264Encoder } from "./h264-encoder.ts";
import type { TsPiece } from "../mux/mpegts.ts";
import { PublishLink, type PublishState, type PublishTimings, type StopReason } from "./publish-link.ts";
import { type PublishCodec, PublishProcess, progressReader, targetArgs } from "./publish-process.ts";
import type { PublishTarget } from "./publish-url.ts";
import { rtpJpegProblem } from "../mux/rtp-jpeg.ts";
import { errorText } from "../errors/error-text.ts";
import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { nowMicros } from "../wire/frame.ts";
import { PublishAudioStream } from "./audio-stream.ts";

/**
 * Pushes the live stream to one RTSP server with ffmpeg, beside the viewers and the recorder,
 * from the same encoded frames.
 *
 *   copy:  write(frame) ──> PublishLink ──> ffmpeg (Matroska of the JPEGs in, RTP/JPEG out)
 *   h264:  write(frame) ──> H264Encoder (shared) ──> TS frames ──> PublishLink ──> ffmpeg (copy, RTP/H.264 out)
 *
 * A sink like the recorder, never a brake: write() never throws, never waits and never queues.
 * While the server is down, refusing, or slower than the camera, frames for it are dropped and
 * counted; ffmpeg is restarted after 0.5 s, 1 s, 2 s ... at most 10 s. Each connection carries
 * the frames' capture times (Matroska or MPEG-TS into ffmpeg, RTP timestamps out), so the server
 * sees when each frame was taken, not when it arrived. With h264 a connection starts, and after
 * dropping frames resumes, at a keyframe (one a second).
 *
 * With sound (`audio`), writeAudio(packet) feeds each connection's ffmpeg a second input, Ogg
 * Opus on fd 3 timed against the connection's first frame (audio-stream.ts), which it sends as
 * an Opus track next to the picture. Packets are dropped and counted, never queued, while there
 * is no connection or ffmpeg has not taken the last one.
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
  /** h264: the encoder shared with other targets (see Publishers); without one, the publisher runs its own. */
  encoder?: H264Encoder;
  /** Retry waits and timeouts (tests shorten them). */
  timings?: Partial<PublishTimings>;
  /** How long close() lets ffmpeg finish before killing it (default 3000 ms). */
  closeTimeoutMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
  /** The sound to publish next to the picture; none (the default): the session has a video track only. */
  audio?: AudioFormat | null;
}

/** One target's state and counters, as /state, /metrics and the stop line show them. */
export interface PublisherStats {
  /** The target, credentials and query values redacted. */
  url: string;
  codec: PublishCodec;
  state: PublishState;
  /** Milliseconds in the current state. */
  stateMs: number;
  /** Frames offered to this target (copy: passed to write(); h264: that came out of the encoder). */
  frames: number;
  /** Frames handed to ffmpeg. */
  sent: number;
  /** Frames ffmpeg reported sent to the server, over every connection. */
  published: number;
  /** Frames not sent: dropped = droppedOffline + droppedSlow + rejected. */
  dropped: number;
  /** While no connection could take them (connecting, backing off, stopping, closed; h264: waiting for a keyframe to start with). */
  droppedOffline: number;
  /** While ffmpeg or the server was behind (h264: and the frames until the next keyframe). */
  droppedSlow: number;
  /** copy: frames RTP/JPEG cannot carry as they are. */
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
  /** Sound packets passed to writeAudio() (0 without sound). */
  audioPackets: number;
  /** Sound packets handed to ffmpeg. */
  audioSent: number;
  /** Sound packets not sent: no connection, ffmpeg behind, or captured before the connection's first frame. */
  audioDropped: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 3000;
/** How long a failed ffmpeg's stderr may take to arrive before its failure is logged without it. */
const STDERR_WAIT_MS = 500;

/** One connection: its ffmpeg and what feeds it. */
interface Run {
  process: PublishProcess;
  /** Frames ffmpeg reported sent. */
  framesOut: number;
  /** copy: the Matroska stream of this connection. */
  stream?: FrameStream;
  /** h264: the encoder run this connection's stream comes from. */
  generation?: number;
  /** h264: frames were dropped; the next one sent must be a keyframe. */
  needKey: boolean;
  /** With sound: this connection's Ogg Opus, timed from its first frame. */
  audio?: PublishAudioStream;
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
  readonly #encoder: H264Encoder | null;
  readonly #ownsEncoder: boolean;
  readonly #unsubscribe: () => void = () => {};
  #run: Run | null = null;
  /** copy: a start decided in write(), spawned right after it returns. */
  #startTimer: ReturnType<typeof setImmediate> | null = null;
  /** h264: the frame whose pieces are arriving goes to ffmpeg (its start was sent). */
  #sendingFrame = false;
  #closing: Promise<void> | null = null;
  #published = 0;
  #lastError: string | null = null;
  #rejectReason: string | null = null;
  #writeErrorLogged = false;
  readonly #counts = { frames: 0, sent: 0, droppedOffline: 0, droppedSlow: 0, rejected: 0, bytesSent: 0, audioPackets: 0, audioSent: 0, audioDropped: 0 };
  readonly #audio: AudioFormat | null;

  /** Checks the options (RangeError) and resolves ffmpeg (FfmpegNotFoundError); connects with the first frame. */
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
    this.#audio = opts.audio ?? null;
    if (opts.codec === "h264") {
      this.#ownsEncoder = !opts.encoder;
      this.#encoder = opts.encoder ?? new H264Encoder({
        fps: opts.fps, log: opts.log, ffmpegPath: this.#ffmpeg, timings: opts.timings, closeTimeoutMs: opts.closeTimeoutMs, now: opts.now,
      });
      this.#unsubscribe = this.#encoder.subscribe({ piece: (p, g, t) => this.#piece(p, g, t), wantsInput: (now) => this.#wantsInput(now) });
    } else {
      this.#ownsEncoder = false;
      this.#encoder = null;
    }
  }

  /** The target, redacted. */
  get url(): string {
    return this.#target.redacted;
  }

  /** h264: the encoder's counters (shared between targets when it is shared); copy: null. */
  get encoderStats(): EncoderStats | null {
    return this.#encoder?.stats ?? null;
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
      published: this.#published,
      dropped: c.droppedOffline + c.droppedSlow + c.rejected,
      droppedOffline: c.droppedOffline,
      droppedSlow: c.droppedSlow,
      rejected: c.rejected,
      reconnects: this.#link.reconnects,
      failures: this.#link.failures,
      retryInMs: this.#link.retryIn(now),
      lastError: this.#lastError,
      bytesSent: c.bytesSent,
      audioPackets: c.audioPackets,
      audioSent: c.audioSent,
      audioDropped: c.audioDropped,
    };
  }

  /**
   * A sound packet for every connection's Opus track; never throws, never waits. Ignored
   * without sound; dropped and counted while no connection takes it.
   */
  readonly writeAudio = (packet: AudioPacket): void => {
    if (!this.#audio) return;
    const c = this.#counts;
    c.audioPackets++;
    try {
      const run = this.#run;
      const state = this.#link.state;
      if (!run?.audio || this.#link.ending || (state !== "connecting" && state !== "publishing")) {
        c.audioDropped++;
        return;
      }
      const page = run.audio.page(packet);
      if (!page || !run.process.sendAudio(page)) {
        c.audioDropped++;
        return;
      }
      c.audioSent++;
      c.bytesSent += page.length;
    } catch (err) {
      c.audioDropped++;
      this.#unexpected(err);
    }
  };

  /**
   * A FrameSink: never throws, never waits; the caller may reuse `frame.jpeg` once it returns.
   * h264: the frame goes to the encoder, which takes each frame once however many targets pass it on.
   */
  readonly write = (frame: Frame): void => {
    if (this.#encoder) {
      this.#encoder.write(frame);
      return;
    }
    const c = this.#counts;
    c.frames++;
    try {
      const problem = rtpJpegProblem(frame.jpeg);
      if (problem) {
        c.rejected++;
        this.#reject(problem, frame);
        return;
      }
      this.#rejectReason = null;
      const run = this.#run;
      if (run?.stream?.differs(frame) && !this.#link.ending && this.#link.restart()) {
        this.#log.info("frame size changed; reconnecting with the new size", {
          url: this.url, from: `${run.stream.width}x${run.stream.height}`, to: `${frame.width}x${frame.height}`,
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
          if (this.#run) this.#sendFrame(this.#run, frame, now);
          else c.droppedOffline++; // ffmpeg is being started
          return;
        case "drop":
          if (d.why === "slow") c.droppedSlow++;
          else c.droppedOffline++;
          return;
        case "stop":
          c.droppedOffline++;
          this.#stop(d.why, now);
          return;
      }
    } catch (err) {
      c.droppedOffline++;
      this.#unexpected(err);
    }
  };

  /** Ends the connection: ffmpeg gets the end of its input and ends the session; killed if it takes too long. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    // Its own encoder first: the frames it still holds reach this connection before it ends.
    if (this.#ownsEncoder) await this.#encoder?.close();
    this.#unsubscribe();
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
   * copy: starts ffmpeg with `frame` as the first of the stream. Spawning takes milliseconds, so
   * it runs just after write() returns: the frame's other sinks never wait for it.
   */
  #startSoon(frame: Frame, now: number): void {
    this.#link.started(now);
    // The caller may reuse its buffer once write() returns; one copy per connection attempt.
    const first: Frame = { ...frame, jpeg: frame.jpeg.slice() };
    this.#startTimer = setImmediate(() => {
      this.#startTimer = null;
      if (this.#link.state !== "connecting") return; // closed meanwhile
      const stream = new FrameStream(first, this.#fps);
      const run = this.#spawn("matroska", { stream, needKey: false }, first.capturedAt, `${first.width}x${first.height}`);
      if (!run) {
        this.#counts.droppedOffline++;
        return;
      }
      this.#counts.bytesSent += run.process.send([stream.header()], this.#now());
      this.#startAudio(run, first.capturedAt);
      this.#sendFrame(run, first, this.#now());
    });
  }

  #sendFrame(run: Run, frame: Frame, now: number): void {
    this.#counts.bytesSent += run.process.send(run.stream!.chunks(frame), now);
    this.#counts.sent++;
  }

  /** h264: a piece of the encoder's output. Runs in the encoder's output task, never in write(). */
  #piece(piece: TsPiece, generation: number, capturedAt: number | null): void {
    const c = this.#counts;
    try {
      const run = this.#run;
      if (!piece.start) {
        if (this.#sendingFrame && run) c.bytesSent += run.process.send([piece.bytes], this.#now());
        return;
      }
      c.frames++;
      this.#sendingFrame = false;
      // A new encoder run is a new stream (its own timestamps and tables): a new connection, which
      // starts at the new run's next keyframe once this one has exited.
      if (run && run.generation !== generation && !this.#link.ending && this.#link.restart()) {
        this.#log.info("the encoder restarted; reconnecting with its new stream", { url: this.url });
        run.process.kill();
      }
      const now = this.#now();
      const d = this.#link.offer(now, this.#run?.process.pipeFullSince ?? null);
      switch (d.do) {
        case "start": {
          // A connection must begin with a keyframe: without one the server has nothing to show.
          if (!piece.key) {
            c.droppedOffline++;
            return;
          }
          this.#link.started(now);
          const origin = capturedAt ?? nowMicros();
          const started = this.#spawn("mpegts", { generation, needKey: false }, origin);
          if (!started) {
            c.droppedOffline++;
            return;
          }
          this.#sendPiece(started, piece, now);
          // The target's ffmpeg starts its picture's clock at this frame: the sound's starts there too.
          this.#startAudio(started, origin);
          return;
        }
        case "send": {
          const r = this.#run;
          if (!r || (r.needKey && !piece.key)) {
            c.droppedSlow++;
            return;
          }
          r.needKey = false;
          this.#sendPiece(r, piece, now);
          return;
        }
        case "drop":
          // A frame missing from H.264 spoils the ones after it: resume at the next keyframe.
          if (this.#run) this.#run.needKey = true;
          if (d.why === "slow") c.droppedSlow++;
          else c.droppedOffline++;
          return;
        case "stop":
          c.droppedOffline++;
          this.#stop(d.why, now);
          return;
      }
    } catch (err) {
      c.droppedOffline++;
      this.#unexpected(err);
    }
  }

  #sendPiece(run: Run, piece: TsPiece, now: number): void {
    this.#sendingFrame = true;
    this.#counts.bytesSent += run.process.send([piece.bytes], now);
    this.#counts.sent++;
  }

  /** Opens the sound of a connection whose picture starts at capture time `origin` (µs). */
  #startAudio(run: Run, origin: number): void {
    if (!this.#audio) return;
    run.audio = new PublishAudioStream(this.#audio, origin);
    run.process.sendAudio(run.audio.header());
  }

  /** h264: whether this target takes frames now, so the shared encoder keeps encoding. */
  #wantsInput(now: number): boolean {
    const state = this.#link.state;
    return state !== "closed" && (state !== "backoff" || this.#link.retryIn(now) === 0);
  }

  /** Starts ffmpeg for one connection (the link has been told); null (and a back-off) when it cannot start. */
  #spawn(input: "matroska" | "mpegts", feed: Pick<Run, "stream" | "generation" | "needKey">, origin: number, size?: string): Run | null {
    const now = this.#now();
    const attempt = this.#link.starts;
    let run: Run | undefined;
    let process: PublishProcess;
    try {
      const onFrames = progressReader((n) => run && this.#onProgress(run, n));
      const audio = this.#audio !== null;
      process = new PublishProcess(targetArgs(this.#ffmpeg, this.#target, input, audio, origin), this.#target.secrets, onFrames, { audio });
    } catch (err) {
      const ended = this.#link.ended(now);
      this.#lastError = `cannot start ffmpeg: ${errorText(err)}`;
      this.#log.error(`${this.#lastError}; retrying in ${seconds(ended.retryInMs)}`, { url: this.url, ffmpeg: this.#ffmpeg });
      return null;
    }
    const started: Run = { ...feed, process, framesOut: 0 };
    run = started;
    this.#run = started;
    void process.exited.then(() => this.#onExit(started));
    this.#log.info(attempt === 1 ? "connecting" : "reconnecting", { url: this.url, codec: this.#codec, size, attempt, pid: process.proc.pid });
    return started;
  }

  /** The link gave up on the running ffmpeg (stalled, or never connected): end it; its exit says why. */
  #stop(why: StopReason, now: number): void {
    const run = this.#run;
    if (!run) return;
    const since = why === "stalled" ? run.process.pipeFullSince ?? now : this.#link.since;
    run.stopped = { why, waitedMs: Math.round(now - since) };
    run.process.kill();
  }

  #onProgress(run: Run, framesOut: number): void {
    if (framesOut <= run.framesOut) return;
    // Counted as reported, also after the run has ended: its last report can come after its exit.
    this.#published += framesOut - run.framesOut;
    run.framesOut = framesOut;
    if (this.#run !== run) return;
    const now = this.#now();
    const connectMs = Math.round(now - this.#link.since);
    if (this.#link.publishing(now)) this.#log.info("publishing", { url: this.url, codec: this.#codec, connectMs });
  }

  async #onExit(run: Run): Promise<void> {
    if (this.#run !== run) return;
    this.#run = null;
    this.#sendingFrame = false;
    const ended = this.#link.ended(this.#now());
    if (!ended.failure) return;
    await Promise.race([run.process.outputDone, Bun.sleep(STDERR_WAIT_MS)]);
    const code = run.process.proc.exitCode;
    const signal = run.process.proc.signalCode;
    const retry = this.#link.state === "closed" ? "closing" : `retrying in ${seconds(ended.retryInMs)}`;
    const fields: Fields = { url: this.url, code, signal: signal ?? undefined, framesOut: run.framesOut, retryInMs: ended.retryInMs };
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
    this.#lastError = `frames rejected: ${problem}`;
    this.#log.error(`frame cannot be published: ${problem}; publish with --publish-codec h264, which re-encodes any JPEG`, {
      url: this.url, seq: frame.seq, size: `${frame.width}x${frame.height}`,
    });
  }

  #unexpected(err: unknown): void {
    if (this.#writeErrorLogged) return;
    this.#writeErrorLogged = true;
    this.#log.error("unexpected error while publishing a frame", { url: this.url, error: errorText(err) });
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
    audioSent: s.audioPackets > 0 ? s.audioSent : undefined, audioDropped: s.audioPackets > 0 ? s.audioDropped : undefined,
  };
}
