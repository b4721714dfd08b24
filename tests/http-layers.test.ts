// Browser readers that fall behind get smaller pictures (the --layers ladder), made once
// per frame for all readers on a size and only while one is on it.
import { beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { browserLayers } from "../lib/app/browser-view.ts";
import type { PictureScaler } from "../lib/http/camera-layers.ts";
import { HttpView, type HttpViewOptions } from "../lib/http/http-view.ts";
import { StartError } from "../lib/send/start-error.ts";
import type { ViewState } from "../lib/http/view-state.ts";
import { nowMicros, type Frame } from "../lib/wire/frame.ts";
import { fakeServerState } from "./helpers/fake-view-state.ts";
import { jpegSize, padJpeg } from "./helpers/jpeg-bytes.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { MjpegPartParser, streamParts, type MjpegPart } from "./helpers/mjpeg-parts.ts";
import { until } from "./helpers/process.ts";

const W = 640;
const H = 480;
const FPS = 30;
let frames: Uint8Array[] = [];
/** A small picture, as a scaler's copy. */
let small: Uint8Array;

beforeAll(async () => {
  frames = await jpegFrames(30, W, H);
  small = (await jpegFrames(1, 160, 120))[0]!;
});

/** A view fed FPS frames a second of `jpegs`, with the auto ladder (640x480, 320x240, 160x120); stopped on dispose. */
async function startView(jpegs: Uint8Array[], opts: Partial<HttpViewOptions> = {}) {
  const log = memoryLogger("http");
  const view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log, state: fakeServerState({ width: W, height: H, fps: FPS, latencyP50Ms: 1 }),
    // A shorter hold than a server's, so the test sees a reader come back within seconds.
    layers: { ...browserLayers({ kind: "auto" }, [{ width: W, height: H }]), ladder: { holdMs: 2000 } },
    ...opts,
  });
  let pushed = 0;
  const timer = setInterval(() => {
    view.push({ seq: pushed, capturedAt: nowMicros(), width: W, height: H, jpeg: jpegs[pushed % jpegs.length]! });
    pushed++;
  }, 1000 / FPS);
  const base = `http://127.0.0.1:${view.port}`;
  return {
    view, log, base,
    state: async () => (await (await fetch(`${base}/state`)).json()) as ViewState,
    metrics: async () => await (await fetch(`${base}/metrics`)).text(),
    async [Symbol.asyncDispose]() {
      clearInterval(timer);
      await view.stop();
    },
  };
}

/** A part as a reader got it: its picture's width and how late it came (capture to arrival, ms). */
interface Got extends MjpegPart {
  width: number;
  lagMs: number;
}

/** A raw HTTP/1.0 client (the body comes as sent) that reads at most `bytesPerSec`, or as fast as it can. */
function throttledReader(port: number, name: string) {
  const got: Got[] = [];
  const parser = new MjpegPartParser();
  let bytesPerSec = Infinity;
  let failure: string | null = null;
  const sock = net.connect(port, "127.0.0.1", () => sock.write(`GET /stream.mjpg?name=${name} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`));
  sock.on("data", (d: Buffer) => {
    const parts = parser.push(d);
    if (typeof parts === "string") failure = parts;
    else for (const p of parts) got.push({ ...p, width: jpegSize(p.jpeg)[0], lagMs: (nowMicros() - p.capturedAt) / 1000 });
    if (bytesPerSec === Infinity) return;
    sock.pause();
    setTimeout(() => sock.resume(), (1000 * d.length) / bytesPerSec);
  });
  return {
    got,
    failure: () => failure,
    read(rate: number) {
      bytesPerSec = rate;
      if (rate === Infinity) sock.resume();
    },
    close: () => sock.destroy(),
  };
}

/** `count` parts in a row that came in time (under `lagMs`) on a picture narrower than the source, with at most a third of the frames between them skipped. */
function liveSmallRun(got: Got[], count: number, lagMs: number): boolean {
  let run = 0;
  for (let i = 0; i < got.length; i++) {
    const p = got[i]!;
    run = p.width < W && p.lagMs < lagMs ? run + 1 : 0;
    if (run >= count && p.frame - got[i - count + 1]!.frame <= count * 1.5) return true;
  }
  return false;
}

