import type { Socket, udp } from "bun";
import type { Logger } from "../log/format.ts";
import { MAX_PICTURE } from "../native/cv.ts";
import { plainAddress as normalize } from "../net/address.ts";
import { encodeClassicAnswer, encodeClassicPort } from "../wire/classic.ts";
import { nowMicros, type Frame } from "../wire/frame.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";
import { seqAdd } from "../wire/seq.ts";
import { ConnectError } from "./handshake.ts";
import { ReceiverStats } from "./receiver-stats.ts";
import type { FrameSink } from "./viewer.ts";

/** Largest picture accepted from a classroom server: the addon decodes nothing bigger. */
const { width: MAX_WIDTH, height: MAX_HEIGHT } = MAX_PICTURE;
/** The frame rate is measured over arrivals spanning at least this long. */
export const RATE_WINDOW_MS = 1000;
/** Highest rate reported, in millihertz (as a welcome may announce). */
const MAX_FPS_MILLIHERTZ = 1_000_000;
const CONTINUE = encodeClassicAnswer("continue");
const END = encodeClassicAnswer("end");

/** The stream as measured: what a welcome tells a lancam viewer, for the recorder. */
export interface ClassicStreamInfo {
  width: number;
  height: number;
  /** Arrival rate over the first RATE_WINDOW_MS of pictures, frames per second x 1000. */
  fpsMillihertz: number;
}

/**
 * How a classic session ended: stopped, or no picture for silenceMs (the server is
 * gone: nothing else tells, see ClassicClient).
 */
export type ClassicEnd = { reason: "stopped" } | { reason: "silent"; silentMs: number };

/**
 * The classic client could not start; the message says what to change. A ConnectError
 * (and named so), so the client reports it as one line, like any failed connection.
 */
export class ClassicConnectError extends ConnectError {}

/** How the classic client runs. */
export interface ClassicClientOptions {
  host: string;
  /** The classroom server's TCP port. */
  port: number;
  /** Where pictures arrive; 0 picks a free port (the real one is what the server is told). */
  udpPort: number;
  log: Logger;
  /** Where pictures go, as from a lancam viewer. */
  sinks: FrameSink[];
  /** Called once, when the rate has been measured (the recorder opens with it); pictures flow before. */
  onStream?: (info: ClassicStreamInfo) => void;
  connectTimeoutMs?: number;
  /** Silence after an answer before "continue" is sent again (default 1000 ms). */
  stallMs?: number;
  /** No picture for this long, nudges notwithstanding, ends the session (default 5000 ms). */
  silenceMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
}

/** Datagrams not used as pictures (each was still answered, so the server goes on). */
export interface ClassicDrops {
  /** From another address, or another port than the server's first picture came from. */
  foreign: number;
  /** Not a JPEG, a JPEG over MAX_WIDTH x MAX_HEIGHT, or cut short by the socket. */
  notJpeg: number;
  /** Another size than the first picture's. */
  wrongSize: number;
}

/**
 * A viewer of a classroom server: binds its UDP port first (so the first picture
 * cannot meet a closed port), connects, sends the port in ASCII, then answers every
 * picture with "continue" and says "end" when stopped. Each datagram is one JPEG; it
 * gets its arrival time as capture time (the classroom server sends none) and goes to
 * the same sinks as a lancam viewer's frames. A stream that stalls (a lost picture or
 * answer leaves the classroom server waiting for ever) is nudged with another
 * "continue" every stallMs.
 *
 * The TCP connection says nothing about the session: the classroom server drops its
 * socket for a viewer when the next viewer connects (the variable holding it is
 * reused), and streams on regardless. So only silence, no picture for silenceMs,
 * means the server is gone.
 */
