/**
 * The server's audio: one ffmpeg process that reads the `--audio` source, encodes it
 * with libopus (20 ms packets) and writes Ogg with one packet per page on its stdout,
 * which OggReader turns back into packets. Each packet gets its number and the capture
 * time of the first input sample it encodes (lib/audio/capture-clock.ts says why):
 *
 * - test: the test tone is made here and written to ffmpeg's stdin in real time, so
 *   every sample's capture time is known exactly, and so is every packet's.
 * - pulse, alsa, default: a live device. Packet times come from counting samples,
 *   tied to the wall clock by EnvelopeClock, less the pipeline's measured latency.
 * - file: the `--source` file's first audio track, read at its own pace (-re).
 *
 * A source that cannot be opened fails the start with AudioDeviceError (exit 2). One
 * that stops later (a device unplugged, ffmpeg killed) is tried again with backoff;
 * onAvailability says when it went and when it came back. Packet numbers never go
 * back, across restarts too: a packet's number is its cipher nonce.
 */
import type { Subprocess } from "bun";
import { UserError } from "../errors/user-error.ts";
import type { Logger } from "../log/format.ts";
import { silentLogger } from "../log/logger.ts";
import { resolveFfmpeg } from "../media/ffmpeg.ts";
import { OggReader } from "../mux/ogg.ts";
import { decodeOpusHead } from "../mux/ogg-opus.ts";
import { nowMicros } from "../wire/frame.ts";
import { DEFAULT_AUDIO_FORMAT, MAX_OPUS_PACKET, samplesPerPacket, type AudioFormat, type AudioPacket } from "../wire/audio-packet.ts";
import { audioFilePath, audioSourceSpelling, type AudioSourceSpec, type VideoSourceKind } from "./audio-source.ts";
import { EnvelopeClock, OPUS_RATE, StreamPosition, type PositionMode } from "./capture-clock.ts";
import { opusPacketSamples } from "../wire/opus-toc.ts";
import { microsOfSample, sampleAtMicros, testToneSamples } from "./test-tone.ts";

