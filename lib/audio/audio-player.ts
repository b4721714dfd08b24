/**
 * The viewer's sound: verified Opus packets in, decoded and played at their time on
 * the chosen output, with the level for the meter, a mute, and the playout time of any
 * capture time so the picture can be shown with its sound.
 *
 * The output is a continuous stream of samples: sample k of it is written for local
 * time `firstSampleAt + k / 48 kHz`. A timer (every TICK_MS) writes up to `now +
 * lead`, taking what the jitter buffer says is due and putting each packet's samples
 * at the position its playout time gives, silence between; so a late timer writes
 * more at once and never shifts the sound (no drift accumulates).
 */
import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { samplesPerPacket } from "../wire/audio-packet.ts";
import { AudioOutput, type AudioOutSpec } from "./audio-output.ts";
import { JitterBuffer, type JitterStats, type PushResult } from "./jitter-buffer.ts";
import { LevelMeter } from "./level-meter.ts";
import { OpusDecoder } from "./opus-decoder.ts";
import type { Logger } from "../log/format.ts";
import { resolveFfmpeg } from "../media/ffmpeg.ts";

/** How often the player writes, ms. */
export const TICK_MS = 10;
/** How far ahead of the clock samples are written, µs: a tick and its lateness for a file, more for a device's pipe. */
const FILE_LEAD_US = 20_000;
const DEVICE_LEAD_US = 40_000;
/** A packet this close to the end of the one before is played right after it (capture stamps may wobble by a few samples). */
const SNAP_SAMPLES = 48;
/** After a stall longer than this, a device skips ahead rather than play the backlog late. */
const MAX_CATCH_UP_US = 200_000;
/**
 * The Opus encoder's lookahead (libopus at 48 kHz: 312 samples, its pre-skip): the
 * decoded sound of a packet stamped with capture time c begins with what was captured
 * 6.5 ms before c, so packets are placed that much earlier to be heard at their time.
 */
export const OPUS_LOOKAHEAD_SAMPLES = 312;
/** Decoded packets waiting for their position, at most. */
const MAX_CHUNKS = 64;

/** What the player counted: the jitter buffer's counters (lib/audio/jitter-buffer.ts) and its own. */
export interface AudioPlayerStats extends Omit<JitterStats, "delayGrown" | "delayShrunk"> {
  /** Packets libopus refused (concealed instead). */
  undecodable: number;
  /** Samples (per channel) of a packet cut because its position had already been written. */
  samplesCut: number;
  /** Samples (per channel) written to the output, silence included. */
  samplesWritten: number;
  /** Samples (per channel) not written after a stall (a device skips ahead). */
  samplesSkipped: number;
  /** The playout delay aimed at above the least transit, ms. */
  targetDelayMs: number;
  /** The output in use. */
  output: string;
}

/** How to open a player. */
export interface AudioPlayerOptions {
  format: AudioFormat;
  output: AudioOutSpec;
  log: Logger;
  /** The local clock, µs since the epoch (lib/wire/frame.ts nowMicros by default). */
  now?: () => number;
  /** Write on a timer (default); false: the caller calls tick() (tests on a fake clock). */
  timer?: boolean;
  /** ffmpeg's path, for pulse and alsa outputs (resolved on first use by default). */
  ffmpeg?: () => string;
  env?: Record<string, string | undefined>;
}

/** Decoded samples and the output position of their first. */
interface Chunk {
  at: number;
  pcm: Int16Array;
}

/** See the file comment. */
export class AudioPlayer implements AsyncDisposable {
  readonly #format: AudioFormat;
  readonly #out: AudioOutput;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #channels: number;
  readonly #lead: number;
  readonly #jitter: JitterBuffer;
  readonly #meter = new LevelMeter();
  #decoder: OpusDecoder;
  /** Local time of output sample 0, µs. */
  readonly #start: number;
  /** Output samples (per channel) written so far. */
  #written = 0;
  #chunks: Chunk[] = [];
  #muted = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #closed = false;
  #buf = new Int16Array(0);
  readonly #own = { undecodable: 0, samplesCut: 0, samplesSkipped: 0 };

