import type { TransportMode } from "./transport-choice.ts";
import type { Logger } from "../log/format.ts";
import type { TokenKey } from "../net/session-keys.ts";
import { formatPicture } from "../display/status-line.ts";
import { ClassicWatcher } from "./classic-watcher.ts";
import type { ReceiverStats } from "./receiver-stats.ts";
import { Viewer, type FrameSink, type ViewerOptions } from "./viewer.ts";
import type { AudioCounters } from "./audio-receiver.ts";
import type { AudioFormat } from "../wire/audio-packet.ts";
import type { Welcome } from "../wire/control.ts";
import type { RepairSummary } from "./repair-session.ts";

/** One viewing session as the client runs it, whichever program the server is. */
export interface Watcher extends AsyncDisposable {
  /** Resolves when stopped or a frame/duration limit is reached; rejects with ConnectError when the first connection fails. */
  run(): Promise<void>;
  /** Says goodbye to the server (bye, or the classroom "end"); `run()` then resolves. */
  stop(): void;
  /** What arrived, for the status line and the stats file. */
  readonly stats: ReceiverStats;
  /** Datagrams not used, by reason, for the stats file. */
  datagramDrops(): Record<string, number>;
  /** Lancam only: loss repair's counters for the stats file, when repair was offered. */
  repairSummary?(): RepairSummary | null;
  /** Lancam only: why no frame arrived, when none did (null when frames did). */
  noFrameReason?(): string | null;
  /** Lancam only: the audio datagrams taken and dropped (null when audio was not offered). */
  audioCounters?(): Readonly<AudioCounters> | null;
}

/** How to watch; the sinks and callbacks are the same for either server. */
export interface WatcherOptions {
  /** "lancam": a lancam server; "classic": the classroom program's server. */
  protocol: "lancam" | "classic";
  host: string;
  port: number;
  udpPort: number;
  log: Logger;
  /** Sinks of the live view. */
  sinks: FrameSink[];
  /** Sinks that get every frame in order, those repaired too late for the live view included (the recorder). */
  recordSinks?: FrameSink[];
  /** Lancam only: offer loss repair, with the live view's and the recorder's waits (ms). */
  repair?: { maxDelayMs: number; recordDelayMs: number } | null;
  /** Stop after this many frames (0 = no limit). */
  maxFrames?: number;
  /** Stop after this many seconds (0 = no limit). */
  maxSeconds?: number;
  /** Lancam only: the UDP receive buffer to ask for (a classroom server has one picture in flight). */
  receiveBufferBytes?: number;
  /** Lancam only: this viewer's name in the server's log. */
  /** The server's camera to watch: its number or name ("" or left out: camera 0). */
  camera?: string;
  name?: string;
  /** Lancam only: frames the recorder has written, for the final bye. */
  recordedFrames?: () => number;
  /** Lancam only: the token (stretched) the server must ask for and prove. */
  token?: TokenKey | null;
  /** Lancam only: how long the first connection may take, waiting for a busy server included. */
  connectTimeoutMs?: number;
  /** Lancam only: how frames should come (auto, udp, tcp) and, on TCP, how long until UDP is tried again. */
  transport?: TransportMode;
  retryUdpMs?: number;
  /** Once the UDP port is bound, before connecting. */
  onBound?: (udpPort: number) => void;
  /**
   * The stream's frame rate, once known (a lancam welcome says it; a classroom stream's
   * is measured over its first second). A failure stops the watcher and `run()` rejects with it.
   */
  onStreamRate?: (fps: number, audio: AudioFormat | null) => void | Promise<void>;
  /** Lancam only: offer to take the server's audio (ViewerOptions.audio). */
  audio?: ViewerOptions["audio"];
  /** About once a second, with the picture size once known ("1280x720"). */
  onSecond?: (stats: ReceiverStats, size: string | null) => void;
  /**
   * "connected" at each welcome, "reconnecting" when the server went away. A classroom
   * viewer is connected once it has asked for the stream, and never reconnects.
   */
  onLink?: (state: "connected" | "reconnecting") => void;
  /** Lancam only: a datagram of the stream arrived (a classroom stream's datagrams are its frames). */
  onDatagram?: () => void;
  /** The server's camera failed and is being retried (false), or is back (true). */
  onSource?: (available: boolean) => void;
}

/** The watcher for `protocol`: a lancam Viewer or a ClassicWatcher, run the same way. */
export function createWatcher(opts: WatcherOptions): Watcher {
  const { host, port, udpPort, log, sinks, maxFrames, maxSeconds } = opts;
  if (opts.protocol === "classic") {
    if (opts.name) log.warn("a classroom server has no place for a viewer's name; --name is not sent", { name: opts.name });
    if (opts.camera && opts.camera !== "0") log.warn("a classroom server has one camera; --camera is not sent", { camera: opts.camera });
    // The classroom client asks for the stream as it opens, before it reports the port.
    const onBound = (bound: number) => {
      opts.onLink?.("connected");
      opts.onBound?.(bound);
    };
    return new ClassicWatcher({ host, port, udpPort, log, sinks: [...sinks, ...(opts.recordSinks ?? [])], maxFrames, maxSeconds, onBound, onStreamRate: opts.onStreamRate && ((fps) => opts.onStreamRate!(fps, null)), onSecond: opts.onSecond });
  }
  return new Viewer({
    host, port, udpPort, log, sinks, recordSinks: opts.recordSinks, repair: opts.repair, maxFrames, maxSeconds,
    receiveBufferBytes: opts.receiveBufferBytes, name: opts.name, camera: opts.camera, recordedFrames: opts.recordedFrames, token: opts.token,
    connectTimeoutMs: opts.connectTimeoutMs, onLink: opts.onLink, onDatagram: opts.onDatagram, onSource: opts.onSource, transport: opts.transport, retryUdpMs: opts.retryUdpMs, audio: opts.audio,
    onBound: opts.onBound && ((bound) => opts.onBound!(bound)),
    onWelcome: opts.onStreamRate && ((welcome) => opts.onStreamRate!(welcome.fpsMillihertz / 1000, audioFormatOf(welcome))),
    onSecond: opts.onSecond && ((stats, welcome, delivery) => opts.onSecond!(stats, welcome ? formatPicture(welcome, delivery) : null)),
  });
}

/** The stream's audio as its welcome says it: Opus at 48 kHz; null when it has none (or the viewer did not offer audio). */
export function audioFormatOf(welcome: Welcome): AudioFormat | null {
  const a = welcome.audio;
  return a ? { codec: a.codec, sampleRate: 48000, channels: a.channels, frameMs: a.frameMs, bitrate: a.bitrate } : null;
}
