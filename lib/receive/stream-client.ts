import type { Socket, SocketHandler, udp } from "bun";
import { ControlChannel } from "../net/control-channel.ts";
import { ControlMac } from "../net/control-mac.ts";
import type { TokenKey } from "../net/session-keys.ts";
import { WELCOME_ENCRYPTED, WELCOME_REPAIR, WELCOME_TCP_DELIVERY, type ByeTotals, type Delivery, type FallbackReason, type Report, type Welcome } from "../wire/control.ts";
import { DecodeError } from "../wire/decode-error.ts";
import { HEADER_SIZE, PayloadType, payloadTypeOf, SESSION_ID_OFFSET, type DatagramHeader } from "../wire/datagram.ts";
import { RepairCounters, RepairSession } from "./repair-session.ts";
import { FrameOpener, type OpenerCounters } from "./frame-opener.ts";
import { AudioReceiver, type AudioCounters } from "./audio-receiver.ts";
import type { AudioPacket } from "../wire/audio-packet.ts";
import { FrameVerifier } from "./frame-verifier.ts";
import { ConnectError, Handshake, MULTICAST_WAIT_MS, type HandshakeAction, type HandshakeInput, type SessionEnd } from "./handshake.ts";
import { Reassembler, type ReassembledFrame, type RepairMode } from "./reassembler.ts";
import { DEFAULT_MAX_DELAY_MS } from "./repair.ts";
import type { Arrival } from "./path-meter.ts";
import { DEFAULT_RECEIVE_BUFFER, enlargeBuffer, enlargeReceiveBuffer, socketFd, type BufferResult } from "../net/udp-buffer.ts";
import { TransportChoice, type ChoiceAction, type ChoiceInput, type TransportMode } from "./transport-choice.ts";
import { plainAddress } from "../net/address.ts";
import { openGroupReceiver, type GroupReceiver } from "../net/multicast.ts";
import { LayerClimber, type LayerClimberOptions, type LayerMove } from "./layer-climber.ts";

/** How often the reassembler gives up on stale partial frames (its timeout is 500 ms), and the handshake is ticked. */
const TICK_MS = 100;

/**
 * Silence after which a frame's missing tail is asked for. The tracker's 3 ms suits an
 * idle LAN; a busy server pauses its pacer longer, and each pause then cost a resend of
 * the whole tail while the originals still came (measured at 2 % loss on a 1280x720
 * stream, 2 busy cores: 3 ms resent 2563 datagrams for about 600 lost, 10 ms 731). A
 * later frame starting still closes a frame at once.
 */
const REPAIR_STALL_MS = 10;

/**
 * The control connection's receive buffer. Frames may come over it (TCP delivery), and
 * what waits in this buffer is lag the server cannot see: it writes a frame only when
 * its own side is nearly empty, so a small buffer here keeps a slow viewer's lag to a
 * couple of frames instead of the megabytes the kernel would grow it to.
 */
const TCP_RECEIVE_BUFFER = 256 * 1024;