/** An audio source that does not exist or cannot be opened; exit status 2, like a bad flag. */
export class AudioDeviceError extends UserError {
  override name = "AudioDeviceError";

  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

/** How the user finds the devices there are. */
export const LIST_AUDIO_DEVICES = "list them with `pactl list short sources` (PulseAudio, for --audio pulse:NAME) or `arecord -L` (ALSA, for --audio alsa:DEVICE)";

/** How long a start may take before the source counts as not opening: ffmpeg starts in seconds on a busy machine. */
export const AUDIO_START_DEADLINE_MS = 10_000;
/** Waits between tries to reopen a source that stopped: doubling from the first to the last, as for cameras. */
export const AUDIO_RETRY_MS = { first: 250, max: 2000 } as const;
/** How long a stop waits for ffmpeg to end by itself before it is killed. */
const STOP_GRACE_MS = 2000;
/** Last bytes of ffmpeg's stderr kept for error messages. */
const STDERR_KEEP = 4096;
/** How often the test tone is written to ffmpeg, ms. */
const TONE_TICK_MS = 10;
/** Most of the test tone written at once after a stall, samples (the rest follows at the next tick). */
const TONE_MAX_WRITE = OPUS_RATE;

/**
 * What a live device adds to the shortest delay between a sample's capture and its
 * packet leaving ffmpeg, beyond the encoder's own (encoderDelayMicros): the device's
 * buffering and the pipes, µs. Measured by playing the test tone into a PulseAudio null
 * sink and capturing its monitor (tests/audio-capture-pulse.test.ts prints it): with this
 * value, beeps were stamped -11 to +25 ms from the second they were played for, over 15
 * runs, which includes the player's own buffering (10 to 50 ms asked of pacat).
 */
export const LIVE_EXTRA_LATENCY_MICROS = 10_000;

/**
 * The encoder's part of the shortest delay, µs: packet i encodes input samples from
 * 960 i on, and libopus gives it out only once it has looked the pre-skip past its
 * end: a packet plus the pre-skip after its capture time.
 */
export function encoderDelayMicros(format: AudioFormat, preSkip: number): number {
  return ((samplesPerPacket(format) + preSkip) * 1e6) / OPUS_RATE;
}

/** Options of openAudioCapture. */
export interface AudioCaptureOptions {
  /** The stream to make (DEFAULT_AUDIO_FORMAT unless said). */
  format?: AudioFormat;
  /** The video source, for `--audio file`. */
  videoSource?: VideoSourceKind;
  /** Replay a file from the start when it ends (the server's --loop). */
  loop?: boolean;
  log?: Logger;
  /** Called with every packet, in order. */
  onPacket: (packet: AudioPacket) => void;
  /** The source stopped and is being retried (false), or delivers again (true). */
  onAvailability?: (available: boolean) => void;
  /** ffmpeg's environment beyond this process's (PULSE_SERVER, for example). */
  env?: Record<string, string>;
  /** How long the first start may take (AUDIO_START_DEADLINE_MS). */
  startDeadlineMs?: number;
  /** The clock, µs since the epoch (nowMicros). */
  now?: () => number;
}

/** What the capture has done, updated in place. */
export interface AudioCaptureStats {
  packets: number;
  bytes: number;
  /** Times ffmpeg was started again after the source stopped. */
  restarts: number;
  /** Times the source stopped while running. */
  outages: number;
  /** Packets ffmpeg gave that were not valid Opus or too large: never passed on. */
  badPackets: number;
}

/** A running audio capture. */
export interface AudioCapture extends AsyncDisposable {
  readonly format: AudioFormat;
  /** "test", "pulse:NAME", "alsa:DEVICE", "file:PATH"; for `default`, which one it found. */
  readonly description: string;
  readonly stats: Readonly<AudioCaptureStats>;
  /** The running ffmpeg's process id, null between tries (for diagnostics and tests). */
  readonly pid: number | null;
  /** Resolves when the capture has ended: a file without --loop at its end, or close(). */
  readonly ended: Promise<void>;
  /** Stops ffmpeg (gracefully, then by force) and ends the capture. */
  close(): Promise<void>;
}

/** One concrete input for ffmpeg: what `default` and `file` resolve to. */
export type AudioInput =
  | { kind: "test" }
  | { kind: "pulse"; name: string }
  | { kind: "alsa"; device: string }
  | { kind: "file"; path: string; loop: boolean };

/** How an input is named in messages and `description`. */
export function describeAudioInput(input: AudioInput): string {
  switch (input.kind) {
    case "test": return "test";
    case "pulse": return `pulse:${input.name}`;
    case "alsa": return `alsa:${input.device}`;
    case "file": return `file:${input.path}`;
  }
}

/** ffmpeg's command line (without the program) for `input` encoded as `format` to Ogg Opus on stdout. */
export function ffmpegAudioArgs(input: AudioInput, format: AudioFormat): string[] {
  const ch = String(format.channels);
  const rate = String(format.sampleRate);
  const head = ["-hide_banner", "-loglevel", "error", "-nostats"];
  let inputArgs: string[];
  switch (input.kind) {
    case "test":
      inputArgs = ["-f", "s16le", "-ar", rate, "-ac", ch, "-i", "pipe:0"];
      break;
    case "pulse":
      // One packet's worth per fragment: the device hands samples over as soon as a packet can be made.
      inputArgs = ["-nostdin", "-f", "pulse", "-sample_rate", rate, "-channels", ch, "-fragment_size", String(format.channels * 2 * (format.sampleRate * format.frameMs) / 1000), "-i", input.name];
      break;
    case "alsa":
      inputArgs = ["-nostdin", "-f", "alsa", "-sample_rate", rate, "-channels", ch, "-i", input.device];
      break;
    case "file":
      inputArgs = ["-nostdin", "-re", ...(input.loop ? ["-stream_loop", "-1"] : []), "-i", input.path, "-map", "0:a:0"];
      break;
  }
  return [
    ...head, ...inputArgs, "-vn", "-ac", ch, "-ar", rate,
    "-c:a", "libopus", "-b:a", String(format.bitrate), "-vbr", "on", "-frame_duration", String(format.frameMs), "-application", "audio",
    "-f", "ogg", "-page_duration", String(format.frameMs * 1000), "-flush_packets", "1", "pipe:1",
  ];
}

/**
 * How packet times are made for an input: which position, and the delay the envelope
 * cannot see beyond the encoder's (null for the test tone, whose times are exact). A
 * file read with -re comes out of its demuxer a source packet early, which the encoder
 * delay leaves as a small lead.
 */
function timing(input: AudioInput): { mode: PositionMode; extra: number | null } {
  switch (input.kind) {
    case "test": return { mode: "granule", extra: null };
    case "file": return { mode: "granule", extra: 0 };
    default: return { mode: "count", extra: LIVE_EXTRA_LATENCY_MICROS };
  }
}

/** The outcome of one ffmpeg start. */
type StartResult = { kind: "started" } | { kind: "failed"; why: string };

/**
 * One ffmpeg process: spawned, read, stopped. It calls `packet` with each audio packet
 * (number and time still to come) and settles `started` at the first one, or with the
 * reason it failed before (an exit, a broken pipe, the deadline).
 */
class FfmpegRun {
  readonly proc: Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  readonly started: Promise<StartResult>;
  /** Resolves when the process has exited and its output is read. */
  readonly done: Promise<void>;
  #stderr = "";
  #stopping = false;
  #settle!: (r: StartResult) => void;
  #settled = false;
  #toneTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    ffmpeg: string,
    readonly input: AudioInput,
    format: AudioFormat,
    env: Record<string, string> | undefined,
    deadlineMs: number,
    now: () => number,
    packet: (p: { data: Uint8Array; samples: number; capturedAt: number }) => void,
    bad: () => void,
  ) {
    this.started = new Promise((resolve) => (this.#settle = resolve));
    const tone = input.kind === "test";
    this.proc = Bun.spawn([ffmpeg, ...ffmpegAudioArgs(input, format)], {
      stdin: tone ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...env },
    }) as Subprocess<"pipe" | "ignore", "pipe", "pipe">;
    const deadline = setTimeout(() => this.#fail(`no audio within ${deadlineMs / 1000} s`), deadlineMs);
    const { mode, extra } = timing(input);
    let firstSample = 0;
    if (tone) firstSample = this.#writeTone(format.channels, now);
    const reading = this.#read(format, mode, extra, (data, position, clock, arrival) => {
      const samples = (() => {
        try {
          return opusPacketSamples(data);
        } catch {
          return null;
        }
      })();
      if (samples === null || data.length > MAX_OPUS_PACKET) {
        bad();
        return;
      }
      const at = position.push(samples, arrival.granule);
      const capturedAt = clock === null ? microsOfSample(firstSample + at) : clock.push((at * 1e6) / OPUS_RATE, arrival.at);
      if (!this.#settled) {
        this.#settled = true;
        this.#settle({ kind: "started" });
      }
      packet({ data, samples, capturedAt });
    }, now);
    const stderr = this.#collectStderr();
    this.done = Promise.all([reading, stderr, this.proc.exited]).then(() => {
      clearTimeout(deadline);
      this.#stopTone();
      this.#fail(this.exitReason());
    });
  }

