import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ViewerKind } from "./viewer-info.ts";
import type { CameraView, ViewState, ViewerRow } from "./view-state.ts";
import { ViewerSlots } from "./viewer-slots.ts";

/**
 * GET /metrics in the Prometheus text format. The registry is this view's own (never
 * prom-client's global one, which other code in the process could fill), and every
 * value is read from one ViewState at scrape time, so /metrics and /state agree.
 *
 * Names follow the Prometheus naming guide, so `promtool check metrics` accepts them:
 * counters end in _total, units are base units (bytes, seconds), and no label holds a
 * session id, address or a viewer's name. Per-viewer series carry a `viewer` slot number
 * that is reused once its viewer leaves, so there are never more of them than viewers the
 * server admits at once (--max-clients); /state has who each viewer is.
 *
 * Each camera's own series (its stream, its viewers, each viewer's figures) carry a
 * `camera` label, its name: a fixed set of at most MAX_CAMERAS, given at start. It is
 * there with one camera too, so a query or dashboard works the same for one or several.
 * The server's totals over every camera (frames sent, drops, publishing) carry none.
 */

const VIEWER_KINDS: readonly ViewerKind[] = ["udp", "classic", "browser"];

/**
 * prom-client's default Node metrics that promtool rejects: gauges named like counters
 * ("non-counter metrics should not have _total suffix"). Left out; Node's other
 * process and heap metrics stay.
 */
const REJECTED_DEFAULT_METRICS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

/**
 * Frames viewers never got, summed by kind over every viewer since the view started,
 * so the sum only grows while viewers come and go. A viewer that left counts with its
 * figure at the last scrape that saw it.
 */
class DroppedTotals {
  readonly #gone: Record<ViewerKind, number> = { udp: 0, classic: 0, browser: 0 };
  readonly #present = new Map<string, { kind: ViewerKind; dropped: number }>();