  private constructor(opts: AudioPlayerOptions, out: AudioOutput, start: number) {
    this.#format = opts.format;
    this.#out = out;
    this.#log = opts.log;
    this.#now = opts.now ?? nowMicros;
    this.#channels = opts.format.channels;
    this.#start = start;
    this.#lead = out.sink.continuous ? FILE_LEAD_US : DEVICE_LEAD_US;
    // A packet must be here a lead (and a tick late), and its lookahead, before it plays.
    this.#jitter = new JitterBuffer({ marginUs: this.#lead + TICK_MS * 1000 + (OPUS_LOOKAHEAD_SAMPLES * 1000) / 48 });
    this.#decoder = OpusDecoder.create(opts.format.channels);
    if (opts.timer !== false) this.#timer = setInterval(() => this.tick(), TICK_MS);
  }

  /**
   * Opens the output (a WAV file that cannot be created throws; a device that fails
   * falls back, as AudioOutput says) and starts writing: silence until packets come.
   * Logs `audio output started` with the output and `firstSampleAt` (µs).
   */
  static async open(opts: AudioPlayerOptions): Promise<AudioPlayer> {
    const now = opts.now ?? nowMicros;
    const log = opts.log;
    let start = now();
    const out = await AudioOutput.open(opts.output, {
      channels: opts.format.channels, log, firstSampleAt: start, env: opts.env,
      ffmpeg: opts.ffmpeg ?? (() => resolveFfmpeg().path),
    });
    // A device's stream starts now, after the probe; a file's sample 0 is what its header says.
    if (!out.sink.continuous) start = now();
    let player: AudioPlayer;
    try {
      player = new AudioPlayer(opts, out, start);
    } catch (e) {
      await out.close();
      throw e;
    }
    log.info("audio output started", { output: out.sink.name, firstSampleAt: start, channels: opts.format.channels });
    player.tick();
    return player;
  }

