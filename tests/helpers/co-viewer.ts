import type { udp } from "bun";
import { ControlChannel } from "../../lib/net/control-channel.ts";
import { ControlMac } from "../../lib/net/control-mac.ts";
import { tokenKey } from "../../lib/net/session-keys.ts";
import { Handshake, type HandshakeAction, type HandshakeInput } from "../../lib/receive/handshake.ts";
import type { Welcome } from "../../lib/wire/control.ts";
import { decodeDatagram } from "../../lib/wire/datagram.ts";

/** What a co-viewer offers, and who sees every datagram it receives as it came (the bytes on the wire). */
export interface CoViewerOptions {
  /** Offer audio (CAP_AUDIO). */
  audio?: boolean;
  onDatagram?: (bytes: Uint8Array) => void;
}

/**
 * A second viewer, run in this process with the library's own handshake: what any
 * viewer (with the token: any token holder) learns. Its welcome, its current stream
 * key, and the newest frame number of the live stream (from its own datagrams).
 */
export class CoViewer implements AsyncDisposable {
  welcome: Welcome | null = null;
  key: { id: number; key: Uint8Array } | null = null;
  /** What the last audio message said (null: none came). */
  audioAvailable: boolean | null = null;
  liveFrame: number | null = null;
  readonly #machine: Handshake;
  readonly #udp: udp.Socket<"buffer">;
  readonly #ticker: Timer;
  readonly #port: number;
  #channel: ControlChannel | null = null;
  #socket: { end(): void } | null = null;

  private constructor(udp: udp.Socket<"buffer">, port: number, token: string | null, opts: CoViewerOptions) {
    this.#udp = udp;
    this.#port = port;
    this.#machine = new Handshake({
      server: `127.0.0.1:${port}`, udpPort: udp.port, name: "co-viewer", multicast: false, audio: opts.audio ?? false,
      auth: token ? { token: tokenKey(token) } : null,
      report: () => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }),
      totals: () => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 }),
    });
    this.#ticker = setInterval(() => this.#push({ type: "tick" }), 100);
    this.#push({ type: "start" });
  }

  static async join(port: number, token: string | null, opts: CoViewerOptions = {}): Promise<CoViewer> {
    let self: CoViewer | null = null;
    const udp = await Bun.udpSocket({
      hostname: "127.0.0.1", port: 0,
      socket: {
        data: (_s, buf) => {
          opts.onDatagram?.(new Uint8Array(buf));
          try {
            const h = decodeDatagram(buf).header;
            if (self && (self.liveFrame === null || ((h.frameNumber - self.liveFrame) | 0) > 0)) self.liveFrame = h.frameNumber;
          } catch {
            // Not a lancam datagram: nothing to learn.
          }
        },
      },
    });
    self = new CoViewer(udp, port, token, opts);
    return self;
  }

  #connect(): void {
    void Bun.connect({
      hostname: "127.0.0.1", port: this.#port,
      socket: {
        open: (tcp) => {
          this.#socket = tcp;
          this.#channel = new ControlChannel(tcp);
          this.#push({ type: "connected" });
        },
        data: (_tcp, chunk) => {
          for (const msg of this.#channel!.receive(chunk)) if (this.#channel!.authentic(msg)) this.#push({ type: "message", msg });
        },
        drain: () => this.#channel?.drain(),
        close: () => this.#push({ type: "closed" }),
      },
    });
  }

  #push(input: HandshakeInput): void {
    for (const a of this.#machine.push(input, performance.now())) this.#carryOut(a);
  }

  #carryOut(a: HandshakeAction): void {
    if (a.type === "connect") this.#connect();
    else if (a.type === "send") this.#channel?.send(a.msg);
    else if (a.type === "secure") this.#channel?.secure(new ControlMac({ send: a.keys.clientMac, receive: a.keys.serverMac }));
    else if (a.type === "receive") this.welcome = a.welcome;
    else if (a.type === "audio") this.audioAvailable = a.available;
    else if (a.type === "key") this.key = { id: a.id, key: a.key };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#ticker);
    this.#push({ type: "stop" });
    this.#socket?.end();
    this.#udp.close();
  }
}

