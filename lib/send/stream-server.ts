import type { Socket, TCPSocketListener, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import type { ControlMessage } from "../wire/control.ts";
import { HEADER_SIZE, MAX_FRAGMENTS, MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Frame } from "../wire/frame.ts";
import { throttled, type Logger } from "../app/log.ts";
import { Pacer } from "./pacer.ts";
import type { Session } from "./sessions.ts";
import { Admission, type AdmissionAction, type ConnId, type OtherCounters, type ViewerSummary } from "./admission.ts";
import { ClassicEncoder, type FitFunction } from "./classic-encoder.ts";
import { CLASSIC_TICK_MS } from "./classic-viewers.ts";
import { enlargeBuffer, socketFd } from "../net/udp-buffer.ts";

export type { OtherCounters, ViewerSummary } from "./admission.ts";

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
  /**
   * Classroom viewers: JPEG quality of pictures re-encoded to fit one datagram
   * (default 80), their resend and timeout, and the fit function (tests pass their own).
   */
  classic?: { quality?: number; resendMs?: number; timeoutMs?: number; fit?: FitFunction };
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
  /** Pictures sent to classroom viewers, one datagram each, resends included. */
  classicDatagramsSent: number;
  /** Pictures for classroom viewers the socket did not take or that kept failing (their resend covers them). */
  classicSendErrors: number;
  /** Frames that could not be fitted into one classroom datagram (skipped). */
  classicFitFailures: number;
  /** Datagrams on the UDP socket that were no classroom viewer's answer (strangers, garbage). */
  classicAnswersIgnored: number;
  /** Bytes classroom viewers sent on TCP after their port number, which they never should. */
  classicTcpBytesIgnored: number;
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
  readonly stats: ServerStats = {
    framesBroadcast: 0, datagramsSent: 0, sendRetries: 0, sendErrors: 0, icmpErrors: 0, datagramsDropped: 0, datagramsSuperseded: 0, framesNotSent: 0,
    classicDatagramsSent: 0, classicSendErrors: 0, classicFitFailures: 0, classicAnswersIgnored: 0, classicTcpBytesIgnored: 0,
  };
  readonly #opts: Required<StreamServerOptions>;
  readonly #log: Logger;
  readonly #conns = new Map<ConnId, Socket<Conn>>();
  readonly #streams = new Set<Stream>();
  readonly #pacer = new Pacer<Stream>();
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  readonly #warnSend: (detail: string) => void;
  readonly #warnNotSent: (detail: string) => void;
  readonly #warnNotFitted: (detail: string) => void;
  readonly #maxFrameBytes: number;
  readonly #encoder: ClassicEncoder;
  #admission!: Admission;
  #listener!: TCPSocketListener<Conn>;
  #udp!: udp.Socket<"buffer">;
  #nextConnId = 1;
  #ticker: Timer | null = null;
  /** Runs only while classroom viewers are connected. */
  #classicTicker: Timer | null = null;
  #pacing: Timer | null = null;
  #stopped = false;

  private constructor(opts: StreamServerOptions) {
    this.#opts = { heartbeatMs: 1000, timeoutMs: 5000, maxPending: 64, spread: DEFAULT_SPREAD, classic: {}, ...opts };
    this.#log = opts.log;
    this.#warnSend = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("udp send failed", { error: detail, similar: suppressed || undefined }));
    this.#warnNotSent = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not sent", { detail, similar: suppressed || undefined }));
    this.#warnNotFitted = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not fitted for classroom viewers", { detail, similar: suppressed || undefined }));
    this.#maxFrameBytes = Math.min(MAX_FRAME_BYTES, MAX_FRAGMENTS * (opts.mtu - HEADER_SIZE));
    this.#encoder = new ClassicEncoder({ quality: opts.classic?.quality, fit: opts.classic?.fit });
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

  /** Lancam viewers with a session (viewerCount counts every kind). */
  get clientCount(): number {
    return this.#admission.sessionCount;
  }

  /** Viewers of every kind: lancam, classroom and those admitted with admitOther; --max-clients bounds it. */
  get viewerCount(): number {
    return this.#admission.viewerCount;
  }

  /** Every viewer, lancam, classroom and served elsewhere, in the order they joined. */
  viewers(): ViewerSummary[] {
    return this.#admission.viewers();
  }

  /**
   * A viewer served by another part of the server (`kind`: "browser", ...) asks for one
   * of the --max-clients places. The join (`kind=KIND`) or the refusal is logged.
   */
  admitOther(kind: string, address: string, name: string): { id: number } | { refused: string } {
    const id = this.#nextConnId++;
    const r = this.#admission.admitOther(id, kind, plainAddress(address), name, performance.now());
    this.#apply(r.actions);
    return r.refused === null ? { id } : { refused: r.refused };
  }

  /** What a viewer admitted with admitOther has received so far; false when `id` is not one. */
  updateOther(id: number, counters: Partial<OtherCounters>): boolean {
    return this.#admission.updateOther(id, counters);
  }

  /** A viewer admitted with admitOther ended: its place is free and its leave is logged with `reason`. */
  leaveOther(id: number, reason: string): void {
    this.#apply(this.#admission.leaveOther(id, reason, performance.now()));
  }

  async #open(): Promise<void> {
    const { port, bind } = this.#opts;
    // The UDP socket comes first: every welcome names its port. It also receives:
    // classroom viewers answer each picture to the address it came from.
    try {
      this.#udp = await Bun.udpSocket({
        hostname: bind,
        port: 0,
        socket: {
          data: (_s, bytes, port, address) => this.#onAnswer(bytes, port, address),
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
        classic: { resendMs: this.#opts.classic.resendMs, timeoutMs: this.#opts.classic.timeoutMs },
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
    this.#toLancam(frame);
    // After the lancam viewers' datagrams are queued; the fit runs off the event loop.
    if (this.#admission.classicCount > 0) this.#toClassic(frame);
  }

  #toLancam(frame: Frame): void {
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

  /** Fits the frame into one datagram (once for every classroom viewer) and hands it to them. */
  #toClassic(frame: Frame): void {
    this.#encoder
      .fit(frame)
      .then((fitted) => {
        const { failed, lastFailure } = this.#encoder.stats;
        if (failed > this.stats.classicFitFailures) {
          this.stats.classicFitFailures = failed;
          this.#warnNotFitted(`frame ${frame.seq}: ${lastFailure}`);
        }
        if (fitted && !this.#stopped) this.#apply(this.#admission.classicFrame(fitted, performance.now()));
      })
      .catch((e: unknown) => this.#log.error("classroom frame failed", { error: (e as Error).message }));
  }

  /** A datagram on the UDP socket: a classroom viewer's answer, or a stranger's (counted). */
  #onAnswer(bytes: Uint8Array, port: number, address: string): void {
    // Before the machine exists nobody has been sent a picture to answer.
    if (this.#stopped || !this.#admission) return;
    this.#apply(this.#admission.answer(plainAddress(address), port, bytes, performance.now()));
    const c = this.#admission.classicCounters;
    this.stats.classicAnswersIgnored = c.foreign + c.invalid;
  }

  /** One classroom picture, one datagram. Not taken or failing, it is left to the viewer's resend. */
  #sendPicture(address: string, port: number, bytes: Uint8Array): void {
    // As in #send: an earlier datagram's ICMP error may surface on this call; try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        if (this.#udp.send(bytes, port, address)) {
          this.stats.classicDatagramsSent++;
          return;
        }
        break;
      } catch (e) {
        this.stats.sendErrors++;
        this.#warnSend(`${(e as Error).message} (sending to ${address}:${port})`);
      }
    }
    this.stats.classicSendErrors++;
  }

  /** Classroom viewers need time to pass (resends, timeouts) only while there are some. */
  #syncClassicTicker(): void {
    const wanted = !this.#stopped && this.#admission.classicCount > 0;
    if (wanted && !this.#classicTicker) {
      this.#classicTicker = setInterval(() => this.#apply(this.#admission.classicTick(performance.now())), CLASSIC_TICK_MS);
    } else if (!wanted && this.#classicTicker) {
      clearInterval(this.#classicTicker);
      this.#classicTicker = null;
    }
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

  /** Admission decides what the bytes are: control messages (a "control" action) or a classroom port. */
  #onData(sock: Socket<Conn>, chunk: Uint8Array): void {
    const conn = sock.data;
    if (conn.closing) return;
    this.#apply(this.#admission.arrived(conn.id, chunk, performance.now()));
    this.stats.classicTcpBytesIgnored = this.#admission.classicExtraBytes;
  }

  #decode(conn: Conn, bytes: Uint8Array): void {
    let messages: ControlMessage[];
    try {
      messages = conn.channel.receive(bytes);
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
      if (a.kind === "datagram") {
        this.#sendPicture(a.address, a.port, a.bytes);
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
        case "control":
          this.#decode(conn, a.bytes);
          break;
      }
    }
    this.#syncClassicTicker();
  }

  /** Says goodbye to every viewer and closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#ticker) clearInterval(this.#ticker);
    if (this.#pacing) clearInterval(this.#pacing);
    // Classroom viewers leave here too (no goodbye exists for them: their TCP closes).
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
