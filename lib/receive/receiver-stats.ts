import { LatencyHistogram } from "./latency-histogram.ts";

/** The JSON written by `client.ts --stats FILE`. */
export interface StatsSummary {
  framesReceived: number;
  /** Frames of which some datagrams arrived but that could not be completed. */
  framesIncomplete: number;
  /** Frames of which nothing arrived (gaps in frame numbers), less those the server said it skipped. */
  framesMissing: number;
  /**
   * Frames the server chose not to send (pacing a slow path), as its delivery messages
   * said: not losses. framesReceived + framesMissing + framesIncomplete + framesSkipped
   * is every frame number the viewer's sessions spanned.
   */
  framesSkipped: number;
  /** Frames received by picture size ("1280x720"); sizes past MAX_SIZES_COUNTED are counted under "other". */
  framesBySize: Record<string, number>;
  /** Frames delivered with a number not above the previous one (must stay 0). */
  framesOutOfOrder: number;
  /** Complete frames that were not a JPEG of the announced size (not shown, not recorded). */
  framesRejected: number;
  /** Complete frames whose server signature did not check: forged in the server's name (not shown, not recorded). */
  framesForged: number;
  /** framesIncomplete + framesMissing. */
  framesDropped: number;
  bytes: number;
  durationSec: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  /** Frames completed in each whole second since the first frame. */
  fpsPerSecond: number[];
  receiveBufferBytes: number | null;
  reconnects: number;
  /** How datagrams came: by the multicast group or to the viewer's own port, and how often it asked for unicast instead. */
  delivery: { datagramsByGroup: number; datagramsByOwnPort: number; fallbacks: number };
  /** TCP delivery: the transport at the end, datagrams that came over the control connection, moves between the two, and whether UDP was found blocked. */
  transport: { transport: "udp" | "tcp"; datagramsByTcp: number; moves: number; udpBlocked: boolean };
  datagramsDropped: Record<string, number>;
}

/** A once-a-second view for the status line and receiver reports. */
export interface StatusSnapshot {
  fps: number;
  mbps: number;
  lossPercent: number;
  latencyP50Ms: number | null;
}

const MAX_SECONDS = 86_400;
/** Picture sizes counted apart at most (a server has a few layers; the rest is "other"). */
export const MAX_SIZES_COUNTED = 16;

/** Counts what a viewer received; the clock is passed in (ms). */
export class ReceiverStats {
  readonly latency = new LatencyHistogram();
  readonly #recent = new LatencyHistogram();
  framesReceived = 0;
  framesIncomplete = 0;
  framesMissing = 0;
  framesSkipped = 0;
  readonly framesBySize = new Map<string, number>();
  framesOutOfOrder = 0;
  framesRejected = 0;
  framesForged = 0;
  bytes = 0;
  reconnects = 0;
  receiveBufferBytes: number | null = null;
  /** Datagrams from the server that came by its multicast group. */
  datagramsByGroup = 0;
  /** Datagrams from the server that came to this viewer's own UDP port. */
  datagramsByOwnPort = 0;
  /** Sessions in which the group did not reach this viewer and it asked for unicast. */
  fallbacks = 0;
  /** Datagrams that came over the control connection (TCP delivery). */
  datagramsByTcp = 0;
  /** How frames come now. */
  transport: "udp" | "tcp" = "udp";
  /** Moves between UDP and TCP. */
  transportMoves = 0;
  /** The server said UDP datagrams do not reach this viewer. */
  udpBlocked = false;
  #firstAt: number | null = null;
  #lastAt = 0;
  readonly #perSecond: number[] = [];
  #window = { at: 0, frames: 0, bytes: 0, lost: 0 };

  /** A completed frame; `latencyMs` is arrival minus capture time; `size` its picture size ("640x360"), when known. */
  frame(bytes: number, latencyMs: number, nowMs: number, size?: string): void {
    if (size !== undefined) {
      const key = this.framesBySize.has(size) || this.framesBySize.size < MAX_SIZES_COUNTED ? size : "other";
      this.framesBySize.set(key, (this.framesBySize.get(key) ?? 0) + 1);
    }
    if (this.#firstAt === null) {
      this.#firstAt = nowMs;
      this.#window.at = nowMs;
    }
    this.#lastAt = nowMs;
    this.framesReceived++;
    this.bytes += bytes;
    this.latency.add(latencyMs);
    this.#recent.add(latencyMs);
    const second = Math.floor((nowMs - this.#firstAt) / 1000);
    if (second < MAX_SECONDS) {
      while (this.#perSecond.length <= second) this.#perSecond.push(0);
      this.#perSecond[second]!++;
    }
  }

  /** Frames completed in the last whole second before `nowMs` (0 before the first frame). */
  lastSecondFps(nowMs: number): number {
    if (this.#firstAt === null) return 0;
    const second = Math.floor((nowMs - this.#firstAt) / 1000) - 1;
    return second >= 0 && second < this.#perSecond.length ? this.#perSecond[second]! : 0;
  }

  /** Frames that never arrived or could not be completed. */
  lost(missing: number, incomplete: number): void {
    this.framesMissing += missing;
    this.framesIncomplete += incomplete;
  }

  /** Rates since the previous snapshot; starts a new window. */
  snapshot(nowMs: number): StatusSnapshot {
    const lostNow = this.framesMissing + this.framesIncomplete;
    const w = this.#window;
    const seconds = Math.max((nowMs - w.at) / 1000, 1e-3);
    const frames = this.framesReceived - w.frames;
    // Missing frames the server then says it skipped leave the count: never a negative loss.
    const lost = Math.max(0, lostNow - w.lost);
    const snap: StatusSnapshot = {
      fps: frames / seconds,
      mbps: ((this.bytes - w.bytes) * 8) / seconds / 1e6,
      lossPercent: frames + lost > 0 ? (100 * lost) / (frames + lost) : 0,
      latencyP50Ms: this.#recent.percentile(50),
    };
    this.#window = { at: nowMs, frames: this.framesReceived, bytes: this.bytes, lost: lostNow };
    this.#recent.reset();
    return snap;
  }

  summary(datagramsDropped: Record<string, number>): StatsSummary {
    return {
      framesReceived: this.framesReceived,
      framesIncomplete: this.framesIncomplete,
      framesMissing: this.framesMissing,
      framesSkipped: this.framesSkipped,
      framesBySize: Object.fromEntries(this.framesBySize),
      framesOutOfOrder: this.framesOutOfOrder,
      framesRejected: this.framesRejected,
      framesForged: this.framesForged,
      framesDropped: this.framesIncomplete + this.framesMissing,
      bytes: this.bytes,
      durationSec: this.#firstAt === null ? 0 : (this.#lastAt - this.#firstAt) / 1000,
      latencyMs: { p50: this.latency.percentile(50), p95: this.latency.percentile(95), p99: this.latency.percentile(99) },
      fpsPerSecond: [...this.#perSecond],
      receiveBufferBytes: this.receiveBufferBytes,
      reconnects: this.reconnects,
      delivery: { datagramsByGroup: this.datagramsByGroup, datagramsByOwnPort: this.datagramsByOwnPort, fallbacks: this.fallbacks },
      transport: { transport: this.transport, datagramsByTcp: this.datagramsByTcp, moves: this.transportMoves, udpBlocked: this.udpBlocked },
      datagramsDropped,
    };
  }
}
