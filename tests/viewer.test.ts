// The viewer against a hand-made server on 127.0.0.1: what it counts as received,
// incomplete, missing and rejected must match exactly what was sent.
import { expect, test } from "bun:test";
import { encodeControl, RefuseReason, WELCOME_PATH_REPORTS } from "../lib/wire/control.ts";
import { cv } from "../lib/native/cv.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { Viewer } from "../lib/receive/viewer.ts";
import { fakeServer, welcome } from "./helpers/fake-server.ts";
import { withSize } from "./helpers/jpeg-bytes.ts";
import { until } from "./helpers/process.ts";

const W = 64;
const H = 48;
const SESSION = 7;

function jpeg(n: number): Uint8Array {
  const bgr = new Uint8Array(W * H * 3).map((_, i) => (i * 7 + n * 31) & 0xff);
  return cv().encodeJpeg(bgr, W, H, 90);
}

/**
 * Runs a viewer (stopping after `maxFrames`) against a server that welcomes it and
 * then sends `frames` as [frame number, JPEG bytes, fragment index to leave out].
 */
async function receive(mtu: number, maxFrames: number, frames: [number, Uint8Array, number | null][], setupMs = 0, sinksFirst = false) {
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let viewerUdp = 0;
  using server = fakeServer((hello) => {
    viewerUdp = hello.udpPort;
    return encodeControl(welcome({ sessionId: SESSION, width: W, height: H, fragmentSize: mtu - 32, udpSourcePort: sender.port }));
  });
  const seen: number[] = [];
  let recorded = 0;
  let welcomed = false;
  let setupDone = false;
  const viewer = new Viewer({
    host: "127.0.0.1", port: server.port, udpPort: 0, log: silentLogger, maxFrames,
    sinks: [(f) => {
      // With sinksFirst the frames must arrive before the slow onWelcome has finished.
      if (sinksFirst && setupDone) throw new Error("the sinks waited for onWelcome");
      seen.push(f.seq);
    }, () => recorded++],
    recordedFrames: () => recorded,
    onWelcome: async () => {
      welcomed = true;
      // Like the recorder opening, which takes a while.
      await Bun.sleep(setupMs);
      setupDone = true;
    },
  });
  try {
    const running = viewer.run();
    // The viewer takes datagrams from the welcome on.
    await until(() => viewerUdp !== 0 && welcomed, 10_000, "hello and welcome");
    const frag = new Fragmenter(mtu);
    for (const [n, bytes, drop] of frames) {
      // --frames reached: the viewer has said goodbye and closed its port.
      if (seen.length >= maxFrames) break;
      const grams = frag.fragment({ seq: n, capturedAt: Date.now() * 1000, jpeg: bytes }, SESSION);
      grams.forEach((g, i) => {
        if (i !== drop) sender.send(g, viewerUdp, "127.0.0.1");
      });
      await Bun.sleep(20);
    }
    await running;
    await until(() => server.heard.some((m) => m.type === "bye"), 10_000, "the goodbye at the server");
    return { seen, stats: viewer.stats.summary({}), bye: server.heard.findLast((m) => m.type === "bye") };
  } finally {
    viewer.stop();
    sender.close();
  }
}

test("a frame with a lost fragment counts once as incomplete, a frame never seen once as missing", async () => {
  expect(new Fragmenter(576).fragmentCount(jpeg(2).length)).toBeGreaterThan(1);
  const { seen, stats } = await receive(576, 4, [[0, jpeg(0), null], [1, jpeg(1), null], [2, jpeg(2), 1], [3, jpeg(3), null], [5, jpeg(5), null]]);
  expect(seen).toEqual([0, 1, 3, 5]);
  expect(stats.framesReceived).toBe(4);
  expect(stats.framesIncomplete).toBe(1);
  expect(stats.framesMissing).toBe(1);
  expect(stats.framesDropped).toBe(2);
  expect(stats.framesOutOfOrder).toBe(0);
}, 15_000);

test("the goodbye carries the final totals, equal to the stats file once the last frame is counted", async () => {
  // Frame 1 loses a fragment (incomplete), frame 3 never comes (missing); the 4th frame delivered ends the viewer.
  const frames: [number, Uint8Array, number | null][] = [[0, jpeg(0), null], [1, jpeg(1), 0], [2, jpeg(2), null], [4, jpeg(4), null], [5, jpeg(5), null]];
  const { seen, stats, bye } = await receive(576, 4, frames);
  expect(seen).toEqual([0, 2, 4, 5]);
  expect(bye).toEqual({
    type: "bye", reason: 1,
    totals: { framesReceived: stats.framesReceived, framesLost: stats.framesMissing, framesIncomplete: stats.framesIncomplete, framesRecorded: 4 },
  });
  expect(bye?.type === "bye" && bye.totals).toEqual({ framesReceived: 4, framesLost: 1, framesIncomplete: 1, framesRecorded: 4 });
}, 15_000);

test("a frame that is not a JPEG of the announced size never reaches the window or the recorder", async () => {
  const small = cv().encodeJpeg(new Uint8Array(32 * 24 * 3).fill(90), 32, 24, 90);
  const bomb = withSize(jpeg(1), 30_000, 30_000);
  const { seen, stats } = await receive(1400, 1, [[0, small, null], [1, bomb, null], [2, new Uint8Array(500).fill(1), null], [3, jpeg(3), null]]);
  expect(seen).toEqual([3]);
  expect(stats.framesRejected).toBe(3);
  expect(stats.framesReceived).toBe(1);
}, 15_000);

