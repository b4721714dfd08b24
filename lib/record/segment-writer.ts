import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync } from "node:fs";
import { resolve } from "node:path";
import { resolveFfmpeg, resolveFfprobe } from "./ffmpeg.ts";
import type { Frame } from "../wire/frame.ts";
import type { Logger } from "../app/log.ts";
import { MkvStream } from "./mkv-stream.ts";
import { Retention, type RetentionEnv } from "./retention.ts";
import { type Container, FFMPEG_FORMAT, finalPathFor, freeSegmentPaths, type SegmentPaths } from "./segment-naming.ts";
import { checkWritable, RecordError } from "./record-dir.ts";
import { Recording } from "./segment-process.ts";
import { activePartials, claimOutDir, recoverPartial, recoverPartials } from "./segment-recovery.ts";
import { SegmentTimeline, type RotationReason } from "./segment-timeline.ts";

/**
 * Records frames into rolling segments with ffmpeg (stream copy, never re-encoded).
 *
 *   write(frame) ──> SegmentTimeline (which segment, which slot) ──> Recording (one ffmpeg per segment)
 *                                                                      │ stdin: MJPEG (AVI) or live Matroska
 *                                                                      └─> <out>/<date>/.<HH-MM-SS>.<ext>.partial
 *   rotation / close: stdin.end, wait for exit, rename to <HH-MM-SS>.<ext>; a dead ffmpeg's partial is repaired.
 *
 * AVI has a constant frame rate, so a gap in capture times is filled by repeating the previous
 * frame; Matroska carries each frame's capture time. A hole longer than MAX_GAP_MICROS (2 s, in
 * segment-timeline.ts: an outage, a reconnect) is never bridged: the next frame starts a new
 * segment in both containers. write() never throws and never waits: once ffmpeg's pipe is full
 * and a small budget (maxQueuedBytes) waits behind it, new frames are dropped and counted, so
 * memory stays bounded however slow ffmpeg or the disk is.
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

/** Options of {@link SegmentWriter.open}; the client's flags map onto them. */
export interface SegmentWriterOptions {
  /** `--out` */
  dir: string;
  /** `--segment` */
  segmentSeconds: number;
  /** `--container` */
  container: Container;
  /** Nominal frame rate of the source: the AVI frame rate and the Matroska frame duration. */
  fps: number;
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
  /** Clock and free-space reader for retention (tests). */
  retentionEnv?: Partial<RetentionEnv>;
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
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_QUEUED_BYTES = 2 * 1024 * 1024;
const RETRY_MAX_MS = 30_000;

function isCompleteJpeg(b: Uint8Array): boolean {
  const n = b.length;
  return n >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[n - 2] === 0xff && b[n - 1] === 0xd9;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
  readonly #retention: Retention;
  readonly #releaseLock: () => void;
  readonly #timeline: SegmentTimeline;
  readonly #intervalMicros: number;
  readonly #closeTimeoutMs: number;
  readonly #maxQueuedBytes: number;
  readonly #stats: SegmentWriterStats = {
    framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
  };
  /** Final paths chosen by segments that are not renamed yet. */
  readonly #reserved = new Set<string>();
  readonly #finishing = new Set<Promise<unknown>>();
  #current: Recording | null = null;
  #closed = false;
  #failuresInARow = 0;
  #retryAt = 0;
  #rejectWarned = false;
  #writeErrorLogged = false;

  private constructor(opts: SegmentWriterOptions, dir: string, ffmpeg: string, retention: Retention, releaseLock: () => void) {
    this.#opts = opts;
    this.#dir = dir;
    this.#ffmpeg = ffmpeg;
    this.#ffprobe = opts.ffprobePath;
    this.#log = opts.log;
    this.#retention = retention;
    this.#releaseLock = releaseLock;
    this.#intervalMicros = 1_000_000 / opts.fps;
    this.#timeline = new SegmentTimeline(opts.segmentSeconds * 1_000_000, this.#intervalMicros);
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  }

