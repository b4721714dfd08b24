import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { HttpStartError, HttpView, type HttpViewOptions } from "../lib/http/http-view.ts";
import { tokenAuth } from "../lib/http/token-auth.ts";
import type { ViewState } from "../lib/http/view-state.ts";
import type { AdmissionHook, AdmissionRequest, BrowserLeaveReason, ServerState } from "../lib/http/viewer-info.ts";
import { resolveFfmpeg, resolveFfprobe } from "../lib/media/ffmpeg.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { padJpeg } from "./helpers/jpeg-bytes.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { ROOT } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { fakeServerState } from "./helpers/fake-view-state.ts";
import { promtoolCheck, promtoolSkipReason } from "./helpers/promtool.ts";

const W = 320;
const H = 240;
const FPS = 30;
const BOUNDARY = "lancamframe";
let frames: Uint8Array[] = [];
const tempDir = tempDirs("lancam-http-");
const promtoolSkip = promtoolSkipReason();

beforeAll(async () => {
  frames = await jpegFrames(30, W, H);
});

const fakeServer = () => fakeServerState({ width: W, height: H, fps: FPS, latencyP50Ms: 12.5 });

/** An admission hook that keeps a limit and remembers every call. */
function recordingHook(limit = 8) {
  const admitted: AdmissionRequest[] = [];
  const left: { id: string; reason: BrowserLeaveReason }[] = [];
  let watching = 0;
  const hook: AdmissionHook = {
    admit(r) {
      if (watching >= limit) return { ok: false, reason: `server full: ${limit} viewers already connected` };
      watching++;
      admitted.push(r);
      return { ok: true };
    },
    left(id, reason) {
      watching--;
      left.push({ id, reason });
    },
  };
  return { hook, admitted, left, watching: () => watching };
}

/** A view fed ~30 frames a second, stopped on dispose. */
async function startView(opts: Partial<HttpViewOptions> & { feed?: boolean; jpegs?: Uint8Array[] } = {}) {
  const log = memoryLogger("http");
  const view = await HttpView.start({ port: 0, bind: "127.0.0.1", log, state: fakeServer(), ...opts });
  const jpegs = opts.jpegs ?? frames;
  let pushed = 0;
  const timer = opts.feed === false ? null : setInterval(() => {
    view.push({ seq: pushed, capturedAt: nowMicros(), width: W, height: H, jpeg: jpegs[pushed % jpegs.length]! });
    pushed++;
  }, 1000 / FPS);
  const base = `http://127.0.0.1:${view.port}`;
  return {
    view, log, base,
    pushed: () => pushed,
    state: async () => (await (await fetch(`${base}/state`)).json()) as ViewState,
    async [Symbol.asyncDispose]() {
      if (timer) clearInterval(timer);
      await view.stop();
    },
  };
}

/** Polls `cond` until it holds; fails with `what` after `ms`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

interface Part {
  headers: Record<string, string>;
  body: Uint8Array;
}

/** The stream ended inside a part. */
class Truncated extends Error {}

/** Reads multipart/x-mixed-replace parts as a client sees them, checking the framing byte by byte. */
class PartReader {
  #buf = new Uint8Array(0);
  #started = false;
  readonly #source: () => Promise<Uint8Array | null>;