export class ClassicClient implements AsyncDisposable {
  /** Frames and bytes as a lancam viewer counts them; latency is 0 (no capture time is sent). */
  readonly stats = new ReceiverStats();
  readonly drops: ClassicDrops = { foreign: 0, notJpeg: 0, wrongSize: 0 };
  /** "continue" sent again after a stall. */
  nudges = 0;
  /** Answers the network refused (ICMP port unreachable: the server's UDP socket is gone). */
  sendErrors = 0;
  /** Bytes the server sent on TCP, which it never should (ignored). */
  unexpectedTcpBytes = 0;
  /** The server closed the TCP connection (which it does when another viewer connects). */
  tcpClosed = false;
  /** Resolves when the session ends: stopped, or the server fell silent. */
  readonly ended: Promise<ClassicEnd>;
  readonly #opts: ClassicClientOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #udp!: udp.Socket<"buffer">;
  #tcp: Socket<undefined> | null = null;
  #serverIp = "";
  /** Where pictures come from, once the first one came; answers go there. */
  #source: { ip: string; port: number } | null = null;
  #size: { width: number; height: number } | null = null;
  #stream: ClassicStreamInfo | null = null;
  #firstAt: number | null = null;
  #arrivals = 0;
  #seq = 0;
  #lastHeardAt = 0;
  /** The last picture's arrival (or the start); nudges do not move it. */
  #lastPictureAt = 0;
  #stallTimer: Timer | null = null;
  #endedWith: (end: ClassicEnd) => void = () => {};
  #done = false;