  /** What ffmpeg said (its last few error lines, one line), or how it ended. */
  exitReason(): string {
    const how = this.proc.signalCode ? `killed by ${this.proc.signalCode}` : this.proc.exitCode === null ? "still running" : `exit status ${this.proc.exitCode}`;
    const said = ffmpegSaid(this.#stderr);
    return said ? `${said} (ffmpeg ${how})` : `ffmpeg ended (${how})`;
  }

  /** Everything ffmpeg wrote to stderr (its last STDERR_KEEP bytes). */
  get stderr(): string {
    return this.#stderr;
  }

  /** Whether stop() was asked for. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Ends ffmpeg: the tone's input closed (or SIGINT for a device), then SIGKILL after a grace time. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopTone();
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      if (this.input.kind === "test") void Promise.resolve((this.proc.stdin as import("bun").FileSink).end()).catch(() => undefined);
      else this.proc.kill("SIGINT");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), STOP_GRACE_MS)));
    if ((await Promise.race([this.done, late])) === "late") this.proc.kill("SIGKILL");
    clearTimeout(timer);
    await this.done;
  }

  #fail(why: string): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#settle({ kind: "failed", why });
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }

  /** Writes the test tone to stdin as its samples come due; returns the epoch sample of the first. */
  #writeTone(channels: 1 | 2, now: () => number): number {
    const sink = this.proc.stdin as import("bun").FileSink;
    // A multiple of 6 samples is a whole number of µs (6 samples = 125 µs), and so is
    // every packet's start after it (960 and libopus's pre-skip, 312, are multiples of 6).
    const start = sampleAtMicros(now());
    const first = start - (start % 6);
    let next = first;
    const tick = () => {
      const due = sampleAtMicros(now());
      if (due <= next) return;
      const count = Math.min(due - next, TONE_MAX_WRITE);
      const pcm = testToneSamples(next, count, channels);
      next += count;
      try {
        sink.write(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
        void Promise.resolve(sink.flush()).catch(() => undefined);
      } catch {
        // ffmpeg has gone: its exit is noticed by `done`.
        this.#stopTone();
      }
    };
    this.#toneTimer = setInterval(tick, TONE_TICK_MS);
    return first;
  }

  #stopTone(): void {
    if (this.#toneTimer !== undefined) clearInterval(this.#toneTimer);
    this.#toneTimer = undefined;
  }

  async #read(
    format: AudioFormat,
    mode: PositionMode,
    extra: number | null,
    onPacket: (data: Uint8Array, position: StreamPosition, clock: EnvelopeClock | null, arrival: { at: number; granule: bigint }) => void,
    now: () => number,
  ): Promise<void> {
    const reader = new OggReader();
    let position: StreamPosition | null = null;
    let clock: EnvelopeClock | null = null;
    let headers = 0;
    try {
      for await (const chunk of this.proc.stdout) {
        const at = now();
        for (const p of reader.push(chunk)) {
          if (headers === 0) {
            const head = decodeOpusHead(p.data);
            if (head.channels !== format.channels) throw new Error(`ffmpeg made ${head.channels} channels, not ${format.channels}`);
            position = new StreamPosition(mode);
            if (extra !== null) clock = new EnvelopeClock(encoderDelayMicros(format, head.preSkip) + extra);
            headers++;
          } else if (headers === 1) {
            headers++; // OpusTags
          } else {
            onPacket(p.data, position!, clock, { at, granule: p.granule });
          }
        }
      }
    } catch (e) {
      // A broken stream means a broken pipe: this run is over, the capture decides what next.
      this.#stderr += `\n${e instanceof Error ? e.message : String(e)}`;
      this.proc.kill("SIGKILL");
    }
  }

