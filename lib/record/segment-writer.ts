import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync } from "node:fs";
import { resolve } from "node:path";
import type { Logger } from "../log/format.ts";
import type { Frame } from "../wire/frame.ts";
import type { AudioFormat, AudioPacket } from "../wire/audio-packet.ts";
import { MAX_OPUS_PACKET } from "../wire/audio-packet.ts";
import { AudioRouter } from "./audio-router.ts";
import { resolveFfmpeg, resolveFfprobe } from "../media/ffmpeg.ts";
import { OpenPartials } from "./open-partials.ts";
import { OpenSegment } from "./open-segment.ts";
import { claimOutDir } from "./out-dir-lock.ts";
import { checkWritable, recordAdvice, type RecordCliFlags, RecordError } from "./record-dir.ts";
import { Retention, type RetentionEnv } from "./retention.ts";
import { type Container, FFMPEG_FORMAT, finalPathFor, freeSegmentPaths, type SegmentPaths } from "./segment-naming.ts";
import { segmentArgs } from "./segment-process.ts";
import { recoverPartial, recoverPartials } from "./segment-recovery.ts";
import { type RotationReason, SegmentTimeline } from "./segment-timeline.ts";
import { errorText } from "../errors/error-text.ts";

/**
 * Records frames into rolling segments with ffmpeg (stream copy, never re-encoded).
 *
 *   write(frame) ──> SegmentTimeline (which segment, which slot) ──> OpenSegment (one per segment)
 *                                                                      │ AVI: GapFiller repeats, then the frame
 *                                                                      │ mkv: MkvStream blocks at capture times
 *                                                                      └─> SegmentProcess: ffmpeg, stdin pipe
 *                                                                           └─> <out>/<date>/.<HH-MM-SS>.<ext>.partial
 *   rotation / close: stdin.end, wait for exit, rename to <HH-MM-SS>.<ext>; a dead ffmpeg's partial is repaired.
 *
 * With an audio format, writeAudio(packet) records Opus packets into the same segments, in sync
 * by capture time: AudioRouter (audio-router.ts) picks each packet's segment, SegmentAudio
 * (segment-audio.ts) its place in the segment's continuous track, and frames and packets reach
 * ffmpeg together in one live Matroska stream (Matroska keeps the Opus, AVI gets PCM; see
 * AUDIO_CODEC in segment-process.ts for why). A segment whose video has ended waits a little for
 * its last audio (AUDIO_WAIT_MICROS) before it is finished.
 *
 * The writer owns what spans segments: naming (with OpenPartials, the segments not finished yet),
 * retention, repair, and the retry backoff after ffmpeg failures, paced by an injected clock. The
 * timing rules (the 2 s hole that starts a new segment, AVI gap filling) live in
 * segment-timeline.ts. write() never throws and never waits: once ffmpeg's pipe is full and a
 * small budget (maxQueuedBytes) waits behind it, new frames are dropped and counted, so memory
 * stays bounded however slow ffmpeg or the disk is.
 */

/** One finished segment. */
export interface SegmentInfo {
  path: string;
  /** Capture time of its first frame, µs since the epoch. */
  startedAt: number;
  /** Distinct frames in the file (for a repaired segment: what ffprobe counted, repeats included). */
  frames: number;
  /** AVI: copies of a previous frame written to fill gaps in capture times. */
  repeats: number;
  /** From the first frame to the end of the last one (AVI: repeats included). */
  durationSec: number;
  bytes: number;
  /** True when ffmpeg died and the file was repaired from its partial. */
  recovered: boolean;
}