test("frames reach the sinks while a slow onWelcome (the recorder opening) is still running, and --frames is exact", async () => {
  const frames: [number, Uint8Array, null][] = [0, 1, 2, 3, 4, 5, 6].map((n) => [n, jpeg(n), null]);
  const { seen, stats } = await receive(1400, 5, frames, 300, true);
  expect(seen).toEqual([0, 1, 2, 3, 4]);
  expect(stats.framesReceived).toBe(5);
}, 15_000);

test("stopping while the first connection is still being made ends the viewer at once, without an error", async () => {
  using server = fakeServer(() => null); // accepts, never answers
  const log = memoryLogger();
  const viewer = new Viewer({ host: "127.0.0.1", port: server.port, udpPort: 0, log, sinks: [] });
  const running = viewer.run();
  await until(() => server.heard.length > 0, 10_000, "hello sent");
  const t0 = performance.now();
  viewer.stop();
  await running;
  // At once: not at the 5 s connect timeout (how much sooner is up to the machine's load).
  expect(performance.now() - t0).toBeLessThan(2500);
  expect(log.lines.some((l) => l.includes("WARN"))).toBe(false);
});

test("a reconnecting viewer retries after a 'server full' refusal instead of giving up", async () => {
  let hellos = 0;
  using server = fakeServer((_hello, socket) => {
    hellos++;
    if (hellos === 1) {
      setTimeout(() => socket.end(), 50); // the server goes away after the first welcome
      return encodeControl(welcome());
    }
    if (hellos === 2) return encodeControl({ type: "refuse", reason: RefuseReason.ServerFull, text: "server full: 1 viewers already connected" });
    return encodeControl(welcome());
  });
  const log = memoryLogger();
  const links: string[] = [];
  const viewer = new Viewer({ host: "127.0.0.1", port: server.port, udpPort: 0, log, sinks: [], onLink: (state) => links.push(state) });
  const running = viewer.run();
  await until(() => log.lines.some((l) => l.includes("INFO [test] reconnected")), 12_000, "reconnected after the refusal");
  expect(log.lines.some((l) => l.includes("reconnect failed") && l.includes("server full"))).toBe(true);
  viewer.stop();
  await running;
  expect(viewer.stats.reconnects).toBe(1);
  expect(hellos).toBe(3);
  // What the window's status is told: the server went away, the retry was refused, then back.
  expect(links).toEqual(["connected", "reconnecting", "reconnecting", "connected"]);
}, 15_000);

test("a viewer evicted by a flood on its first attempt asks again and gets in, saying so once per retry", async () => {
  let hellos = 0;
  using server = fakeServer(() => {
    hellos++;
    // As the server does when connections that never say hello fill its table.
    return hellos === 1 ? encodeControl({ type: "refuse", reason: RefuseReason.Other, text: "too many connections without hello" }) : encodeControl(welcome());
  });
  const log = memoryLogger();
  const links: string[] = [];
  const viewer = new Viewer({ host: "127.0.0.1", port: server.port, udpPort: 0, log, sinks: [], connectTimeoutMs: 10_000, onLink: (state) => links.push(state) });
  const running = viewer.run();
  await until(() => log.lines.some((l) => l.includes("INFO [test] connected")), 8000, "connected after the eviction");
  // Waiting to get in at the start is not reconnecting: there is no picture yet to call old.
  expect(links).toEqual(["connected"]);
  expect(log.lines.filter((l) => l.includes("WARN [test] server busy; trying again")))
    .toEqual([expect.stringContaining(`error="server 127.0.0.1:${server.port} refused the session: too many connections without hello" retryInSec=`)]);
  viewer.stop();
  await running;
  expect(viewer.stats.reconnects).toBe(0);
  expect(hellos).toBe(2);
}, 15_000);
test("a viewer reports what its path carried to a server that paces to it, and only to such a server", async () => {
  for (const flags of [WELCOME_PATH_REPORTS, 0]) {
    const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    let viewerUdp = 0;
    using server = fakeServer((hello) => {
      viewerUdp = hello.udpPort;
      return encodeControl(welcome({ sessionId: SESSION, width: W, height: H, fragmentSize: 576 - 32, udpSourcePort: sender.port, heartbeatMs: 100, flags }));
    });
    await using viewer = new Viewer({ host: "127.0.0.1", port: server.port, udpPort: 0, log: silentLogger, sinks: [] });
    const running = viewer.run();
    try {
      await until(() => viewerUdp !== 0 && server.heard.some((m) => m.type === "report"), 5000, "welcome and a first report");
      const frag = new Fragmenter(576);
      let bytes = 0;
      let count = 0;
      for (const n of [0, 1, 2]) {
        const grams = frag.fragment({ seq: n, capturedAt: Date.now() * 1000, jpeg: jpeg(n) }, SESSION);
        grams.forEach((g, i) => {
          // Frame 1 loses its second datagram.
          if (n === 1 && i === 1) return;
          sender.send(g, viewerUdp, "127.0.0.1");
          bytes += g.length;
          count++;
        });
      }
      if (flags) {
        await until(() => server.heard.some((m) => m.type === "report" && m.path?.datagramsReceived === count), 5000, "a report with every datagram");
        const last = server.heard.findLast((m) => m.type === "report");
        expect(last?.type === "report" && last.path).toMatchObject({ bytesReceived: bytes, datagramsReceived: count, datagramsLost: 1 });
      } else {
        await until(() => server.heard.filter((m) => m.type === "report").length >= 3, 5000, "three reports");
        expect(server.heard.some((m) => m.type === "report" && m.path !== undefined)).toBe(false);
      }
    } finally {
      viewer.stop();
      await running.catch(() => {});
      sender.close();
    }
  }
}, 20_000);