  async #collectStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stderr) {
      this.#stderr = (this.#stderr + decoder.decode(chunk, { stream: true })).slice(-STDERR_KEEP);
    }
  }
}

/** The last SAID_LINES distinct lines of ffmpeg's errors, without their `[alsa @ 0x...]` prefixes or its advice on -map, on one line. */
export function ffmpegSaid(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/^\[[^\]]* @ 0x[0-9a-f]+\]\s*/, "").trim()).filter((l) => l !== "" && !l.startsWith("To ignore this"));
  const text = [...new Set(lines)].slice(-SAID_LINES).join("; ");
  return text.length > SAID_MAX ? `...${text.slice(-SAID_MAX)}` : text;
}

const SAID_LINES = 3;
const SAID_MAX = 400;

/** The inputs to try, in order, for `spec` (two for `default`: PulseAudio's, then ALSA's). */
function inputsFor(spec: AudioSourceSpec, opts: AudioCaptureOptions): AudioInput[] {
  switch (spec.kind) {
    case "test": return [{ kind: "test" }];
    case "pulse": return [{ kind: "pulse", name: spec.name }];
    case "alsa": return [{ kind: "alsa", device: spec.device }];
    case "default": return [{ kind: "pulse", name: "default" }, { kind: "alsa", device: "default" }];
    case "file": return [{ kind: "file", path: audioFilePath(spec, opts.videoSource)!, loop: opts.loop ?? false }];
  }
}

/** The message for a source none of whose inputs opened. */
function openFailure(spec: AudioSourceSpec, tried: { input: AudioInput; why: string; stderr: string }[]): string {
  const said = tried.length === 1 ? tried[0]!.why : tried.map((t) => `${describeAudioInput(t.input)}: ${t.why}`).join("; ");
  if (spec.kind === "file") {
    const path = (tried[0]!.input as { path: string }).path;
    if (/matches no streams/i.test(tried[0]!.stderr)) return `--audio file: ${path} has no audio track; give --audio another source, or a --source file with sound`;
    return `--audio file: cannot read the audio of ${path}: ${said}`;
  }
  if (spec.kind === "test") return `--audio test: the audio encoder did not start: ${said}`;
  const which = spec.kind === "default" ? "the default audio input (PulseAudio, then ALSA)" : `audio device ${audioSourceSpelling(spec)}`;
  return `cannot open ${which}: ${said}; ${LIST_AUDIO_DEVICES}`;
}