/** Options of {@link SegmentWriter.open}; the commands' flags map onto them. */
export interface SegmentWriterOptions {
  /** `--out` (client) or `--record` (server) */
  dir: string;
  /** `--segment` */
  segmentSeconds: number;
  /** `--container` */
  container: Container;
  /** Nominal frame rate of the source: the AVI frame rate and the Matroska frame duration. */
  fps: number;
  /**
   * The audio stream's format, when there is one: every segment then has an audio track (Opus
   * in Matroska, PCM in AVI), silent while no audio comes. Null or absent: video only.
   */
  audio?: AudioFormat | null;
  /** Pass e.g. `log.child("recorder")`. */
  log: Logger;
  ffmpegPath?: string;
  ffprobePath?: string;
  /** `--keep-days` */
  keepDays?: number;
  /** `--max-size` in bytes */
  maxBytes?: number;
  /** `--min-free` in bytes */
  minFreeBytes?: number;
  /** Called after each segment is finished (and renamed), in the order they finish. */
  onSegment?: (info: SegmentInfo) => void;
  /** How long a closing ffmpeg may take before it is killed and its partial repaired. */
  closeTimeoutMs?: number;
  /**
   * Bytes that may wait for ffmpeg once its pipe is full (default 2 MiB); beyond that frames are
   * dropped. Absorbs a new ffmpeg starting up at each rotation and short disk stalls.
   */
  maxQueuedBytes?: number;
  /** Wall clock (segment ages) and free-space reader for retention (tests). */
  retentionEnv?: Partial<RetentionEnv>;
  /**
   * Monotonic milliseconds (default `performance.now`): when the next attempt after an ffmpeg
   * failure may start. Monotonic, so a wall clock stepped back cannot hold recording off.
   * Tests pass a fake one to step through the backoff without waiting.
   */
  now?: () => number;
  /** How the caller's flags name the folder and turn recording off, for error messages (none: no advice). */
  cliFlags?: RecordCliFlags;
}

/** Counters since open. */
export interface SegmentWriterStats {
  /** Frames passed to write(). */
  framesIn: number;
  /** Frames handed to ffmpeg (repeats not included). */
  framesWritten: number;
  /** Copies of a previous frame written to keep AVI timing true (gaps up to MAX_GAP_MICROS). */
  repeats: number;
  /** Frames not recorded because ffmpeg or the disk was behind, or recording was waiting to retry. */
  dropped: number;
  /** Frames that were not one complete JPEG. */
  rejected: number;
  segmentsClosed: number;
  /** ffmpeg runs that died, could not start, or failed to finish a file. */
  ffmpegFailures: number;
  /** Bytes handed to ffmpeg's stdin. */
  bytesWritten: number;
  /** Audio packets passed to writeAudio(). */
  audioIn: number;
  /** Audio packets placed in a segment. */
  audioWritten: number;
  /**
   * Audio packets not recorded: outside every segment (before the first frame, in a hole, while
   * retrying), too late for their place, duplicated, or ffmpeg was behind.
   */
  audioDropped: number;
  /** Audio packets that were not one Opus packet. */
  audioRejected: number;
  /** Lost audio packets (gaps in packet numbers) filled with concealment. */
  audioConcealed: number;
  /** Milliseconds of silence written where no audio came. */
  audioSilenceMs: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_QUEUED_BYTES = 2 * 1024 * 1024;
const RETRY_MAX_MS = 30_000;

/** Counters kept by the writer itself; the open segments keep the rest until they are done. */
type OwnCounts = Pick<SegmentWriterStats, "framesIn" | "dropped" | "rejected" | "segmentsClosed" | "ffmpegFailures" | "audioIn" | "audioRejected">;
/** Counters the open segments keep until they are done. */
type SegmentCounts = Pick<SegmentWriterStats, "framesWritten" | "repeats" | "bytesWritten" | "audioWritten" | "audioConcealed" | "audioSilenceMs" | "audioDropped">;

function segmentCounts(seg: OpenSegment): SegmentCounts {
  const a = seg.audio;
  return {
    framesWritten: seg.frames, repeats: seg.repeats, bytesWritten: seg.bytes,
    audioWritten: a?.packets ?? 0, audioConcealed: a?.concealed ?? 0, audioSilenceMs: (a?.silenceSamples ?? 0) / 48,
    audioDropped: (a?.late ?? 0) + seg.audioDropped,
  };
}

function isCompleteJpeg(b: Uint8Array): boolean {
  const n = b.length;
  return n >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[n - 2] === 0xff && b[n - 1] === 0xd9;
}

/** A timer whose promise resolves after `ms` unless cancelled first (then it never does). */
function timeoutAfter(ms: number): { expired: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<void>((r) => {
    timer = setTimeout(r, ms);
  });
  return { expired, cancel: () => clearTimeout(timer) };
}

/**
 * Records frames into `<out>/<YYYY-MM-DD>/<HH-MM-SS>.<avi|mkv>` segments. Open with
 * {@link SegmentWriter.open}; write() from the frame path; close() (or `await using`) at the end.
 */
export class SegmentWriter implements AsyncDisposable {
  readonly #opts: SegmentWriterOptions;
  readonly #dir: string;
  readonly #ffmpeg: string;
  readonly #ffprobe: string | undefined;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #open: OpenPartials;
  readonly #retention: Retention;
  readonly #releaseLock: () => void;
  readonly #timeline: SegmentTimeline;
  readonly #intervalMicros: number;
  readonly #closeTimeoutMs: number;
  readonly #maxQueuedBytes: number;
  readonly #counts: OwnCounts = { framesIn: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, audioIn: 0, audioRejected: 0 };
  /** What segments that are done handed to ffmpeg. */
  readonly #doneCounts: SegmentCounts = {
    framesWritten: 0, repeats: 0, bytesWritten: 0, audioWritten: 0, audioConcealed: 0, audioSilenceMs: 0, audioDropped: 0,
  };
  /** Routes audio packets to segments; null without audio. */
  readonly #router: AudioRouter<OpenSegment, string> | null;
  /** Segments started and not done yet (being written, finished or repaired). */
  readonly #live = new Set<OpenSegment>();
  readonly #finishing = new Set<Promise<unknown>>();
  readonly #salvaged = new WeakMap<OpenSegment, Promise<SegmentInfo | null>>();
  #current: OpenSegment | null = null;
  #closed = false;
  #failuresInARow = 0;
  #retryAt = Number.NEGATIVE_INFINITY;
  #rejectWarned = false;
  #writeErrorLogged = false;

