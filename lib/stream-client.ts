import type { Socket, udp } from "bun";
import { ControlChannel } from "./control-channel.ts";
import { ByeReason, PROTOCOL_VERSION, byeReasonText, refuseReasonText, type ControlMessage } from "./control.ts";
import { DecodeError } from "./decode-error.ts";
import { nowMicros } from "./frame.ts";
import { Reassembler, type ReassembledFrame } from "./reassembler.ts";
import { enlargeReceiveBuffer, socketFd, type BufferResult } from "./udp-buffer.ts";

/** What the server promised in its welcome. */
export type Welcome = Extract<ControlMessage, { type: "welcome" }>;

/** A connection attempt that failed; the message is meant for the user as is. */
export class ConnectError extends Error {
  override name = "ConnectError";
  constructor(message: string, readonly refused = false) {
    super(message);
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

  /** Connects, says hello and waits for the welcome; ConnectError on failure or refusal. */
  async connect(): Promise<Welcome> {
    if (this.#live) throw new Error("already connected");
    const { host, port } = this.#opts;
    this.#serverIp = await resolveIPv4(host);
    let settle!: { ok: (w: Welcome) => void; fail: (e: Error) => void };
    const handshake = new Promise<Welcome>((ok, fail) => (settle = { ok, fail }));
    let channel!: ControlChannel;
    let welcomed = false;
    let live: Live | null = null;
    const onMessage = (msg: ControlMessage) => {
      if (!welcomed) {
        if (msg.type === "welcome") {
          welcomed = true;
          settle.ok(msg);
        } else if (msg.type === "refuse") {
          settle.fail(new ConnectError(`server ${host}:${port} refused the session: ${msg.text || refuseReasonText(msg.reason)}`, true));
        } else {
          settle.fail(new ConnectError(`server ${host}:${port} answered the hello with ${msg.type}, not welcome`));
        }
        return;
      }
      if (!live) return;
      live.lastHeardAt = performance.now();
      if (msg.type === "bye") live.end({ reason: "server bye", text: byeReasonText(msg.reason) });
    };
    let tcp: Socket<undefined>;
    try {
      tcp = await Bun.connect({
        hostname: this.#serverIp,
        port,
        socket: {
          data: (_s, chunk) => {
            let msgs: ControlMessage[];
            try {
              msgs = channel.receive(chunk);
            } catch (e) {
              const text = e instanceof DecodeError ? e.message : String(e);
              if (live) live.end({ reason: "protocol error", text });
              else settle.fail(new ConnectError(`server ${host}:${port} sent a malformed message: ${text}`));
              channel.close();
              return;
            }
            for (const m of msgs) onMessage(m);
          },
          drain: () => channel.drain(),
          close: () => {
            if (live) live.end({ reason: "connection closed" });
            else settle.fail(new ConnectError(`server ${host}:${port} closed the connection during the handshake`));
          },
          error: (_s, err) => {
            if (!live) settle.fail(new ConnectError(`cannot talk to ${host}:${port}: ${err.message}`));
          },
        },
      });
    } catch (e) {
      const code = (e as { code?: string }).code ?? (e as Error).message;
      throw new ConnectError(`cannot connect to ${host}:${port}: ${code === "ECONNREFUSED" ? "connection refused (is lancam server running there?)" : code}`);
    }
    channel = new ControlChannel(tcp);
    channel.send({ type: "hello", version: PROTOCOL_VERSION, udpPort: this.#udp.port, capabilities: 0, name: this.#opts.name ?? "" });
    const timeout = setTimeout(
      () => settle.fail(new ConnectError(`server ${host}:${port} did not answer the hello within ${(this.#opts.connectTimeoutMs ?? 5000) / 1000} s`)),
      this.#opts.connectTimeoutMs ?? 5000,
    );
    let welcome: Welcome;
    try {
      welcome = await handshake;
    } catch (e) {
      channel.close();
      throw e;
    } finally {
      clearTimeout(timeout);
    }
    this.#reassembler.reset(welcome.sessionId);
    this.#receiving = false;
    let end!: (e: SessionEnd) => void;
    const ended = new Promise<SessionEnd>((resolve) => (end = resolve));
    const self: Live = {
      tcp, channel, welcome, lastHeardAt: performance.now(), ended,
      end: (e) => {
        if (this.#live !== self) return;
        this.#live = null;
        clearInterval(self.timer);
        channel.close();
        end(e);
      },
      timer: setInterval(() => this.#tick(), Math.max(100, welcome.heartbeatMs)),
    };
    live = self;
    this.#live = self;
    return welcome;
  }

  /** Starts accepting the session's datagrams (after the caller has set up for the stream the welcome describes). */
  resume(): void {
    this.#receiving = true;
  }

  /** Resolves when the current session ends (immediately `stopped` when none is running). */
  get ended(): Promise<SessionEnd> {
    return this.#live?.ended ?? Promise.resolve({ reason: "stopped" });
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