  private constructor(opts: ClassicClientOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => performance.now());
    this.ended = new Promise((resolve) => (this.#endedWith = resolve));
  }

  /** Binds the UDP port, connects and announces it; throws ClassicConnectError naming the fix. */
  static async open(opts: ClassicClientOptions): Promise<ClassicClient> {
    const c = new ClassicClient(opts);
    try {
      c.#udp = await Bun.udpSocket({
        hostname: "0.0.0.0",
        port: opts.udpPort,
        socket: {
          data: (_s, buf, port, addr, flags) => c.#onDatagram(buf, port, addr, flags?.truncated === true),
          // An ICMP port-unreachable for an answer: the server's socket is gone. Its TCP
          // close ends the session; the error itself is only counted.
          error: () => {
            c.sendErrors++;
          },
        },
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const why = code === "EADDRINUSE" ? "it is in use; choose another UDPPORT, or 0 for any free port" : (e as Error).message;
      throw new ClassicConnectError(`cannot receive on UDP port ${opts.udpPort}: ${why}`);
    }
    try {
      await c.#connect();
    } catch (e) {
      c.#udp.close();
      throw e;
    }
    const stallMs = opts.stallMs ?? 1000;
    const silenceMs = opts.silenceMs ?? 5000;
    c.#lastHeardAt = c.#lastPictureAt = c.#now();
    c.#stallTimer = setInterval(() => c.#checkStall(stallMs, silenceMs), Math.max(10, Math.min(stallMs, silenceMs) / 4));
    return c;
  }

  /** The UDP port pictures arrive on (the real one when 0 was asked for). */
  get udpPort(): number {
    return this.#udp.port;
  }

  /** Size and measured rate, once RATE_WINDOW_MS of pictures have arrived; null before. */
  get stream(): ClassicStreamInfo | null {
    return this.#stream;
  }

  async #connect(): Promise<void> {
    const { host, port } = this.#opts;
    const timeoutMs = this.#opts.connectTimeoutMs ?? 5000;
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ClassicConnectError(`cannot connect to ${host}:${port}: no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const connecting = Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, bytes) => {
          this.unexpectedTcpBytes += bytes.length;
        },
        // Only once connected: a failed attempt is open()'s error. Not an end (see the class comment).
        close: () => {
          if (!this.#tcp || this.#done || this.tcpClosed) return;
          this.tcpClosed = true;
          this.#log.info("the classroom server closed the TCP connection; its pictures keep coming over UDP");
        },
        error: (_s, e) => this.#log.warn("classic server connection failed", { error: e.message }),
      },
    }).catch((e: Error) => {
      throw new ClassicConnectError(`cannot connect to ${host}:${port}: ${e.message}`);
    });
    let tcp: Socket<undefined>;
    try {
      tcp = await Promise.race([connecting, timeout]);
    } catch (e) {
      // Timed out: a connection that still comes is closed, a late failure is no one's.
      connecting.then((late) => late.end(), () => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.#tcp = tcp;
    this.#serverIp = normalize(tcp.remoteAddress);
    // The classroom server reads its port with one recv(): one write, nothing after.
    tcp.write(encodeClassicPort(this.#udp.port));
    this.#log.info("connected to a classroom server", { server: `${host}:${port}`, udp: this.#udp.port });
  }

  #onDatagram(buf: Buffer, port: number, addr: string, truncated: boolean): void {
    if (this.#done) return;
    const ip = normalize(addr);
    if (ip !== this.#serverIp || (this.#source && this.#source.port !== port)) {
      this.drops.foreign++;
      return;
    }
    this.#source ??= { ip, port };
    const now = this.#now();
    this.#lastHeardAt = this.#lastPictureAt = now;
    // Answered before anything else, whatever it holds: the server sends nothing more until it is.
    this.#udp.send(CONTINUE, port, ip);
    const size = truncated ? null : readJpegSize(buf);
    if (!size || size.width > MAX_WIDTH || size.height > MAX_HEIGHT) {
      this.drops.notJpeg++;
      this.stats.framesRejected++;
      return;
    }
    this.#size ??= size;
    if (size.width !== this.#size.width || size.height !== this.#size.height) {
      this.drops.wrongSize++;
      this.stats.framesRejected++;
      return;
    }
    this.#measure(now);
    this.stats.frame(buf.length, 0, now);
    const frame: Frame = { seq: this.#seq, capturedAt: nowMicros(), width: size.width, height: size.height, jpeg: buf };
    this.#seq = seqAdd(this.#seq, 1);
    for (const sink of this.#opts.sinks) {
      try {
        sink(frame);
      } catch (e) {
        this.#log.error("frame sink failed", { error: (e as Error).message });
      }
    }
  }

  /** Counts arrivals until they span RATE_WINDOW_MS, then reports the stream once. */
  #measure(now: number): void {
    if (this.#stream) return;
    this.#firstAt ??= now;
    this.#arrivals++;
    const span = now - this.#firstAt;
    if (span < RATE_WINDOW_MS || this.#arrivals < 2) return;
    const fpsMillihertz = Math.min(MAX_FPS_MILLIHERTZ, Math.round(((this.#arrivals - 1) * 1e6) / span));
    this.#stream = { width: this.#size!.width, height: this.#size!.height, fpsMillihertz };
    this.#log.info("classic stream", { size: `${this.#stream.width}x${this.#stream.height}`, fps: fpsMillihertz / 1000 });
    try {
      this.#opts.onStream?.(this.#stream);
    } catch (e) {
      this.#log.error("classic stream set-up failed", { error: (e as Error).message });
    }
  }

  #checkStall(stallMs: number, silenceMs: number): void {
    if (this.#done) return;
    const now = this.#now();
    const silentMs = now - this.#lastPictureAt;
    if (silentMs >= silenceMs) {
      this.#finish({ reason: "silent", silentMs });
      return;
    }
    if (!this.#source) return;
    if (now - this.#lastHeardAt < stallMs) return;
    this.#lastHeardAt = now;
    this.nudges++;
    this.#udp.send(CONTINUE, this.#source.port, this.#source.ip);
  }

  /**
   * Says "end" (once: a second one would end the next viewer the classroom server
   * serves), closes both sockets, and resolves `ended`.
   */
  stop(): void {
    if (this.#done) return;
    if (this.#source) this.#udp.send(END, this.#source.port, this.#source.ip);
    this.#finish({ reason: "stopped" });
  }

  #finish(end: ClassicEnd): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#stallTimer) clearInterval(this.#stallTimer);
    this.#stallTimer = null;
    if (end.reason === "silent") this.#log.warn("no pictures from the classroom server", { seconds: (end.silentMs / 1000).toFixed(1) });
    this.#tcp?.end();
    this.#tcp = null;
    this.#udp.close();
    this.#endedWith(end);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.ended;
  }
}