  /**
   * Checks that the output folder can be written (else {@link RecordError}), repairs `.partial`
   * files left by an earlier crash, and applies retention.
   */
  static async open(opts: SegmentWriterOptions): Promise<SegmentWriter> {
    if (!(opts.segmentSeconds > 0)) throw new RangeError(`segmentSeconds must be > 0, got ${opts.segmentSeconds}`);
    if (!(opts.fps > 0 && opts.fps <= 1000)) throw new RangeError(`fps must be in (0, 1000], got ${opts.fps}`);
    if (!(opts.container in FFMPEG_FORMAT)) throw new RangeError(`container must be avi or mkv, got ${String(opts.container)}`);
    const dir = resolve(opts.dir);
    checkWritable(dir);
    let ffmpeg: string;
    try {
      ffmpeg = opts.ffmpegPath ?? resolveFfmpeg().path;
    } catch (err) {
      throw new RecordError(`cannot record: ${errorText(err)}; or pass --no-record`);
    }
    let ffprobe = opts.ffprobePath;
    try {
      ffprobe ??= resolveFfprobe();
    } catch {
      ffprobe = undefined; // only needed to report what a repair recovered
    }
    const log = opts.log;
    const lock = claimOutDir(dir);
    let retention: Retention;
    try {
      if (lock.otherPids.length > 0) {
        log.warn("another recorder is writing into this folder; leaving .partial files alone", { dir, pids: lock.otherPids.join(",") });
      } else {
        await recoverPartials(dir, { ffmpegPath: ffmpeg, ffprobePath: ffprobe, log });
      }
      const policy = { keepDays: opts.keepDays, maxBytes: opts.maxBytes, minFreeBytes: opts.minFreeBytes };
      retention = await Retention.load(dir, policy, log, opts.retentionEnv);
      retention.enforce();
    } catch (err) {
      lock.release();
      throw err;
    }
    log.info("recording", {
      dir, container: opts.container, segment: opts.segmentSeconds, fps: opts.fps, ffmpeg,
      keepDays: opts.keepDays, maxBytes: opts.maxBytes, minFreeBytes: opts.minFreeBytes,
    });
    return new SegmentWriter({ ...opts, ffprobePath: ffprobe }, dir, ffmpeg, retention, lock.release);
  }

