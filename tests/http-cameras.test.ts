// The browser view with several cameras: each camera's stream, snapshot, figures and
// metrics by number or name, an unknown camera refused with the list, and the server's
// side (state provider, admission) told which camera a viewer watches.
import { beforeAll, describe, expect, test } from "bun:test";
import { browserAdmission, serverState, viewerRow, type ViewedServer } from "../lib/app/browser-view.ts";
import { cameraQuery } from "../lib/http/camera-query.ts";
import { HttpView, type HttpViewOptions } from "../lib/http/http-view.ts";
import { MjpegReaders } from "../lib/http/mjpeg-readers.ts";
import { pageWithCameras } from "../lib/http/page-cameras.ts";
import type { ViewState } from "../lib/http/view-state.ts";
import type { AdmissionRequest, CameraSourceInfo } from "../lib/http/viewer-info.ts";
import { newServerStats } from "../lib/send/server-stats.ts";
import type { ViewerSummary } from "../lib/send/viewer-summary.ts";
import { nowMicros, type Frame } from "../lib/wire/frame.ts";
import { fakeCamerasState } from "./helpers/fake-view-state.ts";
import { jpegSize } from "./helpers/jpeg-bytes.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { takeParts } from "./helpers/mjpeg-parts.ts";
import { until } from "./helpers/process.ts";
import { promtoolCheck, promtoolSkipReason } from "./helpers/promtool.ts";

const FPS = 15;
/** Two cameras of different sizes, so a picture tells which camera it came from. */
const CAMERAS = [{ name: "board", width: 320, height: 240 }, { name: "desk", width: 160, height: 120 }];
const NO_SUCH_2 = 'no camera "2" on this server; it has 2 cameras: 0=board, 1=desk\n';
const promtoolSkip = promtoolSkipReason();
let jpegs: Uint8Array[][] = [];

beforeAll(async () => {
  jpegs = await Promise.all(CAMERAS.map((c) => jpegFrames(10, c.width, c.height)));
});

/** A view of the two cameras, each fed its own pictures FPS times a second, stopped on dispose. */
async function startCameras(opts: Partial<HttpViewOptions> = {}) {
  const log = memoryLogger("http");
  const server = fakeCamerasState(CAMERAS, FPS);
  const admitted: AdmissionRequest[] = [];
  const view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log, state: server.state,
    admission: { admit: (r) => (admitted.push(r), { ok: true }), left: () => {} },
    ...opts,
  });
  let seq = 0;
  const timer = setInterval(() => {
    CAMERAS.forEach((c, i) => view.push({ seq, capturedAt: nowMicros(), width: c.width, height: c.height, jpeg: jpegs[i]![seq % 10]! }, i));
    seq++;
  }, 1000 / FPS);
  const base = `http://127.0.0.1:${view.port}`;
  return {
    view, log, base, server, admitted,
    pushed: () => seq,
    state: async () => (await (await fetch(`${base}/state`)).json()) as ViewState,
    async [Symbol.asyncDispose]() {
      clearInterval(timer);
      await view.stop();
    },
  };
}

