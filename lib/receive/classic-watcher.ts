import type { Logger } from "../log/format.ts";
import { ClassicClient, type ClassicEnd, type ClassicStreamInfo } from "./classic-client.ts";
import { ConnectError } from "./handshake.ts";
import { ReceiverStats } from "./receiver-stats.ts";
import type { FrameSink } from "./viewer.ts";

/** How a classroom server is watched (see WatcherOptions, whose meanings these share). */
export interface ClassicWatcherOptions {
  host: string;
  port: number;
  udpPort: number;
  log: Logger;
  sinks: FrameSink[];
  maxFrames?: number;
  maxSeconds?: number;
  onBound?: (udpPort: number) => void;
  onStreamRate?: (fps: number) => void | Promise<void>;
  onSecond?: (stats: ReceiverStats, size: string | null) => void;
  /** No picture for this long ends the run with an error (default ClassicClient's 5000 ms). */
  silenceMs?: number;
}

/**
 * Watches a classroom server the way a lancam Viewer watches a lancam server:
 * frame and time limits, a once-a-second callback, the stream rate for the recorder,
 * and "end" on every way out. It does not reconnect: a classroom server that falls
 * silent has exited, and a rate measured again after a restart would start a new
 * recording for a few hundredths of a frame per second.
 */
export class ClassicWatcher implements AsyncDisposable {
  readonly #opts: ClassicWatcherOptions;
  /** Until connected: empty stats, so a failed start still has a summary. */
  readonly #none = new ReceiverStats();
  #client: ClassicClient | null = null;
  #stopped = false;
  #running: Promise<void> | null = null;
  #settingUp: Promise<void> = Promise.resolve();
  #setupError: unknown = null;
  #delivered = 0;

  constructor(opts: ClassicWatcherOptions) {
    this.#opts = opts;
  }

  get stats(): ReceiverStats {
    return this.#client?.stats ?? this.#none;
  }

  datagramDrops(): Record<string, number> {
    const d = this.#client?.drops;
    return d ? { foreignAddress: d.foreign, notJpeg: d.notJpeg, wrongSize: d.wrongSize } : {};
  }

  /** Resolves when stopped or a limit is reached; rejects with ConnectError when connecting fails or the server falls silent. */
  run(): Promise<void> {
    const running = this.#run();
    this.#running = running;
    return running;
  }

  async #run(): Promise<void> {
    const { host, port, maxFrames = 0, maxSeconds = 0 } = this.#opts;
    // Last in line, so every sink has the frame that reaches the limit; the client
    // counts and delivers nothing once stopped, so exactly maxFrames are counted.
    const limit: FrameSink = () => {
      if (maxFrames > 0 && ++this.#delivered >= maxFrames) this.stop();
    };
    const client = await ClassicClient.open({
      host, port, udpPort: this.#opts.udpPort, log: this.#opts.log, sinks: [...this.#opts.sinks, limit],
      onStream: (info) => this.#onStream(info), silenceMs: this.#opts.silenceMs,
    });
    this.#client = client;
    this.#opts.onBound?.(client.udpPort);
    const size = () => (client.stream ? `${client.stream.width}x${client.stream.height}` : null);
    const ticker = setInterval(() => this.#opts.onSecond?.(client.stats, size()), 1000);
    const timer = maxSeconds > 0 ? setTimeout(() => this.stop(), maxSeconds * 1000) : null;
    let end: ClassicEnd;
    try {
      // Stopped while connecting: say end at once.
      if (this.#stopped) client.stop();
      end = await client.ended;
    } finally {
      clearInterval(ticker);
      if (timer) clearTimeout(timer);
      // The recorder opening for the measured rate finishes before run() does.
      await this.#settingUp;
    }
    if (this.#setupError) throw this.#setupError;
    if (end.reason === "silent") throw new ConnectError(`no pictures from the classroom server at ${host}:${port} for ${Math.round(end.silentMs / 1000)} s; it has stopped or gone away`);
  }

  #onStream(info: ClassicStreamInfo): void {
    const onStreamRate = this.#opts.onStreamRate;
    if (!onStreamRate) return;
    this.#settingUp = Promise.resolve()
      .then(() => onStreamRate(info.fpsMillihertz / 1000))
      .catch((e: unknown) => {
        this.#setupError ??= e;
        this.stop();
      });
  }

  /** Says "end" to the server; `run()` then resolves. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#client?.stop();
  }

  /** Stops and waits until `run()` has released its sockets; its outcome is the caller's of `run()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.#running?.catch(() => {});
  }
}
