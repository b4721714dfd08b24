import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ViewState } from "./view-state.ts";

/**
 * GET /metrics in the Prometheus text format. The registry is this view's own (never
 * prom-client's global one, which other code in the process could fill), and every
 * value is read from one ViewState at scrape time, so /metrics and /state agree.
 * Per-viewer series are rebuilt on each scrape: a viewer that left disappears.
 */

const VIEWER_LABELS = ["id", "kind", "address", "name"] as const;

/** The lancam metrics and the process's own (CPU, memory). */
export class ViewMetrics {
  readonly registry = new Registry();
  #state: ViewState | null = null;

  constructor() {
    const registers = [this.registry];
    const state = () => {
      if (!this.#state) throw new Error("metrics collected before the first render()");
      return this.#state;
    };
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

    gauge("lancam_uptime_seconds", "Seconds since the server started.", (s) => s.uptimeSec);
    gauge("lancam_stream_fps", "Frames per second of the stream over the last second.", (s) => s.source.measuredFps);
    gauge("lancam_stream_bits_per_second", "JPEG bits per second of the stream over the last second.", (s) => s.source.bitsPerSecond);
    total("lancam_frames_captured_total", "Frames read from the source.", (s) => s.counters.framesCaptured);
    total("lancam_frames_encoded_total", "Frames encoded (once, for every viewer).", (s) => s.counters.framesEncoded);

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

    new Gauge({ name: "lancam_viewers", help: "Viewers watching now, by kind.", labelNames: ["kind"], registers, collect() {
      const s = state();
      for (const kind of ["udp", "classic", "browser"] as const) this.set({ kind }, s.viewers.filter((v) => v.kind === kind).length);
    } });
    const perTarget = (name: string, help: string, value: (t: ViewState["publish"][number]) => number) =>
      new Gauge({ name, help, labelNames: ["url", "codec"], registers, collect() {
        this.reset();
        for (const t of state().publish) this.set({ url: t.url, codec: t.codec }, value(t));
      } });
    perTarget("lancam_publish_up", "1 while a --publish target is publishing, else 0.", (t) => (t.state === "publishing" ? 1 : 0));
    perTarget("lancam_publish_frames_sent", "Frames handed to a --publish target's ffmpeg.", (t) => t.sent);
    perTarget("lancam_publish_frames_dropped", "Frames a --publish target did not get (down, slow, or not carriable).", (t) => t.dropped);
    perTarget("lancam_publish_reconnects", "Connections to a --publish target after the first.", (t) => t.reconnects);
    const perViewer = (name: string, help: string, value: (v: ViewState["viewers"][number]) => number | null) =>
      new Gauge({ name, help, labelNames: VIEWER_LABELS, registers, collect() {
        this.reset();
        for (const v of state().viewers) {
          const x = value(v);
          if (x !== null) this.set({ id: v.id, kind: v.kind, address: v.address, name: v.name }, x);
        }
      } });
    perViewer("lancam_viewer_fps", "Frames per second a viewer gets, over the last second.", (v) => v.fps);
    perViewer("lancam_viewer_loss_ratio", "Frames a viewer never got, over frames meant for it, since it joined (0-1).", (v) => (v.lossPercent === null ? null : v.lossPercent / 100));
    perViewer("lancam_viewer_latency_seconds", "Median capture-to-arrival time of a viewer's frames.", (v) => (v.latencyP50Ms === null ? null : v.latencyP50Ms / 1000));
    perViewer("lancam_viewer_frames_dropped", "Frames a viewer never got since it joined.", (v) => v.framesDropped);

    collectDefaultMetrics({ register: this.registry });
  }

  /** The Content-Type of render()'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text for one state. */
  async render(state: ViewState): Promise<string> {
    // Kept after rendering: scrapes that overlap then read states milliseconds apart, never none.
    this.#state = state;
    return await this.registry.metrics();
  }
}