  constructor(source: ReadableStream<Uint8Array> | Uint8Array) {
    if (source instanceof Uint8Array) {
      let given = false;
      this.#source = async () => (given ? null : ((given = true), source));
    } else {
      const reader = source.getReader();
      this.#source = async () => (await reader.read()).value ?? null;
    }
  }

  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n) {
      const value = await this.#source();
      if (!value) throw new Truncated(`stream ended with ${this.#buf.length} of ${n} bytes`);
      const b = new Uint8Array(this.#buf.length + value.length);
      b.set(this.#buf);
      b.set(value, this.#buf.length);
      this.#buf = b;
    }
  }
  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
  async #expect(s: string): Promise<void> {
    await this.#fill(s.length);
    const got = new TextDecoder().decode(this.#take(s.length));
    if (got !== s) throw new Error(`expected ${JSON.stringify(s)}, got ${JSON.stringify(got)}`);
  }

  async next(): Promise<Part> {
    if (!this.#started) {
      await this.#expect(`--${BOUNDARY}\r\n`);
      this.#started = true;
    }
    let end = -1;
    for (;;) {
      end = Buffer.from(this.#buf).indexOf("\r\n\r\n");
      if (end >= 0) break;
      if (this.#buf.length > 4096) throw new Error("part header longer than 4 KiB");
      await this.#fill(this.#buf.length + 1);
    }
    const headers: Record<string, string> = {};
    for (const line of new TextDecoder().decode(this.#take(end)).split("\r\n")) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.#take(4);
    const length = Number(headers["content-length"]);
    if (!Number.isInteger(length) || length <= 0) throw new Error(`bad Content-Length ${headers["content-length"]}`);
    await this.#fill(length);
    const body = this.#take(length);
    await this.#expect(`\r\n--${BOUNDARY}\r\n`);
    return { headers, body };
  }
}

const isJpeg = (b: Uint8Array) => b[0] === 0xff && b[1] === 0xd8 && b.at(-2) === 0xff && b.at(-1) === 0xd9;

/** A raw HTTP client that reads the stream until told to stop reading. */
function rawReader(port: number, path = "/stream.mjpg") {
  const sock = net.connect(port, "127.0.0.1", () => {
    sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: raw-test\r\n\r\n`);
  });
  const seen = { bytes: 0, ended: false };
  sock.on("data", (d) => (seen.bytes += d.length));
  sock.on("end", () => (seen.ended = true));
  sock.on("close", () => (seen.ended = true));
  sock.on("error", () => (seen.ended = true));
  return { sock, seen };
}

describe("routes", () => {
  test("/ is the page, and every file it loads is served from lancam itself", async () => {
    await using v = await startView();
    const res = await fetch(`${v.base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await res.text();
    expect(html).toContain('<img id="live"');
    expect(html).toContain('<meta name="viewport"');
    expect(html).toContain('<table id="viewers"');
    // Nothing from another host: a lab network has no internet.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.sort()).toEqual(["assets/page.css", "assets/page.js", "assets/uPlot.iife.min.js", "assets/uPlot.min.css"]);
    for (const ref of refs) {
      const a = await fetch(`${v.base}/${ref}`);
      expect(a.status).toBe(200);
      expect(a.headers.get("content-type")).toBe(ref.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      expect((await a.text()).length).toBeGreaterThan(500);
    }
    expect(await (await fetch(`${v.base}/assets/uPlot.iife.min.js`)).text()).toContain("uPlot");
    expect((await fetch(`${v.base}/favicon.ico`)).status).toBe(204);
    const missing = await fetch(`${v.base}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("not found: /nope\n");
    const post = await fetch(`${v.base}/state`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  test("/snapshot.jpg is the newest frame with its capture time and number; 503 before the first", async () => {
    {
      await using idle = await startView({ feed: false });
      const none = await fetch(`${idle.base}/snapshot.jpg`);
      expect(none.status).toBe(503);
      expect(await none.text()).toBe("no frame yet\n");
    }
    await using v = await startView();
    await until("a few frames", () => v.pushed() >= 5);
    const before = nowMicros();
    const newest = v.pushed() - 1;
    const res = await fetch(`${v.base}/snapshot.jpg`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/jpeg");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body: Uint8Array = new Uint8Array(await res.arrayBuffer());
    expect(isJpeg(body)).toBe(true);
    const seq = Number(res.headers.get("x-frame-number"));
    expect(seq).toBeGreaterThanOrEqual(4);
    expect(body).toEqual(frames[seq % frames.length]!);
    const ts = res.headers.get("x-timestamp")!;
    expect(ts).toMatch(/^\d{10}\.\d{6}$/);
    // The newest frame at the request, or one pushed since, with its capture time. (How old
    // that is depends on the machine's load: a latency for bench/, not a test.)
    expect(seq).toBeGreaterThanOrEqual(newest);
    expect(Number(ts) * 1e6).toBeLessThanOrEqual(nowMicros());
    expect(Number(ts) * 1e6).toBeGreaterThan(before - 60e6);
  });

  test("/state lists the source, uptime, counters, every viewer with its counters, and the last minute", async () => {
    await using v = await startView({ startedAt: Date.now() - 5000 });
    await until("two rate samples", async () => (await v.state()).history.t.length >= 2);
    const res = await fetch(`${v.base}/state`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("application/json");
    const s = (await res.json()) as ViewState;
    expect(s.uptimeSec).toBeGreaterThan(5);
    expect(s.source).toMatchObject({ description: "test", width: W, height: H, fps: FPS });
    expect(s.source.measuredFps).toBeGreaterThan(0); // the feed's timer: how close to FPS depends on the load
    expect(s.source.bitsPerSecond).toBeGreaterThan(0);
    expect(s.source.lastFrame!.seq).toBeGreaterThan(0);
    // One camera: sources has it alone, called 0, as source and history describe it.
    expect(s.sources.map((c) => [c.name, c.width, c.height, c.available, c.viewers])).toEqual([["0", W, H, true, 1]]);
    expect(s.sources[0]!.measuredFps).toBe(s.source.measuredFps);
    expect(s.counters.framesEncoded).toBeGreaterThan(0);
    expect(s.counters.drops).toEqual({ datagramsDropped: 4 });
    expect(s.counters.browser).toEqual({ framesSent: 0, framesSkipped: 0, bytesSent: 0, readersStalled: 0, readersRefused: 0 });
    expect(s.viewers).toHaveLength(1);
    const udp = s.viewers[0]!;
    // The same counter names as the viewer's --stats file.
    expect(udp).toMatchObject({ id: "0badf00d", kind: "udp", address: "10.77.0.5", name: "lab-3", framesMissing: 2, framesIncomplete: 1, framesDropped: 3, latencyP50Ms: 12.5 });
    expect(udp.lossPercent).toBeCloseTo((100 * 3) / (udp.framesReceived! + 3), 6);
    // The server gave no fps: derived from framesReceived between samples.
    expect(udp.fps).toBeGreaterThan(FPS * 0.6);
    expect(udp.fps).toBeLessThan(FPS * 1.4);
    const h = s.history;
    for (const col of [h.streamFps, h.slowestViewerFps, h.worstLatencyMs]) expect(col).toHaveLength(h.t.length);
    expect(h.worstLatencyMs.at(-1)).toBe(12.5);
  });

  test("/state spells out hidden characters in viewers' names and media servers' errors (bidi override, line separator, zero width)", async () => {
    const base = fakeServer();
    await using v = await startView({ state: () => {
      const s = base();
      return {
        ...s,
        viewers: [{ ...s.viewers[0]!, name: "lab\u202e3gpj.exe" }, { ...s.viewers[0]!, id: "classic-1", kind: "classic", name: "a\u2028b\u200bc" }],
        publish: [{ url: "rtsp://media:8554/x", codec: "copy", state: "backoff", sent: 0, dropped: 1, reconnects: 1, lastError: "453 Not Enough Bandwidth\u202e\r\nx" }],
      };
    } });
    const ctl = new AbortController();
    try {
      const res = await fetch(`${v.base}/stream.mjpg?name=${encodeURIComponent("tab\u202eelbat\u200b")}`, { signal: ctl.signal });
      expect(res.status).toBe(200);
      const raw = await (await fetch(`${v.base}/state`)).text();
      // Neither the JSON nor anything the page draws from it holds the characters themselves.
      expect(raw).not.toMatch(/[\u202e\u2028\u200b]/);
      const state = JSON.parse(raw) as ViewState;
      expect(state.viewers.map((x) => x.name)).toEqual(["lab\\u{202e}3gpj.exe", "a\\u{2028}b\\u{200b}c", "tab\\u{202e}elbat\\u{200b}"]);
      expect(state.publish[0]!.lastError).toBe("453 Not Enough Bandwidth\\u{202e}\\r\\nx");
    } finally {
      ctl.abort();
    }
  });

  test("a taken port is one clear error", async () => {
    await using v = await startView({ feed: false });
    const err = await HttpView.start({ port: v.view.port, bind: "127.0.0.1", log: v.log, state: fakeServer() }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(HttpStartError);
    expect((err as Error).message).toStartWith(`cannot listen on 127.0.0.1:${v.view.port} for the browser view: `);
    expect((err as Error).message).toEndWith("(port in use; choose another --http port or 0)");
  });

  test("a failing state provider costs the request (500, one log line), not the view", async () => {
    let fail = false;
    const good = fakeServer();
    await using v = await startView({ state: () => {
      if (fail) throw new Error("session table gone");
      return good();
    } });
    fail = true;
    for (const path of ["/state", "/metrics"]) {
      const res = await fetch(`${v.base}${path}`);
      expect(res.status).toBe(500);
      expect(await res.text()).toBe("internal error: session table gone\n");
    }
    expect(v.log.lines.filter((l) => / ERROR \[http\] request failed path=\/state error="session table gone"$/.test(l))).toHaveLength(1);
    expect((await fetch(`${v.base}/snapshot.jpg`)).status).not.toBe(500);
    fail = false;
    expect((await fetch(`${v.base}/state`)).status).toBe(200);
  });

  test("/metrics is Prometheus text from the view's own registry", async () => {
    await using v = await startView();
    await until("a few frames", () => v.pushed() >= 5);
    const res = await fetch(`${v.base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const body = await res.text();
    for (const line of body.split("\n")) {
      if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$|^\S+ (NaN|[+-]Inf)$/);
    }
    const encoded = Number(body.match(/^lancam_frames_encoded_total\{camera="0"\} (\d+)$/m)?.[1]);
    expect(encoded).toBeGreaterThanOrEqual(5);
    expect(body).toContain("# TYPE lancam_frames_sent_total counter");
    expect(body).toContain('lancam_viewers{kind="udp",camera="0"} 1');
    expect(body).toContain('lancam_viewers{kind="browser",camera="0"} 0');
    expect(body).toContain('lancam_drops_total{reason="datagramsDropped"} 4');
    expect(body).toContain('lancam_viewer_latency_seconds{viewer="0",kind="udp",camera="0"} 0.0125');
    expect(body).toMatch(/^lancam_viewer_loss_ratio\{viewer="0",kind="udp",camera="0"\} 0\.\d+$/m);
  });

  test.skipIf(promtoolSkip !== null)("/metrics passes promtool check metrics, with browser readers watching", async () => {
    await using v = await startView();
    const ctl = new AbortController();
    try {
      for (const name of ["a", "b"]) {
        const res = await fetch(`${v.base}/stream.mjpg?name=${name}`, { signal: ctl.signal });
        expect(res.status).toBe(200);
      }
      await until("two browser viewers", async () => (await v.state()).viewers.filter((x) => x.kind === "browser").length === 2);
      const body = await (await fetch(`${v.base}/metrics`)).text();
      expect(body).toContain('lancam_viewers{kind="browser",camera="0"} 2');
      expect(await promtoolCheck(body)).toEqual({ code: 0, output: "" });
    } finally {
      ctl.abort();
    }
  });
});

describe("/stream.mjpg", () => {
  test("multipart MJPEG: each part a whole JPEG with its capture time and frame number, in order", async () => {
    const admission = recordingHook();
    await using v = await startView({ admission: admission.hook });
    const ctl = new AbortController();
    const res = await fetch(`${v.base}/stream.mjpg?name=part-test`, { signal: ctl.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(`multipart/x-mixed-replace; boundary=${BOUNDARY}`);
    expect(res.headers.get("cache-control")).toContain("no-store");
    const parts = new PartReader(res.body!);
    let last = -1;
    for (let i = 0; i < 15; i++) {
      const p = await parts.next();
      expect(p.headers["content-type"]).toBe("image/jpeg");
      expect(p.headers["x-timestamp"]).toMatch(/^\d{10}\.\d{6}$/);
      const seq = Number(p.headers["x-frame-number"]);
      expect(seq).toBeGreaterThan(last);
      last = seq;
      expect(p.body).toEqual(frames[seq % frames.length]!);
    }
    const s = await v.state();
    const row = s.viewers.find((x) => x.kind === "browser")!;
    expect(row).toMatchObject({ address: "127.0.0.1", name: "part-test", framesReceived: null, framesRecorded: null });
    expect(row.framesSent).toBeGreaterThanOrEqual(15);
    expect(admission.admitted).toEqual([{ id: row.id, kind: "browser", address: "127.0.0.1", port: row.port, name: "part-test", camera: 0 }]);
    expect(v.log.lines.some((l) => / INFO \[http\] client joined client=127\.0\.0\.1:\d+ kind=browser session=http-1 name=part-test readers=1$/.test(l))).toBe(true);
    ctl.abort();
    await until("the leave", () => admission.left.length === 1);
    expect(admission.left).toEqual([{ id: row.id, reason: "connection closed" }]);
    expect(admission.watching()).toBe(0);
    expect(v.log.lines.some((l) => / client left .*kind=browser session=http-1 .*reason="connection closed" /.test(l))).toBe(true);
    expect((await v.state()).viewers.filter((x) => x.kind === "browser")).toEqual([]);
  });

  test("ffprobe reads it as MJPEG at the stream's size and ffmpeg decodes it", async () => {
    await using v = await startView();
    const p = Bun.spawn([resolveFfprobe(), "-v", "error", "-show_entries", "format=format_name:stream=codec_type,codec_name,width,height", "-of", "json", `${v.base}/stream.mjpg`], {
      stdout: "pipe", stderr: "pipe", stdin: "ignore",
    });
    const killer = setTimeout(() => p.kill(), 20_000);
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    clearTimeout(killer);
    expect(err).toBe("");
    expect(code).toBe(0);
    const probe = JSON.parse(out);
    expect(probe.format.format_name).toBe("mpjpeg");
    expect(probe.streams).toEqual([{ codec_name: "mjpeg", codec_type: "video", width: W, height: H }]);
    await until("ffprobe's leave", () => v.log.lines.some((l) => / client left .*name=ffmpeg /.test(l)));
    // ffplay plays what ffmpeg decodes: 20 whole frames, no error.
    const dec = Bun.spawn([resolveFfmpeg().path, "-v", "error", "-nostdin", "-i", `${v.base}/stream.mjpg`, "-frames:v", "20", "-f", "null", "-"], {
      stdout: "ignore", stderr: "pipe", stdin: "ignore",
    });
    const decKiller = setTimeout(() => dec.kill(), 20_000);
    const [decErr, decCode] = await Promise.all([new Response(dec.stderr).text(), dec.exited]);
    clearTimeout(decKiller);
    expect(decErr).toBe("");
    expect(decCode).toBe(0);
  }, 30_000);

  test("a slow reader gets the newest frame, not a backlog; what it missed is counted", async () => {
    // Camera-sized frames (6 MB/s) against a reader taking 2 MB/s for 3 s, then catching up.
    const big = frames.map((f) => padJpeg(f, 200_000));
    await using v = await startView({ jpegs: big });
    const SLOW_BYTES_PER_SEC = 2e6;
    const chunks: Buffer[] = [];
    let slow = true;
    // HTTP/1.0: the body comes as it is sent (no chunked encoding), read at the test's pace.
    const sock = net.connect(v.view.port, "127.0.0.1", () => sock.write("GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"));
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      if (!slow) return;
      sock.pause();
      setTimeout(() => sock.resume(), (1000 * d.length) / SLOW_BYTES_PER_SEC);
    });
    await until("the reader's join", () => v.view.browserViewers().length === 1);
    const joinedAt = v.pushed();
    await until("3 s of frames", () => v.pushed() - joinedAt >= 3 * FPS);
    const row = v.view.browserViewers()[0]!;
    const pushedSinceJoin = v.pushed() - joinedAt;
    const liveSeq = v.pushed() - 1;
    slow = false;
    sock.resume();
    // What the socket buffers hold drains at once; after that come live frames.
    const newestSeen = () => Math.max(-1, ...[...Buffer.concat(chunks).toString("latin1").matchAll(/\r\nX-Frame-Number: (\d+)\r\n/g)].map((m) => Number(m[1])));
    await until("a live frame after the backlog", () => newestSeen() > liveSeq);
    sock.destroy();

    const raw = Buffer.concat(chunks);
    const head = raw.indexOf("\r\n\r\n");
    expect(raw.subarray(0, head).toString()).toContain(`Content-Type: multipart/x-mixed-replace; boundary=${BOUNDARY}`);
    const parts = new PartReader(raw.subarray(head + 4));
    const seqs: number[] = [];
    for (;;) {
      let p: Part;
      try {
        p = await parts.next();
      } catch (e) {
        if (e instanceof Truncated) break;
        throw e;
      }
      const seq = Number(p.headers["x-frame-number"]);
      expect(p.body).toEqual(big[seq % big.length]!);
      seqs.push(seq);
    }
    // In order, and jumping ahead: what it could not take in time was replaced by newer frames.
    const steps = seqs.slice(1).map((s, i) => s - seqs[i]!);
    expect(steps.every((d) => d > 0)).toBe(true);
    expect(steps.some((d) => d > 1)).toBe(true);
    expect(seqs.at(-1)!).toBeGreaterThan(liveSeq);
    expect(row.framesDropped).toBeGreaterThan(0);
    // Every frame since it joined was sent, skipped or is the one pending (give or take the one in flight at join).
    expect(Math.abs(row.framesSent + row.framesDropped! - pushedSinceJoin)).toBeLessThanOrEqual(2);
  }, 30_000);

  test("a reader that stops reading is bounded, dropped after stallMs and logged; its connection is closed", async () => {
    // Camera-sized frames fill the socket buffers within a second or two.
    const big = frames.slice(0, 4).map((f) => padJpeg(f, 200_000));
    const admission = recordingHook();
    await using v = await startView({ admission: admission.hook, stallMs: 1000, jpegs: big });
    const r = rawReader(v.view.port);
    await until("the reader's first bytes", () => r.seen.bytes > 0);
    r.sock.pause();
    let maxSentBytes = 0;
    let skipped = 0;
    await until("the stalled reader's drop", async () => {
      const row = (await v.state()).viewers.find((x) => x.kind === "browser");
      if (row) {
        maxSentBytes = Math.max(maxSentBytes, row.bytesSent!);
        skipped = Math.max(skipped, row.framesDropped!);
      }
      return admission.left.length > 0;
    }, 20_000);
    expect(admission.left).toEqual([{ id: "http-1", reason: "stalled" }]);
    // Frames went on while it was stuck: they were skipped, not queued.
    expect(skipped).toBeGreaterThan(0);
    // All it was handed fits in the kernel's socket buffers (a few MB), whatever the stall's length.
    expect(maxSentBytes).toBeLessThan(32 << 20);
    expect(v.log.lines.some((l) => / WARN \[http\] client left client=127\.0\.0\.1:\d+ kind=browser session=http-1 name=raw-test reason=stalled .*stalledSec=1$/.test(l))).toBe(true);
    const s = await v.state();
    expect(s.viewers.filter((x) => x.kind === "browser")).toEqual([]);
    expect(s.counters.browser.readersStalled).toBe(1);
    expect(await (await fetch(`${v.base}/metrics`)).text()).toContain("lancam_browser_readers_stalled_total 1");
    // The server lets go of the connection although the client still reads nothing...
    await until("the stalled connection's close", () => v.view.openRequests === 0, 10_000);
    expect(r.seen.ended).toBe(false);
    // ...and the client sees its end once it reads again.
    r.sock.resume();
    await until("the connection's end", () => r.seen.ended, 10_000);
    r.sock.destroy();
  }, 40_000);

  test("readers are bounded: the server's hook and the view's own limit refuse with 503 and a log line", async () => {
    const admission = recordingHook(1);
    await using v = await startView({ admission: admission.hook, maxReaders: 2 });
    const a = await fetch(`${v.base}/stream.mjpg`);
    expect(a.status).toBe(200);
    const refused = await fetch(`${v.base}/stream.mjpg?name=late`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(await refused.text()).toBe("refused: server full: 1 viewers already connected\n");
    expect(v.log.lines.some((l) => / WARN \[http\] client refused client=127\.0\.0\.1:\d+ kind=browser name=late reason="server full: 1 viewers already connected"$/.test(l))).toBe(true);
    await a.body!.cancel();
    await until("the leave", () => admission.watching() === 0);

    await using w = await startView({ maxReaders: 1 });
    const b = await fetch(`${w.base}/stream.mjpg`);
    const c = await fetch(`${w.base}/stream.mjpg`);
    expect(c.status).toBe(503);
    expect(await c.text()).toBe("refused: 1 browser viewers already watching\n");
    expect((await w.state()).counters.browser.readersRefused).toBe(1);
    await b.body!.cancel();
  });

  test("stopping the view ends every reader with server shutdown", async () => {
    const admission = recordingHook();
    const v = await startView({ admission: admission.hook });
    const res = await fetch(`${v.base}/stream.mjpg`);
    const parts = new PartReader(res.body!);
    await parts.next();
    await v[Symbol.asyncDispose]();
    expect(admission.left).toEqual([{ id: "http-1", reason: "server shutdown" }]);
    expect(v.log.lines.some((l) => / client left .*reason="server shutdown" /.test(l))).toBe(true);
    await expect(fetch(`${v.base}/state`)).rejects.toThrow();
  });
});

describe("access token", () => {
  test("with a token configured, requests without it get 401 and a log line that never shows a token", async () => {
    const admission = recordingHook();
    await using v = await startView({ auth: tokenAuth("s3cret"), admission: admission.hook });
    for (const path of ["/", "/state", "/metrics", "/snapshot.jpg", "/stream.mjpg"]) {
      const res = await fetch(`${v.base}${path}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Basic realm="lancam", charset="UTF-8"');
      await res.text();
    }
    expect(admission.admitted).toEqual([]);
    expect(v.log.lines.some((l) => / WARN \[http\] unauthorized request client=127\.0\.0\.1:\d+ path=\/ why="no token"$/.test(l))).toBe(true);

    // Lines are rate-limited: a wrong token shows once the next slot comes.
    const wrongLine = / WARN \[http\] unauthorized request client=127\.0\.0\.1:\d+ path=\/state why="wrong token"( similar=\d+)?$/;
    await until("a wrong-token line", async () => {
      const wrong = await fetch(`${v.base}/state?token=guess-0451`);
      expect(wrong.status).toBe(401);
      await wrong.text();
      return v.log.lines.some((l) => wrongLine.test(l));
    });
    expect(v.log.lines.join("\n")).not.toContain("guess-0451");

    expect((await fetch(`${v.base}/state?token=s3cret`)).status).toBe(200);
    const basic = `Basic ${Buffer.from("viewer:s3cret").toString("base64")}`;
    expect((await fetch(`${v.base}/metrics`, { headers: { authorization: basic } })).status).toBe(200);
    expect((await fetch(`${v.base}/snapshot.jpg`, { headers: { authorization: "Bearer s3cret" } })).status).not.toBe(401);
    const stream = await fetch(`${v.base}/stream.mjpg?token=s3cret`);
    expect(stream.status).toBe(200);
    await stream.body!.cancel();
    // The page's own files carry nothing secret and load before the page can add the token.
    expect((await fetch(`${v.base}/assets/page.js`)).status).toBe(200);
  });
});

describe("single executable", () => {
  test("a compiled executable serves the page, uPlot and the metrics with no node_modules around it", async () => {
    const dir = tempDir();
    const entry = join(dir, "view.ts");
    writeFileSync(entry, [
      `import { HttpView } from ${JSON.stringify(join(ROOT, "lib/http/http-view.ts"))};`,
      `import { silentLogger } from ${JSON.stringify(join(ROOT, "lib/log/logger.ts"))};`,
      `const view = await HttpView.start({ port: 0, bind: "127.0.0.1", log: silentLogger,`,
      `  state: () => ({ sources: [{ name: "0", description: "test", width: 2, height: 2, fps: 1, available: true, framesCaptured: 0 }], viewers: [], counters: { framesCaptured: 0, framesSent: 0, bytesSent: null, drops: {} } }) });`,
      `console.log("listening port=" + view.port);`,
      `setInterval(() => {}, 1000);`,
    ].join("\n"));
    const exe = join(dir, "view");
    const build = Bun.spawnSync([process.execPath, "build", "--compile", entry, "--outfile", exe], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(build.stderr.toString()).not.toContain("error");
    expect(build.exitCode).toBe(0);
    // Run from an empty folder: whatever it serves must be inside the executable.
    const proc = Bun.spawn([exe], { cwd: tempDir(), stdin: "ignore", stdout: "pipe", stderr: "inherit" });
    await using _kill = { [Symbol.asyncDispose]: async () => void (proc.kill(), await proc.exited) };
    const reader = proc.stdout.getReader();
    let out = "";
    while (!/listening port=\d+/.test(out)) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the executable exited before listening: ${out}`);
      out += new TextDecoder().decode(value);
    }
    const port = /listening port=(\d+)/.exec(out)![1];
    const base = `http://127.0.0.1:${port}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<img id="live"');
    const uplot = await fetch(`${base}/assets/uPlot.iife.min.js`);
    expect(uplot.status).toBe(200);
    expect((await uplot.text()).length).toBe(Bun.file(join(ROOT, "node_modules/uplot/dist/uPlot.iife.min.js")).size);
    expect(await (await fetch(`${base}/assets/page.js`)).text()).toBe(await Bun.file(join(ROOT, "lib/http/page.js")).text());
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('lancam_frames_encoded_total{camera="0"} 0');
  }, 60_000);
});
