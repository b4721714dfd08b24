import type { FileSink, Subprocess } from "bun";
import { closeSync } from "node:fs";
import { forEachLine } from "../media/line-reader.ts";
import { redactSecrets, type PublishTarget } from "./publish-url.ts";
import { UserError } from "../errors/user-error.ts";

/**
 * One ffmpeg run of a publisher: a connection to an RTSP server, or the shared H.264 encoder.
 *
 *   copy target:  live Matroska (MJPEG, capture times) ──> ffmpeg -c copy ──> RTSP (RTP/JPEG)
 *   encoder:      live Matroska (MJPEG, capture times) ──> ffmpeg libx264 ──> MPEG-TS on stdout
 *   h264 target:  MPEG-TS frames from the encoder       ──> ffmpeg -c copy ──> RTSP (RTP/H.264)
 *
 * Thin: the owner decides what to send. Nothing is queued here: a write that Bun cannot hand to
 * ffmpeg at once leaves its input "full" until it drains, and the owner drops frames meanwhile.
 */

/** How frames reach the server: as they are, or encoded to H.264 once. */
export type PublishCodec = "copy" | "h264";

/** Every codec, for a flag's usage text. */
export const PUBLISH_CODECS: readonly PublishCodec[] = ["copy", "h264"];

/** A `--publish-codec` value that is not one of {@link PUBLISH_CODECS}. */
export class PublishCodecError extends UserError {
  override name = "PublishCodecError";
}

/** Checks a `--publish-codec` value; throws {@link PublishCodecError} with the exact message. */
export function parsePublishCodec(text: string, flag = "--publish-codec"): PublishCodec {
  if ((PUBLISH_CODECS as readonly string[]).includes(text)) return text as PublishCodec;
  throw new PublishCodecError(`invalid ${flag}=${text}: expected ${PUBLISH_CODECS.join(" or ")}`);
}

/** ffmpeg's progress report period: how soon "publishing" is noticed. */
const PROGRESS_PERIOD_S = 0.5;
/** ffmpeg's last stderr lines kept for the log when it fails. */
const STDERR_LINES = 12;

const COMMON = ["-hide_banner", "-nostdin", "-nostats"];
// Start from the first frame: the stream's own header already says what it is.
const NO_PROBING = ["-probesize", "32", "-analyzeduration", "0"];

/** Sound bytes that may wait for ffmpeg at once: about 2 s of 64 kbit/s Opus in Ogg. */
const MAX_AUDIO_PENDING = 24 * 1024;

/** The file descriptor ffmpeg reads a connection's sound from (Ogg Opus, see audio-stream.ts). */
export const AUDIO_FD = 3;
/**
 * With sound, ffmpeg holds packets back until it has one of each track to send in order; a
 * track that stops (a microphone gone) may hold the other back this long at most, µs.
 */
const MAX_INTERLEAVE_US = 500_000;

/**
 * The ffmpeg command line of one connection to `target`: its input is live Matroska of JPEG
 * frames (copy), or the shared encoder's MPEG-TS (h264); both are sent on without re-encoding.
 * With `audio`, Ogg Opus on fd 3 is a second input, sent on as an Opus track (RTP, RFC 7587).
 */
export function targetArgs(ffmpeg: string, target: PublishTarget, input: "matroska" | "mpegts", audio = false, originMicros?: number): string[] {
  const sound = audio
    ? { input: [...NO_PROBING, "-f", "ogg", "-i", `pipe:${AUDIO_FD}`], map: ["-map", "1:a:0", "-c:a", "copy", "-max_interleave_delta", String(MAX_INTERLEAVE_US)] }
    : { input: [], map: [] };
  return [
    ffmpeg, ...COMMON, "-loglevel", "warning", "-progress", "pipe:1", "-stats_period", String(PROGRESS_PERIOD_S), ...NO_PROBING,
    "-f", input, "-i", "pipe:0", ...sound.input, "-map", "0:v:0", "-c:v", "copy", ...sound.map,
    // RTCP's wall clock of time zero is the first frame's capture time, the same for every track:
    // readers map both tracks, and the time they were taken, from it.
    ...(originMicros !== undefined ? ["-start_time_realtime", String(Math.round(originMicros))] : []),
    // TCP: a frame is hundreds of packets, and UDP on a busy network loses some of every frame.
    "-f", "rtsp", "-rtsp_transport", "tcp", target.url,
  ];
}

