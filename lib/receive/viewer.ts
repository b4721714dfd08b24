import type { Frame } from "../wire/frame.ts";
import { nowMicros } from "../wire/frame.ts";
import { throttled, type Logger } from "../app/log.ts";
import { ReceiverStats } from "./receiver-stats.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";
import type { ReassembledFrame } from "./reassembler.ts";
import { seqLess } from "../wire/seq.ts";
import { ConnectError, StreamClient, type SessionEnd, type Welcome } from "./stream-client.ts";

/** Delay before reconnect attempt `n` (0-based): 0.5 s doubling to at most 5 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(5000, 500 * 2 ** Math.min(attempt, 10));
}

/** Where received frames go (window, recorder); each must not keep `frame.jpeg` past the call. */
export type FrameSink = (frame: Frame) => void;

/** How the viewer runs. */
export interface ViewerOptions {
  host: string;
  port: number;
  udpPort: number;
  log: Logger;
  sinks: FrameSink[];
  /** UDP receive buffer to ask for, bytes. */
  receiveBufferBytes?: number;
  /** This viewer's name in the server's log. */
  name?: string;
  /** Stop after this many frames (0 = no limit). */
  maxFrames?: number;
  /** Stop after this many seconds (0 = no limit). */
  maxSeconds?: number;
  /** Called about once a second with the stats (status line). */
  onSecond?: (stats: ReceiverStats, welcome: Welcome | null) => void;
  /** Called once the UDP port is bound, before connecting. */
  onBound?: (udpPort: number, client: StreamClient) => void;
  /** Awaited after each welcome; frames already flow to the sinks meanwhile. */
  onWelcome?: (welcome: Welcome) => void | Promise<void>;
  /** How many frames the recorder has written so far (0 without one); the final bye reports it. */
  recordedFrames?: () => number;
}

/**
 * Runs a viewer: connects (a failure on the first attempt is an error for the
 * user), feeds every completed frame to the sinks, and when the server goes away
 * reconnects with backoff until stopped.
 */
export class Viewer implements AsyncDisposable {
  readonly stats = new ReceiverStats();
  readonly #opts: ViewerOptions;
  readonly #log: Logger;
  #client: StreamClient | null = null;
  #stopped = false;
  /** The running `run()`, so disposal can wait for its teardown. */
  #running: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #welcome: Welcome | null = null;
  #lastFrame: number | null = null;
  /** Frames accepted for the sinks and frames handed to them, for an exact --frames. */
  #accepted = 0;
  #delivered = 0;
  readonly #warnRejected: (detail: string) => void;
  /** A new session numbers frames afresh: the first frame after a welcome is never out of order. */
  #resynced = false;

  constructor(opts: ViewerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#warnRejected = throttled(5000, (detail, n) => this.#log.warn("frame rejected", { detail, similar: n || undefined }));
  }

  /** The reassembler's drop counters, for the stats file. */
  datagramDrops(): Record<string, number> {
    const c = this.#client;
    if (!c) return {};
    const r = c.reassembly;
    return { ...r.dropped, foreignAddress: c.droppedForeign.address, notReady: c.droppedForeign.notReady };
  }

  /** Resolves when stopped or a frame/duration limit is reached; rejects with ConnectError when the first connect fails. */
  run(): Promise<void> {
    const running = this.#run();
    this.#running = running;
    return running;
  }

