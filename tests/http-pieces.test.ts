import { describe, expect, test } from "bun:test";
import { ViewMetrics } from "../lib/http/metrics.ts";
import { BOUNDARY, MJPEG_CONTENT_TYPE, PART_END, partHeader, STREAM_START, timestampHeader } from "../lib/http/mjpeg-part.ts";
import { CountRates, StreamMeter } from "../lib/http/rates.ts";
import { MAX_READER_NAME, readerName } from "../lib/http/reader-name.ts";
import { offeredToken, tokenAuth } from "../lib/http/token-auth.ts";
import { lossPercent, ViewHistory, type ViewState } from "../lib/http/view-state.ts";
import type { ViewerInfo } from "../lib/http/viewer-info.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("MJPEG part framing", () => {
  test("a part names its type, length, capture time and frame number, and ends with the next boundary", () => {
    const jpeg = new Uint8Array(1234);
    expect(text(partHeader({ seq: 42, capturedAt: 1_764_000_000_123_456, width: 2, height: 2, jpeg }))).toBe(
      "Content-Type: image/jpeg\r\nContent-Length: 1234\r\nX-Timestamp: 1764000000.123456\r\nX-Frame-Number: 42\r\n\r\n",
    );
    expect(MJPEG_CONTENT_TYPE).toBe(`multipart/x-mixed-replace; boundary=${BOUNDARY}`);
    expect(text(STREAM_START)).toBe(`--${BOUNDARY}\r\n`);
    expect(text(PART_END)).toBe(`\r\n--${BOUNDARY}\r\n`);
  });

  test("X-Timestamp keeps six decimals, leading zeros included", () => {
    expect(timestampHeader(1_000_000_000_000_007)).toBe("1000000000.000007");
    expect(timestampHeader(5_000_000)).toBe("5.000000");
    expect(timestampHeader(-3)).toBe("0.000000");
  });
});

describe("reader names", () => {
  const u = (q = "") => new URL(`http://h/stream.mjpg${q}`);
  test("a given name wins; otherwise the User-Agent says what the reader is", () => {
    expect(readerName(u("?name=lab%203"), "curl/8.0")).toBe("lab 3");
    expect(readerName(u(), "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36")).toBe("Chrome 131");
    expect(readerName(u(), "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")).toBe("Firefox 128");
    expect(readerName(u(), "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")).toBe("Safari 17");
    expect(readerName(u(), "VLC/3.0.20 LibVLC/3.0.20")).toBe("VLC");
    expect(readerName(u(), "Lavf/59.27.100")).toBe("ffmpeg");
    expect(readerName(u(), "curl/7.88.1")).toBe("curl");
    expect(readerName(u(), "Wget/1.21")).toBe("Wget/1.21");
    expect(readerName(u(), null)).toBe("");
  });
  test("control characters are removed and long names cut, since names go into log lines", () => {
    expect(readerName(u("?name=a%0Ab%1Bc"), null)).toBe("abc");
    expect(readerName(u(`?name=${"x".repeat(500)}`), null)).toHaveLength(MAX_READER_NAME);
  });
});

describe("token check", () => {
  const check = tokenAuth("s3cret");
  const req = (path: string, headers: Record<string, string> = {}) => {
    const r = new Request(`http://h${path}`, { headers });
    return check(r, new URL(r.url));
  };
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

  test("the token is accepted as ?token=, as the Basic password under any user name, and as a Bearer token", () => {
    expect(req("/state?token=s3cret")).toEqual({ ok: true });
    expect(req("/state", { authorization: basic("anyone", "s3cret") })).toEqual({ ok: true });
    expect(req("/state", { authorization: basic("", "s3cret") })).toEqual({ ok: true });
    expect(req("/metrics", { authorization: "Bearer s3cret" })).toEqual({ ok: true });
  });

  test("no token and a wrong one are told apart (for the log), every near miss refused", () => {
    expect(req("/state")).toEqual({ ok: false, why: "no token" });
    expect(req("/state", { authorization: "Digest abc" })).toEqual({ ok: false, why: "no token" });
    expect(req("/state", { authorization: `Basic ${Buffer.from("no-colon").toString("base64")}` })).toEqual({ ok: false, why: "no token" });
    for (const wrong of ["s3cre", "s3cret ", "S3CRET", "", "s3cret\0"]) {
      expect(req(`/state?token=${encodeURIComponent(wrong)}`)).toEqual({ ok: false, why: "wrong token" });
    }
    expect(req("/state", { authorization: basic("s3cret", "x") })).toEqual({ ok: false, why: "wrong token" });
    expect(req("/state", { authorization: "Bearer nope" })).toEqual({ ok: false, why: "wrong token" });
  });

  test("?token= is looked at before the header; an empty configured token is refused", () => {
    const r = new Request("http://h/?token=a", { headers: { authorization: "Bearer b" } });
    expect(offeredToken(r, new URL(r.url))).toBe("a");
    expect(() => tokenAuth("")).toThrow("the access token must not be empty");
  });
});

