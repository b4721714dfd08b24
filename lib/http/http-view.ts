/**
 * The browser view: an HTTP server (Bun.serve) fed the frames the UDP viewers get,
 * encoded once, of one camera or several. Routes:
 *
 *   /               the page: live picture, the stream's figures, who is watching, a chart;
 *                   with several cameras every camera's picture, /?camera=N one of them
 *   /stream.mjpg    multipart MJPEG (browsers' <img>, VLC, ffplay); newest frame per reader,
 *                   a smaller picture for a reader that falls behind (when given sizes)
 *   /snapshot.jpg   the newest frame
 *   /audio.ogg      live Ogg Opus of a camera with audio (the page's speaker button, VLC, ffplay);
 *                   404 for a camera without; a listener that falls behind skips packets
 *   /state          JSON: every camera, uptime, counters, every viewer, the last minute
 *   /metrics        Prometheus text format (own registry)
 *   /assets/...     the page's script and styles, and uPlot, all embedded
 *
 * `?camera=N` (number from 0, or name) picks the camera of /, /stream.mjpg,
 * /snapshot.jpg and /audio.ogg; without it they show camera 0 (the page: every camera). The server gives
 * it a state provider (cameras, UDP viewers, totals), an admission hook (so browsers
 * count toward the viewer limit) and, optionally, an access check.
 */
import type { Server } from "bun";
import pageHtml from "./page.html" with { type: "text" };
import pageCss from "./page.css" with { type: "text" };
import pageJs from "./page.js" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import { escapeBare, type Fields, type Logger } from "../log/format.ts";
import { throttled } from "../log/logger.ts";
import { MAX_CAMERAS } from "../wire/camera-name.ts";
import { nowMicros, type Frame } from "../wire/frame.ts";
import { CameraFeed } from "./camera-feed.ts";
import { CameraLayers, SCALE_GIVE_UP_MS, type ReaderLayers } from "./camera-layers.ts";
import { cameraQuery } from "./camera-query.ts";
import { ViewMetrics } from "./metrics.ts";
import { MjpegReaders, type LayerMove, type MjpegReader, type PushResult } from "./mjpeg-readers.ts";
import { MJPEG_CONTENT_TYPE, PART_END, partHeader, STREAM_START, timestampHeader } from "./mjpeg-part.ts";
import { pageWithCameras } from "./page-cameras.ts";
import { CountRates } from "./rates.ts";
import { readerName } from "./reader-name.ts";
import { AUTH_CHALLENGE, type AuthCheck } from "./token-auth.ts";
import { lossPercent, type CameraView, type ViewState } from "./view-state.ts";
import type { AdmissionHook, BrowserLeaveReason, CameraSourceInfo, ServerState, ViewerInfo } from "./viewer-info.ts";
import { UserError } from "../errors/user-error.ts";
import { plainAddress } from "../net/address.ts";
import { MAX_OPUS_PACKET, type AudioFormat, type AudioPacket } from "../wire/audio-packet.ts";
import { AudioReaders } from "./audio-readers.ts";
import { padOpusPacket } from "./opus-padding.ts";

/** How the view is set up. */
export interface HttpViewOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Address to listen on, as --http-bind gives it. */
  bind: string;
  log: Logger;
  /**
   * The server's side, asked on every /state, /metrics and once a second; keep it cheap.
   * Its first answer, asked by start(), fixes the cameras the view serves: their number
   * (1 to MAX_CAMERAS) and names.
   */
  state: () => ServerState;
  /** The server's say over browser readers; without it every reader up to maxReaders is admitted. */
  admission?: AdmissionHook;
  /** Access check for every route but /assets/; none: open to the network like the UDP stream. */
  auth?: AuthCheck | null;
  /** MJPEG readers at once whatever the hook says (default DEFAULT_MAX_READERS). */
  maxReaders?: number;
  /** Viewers of every kind the server admits at once (its --max-clients), which bounds the per-viewer metric series (default maxReaders). */
  maxViewers?: number;
  /** A reader that leaves a frame untaken this long is dropped (default DEFAULT_STALL_MS). */
  stallMs?: number;
  /** When the server started, ms since the epoch (default: now). */
  startedAt?: number;
  /** Write browser joins, leaves and refusals here (default true); false where the server's admission logs every viewer itself. */
  logViewers?: boolean;
  /**
   * Smaller pictures for readers that fall behind: each camera's sizes and what makes
   * them (the server's --layers ladder and layer encoder). Without it every reader gets
   * the source's picture, skipping frames when it cannot take them all.
   */
  layers?: ReaderLayers;
  /**
   * Each camera's audio (index = number), null or missing for one without: /audio.ogg serves
   * those that have it, and the page shows their speaker button. Fixed at start, as the cameras are.
   */
  audio?: readonly (AudioFormat | null)[];
  /** /audio.ogg listeners at once (default maxReaders); they are not viewers: the page that listens also watches. */
  maxAudioReaders?: number;
  /** Each /audio.ogg packet padded to this many bytes (default DEFAULT_AUDIO_PACKET_BYTES; 0: none), see opus-padding.ts. */
  audioPacketBytes?: number;
}

