import type { Socket, TCPSocketListener, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import { ByeReason, RefuseReason, type ControlMessage } from "../wire/control.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { HEADER_SIZE, MAX_FRAGMENTS, MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Frame } from "../wire/frame.ts";
import { throttled, type Logger } from "../app/log.ts";
import { Pacer } from "./pacer.ts";
import { SessionTable, type LeaveReason, type Session } from "./sessions.ts";
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
  channel: ControlChannel;
  peer: string;
  address: string;
  tcpPort: number;
  openedAt: number;
  session: Session | null;
  fragmenter: Fragmenter | null;
  ended: boolean;
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

/** Socket send buffer asked for: a few frames for several viewers. */
const SEND_BUFFER_BYTES = 4 << 20;

/** The server could not start (port in use, bad address); the message says what to do. */
export class StartError extends Error {
  override name = "StartError";
}

/**
 * Connections without hello yet from one address; more are refused at once. A real
 * viewer says hello within a millisecond of connecting, but a lab machine may start
 * many viewers at the same moment, so this is not tiny; it keeps one host from taking
 * every pending place (maxPending) and locking the others out.
 */
export const MAX_PENDING_PER_ADDRESS = 16;

/** Strips the IPv4-mapped prefix so addresses compare and print plainly. */
function plainAddress(a: string): string {
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

/**
 * The fan-out server: TCP control connections (hello, heartbeats, reports, bye)
 * and one UDP socket that sends every captured frame, encoded once, to every
 * viewer, paced over part of the frame interval.
 */
export class StreamServer implements AsyncDisposable {
  readonly stats: ServerStats = { framesBroadcast: 0, datagramsSent: 0, sendRetries: 0, sendErrors: 0, icmpErrors: 0, datagramsDropped: 0, datagramsSuperseded: 0, framesNotSent: 0 };
  readonly #opts: Required<StreamServerOptions>;
  readonly #log: Logger;
  readonly #sessions: SessionTable;
  readonly #conns = new Set<Socket<Conn>>();
  readonly #pacer = new Pacer<number>();
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  readonly #warnSend: (detail: string) => void;
  readonly #warnNotSent: (detail: string) => void;
  readonly #maxFrameBytes: number;
  #listener!: TCPSocketListener<Conn>;
  #udp!: udp.Socket<"buffer">;
  #heartbeat: Timer | null = null;
  #pacing: Timer | null = null;
  #stopped = false;

  private constructor(opts: StreamServerOptions) {
    this.#opts = { heartbeatMs: 1000, timeoutMs: 5000, maxPending: 64, spread: DEFAULT_SPREAD, ...opts };
    this.#log = opts.log;
    this.#sessions = new SessionTable({ maxClients: opts.maxClients, timeoutMs: this.#opts.timeoutMs });
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
    return this.#sessions.size;
  }

  async #open(): Promise<void> {
    const { port, bind } = this.#opts;
    try {
      this.#listener = Bun.listen<Conn>({
        hostname: bind,
        port,
        socket: {
          open: (s) => this.#onOpen(s),
          data: (s, chunk) => this.#onData(s, chunk),
          drain: (s) => s.data.channel.drain(),
          close: (s) => this.#onClosed(s, "connection closed"),
          end: (s) => this.#onClosed(s, "connection closed"),
          error: (s, err) => {
            this.#log.warn("connection error", { client: s.data?.peer, error: err.message });
            this.#onClosed(s, "connection closed");
          },
        },
      });
    } catch (e) {
      throw new StartError(`cannot listen on ${bind}:${port}: ${(e as Error).message}${(e as { code?: string }).code === "EADDRINUSE" ? " (port in use; choose another --port or 0)" : ""}`);
    }
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
      const sb = enlargeBuffer(socketFd(this.#udp), "send", SEND_BUFFER_BYTES);
      this.#log.info("udp send buffer", { requested: sb.requested, got: sb.actual ?? "unknown", note: sb.note });
    } catch (e) {
      this.#listener.stop(true);
      throw new StartError(`cannot open a UDP socket on ${bind}: ${(e as Error).message}`);
    }
    this.#heartbeat = setInterval(() => this.#onHeartbeat(), this.#opts.heartbeatMs);
  }

  /** Sends one frame to every viewer; never blocks and never queues more than one frame per viewer. */
  broadcast(frame: Frame): void {
    if (this.#stopped) return;
    this.stats.framesBroadcast++;
    if (this.#sessions.size === 0) return;
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
    for (const conn of this.#activeConns()) {
      const s = conn.session!;
      const datagrams = conn.fragmenter!.fragment(frame, s.id);
      const superseded = this.#pacer.enqueue(s.id, { port: s.udpPort, address: s.address }, datagrams, now, spreadMs);
      s.datagramsSuperseded += superseded;
      this.stats.datagramsSuperseded += superseded;
      s.framesSent++;
    }
    this.#pump();
  }

  *#activeConns(): Generator<Conn> {
    for (const sock of this.#conns) if (sock.data.session && !sock.data.ended) yield sock.data;
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
  readonly #send = (id: number, target: { port: number; address: string }, datagrams: Uint8Array[], from: number, to: number): number => {
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
    const s = this.#sessions.get(id);
    if (s) s.datagramsSent += took;
    return took;
  };

  #onOpen(sock: Socket<Conn>): void {
    const address = plainAddress(sock.remoteAddress);
    const tcpPort = (sock as unknown as { remotePort?: number }).remotePort ?? 0;
    const peer = `${address}:${tcpPort || "?"}`;
    sock.data = { channel: new ControlChannel(sock), peer, address, tcpPort, openedAt: performance.now(), session: null, fragmenter: null, ended: false };
    let pending = 0;
    let pendingHere = 0;
    for (const c of this.#conns) {
      if (c.data.session || c.data.ended) continue;
      pending++;
      if (c.data.address === address) pendingHere++;
    }
    this.#conns.add(sock);
    const refusal = this.#stopped
      ? "shutting down"
      : pendingHere >= MAX_PENDING_PER_ADDRESS
        ? "too many connections without hello from this address"
        : pending >= this.#opts.maxPending
          ? "too many connections without hello"
          : null;
    if (refusal) {
      this.#log.warn("connection refused", { client: peer, reason: refusal });
      this.#refuse(sock.data, RefuseReason.Other, refusal);
    }
  }

  #onData(sock: Socket<Conn>, chunk: Uint8Array): void {
    const conn = sock.data;
    if (conn.ended) return;
    let messages: ControlMessage[];
    try {
      messages = conn.channel.receive(chunk);
    } catch (e) {
      const why = e instanceof DecodeError ? e.message : String(e);
      if (!conn.session && e instanceof DecodeError) {
        // Tell a client of another version (or a broken one) plainly instead of just hanging up.
        const mismatch = e.code === "bad-version";
        this.#log.warn("client refused", { client: conn.peer, reason: mismatch ? "version mismatch" : "bad hello", detail: why });
        this.#refuse(conn, mismatch ? RefuseReason.VersionMismatch : RefuseReason.BadHello, `${mismatch ? "protocol version mismatch" : "bad hello"}: ${why}`);
        return;
      }
      this.#log.warn("malformed control message", { client: conn.peer, error: why });
      if (conn.session) conn.channel.send({ type: "bye", reason: ByeReason.ProtocolError });
      this.#end(conn, "protocol error");
      return;
    }
    for (const msg of messages) {
      if (conn.ended) return;
      try {
        this.#onMessage(conn, msg);
      } catch (e) {
        // A bug here must cost one connection, not the server.
        this.#log.error("control message handling failed", { client: conn.peer, type: msg.type, error: (e as Error).message });
        this.#end(conn, "protocol error");
        return;
      }
    }
  }

  #onMessage(conn: Conn, msg: ControlMessage): void {
    const now = performance.now();
    if (!conn.session) {
      if (msg.type !== "hello") {
        this.#log.warn("client refused", { client: conn.peer, reason: `expected hello, got ${msg.type}` });
        this.#refuse(conn, RefuseReason.BadHello, `expected hello, got ${msg.type}`);
        return;
      }
      this.#onHello(conn, msg, now);
      return;
    }
    this.#sessions.heard(conn.session.id, now);
    switch (msg.type) {
      case "heartbeat":
        return;
      case "report":
        conn.session.lastReport = {
          framesReceived: msg.framesReceived,
          framesLost: msg.framesLost,
          framesIncomplete: msg.framesIncomplete,
          latencyP50Us: msg.latencyP50Us,
        };
        return;
      case "bye":
        this.#end(conn, "goodbye");
        return;
      default:
        this.#log.warn("unexpected control message", { client: conn.peer, type: msg.type });
        conn.channel.send({ type: "bye", reason: ByeReason.ProtocolError });
        this.#end(conn, "protocol error");
    }
  }

  #onHello(conn: Conn, hello: Extract<ControlMessage, { type: "hello" }>, now: number): void {
    const udp = hello.udpPort;
    const peer = { address: conn.address, tcpPort: conn.tcpPort, udpPort: udp, name: hello.name };
    let admission = this.#sessions.admit(peer, now);
    if (!admission.ok && admission.reason === "duplicate") {
      // Only one socket can hold that address and port, so a new hello for it means the
      // old session's viewer is gone (it reconnected before the server noticed): replace it.
      const old = [...this.#conns].find((c) => c.data.session?.address === conn.address && c.data.session.udpPort === udp)?.data;
      if (old) {
        old.channel.send({ type: "bye", reason: ByeReason.Other });
        this.#end(old, "replaced by a new session");
      }
      admission = this.#sessions.admit(peer, now);
    }
    if (!admission.ok) {
      this.#log.warn("client refused", { client: conn.peer, udp, reason: "server full", max: this.#opts.maxClients });
      this.#refuse(conn, RefuseReason.ServerFull, `server full: ${this.#opts.maxClients} viewers already connected`);
      return;
    }
    const s = admission.session;
    conn.session = s;
    conn.fragmenter = new Fragmenter(this.#opts.mtu);
    const { width, height, fps } = this.#opts.stream;
    conn.channel.send({
      type: "welcome",
      sessionId: s.id,
      width,
      height,
      fpsMillihertz: Math.round(fps * 1000),
      fragmentSize: conn.fragmenter.payloadSize,
      udpSourcePort: this.#udp.port,
      heartbeatMs: this.#opts.heartbeatMs,
      timeoutMs: this.#opts.timeoutMs,
      flags: 0,
    });
    this.#log.info("client joined", { client: conn.peer, udp, session: s.id.toString(16).padStart(8, "0"), name: hello.name || undefined, clients: this.#sessions.size });
  }

  #refuse(conn: Conn, reason: RefuseReason, text: string): void {
    conn.ended = true;
    conn.channel.finish({ type: "refuse", reason, text });
  }

  /** Ends a connection and its session once, logging the leave with its reason. */
  #end(conn: Conn, reason: LeaveReason): void {
    if (conn.ended) return;
    conn.ended = true;
    const s = conn.session;
    if (s && this.#sessions.remove(s.id)) {
      this.#pacer.remove(s.id);
      const r = s.lastReport;
      this.#log.info("client left", {
        client: conn.peer,
        udp: s.udpPort,
        session: s.id.toString(16).padStart(8, "0"),
        reason,
        seconds: ((performance.now() - s.joinedAt) / 1000).toFixed(1),
        framesSent: s.framesSent,
        framesReceived: r?.framesReceived,
        framesLost: r ? r.framesLost + r.framesIncomplete : undefined,
        clients: this.#sessions.size,
      });
    }
    conn.channel.finish();
  }

  #onClosed(sock: Socket<Conn>, reason: LeaveReason): void {
    if (!sock.data) return;
    this.#end(sock.data, reason);
    this.#conns.delete(sock);
  }

  #onHeartbeat(): void {
    const now = performance.now();
    const sentAt = Math.round((performance.timeOrigin + now) * 1000);
    for (const sock of this.#conns) {
      const c = sock.data;
      if (c.ended) continue;
      if (!c.session) {
        if (now - c.openedAt > this.#opts.timeoutMs) {
          this.#log.warn("connection closed", { client: c.peer, reason: "no hello within timeout" });
          c.ended = true;
          c.channel.close();
        }
        continue;
      }
      c.channel.send({ type: "heartbeat", sentAt });
    }
    for (const s of this.#sessions.expired(now)) {
      const c = this.#connOf(s.id);
      if (!c) continue;
      c.channel.send({ type: "bye", reason: ByeReason.Timeout });
      this.#end(c, "timeout");
    }
  }

  #connOf(id: number): Conn | undefined {
    for (const sock of this.#conns) if (sock.data.session?.id === id) return sock.data;
    return undefined;
  }

  /** Says goodbye to every viewer and closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#pacing) clearInterval(this.#pacing);
    for (const sock of this.#conns) {
      const c = sock.data;
      if (c.ended) continue;
      if (c.session) c.channel.send({ type: "bye", reason: ByeReason.Shutdown });
      this.#end(c, "server shutdown");
    }
    // Give the goodbyes a moment to leave before the listener goes.
    const deadline = performance.now() + 500;
    while ([...this.#conns].some((s) => !s.data.channel.closed) && performance.now() < deadline) await Bun.sleep(10);
    this.#listener.stop(true);
    this.#udp.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