  /** Takes the viewers present now (keyed as in ViewMetrics) and returns the totals by kind. */
  update(viewers: readonly { key: string; row: ViewerRow }[]): Record<ViewerKind, number> {
    const seen = new Set<string>();
    for (const { key, row } of viewers) {
      seen.add(key);
      if (row.framesDropped === null) continue;
      const before = this.#present.get(key)?.dropped ?? 0;
      // A viewer's own report may dip (a late frame completes); the sum must not.
      this.#present.set(key, { kind: row.kind, dropped: Math.max(before, row.framesDropped) });
    }
    for (const [key, v] of this.#present) {
      if (seen.has(key)) continue;
      this.#gone[v.kind] += v.dropped;
      this.#present.delete(key);
    }
    const out = { ...this.#gone };
    for (const v of this.#present.values()) out[v.kind] += v.dropped;
    return out;
  }
}

/** Options of ViewMetrics. */
export interface ViewMetricsOptions {
  /** Viewers the server admits at once (--max-clients): per-viewer series are kept for at most this many. */
  maxViewers: number;
}

/** The lancam metrics and the process's own (CPU, memory). */
export class ViewMetrics {
  readonly registry = new Registry();
  readonly #slots: ViewerSlots;
  readonly #dropped = new DroppedTotals();
  /** What one render() collects from: the state, each viewer's slot, the dropped totals. */
  #scrape: { state: ViewState; slotted: { slot: number; row: ViewerRow }[]; dropped: Record<ViewerKind, number> } | null = null;

  constructor(opts: ViewMetricsOptions) {
    this.#slots = new ViewerSlots(opts.maxViewers);
    const registers = [this.registry];
    const scrape = () => {
      if (!this.#scrape) throw new Error("metrics collected before the first render()");
      return this.#scrape;
    };
    const state = () => scrape().state;
    // Counters mirror totals kept elsewhere: reset, then set to the total.
    const total = (name: string, help: string, value: (s: ViewState) => number) =>
      new Counter({ name, help, registers, collect() {
        this.reset();
        this.inc(value(state()));
      } });
    const gauge = (name: string, help: string, value: (s: ViewState) => number) =>
      new Gauge({ name, help, registers, collect() {
        this.set(value(state()));
      } });

    const cameraGauge = (name: string, help: string, value: (c: CameraView) => number) =>
      new Gauge({ name, help, labelNames: ["camera"], registers, collect() {
        this.reset();
        for (const c of state().sources) this.set({ camera: c.name }, value(c));
      } });
    const cameraTotal = (name: string, help: string, value: (c: CameraView) => number) =>
      new Counter({ name, help, labelNames: ["camera"], registers, collect() {
        this.reset();
        for (const c of state().sources) this.inc({ camera: c.name }, value(c));
      } });

    gauge("lancam_uptime_seconds", "Seconds since the server started.", (s) => s.uptimeSec);
    cameraGauge("lancam_stream_fps", "Frames per second of a camera's stream over the last second.", (c) => c.measuredFps);
    cameraGauge("lancam_stream_bytes_per_second", "JPEG bytes per second of a camera's stream over the last second.", (c) => c.bitsPerSecond / 8);
    cameraGauge("lancam_camera_available", "1 while a camera gives frames, 0 while it has failed (unplugged) and is being retried.", (c) => (c.available ? 1 : 0));
    cameraTotal("lancam_frames_captured_total", "Frames read from a camera.", (c) => c.framesCaptured);
    cameraTotal("lancam_frames_encoded_total", "Frames of a camera encoded (once, for every viewer).", (c) => c.framesEncoded);

    new Counter({ name: "lancam_frames_sent_total", help: "Frames handed to viewers, by kind of viewer.", labelNames: ["kind"], registers, collect() {
      const s = state();
      this.reset();
      this.inc({ kind: "udp" }, s.counters.framesSent);
      this.inc({ kind: "browser" }, s.counters.browser.framesSent);
    } });
    new Counter({ name: "lancam_bytes_sent_total", help: "JPEG payload bytes handed to viewers, by kind of viewer.", labelNames: ["kind"], registers, collect() {
      const s = state();
      this.reset();
      if (s.counters.bytesSent !== null) this.inc({ kind: "udp" }, s.counters.bytesSent);
      this.inc({ kind: "browser" }, s.counters.browser.bytesSent);
    } });
    new Counter({ name: "lancam_drops_total", help: "What was not delivered, by reason.", labelNames: ["reason"], registers, collect() {
      const s = state();
      this.reset();
      for (const [reason, n] of Object.entries(s.counters.drops)) this.inc({ reason }, n);
      this.inc({ reason: "browserFramesSkipped" }, s.counters.browser.framesSkipped);
    } });
    total("lancam_browser_readers_stalled_total", "Browser readers dropped because they stopped reading.", (s) => s.counters.browser.readersStalled);
    total("lancam_browser_readers_refused_total", "Browser readers refused (server full, reader limit).", (s) => s.counters.browser.readersRefused);
    cameraGauge("lancam_camera_audio", "1 when a camera has audio (its /audio.ogg and the page's speaker button), else 0.", (c) => (c.audio ? 1 : 0));
    cameraGauge("lancam_audio_listeners", "Listeners of a camera's /audio.ogg now.", (c) => c.audioListeners ?? 0);
    total("lancam_audio_packets_sent_total", "Opus packets written to /audio.ogg listeners, summed over them.", (s) => s.counters.audio?.packetsSent ?? 0);
    total("lancam_audio_packets_skipped_total", "Opus packets /audio.ogg listeners lost by falling too far behind.", (s) => s.counters.audio?.packetsSkipped ?? 0);
    total("lancam_audio_bytes_sent_total", "Ogg bytes written to /audio.ogg listeners.", (s) => s.counters.audio?.bytesSent ?? 0);
    total("lancam_audio_listeners_stalled_total", "/audio.ogg listeners dropped because they stopped reading.", (s) => s.counters.audio?.readersStalled ?? 0);
    total("lancam_audio_listeners_refused_total", "/audio.ogg listeners refused (their limit reached).", (s) => s.counters.audio?.readersRefused ?? 0);

    new Gauge({ name: "lancam_viewers", help: "Viewers watching now, by kind and camera.", labelNames: ["kind", "camera"], registers, collect() {
      const s = state();
      this.reset();
      for (const { name: camera } of s.sources) {
        for (const kind of VIEWER_KINDS) this.set({ kind, camera }, s.viewers.filter((v) => v.kind === kind && v.camera === camera).length);
      }
    } });
    new Gauge({ name: "lancam_viewers_transport", help: "Lancam viewers watching now, by how their frames go (udp, or tcp when UDP does not reach them).", labelNames: ["transport"], registers, collect() {
      const s = state();
      for (const transport of ["udp", "tcp"]) this.set({ transport }, s.viewers.filter((v) => v.kind === "udp" && (v.transport ?? "udp") === transport).length);
    } });
    gauge("lancam_viewers_no_datagrams", "Lancam viewers now whose reports said no UDP datagram reached them (a firewall, most likely).", (s) => s.viewers.filter((v) => v.noDatagrams).length);
    new Counter({ name: "lancam_viewer_frames_dropped_total", help: "Frames viewers never got, by kind of viewer, over every viewer since the start.", labelNames: ["kind"], registers, collect() {
      const d = scrape().dropped;
      this.reset();
      for (const kind of VIEWER_KINDS) this.inc({ kind }, d[kind]);
    } });
    // Targets are the --publish flags: a fixed set, so the URL is a bounded label.
    new Gauge({ name: "lancam_publish_up", help: "1 while a --publish target is publishing, else 0.", labelNames: ["url", "codec"], registers, collect() {
      this.reset();
      for (const t of state().publish) this.set({ url: t.url, codec: t.codec }, t.state === "publishing" ? 1 : 0);
    } });
    const perTarget = (name: string, help: string, value: (t: ViewState["publish"][number]) => number) =>
      new Counter({ name, help, labelNames: ["url", "codec"], registers, collect() {
        this.reset();
        for (const t of state().publish) this.inc({ url: t.url, codec: t.codec }, value(t));
      } });
    perTarget("lancam_publish_frames_sent_total", "Frames handed to a --publish target's ffmpeg.", (t) => t.sent);
    perTarget("lancam_publish_frames_dropped_total", "Frames a --publish target did not get (down, slow, or not carriable).", (t) => t.dropped);
    perTarget("lancam_publish_reconnects_total", "Connections to a --publish target after the first.", (t) => t.reconnects);
    const perViewer = (name: string, help: string, value: (v: ViewerRow) => number | null) =>
      new Gauge({ name, help, labelNames: ["viewer", "kind", "camera"], registers, collect() {
        this.reset();
        for (const { slot, row } of scrape().slotted) {
          const x = value(row);
          if (x !== null) this.set({ viewer: String(slot), kind: row.kind, camera: row.camera }, x);
        }
      } });
    perViewer("lancam_viewer_fps", "Frames per second a viewer gets, over the last second, by viewer slot.", (v) => v.fps);
    perViewer("lancam_viewer_loss_ratio", "Frames a viewer never got, over frames meant for it, since it joined (0-1), by viewer slot.", (v) => (v.lossPercent === null ? null : v.lossPercent / 100));
    perViewer("lancam_viewer_layer", "The quality layer a viewer is sent (0 = full size), by viewer slot; only viewers whose picture adapts (paced to their path, or browsers on a camera with layers).", (v) => v.picture?.layer ?? null);
    perViewer("lancam_viewer_picture_width_pixels", "Width of the picture a viewer is sent, by viewer slot; only viewers whose picture adapts (paced to their path, or browsers on a camera with layers).", (v) => v.picture?.width ?? null);
    perViewer("lancam_viewer_path_rate_bytes_per_second", "The server's estimate of a viewer's path, by viewer slot; only while it limits that viewer.", (v) => v.rateBytesPerS ?? null);
    perViewer("lancam_viewer_latency_seconds", "Median capture-to-arrival time of a viewer's frames, by viewer slot.", (v) => (v.latencyP50Ms === null ? null : v.latencyP50Ms / 1000));
    perViewer("lancam_viewer_datagrams_repaired_by_parity", "Datagrams a repairing viewer rebuilt from parity since it started, by viewer slot (its own count).", (v) => v.repair?.datagramsRepairedByFec ?? null);
    perViewer("lancam_viewer_datagrams_repaired_by_resend", "Datagrams a repairing viewer got by asking for them again, by viewer slot (its own count).", (v) => v.repair?.datagramsRepairedByNack ?? null);
    perViewer("lancam_viewer_datagrams_unrepaired", "Datagrams of frames a repairing viewer gave up, by viewer slot (its own count).", (v) => v.repair?.datagramsUnrepaired ?? null);
    perViewer("lancam_viewer_frames_recorded_only", "Frames repaired too late for a viewer's live view but in time for its recording, by viewer slot.", (v) => v.repair?.framesRecordOnly ?? null);
    perViewer("lancam_viewer_repair_delay_seconds", "Median delay repair added to a viewer's repaired frames, by viewer slot.", (v) => (v.repair?.delayP50Ms == null ? null : v.repair.delayP50Ms / 1000));
    perViewer("lancam_viewer_resent_bytes", "Bytes the server resent a repairing viewer since it joined, by viewer slot.", (v) => v.repair?.bytesResent ?? null);
    total("lancam_repair_resent_bytes_total", "Bytes resent to repairing viewers since the start.", (s) => s.counters.repair?.bytesResent ?? 0);
    total("lancam_repair_resent_datagrams_total", "Datagrams resent to repairing viewers since the start.", (s) => s.counters.repair?.datagramsResent ?? 0);

    collectDefaultMetrics({ register: this.registry });
    for (const name of REJECTED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
  }

  /** The Content-Type of render()'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text for one state. */
  async render(state: ViewState): Promise<string> {
    // A viewer is known by kind and id: ids of different kinds never meet in one table.
    const keyed = state.viewers.map((row) => ({ key: `${row.kind}:${row.id}`, row }));
    const slots = this.#slots.update(keyed.map((v) => v.key));
    const slotted = keyed.flatMap(({ key, row }) => {
      const slot = slots.get(key);
      return slot === undefined ? [] : [{ slot, row }];
    });
    // Kept after rendering: scrapes that overlap then read states milliseconds apart, never none.
    this.#scrape = { state, slotted, dropped: this.#dropped.update(keyed) };
    return await this.registry.metrics();
  }
}
