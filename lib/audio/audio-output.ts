/**
 * Where the viewer's sound goes (`--audio-out`): nowhere, a PulseAudio or ALSA device
 * through an ffmpeg child reading s16le on its stdin, or a WAV file of what would be
 * heard. Each sink takes interleaved 48 kHz s16 samples as the player places them in
 * time; a sink that dies says why, and the output moves on to the next candidate
 * (for `default`: PulseAudio, then ALSA) or to none, once, with a warning.
 */
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Logger } from "../log/format.ts";
import { errorText } from "../errors/error-text.ts";
import { forEachLine } from "../media/line-reader.ts";
import { encodeWavHeader, WAV_DATA_SIZE_OFFSET, WAV_HEADER_BYTES, WAV_RIFF_SIZE_OFFSET } from "./wav-header.ts";

/** What `--audio-out` asks for. */
export type AudioOutSpec =
  | { kind: "default" }
  | { kind: "none" }
  | { kind: "pulse"; device: string | null }
  | { kind: "alsa"; device: string }
  | { kind: "wav"; path: string };

/** The forms `--audio-out` takes, for its help line and error message. */
export const AUDIO_OUT_FORMS = "default, none, pulse[:NAME], alsa[:DEVICE] or wav:FILE";
/** The longest device name or file path taken. */
export const MAX_AUDIO_OUT_NAME = 1024;