  private constructor(
    opts: SegmentWriterOptions,
    dir: string,
    ffmpeg: string,
    open: OpenPartials,
    retention: Retention,
    releaseLock: () => void,
  ) {
    this.#opts = opts;
    this.#dir = dir;
    this.#ffmpeg = ffmpeg;
    this.#ffprobe = opts.ffprobePath;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => performance.now());
    this.#open = open;
    this.#retention = retention;
    this.#releaseLock = releaseLock;
    this.#intervalMicros = 1_000_000 / opts.fps;
    this.#timeline = new SegmentTimeline(opts.segmentSeconds * 1_000_000, this.#intervalMicros);
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#router = opts.audio ? new AudioRouter() : null;
  }

  /**
   * Checks that the output folder can be written (else {@link RecordError}), repairs `.partial`
   * files left by an earlier crash, and applies retention.
   */
  static async open(opts: SegmentWriterOptions): Promise<SegmentWriter> {
    if (!(opts.segmentSeconds > 0)) throw new RangeError(`segmentSeconds must be > 0, got ${opts.segmentSeconds}`);
    if (!(opts.fps > 0 && opts.fps <= 1000)) throw new RangeError(`fps must be in (0, 1000], got ${opts.fps}`);
    if (!(opts.container in FFMPEG_FORMAT)) throw new RangeError(`container must be avi or mkv, got ${String(opts.container)}`);
    const a = opts.audio;
    if (a && !(a.codec === "opus" && a.sampleRate === 48000 && (a.channels === 1 || a.channels === 2) && [2.5, 5, 10, 20, 40, 60].includes(a.frameMs))) {
      throw new RangeError(`audio must be Opus at 48000 Hz, 1 or 2 channels, 2.5-60 ms packets; got ${JSON.stringify(a)}`);
    }
    const flags = opts.cliFlags;
    const dir = resolve(opts.dir);
    checkWritable(dir, flags);
    let ffmpeg: string;
    try {
      ffmpeg = opts.ffmpegPath ?? resolveFfmpeg().path;
    } catch (err) {
      throw new RecordError(`cannot record: ${errorText(err)}${recordAdvice(flags, "off")}`);
    }
    let ffprobe = opts.ffprobePath;
    try {
      ffprobe ??= resolveFfprobe();
    } catch {
      ffprobe = undefined; // only needed to report what a repair recovered
    }
    const log = opts.log;
    const lock = claimOutDir(dir);
    const open = new OpenPartials();
    let retention: Retention;
    try {
      if (lock.otherPids.length > 0) {
        log.warn("another recorder is writing into this folder; leaving .partial files alone", { dir, pids: lock.otherPids.join(",") });
      } else {
        await recoverPartials(dir, { ffmpegPath: ffmpeg, ffprobePath: ffprobe, log });
      }
      const policy = { keepDays: opts.keepDays, maxBytes: opts.maxBytes, minFreeBytes: opts.minFreeBytes };
      retention = await Retention.load(dir, policy, log, opts.retentionEnv, open);
      retention.enforce();
    } catch (err) {
      lock.release();
      throw err;
    }
    log.info("recording", {
      dir, container: opts.container, segment: opts.segmentSeconds, fps: opts.fps, ffmpeg,
      audio: opts.audio ? `opus/${opts.audio.channels}ch` : "none",
      keepDays: opts.keepDays, maxBytes: opts.maxBytes, minFreeBytes: opts.minFreeBytes,
    });
    return new SegmentWriter({ ...opts, ffprobePath: ffprobe }, dir, ffmpeg, open, retention, lock.release);
  }

