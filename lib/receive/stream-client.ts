import type { Socket, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import { ByeReason, PROTOCOL_VERSION, RefuseReason, byeReasonText, refuseReasonText, type ControlMessage } from "../wire/control.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { nowMicros } from "../wire/frame.ts";
import { Reassembler, type ReassembledFrame } from "./reassembler.ts";
import { enlargeReceiveBuffer, socketFd, type BufferResult } from "../net/udp-buffer.ts";

/** What the server promised in its welcome. */
export type Welcome = Extract<ControlMessage, { type: "welcome" }>;

/** How often the reassembler gives up on stale partial frames (its timeout is 500 ms). */
const SWEEP_MS = 100;

/** A connection attempt that failed; the message is meant for the user as is. */
export class ConnectError extends Error {
  override name = "ConnectError";
  /**
   * `refusedFor`: the server's refuse reason when it answered with one. Only some of
   * them are final for a viewer that is reconnecting (see `isFinal`).
   */
  constructor(message: string, readonly refusedFor: RefuseReason | null = null) {
    super(message);
  }

  /** A refusal that retrying cannot cure: another protocol version, a bad hello, auth. */
  get isFinal(): boolean {
    const r = this.refusedFor;
    return r === RefuseReason.VersionMismatch || r === RefuseReason.BadHello || r === RefuseReason.AuthRequired;
  }
}

/** Why a running session ended. */
export type SessionEnd = { reason: "stopped" } | { reason: "server bye"; text: string } | { reason: "connection closed" } | { reason: "timeout" } | { reason: "protocol error"; text: string };

/** The client's options. */
export interface StreamClientOptions {
  host: string;
  port: number;
  udpPort: number;
  name?: string;
  receiveBufferBytes?: number;
  connectTimeoutMs?: number;
  onFrame: (frame: ReassembledFrame, nowMs: number) => void;
  /** Every datagram accepted by the address filter, counted before reassembly. */
  onDatagram?: () => void;
}

interface Live {
  tcp: Socket<undefined>;
  channel: ControlChannel;
  welcome: Welcome;
  lastHeardAt: number;
  timer: Timer;
  end: (e: SessionEnd) => void;
  ended: Promise<SessionEnd>;
}

/**
 * One viewer's network side: a UDP socket bound once (kept across reconnects, so the
 * port stays), and a TCP control session made by `connect()` and run until `ended`.
 * Datagrams count only when they come from the TCP peer's address and the port the
 * welcome named, with the session id it gave.
 */
export class StreamClient implements AsyncDisposable {
  /** Datagrams dropped before reassembly: from another address or port, or before `resume()`. */
  readonly droppedForeign = { address: 0, notReady: 0 };
  receiveBuffer: BufferResult | null = null;
  reports: () => Extract<ControlMessage, { type: "report" }> = () => ({
    type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
  });
  readonly #opts: StreamClientOptions;
  #udp!: udp.Socket<"buffer">;
  #serverIp = "";
  #reassembler = new Reassembler({ sessionId: 0 });
  #live: Live | null = null;
  #receiving = false;
  #cancelConnect: (() => void) | null = null;
  #ended: Promise<SessionEnd> = Promise.resolve({ reason: "stopped" });
  #lastBeatAt = 0;

  private constructor(opts: StreamClientOptions) {
    this.#opts = opts;
  }

  /** Binds the UDP port; a port in use is a ConnectError naming it. */
  static async open(opts: StreamClientOptions): Promise<StreamClient> {
    const c = new StreamClient(opts);
    try {
      c.#udp = await Bun.udpSocket({
        hostname: "0.0.0.0",
        port: opts.udpPort,
        socket: { data: (_s, buf, port, addr) => c.#onDatagram(buf, port, addr) },
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const why = code === "EADDRINUSE" ? "it is in use; choose another UDPPORT, or 0 for any free port" : (e as Error).message;
      throw new ConnectError(`cannot receive on UDP port ${opts.udpPort}: ${why}`);
    }
    c.receiveBuffer = enlargeReceiveBuffer(socketFd(c.#udp), opts.receiveBufferBytes ?? 4 << 20);
    return c;
  }

  /** The UDP port frames arrive on (the real one when 0 was asked for). */
  get udpPort(): number {
    return this.#udp.port;
  }

  /** The reassembler's counters (cumulative across reconnects). */
  get reassembly(): Reassembler["stats"] {
    return this.#reassembler.stats;
  }

  /**
   * Connects, says hello and waits for the welcome; ConnectError on failure, refusal,
   * or when the whole handshake (TCP connect included) takes longer than the timeout.
   * `disconnect()` during it cancels it with a ConnectError.
   */
  async connect(): Promise<Welcome> {
    if (this.#live || this.#cancelConnect) throw new Error("already connected");
    const { host, port } = this.#opts;
    const timeoutMs = this.#opts.connectTimeoutMs ?? 5000;
    let settle!: { ok: (w: Welcome) => void; fail: (e: Error) => void };
    const handshake = new Promise<Welcome>((ok, fail) => (settle = { ok, fail }));
    const timeout = setTimeout(() => settle.fail(new ConnectError(`server ${host}:${port} did not complete the handshake within ${timeoutMs / 1000} s`)), timeoutMs);
    this.#cancelConnect = () => settle.fail(new ConnectError("connection attempt cancelled"));
    let channel: ControlChannel | null = null;
    let welcomed = false;
    let live: Live | null = null;
    // What ends the session before `live` exists (a bye in the same packet as the welcome).
    let early: SessionEnd | null = null;
    const endSession = (e: SessionEnd) => {
      if (live) live.end(e);
      else early ??= e;
    };
    const onMessage = (msg: ControlMessage) => {
      if (!welcomed) {
        if (msg.type === "welcome") {
          welcomed = true;
          settle.ok(msg);
        } else if (msg.type === "refuse") {
          settle.fail(new ConnectError(`server ${host}:${port} refused the session: ${msg.text || refuseReasonText(msg.reason)}`, msg.reason));
        } else {
          settle.fail(new ConnectError(`server ${host}:${port} answered the hello with ${msg.type}, not welcome`));
        }
        return;
      }
      if (live) live.lastHeardAt = performance.now();
      if (msg.type === "bye") endSession({ reason: "server bye", text: byeReasonText(msg.reason) });
    };
    const socketHandlers = {
      data: (_s: Socket<undefined>, chunk: Uint8Array) => {
        if (!channel) return;
        let msgs: ControlMessage[];
        try {
          msgs = channel.receive(chunk);
        } catch (e) {
          const text = e instanceof DecodeError ? e.message : String(e);
          if (welcomed) endSession({ reason: "protocol error", text });
          else settle.fail(new ConnectError(`server ${host}:${port} sent a malformed message: ${text}`));
          channel.close();
          return;
        }
        for (const m of msgs) onMessage(m);
      },
      drain: () => channel?.drain(),
      close: () => {
        if (welcomed) endSession({ reason: "connection closed" });
        else settle.fail(new ConnectError(`server ${host}:${port} closed the connection during the handshake`));
      },
      error: (_s: Socket<undefined>, err: Error) => {
        if (!welcomed) settle.fail(new ConnectError(`cannot talk to ${host}:${port}: ${err.message}`));
      },
    };
    let connecting: Promise<Socket<undefined>> | null = null;
    let tcp: Socket<undefined>;
    let welcome: Welcome;
    try {
      this.#serverIp = await Promise.race([resolveIPv4(host), handshake.then(() => "")]);
      connecting = Bun.connect({ hostname: this.#serverIp, port, socket: socketHandlers });
      tcp = await Promise.race([
        connecting.catch((e: unknown) => {
          const code = (e as { code?: string }).code ?? (e as Error).message;
          throw new ConnectError(`cannot connect to ${host}:${port}: ${code === "ECONNREFUSED" ? "connection refused (is lancam server running there?)" : code}`);
        }),
        handshake.then((): never => {
          throw new Error("unreachable: welcome before connect");
        }),
      ]);
      channel = new ControlChannel(tcp);
      channel.send({ type: "hello", version: PROTOCOL_VERSION, udpPort: this.#udp.port, capabilities: 0, name: this.#opts.name ?? "" });
      welcome = await handshake;
    } catch (e) {
      channel?.close();
      // Given up (timeout, cancel, refusal): a connect still under way must not leave a socket behind.
      void connecting?.then((late) => late.end(), () => {});
      throw e;
    } finally {
      clearTimeout(timeout);
      this.#cancelConnect = null;
    }
    this.#reassembler.reset(welcome.sessionId);
    this.#receiving = false;
    let end!: (e: SessionEnd) => void;
    const ended = new Promise<SessionEnd>((resolve) => (end = resolve));
    const ch = channel;
    const self: Live = {
      tcp, channel: ch, welcome, lastHeardAt: performance.now(), ended,
      end: (e) => {
        if (this.#live !== self) return;
        this.#live = null;
        clearInterval(self.timer);
        ch.close();
        end(e);
      },
      // Heartbeats and reports once per heartbeat interval; the reassembler is swept more often
      // so an incomplete frame is given up close to its timeout.
      timer: setInterval(() => this.#tick(), SWEEP_MS),
    };
    live = self;
    this.#live = self;
    this.#ended = ended;
    if (early) self.end(early);
    return welcome;
  }

  /** Starts accepting the session's datagrams (after the caller has set up for the stream the welcome describes). */
  resume(): void {
    this.#receiving = true;
  }

  /** Resolves when the latest session ends (at once with `stopped` when none was made). */
  get ended(): Promise<SessionEnd> {
    return this.#ended;
  }

  #tick(): void {
    const live = this.#live;
    if (!live) return;
    const now = performance.now();
    this.#reassembler.sweep(now);
    if (now - live.lastHeardAt > live.welcome.timeoutMs) {
      live.end({ reason: "timeout" });
      return;
    }
    if (now - this.#lastBeatAt < live.welcome.heartbeatMs) return;
    this.#lastBeatAt = now;
    live.channel.send({ type: "heartbeat", sentAt: nowMicros() });
    live.channel.send(this.reports());
  }

  #onDatagram(buf: Uint8Array, port: number, addr: string): void {
    const live = this.#live;
    if (!live || !this.#receiving) {
      this.droppedForeign.notReady++;
      return;
    }
    if (addr !== this.#serverIp || port !== live.welcome.udpSourcePort) {
      this.droppedForeign.address++;
      return;
    }
    this.#opts.onDatagram?.();
    const now = performance.now();
    const frame = this.#reassembler.push(buf, now);
    if (frame) this.#opts.onFrame(frame, now);
  }

  /** Ends the session (saying goodbye) but keeps the UDP port for a reconnect. */
  disconnect(reason: ByeReason = ByeReason.UserQuit): void {
    this.#cancelConnect?.();
    const live = this.#live;
    if (!live) return;
    live.channel.send({ type: "bye", reason });
    live.end({ reason: "stopped" });
  }


  /** Says goodbye and releases both sockets. */
  async close(): Promise<void> {
    this.disconnect();
    this.#udp.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** An IPv4 address for a host name or literal (the UDP filter compares literals). */
async function resolveIPv4(host: string): Promise<string> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return host;
  try {
    const found = await Bun.dns.lookup(host, { family: 4 });
    if (found[0]) return found[0].address;
  } catch {
    // reported below
  }
  throw new ConnectError(`cannot resolve ${host} to an IPv4 address`);
}