test("a reader that falls behind gets smaller pictures and watches live again; one that keeps up keeps the full picture; the slow one comes back to it once it reads fast", async () => {
  // Camera-sized frames, 6 MB/s, against a reader taking 1.5 MB/s: the half size (a few KB a frame) it carries easily.
  const SLOW_BYTES_PER_SEC = 1.5e6;
  await using v = await startView(frames.map((f) => padJpeg(f, 200_000)));
  const fast = streamParts(`${v.base}/stream.mjpg?name=fast`);
  await until(() => v.view.browserViewers().length === 1, 10_000, "the fast reader's join");
  const slow = throttledReader(v.view.port, "slow");
  slow.read(SLOW_BYTES_PER_SEC);
  try {
    const rowOf = (s: ViewState, name: string) => s.viewers.find((x) => x.kind === "browser" && x.name === name);
    // /state and /metrics say so while it is on a smaller picture (asked until both are read within one stay).
    const fastPictures = new Set<string>();
    await until(async () => {
      const s = await v.state();
      const f = rowOf(s, "fast")?.picture;
      if (f) fastPictures.add(`${f.layer} ${f.width}x${f.height}`);
      const p = rowOf(s, "slow")?.picture;
      if (!p || p.layer === 0) return false;
      expect(p.width).toBeLessThan(W);
      const metrics = await v.metrics();
      const widths = [...metrics.matchAll(/^lancam_viewer_picture_width_pixels\{viewer="\d+",kind="browser",camera="0"\} (\d+)$/gm)].map((m) => Number(m[1]));
      const layers = [...metrics.matchAll(/^lancam_viewer_layer\{viewer="\d+",kind="browser",camera="0"\} (\d+)$/gm)].map((m) => Number(m[1]));
      return widths.sort((a, b) => a - b).join() === `${p.width},${W}` && layers.sort().join() === `0,${p.layer}`;
    }, 30_000, () => `the slow reader on a smaller picture in /state and /metrics (it got ${slow.got.length} parts, the last ${slow.got.at(-1)?.width} wide)`);
    expect(v.log.lines.some((l) => / INFO \[http\] viewer layer client=127\.0\.0\.1:\d+ kind=browser session=http-2 layer=1 picture=320x240 why="fell behind"$/.test(l))).toBe(true);

    // Once what its connection had buffered has drained, it watches live at about the stream's rate, on the smaller picture.
    await until(() => liveSmallRun(slow.got, 20, 1000), 30_000, () => `the slow reader live on a smaller picture (last part: ${slow.got.at(-1)?.width} wide, ${Math.round(slow.got.at(-1)?.lagMs ?? 0)} ms late)`);
    expect(slow.failure()).toBeNull();
    // Never further behind than its connection's buffers hold at its pace (newest frame wins), whatever it tried.
    expect(Math.max(...slow.got.map((p) => p.lagMs))).toBeLessThan(10_000);

    // The fast reader was never touched: every part the source's size, none late, nothing logged for it.
    expect(fast.parts.length).toBeGreaterThan(FPS);
    expect(fast.parts.every((p) => jpegSize(p.jpeg)[0] === W)).toBe(true);
    expect([...fastPictures]).toEqual([`0 ${W}x${H}`]);
    expect(v.log.lines.some((l) => /viewer layer .*session=http-1 /.test(l))).toBe(false);

    // Reading fast again, the slow one is moved back up, one size at a time, to the source's.
    slow.read(Infinity);
    const before = slow.got.length;
    await until(async () => {
      const back = slow.got.slice(before).some((p) => p.width === W && p.lagMs < 1000);
      return back && rowOf(await v.state(), "slow")?.picture?.layer === 0;
    }, 40_000, () => `the slow reader back on the full picture (last part ${slow.got.at(-1)?.width} wide)`);
    expect(v.log.lines.some((l) => / INFO \[http\] viewer layer client=127\.0\.0\.1:\d+ kind=browser session=http-2 layer=0 picture=640x480 why="kept up"$/.test(l))).toBe(true);
  } finally {
    slow.close();
    fast.stop();
  }
  // Its leave line says the picture it had at the end.
  await until(() => v.log.lines.some((l) => / client left .*session=http-2 /.test(l)), 10_000, "the slow reader's leave");
  expect(v.log.lines.find((l) => / client left .*session=http-2 /.test(l))).toContain(" picture=640x480 ");
}, 120_000);

/** A scaler that records what it is asked for and answers with the same small picture for every layer. */
function countingScaler() {
  const asked: { seq: number; layers: number[] }[] = [];
  let closed = 0;
  const make = (_camera: number, deliver: (frames: Map<number, Frame>) => void): PictureScaler => ({
    push(frame, layers) {
      asked.push({ seq: frame.seq, layers: [...layers.keys()] });
      const copies = new Map([...layers].map(([i, s]) => [i, { ...frame, width: s.width, height: s.height, jpeg: small }] as const));
      queueMicrotask(() => deliver(copies));
    },
    close: () => void closed++,
  });
  return { make, asked, closed: () => closed };
}

