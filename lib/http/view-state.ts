import type { AudioFormat } from "../wire/audio-packet.ts";
import type { CameraSourceInfo, PublishTargetInfo, ServerCounters, SourceInfo, ViewerInfo } from "./viewer-info.ts";

/** One viewers-table row: the viewer as the server or the view counts it, plus its loss. */
export interface ViewerRow extends ViewerInfo {
  /** framesDropped over frames delivered plus dropped, since it joined, %; null when unknown. */
  lossPercent: number | null;
}

/** The last minute for the page's chart, as columns (the layout uPlot draws). */
export interface HistoryColumns {
  /** Seconds since the Unix epoch. */
  t: number[];
  streamFps: number[];
  /** Lowest fps among viewers at that second; null with no viewer. */
  slowestViewerFps: (number | null)[];
  /** Highest median latency among viewers at that second, ms; null when none is known. */
  worstLatencyMs: (number | null)[];
}

/** One camera's stream as it reaches the view. */
export interface SourceView extends SourceInfo {
  /** Frames per second reaching the view, over the last second. */
  measuredFps: number;
  /** JPEG bits per second of the stream, over the last second. */
  bitsPerSecond: number;
  lastFrame: { seq: number; capturedAt: number } | null;
}

/** One camera in /state's `sources`: its stream, whether it gives frames, who watches it, its last minute. */
export interface CameraView extends SourceView, CameraSourceInfo {
  /** Frames of this camera encoded once and offered to its viewers. */
  framesEncoded: number;
  /** Viewers of every kind watching this camera now. */
  viewers: number;
  history: HistoryColumns;
  /** The camera's audio (codec, channels, rate), or null when it has none: the page shows a speaker button for it. */
  audio?: AudioFormat | null;
  /** /audio.ogg listeners of this camera now. */
  audioListeners?: number;
}

/** The body of GET /state. */
export interface ViewState {
  /** ISO 8601. */
  startedAt: string;
  uptimeSec: number;
  /** Camera 0's stream, as before there were several (sources[0] has the same and more). */
  source: SourceView;
  /** Every camera, index = its number. */
  sources: CameraView[];
  counters: ServerCounters & {
    /** Frames encoded once and offered to every viewer, over every camera. */
    framesEncoded: number;
    /** Frames handed to the view for a camera number it does not serve (a wiring fault; 0 normally), not shown anywhere. */
    framesIgnored: number;
    browser: {
      framesSent: number;
      framesSkipped: number;
      bytesSent: number;
      /** Readers dropped because they stopped reading. */
      readersStalled: number;
      /** Readers refused (server full, reader limit). */
      readersRefused: number;
    };
    /** /audio.ogg, over every camera (the view always fills it in). */
    audio?: {
      /** Listeners now. */
      listeners: number;
      /** Packets handed to the view for a camera with audio. */
      packetsIn: number;
      /** Packets for a camera without audio, or of no Opus packet's size: dropped. */
      packetsIgnored: number;
      /** Packets written to listeners, summed over them, since the start. */
      packetsSent: number;
      /** Packets listeners lost by falling more than their queue behind. */
      packetsSkipped: number;
      bytesSent: number;
      /** Listeners dropped because they stopped reading. */
      readersStalled: number;
      /** Listeners refused (their limit, shutting down). */
      readersRefused: number;
    };
  };
  viewers: ViewerRow[];
  /** Media servers the stream is pushed to (--publish). */
  publish: PublishTargetInfo[];
  /** Camera 0's last minute (sources[i].history has each camera's). */
  history: HistoryColumns;
}

/** The viewer's loss since it joined, %, from the counters it has. */
export function lossPercent(v: ViewerInfo): number | null {
  const delivered = v.kind === "browser" ? v.framesSent : v.framesReceived;
  if (v.framesDropped === null || delivered === null) return null;
  const total = delivered + v.framesDropped;
  return total > 0 ? (100 * v.framesDropped) / total : 0;
}

/** A ring of the last `capacity` once-a-second points. */
export class ViewHistory {
  readonly #capacity: number;
  readonly #points: { t: number; streamFps: number; slowestViewerFps: number | null; worstLatencyMs: number | null }[] = [];

  constructor(capacity = 60) {
    if (!(capacity >= 1)) throw new RangeError(`history capacity must be at least 1, got ${capacity}`);
    this.#capacity = capacity;
  }

  /** Adds the point for this second, summing up the viewers as they are now. */
  add(tSeconds: number, streamFps: number, viewers: readonly ViewerInfo[]): void {
    let slowest: number | null = null;
    let worst: number | null = null;
    for (const v of viewers) {
      if (v.fps !== null) slowest = slowest === null ? v.fps : Math.min(slowest, v.fps);
      if (v.latencyP50Ms !== null) worst = worst === null ? v.latencyP50Ms : Math.max(worst, v.latencyP50Ms);
    }
    this.#points.push({ t: tSeconds, streamFps, slowestViewerFps: slowest, worstLatencyMs: worst });
    if (this.#points.length > this.#capacity) this.#points.shift();
  }

  columns(): HistoryColumns {
    const p = this.#points;
    return {
      t: p.map((x) => x.t),
      streamFps: p.map((x) => x.streamFps),
      slowestViewerFps: p.map((x) => x.slowestViewerFps),
      worstLatencyMs: p.map((x) => x.worstLatencyMs),
    };
  }
}