  /** Counters since open, as of this call. */
  get stats(): Readonly<SegmentWriterStats> {
    const s = { ...this.#doneCounts };
    for (const seg of this.#live) addCounts(s, segmentCounts(seg));
    const c = this.#counts;
    // In the documented order: the "recorder closed" log line prints them as they come.
    return {
      framesIn: c.framesIn, framesWritten: s.framesWritten, repeats: s.repeats, dropped: c.dropped, rejected: c.rejected,
      segmentsClosed: c.segmentsClosed, ffmpegFailures: c.ffmpegFailures, bytesWritten: s.bytesWritten,
      audioIn: c.audioIn, audioWritten: s.audioWritten, audioDropped: s.audioDropped + (this.#router?.dropped ?? 0),
      audioRejected: c.audioRejected, audioConcealed: s.audioConcealed, audioSilenceMs: Math.round(s.audioSilenceMs),
    };
  }

  /** The audio format this writer records, or null for video only. */
  get audio(): AudioFormat | null {
    return this.#opts.audio ?? null;
  }

  /**
   * The nominal frame rate this writer was opened with; fixed for its lifetime (AVI frame rate,
   * slot width, Matroska frame duration). A source at another rate needs a new writer.
   */
  get fps(): number {
    return this.#opts.fps;
  }

  /** The absolute output folder. */
  get dir(): string {
    return this.#dir;
  }

  /** Pid of the ffmpeg writing the open segment, if any (diagnostics and tests). */
  get ffmpegPid(): number | null {
    return this.#current?.pid ?? null;
  }

  /** Partial path of the open segment, if any. */
  get openPartial(): string | null {
    return this.#current?.paths.partial ?? null;
  }

  /**
   * Resolves when the next write() will not be dropped for backpressure. A live source never
   * waits on this; a source that must not lose frames (a file replay, a test) can.
   */
  whenWritable(): Promise<void> {
    return this.#current ? this.#current.whenWritable() : Promise.resolve();
  }

  /** Records one frame. Never throws and never waits; the caller may reuse `frame.jpeg` at once. */
  write(frame: Frame): void {
    const c = this.#counts;
    c.framesIn++;
    if (this.#closed) {
      c.dropped++;
      return;
    }
    if (!isCompleteJpeg(frame.jpeg) || !(frame.width > 0 && frame.height > 0)) {
      c.rejected++;
      if (!this.#rejectWarned) {
        this.#rejectWarned = true;
        this.#log.warn("frame is not one complete JPEG (FF D8 ... FF D9) with a size; not recorded", {
          seq: frame.seq, bytes: frame.jpeg.length, width: frame.width, height: frame.height,
        });
      }
      return;
    }
    this.#writeFrame(frame);
    // Recorded or not, the frame moves the video on: the audio up to it can be placed.
    if (this.#router) this.#guard(() => this.#finishAll(this.#router!.video(frame.capturedAt)));
  }

  /**
   * Records one audio packet (only with an audio format; else it is counted as dropped). Never
   * throws and never waits; the caller may reuse `packet.data` at once. Packets may come a little
   * before or after the frames of the same capture time.
   */
  writeAudio(packet: AudioPacket): void {
    const c = this.#counts;
    c.audioIn++;
    const router = this.#router;
    if (!router || this.#closed) {
      this.#doneCounts.audioDropped++;
      return;
    }
    const n = packet.data?.length ?? 0;
    if (n < 1 || n > MAX_OPUS_PACKET || !Number.isFinite(packet.capturedAt) || !Number.isInteger(packet.seq)) {
      c.audioRejected++;
      return;
    }
    this.#guard(() => this.#finishAll(router.audio(packet)));
  }

  /** Runs `fn`; an unexpected error is logged once, never thrown to the frame or audio path. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (!this.#writeErrorLogged) {
        this.#writeErrorLogged = true;
        this.#log.error("unexpected error while recording", { error: errorText(err) });
      }
    }
  }

  #finishAll(done: { seg: OpenSegment; reason: string }[]): void {
    for (const d of done) this.#finishInBackground(d.seg, d.reason);
  }

  /** The open segment's video ends at `end`: finished now, or once its audio is in (see AudioRouter). */
  #endCurrent(reason: string, end: number): void {
    const seg = this.#current;
    if (!seg) return;
    this.#current = null;
    if (this.#router) this.#finishAll(this.#router.endSegment(end, reason));
    else this.#finishInBackground(seg, reason);
  }

  #writeFrame(frame: Frame): void {
    const c = this.#counts;
    try {
      const reason = this.#timeline.rotation(frame.capturedAt, frame.width, frame.height);
      if (reason !== null) {
        if (reason === "gap") {
          this.#log.info("capture resumed after a gap; starting a new segment", {
            gapSec: ((frame.capturedAt - this.#timeline.lastAt) / 1e6).toFixed(3), maxGapSec: this.#timeline.gapMicros / 1e6,
          });
        }
        // After a hole or a clock step the video ended with its last frame; else where this one begins.
        const end = reason === "gap" || reason === "clock" ? this.#timeline.lastAt + this.#intervalMicros : frame.capturedAt;
        this.#endCurrent(reason, end);
        if (this.#now() < this.#retryAt || !this.#startSegment(frame, reason)) {
          c.dropped++;
          return;
        }
      } else if (!this.#current || !this.#current.writable) {
        this.#timeline.skip(frame.capturedAt); // ffmpeg is behind, the source is not: no hole
        c.dropped++;
        return;
      }
      this.#current!.write(frame.jpeg, this.#timeline.place(frame.capturedAt));
    } catch (err) {
      c.dropped++;
      if (!this.#writeErrorLogged) {
        this.#writeErrorLogged = true;
        this.#log.error("unexpected error while recording", { error: errorText(err) });
      }
    }
  }

  /** Finishes the open segment and waits for every segment still being finished. */
  async close(): Promise<SegmentInfo | null> {
    if (this.#closed) return null;
    this.#closed = true;
    const seg = this.#current;
    this.#current = null;
    if (this.#router) {
      // The open segment's audio is filled to the end of its last frame; one still waiting for its audio is done too.
      const done = this.#router.close(this.#timeline.lastAt + this.#intervalMicros, "close");
      this.#finishAll(done.filter((d) => d.seg !== seg));
    }
    const info = seg ? await this.#finish(seg, "close") : null;
    while (this.#finishing.size > 0) await Promise.allSettled([...this.#finishing]);
    this.#releaseLock();
    this.#log.info("recorder closed", { ...this.stats });
    return info;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #startSegment(frame: Frame, reason: RotationReason): boolean {
    const { container } = this.#opts;
    const taken = (p: string) => this.#open.claims(p) || existsSync(p);
    let paths: SegmentPaths;
    try {
      paths = freeSegmentPaths(this.#dir, frame.capturedAt, container, taken);
      mkdirSync(paths.dateDir, { recursive: true });
      // Created here, not by ffmpeg, so a failure shows now and the date folder is never empty
      // for retention to remove under us.
      closeSync(openSync(paths.partial, "wx"));
    } catch (err) {
      this.#failed(`cannot create segment file: ${errorText(err)}`, {});
      return false;
    }
    let seg: OpenSegment;
    try {
      seg = new OpenSegment({
        paths, container, startedAt: frame.capturedAt, width: frame.width, height: frame.height,
        intervalMicros: this.#intervalMicros, maxQueuedBytes: this.#maxQueuedBytes,
        audio: this.#opts.audio ?? null,
        args: segmentArgs({
          ffmpeg: this.#ffmpeg, container, fps: this.#opts.fps, startedAtMicros: frame.capturedAt, output: paths.partial, audio: this.#opts.audio,
        }),
      });
    } catch (err) {
      try {
        unlinkSync(paths.partial);
      } catch {
        // leave it; recovery removes empty partials
      }
      this.#failed(`cannot start ffmpeg: ${errorText(err)}`, { ffmpeg: this.#ffmpeg });
      return false;
    }
    this.#open.add({ partial: paths.partial, final: paths.final, startedAtMs: frame.capturedAt / 1000 });
    this.#live.add(seg);
    this.#current = seg;
    this.#timeline.begin(frame.capturedAt, frame.width, frame.height);
    this.#router?.begin(seg);
    void seg.exited.then(() => this.#onExit(seg));
    this.#log.debug("segment started", { partial: paths.partial, reason, pid: seg.pid });
    return true;
  }

  #finishInBackground(seg: OpenSegment, reason: string): void {
    if (this.#current === seg) this.#current = null;
    const p = this.#finish(seg, reason).catch((err) => this.#log.error("finishing a segment failed", { error: errorText(err) }));
    this.#finishing.add(p);
    void p.finally(() => this.#finishing.delete(p));
  }

  /** Ends ffmpeg's input, waits for it, and renames (or repairs) the partial into a finished segment. */
  async #finish(seg: OpenSegment, reason: string): Promise<SegmentInfo | null> {
    const timeout = timeoutAfter(this.#closeTimeoutMs);
    try {
      if (seg.exitCode === null) await seg.flush(timeout.expired);
      if (seg.stop()) this.#counts.dropped++; // ffmpeg never took it in time
      if (seg.exitCode !== null) return await this.#salvageOnce(seg); // died on its own; the exit handler reports it
      seg.endInput();
      const code = await Promise.race([seg.exited, timeout.expired.then(() => null)]);
      if (code === null) {
        this.#log.error("ffmpeg did not finish the segment in time; killing it and repairing the file", {
          partial: seg.paths.partial, timeoutMs: this.#closeTimeoutMs,
        });
        seg.kill();
        await seg.exited;
      }
      if (code !== 0) {
        await seg.stderrDone;
        this.#counts.ffmpegFailures++;
        if (code !== null) {
          this.#log.error("ffmpeg failed to finish the segment; repairing it", { partial: seg.paths.partial, code, stderr: seg.stderrTail() });
        }
        return await this.#salvageOnce(seg);
      }
    } finally {
      timeout.cancel();
    }
    let path: string;
    try {
      const taken = (p: string) => existsSync(p) || (p !== seg.paths.final && this.#open.claims(p));
      path = finalPathFor(seg.paths.partial, taken);
      renameSync(seg.paths.partial, path);
    } catch (err) {
      this.#release(seg);
      this.#counts.ffmpegFailures++;
      this.#log.error("cannot rename finished segment", { partial: seg.paths.partial, error: errorText(err) });
      return null;
    }
    this.#release(seg);
    this.#failuresInARow = 0;
    return this.#finished({
      path, startedAt: seg.startedAt, frames: seg.frames, repeats: seg.repeats, durationSec: seg.durationSec, bytes: sizeOf(path), recovered: false,
    }, reason);
  }

  /** Repairs a dead ffmpeg's partial (once, whoever asks first). */
  #salvageOnce(seg: OpenSegment): Promise<SegmentInfo | null> {
    let p = this.#salvaged.get(seg);
    if (!p) {
      p = this.#salvage(seg);
      this.#salvaged.set(seg, p);
    }
    return p;
  }

  async #salvage(seg: OpenSegment): Promise<SegmentInfo | null> {
    const r = await recoverPartial(seg.paths.partial, { ffmpegPath: this.#ffmpeg, ffprobePath: this.#ffprobe, log: this.#log })
      .finally(() => this.#release(seg));
    if (r.action !== "recovered" || !r.path) return null;
    return this.#finished({
      path: r.path, startedAt: seg.startedAt, frames: r.frames, repeats: 0, durationSec: r.durationSec ?? 0, bytes: sizeOf(r.path), recovered: true,
    }, "repaired");
  }

  /** The segment is done: its name is free again and its counts join the totals. */
  #release(seg: OpenSegment): void {
    this.#open.delete(seg.paths.partial);
    if (!this.#live.delete(seg)) return;
    addCounts(this.#doneCounts, segmentCounts(seg));
  }

  #finished(info: SegmentInfo, reason: string): SegmentInfo {
    this.#counts.segmentsClosed++;
    this.#log.info("segment finished", {
      path: info.path, frames: info.frames, repeats: info.repeats, duration: info.durationSec.toFixed(3), bytes: info.bytes, reason,
    });
    this.#retention.add({ path: info.path, size: info.bytes, startedAtMs: info.startedAt / 1000 });
    this.#retention.enforce();
    try {
      this.#opts.onSegment?.(info);
    } catch (err) {
      this.#log.error("onSegment callback threw", { error: errorText(err) });
    }
    return info;
  }