/**
 * Starts capturing `spec`: resolves once packets flow, or throws AudioDeviceError when
 * the source cannot be opened (AudioSpecError for `file` without a video file).
 */
export async function openAudioCapture(spec: AudioSourceSpec, opts: AudioCaptureOptions): Promise<AudioCapture> {
  const format = opts.format ?? DEFAULT_AUDIO_FORMAT;
  const log = (opts.log ?? silentLogger).child("audio");
  const now = opts.now ?? nowMicros;
  const ffmpeg = resolveFfmpeg().path;
  const inputs = inputsFor(spec, opts);
  const stats: AudioCaptureStats = { packets: 0, bytes: 0, restarts: 0, outages: 0, badPackets: 0 };
  let seq = 0;
  let run: FfmpegRun | null = null;
  let closed = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let endedResolve!: () => void;
  const ended = new Promise<void>((resolve) => (endedResolve = resolve));

  const start = (input: AudioInput, deadlineMs: number): FfmpegRun =>
    new FfmpegRun(ffmpeg, input, format, opts.env, deadlineMs, now, (p) => {
      if (closed) return;
      stats.packets++;
      stats.bytes += p.data.length;
      const packet: AudioPacket = { seq, capturedAt: p.capturedAt, samples: p.samples, data: p.data };
      seq = (seq + 1) >>> 0;
      opts.onPacket(packet);
    }, () => stats.badPackets++);

  // The first start: each input in turn until one delivers.
  const tried: { input: AudioInput; why: string; stderr: string }[] = [];
  let input: AudioInput | null = null;
  for (const candidate of inputs) {
    const r = start(candidate, opts.startDeadlineMs ?? AUDIO_START_DEADLINE_MS);
    const result = await r.started;
    if (result.kind === "started") {
      run = r;
      input = candidate;
      break;
    }
    await r.done;
    tried.push({ input: candidate, why: result.why, stderr: r.stderr });
  }
  if (!run || !input) throw new AudioDeviceError(openFailure(spec, tried));
  const chosen = input;
  const description = spec.kind === "default" ? `default (${describeAudioInput(chosen)})` : describeAudioInput(chosen);
  log.info("opened audio", { source: description, codec: format.codec, channels: format.channels, bitrate: format.bitrate, frameMs: format.frameMs });

  /** Watches a running ffmpeg; when it ends unasked, tries again with backoff. */
  const watch = async (r: FfmpegRun): Promise<void> => {
    await r.done;
    if (closed || r.stopping) return;
    if (chosen.kind === "file" && !chosen.loop && r.proc.exitCode === 0) {
      log.info("audio file ended", { source: description, packets: stats.packets });
      run = null;
      endedResolve();
      return;
    }
    stats.outages++;
    run = null;
    log.warn("audio source stopped; trying again", { source: description, reason: r.exitReason() });
    opts.onAvailability?.(false);
    let wait: number = AUDIO_RETRY_MS.first;
    for (;;) {
      await new Promise<void>((resolve) => (retryTimer = setTimeout(resolve, wait)));
      if (closed) return;
      const again = start(chosen, AUDIO_START_DEADLINE_MS);
      run = again;
      const result = await again.started;
      if (closed) return;
      if (result.kind === "started") {
        stats.restarts++;
        log.info("audio source is back", { source: description, restarts: stats.restarts });
        opts.onAvailability?.(true);
        void watch(again);
        return;
      }
      await again.done;
      run = null;
      log.debug("audio source still away", { source: description, reason: result.why });
      wait = Math.min(wait * 2, AUDIO_RETRY_MS.max);
    }
  };
  void watch(run);

  const close = async () => {
    if (closed) return;
    closed = true;
    clearTimeout(retryTimer);
    const r = run;
    run = null;
    if (r) await r.stop();
    log.info("closed audio", { source: description, packets: stats.packets, restarts: stats.restarts });
    endedResolve();
  };
  return {
    format,
    description,
    stats,
    get pid() {
      return run?.proc.exitCode === null ? run.proc.pid : null;
    },
    ended,
    close,
    [Symbol.asyncDispose]: close,
  };
}