/** Readers at once when the options say nothing: each costs one connection and kernel buffers. */
export const DEFAULT_MAX_READERS = 64;
/** A reader silent this long has stopped reading (a frozen tab, a paused player). */
export const DEFAULT_STALL_MS = 5000;

/**
 * /audio.ogg packets are padded to this size: 50 KB/s (400 kbit/s) a listener, so Chromium's
 * ~32 KB reads come every 0.65 s instead of every 3 s, and its sound is that much nearer live.
 */
export const DEFAULT_AUDIO_PACKET_BYTES = 1000;

/** Seconds of history the chart shows. */
const HISTORY_SECONDS = 60;
/** At most one warning line of a kind per interval: a scanner can send thousands of requests. */
const WARN_EVERY_MS = 1000;
/** Requests carry no body; anything larger is refused by Bun before it reaches a route. */
const MAX_BODY_BYTES = 16 * 1024;
/** Idle keep-alive connections (the page's polls) are closed after this, s. */
const IDLE_TIMEOUT_S = 30;
/** After a stalled reader is dropped, Bun closes its connection once it has been idle this long, s. */
const DROP_GRACE_S = 1;

const NO_STORE = { "cache-control": "no-store" };
const ASSETS: Record<string, { body: string; type: string }> = {
  "/assets/page.js": { body: pageJs, type: "text/javascript; charset=utf-8" },
  "/assets/page.css": { body: pageCss, type: "text/css; charset=utf-8" },
  "/assets/uPlot.iife.min.js": { body: uplotJs, type: "text/javascript; charset=utf-8" },
  "/assets/uPlot.min.css": { body: uplotCss, type: "text/css; charset=utf-8" },
};
// Bun types a .html import as an HTML bundle; imported as text it is the file's text.
const PAGE = pageHtml as unknown as string;

/** The view could not start (port in use, bad address); the message says what to do. */
export class HttpStartError extends UserError {
  override name = "HttpStartError";
}

/** Content-Type of /audio.ogg (RFC 7845). */
export const AUDIO_CONTENT_TYPE = "audio/ogg; codecs=opus";

/** Per-connection state of one /audio.ogg listener. */
interface AudioConn {
  request: Request;
  camera: number;
  controller: ReadableStreamDefaultController<Uint8Array>;
  wake: (() => void) | null;
  client: string;
  joinedAtMs: number;
}

/** Per-connection state of one MJPEG reader. */
interface ReaderConn {
  request: Request;
  camera: number;
  controller: ReadableStreamDefaultController<Uint8Array>;
  /** Set while the connection waits for a frame: push() calls it. */
  wake: (() => void) | null;
  client: string;
  joinedAtMs: number;
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...NO_STORE, ...headers } });
}

/** A picture size as log lines write it: 640x480. */
const sizeText = (s: { width: number; height: number }) => `${s.width}x${s.height}`;

/** One line at most every WARN_EVERY_MS, with the facts of the latest event; the next says how many were left out. */
function limitedLine(emit: (fields: Fields) => void): (fields: Fields) => void {
  let latest: Fields = {};
  const line = throttled(WARN_EVERY_MS, (_detail, suppressed) => emit({ ...latest, similar: suppressed || undefined }));
  return (fields) => {
    latest = fields;
    line("");
  };
}