/** The client's options. */
export interface StreamClientOptions {
  host: string;
  port: number;
  udpPort: number;
  /** The server's camera to watch: its number or name ("" or left out: camera 0). */
  camera?: string;
  name?: string;
  receiveBufferBytes?: number;
  connectTimeoutMs?: number;
  /**
   * A complete frame. `use`: "live" to show (and record); "recordOnly" when it was
   * repaired too late for the live view but in time for the recorder (only in a session
   * that repairs, where frames may then come out of order).
   */
  onFrame: (frame: ReassembledFrame, nowMs: number, use: "live" | "recordOnly") => void;
  /** In a session that repairs: frame `frameNumber` will never come (given up), so the recorder stops waiting for it. */
  onSettled?: (frameNumber: number) => void;
  /**
   * Offer loss repair (docs/protocol.md §2.14): the live view waits up to `maxDelayMs`
   * for a repaired frame, the recorder up to `recordDelayMs` (0: no recorder). Null or
   * left out: not offered, and the session runs as without it.
   */
  repair?: { maxDelayMs: number; recordDelayMs: number } | null;
  /** Every datagram accepted by the address filter, counted before reassembly; `viaGroup`: it came by the multicast group. */
  onDatagram?: (viaGroup: boolean) => void;
  /**
   * Each datagram taken into a frame (authentic, not a duplicate), for the viewer's path
   * meter; `how`: as first sent, resent on request, or rebuilt here from parity (it
   * never crossed the path).
   */
  onAccepted?: (h: DatagramHeader, bytes: number, nowMs: number, how: Arrival) => void;
  /** Each parity datagram of this session that arrived (`bytes` long): it crossed the path too. */
  onParity?: (bytes: number, nowMs: number) => void;
  /** Each authentic datagram dropped as late or a duplicate (a resend that crossed an original): it crossed the path too. */
  onRedundant?: (bytes: number) => void;
  /** The counters for each report, cumulative. */
  report: () => Report;
  /** The final counts for the goodbye, asked for when it is built. */
  totals: () => ByeTotals;
  /** A session was welcomed; called before its first datagram is taken, so the owner can set up for the stream. */
  onWelcome?: (welcome: Welcome) => void;
  /** A session ended or a reconnect attempt failed; the next attempt follows after `afterMs`. */
  onRetry?: (afterMs: number, cause: SessionEnd | ConnectError) => void;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
  /** The token, stretched: the server must ask for it, prove it holds it, and encrypt. */
  token?: TokenKey | null;
  /** Offer to join a multicast group (default true). */
  multicast?: boolean;
  /** How long to wait for the group's first datagram before asking for unicast (default MULTICAST_WAIT_MS). */
  multicastWaitMs?: number;
  /** The session's multicast group was joined; `receiveBufferBytes` as the kernel granted it. */
  onGroupJoined?: (group: { address: string; port: number; interfaceAddress: string; receiveBufferBytes: number | null }) => void;
  /**
   * In a session with a group per layer: the viewer moves to another layer's group (its
   * loss, or a try of a larger picture), or a move could not be made and was undone.
   */
  onGroupLayer?: (e: { move: LayerMove; width: number; height: number } | { undone: LayerMove; text: string }) => void;
  /** The layer climber's timings and thresholds (default lib/receive/layer-climber.ts's; tests shorten them). */
  climb?: Omit<LayerClimberOptions, "layers">;
  /** The group did not reach this viewer: the server was asked for unicast. */
  onFallback?: (reason: FallbackReason, text: string) => void;
  /** The server said what it sends this viewer now (checked against the welcome). */
  onDelivery?: (delivery: Delivery) => void;
  /** The server's camera failed and is retried (false), or is back (true). */
  onSource?: (available: boolean) => void;
  /**
   * Offer to play audio: each audio packet that checks (session, key, signature), with
   * when it arrived (ms, this client's monotonic clock). The welcome's `audio` says the format.
   */
  onAudio?: (packet: AudioPacket, nowMs: number) => void;
  /** The server's microphone failed and is retried (false), or is back (true). */
  onAudioStatus?: (available: boolean) => void;
  /** A complete frame failed the server's signature and was dropped; `total`: how many so far (cumulative). */
  onForged?: (total: number) => void;
  /** How frames should come: auto (UDP, TCP when UDP does not get through), udp or tcp (default auto). */
  transport?: TransportMode;
  /** On TCP (auto), UDP is tried again after this long (default RETRY_UDP_MS; tests shorten it). */
  retryUdpMs?: number;
  /** What TCP delivery has to say: UDP blocked (the warning), frames moved to a transport, a refusal. */
  onTransport?: (action: Exclude<ChoiceAction, { type: "send" }>) => void;
}

/** One session's membership of a multicast group; `receiver` is null until the join completes. */
interface Membership {
  /** Which layer's group (0: the full layer's, the welcome's), and the stream id its datagrams carry. */
  layer: number;
  streamId: number;
  receiver: GroupReceiver | null;
  /** Left (session over, fallback) before the join completed: close it as soon as it does. */
  left: boolean;
  /** Whether a datagram has come by the group yet. */
  arrived: boolean;
  /** A layer group being moved to: nothing came by it by then, so the move is undone. Null until the server is told. */
  deadline: number | null;
}

/** One layer's group in a session whose welcome listed them (index = layer). */
interface LayerGroupInfo {
  address: string;
  port: number;
  streamId: number;
  width: number;
  height: number;
}

/** One TCP connection attempt; its socket events count only while it is the current one. */
interface Connection {
  /** The server's IPv4 address, once resolved: datagrams must come from it. */
  ip: string | null;
  /** This machine's address on the connection: the interface that reaches the server. */
  localIp: string | null;
  channel: ControlChannel | null;
}

/**
 * One viewer's network side: a UDP socket bound once (kept across reconnects, so the
 * port stays), and TCP control connections made and ended as the `Handshake` says.
 * This class only moves bytes and carries out the machine's actions.
 * Datagrams count only when they come from the TCP peer's address and the port the
 * welcome named, with the session id it gave.
 */
