import type { Frame } from "../wire/frame.ts";
import { nowMicros } from "../wire/frame.ts";
import type { Logger } from "../log/format.ts";
import { throttled } from "../log/logger.ts";
import { ReceiverStats } from "./receiver-stats.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";
import type { ReassembledFrame } from "./reassembler.ts";
import { seqLess } from "../wire/seq.ts";
import type { TokenKey } from "../net/session-keys.ts";
import { WELCOME_ENCRYPTED, WELCOME_PATH_REPORTS, WELCOME_REPAIR, type ByeTotals, type Delivery, type Report, type Welcome } from "../wire/control.ts";
import { FrameSizes } from "./frame-sizes.ts";
import { SkipLedger } from "./skip-ledger.ts";
import { PathMeter } from "./path-meter.ts";
import { ConnectError } from "./handshake.ts";
import { StreamClient } from "./stream-client.ts";
import type { AudioCounters } from "./audio-receiver.ts";
import type { AudioPacket } from "../wire/audio-packet.ts";
import { RecordOrder } from "./record-order.ts";
import type { RepairSummary } from "./repair-session.ts";
import type { ChoiceAction, TransportMode } from "./transport-choice.ts";

/** Where received frames go (window, recorder); each must not keep `frame.jpeg` past the call. */
export type FrameSink = (frame: Frame) => void;

/** How the viewer runs. */
export interface ViewerOptions {
  host: string;
  port: number;
  udpPort: number;
  log: Logger;
  /** Sinks of the live view: frames complete in time, in order. */
  sinks: FrameSink[];
  /**
   * Sinks that get every frame in order (the recorder), those repaired too late for the
   * live view included: in a session that repairs they wait (bounded) for an earlier
   * frame still being repaired.
   */
  recordSinks?: FrameSink[];
  /** Offer loss repair: the live view's and the recorder's waits, ms (StreamClientOptions.repair). */
  repair?: { maxDelayMs: number; recordDelayMs: number } | null;
  /** UDP receive buffer to ask for, bytes. */
  receiveBufferBytes?: number;
  /** This viewer's name in the server's log. */
  /** The server's camera to watch: its number or name ("" or left out: camera 0). */
  camera?: string;
  name?: string;
  /** Stop after this many frames (0 = no limit). */
  maxFrames?: number;
  /** Stop after this many seconds (0 = no limit). */
  maxSeconds?: number;
  /** Called about once a second with the stats (status line), and what the server last said it sends (null before it said). */
  onSecond?: (stats: ReceiverStats, welcome: Welcome | null, delivery: Delivery | null) => void;
  /** Called once the UDP port is bound, before connecting. */
  onBound?: (udpPort: number, client: StreamClient) => void;
  /**
   * Run after each welcome, one at a time; frames already flow to the sinks meanwhile.
   * A failure stops the viewer, and `run()` rejects with it.
   */
  onWelcome?: (welcome: Welcome) => void | Promise<void>;
  /** How many frames the recorder has written so far (0 without one); the final bye reports it. */
  recordedFrames?: () => number;
  /** The token (stretched): only a server that proves it holds it is watched, and only encrypted. */
  token?: TokenKey | null;
  /** How long the first connection may take, waiting for a busy server included (default DEFAULT_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** The connection's state: "connected" at each welcome, "reconnecting" when the server went away or a retry failed. */
  onLink?: (state: "connected" | "reconnecting") => void;
  /** A datagram of the stream arrived (the window's "no datagrams arriving" needs no more than that). */
  onDatagram?: () => void;
  /** The server's camera failed and is being retried (false), or is back (true). */
  onSource?: (available: boolean) => void;
  /**
   * Offer to take the server's audio: each packet that checks (session, key, signature),
   * with its arrival time (µs on the wall clock, as its capture time), and the
   * microphone's outages. Left out: audio is not offered, and the server sends none.
   */
  audio?: { onPacket: (packet: AudioPacket, arrivedAt: number) => void; onStatus?: (available: boolean) => void };
  /** How frames should come: auto (default), udp or tcp (lib/receive/transport-choice.ts). */
  transport?: TransportMode;
  /** On TCP (auto), how long until UDP is tried again (default RETRY_UDP_MS). */
  retryUdpMs?: number;
}

/**
 * Runs a viewer: connects (waiting, up to the connect timeout, for a server that is
 * busy; any other failure on the first attempt is an error for the user), feeds every
 * completed frame to the sinks, and when the server goes away reconnects with backoff
 * until stopped.
 */