/** The browser view's HTTP server. */
export class HttpView implements AsyncDisposable {
  readonly #log: Logger;
  readonly #provider: () => ServerState;
  readonly #admission: AdmissionHook | null;
  readonly #logViewers: boolean;
  readonly #auth: AuthCheck | null;
  readonly #maxReaders: number;
  readonly #stallMs: number;
  readonly #startedAt: number;
  readonly #readers: MjpegReaders;
  readonly #conns = new Map<string, ReaderConn>();
  /** The cameras' names, index = number: fixed at start, so routes and labels never change under a reader. */
  readonly #names: readonly string[];
  readonly #feeds: CameraFeed[];
  /** Each camera's picture sizes and the scaler of its smaller ones. */
  readonly #layers: CameraLayers[];
  /** Each camera's availability at the last look at the server's state (once a second). */
  readonly #available: boolean[];
  readonly #udpRates = new CountRates();
  readonly #metrics: ViewMetrics;
  readonly #counts = { framesIgnored: 0, readersStalled: 0, readersRefused: 0 };
  /** Each camera's audio format, null for one without. */
  readonly #audio: (AudioFormat | null)[];
  readonly #audioReaders: AudioReaders;
  readonly #audioPacketBytes: number;
  readonly #audioConns = new Map<string, AudioConn>();
  readonly #audioCounts = { packetsIn: 0, packetsIgnored: 0, readersStalled: 0, readersRefused: 0 };
  #nextId = 0;
  #server!: Server<undefined>;
  #tick: Timer | null = null;
  #sweep: Timer | null = null;
  #stopped = false;
  readonly #warnUnauthorized = limitedLine((f) => this.#log.warn("unauthorized request", f));
  readonly #warnFailure = limitedLine((f) => this.#log.error("request failed", f));
  readonly #warnStateError = limitedLine((f) => this.#log.error("server state unavailable", f));
  readonly #warnNoCamera = limitedLine((f) => this.#log.error("frame for no camera ignored", f));
  readonly #warnNoAudio = limitedLine((f) => this.#log.error("audio packet ignored", f));