export class StreamClient implements AsyncDisposable {
  /** Datagrams dropped before reassembly: from another address or port, or outside a session. */
  readonly droppedForeign = { address: 0, notReady: 0 };
  receiveBuffer: BufferResult | null = null;
  /** Control messages dropped because their tag was missing or wrong. */
  controlForged = 0;
  /** Datagrams accepted by the address filter that came by the multicast group (the rest came to this viewer's own port). */
  datagramsByGroup = 0;
  /** Loss repair's counters over every session that repaired. */
  readonly repairCounters = new RepairCounters();
  /** The current session's loss repair; null when its welcome did not set WELCOME_REPAIR. */
  #repair: RepairSession | null = null;
  /** The multicast group's stream id of the current session, for checking its parity. */
  #streamId: number | null = null;
  /** The datagram being pushed into the reassembler, for the repair's record of payloads. */
  #current: { datagram: Uint8Array; rebuilt: boolean } | null = null;
  /** Datagrams parity rebuilt while another was being pushed; pushed right after it. */
  readonly #rebuilt: Uint8Array[] = [];
  #pollQueued = false;
  #repairTimer: Timer | null = null;
  readonly #opts: StreamClientOptions;
  readonly #opener = new FrameOpener();
  readonly #audio = new AudioReceiver();
  /** The welcome announced audio: audio datagrams go to #audio. */
  #audioSession = false;
  readonly #now: () => number;
  #udp!: udp.Socket<"buffer">;
  #machine!: Handshake;
  readonly #reassembler: Reassembler;
  /** Checks the current session's frame signatures; null when its welcome did not say frames are signed. */
  #verifier: FrameVerifier | null = null;
  #forgedSeen = 0;
  #conn: Connection | null = null;
  /** Where the current session's datagrams come from; null outside a session. */
  #source: { ip: string; port: number } | null = null;
  /** The current session's multicast group, while it is a member. */
  #group: Membership | null = null;
  /**
   * The layer group being moved to: joined alongside #group, which it replaces at its
   * first datagram from the server (so the move leaves no gap); null when none is.
   */
  #pending: Membership | null = null;
  /** In a session with a group per layer: the groups (full layer's first) and the choice among them. */
  #layers: { localIp: string; groups: LayerGroupInfo[]; climber: LayerClimber; gap: "waiting" | null; gapFrames: number } | null = null;
  /** A channel still flushing its goodbye; at most one is kept. */
  #lingering: ControlChannel | null = null;
  readonly #queue: HandshakeAction[] = [];
  #applying = false;
  #ticker: Timer | null = null;
  #retryTimer: Timer | null = null;
  #outcome: { error: ConnectError | null } | null = null;
  #running: Promise<void> | null = null;
  #settle: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Which way datagrams should come (lib/receive/transport-choice.ts). */
  readonly #choice: TransportChoice;
  /** Datagrams that came over the control connection (TCP delivery). */
  datagramsByTcp = 0;