export class Viewer implements AsyncDisposable {
  readonly stats = new ReceiverStats();
  /** What this session's datagrams say about the path, for a server that paces to it. */
  readonly #path = new PathMeter();
  readonly #opts: ViewerOptions;
  readonly #log: Logger;
  #client: StreamClient | null = null;
  #stopped = false;
  /** The running `run()`, so disposal can wait for its teardown. */
  #running: Promise<void> | null = null;
  #everWelcomed = false;
  /** The owner's set-ups for each welcome, one after another; the first failure ends the viewer. */
  #settingUp: Promise<void> = Promise.resolve();
  #setupError: unknown = null;
  #welcome: Welcome | null = null;
  /** The picture sizes this session's frames may have (the welcome's, and its layers'). */
  #sizes: FrameSizes | null = null;
  /** The server's latest delivery message this session. */
  #delivery: Delivery | null = null;
  /** Which missing frames the server skipped rather than lost. */
  readonly #skips = new SkipLedger();
  #lastFrame: number | null = null;
  /** Frames accepted for the sinks and frames handed to them, for an exact --frames. */
  #accepted = 0;
  #delivered = 0;
  readonly #warnRejected: (detail: string) => void;
  readonly #logLayer: (detail: string) => void;
  /** Set by a welcome: the next frame starts a new numbering, so it cannot be out of order. */
  #resynced = false;
  /**
   * The counts at the latest welcome: reports and the bye speak for the session, which
   * is what the server can check them against (it knows what it sent in this session).
   * framesMissing here is the reassembler's (skipped frames included): the report's
   * framesLost keeps its meaning, and the server knows what it skipped.
   */
  #base = { framesReceived: 0, framesMissing: 0, framesIncomplete: 0, framesRecorded: 0 };
  #warnedOpen = false;
  #warnedForged = false;
  /** Frames repaired too late for the live wait but shown anyway, as still the newest. */
  #lateShown = 0;
  /** Frames given to the recorder alone (repaired after a newer frame was shown). */
  #recordedOnly = 0;
  /** The recorder's frames in order, while the session repairs; null otherwise. */
  #order: RecordOrder | null = null;
  /** The signing key's fingerprint at the previous welcome, to say when it changes. */
  #signedBy: string | null = null;
  /** The server's reason when it refused TCP delivery (null: not refused). */
  #tcpRefused: string | null = null;

