import { describe, expect, test } from "bun:test";
import { ViewMetrics } from "../lib/http/metrics.ts";
import { ViewerSlots } from "../lib/http/viewer-slots.ts";
import { promtoolCheck, promtoolSkipReason } from "./helpers/promtool.ts";
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
  id: "00000001", kind: "udp", address: "10.0.0.5", port: 8888, name: "lab", camera: "0", joinedAt: 0,
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
    sources: [{
      name: "0", description: "test", width: 640, height: 360, fps: 30, measuredFps: 29.5, bitsPerSecond: 3e6, lastFrame: null,
      available: true, framesCaptured: 361, framesEncoded: 360, viewers: viewers.length, history: { t: [], streamFps: [], slowestViewerFps: [], worstLatencyMs: [] },
    }],
    counters: {
      framesCaptured: 361, framesEncoded: 360, framesIgnored: 0, framesSent: 700, bytesSent: null, drops: { datagramsDropped: 4, framesNotSent: 1 },
      browser: { framesSent: 300, framesSkipped: 7, bytesSent: 9000, readersStalled: 1, readersRefused: 2 },
    },
    viewers,
    publish: [
      { url: "rtsp://***@media:8554/classroom", codec: "copy", state: "publishing", sent: 350, dropped: 2, reconnects: 1, lastError: null },
      { url: "rtsp://backup:8554/x", codec: "copy", state: "backoff", sent: 0, dropped: 360, reconnects: 4, lastError: "connection refused" },
    ],
    history: { t: [], streamFps: [], slowestViewerFps: [], worstLatencyMs: [] },
  });

  const row = (over: Partial<ViewerInfo>, loss = 5) => ({ ...viewer(over), lossPercent: loss });
  /** Every value of `label` among the lines of the metric `name`. */
  const labelValues = (out: string, name: string, label: string) =>
    [...out.matchAll(new RegExp(`^${name}\\{[^}]*\\b${label}="([^"]*)"`, "gm"))].map((m) => m[1]!);

  test("totals, drops by reason, viewers by kind and per-viewer loss and latency, in the Prometheus text format", async () => {
    const m = new ViewMetrics({ maxViewers: 4 });
    const out = await m.render(state([
      row({ name: 'say "hi"' }),
      row({ id: "http-1", kind: "browser", address: "127.0.0.1", port: 4000, name: "Chrome 131", latencyP50Ms: null, framesDropped: 7 }, 0),
    ]));
    expect(m.contentType).toStartWith("text/plain; version=0.0.4");
    const lines = out.split("\n").filter((l) => l.startsWith("lancam_"));
    for (const want of [
      "lancam_uptime_seconds 12",
      'lancam_stream_bytes_per_second{camera="0"} 375000',
      'lancam_frames_captured_total{camera="0"} 361',
      'lancam_frames_encoded_total{camera="0"} 360',
      'lancam_frames_sent_total{kind="udp"} 700',
      'lancam_frames_sent_total{kind="browser"} 300',
      'lancam_bytes_sent_total{kind="browser"} 9000',
      'lancam_drops_total{reason="datagramsDropped"} 4',
      'lancam_drops_total{reason="framesNotSent"} 1',
      'lancam_drops_total{reason="browserFramesSkipped"} 7',
      "lancam_browser_readers_stalled_total 1",
      "lancam_browser_readers_refused_total 2",
      'lancam_viewers{kind="udp",camera="0"} 1',
      'lancam_viewers{kind="browser",camera="0"} 1',
      'lancam_viewers{kind="classic",camera="0"} 0',
      'lancam_viewer_loss_ratio{viewer="0",kind="udp",camera="0"} 0.05',
      'lancam_viewer_latency_seconds{viewer="0",kind="udp",camera="0"} 0.012',
      'lancam_viewer_fps{viewer="1",kind="browser",camera="0"} 30',
      'lancam_viewer_frames_dropped_total{kind="udp"} 5',
      'lancam_viewer_frames_dropped_total{kind="browser"} 7',
      'lancam_viewer_frames_dropped_total{kind="classic"} 0',
      'lancam_publish_up{url="rtsp://***@media:8554/classroom",codec="copy"} 1',
      'lancam_publish_up{url="rtsp://backup:8554/x",codec="copy"} 0',
      'lancam_publish_frames_sent_total{url="rtsp://***@media:8554/classroom",codec="copy"} 350',
      'lancam_publish_frames_dropped_total{url="rtsp://backup:8554/x",codec="copy"} 360',
      'lancam_publish_reconnects_total{url="rtsp://backup:8554/x",codec="copy"} 4',
    ]) expect(lines).toContain(want);
    // Unknown values are left out rather than shown as 0.
    expect(lines.some((l) => l.startsWith('lancam_bytes_sent_total{kind="udp"}'))).toBe(false);
    expect(lines.some((l) => l.startsWith('lancam_viewer_latency_seconds{viewer="1"'))).toBe(false);
    // Who a viewer is stays in /state: no session id, address or name becomes a label.
    for (const who of ["00000001", "http-1", "10.0.0.5", "say", "Chrome"]) expect(out).not.toContain(who);
    expect(out).toContain("process_cpu_seconds_total");
    expect(out).not.toContain("nodejs_active_handles_total");
  });

  const promtoolSkip = promtoolSkipReason();
  test.skipIf(promtoolSkip !== null)("promtool check metrics finds nothing to object to, viewers, drops and publish targets included", async () => {
    const m = new ViewMetrics({ maxViewers: 4 });
    await m.render(state([row({})]));
    const out = await m.render(state([
      row({ name: "lab\u202e" }), row({ id: "classic-2", kind: "classic", fps: null, latencyP50Ms: null, framesDropped: null }, 0),
      row({ id: "00000003", picture: { layer: 1, width: 640, height: 360 }, rateBytesPerS: 500_000, framesSkipped: 7 }),
    ]));
    expect(await promtoolCheck(out)).toEqual({ code: 0, output: "" });
  });

  test("a viewer paced to its path shows its layer, picture width and path estimate; one sent the source as everyone shows none", async () => {
    const m = new ViewMetrics({ maxViewers: 4 });
    const out = await m.render(state([row({}), row({ id: "00000003", picture: { layer: 1, width: 640, height: 360 }, rateBytesPerS: 500_000, framesSkipped: 7 })]));
    expect(out).toMatch(/^lancam_viewer_layer\{viewer="1",kind="udp",camera="0"\} 1$/m);
    expect(out).toMatch(/^lancam_viewer_picture_width_pixels\{viewer="1",kind="udp",camera="0"\} 640$/m);
    expect(out).toMatch(/^lancam_viewer_path_rate_bytes_per_second\{viewer="1",kind="udp",camera="0"\} 500000$/m);
    expect(out).not.toMatch(/^lancam_viewer_layer\{viewer="0"/m);
  });

  test("a repairing viewer shows what it repaired, by parity and by resend, what it could not, its delay and what it was resent; the server its totals", async () => {
    const m = new ViewMetrics({ maxViewers: 4 });
    const repair = {
      datagramsRepairedByFec: 40, datagramsRepairedByNack: 12, datagramsUnrepaired: 3, framesRecordOnly: 2,
      delayP50Ms: 1.5, delayP99Ms: 9, datagramsResent: 14, bytesResent: 19_600, paritiesSent: 300,
    };
    const st = state([row({}), row({ id: "00000003", repair })]);
    st.counters.repair = { datagramsResent: 14, bytesResent: 19_600, requestsDropped: 1, goneSent: 2 };
    const out = await m.render(st);
    for (const want of [
      'lancam_viewer_datagrams_repaired_by_parity{viewer="1",kind="udp",camera="0"} 40',
      'lancam_viewer_datagrams_repaired_by_resend{viewer="1",kind="udp",camera="0"} 12',
      'lancam_viewer_datagrams_unrepaired{viewer="1",kind="udp",camera="0"} 3',
      'lancam_viewer_frames_recorded_only{viewer="1",kind="udp",camera="0"} 2',
      'lancam_viewer_repair_delay_seconds{viewer="1",kind="udp",camera="0"} 0.0015',
      'lancam_viewer_resent_bytes{viewer="1",kind="udp",camera="0"} 19600',
      "lancam_repair_resent_bytes_total 19600",
      "lancam_repair_resent_datagrams_total 14",
    ]) expect(out.split("\n")).toContain(want);
    // A viewer that does not repair shows none.
    expect(out).not.toMatch(/^lancam_viewer_datagrams_repaired_by_parity\{viewer="0"/m);
    if (promtoolSkip === null) expect(await promtoolCheck(out)).toEqual({ code: 0, output: "" });
  });

  test.skipIf(promtoolSkip !== null)("the linter this test relies on does object to the names /metrics used to have", async () => {
    const bad = "# HELP x_bits_per_second b\n# TYPE x_bits_per_second gauge\nx_bits_per_second 1\n# HELP x_dropped c\n# TYPE x_dropped counter\nx_dropped 1\n";
    const r = await promtoolCheck(bad);
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('x_bits_per_second use base unit "bytes" instead of "bits"');
    expect(r.output).toContain('x_dropped counter metrics should have "_total" suffix');
  });

  test("viewers take the lowest free slot and keep it while they stay: 60 viewers coming and going use slots 0..2 only", async () => {
    const m = new ViewMetrics({ maxViewers: 3 });
    const seen = new Set<string>();
    const present: ViewerInfo[] = [];
    let lastSlotOfFirst: string | undefined;
    const first = viewer({ id: "ffffffff", fps: 7 });
    present.push(first);
    for (let i = 0; i < 60; i++) {
      // At most three at once, as --max-clients 3 would allow; the oldest newcomer leaves first.
      if (present.length === 3) present.splice(1, 1);
      present.push(viewer({ id: i.toString(16).padStart(8, "0"), kind: i % 3 === 0 ? "browser" : "udp", fps: 30 }));
      const out = await m.render(state(present.map((v) => ({ ...v, lossPercent: 1 }))));
      for (const v of labelValues(out, "lancam_viewer_fps", "viewer")) seen.add(v);
      const firstSlot = out.match(/^lancam_viewer_fps\{viewer="(\d+)",kind="udp",camera="0"\} 7$/m)?.[1];
      expect(firstSlot).toBeDefined();
      if (lastSlotOfFirst !== undefined) expect(firstSlot).toBe(lastSlotOfFirst);
      lastSlotOfFirst = firstSlot;
    }
    expect([...seen].sort()).toEqual(["0", "1", "2"]);
  });

  test("viewers beyond --max-clients get no series of their own but are counted by kind", async () => {
    const m = new ViewMetrics({ maxViewers: 2 });
    const out = await m.render(state([1, 2, 3, 4, 5].map((i) => row({ id: `0000000${i}` }))));
    expect(labelValues(out, "lancam_viewer_fps", "viewer").sort()).toEqual(["0", "1"]);
    expect(out).toContain('lancam_viewers{kind="udp",camera="0"} 5');
    expect(out).toContain('lancam_viewer_frames_dropped_total{kind="udp"} 25');
  });

  test("frames dropped by viewers only grow: a viewer that leaves keeps its count in the total, and its slot is freed", async () => {
    const m = new ViewMetrics({ maxViewers: 4 });
    const a = (dropped: number) => row({ id: "0000000a", framesDropped: dropped });
    const b = (dropped: number) => row({ id: "0000000b", framesDropped: dropped });
    const total = async (viewers: ViewState["viewers"]) =>
      Number((await m.render(state(viewers))).match(/^lancam_viewer_frames_dropped_total\{kind="udp"\} (\d+)$/m)?.[1]);
    expect(await total([a(4), b(1)])).toBe(5);
    expect(await total([a(9), b(1)])).toBe(10);
    // a leaves: its 9 stay in the total.
    expect(await total([b(2)])).toBe(11);
    // A report that dips does not make the counter go back.
    expect(await total([b(1)])).toBe(11);
    const out = await m.render(state([b(3), row({ id: "0000000c", fps: 11 })]));
    expect(out).toContain('lancam_viewer_fps{viewer="0",kind="udp",camera="0"} 11');
    expect(out).toContain('lancam_viewer_frames_dropped_total{kind="udp"} 17');
  });

  test("slots: a capacity below 1 is refused; a freed slot is the next one taken", () => {
    expect(() => new ViewerSlots(0)).toThrow("viewer slots must be a whole number of at least 1, got 0");
    const slots = new ViewerSlots(3);
    expect([...slots.update(["a", "b", "c", "d"])]).toEqual([["a", 0], ["b", 1], ["c", 2]]);
    expect([...slots.update(["a", "c", "d"])]).toEqual([["a", 0], ["c", 2], ["d", 1]]);
    expect(slots.size).toBe(3);
    expect([...slots.update([])]).toEqual([]);
    expect(slots.size).toBe(0);
  });

  test("a viewer that left disappears from the next scrape; two views never share a registry", async () => {
    const a = new ViewMetrics({ maxViewers: 4 });
    const b = new ViewMetrics({ maxViewers: 4 });
    expect(await a.render(state([row({})]))).toContain('lancam_viewer_fps{viewer="0",kind="udp",camera="0"} 30');
    expect(await a.render(state([]))).not.toContain("lancam_viewer_fps{");
    expect(await b.render(state([]))).toContain('lancam_viewers{kind="udp",camera="0"} 0');
  });
});