  private constructor(opts: StreamClientOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#choice = new TransportChoice({ mode: opts.transport ?? "auto", retryUdpMs: opts.retryUdpMs });
    this.#reassembler = new Reassembler({
      sessionId: 0,
      onAccepted: (h, bytes, nowMs) => {
        const resends = this.repairCounters.datagramsRepairedByNack;
        this.#acceptedForRepair(h, nowMs);
        const how = this.#current?.rebuilt ? "rebuilt" : this.repairCounters.datagramsRepairedByNack > resends ? "resent" : "sent";
        opts.onAccepted?.(h, bytes, nowMs, how);
      },
      onRedundant: (bytes) => opts.onRedundant?.(bytes),
    });
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
    c.#machine = new Handshake({
      server: `${opts.host}:${opts.port}`, udpPort: c.#udp.port, name: opts.name, camera: opts.camera, connectTimeoutMs: opts.connectTimeoutMs,
      report: opts.report, totals: opts.totals, auth: opts.token ? { token: opts.token } : null,
      // A viewer that wants its frames over TCP has no use for the group (and a group member is refused TCP).
      multicast: opts.transport === "tcp" ? false : opts.multicast, multicastWaitMs: opts.multicastWaitMs, repair: !!opts.repair, audio: !!opts.onAudio,
    });
    return c;
  }

  /** Datagrams that failed their tag or came under a key this viewer does not hold (cumulative). */
  /** The audio datagrams taken and dropped, by reason (cumulative). */
  get audioCounters(): Readonly<AudioCounters> {
    return this.#audio.counters;
  }

  get keyDrops(): Readonly<OpenerCounters> {
    return this.#opener.counters;
  }

  /** The UDP port frames arrive on (the real one when 0 was asked for). */
  get udpPort(): number {
    return this.#udp.port;
  }

  /** How the current session's datagrams come: "waiting" for the group, by the "group", or "unicast". */
  get delivery(): "waiting" | "group" | "unicast" {
    const d = this.#machine.delivery;
    return d === "waiting" ? "waiting" : d === "flowing" ? "group" : "unicast";
  }

  /** How frames come now: "udp" or "tcp" (TCP delivery). */
  get transport(): "udp" | "tcp" {
    return this.#choice.transport;
  }

  /** Whether the server said UDP datagrams do not reach this viewer (the warning was given). */
  get udpBlocked(): boolean {
    return this.#choice.udpBlocked;
  }

  /** The fingerprint of the key the current session's frames are signed with; null when they are not signed. */
  get signingFingerprint(): string | null {
    return this.#verifier?.fingerprint ?? null;
  }

  /** The reassembler's counters (cumulative across reconnects). */
  get reassembly(): Reassembler["stats"] {
    return this.#reassembler.stats;
  }

  /**
   * Connects and keeps a session, reconnecting when the server goes away, until
   * `stop()`. Rejects with ConnectError when the first attempt fails or a refusal is
   * final. Calling it again returns the same run.
   */
  run(): Promise<void> {
    if (this.#running) return this.#running;
    if (this.#outcome) {
      this.#running = this.#outcome.error ? Promise.reject(this.#outcome.error) : Promise.resolve();
      return this.#running;
    }
    this.#running = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    this.#push({ type: "start" });
    return this.#running;
  }

  /** Says goodbye (with the totals) when in a session, and ends `run()` at once, also during a connect or a backoff. */
  stop(): void {
    this.#push({ type: "stop" });
  }

  /** Stops and releases both sockets. */
  async close(): Promise<void> {
    this.stop();
    this.#lingering?.close();
    this.#lingering = null;
    this.#leaveGroup();
    this.#udp.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #tick(): void {
    if (this.#source) {
      const now = this.#now();
      this.#reassembler.sweep(now);
      this.#opener.expire(now);
      this.#climb(now);
    }
    this.#push({ type: "tick" });
    this.#choose({ type: "tick" });
  }

  /** Feeds the transport choice and carries out what it says. */
  #choose(input: ChoiceInput): void {
    for (const a of this.#choice.push(input, this.#now())) {
      if (a.type === "send") this.#conn?.channel?.send(a.msg);
      else this.#opts.onTransport?.(a);
    }
  }

  /** Feeds the machine and carries out its actions; an action that feeds it again queues behind the rest. */
  #push(input: HandshakeInput): void {
    this.#queue.push(...this.#machine.push(input, this.#now()));
    if (this.#applying) return;
    this.#applying = true;
    try {
      for (let a = this.#queue.shift(); a; a = this.#queue.shift()) this.#carryOut(a);
    } finally {
      this.#applying = false;
    }
  }

  #carryOut(a: HandshakeAction): void {
    switch (a.type) {
      case "connect":
        this.#connect();
        return;
      case "send":
        this.#conn?.channel?.send(a.msg);
        return;
      case "secure":
        this.#conn?.channel?.secure(new ControlMac({ send: a.keys.clientMac, receive: a.keys.serverMac }));
        return;
      case "receive": {
        const ip = this.#conn?.ip;
        if (!ip) throw new Error("a welcome without a connection");
        const encrypted = (a.welcome.flags & WELCOME_ENCRYPTED) !== 0;
        let verifier: FrameVerifier | null = null;
        try {
          verifier = a.welcome.signing ? new FrameVerifier(a.welcome.signing) : null;
        } catch (e) {
          // A key no frame could be checked with: this session cannot be watched safely.
          this.#push({ type: "decode-error", text: `welcome signing key: ${(e as Error).message}` });
          return;
        }
        this.#verifier = verifier;
        this.#opener.reset();
        this.#startRepair(a.welcome);
        this.#streamId = a.welcome.multicast?.streamId ?? null;
        this.#reassembler.reset(a.welcome.sessionId, encrypted ? this.#opener : null, this.#streamId, verifier, this.#repair && repairMode(a.welcome, this.#opts.repair!.recordDelayMs));
        // Audio only where the welcome announced it: any other audio datagram is foreign.
        this.#audioSession = !!a.welcome.audio;
        if (a.welcome.audio) this.#audio.reset(a.welcome.sessionId, this.#streamId, encrypted ? this.#opener : null, verifier);
        this.#opts.onWelcome?.(a.welcome);
        this.#source = { ip, port: a.welcome.udpSourcePort };
        if (a.welcome.multicast) this.#joinGroup(a.welcome.multicast, this.#conn?.localIp ?? null);
        this.#startLayers(a.welcome, this.#conn?.localIp ?? null);
        this.#choose({ type: "welcome", offered: (a.welcome.flags & WELCOME_TCP_DELIVERY) !== 0, udpPort: this.#udp.port });
        return;
      }
      case "transport":
        this.#choose({ type: "transport", msg: a.msg });
        return;
      case "delivery":
        this.#opts.onDelivery?.(a.delivery);
        return;
      case "gone":
        this.#repair?.gone(a.frames, a.skipped);
        this.#schedulePoll();
        return;
      case "source":
        this.#opts.onSource?.(a.available);
        return;
      case "audio":
        this.#opts.onAudioStatus?.(a.available);
        return;
      case "leave-group":
        this.#leaveGroup();
        this.#layers = null;
        this.#opts.onFallback?.(a.reason, a.text);
        return;
      case "key": {
        const now = this.#now();
        // Datagrams that came before their key (UDP overtaking TCP) are taken now.
        for (const held of this.#opener.addKey(a.id, a.key, now)) this.#accept(held, now);
        return;
      }
      case "close": {
        this.#source = null;
        this.#stopRepair();
        this.#leaveGroup();
        this.#layers = null;
        const channel = this.#conn?.channel;
        this.#conn = null;
        if (channel) this.#finish(channel);
        return;
      }
      case "retry":
        if (this.#retryTimer) clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#tick(), a.afterMs);
        this.#opts.onRetry?.(a.afterMs, a.cause);
        return;
      case "finished":
        if (this.#ticker) clearInterval(this.#ticker);
        if (this.#retryTimer) clearTimeout(this.#retryTimer);
        this.#ticker = this.#retryTimer = null;
        this.#stopRepair();
        this.#outcome = { error: a.error };
        if (a.error) this.#settle?.reject(a.error);
        else this.#settle?.resolve();
        return;
    }
  }

  /** Closes a channel once what it holds (a goodbye) is written. */
  #finish(channel: ControlChannel): void {
    // A peer that never reads must not keep channels open across reconnects.
    this.#lingering?.close();
    channel.finish();
    this.#lingering = channel.closed ? null : channel;
  }

  /** A welcome that lists a group per layer: the viewer starts in the full layer's and climbs by its own loss. */
  #startLayers(welcome: Welcome, localIp: string | null): void {
    this.#layers = null;
    const g = welcome.multicast;
    if (!g || !welcome.layerGroups || !localIp) return;
    const groups = [{ address: g.address, port: g.port, streamId: g.streamId, width: welcome.width, height: welcome.height }, ...welcome.layerGroups];
    this.#layers = { localIp, groups, climber: new LayerClimber({ ...this.#opts.climb, layers: groups.length }, this.#now()), gap: null, gapFrames: 0 };
  }

  /**
   * Receiver-driven layers (lib/receive/layer-climber.ts): while the group flows, the
   * viewer's own loss picks its layer's group. A move joins the new group first and
   * leaves the old one when the new one's first datagram comes; one that cannot be
   * made (the join fails, nothing comes by it in MULTICAST_WAIT_MS) is undone.
   */
  #climb(now: number): void {
    const layers = this.#layers;
    const current = this.#group;
    if (!layers || !current || this.#machine.delivery !== "flowing") return;
    const pending = this.#pending;
    if (pending) {
      if (pending.deadline !== null && now >= pending.deadline) this.#undoMove(pending, `nothing came by layer ${pending.layer}'s group within ${this.#groupWaitMs / 1000} s`, true);
      return;
    }
    const st = this.#reassembler.stats;
    const inc = st.incomplete;
    const lost = st.framesMissing + inc.lostFragment + inc.timeout + inc.evicted - layers.gapFrames;
    const move = layers.climber.tick(now, { complete: st.framesCompleted, lost });
    if (!move) return;
    const to = layers.groups[move.to]!;
    this.#opts.onGroupLayer?.({ move, width: to.width, height: to.height });
    const m: Membership = { layer: move.to, streamId: to.streamId, receiver: null, left: false, arrived: false, deadline: null };
    this.#pending = m;
    openGroupReceiver({
      address: to.address, port: to.port, interfaceAddress: layers.localIp, receiveBufferBytes: this.#opts.receiveBufferBytes ?? 4 << 20,
      onDatagram: (buf, port, addr) => this.#onGroupDatagram(m, buf, port, addr),
    }).then(
      (receiver) => {
        if (m.left) return receiver.close();
        m.receiver = receiver;
        // Only now: the server sends the layer to a group this viewer is already in.
        m.deadline = this.#now() + this.#groupWaitMs;
        this.#conn?.channel?.send({ type: "layer", layer: m.layer });
      },
      (e: unknown) => {
        if (this.#pending === m) this.#undoMove(m, (e as Error).message, false);
      },
    );
  }

  /** A move that could not be made: back to the group the viewer is still in (telling the server when it was told of the move). */
  #undoMove(m: Membership, text: string, told: boolean): void {
    m.left = true;
    m.receiver?.close();
    m.receiver = null;
    this.#pending = null;
    const layers = this.#layers;
    const from = this.#group;
    if (!layers || !from) return;
    if (told) this.#conn?.channel?.send({ type: "layer", layer: from.layer });
    layers.climber.revert(this.#now());
    this.#opts.onGroupLayer?.({ undone: { from: from.layer, to: m.layer, why: from.layer < m.layer ? "loss" : "probe", lossShare: 0, holdMs: layers.climber.holdMs }, text });
  }

  /** How long a group is given to bring its first datagram. */
  get #groupWaitMs(): number {
    return this.#opts.multicastWaitMs ?? MULTICAST_WAIT_MS;
  }

  /** The new layer's group brought its first datagram: it replaces the old one, whose frames stop counting. */
  #completeMove(m: Membership): void {
    const old = this.#group;
    this.#pending = null;
    this.#group = m;
    this.#streamId = m.streamId;
    this.#reassembler.moveGroup(m.streamId);
    // The frames between the old group's last and the new one's first are counted missing
    // when that first one comes: the move's loss, not the new layer's (see #accept).
    if (this.#layers) this.#layers.gap = "waiting";
    if (old) {
      old.left = true;
      old.receiver?.close();
      old.receiver = null;
    }
  }

  /** Joins the session's group; a join that fails makes the machine ask for unicast at once. */
  #joinGroup(group: { address: string; port: number; streamId: number }, localIp: string | null): void {
    this.#leaveGroup();
    const m: Membership = { layer: 0, streamId: group.streamId, receiver: null, left: false, arrived: false, deadline: null };
    this.#group = m;
    if (!localIp) {
      queueMicrotask(() => this.#group === m && this.#push({ type: "multicast-failed", text: "the control connection has no local address" }));
      return;
    }
    openGroupReceiver({
      address: group.address, port: group.port, interfaceAddress: localIp, receiveBufferBytes: this.#opts.receiveBufferBytes ?? 4 << 20,
      onDatagram: (buf, port, addr) => this.#onGroupDatagram(m, buf, port, addr),
    }).then(
      (receiver) => {
        if (m.left) return receiver.close();
        m.receiver = receiver;
        this.#opts.onGroupJoined?.({ ...group, interfaceAddress: localIp, receiveBufferBytes: receiver.receiveBufferBytes });
      },
      (e: unknown) => {
        if (this.#group === m) this.#push({ type: "multicast-failed", text: (e as Error).message });
      },
    );
  }

  #leaveGroup(): void {
    const p = this.#pending;
    this.#pending = null;
    if (p) {
      p.left = true;
      p.receiver?.close();
      p.receiver = null;
    }
    const m = this.#group;
    if (!m) return;
    this.#group = null;
    m.left = true;
    m.receiver?.close();
    m.receiver = null;
  }

  #onGroupDatagram(m: Membership, buf: Uint8Array, port: number, addr: string): void {
    const src = this.#source;
    if (m.left || !src) return;
    // The group is open to anyone on the link: only the server's address and port count, as on the viewer's own port.
    if (addr !== src.ip || port !== src.port) {
      this.droppedForeign.address++;
      return;
    }
    if (m === this.#pending) {
      m.arrived = true;
      this.#completeMove(m);
    } else if (!m.arrived) {
      m.arrived = true;
      this.#push({ type: "multicast-arrived" });
    }
    this.datagramsByGroup++;
    this.#opts.onDatagram?.(true);
    this.#accept(buf, this.#now(), true);
  }

  /** Tells the owner when the reassembler dropped a frame that failed its signature. */
  #noticeForged(): void {
    const n = this.#reassembler.stats.framesForged;
    if (n === this.#forgedSeen) return;
    this.#forgedSeen = n;
    this.#opts.onForged?.(n);
  }

  #connect(): void {
    const conn: Connection = { ip: null, localIp: null, channel: null };
    this.#conn = conn;
    void this.#open(conn);
  }

  async #open(conn: Connection): Promise<void> {
    const { host, port } = this.#opts;
    const ip = await resolveIPv4(host);
    if (this.#conn !== conn) return;
    if (!ip) return this.#push({ type: "connect-failed", text: `cannot resolve ${host} to an IPv4 address` });
    conn.ip = ip;
    const handlers: SocketHandler<undefined> = {
      open: (tcp) => {
        // Given up meanwhile (timeout, stop): a late connection must not stay open.
        if (this.#conn !== conn) return void tcp.end();
        // Plain, so the address can name an IPv4 interface.
        conn.localIp = tcp.localAddress ? plainAddress(tcp.localAddress) : null;
        conn.channel = new ControlChannel(tcp, { datagrams: true });
        enlargeBuffer(socketFd(tcp), "receive", TCP_RECEIVE_BUFFER);
        this.#push({ type: "connected" });
      },
      data: (_tcp, chunk) => {
        if (this.#conn !== conn || !conn.channel) return;
        let msgs;
        try {
          msgs = conn.channel.receive(chunk);
        } catch (e) {
          return this.#push({ type: "decode-error", text: e instanceof DecodeError ? e.message : String(e) });
        }
        for (const msg of msgs) {
          if (this.#conn !== conn) return; // closed by an earlier message in the same chunk
          // Never tagged: sealed and signed as over UDP, checked in the reassembler the same way.
          if (msg.type === "datagram") {
            this.#onTcpDatagram(msg.bytes);
            continue;
          }
          if (!conn.channel.authentic(msg)) {
            this.controlForged++;
            this.#push({ type: "forged" });
            continue;
          }
          this.#push({ type: "message", msg });
        }
      },
      drain: () => conn.channel?.drain(),
      close: () => {
        if (this.#conn === conn) this.#push({ type: "closed" });
      },
      error: (_tcp, err) => {
        if (this.#conn === conn) this.#push({ type: "closed", error: err.message });
      },
    };
    try {
      await Bun.connect({ hostname: ip, port, socket: handlers });
    } catch (e) {
      if (this.#conn !== conn) return;
      const code = (e as { code?: string }).code ?? (e as Error).message;
      this.#push({ type: "connect-failed", text: `cannot connect to ${host}:${port}: ${code === "ECONNREFUSED" ? "connection refused (is lancam server running there?)" : code}` });
    }
  }

  #onDatagram(buf: Uint8Array, port: number, addr: string): void {
    const src = this.#source;
    if (!src) {
      this.droppedForeign.notReady++;
      return;
    }
    if (addr !== src.ip || port !== src.port) {
      this.droppedForeign.address++;
      return;
    }
    this.#opts.onDatagram?.(false);
    if (this.#choice.awaitingUdp) this.#choose({ type: "datagram", via: "udp" });
    this.#accept(buf, this.#now());
  }

  /** A datagram that came over the control connection (TCP delivery). */
  #onTcpDatagram(buf: Uint8Array): void {
    if (!this.#source) {
      this.droppedForeign.notReady++;
      return;
    }
    this.datagramsByTcp++;
    this.#accept(buf, this.#now());
  }

  /** One datagram into the reassembler (a parity into the repair); `rebuilt`: parity made it. */
  #accept(datagram: Uint8Array, now: number, viaGroup = false, rebuilt = false): void {
    // Audio only in a session whose welcome announced it; elsewhere the reassembler counts it as malformed, as ever.
    if (this.#audioSession && payloadTypeOf(datagram) === PayloadType.Opus) {
      const packet = this.#audio.push(datagram, now, viaGroup);
      if (packet) this.#opts.onAudio?.(packet, now);
      return;
    }
    const repair = this.#repair;
    if (repair && payloadTypeOf(datagram) === PayloadType.Parity) {
      const id = viaGroup ? this.#streamId : this.#reassembler.sessionId;
      const dropped = this.repairCounters.paritiesDropped;
      const made = id === null ? null : repair.parity(datagram, id, now);
      if (id !== null && this.repairCounters.paritiesDropped === dropped) this.#opts.onParity?.(datagram.length, now);
      if (made) this.#accept(made, now, viaGroup, true);
      this.#schedulePoll();
      return;
    }
    this.#current = { datagram, rebuilt };
    const frame = this.#reassembler.push(datagram, now, viaGroup);
    this.#current = null;
    const layers = this.#layers;
    if (frame && viaGroup && layers?.gap === "waiting") {
      layers.gap = null;
      layers.gapFrames += frame.missingBefore;
    }
    if (frame) this.#frame(frame, now);
    else this.#noticeForged();
    if (!repair) return;
    // A datagram parity rebuilt carries the id of the way its parity came.
    for (let d = this.#rebuilt.shift(); d; d = this.#rebuilt.shift()) {
      const id = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(SESSION_ID_OFFSET);
      this.#accept(d, now, id !== this.#reassembler.sessionId, true);
    }
    this.#schedulePoll();
  }

  /** A complete frame to the owner; in a repairing session, shown or recorded only as the repair says. */
  #frame(frame: ReassembledFrame, now: number): void {
    const repair = this.#repair;
    if (!repair) return this.#opts.onFrame(frame, now, "live");
    // Null: given up a moment ago, yet its datagrams came after all (a busy path, not a
    // lost one): never worse than without repair, so it goes to the owner as late.
    this.#opts.onFrame(frame, now, repair.verdict(frame.frameNumber, now) ?? "recordOnly");
  }

  /** The reassembler took a datagram: the repair notes it (and its payload, for parity). */
  #acceptedForRepair(h: DatagramHeader, now: number): void {
    const cur = this.#current;
    if (!this.#repair || !cur) return;
    const made = this.#repair.accepted(h, cur.datagram.subarray(HEADER_SIZE), now, cur.rebuilt);
    if (made) this.#rebuilt.push(made);
  }

  /** A welcome: repair runs when this viewer offered it and the server agreed. */
  #startRepair(welcome: Welcome): void {
    this.#stopRepair();
    const r = this.#opts.repair;
    if (!r || (welcome.flags & WELCOME_REPAIR) === 0) return;
    this.#repair = new RepairSession({ maxDelayMs: r.maxDelayMs, recordDelayMs: r.recordDelayMs, stallMs: REPAIR_STALL_MS }, this.repairCounters);
  }

  #stopRepair(): void {
    this.#repair = null;
    this.#rebuilt.length = 0;
    if (this.#repairTimer) clearTimeout(this.#repairTimer);
    this.#repairTimer = null;
  }

  /** Polls the repair once the datagrams that arrived together are taken (a burst makes one poll). */
  #schedulePoll(): void {
    if (this.#pollQueued || !this.#repair) return;
    this.#pollQueued = true;
    setImmediate(() => {
      this.#pollQueued = false;
      this.#pollRepair();
    });
  }

  /** Sends the due repair requests, lets go of given-up frames, and sets the timer for what is due next. */
  #pollRepair(): void {
    const repair = this.#repair;
    if (!repair) return;
    const now = this.#now();
    const out = repair.poll(now);
    for (const entries of out.requests) this.#conn?.channel?.send({ type: "repair", entries });
    // The reassembler keeps what it holds of a frame given up until its own timeout: its
    // datagrams may only be late (a busy machine), and then it still completes.
    for (const g of out.givenUp) this.#opts.onSettled?.(g.frameNumber);
    for (const fn of out.neverDelivered) this.#opts.onSettled?.(fn);
    if (this.#repairTimer) clearTimeout(this.#repairTimer);
    this.#repairTimer = null;
    const due = repair.nextDueMs();
    if (due !== null) this.#repairTimer = setTimeout(() => this.#pollRepair(), Math.max(0, Math.ceil(due - now)));
  }
}

/**
 * How the reassembler holds a repairing session's frames: long enough for the
 * recorder's wait, and as many as arrive meanwhile (at least 16).
 */
function repairMode(welcome: Welcome, recordDelayMs: number): RepairMode {
  const fps = welcome.fpsMillihertz / 1000;
  const waitMs = Math.max(DEFAULT_MAX_DELAY_MS, recordDelayMs);
  return { maxInFlight: Math.min(64, Math.max(16, Math.ceil((waitMs / 1000) * fps) + 4)), frameTimeoutMs: waitMs + 250 };
}

/** An IPv4 address for a host name or literal (the UDP filter compares literals); null when there is none. */
async function resolveIPv4(host: string): Promise<string | null> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return host;
  try {
    const found = await Bun.dns.lookup(host, { family: 4 });
    return found[0]?.address ?? null;
  } catch {
    return null;
  }
}