/** `--audio-out`'s value read, or the problem with it (a message for `invalid --audio-out=...: <problem>`). */
export function parseAudioOut(raw: string): AudioOutSpec | { problem: string } {
  if (raw === "default" || raw === "none") return { kind: raw };
  if (raw === "pulse") return { kind: "pulse", device: null };
  if (raw === "alsa") return { kind: "alsa", device: "default" };
  const m = /^(pulse|alsa|wav):(.*)$/s.exec(raw);
  if (!m) return { problem: `expected ${AUDIO_OUT_FORMS}` };
  const [, kind, name] = m as unknown as [string, "pulse" | "alsa" | "wav", string];
  if (name === "") return { problem: `${kind}: needs a ${kind === "wav" ? "file" : "device"} name after the colon` };
  if (name.length > MAX_AUDIO_OUT_NAME) return { problem: `the name is longer than ${MAX_AUDIO_OUT_NAME} characters` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return { problem: "the name has control characters" };
  if (kind === "wav") return { kind, path: name };
  if (name.startsWith("-")) return { problem: "a device name cannot start with '-'" };
  return kind === "pulse" ? { kind, device: name } : { kind, device: name };
}

/** The spec as `--audio-out` spells it. */
export function audioOutText(spec: AudioOutSpec): string {
  switch (spec.kind) {
    case "default":
    case "none":
      return spec.kind;
    case "pulse":
      return spec.device === null ? "pulse" : `pulse:${spec.device}`;
    case "alsa":
      return `alsa:${spec.device}`;
    case "wav":
      return `wav:${spec.path}`;
  }
}

/** One place the samples go. */
export interface AudioSink {
  /** As `--audio-out` spells it: "pulse:lc", "wav:out.wav", "none". */
  readonly name: string;
  /** From a sample's write to its being heard, µs (an estimate for a device; 0 for a file, whose positions are its times). */
  readonly latencyUs: number;
  /** True when every sample position must be written, a long stall included (a file); a device skips ahead instead. */
  readonly continuous: boolean;
  /** Why the sink stopped taking samples; null while it works. */
  readonly failure: string | null;
  /** Hands over interleaved samples; never throws (a failure is kept in `failure`). */
  write(pcm: Int16Array): void;
  close(): Promise<void>;
}

/** Takes everything, plays nothing. */
export class NullSink implements AudioSink {
  readonly name = "none";
  readonly latencyUs = 0;
  readonly continuous = false;
  readonly failure = null;
  write(): void {}
  async close(): Promise<void> {}
}

/** How often the sizes in a WAV header are brought up to date, µs of audio. */
const WAV_HEADER_EVERY_BYTES = 48_000 * 2 * 0.1;

/**
 * A WAV file of what would be heard: every sample position from the first, silence
 * included, so sample i plays at `firstSampleAt + i / 48000` s; the header says
 * firstSampleAt (lib/audio/wav-header.ts) and its sizes follow the data every 100 ms,
 * so a viewer that is killed leaves a file that reads to within 100 ms of its end.
 */
export class WavSink implements AudioSink {
  readonly name: string;
  readonly latencyUs = 0;
  readonly continuous = true;
  #failure: string | null = null;
  #fd: number | null;
  readonly #channels: number;
  readonly #firstSampleAt: number;
  #dataBytes = 0;
  #headerAt = 0;

  /** Creates (or truncates) `path` and writes its header; throws when it cannot. */
  constructor(path: string, channels: number, firstSampleAt: number) {
    this.name = `wav:${path}`;
    this.#channels = channels;
    this.#firstSampleAt = firstSampleAt;
    this.#fd = openSync(path, "w");
    try {
      writeSync(this.#fd, encodeWavHeader({ channels, sampleRate: 48_000, firstSampleAt, dataBytes: 0 }));
    } catch (e) {
      closeSync(this.#fd);
      throw e;
    }
  }

  get failure(): string | null {
    return this.#failure;
  }

  /** Data bytes written so far. */
  get dataBytes(): number {
    return this.#dataBytes;
  }

  write(pcm: Int16Array): void {
    if (this.#fd === null || pcm.length === 0) return;
    try {
      writeSync(this.#fd, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength), 0, pcm.byteLength, WAV_HEADER_BYTES + this.#dataBytes);
      this.#dataBytes += pcm.byteLength;
      if (this.#dataBytes - this.#headerAt >= WAV_HEADER_EVERY_BYTES) this.#sizes();
    } catch (e) {
      this.#failure = `cannot write the WAV file: ${errorText(e)}`;
      this.#shut();
    }
  }

  async close(): Promise<void> {
    if (this.#fd === null) return;
    try {
      this.#sizes();
      fsyncSync(this.#fd);
    } catch {
      // the failure was kept by the write that met it
    }
    this.#shut();
  }

  /** Brings the RIFF and data sizes up to what is written. */
  #sizes(): void {
    if (this.#fd === null) return;
    const header = encodeWavHeader({ channels: this.#channels, sampleRate: 48_000, firstSampleAt: this.#firstSampleAt, dataBytes: this.#dataBytes });
    writeSync(this.#fd, header, WAV_RIFF_SIZE_OFFSET, 4, WAV_RIFF_SIZE_OFFSET);
    writeSync(this.#fd, header, WAV_DATA_SIZE_OFFSET, 4, WAV_DATA_SIZE_OFFSET);
    this.#headerAt = this.#dataBytes;
  }

  #shut(): void {
    if (this.#fd === null) return;
    try {
      closeSync(this.#fd);
    } catch {
      // nothing more to do with it
    }
    this.#fd = null;
  }
}

/** PulseAudio's buffer, ms: what ffmpeg asks the server to hold (its default holds seconds). */
export const PULSE_BUFFER_MS = 60;
/** Most bytes handed to ffmpeg that its pipe has not taken yet; beyond it samples are dropped (ffmpeg stalled). */
const DEVICE_MAX_QUEUED_BYTES = 48_000 * 2 * 2 * 0.5;
/** ffmpeg's last stderr lines kept for the log. */
const STDERR_LINES = 5;

/**
 * A PulseAudio or ALSA device fed through an ffmpeg child reading s16le on stdin.
 * Writes are bounded: while the pipe is full, samples are dropped and counted.
 */
export class DeviceSink implements AudioSink {
  readonly name: string;
  readonly latencyUs: number;
  readonly continuous = false;
  /** Samples dropped because ffmpeg did not take them in time. */
  droppedBytes = 0;
  readonly #proc: Subprocess<"pipe", "ignore", "pipe">;
  readonly #stderr: string[] = [];
  readonly #stderrDone: Promise<void>;
  #failure: string | null = null;
  #closing = false;
  #queued = 0;
  #token = 0;

  /** Starts ffmpeg for `spec`; throws when it cannot be spawned. */
  constructor(spec: { kind: "pulse"; device: string | null } | { kind: "alsa"; device: string }, channels: number, ffmpeg: string) {
    this.name = audioOutText(spec);
    // From the write to the ear: the server's buffer (pactl showed 61.5 ms of "Buffer Latency"
    // for PULSE_BUFFER_MS 60; ALSA's an estimate), and ffmpeg's reads of 1024 samples (10 ms on average).
    this.latencyUs = (spec.kind === "pulse" ? PULSE_BUFFER_MS : 40) * 1000 + 10_000;
    const input = ["-f", "s16le", "-ar", "48000", "-ac", String(channels), "-i", "pipe:0"];
    const output = spec.kind === "pulse"
      ? ["-f", "pulse", "-buffer_duration", String(PULSE_BUFFER_MS), ...(spec.device === null ? [] : ["-device", spec.device]), "-name", "lancam", "lancam"]
      : ["-f", "alsa", spec.device];
    const args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-probesize", "32", "-analyzeduration", "0", "-fflags", "nobuffer", ...input, ...output];
    // Its own process group: a Ctrl-C at the terminal is lancam's to handle.
    this.#proc = Bun.spawn(args, { stdin: "pipe", stdout: "ignore", stderr: "pipe", detached: true });
    this.#stderrDone = forEachLine(this.#proc.stderr, (line) => {
      const l = line.trim();
      if (!l) return;
      this.#stderr.push(l);
      if (this.#stderr.length > STDERR_LINES) this.#stderr.shift();
    });
    void this.#proc.exited.then(async (code) => {
      if (this.#closing) return;
      await this.#stderrDone;
      this.#failure ??= `ffmpeg ended (exit ${code ?? this.#proc.signalCode})${this.#stderr.length ? `: ${this.#stderr.join(" | ")}` : ""}`;
    });
  }

  get failure(): string | null {
    return this.#failure;
  }

  /** The child's pid (tests). */
  get pid(): number {
    return this.#proc.pid;
  }

  write(pcm: Int16Array): void {
    if (this.#failure !== null || this.#closing || pcm.length === 0) return;
    if (this.#queued >= DEVICE_MAX_QUEUED_BYTES) {
      this.droppedBytes += pcm.byteLength;
      return;
    }
    let pending: Promise<unknown>[];
    try {
      // A copy: the pipe may hold it past this call, and the player reuses its buffer.
      const written = this.#proc.stdin.write(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength).slice());
      const flushed = this.#proc.stdin.flush();
      pending = [written, flushed].filter((r): r is Promise<number> => r instanceof Promise);
    } catch (e) {
      this.#failure ??= `cannot write to ffmpeg: ${errorText(e)}`;
      return;
    }
    if (pending.length === 0) return;
    this.#queued += pcm.byteLength;
    const token = ++this.#token;
    // The pipe drains in order, so when the latest write has gone everything has.
    Promise.all(pending).then(
      () => {
        if (token === this.#token) this.#queued = 0;
      },
      (e: unknown) => {
        this.#failure ??= `cannot write to ffmpeg: ${errorText(e)}`;
      },
    );
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    try {
      const ended = this.#proc.stdin.end();
      if (ended instanceof Promise) ended.catch(() => {});
    } catch {
      // already closed
    }
    // ffmpeg drains PulseAudio's buffer before it exits; a hung one is killed.
    const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 2000);
    await this.#proc.exited;
    clearTimeout(timer);
  }
}

/** Where a PulseAudio client would connect: $PULSE_SERVER's unix socket, else the user's runtime folder's. */
function pulseSocket(env: Record<string, string | undefined>): string | null {
  const server = env.PULSE_SERVER;
  if (server) {
    const unix = /^(?:unix:)?(\/\S+)$/.exec(server);
    return unix ? unix[1]! : null;
  }
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, "pulse", "native") : null;
}

/**
 * True when a PulseAudio server accepts a connection within `timeoutMs` (its unix
 * socket answers). A TCP $PULSE_SERVER is trusted as given. Never starts a server.
 */
export async function pulseAnswers(env: Record<string, string | undefined> = process.env, timeoutMs = 500): Promise<boolean> {
  if (env.PULSE_SERVER && pulseSocket(env) === null) return true;
  const path = pulseSocket(env);
  if (!path) return false;
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** What an AudioOutput needs besides the spec. */
export interface AudioOutputOptions {
  channels: number;
  log: Logger;
  /** ffmpeg's path (lib/media/ffmpeg.ts resolves it); needed for pulse and alsa. */
  ffmpeg: () => string;
  /** Local wall-clock time of the first sample written, µs (the WAV header says it). */
  firstSampleAt: number;
  env?: Record<string, string | undefined>;
}

/**
 * The sink the player writes to, and what follows when it fails: for `default`,
 * PulseAudio (when a server answers), then ALSA's default device, then none; for
 * anything named, none. Each failure is logged once; after the last the sound is
 * dropped (said once) and the picture goes on.
 */
export class AudioOutput {
  #sink: AudioSink;
  readonly #next: (() => AudioSink)[];
  readonly #log: Logger;
  #saidNone = false;

  private constructor(first: AudioSink, next: (() => AudioSink)[], log: Logger) {
    this.#sink = first;
    this.#next = next;
    this.#log = log;
  }

  /** Opens the first sink that opens; a file that cannot be created throws (the user named it). */
  static async open(spec: AudioOutSpec, opts: AudioOutputOptions): Promise<AudioOutput> {
    const { channels, log } = opts;
    const device = (s: { kind: "pulse"; device: string | null } | { kind: "alsa"; device: string }) => () => new DeviceSink(s, channels, opts.ffmpeg());
    let candidates: (() => AudioSink)[];
    switch (spec.kind) {
      case "none":
        return new AudioOutput(new NullSink(), [], log);
      case "wav":
        return new AudioOutput(new WavSink(spec.path, channels, opts.firstSampleAt), [], log);
      case "pulse":
      case "alsa":
        candidates = [device(spec)];
        break;
      case "default":
        candidates = (await pulseAnswers(opts.env)) ? [device({ kind: "pulse", device: null })] : [];
        candidates.push(device({ kind: "alsa", device: "default" }));
        break;
    }
    const out = new AudioOutput(new NullSink(), candidates, log);
    out.#advance(null);
    log.info("audio output", { output: out.#sink.name });
    return out;
  }

  /** The sink in use. */
  get sink(): AudioSink {
    return this.#sink;
  }

  /** Hands samples to the sink; when it has failed, moves on (and writes them there). */
  write(pcm: Int16Array): void {
    if (this.#sink.failure !== null) this.#advance(this.#sink);
    this.#sink.write(pcm);
  }

  async close(): Promise<void> {
    await this.#sink.close();
  }

  /** Replaces a failed (or the initial null) sink with the next that starts, else none. */
  #advance(failed: AudioSink | null): void {
    if (failed) {
      this.#log.warn("audio output failed", { output: failed.name, error: failed.failure ?? undefined });
      void failed.close();
    }
    while (this.#next.length > 0) {
      const make = this.#next.shift()!;
      try {
        this.#sink = make();
        return;
      } catch (e) {
        this.#log.warn("audio output cannot start", { error: errorText(e) });
      }
    }
    this.#sink = new NullSink();
    if (this.#saidNone) return;
    this.#saidNone = true;
    this.#log.warn("no audio output works: the sound is not played; the picture goes on");
  }
}