  async #run(): Promise<void> {
    const { host, port, maxSeconds = 0 } = this.#opts;
    const client = await StreamClient.open({
      host, port, udpPort: this.#opts.udpPort,
      receiveBufferBytes: this.#opts.receiveBufferBytes, name: this.#opts.name,
      onFrame: (f, nowMs) => this.#onFrame(f, nowMs),
    });
    this.#client = client;
    client.reports = () => {
      const s = this.stats;
      const p50 = s.latency.percentile(50) ?? 0;
      const p95 = s.latency.percentile(95) ?? 0;
      return {
        type: "report", framesReceived: s.framesReceived, framesLost: s.framesMissing, framesIncomplete: s.framesIncomplete,
        datagramsDropped: Object.values(this.datagramDrops()).reduce((a, b) => a + b, 0),
        latencyP50Us: Math.round(p50 * 1000), latencyP95Us: Math.round(p95 * 1000), fpsMillihertz: s.lastSecondFps(performance.now()) * 1000,
      };
    };
    const rb = client.receiveBuffer;
    this.stats.receiveBufferBytes = rb?.actual ?? null;
    this.#log.info("udp receive buffer", { requested: rb?.requested, got: rb?.actual ?? "unknown", note: rb?.note });
    this.#opts.onBound?.(client.udpPort, client);
    const ticker = setInterval(() => {
      this.#syncLoss();
      this.#opts.onSecond?.(this.stats, this.#welcome);
    }, 1000);
    const limit = maxSeconds > 0 ? setTimeout(() => this.stop(), maxSeconds * 1000) : null;
    try {
      let attempt = 0;
      let everConnected = false;
      while (!this.#stopped) {
        try {
          this.#welcome = await client.connect();
        } catch (e) {
          if (this.#stopped) break; // stopping cancelled the attempt: not an error
          // At start every failure is for the user to fix; later only a final refusal is.
          if (!everConnected || (e instanceof ConnectError && e.isFinal)) throw e;
          const delay = reconnectDelayMs(attempt++);
          this.#log.warn("reconnect failed", { error: (e as Error).message, retryInSec: delay / 1000 });
          await this.#sleep(delay);
          continue;
        }
        if (everConnected) this.stats.reconnects++;
        everConnected = true;
        attempt = 0;
        const w = this.#welcome;
        this.#log.info(this.stats.reconnects ? "reconnected" : "connected", {
          server: `${host}:${port}`, session: w.sessionId.toString(16).padStart(8, "0"), size: `${w.width}x${w.height}`,
          fps: w.fpsMillihertz / 1000, udp: client.udpPort,
        });
        // Frames flow from now on; a sink that needs time to get ready for this stream
        // (the recorder opening) holds them itself, so the window never waits for it.
        this.#resynced = true;
        client.resume();
        await this.#opts.onWelcome?.(w);
        if (this.#stopped) break;
        const end: SessionEnd = await Promise.race([client.ended, new Promise<SessionEnd>((r) => (this.#wake = () => r({ reason: "stopped" })))]);
        this.#wake = null;
        if (this.#stopped || end.reason === "stopped") break;
        const delay = reconnectDelayMs(attempt++);
        this.#log.warn("server went away; reconnecting", { reason: end.reason, detail: "text" in end ? end.text : undefined, retryInSec: delay / 1000 });
        await this.#sleep(delay);
      }
    } finally {
      clearInterval(ticker);
      if (limit) clearTimeout(limit);
      await client.close();
    }
  }

  #onFrame(f: ReassembledFrame, nowMs: number): void {
    this.#syncLoss();
    if (this.#lastFrame !== null && !this.#resynced && !seqLess(this.#lastFrame, f.frameNumber)) this.stats.framesOutOfOrder++;
    this.#lastFrame = f.frameNumber;
    this.#resynced = false;
    const w = this.#welcome;
    // Only a JPEG of the size the server announced reaches the window and the recorder:
    // a header claiming a huge picture would otherwise cost gigabytes to decode.
    const size = readJpegSize(f.jpeg);
    if (!w || !size || size.width !== w.width || size.height !== w.height) {
      this.stats.framesRejected++;
      this.#warnRejected(size ? `${size.width}x${size.height}, expected ${w?.width}x${w?.height}` : "not a JPEG");
      return;
    }
    const max = this.#opts.maxFrames ?? 0;
    if (max > 0 && this.#accepted >= max) return; // --frames reached: exactly that many are counted and delivered
    this.#accepted++;
    this.stats.frame(f.jpeg.length, (nowMicros() - f.capturedAt) / 1000, nowMs);
    this.#deliver({ seq: f.frameNumber, capturedAt: f.capturedAt, width: w.width, height: w.height, jpeg: f.jpeg });
  }

  #deliver(frame: Frame): void {
    for (const sink of this.#opts.sinks) {
      try {
        sink(frame);
      } catch (e) {
        this.#log.error("frame sink failed", { error: (e as Error).message });
      }
    }
    const max = this.#opts.maxFrames ?? 0;
    if (max > 0 && ++this.#delivered >= max) this.stop();
  }

  /** Brings the loss counters up to the reassembler's (cumulative across reconnects). */
  #syncLoss(): void {
    const r = this.#client?.reassembly;
    if (!r) return;
    const incomplete = r.incomplete.lostFragment + r.incomplete.timeout + r.incomplete.evicted;
    this.stats.lost(Math.max(0, r.framesMissing - this.stats.framesMissing), Math.max(0, incomplete - this.stats.framesIncomplete));
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Stops the viewer: goodbye to the server, then `run()` resolves. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#client?.disconnect();
    this.#wake?.();
  }

  /** Stops and waits until `run()` has released its sockets; its outcome is the caller's of `run()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.#running?.catch(() => {});
  }
}