  /** ffmpeg exited: expected when we ended its input, a failure otherwise. */
  async #onExit(seg: OpenSegment): Promise<void> {
    if (seg.inputEnded) return;
    if (seg.stop()) this.#counts.dropped++; // the frame it was waiting to take
    this.#router?.forget(seg);
    if (this.#current === seg) {
      this.#current = null;
      this.#timeline.reset();
    }
    this.#counts.ffmpegFailures++;
    const waitMs = this.#scheduleRetry();
    this.#retention.enforce(); // a full disk is a common cause: make room before the retry
    const done = this.#salvageOnce(seg);
    this.#finishing.add(done);
    void done.finally(() => this.#finishing.delete(done));
    await Promise.race([seg.stderrDone, Bun.sleep(500)]);
    this.#log.error(`ffmpeg exited mid-segment; ${retryText(waitMs)}`, {
      partial: seg.paths.partial, code: seg.exitCode, signal: seg.signalCode, frames: seg.frames, retryInMs: waitMs,
      stderr: seg.stderrTail() || undefined,
    });
  }

  #failed(message: string, fields: Record<string, string>): void {
    this.#counts.ffmpegFailures++;
    this.#timeline.reset();
    const waitMs = this.#scheduleRetry();
    this.#log.error(`${message}; ${retryText(waitMs)}`, { ...fields, dir: this.#dir, retryInMs: waitMs });
    this.#retention.enforce();
  }

  /**
   * First retry at once (with the next frame), then 1 s, 2 s, 4 s ... up to the segment length (at
   * most 30 s); a segment finished cleanly starts the count again. Returns the wait in ms.
   */
  #scheduleRetry(): number {
    this.#failuresInARow++;
    const cap = Math.min(this.#opts.segmentSeconds * 1000, RETRY_MAX_MS);
    const waitMs = this.#failuresInARow <= 1 ? 0 : Math.min(1000 * 2 ** (this.#failuresInARow - 2), cap);
    this.#retryAt = this.#now() + waitMs;
    return waitMs;
  }
}

/** When the next attempt at a segment is, for the failure's log line. */
function retryText(waitMs: number): string {
  if (waitMs === 0) return "a new segment starts with the next frame";
  return `next attempt in ${waitMs >= 1000 ? `${waitMs / 1000} s` : `${waitMs} ms`}; frames until then are dropped`;
}

function addCounts(to: SegmentCounts, from: SegmentCounts): void {
  for (const k of Object.keys(to) as (keyof SegmentCounts)[]) to[k] += from[k];
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