describe("picking a camera", () => {
  const names = ["board", "desk"];
  const q = (query: string) => cameraQuery(new URL(`http://h/stream.mjpg${query}`), names);

  test("by number or by name; without ?camera= none is named; an unknown one is refused with the list", () => {
    expect(q("")).toEqual({ camera: null });
    expect(q("?camera=1")).toEqual({ camera: 1 });
    expect(q("?camera=desk")).toEqual({ camera: 1 });
    expect(q("?camera=0&token=x")).toEqual({ camera: 0 });
    expect(q("?camera=2")).toEqual({ refusal: NO_SUCH_2.trimEnd() });
    expect(q("?camera=Desk")).toEqual({ refusal: 'no camera "Desk" on this server; it has 2 cameras: 0=board, 1=desk' });
  });

  test("the page carries the cameras' names and the one asked for in its <body>, quoted safely", () => {
    const html = "<html><body>\n<p>x</p></body></html>";
    expect(pageWithCameras(html, ["board", "desk"], null)).toBe('<html><body data-cameras="[&#34;board&#34;,&#34;desk&#34;]">\n<p>x</p></body></html>');
    expect(pageWithCameras(html, ["0"], 0)).toBe('<html><body data-cameras="[&#34;0&#34;]" data-camera="0">\n<p>x</p></body></html>');
    expect(pageWithCameras(html, ["a'<b>&"], null)).toContain('data-cameras="[&#34;a&#39;&#60;b&#62;&#38;&#34;]"');
    expect(() => pageWithCameras("<html></html>", ["0"], null)).toThrow("the page has no <body> to carry its cameras");
  });

  test("a reader is offered only its own camera's frames", () => {
    const rs = new MjpegReaders({ maxReaders: 4, stallMs: 5000 });
    rs.add({ id: "a", address: "127.0.0.1", port: 1, name: "" }, 0);
    rs.add({ id: "b", address: "127.0.0.1", port: 2, name: "", camera: 1 }, 0);
    const frame = (seq: number): Frame => ({ seq, capturedAt: 0, width: 2, height: 2, jpeg: new Uint8Array(10) });
    expect(rs.take("a", 0, 0)).toBeNull();
    expect(rs.take("b", 0, 0)).toBeNull();
    expect(rs.push(frame(1), 1, 0).wake).toEqual(["b"]);
    expect(rs.push(frame(2), 0, 0).wake).toEqual(["a"]);
    expect(rs.take("a", 1, 0)?.seq).toBe(2);
    expect(rs.take("b", 1, 0)?.seq).toBe(1);
    expect(rs.get("b")).toMatchObject({ camera: 1, framesSent: 1, framesSkipped: 0 });
  });
});

