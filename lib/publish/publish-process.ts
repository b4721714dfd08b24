import type { Subprocess } from "bun";
import { redactSecrets, type PublishTarget } from "./publish-url.ts";

/**
 * One ffmpeg pushing one connection's worth of stream to an RTSP server:
 *
 *   frames ──> stdin: live Matroska (MJPEG, real capture times) ──> ffmpeg ──> RTSP over TCP
 *                                     copy: RTP/JPEG as it is; h264: libx264 once, then RTP/H.264
 *   stdout: -progress (frame=N)  ──> "the server is taking the stream", frames out
 *   stderr: last lines, redacted ──> the reason when it fails
 *
 * Thin: the publisher decides what to send. Nothing is queued here: a write that Bun cannot
 * hand to the pipe at once leaves the pipe "full" until it drains, and the publisher drops
 * frames meanwhile.
 */

/** How frames reach the server: as they are, or encoded to H.264 once. */
export type PublishCodec = "copy" | "h264";

/** Every codec, for a flag's usage text. */
export const PUBLISH_CODECS: readonly PublishCodec[] = ["copy", "h264"];

/** A `--publish-codec` value that is not one of {@link PUBLISH_CODECS}. */
export class PublishCodecError extends Error {
  override name = "PublishCodecError";
}

/** Checks a `--publish-codec` value; throws {@link PublishCodecError} with the exact message. */
export function parsePublishCodec(text: string, flag = "--publish-codec"): PublishCodec {
  if ((PUBLISH_CODECS as readonly string[]).includes(text)) return text as PublishCodec;
  throw new PublishCodecError(`invalid ${flag}=${text}: expected ${PUBLISH_CODECS.join(" or ")}`);
}

/** What one ffmpeg run needs to know. */
export interface PublishArgs {
  ffmpeg: string;
  target: PublishTarget;
  codec: PublishCodec;
  /** Nominal frames per second: the H.264 keyframe interval is one second of them. */
  fps: number;
  width: number;
  height: number;
}

/** ffmpeg's progress report period: how soon "publishing" is noticed. */
export const PROGRESS_PERIOD_S = 0.5;
/** ffmpeg's last stderr lines kept for the log when it fails. */
const STDERR_LINES = 12;

/** The ffmpeg command line for one connection. */
export function publishArgs(a: PublishArgs): string[] {
  const gop = String(Math.max(1, Math.round(a.fps)));
  const encode = a.codec === "copy"
    ? ["-c:v", "copy"]
    : [
      // Odd sides cannot be 4:2:0; cropping one pixel costs nothing (no copy).
      ...(a.width % 2 || a.height % 2 ? ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"] : []),
      "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
      // Constrained baseline 4:2:0 in limited range is what every WebRTC browser decodes.
      "-profile:v", "baseline", "-pix_fmt", "yuv420p",
      // A keyframe every second: how long a new WebRTC/HLS reader waits for a picture.
      "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
      // Each frame keeps its capture time: no frames duplicated or dropped to fit a rate.
      "-fps_mode", "passthrough",
    ];
  return [
    a.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
    "-progress", "pipe:1", "-stats_period", String(PROGRESS_PERIOD_S),
    // Start from the first frame: the Matroska header already says what the stream is.
    "-probesize", "32", "-analyzeduration", "0",
    "-f", "matroska", "-i", "pipe:0", "-map", "0:v:0", ...encode,
    "-f", "rtsp", "-rtsp_transport", "tcp", a.target.url,
  ];
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
  /** Frames ffmpeg says it has sent (its -progress `frame=`). */
  framesOut = 0;
  /** When a write last found the pipe full and is still waiting, else null. */
  pipeFullSince: number | null = null;
  #token = 0;

  /**
   * Starts ffmpeg. `onProgress` gets ffmpeg's frame count each report; throws when ffmpeg
   * cannot be started at all.
   */
  constructor(args: string[], readonly secrets: readonly string[], readonly onProgress: (framesOut: number, from: PublishProcess) => void) {
    // Its own session: a Ctrl-C at the terminal reaches lancam, which ends the stream in order.
    // If lancam dies, ffmpeg reads the end of its input and stops.
    this.proc = Bun.spawn(args, { stdin: "pipe", stdout: "pipe", stderr: "pipe", detached: true });
    this.outputDone = Promise.all([this.#readProgress(), this.#readStderr()]).then(() => {});
    this.exited = this.proc.exited.then(() => this.proc.exitCode);
  }

  /** Hands chunks to ffmpeg in order; never waits. `now` marks when the pipe filled up. */
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

  /** Ends ffmpeg's input: it sends what it has, tears the session down and exits. */
  end(): void {
    try {
      const r = this.proc.stdin.end();
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // already closed
    }
  }

  /** Ends ffmpeg at once (stuck, or being replaced): nothing of a live stream is worth waiting for. */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }

  /** The last stderr lines (redacted), or null when ffmpeg said nothing. */
  reason(lines = 3): string | null {
    return this.stderrTail.length > 0 ? this.stderrTail.slice(-lines).join(" | ") : null;
  }

  async #readProgress(): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    try {
      for await (const chunk of this.proc.stdout) {
        const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.startsWith("frame=")) continue;
          const n = Number(line.slice(6).trim());
          if (Number.isSafeInteger(n) && n >= this.framesOut) {
            this.framesOut = n;
            this.onProgress(n, this);
          }
        }
      }
    } catch {
      // the pipe broke with the process
    }
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
      // the pipe broke with the process
    }
    this.#keep(rest);
  }

  #keep(line: string): void {
    // "[tcp @ 0x55d1c0a0] ..." : the address is noise in a log line.
    const l = line.trim().replace(/^\[([\w-]+) @ 0x[0-9a-f]+\]/, "[$1]");
    if (!l) return;
    // Redacted before it is kept: nothing later can leak what is never stored.
    this.stderrTail.push(redactSecrets(l, this.secrets));
    if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
  }
}