describe("rates", () => {
  test("the stream meter gives fps and bits per second over the last window", () => {
    const m = new StreamMeter();
    m.sample(500);
    expect(m.fps).toBe(0);
    for (let i = 0; i < 30; i++) m.frame(1000, 1000 + i * 33);
    m.sample(2000);
    expect(m.fps).toBe(30);
    expect(m.bitsPerSecond).toBe(240_000);
    m.sample(3000);
    expect(m.fps).toBe(0);
  });

  test("count rates come from the change between samples; a new or reset counter has none", () => {
    const r = new CountRates();
    r.sample([["a", 100]], 0);
    expect(r.rate("a")).toBeNull();
    r.sample([["a", 130], ["b", 5]], 1000);
    expect(r.rate("a")).toBe(30);
    expect(r.rate("b")).toBeNull();
    r.sample([["a", 10], ["b", 20]], 1500);
    expect(r.rate("a")).toBeNull();
    expect(r.rate("b")).toBe(30);
    // Ids that are gone are forgotten.
    r.sample([], 2000);
    expect(r.rate("b")).toBeNull();
  });
});

const viewer = (over: Partial<ViewerInfo>): ViewerInfo => ({
  id: "00000001", kind: "udp", address: "10.0.0.5", port: 8888, name: "lab", joinedAt: 0,
  framesSent: 100, framesReceived: 95, framesMissing: 3, framesIncomplete: 2, framesDropped: 5,
  framesRecorded: 90, fps: 30, latencyP50Ms: 12, bytesSent: null, ...over,
});

describe("view state", () => {
  test("loss is dropped over delivered plus dropped: received for UDP viewers, sent for browsers", () => {
    expect(lossPercent(viewer({}))).toBe(5);
    expect(lossPercent(viewer({ kind: "browser", framesReceived: null, framesSent: 75, framesDropped: 25 }))).toBe(25);
    expect(lossPercent(viewer({ framesReceived: null }))).toBeNull();
    expect(lossPercent(viewer({ framesReceived: 0, framesDropped: 0 }))).toBe(0);
  });

  test("the history keeps the last minute: the slowest fps and the worst latency of each second", () => {
    const h = new ViewHistory(3);
    h.add(1, 30, []);
    h.add(2, 29, [viewer({ fps: 30, latencyP50Ms: 12 }), viewer({ fps: 12, latencyP50Ms: 40 }), viewer({ fps: null, latencyP50Ms: null })]);
    h.add(3, 30, [viewer({ fps: 25, latencyP50Ms: null })]);
    h.add(4, 31, [viewer({ fps: 30, latencyP50Ms: 8 })]);
    expect(h.columns()).toEqual({ t: [2, 3, 4], streamFps: [29, 30, 31], slowestViewerFps: [12, 25, 30], worstLatencyMs: [40, null, 8] });
    expect(() => new ViewHistory(0)).toThrow("history capacity must be at least 1, got 0");
  });
});