  private constructor(opts: HttpViewOptions) {
    this.#log = opts.log;
    this.#provider = opts.state;
    this.#admission = opts.admission ?? null;
    this.#logViewers = opts.logViewers ?? true;
    this.#auth = opts.auth ?? null;
    this.#maxReaders = opts.maxReaders ?? DEFAULT_MAX_READERS;
    this.#stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    this.#startedAt = opts.startedAt ?? Date.now();
    this.#readers = new MjpegReaders({ maxReaders: this.#maxReaders, stallMs: this.#stallMs, ladder: opts.layers?.ladder });
    this.#metrics = new ViewMetrics({ maxViewers: opts.maxViewers ?? this.#maxReaders });
    const sources = opts.state().sources;
    if (sources.length < 1 || sources.length > MAX_CAMERAS) throw new RangeError(`the browser view serves 1 to ${MAX_CAMERAS} cameras, the server's state lists ${sources.length}`);
    this.#names = sources.map((s) => s.name);
    this.#feeds = sources.map(() => new CameraFeed(HISTORY_SECONDS));
    this.#available = sources.map((s) => s.available);
    const audio = opts.audio ?? [];
    if (audio.length > sources.length) throw new RangeError(`the browser view has audio formats for ${audio.length} cameras, the server's state lists ${sources.length}`);
    this.#audio = sources.map((_, i) => audio[i] ?? null);
    this.#audioPacketBytes = opts.audioPacketBytes ?? DEFAULT_AUDIO_PACKET_BYTES;
    if (!(Number.isInteger(this.#audioPacketBytes) && this.#audioPacketBytes >= 0 && this.#audioPacketBytes <= MAX_OPUS_PACKET)) {
      throw new RangeError(`audioPacketBytes must be a whole number from 0 to ${MAX_OPUS_PACKET}, got ${this.#audioPacketBytes}`);
    }
    this.#audioReaders = new AudioReaders({ maxReaders: opts.maxAudioReaders ?? this.#maxReaders, stallMs: this.#stallMs });
    const layers = opts.layers;
    if (layers && layers.sizes.length !== sources.length) throw new RangeError(`the browser view has picture sizes for ${layers.sizes.length} cameras, the server's state lists ${sources.length}`);
    this.#layers = sources.map((s, i) => layers
      ? new CameraLayers(layers.sizes[i]!, (deliver) => layers.scaler(i, deliver), (frames) => this.#pushCopies(frames, i))
      : new CameraLayers([{ width: s.width, height: s.height }], null, () => {}));
  }

  /** The server's cameras, checked against those the view serves: a list that changed is a fault, not something to guess around. */
  #sourcesOf(server: ServerState): CameraSourceInfo[] {
    const names = server.sources.map((s) => s.name);
    if (names.length !== this.#names.length || names.some((n, i) => n !== this.#names[i])) throw new Error(`the server's cameras changed from ${this.#names.join(", ")} to ${names.join(", ") || "none"}`);
    return server.sources;
  }

  /** Several cameras: log lines then say which one a browser watches. */
  #cameraField(camera: number): string | undefined {
    return this.#names.length > 1 ? this.#names[camera] : undefined;
  }

  /** Listens on bind:port; throws HttpStartError when it cannot, and what the state provider throws on its first call. */
  static async start(opts: HttpViewOptions): Promise<HttpView> {
    const view = new HttpView(opts);
    view.#open(opts.bind, opts.port);
    return view;
  }

  /** The port it listens on (the real one when 0 was asked for). */
  get port(): number {
    return this.#server.port ?? 0;
  }

  /** Requests being answered now, streams included: a dropped reader's connection leaves this count. */
  get openRequests(): number {
    return this.#server.pendingRequests;
  }

  /** The page's address, e.g. http://0.0.0.0:8080/. */
  get url(): string {
    return this.#server.url.href;
  }

  #open(bind: string, port: number): void {
    try {
      this.#server = Bun.serve({
        hostname: bind,
        port,
        development: false,
        // Bun turns SO_REUSEPORT on when development is false: a second lancam on the same
        // port would then share it silently instead of failing with "port in use".
        reusePort: false,
        idleTimeout: IDLE_TIMEOUT_S,
        maxRequestBodySize: MAX_BODY_BYTES,
        fetch: (req, server) => this.#route(req, server),
        error: (e) => {
          this.#log.error("request failed", { error: e.message });
          return text(500, "internal error\n");
        },
      });
    } catch (e) {
      const inUse = (e as { code?: string }).code === "EADDRINUSE";
      throw new HttpStartError(`cannot listen on ${bind}:${port} for the browser view: ${(e as Error).message}${inUse ? " (port in use; choose another --http port or 0)" : ""}`);
    }
    this.#tick = setInterval(() => this.#onTick(), 1000);
    // Stalls are looked for several times per stall period, so a drop comes on time.
    this.#sweep = setInterval(() => this.#onSweep(), Math.min(1000, this.#stallMs / 4));
  }

  /**
   * Offers a frame of `camera` (its number) to that camera's readers and /snapshot.jpg;
   * never blocks, never queues more than one per reader. A frame for a camera the view
   * does not serve is dropped, counted (counters.framesIgnored) and logged.
   */
  push(frame: Frame, camera = 0): void {
    if (this.#stopped) return;
    const feed = this.#feeds[camera];
    if (!feed) {
      this.#counts.framesIgnored++;
      this.#warnNoCamera({ camera, cameras: this.#names.length });
      return;
    }
    const now = performance.now();
    feed.push(frame, now);
    this.#pushed(this.#readers.push(frame, camera, now));
    // After the readers: one that fell behind on this frame gets its copy of this frame.
    this.#layers[camera]!.offer(frame, this.#readers.layersWanted(camera), now);
  }

  /**
   * Offers an audio packet of `camera` to its /audio.ogg listeners; never blocks, each
   * listener holds a bounded number (see AudioReaders). A packet for a camera without audio,
   * or larger than any Opus packet, is dropped, counted (counters.audio.packetsIgnored) and logged.
   */
  pushAudio(packet: AudioPacket, camera = 0): void {
    if (this.#stopped) return;
    if (!this.#audio[camera] || packet.data.length === 0 || packet.data.length > MAX_OPUS_PACKET) {
      this.#audioCounts.packetsIgnored++;
      this.#warnNoAudio({ camera, bytes: packet.data.length, why: this.#audio[camera] ? "not an Opus packet's size" : "camera has no audio" });
      return;
    }
    this.#audioCounts.packetsIn++;
    // Padded once, shared by every listener.
    const sent = this.#audioPacketBytes > 0 ? { ...packet, data: padOpusPacket(packet.data, this.#audioPacketBytes) } : packet;
    for (const id of this.#audioReaders.push(sent, camera)) this.#audioConns.get(id)?.wake?.();
  }

  /** A frame's smaller copies, each to the readers of `camera` on its layer. */
  #pushCopies(frames: Map<number, Frame>, camera: number): void {
    if (this.#stopped) return;
    const now = performance.now();
    for (const [layer, frame] of frames) this.#pushed(this.#readers.push(frame, camera, now, layer));
  }

  #pushed({ wake, moved }: PushResult): void {
    for (const id of wake) this.#conns.get(id)?.wake?.();
    this.#logMoves(moved);
  }

  /**
   * One line per move, as for UDP viewers: the ladder's hold (doubling after each failed
   * try up) keeps them few. `why` when it was not the reader's doing.
   */
  #logMoves(moved: LayerMove[], why?: string): void {
    for (const { reader: r, from } of moved) {
      const conn = this.#conns.get(r.id);
      if (!conn) continue;
      this.#log.info("viewer layer", {
        client: conn.client, kind: "browser", session: r.id, camera: this.#cameraField(r.camera), layer: r.layer,
        picture: sizeText(this.#sizeOf(r)), why: why ?? (r.layer > from ? "fell behind" : "kept up"),
      });
    }
  }

  #sizeOf(r: MjpegReader): { width: number; height: number } {
    const sizes = this.#layers[r.camera]!.sizes;
    return sizes[r.layer] ?? sizes[0]!;
  }

  /** The size a reader is sent now; null when its camera has one size (every reader gets the source's, as UDP viewers not paced). */
  #pictureOf(r: MjpegReader): { layer: number; width: number; height: number } | null {
    if (this.#layers[r.camera]!.sizes.length < 2) return null;
    return { layer: r.layer, ...this.#sizeOf(r) };
  }

  /** The MJPEG readers as viewer rows (the server may want them for its own summaries). */
  browserViewers(): ViewerInfo[] {
    return this.#readers.all().map((r) => ({
      id: r.id,
      kind: "browser",
      address: r.address,
      port: r.port,
      name: r.name,
      camera: this.#names[r.camera] ?? String(r.camera),
      joinedAt: this.#conns.get(r.id)?.joinedAtMs ?? 0,
      framesSent: r.framesSent,
      framesReceived: null,
      framesMissing: null,
      framesIncomplete: null,
      framesDropped: r.framesSkipped,
      framesRecorded: null,
      fps: r.fps,
      latencyP50Ms: r.latencyP50Ms,
      bytesSent: r.bytesSent,
      picture: this.#pictureOf(r),
    }));
  }

  /** The body of /state; throws when the server's state provider does. */
  state(): ViewState {
    const server = this.#provider();
    const cameras = this.#sourcesOf(server);
    const udp = server.viewers.map((v) => (v.fps === null ? { ...v, fps: this.#udpRates.rate(v.id) } : v));
    // Names come from viewers and errors from media servers: shown with hidden characters spelled out.
    const viewers = [...udp, ...this.browserViewers()].map((v) => ({ ...v, name: escapeBare(v.name), lossPercent: lossPercent(v) }));
    const sources = cameras.map((c, i): CameraView => {
      const feed = this.#feeds[i]!;
      return {
        name: c.name, description: c.description, width: c.width, height: c.height, fps: c.fps,
        measuredFps: feed.meter.fps, bitsPerSecond: feed.meter.bitsPerSecond, lastFrame: feed.lastFrame(),
        available: c.available, framesCaptured: c.framesCaptured, framesEncoded: feed.framesEncoded,
        viewers: viewers.filter((v) => v.camera === c.name).length, history: feed.history.columns(),
        audio: this.#audio[i] ?? null, audioListeners: this.#audioReaders.count(i),
      };
    });
    const first = sources[0]!;
    const t = this.#readers.totals;
    return {
      startedAt: new Date(this.#startedAt).toISOString(),
      uptimeSec: Math.max(0, (Date.now() - this.#startedAt) / 1000),
      source: {
        description: first.description, width: first.width, height: first.height, fps: first.fps,
        measuredFps: first.measuredFps, bitsPerSecond: first.bitsPerSecond, lastFrame: first.lastFrame,
      },
      sources,
      counters: {
        ...server.counters,
        framesEncoded: sources.reduce((n, s) => n + s.framesEncoded, 0),
        framesIgnored: this.#counts.framesIgnored,
        browser: {
          framesSent: t.framesSent,
          framesSkipped: t.framesSkipped,
          bytesSent: t.bytesSent,
          readersStalled: this.#counts.readersStalled,
          readersRefused: this.#counts.readersRefused,
        },
        audio: {
          listeners: this.#audioReaders.size,
          packetsIn: this.#audioCounts.packetsIn,
          packetsIgnored: this.#audioCounts.packetsIgnored,
          ...this.#audioReaders.totals,
          readersStalled: this.#audioCounts.readersStalled,
          readersRefused: this.#audioCounts.readersRefused,
        },
      },
      viewers,
      publish: (server.publish ?? []).map((t) => ({ ...t, lastError: t.lastError === null ? null : escapeBare(t.lastError) })),
      history: first.history,
    };
  }

  async #route(req: Request, server: Server<undefined>): Promise<Response> {
    const url = new URL(req.url);
    const ip = server.requestIP(req);
    const address = plainAddress(ip?.address ?? "?");
    const port = ip?.port ?? 0;
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "only GET and HEAD\n", { allow: "GET, HEAD" });
    // The page's own files hold nothing secret and load before a token can be added to them.
    const asset = ASSETS[url.pathname];
    if (asset) return new Response(asset.body, { headers: { "content-type": asset.type, "cache-control": "no-cache" } });
    // Browsers ask for it on every page, without the page's token: no icon, and no error in their console.
    if (url.pathname === "/favicon.ico") return new Response(null, { status: 204 });
    if (this.#auth) {
      const verdict = this.#auth(req, url);
      if (!verdict.ok) {
        // The path only: the query may hold a (wrong) token, which does not belong in a log.
        this.#warnUnauthorized({ client: `${address}:${port}`, path: url.pathname, why: verdict.why });
        return text(401, "a valid token is needed: add ?token=TOKEN or use it as the password\n", { "www-authenticate": AUTH_CHALLENGE });
      }
    }
    try {
      switch (url.pathname) {
        case "/":
        case "/index.html":
        case "/stream.mjpg":
        case "/snapshot.jpg":
        case "/audio.ogg": {
          const chosen = cameraQuery(url, this.#names);
          if ("refusal" in chosen) return text(404, `${chosen.refusal}\n`);
          if (url.pathname === "/audio.ogg") return this.#openAudio(req, server, address, port, chosen.camera ?? 0);
          if (url.pathname === "/stream.mjpg") return this.#openStream(req, server, url, address, port, chosen.camera ?? 0);
          if (url.pathname === "/snapshot.jpg") return this.#snapshot(chosen.camera ?? 0);
          return new Response(pageWithCameras(PAGE, this.#names, chosen.camera), { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" } });
        }
        case "/state":
          return Response.json(this.state(), { headers: NO_STORE });
        case "/metrics":
          return text(200, await this.#metrics.render(this.state()), { "content-type": this.#metrics.contentType });
        default:
          return text(404, `not found: ${url.pathname}\n`);
      }
    } catch (e) {
      // A failing state provider or hook costs this request, never the server.
      this.#warnFailure({ path: url.pathname, error: (e as Error).message });
      return text(500, `internal error: ${(e as Error).message}\n`);
    }
  }

  #snapshot(camera: number): Response {
    // As its stream readers do, a snapshot reader learns of an outage rather than getting an old picture.
    if (!this.#available[camera]) return text(503, "camera unavailable\n", { "retry-after": "1" });
    const f = this.#feeds[camera]!.latest;
    if (!f) return text(503, "no frame yet\n", { "retry-after": "1" });
    return new Response(f.jpeg, {
      headers: { "content-type": "image/jpeg", ...NO_STORE, "x-timestamp": timestampHeader(f.capturedAt), "x-frame-number": String(f.seq) },
    });
  }

  #openStream(req: Request, server: Server<undefined>, url: URL, address: string, port: number, camera: number): Response {
    const headers = { "content-type": MJPEG_CONTENT_TYPE, "cache-control": "no-cache, no-store, must-revalidate", pragma: "no-cache" };
    if (req.method === "HEAD") return new Response(null, { headers });
    const id = `http-${++this.#nextId}`;
    const client = `${address}:${port}`;
    const name = readerName(url, req.headers.get("user-agent"));
    // Without our own viewer lines, a refusal by the server's admission is logged there.
    let admissionAsked = false;
    const refuse = (reason: string) => {
      this.#counts.readersRefused++;
      if (this.#logViewers || !admissionAsked) this.#log.warn("client refused", { client, kind: "browser", name: name || undefined, camera: this.#cameraField(camera), reason });
      return text(503, `refused: ${reason}\n`, { "retry-after": "5" });
    };
    if (this.#stopped) return refuse("shutting down");
    // Our own bound first: a refusal here must not leave the server counting a reader that never came.
    if (this.#readers.size >= this.#maxReaders) return refuse(`${this.#maxReaders} browser viewers already watching`);
    admissionAsked = true;
    const verdict = this.#admission ? this.#admission.admit({ id, kind: "browser", address, port, name, camera }) : { ok: true as const };
    if (!verdict.ok) return refuse(verdict.reason);
    this.#readers.add({ id, address, port, name, camera, layers: this.#layers[camera]!.sizes.length }, performance.now());
    // Stalls are detected here, per frame; Bun's idle timer would also cut a reader off while the source pauses.
    server.timeout(req, 0);
    const conn: ReaderConn = { request: req, camera, controller: null!, wake: null, client, joinedAtMs: Date.now() };
    this.#conns.set(id, conn);
    if (this.#logViewers) this.#log.info("client joined", { client, kind: "browser", session: id, name: name || undefined, camera: this.#cameraField(camera), readers: this.#readers.size });
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        conn.controller = c;
        c.enqueue(STREAM_START);
        this.#readers.addBytes(id, STREAM_START.length);
      },
      pull: () => this.#pull(id, conn),
      cancel: () => this.#leave(id, "connection closed"),
    }, { highWaterMark: 0 });
    return new Response(body, { headers });
  }

  #openAudio(req: Request, server: Server<undefined>, address: string, port: number, camera: number): Response {
    const format = this.#audio[camera];
    if (!format) return text(404, `camera ${this.#names[camera]} has no audio\n`);
    const headers = { "content-type": AUDIO_CONTENT_TYPE, "cache-control": "no-cache, no-store, must-revalidate", pragma: "no-cache" };
    if (req.method === "HEAD") return new Response(null, { headers });
    const client = `${address}:${port}`;
    const refuse = (reason: string) => {
      this.#audioCounts.readersRefused++;
      this.#log.warn("audio listener refused", { client, camera: this.#cameraField(camera), reason });
      return text(503, `refused: ${reason}\n`, { "retry-after": "5" });
    };
    if (this.#stopped) return refuse("shutting down");
    if (this.#audioReaders.full) return refuse(`${this.#audioReaders.size} audio listeners already listening`);
    const id = `audio-${++this.#nextId}`;
    const header = this.#audioReaders.add({ id, address, port, camera }, format, performance.now());
    server.timeout(req, 0);
    const conn: AudioConn = { request: req, camera, controller: null!, wake: null, client, joinedAtMs: Date.now() };
    this.#audioConns.set(id, conn);
    this.#log.info("audio listener joined", { client, session: id, camera: this.#cameraField(camera), listeners: this.#audioReaders.size });
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        conn.controller = c;
        c.enqueue(header);
      },
      pull: () => this.#pullAudio(id, conn),
      cancel: () => this.#leaveAudio(id, "connection closed"),
    }, { highWaterMark: 0 });
    return new Response(body, { headers });
  }

  /** As #pull: the packets that came since the last take go out when the connection has room. */
  #pullAudio(id: string, conn: AudioConn): Promise<void> | void {
    if (this.#sendAudio(id, conn) || !this.#audioConns.has(id)) return;
    return new Promise<void>((resolve) => {
      conn.wake = () => {
        conn.wake = null;
        this.#sendAudio(id, conn);
        resolve();
      };
    });
  }

  #sendAudio(id: string, conn: AudioConn): boolean {
    const pages = this.#audioReaders.take(id, performance.now());
    if (!pages) return false;
    conn.controller.enqueue(pages);
    return true;
  }

  #leaveAudio(id: string, reason: BrowserLeaveReason): void {
    const conn = this.#audioConns.get(id);
    if (!conn) return;
    this.#audioConns.delete(id);
    const r = this.#audioReaders.remove(id);
    if (reason !== "connection closed") {
      try {
        if (reason === "stalled") conn.controller.error(new Error("listener stalled"));
        else conn.controller.close();
      } catch {
        // Already closed by the other side.
      }
    }
    conn.wake?.();
    if (reason === "stalled") this.#server.timeout(conn.request, DROP_GRACE_S);
    const fields = {
      client: conn.client, session: id, camera: this.#cameraField(conn.camera), reason,
      seconds: ((Date.now() - conn.joinedAtMs) / 1000).toFixed(1), packetsSent: r?.packetsSent, packetsSkipped: r?.packetsSkipped,
      listeners: this.#audioReaders.size,
    };
    if (reason === "stalled") this.#log.warn("audio listener left", { ...fields, stalledSec: this.#stallMs / 1000 });
    else this.#log.info("audio listener left", fields);
  }

  /** Bun asks for more only when the connection has taken what it had: the newest frame goes next. */
  #pull(id: string, conn: ReaderConn): Promise<void> | void {
    if (this.#sendNext(id, conn) || !this.#conns.has(id)) return;
    return new Promise<void>((resolve) => {
      conn.wake = () => {
        conn.wake = null;
        this.#sendNext(id, conn);
        resolve();
      };
    });
  }

  #sendNext(id: string, conn: ReaderConn): boolean {
    const f = this.#readers.take(id, performance.now(), nowMicros());
    if (!f) return false;
    const header = partHeader(f);
    // The JPEG is the one frame every viewer shares: enqueued as is, never copied per reader.
    conn.controller.enqueue(header);
    conn.controller.enqueue(f.jpeg);
    conn.controller.enqueue(PART_END);
    this.#readers.addBytes(id, header.length + PART_END.length);
    return true;
  }

  /** Ends a reader once: its bookkeeping, its stream, the server's count, the leave line. */
  #leave(id: string, reason: BrowserLeaveReason): void {
    const conn = this.#conns.get(id);
    if (!conn) return;
    this.#conns.delete(id);
    const r = this.#readers.remove(id);
    // Ended before waking the pull, so the stream never asks again for a reader that is gone.
    if (reason !== "connection closed") {
      try {
        if (reason === "stalled") conn.controller.error(new Error("reader stalled"));
        else conn.controller.close();
      } catch {
        // Already closed by the other side.
      }
    }
    conn.wake?.();
    if (reason === "stalled") {
      // Erroring the stream alone leaves the socket open while its buffers are full.
      this.#server.timeout(conn.request, DROP_GRACE_S);
    }
    try {
      this.#admission?.left(id, reason, { framesSent: r?.framesSent ?? 0, framesSkipped: r?.framesSkipped ?? 0, picture: r ? this.#pictureOf(r) : null });
    } catch (e) {
      this.#log.error("admission hook failed", { session: id, error: (e as Error).message });
    }
    if (!this.#logViewers) return;
    const fields = {
      client: conn.client,
      kind: "browser",
      session: id,
      name: r?.name || undefined,
      camera: this.#cameraField(conn.camera),
      reason,
      seconds: ((Date.now() - conn.joinedAtMs) / 1000).toFixed(1),
      framesSent: r?.framesSent,
      framesSkipped: r?.framesSkipped,
      // The size it had at the end, where its camera has more than one.
      picture: r && this.#pictureOf(r) ? sizeText(this.#sizeOf(r)) : undefined,
      readers: this.#readers.size,
    };
    if (reason === "stalled") this.#log.warn("client left", { ...fields, stalledSec: this.#stallMs / 1000 });
    else this.#log.info("client left", fields);
  }

  #onSweep(): void {
    const now = performance.now();
    for (const r of this.#readers.stalled(now)) {
      this.#counts.readersStalled++;
      this.#leave(r.id, "stalled");
    }
    for (const r of this.#audioReaders.stalled(now)) {
      this.#audioCounts.readersStalled++;
      this.#leaveAudio(r.id, "stalled");
    }
    this.#layers.forEach((layers, camera) => {
      if (!layers.failing(now)) return;
      // Readers on a smaller picture that never comes would watch a frozen one: the source's is better than none.
      this.#log.error("smaller pictures for browsers cannot be made; this camera's browser readers get the source's size", {
        camera: this.#names[camera], why: layers.lastFailure ?? "no copy came", seconds: SCALE_GIVE_UP_MS / 1000,
      });
      layers.sourceOnly();
      this.#logMoves(this.#readers.sourceOnly(camera, now), "no smaller copies");
    });
  }

  #onTick(): void {
    const now = performance.now();
    this.#readers.sample(now);
    for (const feed of this.#feeds) feed.meter.sample(now);
    let server: ServerState;
    let cameras: CameraSourceInfo[];
    try {
      server = this.#provider();
      cameras = this.#sourcesOf(server);
    } catch (e) {
      this.#warnStateError({ error: (e as Error).message });
      return;
    }
    cameras.forEach((c, i) => (this.#available[i] = c.available));
    this.#udpRates.sample(server.viewers.filter((v) => v.framesReceived !== null).map((v) => [v.id, v.framesReceived!] as [string, number]), now);
    const udp = server.viewers.map((v) => (v.fps === null ? { ...v, fps: this.#udpRates.rate(v.id) } : v));
    const viewers = [...udp, ...this.browserViewers()];
    const t = Date.now() / 1000;
    // Each camera's chart sums up its own viewers: the slowest and the worst latency among those watching it.
    this.#feeds.forEach((feed, i) => feed.history.add(t, feed.meter.fps, viewers.filter((v) => v.camera === this.#names[i])));
  }

  /** Ends every reader ("server shutdown" in the log) and closes the listener. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tick) clearInterval(this.#tick);
    if (this.#sweep) clearInterval(this.#sweep);
    for (const layers of this.#layers) layers.close();
    for (const id of [...this.#conns.keys()]) this.#leave(id, "server shutdown");
    for (const id of [...this.#audioConns.keys()]) this.#leaveAudio(id, "server shutdown");
    await this.#server.stop(true);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
