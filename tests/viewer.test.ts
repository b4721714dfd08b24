// The viewer against a hand-made server on 127.0.0.1: what it counts as received,
// incomplete and missing must match exactly what was sent.
import { expect, test } from "bun:test";
import { encodeControl } from "../lib/control.ts";
import { cv } from "../lib/cv.ts";
import { Fragmenter } from "../lib/fragmenter.ts";
import { silentLogger } from "../lib/log.ts";
import { MessageReader } from "../lib/message-reader.ts";
import { until } from "./helpers/process.ts";
import { Viewer } from "../lib/viewer.ts";

const W = 64;
const H = 48;

function jpeg(n: number): Uint8Array {
  const bgr = new Uint8Array(W * H * 3).map((_, i) => (i * 7 + n * 31) & 0xff);
  return cv().encodeJpeg(bgr, W, H, 90);
}

test("a frame with a lost fragment counts once as incomplete, a frame never seen once as missing", async () => {
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let viewerUdp = 0;
  const listener = Bun.listen<{ reader: MessageReader }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { reader: new MessageReader() };
      },
      data: (s, chunk) => {
        for (const m of s.data.reader.push(chunk)) {
          if (m.type !== "hello") continue;
          viewerUdp = m.udpPort;
          s.write(encodeControl({
            type: "welcome", sessionId: 7, width: W, height: H, fpsMillihertz: 10_000, fragmentSize: 576 - 32,
            udpSourcePort: sender.port, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
          }));
        }
      },
    },
  });
  const seen: number[] = [];
  let welcomed = false;
  const viewer = new Viewer({
    host: "127.0.0.1", port: listener.port, udpPort: 0, log: silentLogger, maxFrames: 4,
    sinks: [(f) => void seen.push(f.seq)],
    onWelcome: () => {
      welcomed = true;
    },
  });
  try {
    const running = viewer.run();
    // The viewer accepts datagrams once its welcome is handled (right after onWelcome).
    await until(() => viewerUdp !== 0 && welcomed, 5000, "hello and welcome");
    const frag = new Fragmenter(576);
    const plan: [number, number | null][] = [[0, null], [1, null], [2, 1], [3, null], [5, null]]; // [frame, fragment to drop]
    for (const [n, drop] of plan) {
      const grams = frag.fragment({ seq: n, capturedAt: Date.now() * 1000, jpeg: jpeg(n) }, 7);
      expect(grams.length).toBeGreaterThan(1);
      grams.forEach((g, i) => {
        if (i !== drop) sender.send(g, viewerUdp, "127.0.0.1");
      });
      await Bun.sleep(20);
    }
    await running;
    expect(seen).toEqual([0, 1, 3, 5]);
    const s = viewer.stats.summary({});
    expect(s.framesReceived).toBe(4);
    expect(s.framesIncomplete).toBe(1);
    expect(s.framesMissing).toBe(1);
    expect(s.framesDropped).toBe(2);
    expect(s.framesOutOfOrder).toBe(0);
  } finally {
    viewer.stop();
    listener.stop(true);
    sender.close();
  }
}, 15_000);

test("a frame that is not a JPEG of the announced size never reaches the window or the recorder", async () => {
  const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let viewerUdp = 0;
  const listener = Bun.listen<{ reader: MessageReader }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { reader: new MessageReader() };
      },
      data: (s, chunk) => {
        for (const m of s.data.reader.push(chunk)) {
          if (m.type !== "hello") continue;
          viewerUdp = m.udpPort;
          s.write(encodeControl({
            type: "welcome", sessionId: 7, width: W, height: H, fpsMillihertz: 10_000, fragmentSize: 1368,
            udpSourcePort: sender.port, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
          }));
        }
      },
    },
  });
  const seen: number[] = [];
  let welcomed = false;
  const viewer = new Viewer({
    host: "127.0.0.1", port: listener.port, udpPort: 0, log: silentLogger, maxFrames: 1,
    sinks: [(f) => void seen.push(f.seq)],
    onWelcome: () => {
      welcomed = true;
    },
  });
  try {
    const running = viewer.run();
    await until(() => viewerUdp !== 0 && welcomed, 5000, "hello and welcome");
    const small = cv().encodeJpeg(new Uint8Array(32 * 24 * 3).fill(90), 32, 24, 90);
    // A header claiming 30000x30000: the SOF0 height and width follow its length and precision bytes.
    const bomb = jpeg(1).slice();
    const sof = bomb.findIndex((b, i) => b === 0xff && bomb[i + 1] === 0xc0);
    bomb.set([0x75, 0x30, 0x75, 0x30], sof + 5);
    const frag = new Fragmenter(1400);
    for (const [n, bytes] of [[0, small], [1, bomb], [2, new Uint8Array(500).fill(1)], [3, jpeg(3)]] as const) {
      for (const g of frag.fragment({ seq: n, capturedAt: Date.now() * 1000, jpeg: bytes }, 7)) sender.send(g, viewerUdp, "127.0.0.1");
      await Bun.sleep(20);
    }
    await running;
    expect(seen).toEqual([3]);
    const st = viewer.stats.summary({});
    expect(st.framesRejected).toBe(3);
    expect(st.framesReceived).toBe(1);
  } finally {
    viewer.stop();
    listener.stop(true);
    sender.close();
  }
}, 15_000);