describe("metrics", () => {
  const state = (viewers: ViewState["viewers"]): ViewState => ({
    startedAt: "2026-11-26T00:00:00.000Z", uptimeSec: 12,
    source: { description: "test", width: 640, height: 360, fps: 30, measuredFps: 29.5, bitsPerSecond: 3e6, lastFrame: null },
    counters: {
      framesCaptured: 361, framesEncoded: 360, framesSent: 700, bytesSent: null, drops: { datagramsDropped: 4, framesNotSent: 1 },
      browser: { framesSent: 300, framesSkipped: 7, bytesSent: 9000, readersStalled: 1, readersRefused: 2 },
    },
    viewers,
    publish: [
      { url: "rtsp://***@media:8554/classroom", codec: "copy", state: "publishing", sent: 350, dropped: 2, reconnects: 1, lastError: null },
      { url: "rtsp://backup:8554/x", codec: "copy", state: "backoff", sent: 0, dropped: 360, reconnects: 4, lastError: "connection refused" },
    ],
    history: { t: [], streamFps: [], slowestViewerFps: [], worstLatencyMs: [] },
  });

  test("totals, drops by reason, viewers by kind and per-viewer loss and latency, in the Prometheus text format", async () => {
    const m = new ViewMetrics();
    const out = await m.render(state([
      { ...viewer({ name: 'say "hi"' }), lossPercent: 5 },
      { ...viewer({ id: "http-1", kind: "browser", address: "127.0.0.1", port: 4000, name: "Chrome 131", latencyP50Ms: null }), lossPercent: 0 },
    ]));
    expect(m.contentType).toStartWith("text/plain; version=0.0.4");
    const lines = out.split("\n").filter((l) => l.startsWith("lancam_"));
    for (const want of [
      "lancam_uptime_seconds 12",
      "lancam_frames_captured_total 361",
      "lancam_frames_encoded_total 360",
      'lancam_frames_sent_total{kind="udp"} 700',
      'lancam_frames_sent_total{kind="browser"} 300',
      'lancam_bytes_sent_total{kind="browser"} 9000',
      'lancam_drops_total{reason="datagramsDropped"} 4',
      'lancam_drops_total{reason="framesNotSent"} 1',
      'lancam_drops_total{reason="browserFramesSkipped"} 7',
      "lancam_browser_readers_stalled_total 1",
      "lancam_browser_readers_refused_total 2",
      'lancam_viewers{kind="udp"} 1',
      'lancam_viewers{kind="browser"} 1',
      'lancam_viewer_loss_ratio{id="00000001",kind="udp",address="10.0.0.5",name="say \\"hi\\""} 0.05',
      'lancam_viewer_latency_seconds{id="00000001",kind="udp",address="10.0.0.5",name="say \\"hi\\""} 0.012',
      'lancam_viewer_fps{id="http-1",kind="browser",address="127.0.0.1",name="Chrome 131"} 30',
      'lancam_viewers{kind="classic"} 0',
      'lancam_publish_up{url="rtsp://***@media:8554/classroom",codec="copy"} 1',
      'lancam_publish_up{url="rtsp://backup:8554/x",codec="copy"} 0',
      'lancam_publish_frames_sent{url="rtsp://***@media:8554/classroom",codec="copy"} 350',
      'lancam_publish_frames_dropped{url="rtsp://backup:8554/x",codec="copy"} 360',
      'lancam_publish_reconnects{url="rtsp://backup:8554/x",codec="copy"} 4',
    ]) expect(lines).toContain(want);
    // Unknown values are left out rather than shown as 0.
    expect(lines.some((l) => l.startsWith('lancam_bytes_sent_total{kind="udp"}'))).toBe(false);
    expect(lines.some((l) => l.startsWith("lancam_viewer_latency_seconds") && l.includes("http-1"))).toBe(false);
    expect(out).toContain("process_cpu_seconds_total");
  });

  test("a viewer that left disappears from the next scrape; two views never share a registry", async () => {
    const a = new ViewMetrics();
    const b = new ViewMetrics();
    expect(await a.render(state([{ ...viewer({}), lossPercent: 5 }]))).toContain('id="00000001"');
    expect(await a.render(state([]))).not.toContain('id="00000001"');
    expect(await b.render(state([]))).toContain('lancam_viewers{kind="udp"} 0');
  });
});
