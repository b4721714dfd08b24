import type { Subprocess } from "bun";
import type { AudioFormat } from "../wire/audio-packet.ts";
import { forEachLine } from "../media/line-reader.ts";
import { type Container, FFMPEG_FORMAT } from "./segment-naming.ts";

/** ffmpeg's last stderr lines kept for the log when it fails. */
const STDERR_LINES = 20;

/** What ffmpeg needs to write one segment. */
export interface SegmentArgs {
  ffmpeg: string;
  container: Container;
  /** Nominal frame rate (AVI: the file's constant rate). */
  fps: number;
  /** Capture time of the first frame, µs since the epoch: the file's creation_time. */
  startedAtMicros: number;
  /** The partial file ffmpeg writes. */
  output: string;
  /** The audio track's format; null or absent for video only. */
  audio?: AudioFormat | null;
}

/**
 * What the audio becomes in each container. Matroska keeps the Opus packets as they came (codec
 * copy, A_OPUS with its OpusHead). AVI gets 16-bit PCM, decoded from the Opus by ffmpeg: every AVI
 * player plays PCM (WAVE_FORMAT_PCM), nothing is lost to a second lossy encoding, and PCM has no
 * encoder delay or padding that an AVI could not declare (MP3 adds ~1100 samples of delay and
 * pads to 1152-sample frames, which would move the audio against the video), so a sample's place
 * in the file is its capture time. The cost, 768 kbit/s mono at 48 kHz, is small beside MJPEG.
 */
export const AUDIO_CODEC: Record<Container, string> = { avi: "pcm_s16le", mkv: "copy" };

/**
 * ffmpeg's command line for one segment: stream copy from stdin (MJPEG for AVI, live Matroska
 * for mkv). With audio, both containers read one live Matroska stream holding both tracks.
 */
export function segmentArgs(a: SegmentArgs): string[] {
  const fps = String(a.fps);
  const muxed = a.container === "mkv" || !!a.audio;
  const input = muxed ? ["-f", "matroska"] : ["-f", "mjpeg", "-framerate", fps];
  const streams = a.audio ? ["-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", "-c:a", AUDIO_CODEC[a.container]] : ["-map", "0:v:0", "-c", "copy"];
  // Without an output rate, a stream-copied AVI gets time base 1/(2 x fps) and an empty chunk
  // after every frame (ffmpeg's "ticks per frame" heuristic): twice the rate, twice the index.
  const output = a.container === "avi" ? ["-r", fps] : [];
  return [
    a.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
    ...input, "-i", "pipe:0", ...streams, ...output,
    "-metadata", `creation_time=${new Date(Math.floor(a.startedAtMicros / 1000)).toISOString()}`,
    // Each frame reaches the file as it is muxed, so a crash loses only what is in the pipe.
    "-flush_packets", "1",
    "-f", FFMPEG_FORMAT[a.container], "-y", a.output,
  ];
}

/** How a {@link SegmentProcess} paces its writer. */
export interface SegmentProcessOptions {
  /** Bytes that may wait for ffmpeg once its pipe is full; beyond that `hasRoom` is false. */
  maxQueuedBytes: number;
  /** ffmpeg took everything handed over: more may be sent. */
  onDrain: () => void;
  /** A write failed: ffmpeg is gone, and its exit follows. */
  onBroken: () => void;
}

/**
 * One ffmpeg process writing one segment: its stdin pipe and the pipe's backpressure, its exit,
 * the tail of its stderr. It knows nothing of frames; its owner decides what to send.
 */
export class SegmentProcess {
  readonly #proc: Subprocess<"pipe", "ignore", "pipe">;
  readonly #opts: SegmentProcessOptions;
  readonly #stderrTail: string[] = [];
  /** Resolves once stderr has been read to its end. */
  readonly stderrDone: Promise<void>;
  /** Resolves with the exit code (signals give a code too; see {@link signalCode}). */
  readonly exited: Promise<number>;
  #pending = false;
  /** Bytes handed over since the pipe went pending (an upper bound of what the sink holds). */
  #queued = 0;
  #token = 0;

  /** Starts ffmpeg; throws when it cannot be spawned. */
  constructor(args: string[], opts: SegmentProcessOptions) {
    this.#opts = opts;
    // Its own session: a Ctrl-C at the terminal goes to lancam, which ends the segment
    // cleanly, not to ffmpeg, which would abandon it. If lancam dies, ffmpeg sees its
    // input end and finishes the file.
    this.#proc = Bun.spawn(args, { stdin: "pipe", stdout: "ignore", stderr: "pipe", detached: true });
    this.exited = this.#proc.exited;
    this.stderrDone = forEachLine(this.#proc.stderr, (line) => this.#keep(line));
  }

  get pid(): number {
    return this.#proc.pid;
  }

  /** The exit code once ffmpeg has ended (-1 when a signal ended it), else null. */
  get exitCode(): number | null {
    return this.#proc.exitCode ?? (this.#proc.signalCode ? -1 : null);
  }

  /** The signal that ended ffmpeg, if one did. */
  get signalCode(): NodeJS.Signals | number | null {
    return this.#proc.signalCode;
  }

  /** ffmpeg's last stderr lines (at most `n`), joined for one log field; "" when it said nothing. */
  stderrTail(n = 5): string {
    return this.#stderrTail.slice(-n).join(" | ");
  }

  /** ffmpeg has not taken everything yet: the pipe is full and the sink holds the rest. */
  get pending(): boolean {
    return this.#pending;
  }

  /** True while the sink holds less than the budget: more may be handed over. */
  get hasRoom(): boolean {
    return this.#queued < this.#opts.maxQueuedBytes;
  }

  /** Hands one chunk to ffmpeg; once the pipe is full, what the sink buffers is counted. */
  send(chunk: Uint8Array): void {
    let r: unknown;
    try {
      r = this.#proc.stdin.write(chunk);
    } catch {
      return; // ffmpeg is gone; its exit is handled by the owner
    }
    if (!(r instanceof Promise)) return;
    this.#pending = true;
    this.#queued += chunk.length;
    const token = ++this.#token;
    // The sink flushes in order, so when the latest write settles everything has.
    r.then(
      () => {
        if (token !== this.#token) return;
        this.#pending = false;
        this.#queued = 0;
        this.#opts.onDrain();
      },
      () => {
        // EPIPE: ffmpeg died
        if (token === this.#token) {
          this.#pending = false;
          this.#queued = 0;
        }
        this.#opts.onBroken();
      },
    );
  }

  /** Ends ffmpeg's input: it finishes the file and exits. */
  endInput(): void {
    try {
      const ended = this.#proc.stdin.end();
      if (ended instanceof Promise) ended.catch(() => {});
    } catch {
      // already closed
    }
  }

  /** Kills ffmpeg at once (it hangs); its partial file is left as it is. */
  kill(): void {
    this.#proc.kill("SIGKILL");
  }

  #keep(line: string): void {
    const l = line.trim();
    if (!l) return;
    this.#stderrTail.push(l);
    if (this.#stderrTail.length > STDERR_LINES) this.#stderrTail.shift();
  }
}
