import type { Socket, TCPSocketListener, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import { ControlMac } from "../net/control-mac.ts";
import { wrapStreamKey } from "../net/frame-cipher.ts";
import type { TokenKey } from "../net/session-keys.ts";
import { WRAP_NONCE_SIZE, type ControlMessage } from "../wire/control.ts";
import { MAX_FRAGMENTS, MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { FrameSealer, type SealedFrame } from "./frame-sealer.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Frame } from "../wire/frame.ts";
import type { Logger } from "../log/format.ts";
import { throttled } from "../log/logger.ts";
import { Pacer } from "./pacer.ts";
import type { SendCounters, StreamTarget } from "./sessions.ts";
import { Admission, DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_PER_HOST, type AdmissionAction, type ConnId, type OtherCounters, type ViewerSummary } from "./admission.ts";
import type { LockoutOptions } from "./auth-lockout.ts";
import { ClassicEncoder, type FitFunction } from "./classic-encoder.ts";
import { CLASSIC_TICK_MS } from "./classic-viewers.ts";
import { enlargeBuffer, socketFd } from "../net/udp-buffer.ts";
import { configureGroupSender, type GroupConfig } from "../net/multicast.ts";

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
  /** Connections that have not said hello yet; one more evicts the oldest. */
  maxPending?: number;
  /** How long a connection may take to say hello (and answer the challenge). */
  helloTimeoutMs?: number;
  /** Viewers of every kind from one address. */
  maxPerHost?: number;
  /** How long a viewer's UDP port may answer only with ICMP errors before its session ends. */
  unreachableMs?: number;
  /** The token, stretched: viewers must prove it, and every frame is encrypted. Null: open to anyone. */
  token?: TokenKey | null;
  /** How repeated wrong tokens from one address are slowed down. */
  lockout?: LockoutOptions;
  /** Most control bytes held for a viewer that does not read (default MAX_PENDING_BYTES). */
  maxControlBacklog?: number;
  /** Fraction of the frame interval a frame's datagrams are spread over. */
  spread?: number;
  /**
   * Classroom viewers: JPEG quality of pictures re-encoded to fit one datagram
   * (default 80), their resend and timeout, and the fit function (tests pass their own).
   */
  classic?: { quality?: number; resendMs?: number; timeoutMs?: number; fit?: FitFunction };
  /** Send each datagram once to this multicast group for every viewer that can join it. Null: unicast only. */
  multicast?: GroupConfig | null;
  /** The session id of the group's datagrams; random (non-zero) by default. */
  streamId?: number;
}

/** Per-connection state kept on the Bun socket. */
interface Conn {
  id: ConnId;
  channel: ControlChannel;
  peer: string;
  /** Admission let go of it: what arrives now is ignored. */
  closing: boolean;
  stream: Stream | null;
  /** An authenticated connection's key-wrap key and how many keys it was sent (each needs its own nonce). */
  wrap: { key: Uint8Array; sent: number } | null;
}

/** One viewer's frames: where they go, the buffer they are cut into, and what was sent (read by admission). */
interface Stream {
  kind: "viewer";
  target: StreamTarget;
  /** By the group until its viewer asks for unicast (admission's "unicast" action). */
  delivery: "multicast" | "unicast";
  sent: SendCounters;
  datagramsSent: number;
  /** Datagrams of an older frame not yet sent when a newer frame replaced them. */
  datagramsSuperseded: number;
  fragmenter: Fragmenter;
  /** Its connection, for the stream keys it is sent. */
  conn: Conn;
  /** When datagrams last went to it (an ICMP error is blamed on those sent to lately). */
  lastSentAt: number;
}

/** The multicast group's frames: cut once, sent once, for every viewer in the group. */
interface GroupStream {
  kind: "group";
  fragmenter: Fragmenter;
  target: { address: string; port: number };
  streamId: number;
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
  /** Connections reset before the server could look at them (no peer address left). */
  connectionsGoneAtOpen: number;
  /** Control messages with a missing or wrong tag (dropped). */
  controlForged: number;
  /** Wrong token proofs (each logged as refused reason=auth). */
  authFailures: number;
  /** Reports and bye totals that claimed more than was sent (ignored). */
  reportsRejected: number;
  /** Connections closed to make room for newer ones while many waited for their hello. */
  pendingEvicted: number;
  /** Frames encrypted: once each, whatever the number of viewers. */
  framesEncrypted: number;
  /** Stream keys started after the first (viewers leaving, counters running out). */
  keyRotations: number;
  /** Frames sent to the multicast group (once each, whatever the number of viewers in it). */
  groupFramesSent: number;
  /** Datagrams sent to the multicast group (counted in datagramsSent too). */
  groupDatagramsSent: number;
  /** Viewers the group did not reach, switched to unicast. */
  fallbacks: number;
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

/** A non-zero u32: the session id of the group's datagrams. */
function randomStreamId(): number {
  const a = new Uint32Array(1);
  do crypto.getRandomValues(a);
  while (a[0] === 0);
  return a[0]!;
}

/** Strips the IPv4-mapped prefix so addresses compare and print plainly. */
function plainAddress(a: string): string {
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

/**
 * The peer of a just-opened socket, or null when it has none: a connection reset
 * before its open callback ran has no remote address any more.
 */
export function peerOf(sock: { remoteAddress?: string | null; remotePort?: number }): { address: string; port: number } | null {
  const a = sock.remoteAddress;
  if (typeof a !== "string" || a === "") return null;
  return { address: plainAddress(a), port: sock.remotePort ?? 0 };
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
    connectionsGoneAtOpen: 0, controlForged: 0, authFailures: 0, reportsRejected: 0, pendingEvicted: 0, framesEncrypted: 0, keyRotations: 0,
    groupFramesSent: 0, groupDatagramsSent: 0, fallbacks: 0,
  };
  readonly #opts: Required<StreamServerOptions>;
  readonly #log: Logger;
  readonly #conns = new Map<ConnId, Socket<Conn>>();
  readonly #streams = new Set<Stream>();
  /** The streams by session id, for admission's reading of what was sent. */
  readonly #bySession = new Map<number, Stream>();
  readonly #pacer = new Pacer<Stream | GroupStream>();
  /** The multicast group's sender; null without --multicast. */
  readonly #group: GroupStream | null;
  /** Viewers whose frames go by the group (a subset of #streams). */
  #inGroup = 0;
  readonly #sendBuf: (Uint8Array | number | string)[] = [];
  readonly #warnSend: (detail: string) => void;
  readonly #warnNotSent: (detail: string) => void;
  readonly #warnNotFitted: (detail: string) => void;
  readonly #warnForged: (detail: string) => void;
  readonly #maxFrameBytes: number;
  /** Encrypts each frame once for all viewers; null without a token. */
  readonly #sealer: FrameSealer | null;
  readonly #sealedFragmentSize: number;
  /** A viewer left: a new stream key before the next frame, so it cannot read what follows. */
  #rekey = false;
  /** ICMP errors since the last tick (they do not say for whom). */
  #icmpSinceTick = false;
  #lastTickAt = 0;
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
    this.#opts = {
      heartbeatMs: 1000, timeoutMs: 5000, maxPending: 64, spread: DEFAULT_SPREAD, classic: {}, helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS, maxPerHost: DEFAULT_MAX_PER_HOST, unreachableMs: 5000,
      token: null, lockout: {}, maxControlBacklog: 64 * 1024, multicast: null, streamId: randomStreamId(), ...opts,
    };
    this.#log = opts.log;
    this.#warnSend = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("udp send failed", { error: detail, similar: suppressed || undefined }));
    this.#warnNotSent = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not sent", { detail, similar: suppressed || undefined }));
    this.#warnNotFitted = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not fitted for classroom viewers", { detail, similar: suppressed || undefined }));
    this.#warnForged = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("control message with a wrong tag dropped", { client: detail, similar: suppressed || undefined }));
    this.#sealer = opts.token ? new FrameSealer() : null;
    const probe = new Fragmenter(opts.mtu);
    this.#sealedFragmentSize = probe.sealedFragmentSize;
    this.#maxFrameBytes = Math.min(MAX_FRAME_BYTES, MAX_FRAGMENTS * (this.#sealer ? probe.sealedFragmentSize : probe.payloadSize));
    this.#encoder = new ClassicEncoder({ quality: opts.classic?.quality, fit: opts.classic?.fit });
    const g = this.#opts.multicast;
    this.#group = g ? { kind: "group", fragmenter: new Fragmenter(opts.mtu), target: { address: g.address, port: g.port }, streamId: this.#opts.streamId } : null;
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

  /** Whether viewers must prove a token and frames are encrypted. */
  get encrypted(): boolean {
    return this.#sealer !== null;
  }

  /** The multicast group datagrams go to, or null without one. */
  get multicastGroup(): { address: string; port: number; streamId: number } | null {
    return this.#group && { ...this.#group.target, streamId: this.#group.streamId };
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
            this.#icmpSinceTick = true;
            this.#warnSend(err?.message ?? "unknown UDP error");
          },
        },
      });
    } catch (e) {
      throw new StartError(`cannot open a UDP socket on ${bind}: ${(e as Error).message}`);
    }
    const group = this.#opts.multicast;
    if (group) {
      try {
        configureGroupSender(this.#udp, group);
      } catch (e) {
        this.#udp.close();
        throw new StartError(`cannot send to multicast group ${group.address}:${group.port}: ${(e as Error).message}`);
      }
    }
    const { width, height, fps } = this.#opts.stream;
    try {
      // Built once here so a bad --mtu fails at start, not at the first hello.
      const fragmenter = new Fragmenter(this.#opts.mtu);
      this.#admission = new Admission({
        maxClients: this.#opts.maxClients,
        maxPending: this.#opts.maxPending,
        heartbeatMs: this.#opts.heartbeatMs,
        timeoutMs: this.#opts.timeoutMs,
        helloTimeoutMs: this.#opts.helloTimeoutMs,
        maxPerHost: this.#opts.maxPerHost,
        unreachableMs: this.#opts.unreachableMs,
        auth: this.#opts.token ? { token: this.#opts.token, lockout: this.#opts.lockout } : null,
        classic: { resendMs: this.#opts.classic.resendMs, timeoutMs: this.#opts.classic.timeoutMs },
        stream: {
          width, height, fpsMillihertz: Math.round(fps * 1000), udpSourcePort: this.#udp.port,
          fragmentSize: this.#sealer ? fragmenter.sealedFragmentSize : fragmenter.payloadSize,
        },
        multicast: this.#group && { ...this.#group.target, streamId: this.#group.streamId },
        wallClockUs: (now) => Math.round((performance.timeOrigin + now) * 1000),
        sent: (id) => this.#bySession.get(id)?.sent,
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
    this.#ticker = setInterval(() => this.#tick(), Math.min(TICK_MS, this.#opts.heartbeatMs));
  }

  #tick(): void {
    const now = performance.now();
    if (this.#icmpSinceTick) {
      this.#icmpSinceTick = false;
      // The errors name no one: every session sent to since the last tick is a suspect.
      const since = this.#lastTickAt - TICK_MS;
      this.#admission.unreachable([...this.#streams].filter((st) => st.lastSentAt >= since).map((st) => st.target.id), now);
    }
    this.#lastTickAt = now;
    this.#apply(this.#admission.tick(now));
    this.#syncStats();
  }

  #syncStats(): void {
    const a = this.#admission;
    this.stats.authFailures = a.authFailures;
    this.stats.reportsRejected = a.reportsRejected;
    this.stats.pendingEvicted = a.pendingEvicted;
    this.stats.fallbacks = a.fallbacks;
    if (this.#sealer) {
      this.stats.framesEncrypted = this.#sealer.framesSealed;
      this.stats.keyRotations = this.#sealer.rotations;
    }
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
    let sealed: SealedFrame | null = null;
    if (this.#sealer) {
      this.#rotateIfDue();
      const r = this.#sealer.seal(frame, this.#sealedFragmentSize);
      // The key ran out (or the numbering went back): its holders get the new one before these datagrams.
      if (r.rotated) this.#sendKeyToAll();
      sealed = r.sealed;
      this.stats.framesEncrypted = this.#sealer.framesSealed;
    }
    for (const stream of this.#streams) {
      const sent = stream.sent;
      sent.firstFrame ??= frame.seq;
      sent.lastFrame = frame.seq;
      sent.framesSent++;
      // Its copy is the group's, cut and sent once below.
      if (stream.delivery === "multicast") continue;
      const t = stream.target;
      const datagrams = sealed ? stream.fragmenter.fragmentSealed(sealed, t.id) : stream.fragmenter.fragment(frame, t.id);
      const superseded = this.#pacer.enqueue(stream, { port: t.udpPort, address: t.address }, datagrams, now, spreadMs);
      stream.datagramsSuperseded += superseded;
      this.stats.datagramsSuperseded += superseded;
    }
    const group = this.#group;
    if (group && this.#inGroup > 0) {
      const datagrams = sealed ? group.fragmenter.fragmentSealed(sealed, group.streamId) : group.fragmenter.fragment(frame, group.streamId);
      this.stats.datagramsSuperseded += this.#pacer.enqueue(group, group.target, datagrams, now, spreadMs);
      this.stats.groupFramesSent++;
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

  /** One viewer's (or the group's) due datagrams in one sendMany; a throw (EPERM, ENETUNREACH...) drops them, counted. */
  readonly #send = (stream: Stream | GroupStream, target: { port: number; address: string }, datagrams: Uint8Array[], from: number, to: number): number => {
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
    if (stream.kind === "group") {
      this.stats.groupDatagramsSent += took;
      return took;
    }
    stream.datagramsSent += took;
    stream.lastSentAt = performance.now();
    return took;
  };

  /** After a viewer left: a new key, sent to every viewer still here, before the next frame is sealed. */
  #rotateIfDue(): void {
    if (!this.#rekey || !this.#sealer) return;
    this.#rekey = false;
    this.#sealer.rotate();
    this.stats.keyRotations = this.#sealer.rotations;
    this.#sendKeyToAll();
  }

  #sendKeyToAll(): void {
    for (const st of this.#streams) this.#sendKey(st.conn);
  }

  /** The current stream key, wrapped for this connection alone. */
  #sendKey(conn: Conn): void {
    const wrap = conn.wrap;
    if (!wrap || !this.#sealer) return;
    const { id, key } = this.#sealer.current;
    // A counter, not randomness: one wrap key never sees the same nonce twice.
    const nonce = new Uint8Array(WRAP_NONCE_SIZE);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(++wrap.sent));
    this.#sendTo(conn, { type: "key", keyId: id, nonce, wrapped: wrapStreamKey(wrap.key, nonce, id, key) });
  }

  /** Sends on a connection; one whose viewer stopped reading ends its session. */
  #sendTo(conn: Conn, msg: ControlMessage): void {
    if (conn.channel.send(msg) || !conn.channel.overflowed || conn.closing) return;
    this.#apply(this.#admission.stalled(conn.id, performance.now()));
  }

  #onOpen(sock: Socket<Conn>): void {
    const from = peerOf(sock);
    if (!from) {
      // Reset by the peer before this callback ran: there is no one to serve or to log.
      this.stats.connectionsGoneAtOpen++;
      sock.terminate();
      return;
    }
    const { address, port: tcpPort } = from;
    const id = this.#nextConnId++;
    const channel = new ControlChannel(sock, { maxPendingBytes: this.#opts.maxControlBacklog });
    sock.data = { id, channel, peer: `${address}:${tcpPort || "?"}`, closing: false, stream: null, wrap: null };
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
      // Checked one by one as they are handled: the channel is secured by the response, mid-chunk.
      if (!conn.channel.authentic(msg)) {
        this.stats.controlForged++;
        this.#warnForged(conn.peer);
        continue;
      }
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
          this.#sendTo(conn, a.msg);
          break;
        case "secure":
          conn.channel.secure(new ControlMac({ send: a.keys.serverMac, receive: a.keys.clientMac }));
          conn.wrap = { key: a.keys.wrap, sent: 0 };
          break;
        case "start":
          conn.stream = {
            kind: "viewer", target: a.session, delivery: a.session.delivery, sent: { framesSent: 0, firstFrame: null, lastFrame: null },
            datagramsSent: 0, datagramsSuperseded: 0, fragmenter: new Fragmenter(this.#opts.mtu), conn, lastSentAt: -Infinity,
          };
          this.#streams.add(conn.stream);
          this.#bySession.set(a.session.id, conn.stream);
          if (conn.stream.delivery === "multicast") this.#inGroup++;
          // After the welcome, before its first datagram; a key someone who left knows is never sent.
          if (this.#rekey) this.#rotateIfDue();
          else this.#sendKey(conn);
          break;
        case "unicast":
          // The rest of the frame being paced goes to the group; the next frame comes to it alone.
          if (conn.stream?.delivery === "multicast") {
            conn.stream.delivery = "unicast";
            this.#inGroup--;
          }
          this.#syncStats();
          break;
        case "stop":
          if (conn.stream) {
            if (conn.stream.delivery === "multicast") this.#inGroup--;
            if (this.#inGroup === 0 && this.#group) this.#pacer.remove(this.#group);
            this.#streams.delete(conn.stream);
            this.#bySession.delete(conn.stream.target.id);
            this.#pacer.remove(conn.stream);
            conn.stream = null;
            // It holds the current key: frames from now on go under a new one.
            if (this.#sealer && !this.#stopped) this.#rekey = true;
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
    // At once, not at the next frame: the key reaches the others while the next frame is captured.
    if (this.#rekey && this.#streams.size > 0) this.#rotateIfDue();
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