  /** Counters since open (a live view: read it, do not keep it). */
  get stats(): Readonly<SegmentWriterStats> {
    return this.#stats;
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
    return this.#current?.proc.pid ?? null;
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
    const s = this.#stats;
    s.framesIn++;
    try {
      if (this.#closed) {
        s.dropped++;
        return;
      }
      if (!isCompleteJpeg(frame.jpeg) || !(frame.width > 0 && frame.height > 0)) {
        s.rejected++;
        if (!this.#rejectWarned) {
          this.#rejectWarned = true;
          this.#log.warn("frame is not one complete JPEG (FF D8 ... FF D9) with a size; not recorded", {
            seq: frame.seq, bytes: frame.jpeg.length, width: frame.width, height: frame.height,
          });
        }
        return;
      }
      const reason = this.#timeline.rotation(frame.capturedAt, frame.width, frame.height);
      if (reason !== null) {
        if (reason === "gap") {
          this.#log.info("capture resumed after a gap; starting a new segment", {
            gapSec: ((frame.capturedAt - this.#timeline.lastAt) / 1e6).toFixed(3), maxGapSec: this.#timeline.gapMicros / 1e6,
          });
        }
        if (this.#current) this.#finishInBackground(this.#current, reason);
        if (performance.now() < this.#retryAt || !this.#startRecording(frame, reason)) {
          s.dropped++;
          return;
        }
      } else if (!this.#current || !this.#current.writable) {
        this.#timeline.skip(frame.capturedAt); // ffmpeg is behind, the source is not: no hole
        s.dropped++;
        return;
      }
      this.#append(this.#current!, frame);
    } catch (err) {
      s.dropped++;
      if (!this.#writeErrorLogged) {
        this.#writeErrorLogged = true;
        this.#log.error("unexpected error while recording a frame", { error: errorText(err) });
      }
    }
  }

  /** Finishes the open segment and waits for every segment still being finished. */
  async close(): Promise<SegmentInfo | null> {
    if (this.#closed) return null;
    this.#closed = true;
    const rec = this.#current;
    this.#current = null;
    const info = rec ? await this.#finish(rec, "close") : null;
    while (this.#finishing.size > 0) await Promise.allSettled([...this.#finishing]);
    this.#releaseLock();
    this.#log.info("recorder closed", { ...this.#stats });
    return info;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #startRecording(frame: Frame, reason: RotationReason): boolean {
    const { container } = this.#opts;
    const taken = (p: string) => this.#reserved.has(p) || existsSync(p);
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
    const mkv = container === "mkv"
      ? new MkvStream({ width: frame.width, height: frame.height, frameIntervalMicros: this.#intervalMicros, startedAtMicros: frame.capturedAt })
      : null;
    const fps = String(this.#opts.fps);
    const input = container === "avi" ? ["-f", "mjpeg", "-framerate", fps] : ["-f", "matroska"];
    // Without an output rate, a stream-copied AVI gets time base 1/(2 x fps) and an empty chunk
    // after every frame (ffmpeg's "ticks per frame" heuristic): twice the rate, twice the index.
    const output = container === "avi" ? ["-r", fps] : [];
    const args = [
      this.#ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
      ...input, "-i", "pipe:0", "-map", "0:v:0", "-c", "copy", ...output,
      "-metadata", `creation_time=${new Date(Math.floor(frame.capturedAt / 1000)).toISOString()}`,
      // Each frame reaches the file as it is muxed, so a crash loses only what is in the pipe.
      "-flush_packets", "1",
      "-f", FFMPEG_FORMAT[container], "-y", paths.partial,
    ];
    let rec: Recording;
    try {
      rec = new Recording(paths, frame.capturedAt, args, mkv, this.#stats, this.#maxQueuedBytes, (r) => this.#pump(r));
    } catch (err) {
      try {
        unlinkSync(paths.partial);
      } catch {
        // leave it; recovery removes empty partials
      }
      this.#failed(`cannot start ffmpeg: ${errorText(err)}`, { ffmpeg: this.#ffmpeg });
      return false;
    }
    this.#reserved.add(paths.final);
    activePartials.add(paths.partial);
    this.#retention.begin(paths.partial, frame.capturedAt / 1000);
    this.#current = rec;
    this.#timeline.begin(frame.capturedAt, frame.width, frame.height);
    if (mkv) rec.send(mkv.header());
    void rec.proc.exited.then(() => this.#onExit(rec));
    this.#log.debug("segment started", { partial: paths.partial, reason, pid: rec.proc.pid });
    return true;
  }

  /** Writes a placed frame, or queues it behind owed repeats (AVI) when the pipe fills up. */
  #append(rec: Recording, frame: Frame): void {
    const { slot, gap, offsetMicros } = this.#timeline.place(frame.capturedAt);
    rec.lastSlot = slot;
    if (rec.mkv) {
      const { chunks, timeMs } = rec.mkv.frame(offsetMicros / 1000, frame.jpeg);
      rec.lastMs = timeMs;
      for (const c of chunks) rec.send(c);
      this.#counted(rec);
      return;
    }
    rec.owed = gap;
    this.#pump(rec); // repeats of the previous frame first
    if (rec.owed === 0 && rec.hasRoom) {
      rec.send(frame.jpeg);
      rec.prev.set(frame.jpeg);
      this.#counted(rec);
    } else {
      const held = rec.spare;
      held.set(frame.jpeg);
      rec.held = held;
    }
  }

  #counted(rec: Recording): void {
    rec.frames++;
    this.#stats.framesWritten++;
  }

  /** AVI: writes owed repeats, then the held frame, while the pipe takes them without queueing. */
  #pump(rec: Recording): void {
    while (rec.owed > 0 && rec.hasRoom && rec.exitCode === null) {
      rec.send(rec.prev.bytes);
      rec.owed--;
      rec.repeats++;
      this.#stats.repeats++;
    }
    if (rec.owed === 0 && rec.held && rec.hasRoom) {
      const held = rec.held;
      rec.held = null;
      rec.send(held.bytes);
      this.#counted(rec);
      rec.spare = rec.prev;
      rec.prev = held;
    }
    rec.wake();
  }

  #finishInBackground(rec: Recording, reason: string): void {
    if (this.#current === rec) this.#current = null;
    const p = this.#finish(rec, reason).catch((err) => this.#log.error("finishing a segment failed", { error: errorText(err) }));
    this.#finishing.add(p);
    void p.finally(() => this.#finishing.delete(p));
  }

  /** Ends ffmpeg's input, waits for it, and renames (or repairs) the partial into a finished segment. */
  async #finish(rec: Recording, reason: string): Promise<SegmentInfo | null> {
    const deadline = performance.now() + this.#closeTimeoutMs;
    if (rec.exitCode === null) await rec.drained(deadline);
    rec.closing = true;
    rec.wake();
    if (rec.held) this.#stats.dropped++; // ffmpeg never took it in time
    rec.held = null;
    rec.owed = 0;
    if (rec.exitCode !== null && !this.#endedByUs.has(rec)) {
      return this.#salvageOnce(rec); // died on its own; the exit handler reports it
    }
    this.#endedByUs.add(rec);
    let code: number | null = null;
    try {
      const ended = rec.proc.stdin.end();
      if (ended instanceof Promise) ended.catch(() => {});
    } catch {
      // already closed
    }
    const left = Math.max(0, deadline - performance.now());
    code = await Promise.race([rec.proc.exited, Bun.sleep(left).then(() => null)]);
    if (code === null) {
      this.#log.error("ffmpeg did not finish the segment in time; killing it and repairing the file", {
        partial: rec.paths.partial, timeoutMs: this.#closeTimeoutMs,
      });
      rec.proc.kill("SIGKILL");
      await rec.proc.exited;
    }
    if (code !== 0) {
      await rec.stderrDone;
      this.#stats.ffmpegFailures++;
      if (code !== null) {
        this.#log.error("ffmpeg failed to finish the segment; repairing it", {
          partial: rec.paths.partial, code, stderr: rec.stderrTail.slice(-5).join(" | "),
        });
      }
      return this.#salvageOnce(rec);
    }
    let path: string;
    try {
      const taken = (p: string) => existsSync(p) || (p !== rec.paths.final && this.#reserved.has(p));
      path = finalPathFor(rec.paths.partial, taken);
      renameSync(rec.paths.partial, path);
    } catch (err) {
      this.#release(rec);
      this.#stats.ffmpegFailures++;
      this.#log.error("cannot rename finished segment", { partial: rec.paths.partial, error: errorText(err) });
      return null;
    }
    this.#release(rec);
    this.#failuresInARow = 0;
    const durationSec = rec.mkv ? rec.lastMs / 1000 + this.#intervalMicros / 1e6 : ((rec.lastSlot + 1) * this.#intervalMicros) / 1e6;
    return this.#finished({
      path, startedAt: rec.startedAt, frames: rec.frames, repeats: rec.repeats, durationSec, bytes: sizeOf(path), recovered: false,
    }, reason);
  }

  readonly #endedByUs = new WeakSet<Recording>();
  readonly #salvaged = new WeakMap<Recording, Promise<SegmentInfo | null>>();

  /** Repairs a dead ffmpeg's partial (once, whoever asks first). */
  #salvageOnce(rec: Recording): Promise<SegmentInfo | null> {
    let p = this.#salvaged.get(rec);
    if (!p) {
      p = this.#salvage(rec);
      this.#salvaged.set(rec, p);
    }
    return p;
  }

  async #salvage(rec: Recording): Promise<SegmentInfo | null> {
    try {
      const r = await recoverPartial(rec.paths.partial, { ffmpegPath: this.#ffmpeg, ffprobePath: this.#ffprobe, log: this.#log });
      if (r.action !== "recovered" || !r.path) return null;
      return this.#finished({
        path: r.path, startedAt: rec.startedAt, frames: r.frames, repeats: 0, durationSec: r.durationSec ?? 0, bytes: sizeOf(r.path), recovered: true,
      }, "repaired");
    } finally {
      this.#release(rec);
    }
  }

  #release(rec: Recording): void {
    this.#reserved.delete(rec.paths.final);
    activePartials.delete(rec.paths.partial);
    this.#retention.end(rec.paths.partial);
  }

  #finished(info: SegmentInfo, reason: string): SegmentInfo {
    this.#stats.segmentsClosed++;
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
  async #onExit(rec: Recording): Promise<void> {
    if (this.#endedByUs.has(rec)) return;
    rec.closing = true;
    rec.wake();
    if (this.#current === rec) {
      this.#current = null;
      this.#timeline.reset();
    }
    this.#stats.ffmpegFailures++;
    const waitMs = this.#scheduleRetry();
    this.#retention.enforce(); // a full disk is a common cause: make room before the retry
    const done = this.#salvageOnce(rec);
    this.#finishing.add(done);
    void done.finally(() => this.#finishing.delete(done));
    await Promise.race([rec.stderrDone, Bun.sleep(500)]);
    this.#log.error(`ffmpeg exited mid-segment; ${retryText(waitMs)}`, {
      partial: rec.paths.partial, code: rec.proc.exitCode, signal: rec.proc.signalCode, frames: rec.frames, retryInMs: waitMs,
      stderr: rec.stderrTail.slice(-5).join(" | ") || undefined,
    });
  }

  #failed(message: string, fields: Record<string, string>): void {
    this.#stats.ffmpegFailures++;
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
    this.#retryAt = performance.now() + waitMs;
    return waitMs;
  }
}

/** When the next attempt at a segment is, for the failure's log line. */
function retryText(waitMs: number): string {
  if (waitMs === 0) return "a new segment starts with the next frame";
  return `next attempt in ${waitMs >= 1000 ? `${waitMs / 1000} s` : `${waitMs} ms`}; frames until then are dropped`;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