describe("one camera", () => {
  test("?camera=0 and no ?camera= are the same camera; any other is 404 naming the one there is", async () => {
    const one = fakeCamerasState([{ name: "0", width: 320, height: 240 }], FPS);
    await using view = await HttpView.start({ port: 0, bind: "127.0.0.1", log: memoryLogger("http"), state: one.state });
    view.push({ seq: 7, capturedAt: nowMicros(), width: 320, height: 240, jpeg: jpegs[0]![7]! });
    const base = `http://127.0.0.1:${view.port}`;
    for (const query of ["", "?camera=0"]) expect((await fetch(`${base}/snapshot.jpg${query}`)).headers.get("x-frame-number")).toBe("7");
    const res = await fetch(`${base}/stream.mjpg?camera=1`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('no camera "1" on this server; it has one camera: 0\n');
    // The page of one camera carries no camera of its own to pick: it looks as it always did.
    expect(await (await fetch(`${base}/`)).text()).toContain('<body data-cameras="[&#34;0&#34;]">');
  });
});

describe("two cameras", () => {
  test("/stream.mjpg?camera=1 and ?camera=desk give camera 1's pictures; without ?camera= camera 0's", async () => {
    await using v = await startCameras();
    for (const [query, camera] of [["?camera=1", 1], ["?camera=desk", 1], ["", 0], ["?camera=board", 0]] as const) {
      const parts = await takeParts(`${v.base}/stream.mjpg${query}`, 4, 15_000);
      for (const p of parts) {
        expect(jpegSize(p.jpeg)).toEqual([CAMERAS[camera]!.width, CAMERAS[camera]!.height]);
        expect(p.jpeg).toEqual(jpegs[camera]![p.frame % 10]!);
      }
    }
    // The server's admission hook is told which camera each reader watches.
    expect(v.admitted.map((r) => r.camera)).toEqual([1, 1, 0, 0]);
    // With several cameras the join line says which one.
    expect(v.log.lines.some((l) => / INFO \[http\] client joined client=127\.0\.0\.1:\d+ kind=browser session=http-1 name=\S+ camera=desk readers=1$/.test(l))).toBe(true);
  }, 30_000);

  test("/snapshot.jpg?camera=N is that camera's newest frame; a failed camera's is 503, not an old picture", async () => {
    await using v = await startCameras();
    await until(() => v.pushed() >= 3, 10_000, "a few frames of each camera");
    for (const [query, camera] of [["?camera=0", 0], ["", 0], ["?camera=1", 1], ["?camera=desk", 1]] as const) {
      const res = await fetch(`${v.base}/snapshot.jpg${query}`);
      expect(res.status).toBe(200);
      const body: Uint8Array = new Uint8Array(await res.arrayBuffer());
      expect(jpegSize(body)).toEqual([CAMERAS[camera]!.width, CAMERAS[camera]!.height]);
      expect(body).toEqual(jpegs[camera]![Number(res.headers.get("x-frame-number")) % 10]!);
    }
    v.server.setAvailable(1, false);
    await until(async () => (await fetch(`${v.base}/snapshot.jpg?camera=desk`)).status === 503, 10_000, "desk's snapshot to say it is unavailable");
    const down = await fetch(`${v.base}/snapshot.jpg?camera=1`);
    expect(await down.text()).toBe("camera unavailable\n");
    expect(down.headers.get("retry-after")).toBe("1");
    // The other camera goes on.
    expect((await fetch(`${v.base}/snapshot.jpg?camera=0`)).status).toBe(200);
  }, 30_000);

  test("an unknown camera is 404 with the list of cameras, on the page, the stream and the snapshot", async () => {
    await using v = await startCameras();
    for (const path of ["/", "/stream.mjpg", "/snapshot.jpg"]) {
      const res = await fetch(`${v.base}${path}?camera=2`);
      expect(res.status).toBe(404);
      expect(await res.text()).toBe(NO_SUCH_2);
      const byName = await fetch(`${v.base}${path}?camera=hall`);
      expect(byName.status).toBe(404);
      expect(await byName.text()).toBe('no camera "hall" on this server; it has 2 cameras: 0=board, 1=desk\n');
    }
    // Nobody was admitted for a camera that is not there.
    expect(v.admitted).toEqual([]);
    // The page itself names the cameras and the one asked for.
    expect(await (await fetch(`${v.base}/`)).text()).toContain('<body data-cameras="[&#34;board&#34;,&#34;desk&#34;]">');
    expect(await (await fetch(`${v.base}/?camera=desk`)).text()).toContain('<body data-cameras="[&#34;board&#34;,&#34;desk&#34;]" data-camera="1">');
  });

  test("/state lists both cameras with their size, rate, availability and viewers; source is camera 0 as before", async () => {
    await using v = await startCameras();
    const ctl = new AbortController();
    const readers: Response[] = [];
    try {
      for (const camera of ["desk", "desk", "board"]) readers.push(await fetch(`${v.base}/stream.mjpg?camera=${camera}`, { signal: ctl.signal }));
      expect(readers.map((r) => r.status)).toEqual([200, 200, 200]);
      v.server.setAvailable(1, false);
      await until(async () => (await v.state()).sources.every((c) => c.history.t.length >= 2 && c.measuredFps > 0), 15_000, "two rate samples of each camera");
      const s = await v.state();
      expect(s.sources.map(({ name, description, width, height, fps, available, viewers }) => ({ name, description, width, height, fps, available, viewers }))).toEqual([
        // Camera 0: the fake server's UDP viewer and one browser.
        { name: "board", description: "test:board", width: 320, height: 240, fps: FPS, available: true, viewers: 2 },
        { name: "desk", description: "test:desk", width: 160, height: 120, fps: FPS, available: false, viewers: 2 },
      ]);
      for (const c of s.sources) {
        expect(c.bitsPerSecond).toBeGreaterThan(0);
        expect(c.lastFrame!.seq).toBeGreaterThan(0);
        expect(c.framesEncoded).toBeGreaterThan(0);
      }
      // The desk pictures are smaller: their bit rate tells them apart from the board's.
      expect(s.sources[1]!.bitsPerSecond).toBeLessThan(s.sources[0]!.bitsPerSecond);
      expect(s.source).toEqual({
        description: "test:board", width: 320, height: 240, fps: FPS,
        measuredFps: s.sources[0]!.measuredFps, bitsPerSecond: s.sources[0]!.bitsPerSecond, lastFrame: s.sources[0]!.lastFrame,
      });
      expect(s.history).toEqual(s.sources[0]!.history);
      expect(s.counters.framesEncoded).toBe(s.sources[0]!.framesEncoded + s.sources[1]!.framesEncoded);
      expect(s.viewers.filter((r) => r.kind === "browser").map((r) => r.camera).sort()).toEqual(["board", "desk", "desk"]);
      expect(s.viewers.find((r) => r.kind === "udp")!.camera).toBe("board");
      // Held until here: a response nobody holds is collected, and its reader leaves.
      for (const r of readers) await r.body!.cancel();
    } finally {
      ctl.abort();
    }
  }, 30_000);

  test("/metrics labels each camera's series and each viewer's with the camera's name, and promtool accepts it", async () => {
    await using v = await startCameras();
    const ctl = new AbortController();
    try {
      const reader = await fetch(`${v.base}/stream.mjpg?camera=desk`, { signal: ctl.signal });
      expect(reader.status).toBe(200);
      v.server.setAvailable(1, false);
      await until(async () => (await v.state()).viewers.some((r) => r.kind === "browser" && r.fps !== null && r.fps > 0), 15_000, "the desk reader's rate");
      const body = await (await fetch(`${v.base}/metrics`)).text();
      for (const camera of ["board", "desk"]) {
        expect(body).toMatch(new RegExp(`^lancam_stream_fps\\{camera="${camera}"\\} \\d`, "m"));
        expect(body).toMatch(new RegExp(`^lancam_frames_encoded_total\\{camera="${camera}"\\} [1-9]`, "m"));
      }
      expect(body).toContain('lancam_camera_available{camera="board"} 1');
      expect(body).toContain('lancam_camera_available{camera="desk"} 0');
      expect(body).toContain('lancam_viewers{kind="udp",camera="board"} 1');
      expect(body).toContain('lancam_viewers{kind="udp",camera="desk"} 0');
      expect(body).toContain('lancam_viewers{kind="browser",camera="desk"} 1');
      expect(body).toContain('lancam_viewer_latency_seconds{viewer="0",kind="udp",camera="board"} 0.0125');
      expect(body).toMatch(/^lancam_viewer_fps\{viewer="1",kind="browser",camera="desk"\} \d/m);
      if (promtoolSkip === null) expect(await promtoolCheck(body)).toEqual({ code: 0, output: "" });
      // Held until here: a response nobody holds is collected, and its reader leaves.
      await reader.body!.cancel();
    } finally {
      ctl.abort();
    }
  }, 30_000);

  test("a frame for a camera the view does not serve is ignored, counted and logged once", async () => {
    await using v = await startCameras();
    const frame: Frame = { seq: 1, capturedAt: nowMicros(), width: 2, height: 2, jpeg: jpegs[0]![0]! };
    for (const camera of [2, 8, -1, 0.5]) v.view.push(frame, camera);
    const s = await v.state();
    expect(s.counters.framesIgnored).toBe(4);
    expect(v.log.lines.filter((l) => / ERROR \[http\] frame for no camera ignored camera=2 cameras=2$/.test(l))).toHaveLength(1);
  });

  test("the cameras are fixed at start: 1 to 8 of them, and a state that lists others is a 500, not a guess", async () => {
    const log = memoryLogger("http");
    const cams = (n: number): CameraSourceInfo[] => Array.from({ length: n }, (_, i) => ({ name: String(i), description: "test", width: 2, height: 2, fps: 1, available: true, framesCaptured: 0 }));
    const state = (n: number) => () => ({ sources: cams(n), viewers: [], counters: { framesCaptured: 0, framesSent: 0, bytesSent: null, drops: {} } });
    for (const n of [0, 9]) {
      await expect(HttpView.start({ port: 0, bind: "127.0.0.1", log, state: state(n) })).rejects.toThrow(`the browser view serves 1 to 8 cameras, the server's state lists ${n}`);
    }
    let n = 8;
    await using view = await HttpView.start({ port: 0, bind: "127.0.0.1", log, state: () => state(n)() });
    expect(((await (await fetch(`http://127.0.0.1:${view.port}/state`)).json()) as ViewState).sources).toHaveLength(8);
    n = 7;
    const res = await fetch(`http://127.0.0.1:${view.port}/state`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe("internal error: the server's cameras changed from 0, 1, 2, 3, 4, 5, 6, 7 to 0, 1, 2, 3, 4, 5, 6\n");
  });
});

describe("the server's side", () => {
  /** A server with one lancam viewer of camera 1 and one browser, that admits every other viewer and remembers how. */
  function fakeServer() {
    const admitted: unknown[][] = [];
    const summary = (over: Partial<ViewerSummary>): ViewerSummary => ({
      id: 0x0badf00d, kind: "udp", address: "10.77.0.5", udpPort: 8888, name: "lab-3", joinedAt: 1, camera: 0, framesSent: 10,
      framesReceived: 9, framesLost: 1, latencyP50Ms: 5, fps: 15, ...over,
    });
    const server: ViewedServer = {
      stats: newServerStats(),
      viewers: () => [summary({ camera: 1 }), summary({ id: 7, kind: "classic", udpPort: 9000 }), summary({ id: 8, kind: "browser", udpPort: null })],
      admitOther: (...args) => (admitted.push(args), { id: admitted.length }),
      updateOther: () => true,
      leaveOther: () => {},
    };
    return { server, admitted };
  }

  test("the state provider lists the cameras as they are now, each viewer's camera by name, and frames captured over all", () => {
    const { server } = fakeServer();
    const cameras: CameraSourceInfo[] = [
      { name: "board", description: "camera:0", width: 1280, height: 720, fps: 30, available: true, framesCaptured: 100 },
      { name: "desk", description: "camera:1", width: 640, height: 480, fps: 15, available: true, framesCaptured: 40 },
    ];
    const state = serverState(server, () => cameras);
    expect(state().sources).toEqual(cameras);
    expect(state().counters.framesCaptured).toBe(140);
    // The view lists its own browsers; a viewer without a camera number watches camera 0.
    expect(state().viewers.map((r) => [r.kind, r.camera])).toEqual([["udp", "desk"], ["classic", "board"]]);
    // Asked each time: an outage and new frames show at the next call.
    cameras[1] = { ...cameras[1]!, available: false, framesCaptured: 41 };
    expect(state().sources[1]).toMatchObject({ available: false, framesCaptured: 41 });
    expect(state().counters.framesCaptured).toBe(141);
  });

  test("a viewer's camera number the list does not have shows as the number", () => {
    const row = viewerRow({ id: 1, kind: "udp", address: "a", udpPort: 1, name: "", joinedAt: 0, framesSent: 0, framesReceived: null, framesLost: null, latencyP50Ms: null, fps: null, camera: 5 }, ["board"]);
    expect(row?.camera).toBe("5");
  });

  test("a browser takes its place under --max-clients for the camera it watches", () => {
    const { server, admitted } = fakeServer();
    const hook = browserAdmission(server);
    expect(hook.admit({ id: "http-1", kind: "browser", address: "10.0.0.9", port: 5000, name: "Chrome 131", camera: 1 })).toEqual({ ok: true });
    expect(admitted).toEqual([["browser", "10.0.0.9", "Chrome 131", 1]]);
  });
});