/**
 * The shared H.264 encoder's command line: live Matroska of JPEG frames in, MPEG-TS with tables
 * before every frame out (see mpegts.ts), each frame flushed as soon as it is encoded.
 */
export function encoderArgs(ffmpeg: string, fps: number, width: number, height: number): string[] {
  const gop = String(Math.max(1, Math.round(fps)));
  return [
    // Errors only: swscale warns about JPEG's full-range pixel format once per thread, per run.
    ffmpeg, ...COMMON, "-loglevel", "error", ...NO_PROBING, "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0",
    // Odd sides cannot be 4:2:0; cropping one pixel costs nothing (no copy).
    ...(width % 2 || height % 2 ? ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"] : []),
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
    // Constrained baseline 4:2:0 in limited range is what every WebRTC browser decodes.
    "-profile:v", "baseline", "-pix_fmt", "yuv420p",
    // A keyframe every second: how long a new reader, or a target that fell behind, waits.
    "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
    // Each frame keeps its capture time: no frames duplicated or dropped to fit a rate.
    "-fps_mode", "passthrough",
    "-f", "mpegts", "-mpegts_flags", "+pat_pmt_at_frames", "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "pipe:1",
  ];
}

/** Reads ffmpeg's `-progress` reports: calls `onFrames` with each `frame=N`. */
export function progressReader(onFrames: (frames: number) => void): (chunk: Uint8Array) => void {
  const decoder = new TextDecoder();
  let rest = "";
  return (chunk) => {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
    rest = lines.pop() ?? "";
    // A line longer than any report is not ffmpeg's progress: keep memory bounded.
    if (rest.length > 4096) rest = "";
    for (const line of lines) {
      if (!line.startsWith("frame=")) continue;
      const n = Number(line.slice(6).trim());
      if (Number.isSafeInteger(n) && n >= 0) onFrames(n);
    }
  };
}

/** One running ffmpeg. */
export class PublishProcess {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  /** Redacted: safe to log. */
  readonly stderrTail: string[] = [];
  /** Resolves once stdout and stderr are read to their end. */
  readonly outputDone: Promise<void>;
  /** Exit code, or null when killed by a signal. */
  readonly exited: Promise<number | null>;
  /** When a write last found ffmpeg's input full and is still waiting, else null. */
  pipeFullSince: number | null = null;
  #token = 0;
  /** The sound's pipe (fd 3), when this run has one. */
  #audio: { fd: number; sink: FileSink; pending: number; token: number; closed: boolean } | null = null;

  /**
   * Starts ffmpeg; `onOutput` gets its stdout as it comes. Throws when ffmpeg cannot be started.
   * `secrets` are redacted from every stderr line before it is kept.
   */
  constructor(args: string[], readonly secrets: readonly string[], onOutput: (chunk: Uint8Array) => void, opts: { audio?: boolean } = {}) {
    // Its own session: a Ctrl-C at the terminal reaches lancam, which ends the stream in order.
    // If lancam dies, ffmpeg reads the end of its input and stops.
    this.proc = Bun.spawn(args, { stdio: opts.audio ? ["pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe"], detached: true }) as Subprocess<"pipe", "pipe", "pipe">;
    if (opts.audio) {
      const fd = this.proc.stdio[AUDIO_FD] as unknown as number;
      this.#audio = { fd, sink: Bun.file(fd).writer({ highWaterMark: 64 * 1024 }), pending: 0, token: 0, closed: false };
    }
    this.outputDone = Promise.all([this.#readStdout(onOutput), forEachLine(this.proc.stderr, (line) => this.#keep(line))]).then(() => {});
    this.exited = this.proc.exited.then(() => {
      this.#closeAudio();
      return this.proc.exitCode;
    });
  }

  /** True until ffmpeg has exited. */
  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Hands chunks to ffmpeg in order; never waits. `now` marks when its input filled up. */
  send(chunks: readonly Uint8Array[], now: number): number {
    let bytes = 0;
    let pending: Promise<number> | null = null;
    for (const chunk of chunks) {
      let r: number | Promise<number>;
      try {
        r = this.proc.stdin.write(chunk);
      } catch {
        return bytes; // ffmpeg is gone; its exit is reported on its own
      }
      bytes += chunk.length;
      if (r instanceof Promise) pending = r;
    }
    if (pending) {
      this.pipeFullSince ??= now;
      const token = ++this.#token;
      // Bun's sink flushes in order: when the latest write settles, everything has.
      const settle = () => {
        if (token === this.#token) this.pipeFullSince = null;
      };
      pending.then(settle, settle); // a rejection is EPIPE: ffmpeg died, its exit says why
    }
    return bytes;
  }

  /**
   * Hands sound bytes to ffmpeg's fd 3; never waits. Returns false, sending nothing, while
   * MAX_AUDIO_PENDING bytes wait for ffmpeg to read them (the owner drops and counts the packet:
   * ffmpeg reads its sound only once it has opened its picture, a few hundred ms after it starts),
   * or when this run has no sound pipe.
   */
  sendAudio(bytes: Uint8Array): boolean {
    const a = this.#audio;
    if (!a || a.closed || a.pending + bytes.length > MAX_AUDIO_PENDING) return false;
    try {
      a.sink.write(bytes);
      const flushed = a.sink.flush();
      if (flushed instanceof Promise) {
        a.pending += bytes.length;
        const token = ++a.token;
        // Flushes complete in order: when the latest settles, everything written has gone.
        flushed.then(() => {
          if (token === a.token) a.pending = 0;
        }, () => this.#closeAudio());
      } else {
        a.pending = 0;
      }
      return true;
    } catch {
      this.#closeAudio(); // ffmpeg is gone; its exit is reported on its own
      return false;
    }
  }

  #closeAudio(): void {
    const a = this.#audio;
    if (!a || a.closed) return;
    a.closed = true;
    const close = () => {
      try {
        closeSync(a.fd);
      } catch {
        // already closed
      }
    };
    // The sink does not own the descriptor: ffmpeg sees the end of its sound only once it is closed.
    try {
      const ended = a.sink.end();
      if (ended instanceof Promise) void ended.then(close, close);
      else close();
    } catch {
      close();
    }
  }

  /** Ends ffmpeg's input: it sends what it has, ends the session and exits. */
  end(): void {
    this.#closeAudio();
    try {
      const r = this.proc.stdin.end();
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // already closed
    }
  }

  /** Ends ffmpeg at once (stuck, or being replaced): nothing of a live stream is worth waiting for. */
  kill(): void {
    if (this.running) this.proc.kill("SIGKILL");
    this.#closeAudio();
  }

  /** The last stderr lines (redacted), or null when ffmpeg said nothing. */
  reason(lines = 3): string | null {
    return this.stderrTail.length > 0 ? this.stderrTail.slice(-lines).join(" | ") : null;
  }

  async #readStdout(onOutput: (chunk: Uint8Array) => void): Promise<void> {
    try {
      for await (const chunk of this.proc.stdout) onOutput(chunk);
    } catch {
      // the pipe broke with the process
    }
  }

  #keep(line: string): void {
    // "[tcp @ 0x55d1c0a0] ..." : the address is noise in a log line.
    const l = line.trim().replace(/^\[([\w-]+) @ 0x[0-9a-f]+\]/, "[$1]");
    if (!l) return;
    // Redacted before it is kept (and before it is shortened, which could cut a URL in two).
    this.stderrTail.push(redactSecrets(l, this.secrets).slice(0, 500));
    if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
  }
}