  constructor(opts: ViewerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#warnRejected = throttled(5000, (detail, n) => this.#log.warn("frame rejected", { detail, similar: n || undefined }));
    // A server flapping between layers must not flood the log: the status line shows the current one anyway.
    this.#logLayer = throttled(1000, (_detail, n) => {
      const d = this.#delivery;
      if (!d) return;
      const rate = d.rateBytesPerS === 0 ? "not limited" : `${((d.rateBytesPerS * 8) / 1e6).toFixed(1)} Mbit/s`;
      this.#log.info("layer", { layer: d.layer, size: `${d.width}x${d.height}`, rate, skipped: d.framesSkipped, changesNotLogged: n || undefined });
    });
  }

  /** The reassembler's drop counters, for the stats file. */
  datagramDrops(): Record<string, number> {
    const c = this.#client;
    if (!c) return {};
    const r = c.reassembly;
    return { ...r.dropped, ...c.keyDrops, foreignAddress: c.droppedForeign.address, notReady: c.droppedForeign.notReady };
  }

  /** Resolves when stopped or a frame/duration limit is reached; rejects with ConnectError when the first connect fails. */
  run(): Promise<void> {
    const running = this.#run();
    this.#running = running;
    return running;
  }

  async #run(): Promise<void> {
    const { host, port, maxSeconds = 0 } = this.#opts;
    const client = await StreamClient.open({
      host, port, udpPort: this.#opts.udpPort,
      receiveBufferBytes: this.#opts.receiveBufferBytes, name: this.#opts.name, camera: this.#opts.camera, token: this.#opts.token, connectTimeoutMs: this.#opts.connectTimeoutMs,
      onFrame: (f, nowMs, use) => this.#onFrame(f, nowMs, use),
      ...(this.#opts.audio ? { onAudio: (p: AudioPacket) => this.#opts.audio!.onPacket(p, nowMicros()), onAudioStatus: (a: boolean) => this.#onAudioStatus(a) } : {}),
      onSettled: (fn) => this.#order && this.#record(this.#order.skip(fn)),
      repair: this.#opts.repair,
      onAccepted: (h, bytes, nowMs, how) => this.#path.datagram(h, bytes, nowMs, how),
      onParity: (bytes) => this.#path.arrived(bytes),
      onRedundant: (bytes) => this.#path.arrived(bytes),
      report: () => this.#report(),
      totals: () => this.#totals(),
      onWelcome: (w) => this.#onWelcome(w),
      onDelivery: (d) => this.#onDelivery(d),
      onSource: (available) => {
        if (available) this.#log.info("the server's camera is back");
        else this.#log.warn("the server's camera is unavailable (unplugged, or it stopped delivering); the server retries it, and this viewer stays connected");
        this.#opts.onSource?.(available);
      },
      onGroupJoined: (g) => this.#log.info("multicast group joined", { group: `${g.address}:${g.port}`, interface: g.interfaceAddress, receiveBuffer: g.receiveBufferBytes ?? "unknown" }),
      // Once per move: the climber's hold (doubling after each failed try) keeps them few.
      onGroupLayer: (e) => {
        if ("move" in e) {
          const m = e.move;
          this.#log.info("multicast layer", {
            layer: m.to, picture: `${e.width}x${e.height}`, from: m.from, why: m.why === "loss" ? "frames lost" : "trying a larger picture",
            lost: `${(m.lossShare * 100).toFixed(1)}%`, nextTryInSec: m.why === "loss" ? m.holdMs / 1000 : undefined,
          });
        } else {
          this.#log.warn("multicast layer move undone", { layer: e.undone.from, wanted: e.undone.to, detail: e.text });
        }
      },
      onForged: (total) => this.#onForged(total),
      transport: this.#opts.transport, retryUdpMs: this.#opts.retryUdpMs,
      onTransport: (a) => this.#onTransport(a),
      onDatagram: (viaGroup) => {
        if (viaGroup) this.stats.datagramsByGroup++;
        else this.stats.datagramsByOwnPort++;
        this.#opts.onDatagram?.();
      },
      onFallback: (_reason, text) => (this.stats.fallbacks++, this.#log.warn("fallback to unicast: asked the server to send to this viewer's own port", { detail: text })),
      onRetry: (afterMs, cause) => {
        if (this.#everWelcomed) this.#opts.onLink?.("reconnecting");
        const retryInSec = afterMs / 1000;
        if (!this.#everWelcomed && cause instanceof ConnectError) this.#log.warn("server busy; trying again", { error: cause.message, retryInSec });
        else if (cause instanceof ConnectError) this.#log.warn("reconnect failed", { error: cause.message, retryInSec });
        else this.#log.warn("server went away; reconnecting", { reason: cause.reason, detail: "text" in cause ? cause.text : undefined, retryInSec });
      },
    });
    this.#client = client;
    const rb = client.receiveBuffer;
    this.stats.receiveBufferBytes = rb?.actual ?? null;
    this.#log.info("udp receive buffer", { requested: rb?.requested, got: rb?.actual ?? "unknown", note: rb?.note });
    this.#opts.onBound?.(client.udpPort, client);
    const ticker = setInterval(() => {
      this.#syncLoss();
      this.stats.datagramsByTcp = client.datagramsByTcp;
      this.#opts.onSecond?.(this.stats, this.#welcome, this.#delivery);
    }, 1000);
    const limit = maxSeconds > 0 ? setTimeout(() => this.stop(), maxSeconds * 1000) : null;
    try {
      // Stopped before the socket was bound: nothing to connect.
      if (this.#stopped) client.stop();
      await client.run();
    } finally {
      clearInterval(ticker);
      if (limit) clearTimeout(limit);
      await client.close();
      this.stats.datagramsByTcp = client.datagramsByTcp;
      // Frames still awaiting an earlier one's repair are recorded, in order, before the recorder closes.
      if (this.#order) this.#record(this.#order.reset());
      // A sink still getting ready (the recorder opening) finishes before run() does.
      await this.#settingUp;
    }
    if (this.#setupError) throw this.#setupError;
  }

  /** The server's microphone failed (false) or is back (true). */
  #onAudioStatus(available: boolean): void {
    if (available) this.#log.info("the server's audio is back");
    else this.#log.warn("the server's audio is unavailable (its microphone went away or stopped); the server retries it, and the picture goes on");
    this.#opts.audio?.onStatus?.(available);
  }

  /** Audio datagrams taken and dropped, by reason (null: audio was not offered). */
  audioCounters(): Readonly<AudioCounters> | null {
    return this.#opts.audio ? (this.#client?.audioCounters ?? null) : null;
  }

  /** A welcome: frames of this session reach the sinks from now on. */
  #onWelcome(w: Welcome): void {
    const client = this.#client!;
    if (this.#everWelcomed) this.stats.reconnects++;
    this.#everWelcomed = true;
    this.#opts.onLink?.("connected");
    this.#welcome = w;
    this.#sizes = new FrameSizes(w);
    this.#delivery = null;
    this.#resynced = true;
    this.#path.reset();
    // Every session starts on UDP (the transport choice may move it at once).
    this.stats.transport = "udp";
    // Frames of the last session still awaiting an earlier one are recorded now.
    if (this.#order) this.#record(this.#order.reset());
    this.#order = (w.flags & WELCOME_REPAIR) !== 0 && this.#opts.repair ? new RecordOrder() : null;
    this.#syncLoss();
    this.#skips.session(client.reassembly.framesMissing);
    const s = this.stats;
    this.#base = { framesReceived: s.framesReceived, framesMissing: s.framesMissing + s.framesSkipped, framesIncomplete: s.framesIncomplete, framesRecorded: this.#opts.recordedFrames?.() ?? 0 };
    const { host, port } = this.#opts;
    const encrypted = (w.flags & WELCOME_ENCRYPTED) !== 0;
    this.#log.info(this.stats.reconnects ? "reconnected" : "connected", {
      server: `${host}:${port}`, session: w.sessionId.toString(16).padStart(8, "0"), camera: cameraShown(w), size: `${w.width}x${w.height}`,
      fps: w.fpsMillihertz / 1000, udp: client.udpPort, encrypted: encrypted ? "yes" : "no",
      multicast: w.multicast ? `${w.multicast.address}:${w.multicast.port}` : undefined,
      audio: w.audio ? `${w.audio.codec} ${w.audio.channels === 1 ? "mono" : "stereo"} ${w.audio.bitrate / 1000}k` : this.#opts.audio ? "none" : undefined,
    });
    const signedBy = client.signingFingerprint;
    if (signedBy) this.#log.info("frames are signed by the server", { fingerprint: signedBy });
    else this.#log.warn("this server does not sign its frames: anyone on the network can send this viewer pictures in its name");
    if (this.#signedBy && signedBy !== this.#signedBy) {
      this.#log.security("the server's frame signing key changed", {
        before: this.#signedBy, now: signedBy ?? "none", detail: "the server restarted (a new key at each start), or someone between this viewer and it answered instead",
      });
    }
    this.#signedBy = signedBy;
    if (!encrypted && !this.#warnedOpen) {
      this.#warnedOpen = true;
      this.#log.warn(signedBy
        ? "this server has no token: anyone on the network can watch this stream (its frames are signed: compare the fingerprint with the one the server printed)"
        : "this server has no token: anyone on the network can watch this stream, and send this viewer pictures of their own");
    }
    // Frames flow at once; a sink that needs time to get ready for this stream (the
    // recorder opening) holds them itself, so the window never waits for it. Set-ups
    // run one after another, so a quick reconnect cannot overlap the previous one.
    const onWelcome = this.#opts.onWelcome;
    if (!onWelcome) return;
    this.#settingUp = this.#settingUp
      .then(() => onWelcome(w))
      .catch((e: unknown) => {
        this.#setupError ??= e;
        this.stop();
      });
  }

  /** The server's delivery message (checked against the welcome by the handshake): its layer's size is accepted from now on. */
  #onDelivery(d: Delivery): void {
    this.#sizes?.announce(d);
    this.#skips.announce(d.framesSkipped, d.skippedThrough);
    const before = this.#delivery;
    this.#delivery = d;
    this.#syncLoss();
    if (before?.layer !== d.layer || before.width !== d.width || before.height !== d.height) {
      this.#path.rebase();
      this.#logLayer("");
    }
  }

  /** TCP delivery: the warning that UDP does not get through, moves between UDP and TCP, a refusal. */
  #onTransport(a: Exclude<ChoiceAction, { type: "send" }>): void {
    switch (a.type) {
      case "blocked":
        this.stats.udpBlocked = true;
        this.#log.warn(a.text);
        return;
      case "moved":
        this.stats.transport = a.transport;
        this.stats.transportMoves++;
        this.#log.info(`frames now come over ${a.transport}`, { why: a.why });
        return;
      case "refused":
        this.#tcpRefused = a.text;
        this.#log.warn(`the server refused TCP delivery: ${a.text}`, { then: "frames stay on udp" });
        return;
    }
  }

  /**
   * Why no frame arrived, for a viewer that ends without one; null when frames did.
   * The server's word that UDP is blocked is the likeliest reason, and named first.
   */
  noFrameReason(): string | null {
    if (this.stats.framesReceived > 0) return null;
    const port = this.#client?.udpPort;
    if (this.stats.udpBlocked) {
      const fix = this.#tcpRefused ? `allow UDP port ${port} (the server refused TCP: ${this.#tcpRefused})` : `allow UDP port ${port} or run with --transport tcp`;
      return `no frame arrived: the server sent frames by UDP and none reached port ${port} (a firewall, see the warning above); ${fix}`;
    }
    if (!this.#everWelcomed) return "no frame arrived: the viewer never got a session from the server";
    return "no frame arrived: the server sent none while the viewer ran (is its camera busy or stalled? see the server's log), or every one was lost";
  }

  /** Frames that failed the server's signature: counted always, said once (with the first). */
  #onForged(total: number): void {
    this.stats.framesForged = total;
    if (this.#warnedForged) return;
    this.#warnedForged = true;
    this.#log.security("frames not signed by the server are arriving: someone is sending pictures in its name; they are dropped, not shown or recorded", {
      server: `${this.#opts.host}:${this.#opts.port}`, forged: total, fingerprint: this.#signedBy ?? undefined,
    });
  }

  #report(): Report {
    const s = this.stats;
    const p50 = s.latency.percentile(50) ?? 0;
    const p95 = s.latency.percentile(95) ?? 0;
    const b = this.#base;
    // Only a server that asked for them can read path counters (an older one would refuse the report).
    const asked = ((this.#welcome?.flags ?? 0) & WELCOME_PATH_REPORTS) !== 0;
    const report: Report = {
      type: "report", framesReceived: s.framesReceived - b.framesReceived, framesLost: s.framesMissing + s.framesSkipped - b.framesMissing,
      framesIncomplete: s.framesIncomplete - b.framesIncomplete,
      datagramsDropped: Object.values(this.datagramDrops()).reduce((a, b) => a + b, 0),
      latencyP50Us: Math.round(p50 * 1000), latencyP95Us: Math.round(p95 * 1000), fpsMillihertz: s.lastSecondFps(performance.now()) * 1000,
    };
    if (asked) report.path = this.#path.report();
    const r = asked && ((this.#welcome?.flags ?? 0) & WELCOME_REPAIR) !== 0 ? this.repairSummary() : null;
    if (r) {
      const us = (ms: number | null) => (ms === null ? 0 : Math.round(ms * 1000));
      report.repair = {
        datagramsRepairedByFec: r.datagramsRepairedByFec, datagramsRepairedByNack: r.datagramsRepairedByNack, datagramsUnrepaired: r.datagramsUnrepaired,
        framesRecordOnly: r.framesRecordOnly, repairDelayP50Us: us(r.repairDelayMs.p50), repairDelayP99Us: us(r.repairDelayMs.p99),
      };
    }
    return report;
  }

  /**
   * The final counts for the goodbye, for this session: the stats file's counters
   * less what earlier sessions counted (the whole run, unless it reconnected). Built
   * when the bye is, after which the client takes no more datagrams, so nothing is
   * counted later and the server's leave line equals the stats file.
   */
  #totals(): ByeTotals {
    this.#syncLoss();
    const s = this.stats;
    const b = this.#base;
    return {
      framesReceived: s.framesReceived - b.framesReceived, framesLost: s.framesMissing + s.framesSkipped - b.framesMissing,
      framesIncomplete: s.framesIncomplete - b.framesIncomplete, framesRecorded: (this.#opts.recordedFrames?.() ?? 0) - b.framesRecorded,
    };
  }

  /** Loss repair's counters, when this viewer offered it; null otherwise. */
  repairSummary(): RepairSummary | null {
    if (!this.#opts.repair || !this.#client) return null;
    return { ...this.#client.repairCounters.summary(), framesRecordOnly: this.#recordedOnly, framesShownLate: this.#lateShown };
  }

  #onFrame(f: ReassembledFrame, nowMs: number, use: "live" | "recordOnly" = "live"): void {
    this.#syncLoss();
    // Repaired after a newer frame was shown: the window does not go back; the recorder
    // takes it in its place. One complete past the live wait but still the newest is
    // shown (the window never waits for it, so late is better than not at all).
    if (this.#order && this.#lastFrame !== null && !this.#resynced && !seqLess(this.#lastFrame, f.frameNumber)) {
      return this.#recordOnly(f);
    }
    if (use === "recordOnly") this.#lateShown++;
    if (this.#lastFrame !== null && !this.#resynced && !seqLess(this.#lastFrame, f.frameNumber)) this.stats.framesOutOfOrder++;
    this.#lastFrame = f.frameNumber;
    this.#resynced = false;
    this.#skips.frame(f.frameNumber);
    // Again: the ledger may have just reached a skipped count's frame number.
    this.#syncLoss();
    const w = this.#welcome;
    // Only a JPEG of a size the server announced (the stream's, or one of its layers')
    // reaches the window and the recorder: a header claiming a huge picture would
    // otherwise cost gigabytes to decode.
    const size = readJpegSize(f.jpeg);
    if (!w || !size || !this.#sizes?.accepts(size.width, size.height)) {
      this.stats.framesRejected++;
      this.#warnRejected(size ? `${size.width}x${size.height}, expected ${w?.width}x${w?.height} or one of its layers` : "not a JPEG");
      return;
    }
    const max = this.#opts.maxFrames ?? 0;
    if (max > 0 && this.#accepted >= max) return; // --frames reached: exactly that many are counted and delivered
    this.#accepted++;
    // Said once: the stream is through (what "connected" alone does not prove: a firewall can drop every datagram).
    if (this.#accepted === 1) this.#log.info("first frame", { size: `${size.width}x${size.height}`, latencyMs: Math.round((nowMicros() - f.capturedAt) / 100) / 10 });
    this.stats.frame(f.jpeg.length, (nowMicros() - f.capturedAt) / 1000, nowMs, `${size.width}x${size.height}`);
    this.#deliver({ seq: f.frameNumber, capturedAt: f.capturedAt, width: size.width, height: size.height, jpeg: f.jpeg });
  }

  /** A frame for the recorder alone (complete too late for the live view), if it is a picture the server announced. */
  #recordOnly(f: ReassembledFrame): void {
    const size = readJpegSize(f.jpeg);
    if (!this.#welcome || !size || !this.#sizes?.accepts(size.width, size.height)) {
      this.stats.framesRejected++;
      return;
    }
    this.#recordedOnly++;
    this.#record(this.#order!.frame({ seq: f.frameNumber, capturedAt: f.capturedAt, width: size.width, height: size.height, jpeg: f.jpeg }));
  }

  #deliver(frame: Frame): void {
    this.#toSinks(this.#opts.sinks, [frame]);
    this.#record(this.#order ? this.#order.frame(frame) : [frame]);
    const max = this.#opts.maxFrames ?? 0;
    if (max > 0 && ++this.#delivered >= max) this.stop();
  }

  #record(frames: Frame[]): void {
    if (frames.length > 0) this.#toSinks(this.#opts.recordSinks ?? [], frames);
  }

  #toSinks(sinks: FrameSink[], frames: Frame[]): void {
    for (const frame of frames) {
      for (const sink of sinks) {
        try {
          sink(frame);
        } catch (e) {
          this.#log.error("frame sink failed", { error: (e as Error).message });
        }
      }
    }
  }

  /**
   * Brings the loss counters up to the reassembler's (cumulative across reconnects),
   * its missing frames split into skipped (as the server said) and the rest.
   */
  #syncLoss(): void {
    const r = this.#client?.reassembly;
    if (!r) return;
    const skipped = this.#skips.skipped(r.framesMissing);
    this.stats.framesSkipped = skipped;
    this.stats.framesMissing = r.framesMissing - skipped;
    this.stats.framesIncomplete = r.incomplete.lostFragment + r.incomplete.timeout + r.incomplete.evicted;
  }

  /** Stops the viewer: goodbye to the server, then `run()` resolves. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#client?.stop();
  }

  /** Stops and waits until `run()` has released its sockets; its outcome is the caller's of `run()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await this.#running?.catch(() => {});
  }
}

/** The camera a welcome names, as the connected line shows it: only where the server has several (or the name is not its number). */
function cameraShown(w: Welcome): string | undefined {
  const c = w.camera;
  if (!c || (c.count === 1 && c.name === String(c.index))) return undefined;
  return c.name;
}
