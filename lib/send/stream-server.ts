import type { Socket, TCPSocketListener, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import { ControlMac } from "../net/control-mac.ts";
import { wrapStreamKey } from "../net/frame-cipher.ts";
import { CAP_AUDIO, CAP_REPAIR, CAP_SOURCE_STATUS, CAP_TCP_DELIVERY, CAP_VERIFY, SourceState, WELCOME_REPAIR, WELCOME_SOURCE_STATUS, WELCOME_TCP_DELIVERY, WRAP_NONCE_SIZE, formatIPv4, isMulticastIPv4, parseIPv4, type ControlMessage, type Delivery, type LayerGroup, type PathCounters, type RepairCounts, type Repair, type Report, type Switch } from "../wire/control.ts";
import { frameMessages, TcpDelivery, type TransportOutcome } from "./tcp-delivery.ts";
import { unsentBytes } from "../net/tcp-queue.ts";
import { socketFd as fdOf } from "../net/udp-buffer.ts";
import type { SendCounters } from "./sessions.ts";
import { DEFAULT_LAYER_QUALITY, LayerEncoder, type LayerFrames } from "./layer-encoder.ts";
import { StartError } from "./start-error.ts";
import { layerPlan } from "./layer-plan.ts";
import type { Size } from "./layer-ladder.ts";
import { RepairServer } from "./repair-server.ts";
import { MAX_FRAGMENTS, MAX_FRAME_BYTES } from "../wire/datagram.ts";
import { FrameSealer, type SealedFrame } from "./frame-sealer.ts";
import { FrameSigner } from "./frame-signer.ts";
import { SIGNATURE_SIZE } from "../net/frame-signature.ts";
import { Fragmenter } from "./fragmenter.ts";
import type { Frame } from "../wire/frame.ts";
import type { AudioPacket } from "../wire/audio-packet.ts";
import { encodeAudioDatagram } from "../wire/audio-datagram.ts";
import type { Logger } from "../log/format.ts";
import { throttled } from "../log/logger.ts";
import { FrameFanout } from "./frame-fanout.ts";
import type { StreamServerOptions } from "./stream-server-options.ts";
import { peerOf } from "./peer-address.ts";
import { plainAddress } from "../net/address.ts";
import { newServerStats, type ServerStats } from "./server-stats.ts";
import { Admission, DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_PER_HOST, type AdmissionAction, type ConnId, type OtherCounters, type ViewerSummary } from "./admission.ts";
import { ClassicEncoder } from "./classic-encoder.ts";
import { CLASSIC_TICK_MS } from "./classic-viewers.ts";
import { enlargeBuffer, socketFd } from "../net/udp-buffer.ts";
import { configureGroupSender } from "../net/multicast.ts";
import { CameraStream, type CameraOptions } from "./camera-stream.ts";
import type { AdmissionCamera } from "./admission-types.ts";

export type { OtherCounters, ViewerSummary } from "./admission.ts";
export type { ServerStats } from "./server-stats.ts";
export type { StreamServerOptions } from "./stream-server-options.ts";
export { peerOf } from "./peer-address.ts";

/** Per-connection state kept on the Bun socket. */
interface Conn {
  id: ConnId;
  channel: ControlChannel;
  peer: string;
  /** Admission let go of it: what arrives now is ignored. */
  closing: boolean;
  /** The session its frames go to (FrameFanout), once admission started one. */
  sessionId: number | null;
  /** An authenticated connection's key-wrap key and how many keys it was sent (each needs its own nonce). */
  wrap: { key: Uint8Array; sent: number } | null;
  /** Its hello offered CAP_VERIFY: its welcome carries the signing key. */
  verifies: boolean;
  /** A refused path report was logged for it (once per session). */
  pathRefusedLogged: boolean;
  /** The layer its last delivery message named (0 until one says otherwise). */
  layer: number;
  /** Its hello offered CAP_REPAIR and the server repairs: its welcome sets WELCOME_REPAIR. */
  repairs: boolean;
  /** The viewer's own repair counts from its latest report that had them, for its leave line. */
  reportedRepair: RepairCounts | null;
  /** Its hello offered CAP_SOURCE_STATUS: its welcome sets WELCOME_SOURCE_STATUS, and it is told when the camera fails and is back. */
  sourceStatus: boolean;
  /** Its hello offered CAP_TCP_DELIVERY: its welcome sets WELCOME_TCP_DELIVERY, it may send switch. */
  tcpCapable: boolean;
  /** The socket's descriptor, to ask the kernel what it still holds (TCP delivery); undefined where unknown. */
  fd: number | undefined;
  /** The camera its session watches (0 until one starts). */
  camera: number;
  /** Its hello offered CAP_AUDIO: where its camera has audio, its welcome says so and it is sent the audio datagrams. */
  audio: boolean;
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

export { StartError };

/**
 * The smaller layers' groups of a camera whose full layer goes to `address`:`port`: layer
 * L at the address + L, on the same port. An address of its own, not a port: IGMP
 * (and a switch's snooping) joins and leaves addresses, so a viewer that leaves a layer
 * for a smaller one stops receiving it only when the two differ in address (measured:
 * with one address and a port per layer, a viewer behind a 6 Mbit/s link that moved to
 * the quarter picture still had every layer forwarded to it, and lost every frame). Each
 * its own stream id, so a datagram of one size is never taken for another's under the
 * same frame number. A StartError when an address would leave 224.0.0.0/4.
 */
function layerGroupsOf(address: string, port: number, smaller: readonly Size[]): LayerGroup[] {
  const base = parseIPv4(address)!;
  return smaller.map((l, i) => {
    const a = base + i + 1;
    if (!isMulticastIPv4(a)) throw new StartError(`multicast group ${address} leaves no room for ${smaller.length} layer groups after it (${formatIPv4(base + 1)}...); choose a lower group address or --layers off`);
    return { address: formatIPv4(a), port, width: l.width, height: l.height, streamId: randomStreamId() };
  });
}

/** A non-zero u32: the session id of the group's datagrams. */
function randomStreamId(): number {
  const a = new Uint32Array(1);
  do crypto.getRandomValues(a);
  while (a[0] === 0);
  return a[0]!;
}

/**
 * The fan-out server: TCP control connections (hello, heartbeats, reports, bye)
 * and one UDP socket that sends every captured frame, encoded once, to every
 * viewer, paced over part of the frame interval. The protocol decisions are
 * Admission's; this class moves bytes and carries out what it returns.
 */
export class StreamServer implements AsyncDisposable {
  readonly stats: ServerStats = newServerStats();
  readonly #opts: Required<Omit<StreamServerOptions, "scaleJpeg" | "cameras">> & Pick<StreamServerOptions, "scaleJpeg" | "cameras">;
  readonly #log: Logger;
  readonly #conns = new Map<ConnId, Socket<Conn>>();
  /** Each camera's fan-out, keys, layers and repair, by number (lib/send/camera-stream.ts). */
  #cameras: CameraStream[] = [];
  readonly #cameraOptions: readonly CameraOptions[];
  readonly #warnSend: (detail: string) => void;
  readonly #warnNotSent: (detail: string) => void;
  readonly #warnNotFitted: (detail: string) => void;
  readonly #warnForged: (detail: string) => void;
  readonly #maxFrameBytes: number;
  /** Frames are encrypted (a token is set): each camera seals its own. */
  readonly #encrypted: boolean;
  readonly #sealedFragmentSize: number;
  /** ICMP errors since the last tick (they do not say for whom). */
  #icmpSinceTick = false;
  #lastTickAt = 0;
  /** Fits camera 0's frames for classroom viewers (they know of no other camera). */
  readonly #encoder: ClassicEncoder;
  #admission!: Admission;
  #listener!: TCPSocketListener<Conn>;
  #udp!: udp.Socket<"buffer">;
  #nextConnId = 1;
  #ticker: Timer | null = null;
  /** Runs only while classroom viewers are connected. */
  #classicTicker: Timer | null = null;
  #stopped = false;
  /** Which way each session's datagrams go, and whether UDP reaches it (lib/send/tcp-delivery.ts). */
  readonly #tcp: TcpDelivery;
  /** The connection of each session, for TCP delivery's writes. */
  readonly #bySession = new Map<number, Conn>();

  private constructor(opts: StreamServerOptions) {
    this.#opts = {
      heartbeatMs: 1000, timeoutMs: 5000, maxPending: 64, spread: DEFAULT_SPREAD, classic: {}, helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS, maxPerHost: DEFAULT_MAX_PER_HOST, unreachableMs: 5000,
      token: null, lockout: {}, maxControlBacklog: 64 * 1024, multicast: null, streamId: randomStreamId(), layers: { kind: "auto" }, layerQuality: DEFAULT_LAYER_QUALITY, repair: {}, tcpDelivery: true, ...opts,
    };
    this.#tcp = new TcpDelivery({ allowTcp: this.#opts.tcpDelivery });
    this.#cameraOptions = opts.cameras ?? [{ name: "0", ...opts.stream }];
    if (this.#cameraOptions.length === 0) throw new StartError("no camera to serve");
    this.#log = opts.log;
    this.#warnSend = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("udp send failed", { error: detail, similar: suppressed || undefined }));
    this.#warnNotSent = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not sent", { detail, similar: suppressed || undefined }));
    this.#warnNotFitted = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("frame not fitted for classroom viewers", { detail, similar: suppressed || undefined }));
    this.#warnForged = throttled(SEND_WARN_MS, (detail, suppressed) => this.#log.warn("control message with a wrong tag dropped", { client: detail, similar: suppressed || undefined }));
    this.#encrypted = !!opts.token;
    const probe = new Fragmenter(opts.mtu);
    this.#sealedFragmentSize = probe.sealedFragmentSize;
    this.#maxFrameBytes = Math.min(MAX_FRAME_BYTES, MAX_FRAGMENTS * (this.#encrypted ? probe.sealedFragmentSize : probe.payloadSize)) - SIGNATURE_SIZE;
    this.#encoder = new ClassicEncoder({ quality: opts.classic?.quality, fit: opts.classic?.fit });
    const g = this.#opts.multicast;
    // Camera N's group is the given group at port + N: a viewer's socket receives its own camera's datagrams only.
    if (g && g.port + this.#cameraOptions.length - 1 > 0xffff) throw new StartError(`multicast port ${g.port} leaves no room for ${this.#cameraOptions.length} cameras (they take ports ${g.port}..${g.port + this.#cameraOptions.length - 1})`);
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
    return this.#encrypted;
  }

  /** The fingerprint of the key camera 0's frames are signed with (printed at start, shown by viewers). */
  get signingFingerprint(): string {
    return this.#cameras[0]!.signer.fingerprint;
  }

  /** Camera 0's multicast group, or null without one. */
  get multicastGroup(): { address: string; port: number; streamId: number } | null {
    const g = this.#cameras[0]!.group;
    return g && { ...g };
  }

  /** Camera 0's smaller layers' own groups (layer 1, 2, ...); empty without a group or layers. */
  get layerGroups(): LayerGroup[] {
    return this.#cameras[0]!.layerGroups.map((g) => ({ ...g }));
  }

  /** Every camera by number: its name and picture, its signing key's fingerprint, its group, whether it delivers, its viewers of every kind. */
  get cameras(): { name: string; width: number; height: number; fps: number; fingerprint: string; group: { address: string; port: number; streamId: number } | null; available: boolean; viewers: number; framesBroadcast: number }[] {
    return this.#cameras.map((c) => ({
      name: c.name, width: c.options.width, height: c.options.height, fps: c.options.fps, fingerprint: c.signer.fingerprint, group: c.group && { ...c.group },
      available: c.available, viewers: this.#admission.viewerCountOf(c.index), framesBroadcast: c.framesBroadcast,
    }));
  }

  /** Viewers of every kind that watch camera `camera`; a camera with none need not encode. */
  viewerCountOf(camera: number): number {
    return this.#admission.viewerCountOf(camera);
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
  /**
   * The camera failed and is being retried (false), or is back (true): every viewer that
   * understands it is told (a source message); one that joins meanwhile, after its welcome.
   */
  sourceStatus(available: boolean, camera = 0): void {
    const cam = this.#cameras[camera];
    if (!cam || available === cam.available) return;
    cam.available = available;
    const msg: ControlMessage = { type: "source", state: available ? SourceState.Available : SourceState.Unavailable };
    for (const sock of this.#conns.values()) {
      const conn = sock.data;
      if (conn.sessionId !== null && conn.camera === camera && conn.sourceStatus && !conn.closing) this.#sendTo(conn, msg);
    }
  }

  /**
   * One audio packet of camera `camera`'s microphone to its viewers that play audio:
   * signed and sealed once, one datagram each (lib/wire/audio-datagram.ts). Numbered here.
   */
  broadcastAudio(packet: AudioPacket, camera = 0): void {
    const cam = this.#cameras[camera];
    if (this.#stopped || !cam || !cam.audio) return;
    const seq = cam.audioSeq;
    cam.audioSeq = (seq + 1) >>> 0;
    this.stats.audioPacketsBroadcast++;
    if (cam.audioSessions.size === 0) return;
    const signed = cam.signer.signAudio({ seq, capturedAt: packet.capturedAt, data: packet.data });
    let datagram: Uint8Array;
    if (cam.sealer) {
      this.#rotateIfDue(cam);
      const r = cam.sealer.sealAudio(seq, packet.capturedAt, signed);
      if (r.rotated) this.#sendKeyToAll(cam);
      datagram = r.datagram;
      this.#syncSealStats();
    } else {
      datagram = encodeAudioDatagram({ sessionId: 0, seq, capturedAt: packet.capturedAt }, signed);
    }
    cam.fanout.sendAudio(datagram, (id) => cam.audioSessions.has(id));
  }

  /**
   * The camera's microphone failed and is being retried (false), or is back (true): its
   * viewers that play audio are told (an audio message); one that joins meanwhile, after its welcome.
   */
  audioStatus(available: boolean, camera = 0): void {
    const cam = this.#cameras[camera];
    if (!cam || !cam.audio || available === cam.audioAvailable) return;
    cam.audioAvailable = available;
    const msg: ControlMessage = { type: "audio", state: available ? SourceState.Available : SourceState.Unavailable };
    for (const sock of this.#conns.values()) {
      const conn = sock.data;
      if (conn.sessionId !== null && cam.audioSessions.has(conn.sessionId) && !conn.closing) this.#sendTo(conn, msg);
    }
  }

  /** Whether this server repairs losses for viewers that ask (not `--no-repair`). */
  get repairs(): boolean {
    return !!this.#opts.repair;
  }

  viewers(): ViewerSummary[] {
    return this.#admission.viewers();
  }

  /**
   * A viewer served by another part of the server (`kind`: "browser", ...) asks for one
   * of the --max-clients places. The join (`kind=KIND`) or the refusal is logged.
   */
  admitOther(kind: string, address: string, name: string, camera = 0): { id: number } | { refused: string } {
    const id = this.#nextConnId++;
    const r = this.#admission.admitOther(id, kind, plainAddress(address), name, performance.now(), camera);
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
        // TTL and interface are the socket's: the same for every camera's group.
        configureGroupSender(this.#udp, group);
      } catch (e) {
        this.#udp.close();
        throw new StartError(`cannot send to multicast group ${group.address}:${group.port}: ${(e as Error).message}`);
      }
    }
    try {
      // Built once here so a bad --mtu fails at start, not at the first hello.
      const fragmenter = new Fragmenter(this.#opts.mtu);
      this.#cameras = this.#cameraOptions.map((o, index) => this.#camera(index, o));
      const fragmentSize = this.#encrypted ? fragmenter.sealedFragmentSize : fragmenter.payloadSize;
      const cameras: AdmissionCamera[] = this.#cameras.map((c) => ({
        name: c.name,
        stream: { width: c.options.width, height: c.options.height, fpsMillihertz: Math.round(c.options.fps * 1000), udpSourcePort: this.#udp.port, fragmentSize, signing: c.signer.signing },
        multicast: c.group && { ...c.group },
        layerGroups: c.layerGroups.map((l) => ({ ...l })),
      }));
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
        stream: cameras[0]!.stream,
        multicast: cameras[0]!.multicast,
        cameras,
        wallClockUs: (now) => Math.round((performance.timeOrigin + now) * 1000),
        sent: (id) => this.#sent(id),
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

  /** Camera `index`'s own fan-out, keys, layers, repair and group, on the shared socket. */
  #camera(index: number, o: CameraOptions): CameraStream {
    const g = this.#opts.multicast;
    // Camera 0 keeps the given stream id (tests and the group's datagrams know it); the others draw their own.
    const streamId = index === 0 ? this.#opts.streamId : randomStreamId();
    const group = g ? { address: g.address, port: g.port + index, streamId } : null;
    const repair = this.#opts.repair ? new RepairServer(this.#opts.repair) : null;
    const layers = layerPlan(this.#opts.layers, o, this.#encrypted);
    const layerGroups: LayerGroup[] = g ? layerGroupsOf(g.address, g.port + index, layers.slice(1)) : [];
    const fanout = new FrameFanout({
      socket: this.#udp, mtu: this.#opts.mtu, fps: o.fps, spread: this.#opts.spread, group, stats: this.stats, warnSend: this.#warnSend, repair,
      layerGroups, layers, tell: (id, msg) => this.#tellSession(id, msg),
      tcp: { ready: (id) => this.#tcpReady(id), send: (id, datagrams) => this.#tcpSend(id, datagrams), sendAudio: (id, datagram) => this.#tcpSendAudio(id, datagram) },
    });
    let cam: CameraStream | null = null;
    const layerEncoder = fanout.layers.length > 1
      ? new LayerEncoder((frames) => cam && this.#toLayers(cam, frames), { quality: o.layerQuality ?? this.#opts.layerQuality, scale: this.#opts.scaleJpeg })
      : null;
    cam = new CameraStream(index, o, fanout, new FrameSigner(streamId), this.#encrypted ? new FrameSealer() : null, repair, group, layerEncoder, layerGroups);
    return cam;
  }

  /** The camera session `id` watches; camera 0 for one the server does not know (its counters are then empty). */
  #cameraOf(id: number): CameraStream {
    return this.#cameras[this.#bySession.get(id)?.camera ?? 0]!;
  }

  /** What session `id` was sent, with its transport; undefined when it is not being sent to. */
  #sent(id: number): Readonly<SendCounters> | undefined {
    const cam = this.#cameraOf(id);
    const sent = cam.fanout.sent(id);
    if (!sent) return sent;
    const transport = this.#tcp.counters(id);
    const repair = cam.repair?.statsOf(id);
    return { ...sent, ...(transport && { transport: { ...transport } }), ...(repair && { repair }) };
  }

  /** A TCP viewer takes a frame only when neither we nor its kernel still hold much of the last one. */
  #tcpReady(id: number): boolean {
    const conn = this.#bySession.get(id);
    if (!conn || conn.closing) return false;
    const ok = this.#tcp.offer(id, conn.channel.queuedBytes, unsentBytes(conn.fd));
    if (ok) this.stats.tcpFramesSent++;
    else this.stats.tcpFramesSkipped++;
    return ok;
  }

  #tcpSend(id: number, datagrams: Uint8Array[]): void {
    const conn = this.#bySession.get(id);
    if (!conn) return;
    if (conn.channel.sendFrame(frameMessages(datagrams))) {
      this.stats.tcpDatagramsSent += datagrams.length;
      return;
    }
    this.#tcp.unsent(id);
    this.stats.tcpFramesSent--;
    this.stats.tcpFramesSkipped++;
  }

  /**
   * An audio datagram to a TCP viewer, unless its connection still holds more than a
   * frame's worth: the next packet is newer anyway, and the backlog bound is never hit.
   */
  #tcpSendAudio(id: number, datagram: Uint8Array): boolean {
    const conn = this.#bySession.get(id);
    if (!conn || conn.closing || conn.channel.queuedBytes > this.#opts.maxControlBacklog / 2) return false;
    return conn.channel.send({ type: "datagram", bytes: datagram });
  }

  /** A viewer asks for its datagrams by UDP or TCP. */
  #onSwitch(conn: Conn, sessionId: number, msg: Switch): void {
    const fanout = this.#cameraOf(sessionId).fanout;
    const out = this.#tcp.switch(sessionId, msg, fanout.sent(sessionId)?.framesSent ?? 0, performance.now());
    fanout.setTransport(sessionId, this.#tcp.transport(sessionId));
    this.#transportOutcome(conn, sessionId, out);
  }

  /** A report also tells whether UDP reaches the viewer. */
  #transportReport(conn: Conn, sessionId: number, msg: Report): void {
    const received = msg.framesReceived + (msg.path?.datagramsReceived ?? 0);
    this.#transportOutcome(conn, sessionId, this.#tcp.report(sessionId, received, this.#cameraOf(sessionId).fanout.sent(sessionId)?.framesSent ?? 0, performance.now()));
  }

  #transportOutcome(conn: Conn, sessionId: number, out: TransportOutcome): void {
    if (out.log) {
      const udp = this.#admission.viewers().find((v) => v.kind === "udp" && v.id === sessionId)?.udpPort;
      this.#log[out.log.level](out.log.message, { client: conn.peer, udp, session: sessionId.toString(16).padStart(8, "0"), ...out.log.fields });
    }
    if (out.firstSilence) this.stats.noDatagramsViewers++;
    if (out.tell && conn.tcpCapable) this.#sendTo(conn, out.tell);
    this.#syncTransportStats();
  }

  #syncTransportStats(): void {
    let n = 0;
    for (const id of this.#bySession.keys()) if (this.#tcp.transport(id) === "tcp") n++;
    this.stats.tcpViewers = n;
  }

  #tick(): void {
    const now = performance.now();
    if (this.#icmpSinceTick) {
      this.#icmpSinceTick = false;
      // The errors name no one: every session sent to since the last tick is a suspect.
      const since = this.#lastTickAt - TICK_MS;
      this.#admission.unreachable(this.#cameras.flatMap((c) => c.fanout.sentToSince(since)), now);
    }
    this.#lastTickAt = now;
    for (const c of this.#cameras) c.fanout.tick(now);
    this.#apply(this.#admission.tick(now));
    this.#syncStats();
  }

  #syncStats(): void {
    const a = this.#admission;
    Object.assign(this.stats, a.authCounters);
    this.stats.reportsRejected = a.reportsRejected;
    this.stats.pendingEvicted = a.pendingEvicted;
    this.stats.fallbacks = a.fallbacks;
    if (this.#encrypted) this.#syncSealStats();
  }

  #syncSealStats(): void {
    let sealed = 0;
    let rotations = 0;
    for (const c of this.#cameras) {
      sealed += c.sealer?.framesSealed ?? 0;
      rotations += c.sealer?.rotations ?? 0;
    }
    this.stats.framesEncrypted = sealed;
    this.stats.keyRotations = rotations;
  }

  #syncSignStats(): void {
    let signed = 0;
    for (const c of this.#cameras) signed += c.signer.framesSigned;
    this.stats.framesSigned = signed;
  }

  /** Sends one frame of camera `camera` to its viewers; never blocks and never queues more than one frame per viewer. */
  broadcast(frame: Frame, camera = 0): void {
    const cam = this.#cameras[camera];
    if (this.#stopped || !cam) return;
    this.stats.framesBroadcast++;
    cam.framesBroadcast++;
    this.#toLancam(cam, frame);
    // After the lancam viewers' datagrams are queued; the fit runs off the event loop.
    if (camera === 0 && this.#admission.classicCount > 0) this.#toClassic(frame);
  }

  #toLancam(cam: CameraStream, original: Frame): void {
    if (cam.fanout.size === 0) return;
    const bytes = original.jpeg.length;
    if (bytes === 0 || bytes > this.#maxFrameBytes) {
      this.stats.framesNotSent++;
      this.#warnNotSent(bytes === 0
        ? `frame ${original.seq} is empty`
        : `frame ${original.seq} is ${bytes} bytes, at most ${this.#maxFrameBytes} fit (lower --quality or --size, or raise --mtu)`);
      return;
    }
    // Once, before it is sealed and cut: every viewer and the group get the same signature.
    const frame = cam.signer.sign(original);
    this.#syncSignStats();
    let sealed: SealedFrame | null = null;
    if (cam.sealer) {
      this.#rotateIfDue(cam);
      const r = cam.sealer.seal(frame, this.#sealedFragmentSize);
      // The key ran out (or the numbering went back): its holders get the new one before these datagrams.
      if (r.rotated) this.#sendKeyToAll(cam);
      sealed = r.sealed;
      this.#syncSealStats();
    }
    cam.fanout.send(frame, sealed);
    // The smaller copies, only of the layers a viewer is on now, made off the event loop.
    const encoder = cam.layerEncoder;
    if (!encoder) return;
    const wanted = cam.fanout.wantedLayers();
    if (wanted.length === 0) return;
    const layers = cam.fanout.layers;
    encoder.push(original, new Map(wanted.flatMap((i) => (layers[i] ? [[i, { width: layers[i].width, height: layers[i].height }] as const] : []))));
    this.#syncLayerStats();
  }

  /** A frame's smaller copies, signed each, to the camera's viewers on their layers. */
  #toLayers(cam: CameraStream, frames: LayerFrames): void {
    if (this.#stopped) return;
    for (const [index, f] of frames) {
      if (f.jpeg.length === 0 || f.jpeg.length > this.#maxFrameBytes) continue;
      cam.fanout.send(cam.signer.sign(f), null, index);
      this.stats.layerFramesEncoded++;
    }
    this.#syncSignStats();
    this.#syncLayerStats();
  }

  #syncLayerStats(): void {
    let failed = 0;
    for (const c of this.#cameras) {
      const e = c.layerEncoder?.stats;
      if (e) failed += e.failed + e.superseded;
    }
    this.stats.layerFramesFailed = failed;
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
    this.stats.classicAnswersIgnored = c.foreign + c.invalid + c.extraAnswers;
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

  /** After a viewer of the camera left: a new key, sent to its viewers still here, before its next frame is sealed. */
  #rotateIfDue(cam: CameraStream): void {
    if (!cam.rekey || !cam.sealer) return;
    cam.rekey = false;
    cam.sealer.rotate();
    this.#syncSealStats();
    this.#sendKeyToAll(cam);
  }

  #sendKeyToAll(cam: CameraStream): void {
    for (const sock of this.#conns.values()) if (sock.data.sessionId !== null && sock.data.camera === cam.index) this.#sendKey(sock.data);
  }

  /** The current stream key of its camera, wrapped for this connection alone. */
  #sendKey(conn: Conn): void {
    const wrap = conn.wrap;
    const sealer = this.#cameras[conn.camera]?.sealer;
    if (!wrap || !sealer) return;
    const { id, key } = sealer.current;
    // A counter, not randomness: one wrap key never sees the same nonce twice.
    const nonce = new Uint8Array(WRAP_NONCE_SIZE);
    new DataView(nonce.buffer).setBigUint64(4, BigInt(++wrap.sent));
    this.#sendTo(conn, { type: "key", keyId: id, nonce, wrapped: wrapStreamKey(wrap.key, nonce, id, key) });
  }

  /** Sends on a connection; one whose viewer stopped reading ends its session. */
  #sendTo(conn: Conn, msg: ControlMessage): void {
    // A viewer that cannot check signatures could not decode the signing block; its frames still end with one.
    if (msg.type === "welcome" && !conn.verifies) msg = { ...msg, signing: undefined };
    if (msg.type === "welcome" && conn.repairs) msg = { ...msg, flags: msg.flags | WELCOME_REPAIR };
    if (msg.type === "welcome" && conn.tcpCapable) msg = { ...msg, flags: msg.flags | WELCOME_TCP_DELIVERY };
    if (msg.type === "welcome" && conn.sourceStatus) msg = { ...msg, flags: msg.flags | WELCOME_SOURCE_STATUS };
    if (msg.type === "welcome" && conn.audio) {
      const audio = this.#cameras[msg.camera?.index ?? 0]?.audio;
      if (audio) msg = { ...msg, audio: { codec: audio.codec, channels: audio.channels, frameMs: audio.frameMs, bitrate: audio.bitrate } };
    }
    const sent = conn.channel.send(msg);
    if (sent || !conn.channel.overflowed || conn.closing) return;
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
    sock.data = { id, channel, peer: `${address}:${tcpPort || "?"}`, closing: false, sessionId: null, wrap: null, verifies: false, pathRefusedLogged: false, layer: 0, repairs: false, reportedRepair: null, tcpCapable: false, sourceStatus: false, fd: fdOf(sock), camera: 0, audio: false };
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
      if (msg.type === "hello") conn.verifies = (msg.capabilities & CAP_VERIFY) !== 0;
      if (msg.type === "hello") conn.repairs = this.repairs && (msg.capabilities & CAP_REPAIR) !== 0;
      if (msg.type === "hello") conn.tcpCapable = (msg.capabilities & CAP_TCP_DELIVERY) !== 0;
      if (msg.type === "hello") conn.sourceStatus = (msg.capabilities & CAP_SOURCE_STATUS) !== 0;
      if (msg.type === "hello") conn.audio = (msg.capabilities & CAP_AUDIO) !== 0;
      // Also not admission's: a switch from a viewer that negotiated it (else a protocol error there).
      if (msg.type === "switch" && conn.tcpCapable && conn.sessionId !== null) {
        this.#onSwitch(conn, conn.sessionId, msg);
        continue;
      }
      // Repair is not admission's business: answered here, for a session that negotiated it (else a protocol error there).
      if (msg.type === "repair" && conn.repairs && conn.sessionId !== null) {
        this.#answerRepair(conn, conn.sessionId, msg);
        continue;
      }
      if (msg.type === "report" && msg.path && conn.sessionId !== null) this.#cameras[conn.camera]!.repair?.report(conn.sessionId, msg.path);
      if (msg.type === "report" && msg.repair && conn.repairs) conn.reportedRepair = msg.repair;
      this.#apply(this.#admission.received(conn.id, msg, performance.now()));
      if (msg.type === "report" && conn.sessionId !== null && !conn.closing) this.#transportReport(conn, conn.sessionId, msg);
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
        // Classroom viewers watch camera 0.
        this.#cameras[0]!.fanout.sendPicture(a.address, a.port, a.bytes);
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
        case "start": {
          const cam = this.#cameras[a.session.camera ?? 0]!;
          conn.camera = cam.index;
          cam.fanout.start(a.session);
          conn.sessionId = a.session.id;
          this.#bySession.set(a.session.id, conn);
          this.#tcp.join(a.session.id, performance.now(), a.session.delivery === "multicast");
          if (conn.repairs) cam.repair?.join(a.session.id, performance.now());
          // After the welcome, before its first datagram; a key someone who left knows is never sent.
          if (cam.rekey) this.#rotateIfDue(cam);
          else this.#sendKey(conn);
          // A viewer that joins while its camera is away is told at once: it will wait for frames.
          if (conn.sourceStatus && !cam.available) this.#sendTo(conn, { type: "source", state: SourceState.Unavailable });
          if (conn.audio && cam.audio) {
            cam.audioSessions.add(a.session.id);
            if (!cam.audioAvailable) this.#sendTo(conn, { type: "audio", state: SourceState.Unavailable });
          }
          break;
        }
        case "group-layer":
          if (conn.sessionId === a.sessionId && this.#cameras[conn.camera]!.fanout.groupLayer(a.sessionId, a.layer)) this.stats.groupLayerMoves++;
          break;
        case "unicast":
          if (conn.sessionId !== null) this.#cameras[conn.camera]!.fanout.unicast(conn.sessionId);
          if (conn.sessionId !== null) this.#tcp.unicast(conn.sessionId);
          this.#syncStats();
          break;
        case "stop": {
          const cam = this.#cameras[conn.camera]!;
          if (conn.sessionId !== null) cam.audioSessions.delete(conn.sessionId);
          if (conn.sessionId !== null) this.#logRepair(conn, cam.repair?.leave(conn.sessionId));
          if (conn.sessionId !== null) {
            this.#tcp.leave(conn.sessionId);
            this.#bySession.delete(conn.sessionId);
            this.#syncTransportStats();
          }
          if (conn.sessionId !== null && cam.fanout.stop(conn.sessionId)) {
            conn.sessionId = null;
            // It holds its camera's current key: that camera's frames from now on go under a new one.
            if (cam.sealer && !this.#stopped) cam.rekey = true;
          }
          break;
        }
        case "close":
          conn.closing = true;
          conn.channel.finish();
          break;
        case "control":
          this.#decode(conn, a.bytes);
          break;
        case "path":
          this.#pathReport(conn, a.sessionId, a.path);
          break;
      }
    }
    this.#syncClassicTicker();
    // At once, not at the next frame: the key reaches the others while the next frame is captured.
    for (const cam of this.#cameras) if (cam.rekey && cam.fanout.size > 0) this.#rotateIfDue(cam);
  }

  /** A path-reports viewer's report: its own delivery follows; an impossible one is counted, logged once per session. */
  #pathReport(conn: Conn, sessionId: number, path: PathCounters): void {
    // TCP paces itself: what its path carries is not UDP's to judge (the counters go on, for a return to UDP).
    if (this.#tcp.transport(sessionId) === "tcp") return;
    const verdict = this.#cameraOf(sessionId).fanout.pathReport(sessionId, path, performance.now());
    if (verdict?.kind !== "refused") return;
    this.stats.pathReportsRefused++;
    if (conn.pathRefusedLogged) return;
    conn.pathRefusedLogged = true;
    this.#log.warn("path report refused", { client: conn.peer, session: sessionId.toString(16).padStart(8, "0"), why: verdict.reason });
  }

  /** A delivery message for a session's viewer (its layer changed, or frames are skipped for it). */
  #tellSession(sessionId: number, msg: Delivery): void {
    for (const sock of this.#conns.values()) {
      const conn = sock.data;
      if (conn.sessionId !== sessionId || conn.closing) continue;
      if (msg.layer !== conn.layer) {
        // One line per move: the ladder's hold (doubling after each flap) keeps them few.
        conn.layer = msg.layer;
        this.#log.info("viewer layer", {
          client: conn.peer, session: sessionId.toString(16).padStart(8, "0"), layer: msg.layer, picture: `${msg.width}x${msg.height}`,
          rateKbps: msg.rateBytesPerS ? Math.round((msg.rateBytesPerS * 8) / 1000) : undefined,
        });
      }
      return this.#sendTo(conn, msg);
    }
  }

  /** A repair message: the resends go to the viewer alone, gone answers on its connection. */
  #answerRepair(conn: Conn, sessionId: number, msg: Repair): void {
    const cam = this.#cameraOf(sessionId);
    const reply = cam.repair!.repair(sessionId, msg, performance.now(), (fn) => cam.fanout.layerOf(sessionId, fn));
    cam.fanout.resend(sessionId, reply.datagrams);
    for (const gone of reply.gone) this.#sendTo(conn, gone);
    const s = this.stats;
    s.repairDatagramsResent = s.repairBytesResent = s.repairRequestsDropped = s.repairGoneSent = 0;
    for (const c of this.#cameras) {
      if (!c.repair) continue;
      s.repairDatagramsResent += c.repair.ring.datagramsResent;
      s.repairBytesResent += c.repair.ring.bytesResent;
      s.repairRequestsDropped += c.repair.requestsDropped;
      s.repairGoneSent += c.repair.goneSent;
    }
  }

  /** What a repairing viewer was resent, logged as it leaves. */
  #logRepair(conn: Conn, s: ReturnType<RepairServer["leave"]> | undefined): void {
    if (!s) return;
    const r = conn.reportedRepair;
    this.#log.info("repair", {
      client: conn.peer, resent: s.datagramsResent, resentBytes: s.bytesResent, parities: s.paritiesSent, dropped: s.requestsDropped, gone: s.framesGone,
      // The viewer's own counts, from its last report: what it mended, and how.
      ...(r && { repairedByParity: r.datagramsRepairedByFec, repairedByResend: r.datagramsRepairedByNack, unrepaired: r.datagramsUnrepaired, recordedOnly: r.framesRecordOnly, delayP50Ms: r.repairDelayP50Us / 1000 }),
    });
  }

  /** Says goodbye to every viewer and closes the sockets. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#ticker) clearInterval(this.#ticker);
    for (const c of this.#cameras) {
      c.layerEncoder?.close();
      c.fanout.close();
    }
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