  /** Takes a verified packet that arrived at `arrivedAt` (local µs); what the jitter buffer did with it. */
  push(packet: AudioPacket, arrivedAt: number): PushResult {
    if (this.#closed) return "late";
    return this.#jitter.push(packet, arrivedAt);
  }

  /** The server says the audio is gone: silence from now on, and the next packet starts afresh. */
  unavailable(): void {
    this.#jitter.reset();
    this.#chunks = [];
    this.#meter.reset();
    this.#decoder.close();
    this.#decoder = OpusDecoder.create(this.#format.channels);
  }

  /** True while muted: silence is written, the meter still moves. */
  get muted(): boolean {
    return this.#muted;
  }

  set muted(on: boolean) {
    if (on === this.#muted) return;
    this.#muted = on;
    this.#log.info(on ? "audio muted" : "audio unmuted");
  }

  /** Mutes or unmutes; the new state. */
  toggleMute(): boolean {
    this.muted = !this.#muted;
    return this.#muted;
  }

  /** The recent peak of the sound, dBFS (SILENCE_DBFS for silence): the meter's reading. */
  level(): number {
    return this.#meter.level(this.#now());
  }

  /**
   * The local time (µs, the clock of `now`) at which a sample captured at `capturedAt`
   * (the sender's clock, as Frame.capturedAt) is heard; null while no audio plays.
   */
  playoutTimeOf(capturedAt: number): number | null {
    const t = this.#jitter.playoutTimeOf(capturedAt);
    if (t === null) return null;
    // A device plays a sample its latency after the write, which came `lead` before the sample's time.
    const sink = this.#out.sink;
    return sink.continuous ? t : t + Math.max(0, sink.latencyUs - this.#lead);
  }

  /** The counters, for the stats file. */
  /** The stream's format it was opened for. */
  get format(): AudioFormat {
    return this.#format;
  }

  get stats(): AudioPlayerStats {
    const j = this.#jitter.stats;
    return {
      received: j.received, played: j.played, concealed: j.concealed, silent: j.silent, late: j.late, duplicate: j.duplicate, overflow: j.overflow, resyncs: j.resyncs,
      ...this.#own, samplesWritten: this.#written, targetDelayMs: this.#jitter.targetDelayUs / 1000, output: this.#out.sink.name,
    };
  }

  /** Local time of output sample 0, µs. */
  get firstSampleAt(): number {
    return this.#start;
  }

  /** Writes everything due up to now + lead: what the timer calls. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    let target = Math.floor(((now + this.#lead - this.#start) * 48) / 1000);
    if (target <= this.#written) return;
    if (!this.#out.sink.continuous && target - this.#written > (MAX_CATCH_UP_US * 48) / 1000) {
      // A device after a stall: what should have played is gone; carry on from now.
      const skip = target - this.#written - (this.#lead * 48) / 1000;
      this.#written += Math.floor(skip);
      this.#own.samplesSkipped += Math.floor(skip);
    }
    // A packet's samples start OPUS_LOOKAHEAD_SAMPLES before its playout time: take it that much sooner.
    this.#take(this.#start + ((target + OPUS_LOOKAHEAD_SAMPLES - 0.5) * 1000) / 48);
    this.#write(target);
  }

  /** Decodes what is due before `until` (local µs) and queues it at its output position. */
  #take(until: number): void {
    for (const p of this.#jitter.pull(until)) {
      let pcm: Int16Array;
      if (p.kind === "packet") {
        try {
          pcm = this.#decoder.decode(p.packet.data);
        } catch {
          this.#own.undecodable++;
          pcm = this.#conceal(p.packet.samples);
        }
      } else {
        pcm = this.#conceal(p.samples);
      }
      let at = Math.round(((p.playAt - this.#start) * 48) / 1000) - OPUS_LOOKAHEAD_SAMPLES;
      const last = this.#chunks[this.#chunks.length - 1];
      const end = last ? last.at + last.pcm.length / this.#channels : this.#written;
      if (Math.abs(at - end) <= SNAP_SAMPLES) at = end;
      if (this.#chunks.length >= MAX_CHUNKS) this.#chunks.shift();
      this.#chunks.push({ at, pcm });
    }
  }

  #conceal(samples: number): Int16Array {
    try {
      return this.#decoder.conceal(samples || samplesPerPacket(this.#format));
    } catch {
      return new Int16Array(samples * this.#channels);
    }
  }

  /** Writes output positions up to `target`: the chunks where they fall, silence elsewhere. */
  #write(target: number): void {
    const ch = this.#channels;
    const n = target - this.#written;
    if (this.#buf.length < n * ch) this.#buf = new Int16Array(Math.max(n * ch, 4800 * ch));
    const buf = this.#buf.subarray(0, n * ch);
    buf.fill(0);
    // Where this write has got to: a chunk overlapping the one before (the delay shrank) loses its head.
    let pos = this.#written;
    while (this.#chunks.length > 0) {
      const c = this.#chunks[0]!;
      const len = c.pcm.length / ch;
      const from = Math.max(c.at, pos);
      const to = Math.min(c.at + len, target);
      if (c.at < pos) this.#own.samplesCut += Math.min(len, pos - c.at);
      if (from < to) {
        const part = c.pcm.subarray((from - c.at) * ch, (to - c.at) * ch);
        buf.set(part, (from - this.#written) * ch);
        this.#meter.push(part, this.#start + (from * 1000) / 48);
        pos = to;
      }
      if (c.at + len > target) {
        // The rest plays in a later tick: keep it, less what was just written or cut.
        if (c.at < to) this.#chunks[0] = { at: to, pcm: c.pcm.subarray((to - c.at) * ch) };
        break;
      }
      this.#chunks.shift();
    }
    if (this.#muted) buf.fill(0);
    this.#out.write(buf);
    this.#written = target;
  }

  /** Stops writing and closes the output (a WAV file gets its final sizes). */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.tick();
    this.#closed = true;
    this.#decoder.close();
    await this.#out.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
