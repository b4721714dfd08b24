import type { Socket, TCPSocketListener, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import type { ControlMessage } from "../wire/control.ts";
import { HEADER_SIZE, MAX_FRAGMENTS, MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Frame } from "../wire/frame.ts";
import { throttled, type Logger } from "../app/log.ts";
import { Pacer } from "./pacer.ts";
import type { Session } from "./sessions.ts";
import { Admission, type AdmissionAction, type ConnId } from "./admission.ts";
import { enlargeBuffer, socketFd } from "../net/udp-buffer.ts";

/** How the server is set up. */
export interface StreamServerOptions {
  port: number;
  bind: string;
  mtu: number;
  maxClients: number;
  stream: { width: number; height: number; fps: number };
  log: Logger;
  heartbeatMs?: number;
  timeoutMs?: number;
  /** Connections that have not said hello yet; more are closed at once. */
  maxPending?: number;
  /** Fraction of the frame interval a frame's datagrams are spread over. */
  spread?: number;
}

/** Per-connection state kept on the Bun socket. */
interface Conn {
  id: ConnId;
  channel: ControlChannel;
  peer: string;
  /** Admission let go of it: what arrives now is ignored. */
  closing: boolean;
  stream: Stream | null;
}

/** One viewer's frames: where they go and the buffer they are cut into. */
interface Stream {
  session: Session;
  fragmenter: Fragmenter;
}

/** Counters the server reports at exit. */
export interface ServerStats {
  framesBroadcast: number;
  datagramsSent: number;
  /** Datagrams the socket did not take at once (send buffer full), sent again on a later tick. */
  sendRetries: number;
  /** Sends that threw (a pending ICMP error is reported this way too; those are retried). */
  sendErrors: number;
  /** ICMP errors the socket reported (port unreachable: a viewer's process is gone). */
  icmpErrors: number;
  /** Datagrams given up after sends kept failing. */
  datagramsDropped: number;
  datagramsSuperseded: number;
  /** Frames that cannot be sent: empty, or more fragments than the header can count. */
  framesNotSent: number;
}

/**
 * Fraction of the frame interval a frame's datagrams are spread over. Measured
 * (docs/benchmarks.md): with 200 KB frames and 8 viewers whose receive buffers the
 * kernel caps at 200 KB, 0 loses most frames, 0.1 a few percent, 0.25 none.
 */
export const DEFAULT_SPREAD = 0.25;

/** At most one warning line per kind in this interval (a dead peer can cause one per datagram). */
const SEND_WARN_MS = 5000;

/**
 * How often admission hears the time: heartbeats, the hello deadline and the
 * silence timeout happen within this much of when they are due.
 */
const TICK_MS = 100;

/** Socket send buffer asked for: a few frames for several viewers. */
const SEND_BUFFER_BYTES = 4 << 20;

/** The server could not start (port in use, bad address); the message says what to do. */
export class StartError extends Error {
  override name = "StartError";
}

/** Strips the IPv4-mapped prefix so addresses compare and print plainly. */
function plainAddress(a: string): string {
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

/**
 * The fan-out server: TCP control connections (hello, heartbeats, reports, bye)
 * and one UDP socket that sends every captured frame, encoded once, to every
 * viewer, paced over part of the frame interval. The protocol decisions are
 * Admission's; this class moves bytes and carries out what it returns.
 */
export class StreamServer implements AsyncDisposable {
  readonly stats: ServerStats = { framesBroadcast: 0, datagramsSent: 0, sendRetries: 0, sendErrors: 0, icmpErrors: 0, datagramsDropped: 0, datagramsSuperseded: 0, framesNotSent: 0 };
  readonly #opts: Required<StreamServerOptions>;
  readonly #log: Logger;
  readonly #conns = new Map<ConnId, Socket<Conn>>();
  readonly #streams = new Set<Stream>();
  readonly #pacer = new Pacer<Stream>();
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  readonly #warnSend: (detail: string) => void;
  readonly #warnNotSent: (detail: string) => void;
  readonly #maxFrameBytes: number;
  #admission!: Admission;
  #listener!: TCPSocketListener<Conn>;
  #udp!: udp.Socket<"buffer">;
  #nextConnId = 1;
  #ticker: Timer | null = null;
  #pacing: Timer | null = null;
  #stopped = false;

  private constructor(opts: StreamServerOptions) {
    this.#opts = { heartbeatMs: 1000, timeoutMs: 5000, maxPending: 64, spread: DEFAULT_SPREAD, ...opts };
    this.#log = opts.log;
    this.#warnSend = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("udp send failed", { error: detail, similar: suppressed || undefined }));
    this.#warnNotSent = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not sent", { detail, similar: suppressed || undefined }));
    this.#maxFrameBytes = Math.min(MAX_FRAME_BYTES, MAX_FRAGMENTS * (opts.mtu - HEADER_SIZE));
  }

  /** Binds the TCP listener and the UDP sender; throws with a clear message when the port is taken. */
  static async start(opts: StreamServerOptions): Promise<StreamServer> {
    const server = new StreamServer(opts);
    await server.#open();
    return server;
  }

  /** The TCP port clients connect to (the real one when 0 was asked for). */
  get port(): number {
    return this.#listener.port;
  }

  /** The UDP port frames leave from. */
  get udpPort(): number {
    return this.#udp.port;
  }

  get clientCount(): number {
    return this.#admission.sessionCount;
  }

  async #open(): Promise<void> {
    const { port, bind } = this.#opts;
    // The UDP socket comes first: every welcome names its port.
    try {
      this.#udp = await Bun.udpSocket({
        hostname: bind,
        port: 0,
        socket: {
          data: () => {},
          // ICMP errors come back here (port unreachable when a viewer's process died):
          // counted, and logged at most every few seconds, never a crash or a stack dump.
          error: (...args: unknown[]) => {
            const err = args.find((a): a is Error => a instanceof Error);
            this.stats.icmpErrors++;
            this.#warnSend(err?.message ?? "unknown UDP error");
          },
        },
      });
    } catch (e) {
      throw new StartError(`cannot open a UDP socket on ${bind}: ${(e as Error).message}`);
    }
    const { width, height, fps } = this.#opts.stream;
    try {
      this.#admission = new Admission({
        maxClients: this.#opts.maxClients,
        maxPending: this.#opts.maxPending,
        heartbeatMs: this.#opts.heartbeatMs,
        timeoutMs: this.#opts.timeoutMs,
        // Built once here so a bad --mtu fails at start, not at the first hello.
        stream: { width, height, fpsMillihertz: Math.round(fps * 1000), fragmentSize: new Fragmenter(this.#opts.mtu).payloadSize, udpSourcePort: this.#udp.port },
        wallClockUs: (now) => Math.round((performance.timeOrigin + now) * 1000),
      });
    } catch (e) {
      this.#udp.close();
      throw e;
    }
    try {
      this.#listener = Bun.listen<Conn>({
        hostname: bind,
        port,
        socket: {
          open: (s) => this.#onOpen(s),
          data: (s, chunk) => this.#onData(s, chunk),
          drain: (s) => s.data.channel.drain(),
          close: (s) => this.#onClosed(s),
          end: (s) => this.#onClosed(s),
          error: (s, err) => {
            this.#log.warn("connection error", { client: s.data?.peer, error: err.message });
            this.#onClosed(s);
          },
        },
      });
    } catch (e) {
      this.#udp.close();
      throw new StartError(`cannot listen on ${bind}:${port}: ${(e as Error).message}${(e as { code?: string }).code === "EADDRINUSE" ? " (port in use; choose another --port or 0)" : ""}`);
    }
    const sb = enlargeBuffer(socketFd(this.#udp), "send", SEND_BUFFER_BYTES);
    this.#log.info("udp send buffer", { requested: sb.requested, got: sb.actual ?? "unknown", note: sb.note });
    this.#ticker = setInterval(() => this.#apply(this.#admission.tick(performance.now())), Math.min(TICK_MS, this.#opts.heartbeatMs));
  }

  /** Sends one frame to every viewer; never blocks and never queues more than one frame per viewer. */
  broadcast(frame: Frame): void {
    if (this.#stopped) return;
    this.stats.framesBroadcast++;
    if (this.#streams.size === 0) return;
    const bytes = frame.jpeg.length;
    if (bytes === 0 || bytes > this.#maxFrameBytes) {
      this.stats.framesNotSent++;
      this.#warnNotSent(bytes === 0
        ? `frame ${frame.seq} is empty`
        : `frame ${frame.seq} is ${bytes} bytes, at most ${this.#maxFrameBytes} fit (lower --quality or --size, or raise --mtu)`);
      return;
    }
    const now = performance.now();
    const spreadMs = (1000 / this.#opts.stream.fps) * this.#opts.spread;
    for (const stream of this.#streams) {
      const s = stream.session;
      const datagrams = stream.fragmenter.fragment(frame, s.id);
      const superseded = this.#pacer.enqueue(stream, { port: s.udpPort, address: s.address }, datagrams, now, spreadMs);
      s.datagramsSuperseded += superseded;
      this.stats.datagramsSuperseded += superseded;
      s.framesSent++;
    }
    this.#pump();
  }

  #pump(): void {
    const { due, sent } = this.#pacer.due(performance.now(), this.#send);
    // A full send buffer: what did not go out waits for the next tick.
    this.stats.sendRetries += due - sent;
    if (this.#pacer.idle) {
      if (this.#pacing) clearInterval(this.#pacing);
      this.#pacing = null;
    } else if (!this.#pacing) {
      this.#pacing = setInterval(() => this.#pump(), 1);
    }
  }

  /** One viewer's due datagrams in one sendMany; a throw (EPERM, ENETUNREACH...) drops them, counted. */
  readonly #send = (stream: Stream, target: { port: number; address: string }, datagrams: Uint8Array[], from: number, to: number): number => {
    const out = this.#sendBuf;
    out.length = 0;
    for (let i = from; i < to; i++) out.push(datagrams[i]!, target.port, target.address);
    let took = -1;
    // An ICMP error left by an earlier datagram (a dead viewer's port) is reported by
    // whichever send comes next, for any viewer: that call took nothing, so try again.
    for (let attempt = 0; attempt < 3 && took < 0; attempt++) {
      try {
        took = this.#udp.sendMany(out);
      } catch (e) {
        this.stats.sendErrors++;
        this.#warnSend(`${(e as Error).message} (sending to ${target.address}:${target.port})`);
      }
    }
    out.length = 0;
    if (took < 0) {
      // Still failing: give up this viewer's due datagrams rather than spin on them.
      this.stats.datagramsDropped += to - from;
      return to - from;
    }
    this.stats.datagramsSent += took;
    stream.session.datagramsSent += took;
    return took;
  };

  #onOpen(sock: Socket<Conn>): void {
    const address = plainAddress(sock.remoteAddress);
    const tcpPort = (sock as unknown as { remotePort?: number }).remotePort ?? 0;
    const id = this.#nextConnId++;
    sock.data = { id, channel: new ControlChannel(sock), peer: `${address}:${tcpPort || "?"}`, closing: false, stream: null };
    this.#conns.set(id, sock);
    this.#apply(this.#admission.connected(id, { address, port: tcpPort }, performance.now()));
  }

  #onData(sock: Socket<Conn>, chunk: Uint8Array): void {
    const conn = sock.data;
    if (conn.closing) return;
    let messages: ControlMessage[];
    try {
      messages = conn.channel.receive(chunk);
    } catch (e) {
      this.#apply(this.#admission.decodeFailed(conn.id, e, performance.now()));
      return;
    }
    for (const msg of messages) {
      if (conn.closing) return;
      this.#apply(this.#admission.received(conn.id, msg, performance.now()));
    }
  }

  #onClosed(sock: Socket<Conn>): void {
    if (!sock.data) return;
    this.#apply(this.#admission.closed(sock.data.id, performance.now()));
    this.#conns.delete(sock.data.id);
  }

  #apply(actions: AdmissionAction[]): void {
    for (const a of actions) {
      if (a.kind === "log") {
        this.#log[a.level](a.message, a.fields);
        continue;
      }
      // Gone already when its socket closed while earlier actions were carried out.
      const conn = this.#conns.get(a.conn)?.data;
      if (!conn) continue;
      switch (a.kind) {
        case "send":
          conn.channel.send(a.msg);
          break;
        case "start":
          conn.stream = { session: a.session, fragmenter: new Fragmenter(this.#opts.mtu) };
          this.#streams.add(conn.stream);
          break;
        case "stop":
          if (conn.stream) {
            this.#streams.delete(conn.stream);
            this.#pacer.remove(conn.stream);
            conn.stream = null;
          }
          break;
        case "close":
          conn.closing = true;
          conn.channel.finish();
          break;
      }
    }
  }

  /** Says goodbye to every viewer and closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#ticker) clearInterval(this.#ticker);
    if (this.#pacing) clearInterval(this.#pacing);
    this.#apply(this.#admission.shutdown(performance.now()));
    // Give the goodbyes a moment to leave before the listener goes.
    const deadline = performance.now() + 500;
    while ([...this.#conns.values()].some((s) => !s.data.channel.closed) && performance.now() < deadline) await Bun.sleep(10);
    this.#listener.stop(true);
    this.#udp.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