test("nothing is scaled while every reader keeps up; one copy per frame for all readers on a size", async () => {
  const scaler = countingScaler();
  // 3 MB/s of full pictures; the copies, 160x120, are a few KB.
  await using v = await startView(frames.map((f) => padJpeg(f, 100_000)), { layers: { sizes: [[{ width: W, height: H }, { width: 320, height: 240 }]], scaler: scaler.make, ladder: { holdMs: 60_000 } } });
  const readers = [streamParts(`${v.base}/stream.mjpg?name=a`), streamParts(`${v.base}/stream.mjpg?name=b`)];
  try {
    await until(() => readers.every((r) => r.parts.length >= 2 * FPS), 20_000, "two seconds of frames for both readers");
    expect(scaler.asked).toEqual([]);
    // Two readers that cannot take the full pictures fall behind and share the half size's copies.
    const slow = [throttledReader(v.view.port, "c"), throttledReader(v.view.port, "d")];
    for (const r of slow) r.read(300_000);
    try {
      await until(async () => (await v.state()).viewers.filter((x) => x.picture?.layer === 1).length === 2, 30_000, "both stopped readers on the half size");
      const n = scaler.asked.length;
      await until(() => scaler.asked.length >= n + FPS, 10_000, "a second of frames scaled");
      // One copy of each frame, for both.
      const seqs = scaler.asked.map((a) => a.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(scaler.asked.every((a) => a.layers.join() === "1")).toBe(true);
    } finally {
      for (const r of slow) r.close();
    }
    // They left: nobody is on the half size, nothing more is scaled.
    await until(() => v.view.browserViewers().length === 2, 10_000, "the stopped readers' leave");
    const n = scaler.asked.length;
    const shown = readers[0]!.parts.length;
    await until(() => readers[0]!.parts.length >= shown + FPS, 10_000, "another second of frames");
    expect(scaler.asked.length).toBeLessThanOrEqual(n + 1);
  } finally {
    for (const r of readers) r.stop();
  }
  await v.view.stop();
  expect(scaler.closed()).toBe(1);
}, 90_000);

test("when the smaller pictures cannot be made, the readers on them get the source's again rather than a frozen picture, and it is logged", async () => {
  const scale = async () => ({ jpegs: null, reason: "not a JPEG this decoder reads" });
  await using v = await startView(frames.map((f) => padJpeg(f, 200_000)), {
    layers: { ...browserLayers({ kind: "auto" }, [{ width: W, height: H }], scale), ladder: { holdMs: 2000 } },
  });
  const slow = throttledReader(v.view.port, "slow");
  slow.read(1.5e6);
  try {
    await until(() => v.log.lines.some((l) => / viewer layer .*layer=1 picture=320x240 why="fell behind"$/.test(l)), 30_000, "the slow reader's move down");
    await until(() => v.log.lines.some((l) => / ERROR \[http\] smaller pictures for browsers cannot be made; .* camera=0 why="not a JPEG this decoder reads" seconds=3$/.test(l)), 15_000, "the scaler given up");
    expect(v.log.lines.some((l) => / viewer layer .*session=http-1 layer=0 picture=640x480 why="no smaller copies"$/.test(l))).toBe(true);
    // From now on the source's size only: shown as for any viewer sent what everyone gets, and it gets frames.
    expect(v.view.browserViewers()[0]!.picture).toBeNull();
    const n = slow.got.length;
    slow.read(Infinity);
    await until(() => slow.got.slice(n).some((p) => p.width === W && p.lagMs < 1000), 30_000, "live full pictures again");
  } finally {
    slow.close();
  }
}, 90_000);

test("the server's sizes for browsers: each camera's --layers ladder; sizes a camera cannot give stop the start", () => {
  const cameras = [{ width: 1280, height: 720 }, { width: 320, height: 240, quality: 70 }];
  expect(browserLayers({ kind: "auto" }, cameras).sizes).toEqual([
    [{ width: 1280, height: 720 }, { width: 640, height: 360 }, { width: 320, height: 180 }],
    [{ width: 320, height: 240 }, { width: 160, height: 120 }],
  ]);
  expect(browserLayers({ kind: "off" }, cameras).sizes).toEqual([[{ width: 1280, height: 720 }], [{ width: 320, height: 240 }]]);
  expect(() => browserLayers({ kind: "sizes", sizes: [{ width: 640, height: 360 }] }, cameras)).toThrow(StartError);
  expect(() => browserLayers({ kind: "sizes", sizes: [{ width: 640, height: 360 }] }, cameras)).toThrow("--layers size 640x360 is larger than the source's 320x240");
});
