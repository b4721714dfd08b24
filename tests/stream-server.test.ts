// The server's control channel against hand-made clients on 127.0.0.1: refusals,
// malformed input closing one connection only, and datagrams going only to the TCP peer.
import { describe, expect, test } from "bun:test";
import {
  ByeReason, CAP_DECRYPT, CAP_PATH_REPORTS, CAP_RESUME, CAP_TOKEN_AUTH, encodeControl, WELCOME_PATH_REPORTS, PROTOCOL_VERSION, RefuseReason, type ControlMessage, type Hello, type Welcome,
} from "../lib/wire/control.ts";
import { ControlMac } from "../lib/net/control-mac.ts";
import { clientProof, deriveSessionKeys, tokenKey, type SessionKeys, type TokenKey } from "../lib/net/session-keys.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { SIGNATURE_SIZE } from "../lib/net/frame-signature.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { MAX_PENDING_PER_ADDRESS } from "../lib/send/admission.ts";
import { peerOf, StreamServer, type StreamServerOptions } from "../lib/send/stream-server.ts";
import type { FitJpegResult } from "../lib/native/cv.ts";
import { MAX_CLASSIC_DATAGRAM } from "../lib/wire/classic.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { until } from "./helpers/process.ts";

interface RawClient {
  messages: ControlMessage[];
  closed: boolean;
  send: (bytes: Uint8Array) => void;
  end: () => void;
}

async function rawClient(port: number): Promise<RawClient> {
  const reader = new MessageReader();
  const c: RawClient = { messages: [], closed: false, send: () => {}, end: () => {} };
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_s, chunk) => {
        c.messages.push(...reader.push(chunk));
      },
      close: () => {
        c.closed = true;
      },
    },
  });
  c.send = (b) => void sock.write(b);
  c.end = () => sock.end();
  return c;
}

function helloBytes(udpPort: number, version = PROTOCOL_VERSION): Uint8Array {
  const bytes = encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities: 0, name: "raw" });
  bytes[3 + 4] = version; // type at 2, magic 3..6, version at 7
  return bytes;
}

async function withServer(
  fn: (server: StreamServer, log: ReturnType<typeof memoryLogger>) => Promise<void>, maxClients = 4, timeoutMs = 5000, extra: Partial<StreamServerOptions> = {},
) {
  const log = memoryLogger("server");
  await using server = await StreamServer.start({
    port: 0, bind: "127.0.0.1", mtu: 1400, maxClients, log, stream: { width: 320, height: 240, fps: 30 },
    heartbeatMs: Math.min(1000, Math.round(timeoutMs / 3)), timeoutMs, ...extra,
  });
  await fn(server, log);
}

/** A UDP socket that counts what arrives, and a port that was just closed (sends to it bring ICMP errors). */
async function liveAndDeadPorts() {
  const got: number[] = [];
  const live = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, buf) => void got.push(buf.length) } });
  const dead = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const deadPort = dead.port;
  dead.close();
  return { got, live, deadPort };
}

describe("stream server control channel", () => {
  test("a client of another protocol version is refused with a reason it can print", async () => {
    await withServer(async (server, log) => {
      const c = await rawClient(server.port);
      c.send(helloBytes(5000, PROTOCOL_VERSION + 1));
      await until(() => c.closed, 3000, "server closes after refusing");
      expect(c.messages).toHaveLength(1);
      const m = c.messages[0]!;
      expect(m.type).toBe("refuse");
      if (m.type === "refuse") {
        expect(m.reason).toBe(RefuseReason.VersionMismatch);
        expect(m.text).toContain("protocol version mismatch");
      }
      expect(log.lines.some((l) => l.includes("client refused") && l.includes('reason="version mismatch"'))).toBe(true);
    });
  });

  test("garbage instead of hello is refused as a bad hello; a malformed message later closes that connection only", async () => {
    await withServer(async (server, log) => {
      const junk = await rawClient(server.port);
      junk.send(new Uint8Array([0x00, 0x05, 0x63, 1, 2, 3, 4]));
      await until(() => junk.closed, 3000, "junk connection closed");
      expect(junk.messages[0]?.type).toBe("refuse");

      const good = await rawClient(server.port);
      const bad = await rawClient(server.port);
      good.send(helloBytes(5001));
      bad.send(helloBytes(5002));
      await until(() => good.messages.length > 0 && bad.messages.length > 0, 3000, "both welcomed");
      expect(good.messages[0]!.type).toBe("welcome");
      expect(server.clientCount).toBe(2);
      bad.send(new Uint8Array([0xff, 0xff, 0x04]));
      await until(() => bad.closed, 3000, "malformed connection closed");
      expect(server.clientCount).toBe(1);
      expect(good.closed).toBe(false);
      expect(log.lines.some((l) => l.includes("client left") && l.includes("udp=5002") && l.includes('reason="protocol error"'))).toBe(true);
      good.end();
      await until(() => server.clientCount === 0, 3000, "good client gone");
      expect(log.lines.some((l) => l.includes("client left") && l.includes("udp=5001") && l.includes('reason="connection closed"'))).toBe(true);
    });
  });

  test("frames go to the TCP peer's address on the UDP port it asked for, each fragment stamped with its session", async () => {
    const got: Uint8Array[] = [];
    const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, buf) => void got.push(new Uint8Array(buf)) } });
    try {
      await withServer(async (server) => {
        const c = await rawClient(server.port);
        c.send(helloBytes(udp.port));
        await until(() => c.messages.length > 0, 3000, "welcome");
        const w = c.messages[0]!;
        if (w.type !== "welcome") throw new Error(`expected welcome, got ${w.type}`);
        expect(w.udpSourcePort).toBe(server.udpPort);
        const jpeg = new Uint8Array(10_000).map((_, i) => i & 0xff);
        server.broadcast({ seq: 7, capturedAt: 1_700_000_000_000_000, width: 320, height: 240, jpeg });
        // Every frame ends with the server's signature (docs/protocol.md, 3.4).
        await until(() => got.length === Math.ceil((10_000 + SIGNATURE_SIZE) / w.fragmentSize), 3000, "all fragments");
        for (const d of got) {
          const { header } = decodeDatagram(d);
          expect(header.sessionId).toBe(w.sessionId);
          expect(header.frameNumber).toBe(7);
          expect(header.frameLength).toBe(10_000 + SIGNATURE_SIZE);
        }
        c.end();
      });
    } finally {
      udp.close();
    }
  });

  test("a viewer that sends path reports is told so in its welcome; an older one is not, and a bogus path report is refused, counted and logged once", async () => {
    await withServer(async (server, log) => {
      const paths = await rawClient(server.port);
      paths.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: 5101, capabilities: CAP_PATH_REPORTS, name: "paths" }));
      const older = await rawClient(server.port);
      older.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: 5102, capabilities: 0, name: "older" }));
      await until(() => paths.messages.length > 0 && older.messages.length > 0, 3000, "both welcomed");
      const w = paths.messages[0] as Welcome;
      expect(w.flags & WELCOME_PATH_REPORTS).toBe(WELCOME_PATH_REPORTS);
      expect((older.messages[0] as Welcome).flags & WELCOME_PATH_REPORTS).toBe(0);
      const report = (bytesReceived: number): Uint8Array => encodeControl({
        type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
        path: { bytesReceived, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 },
      });
      // Nothing was sent yet: any byte received is more than was sent.
      paths.send(report(1_000_000));
      paths.send(report(2_000_000));
      await until(() => server.stats.pathReportsRefused === 2, 3000, "both refused");
      expect(log.lines.filter((l) => l.includes("path report refused"))).toHaveLength(1);
      expect(server.viewers().find((v) => v.name === "paths")?.framesSent).toBe(0);
      expect(paths.closed).toBe(false);
    });
  });

  test("a full server refuses with server full", async () => {
    await withServer(async (server) => {
      const a = await rawClient(server.port);
      a.send(helloBytes(6001));
      await until(() => a.messages.length > 0, 3000, "first welcomed");
      const b = await rawClient(server.port);
      b.send(helloBytes(6002));
      await until(() => b.closed, 3000, "second refused");
      expect(b.messages[0]).toMatchObject({ type: "refuse", reason: RefuseReason.ServerFull });
      a.end();
    }, 1);
  });

  // The timing rules themselves are in tests/admission.test.ts, on a fake clock; this
  // checks that the server's timer drives them: heartbeats go out, then the bye.
  test("a viewer that goes silent gets heartbeats, then bye timeout, and is logged as such", async () => {
    await withServer(async (server, log) => {
      const c = await rawClient(server.port);
      c.send(helloBytes(7001));
      await until(() => c.messages.length > 0, 3000, "welcome");
      await until(() => c.closed, 5000, "server ends the silent session");
      expect(c.messages.some((m) => m.type === "heartbeat")).toBe(true);
      expect(c.messages.at(-1)).toEqual({ type: "bye", reason: ByeReason.Timeout });
      expect(log.lines.some((l) => l.includes("client left") && l.includes("udp=7001") && l.includes("reason=timeout"))).toBe(true);
      expect(server.clientCount).toBe(0);
    }, 4, 600);
  });

  test("a viewer's bye with its totals is what the leave line reports", async () => {
    await withServer(async (server, log) => {
      const c = await rawClient(server.port);
      c.send(helloBytes(7101));
      await until(() => c.messages.length > 0, 3000, "welcome");
      // The counts must be possible: 150 frames went to it.
      for (let i = 0; i < 150; i++) server.broadcast({ seq: i, capturedAt: 1_700_000_000_000_000 + i, width: 320, height: 240, jpeg: new Uint8Array(100).fill(i) });
      c.send(encodeControl({ type: "report", framesReceived: 147, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }));
      c.send(encodeControl({ type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: 149, framesLost: 0, framesIncomplete: 1, framesRecorded: 149 } }));
      await until(() => c.closed, 3000, "server closes after the bye");
      const leave = log.lines.find((l) => l.includes("client left") && l.includes("udp=7101"));
      expect(leave).toContain("reason=goodbye");
      expect(leave).toContain("framesReceived=149 framesLost=1 framesRecorded=149 transport=udp clients=0");
    });
  });

  test("a new session for the same address and UDP port, with the old one's resume secret, replaces it; without, it is refused", async () => {
    await withServer(async (server, log) => {
      const a = await rawClient(server.port);
      a.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: 8001, capabilities: CAP_RESUME, name: "raw" }));
      await until(() => a.messages.length > 0, 3000, "first welcomed");
      const { resume } = a.messages[0] as Welcome;
      expect(resume).toHaveLength(16);
      const stranger = await rawClient(server.port);
      stranger.send(helloBytes(8001));
      await until(() => stranger.closed, 3000, "a stranger's hello for that port refused");
      expect(stranger.messages).toMatchObject([{ type: "refuse", reason: RefuseReason.Other }]);
      expect(a.closed).toBe(false);
      const b = await rawClient(server.port);
      b.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: 8001, capabilities: CAP_RESUME, name: "raw", resume }));
      await until(() => b.messages.length > 0 && a.closed, 3000, "second welcomed, first closed");
      expect(b.messages[0]!.type).toBe("welcome");
      expect(a.messages.at(-1)).toMatchObject({ type: "bye" });
      expect(server.clientCount).toBe(1);
      expect(log.lines.some((l) => l.includes("client left") && l.includes('reason="replaced by a new session"'))).toBe(true);
      b.end();
    });
  });

  test("ten viewers connecting from one machine at the same moment are all admitted", async () => {
    await withServer(async (server) => {
      // All connected before any says hello, as when a lab machine starts them together.
      const clients = await Promise.all(Array.from({ length: 10 }, () => rawClient(server.port)));
      clients.forEach((c, i) => c.send(helloBytes(9100 + i)));
      await until(() => clients.every((c) => c.messages.length > 0), 3000, "every client answered");
      expect(clients.map((c) => c.messages[0]!.type)).toEqual(Array(10).fill("welcome"));
      for (const c of clients) c.end();
    }, 16);
  });

  test("one address cannot hold more than a few connections without hello: one more evicts the oldest", async () => {
    await withServer(async (server, log) => {
      const idle = await Promise.all(Array.from({ length: MAX_PENDING_PER_ADDRESS + 1 }, () => rawClient(server.port)));
      await until(() => idle.some((c) => c.closed), 3000, "the one over the limit is closed");
      const refused = idle.filter((c) => c.closed);
      expect(refused).toHaveLength(1);
      expect(refused[0]!.messages[0]).toMatchObject({ type: "refuse", text: "too many connections without hello from this address" });
      expect(log.lines.some((l) => l.includes("too many connections without hello from this address"))).toBe(true);
      for (const c of idle) c.end();
    });
  });

  test("a viewer whose UDP port is closed (ICMP errors) costs the others nothing and never crashes the server", async () => {
    const { got, live, deadPort } = await liveAndDeadPorts();
    try {
      await withServer(async (server, log) => {
        const a = await rawClient(server.port);
        const b = await rawClient(server.port);
        a.send(helloBytes(deadPort));
        b.send(helloBytes(live.port));
        await until(() => a.messages.length > 0 && b.messages.length > 0, 3000, "both welcomed");
        const w = b.messages[0]!;
        if (w.type !== "welcome") throw new Error("expected welcome");
        const jpeg = new Uint8Array(20_000).fill(7);
        const perFrame = Math.ceil(jpeg.length / w.fragmentSize);
        for (let i = 0; i < 20; i++) {
          server.broadcast({ seq: i, capturedAt: 1_700_000_000_000_000 + i, width: 320, height: 240, jpeg });
          await Bun.sleep(35);
        }
        await until(() => got.length === 20 * perFrame, 3000, "every datagram for the live viewer");
        expect(server.stats.icmpErrors + server.stats.sendErrors).toBeGreaterThan(0);
        expect(server.stats.datagramsDropped).toBe(0);
        expect(log.lines.filter((l) => l.includes("udp send failed")).length).toBeLessThanOrEqual(2);
        a.end();
        b.end();
      });
    } finally {
      live.close();
    }
  });

  test("an empty frame is counted as not sent and the server goes on", async () => {
    await withServer(async (server, log) => {
      const c = await rawClient(server.port);
      c.send(helloBytes(8201));
      await until(() => c.messages.length > 0, 3000, "welcome");
      server.broadcast({ seq: 1, capturedAt: 1, width: 320, height: 240, jpeg: new Uint8Array(0) });
      expect(server.stats.framesNotSent).toBe(1);
      expect(log.lines.some((l) => l.includes("frame not sent") && l.includes("empty"))).toBe(true);
      c.end();
    });
  });
});

// --- classroom viewers on the same port, and viewers of other kinds ------------------

/** A classroom viewer by hand: a UDP socket, and its port number sent on TCP. */
async function classicViewer(serverPort: number) {
  const got: { bytes: Uint8Array; port: number; address: string }[] = [];
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1", port: 0,
    socket: { data: (_s, buf, port, address) => void got.push({ bytes: new Uint8Array(buf), port, address }) },
  });
  const state = { closed: false };
  const tcp = await Bun.connect({ hostname: "127.0.0.1", port: serverPort, socket: { data() {}, close: () => void (state.closed = true) } });
  tcp.write(String(udp.port));
  return {
    port: udp.port,
    got,
    state,
    /** Answers the last picture, to where it came from, as the classroom viewer does. */
    answer: (text: "continue" | "end") => udp.send(text, got.at(-1)!.port, got.at(-1)!.address),
    tcpWrite: (text: string) => tcp.write(text),
    close: () => {
      tcp.end();
      udp.close();
    },
  };
}

describe("hardening, through real sockets", () => {
  test("a viewer whose UDP port answers only with ICMP errors is ended after unreachableMs; one whose reports grow is not", async () => {
    const { got, live, deadPort } = await liveAndDeadPorts();
    try {
      await withServer(async (server, log) => {
        const a = await rawClient(server.port);
        const b = await rawClient(server.port);
        a.send(helloBytes(deadPort));
        b.send(helloBytes(live.port));
        await until(() => a.messages.length > 0 && b.messages.length > 0, 3000, "both welcomed");
        using cam = camera(server, 30, 5000);
        const perFrame = Math.ceil(5000 / 1368);
        // The live viewer reports what it got, as a real one does; the dead one says nothing.
        const reports = setInterval(() => b.send(encodeControl({
          type: "report", framesReceived: Math.floor(got.length / perFrame), framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
        })), 200);
        try {
          await until(() => a.closed, 4000, "the unreachable viewer ended");
          expect(b.closed).toBe(false);
          await Bun.sleep(300);
          expect(b.closed).toBe(false);
        } finally {
          clearInterval(reports);
        }
        expect(server.stats.icmpErrors).toBeGreaterThan(0);
        expect(log.lines.find((l) => l.includes("client left"))).toContain(`udp=${deadPort} `);
        expect(log.lines.find((l) => l.includes("client left"))).toContain('reason="udp port unreachable"');
        expect(a.messages.at(-1)).toEqual({ type: "bye", reason: ByeReason.Other });
        b.end();
      }, 4, 5000, { unreachableMs: 800 });
    } finally {
      live.close();
    }
  });

  test("a connection with no remote address left (reset before it was handled) has no peer; nothing reads a.startsWith of undefined", () => {
    expect(peerOf({ remoteAddress: undefined, remotePort: 5 })).toBeNull();
    expect(peerOf({ remoteAddress: "" })).toBeNull();
    expect(peerOf({ remoteAddress: null })).toBeNull();
    expect(peerOf({ remoteAddress: "::ffff:10.0.0.7", remotePort: 4242 })).toEqual({ address: "10.0.0.7", port: 4242 });
  });

  test("with a token: each viewer is sent the stream key after its welcome; when one leaves the others get a new one before the next frame", async () => {
    const token = tokenKey("stream-server key rotation test");
    const udp = await Promise.all([0, 1].map(() => Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })));
    const keyIds: number[][] = [[], []];
    const seenIds = new Set<number>();
    const probe = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, buf) => void seenIds.add(decodeDatagram(buf).header.keyId!) } });
    try {
      await withServer(async (server, log) => {
        const viewers = await Promise.all([udp[0]!.port, udp[1]!.port, probe.port].map((p) => authedClient(server.port, token, p)));
        await until(() => server.clientCount === 3, 3000, "three welcomed");
        await until(() => viewers.every((v) => v.got.some((m) => m.type === "key")), 3000, "a key each");
        server.broadcast(picture(1, 3000));
        await until(() => seenIds.has(0), 3000, "a frame under key 0");
        viewers[0]!.send({ type: "bye", reason: ByeReason.UserQuit });
        await until(() => server.clientCount === 2, 3000, "one left");
        await until(() => viewers[1]!.got.filter((m) => m.type === "key").length === 2, 3000, "a new key for those still here");
        for (const [i, v] of viewers.slice(0, 2).entries()) keyIds[i] = v.got.flatMap((m) => (m.type === "key" ? [m.keyId] : []));
        expect(keyIds).toEqual([[0], [0, 1]]);
        expect(server.stats.keyRotations).toBe(1);
        server.broadcast(picture(2, 3000));
        await until(() => seenIds.has(1), 3000, "the next frame under key 1");
        expect(server.stats.framesEncrypted).toBe(2);
        expect(log.lines.filter((l) => l.includes("client joined")).every((l) => l.includes("auth=token"))).toBe(true);
        for (const v of viewers.slice(1)) v.end();
      }, 4, 5000, { token });
    } finally {
      for (const u of [...udp, probe]) u.close();
    }
  });
});

/** A hand-made viewer that proves `token` and tags what it sends. */
async function authedClient(port: number, token: TokenKey, udpPort: number) {
  const reader = new MessageReader();
  const got: ControlMessage[] = [];
  let mac: ControlMac | null = null;
  let keys: SessionKeys | null = null;
  const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "raw" };
  const sock = await Bun.connect({
    hostname: "127.0.0.1", port,
    socket: {
      data: (s, chunk) => {
        for (const m of reader.push(chunk)) {
          if (m.type === "challenge") {
            const t = { hello, challenge: m, clientNonce: crypto.getRandomValues(new Uint8Array(32)) };
            keys = deriveSessionKeys(token, t);
            s.write(encodeControl({ type: "response", clientNonce: t.clientNonce, proof: clientProof(keys, t) }));
            mac = new ControlMac({ send: keys.clientMac, receive: keys.serverMac });
          } else if (mac && !mac.open(m)) throw new Error(`a ${m.type} with a bad tag`);
          got.push(m);
        }
      },
    },
  });
  sock.write(encodeControl(hello));
  return { got, send: (m: ControlMessage) => void sock.write(mac!.seal(m)), end: () => sock.end(), keys: () => keys };
}

const picture = (seq: number, bytes = 2000): Frame => ({ seq, capturedAt: 1_700_000_000_000_000 + seq, width: 320, height: 240, jpeg: new Uint8Array(bytes).fill(seq & 0xff) });

/** Broadcasts a new picture every `ms` until disposed. */
function camera(server: StreamServer, ms = 20, bytes = 2000): Disposable & { seq: number } {
  const cam = {
    seq: 0,
    timer: setInterval(() => server.broadcast(picture(cam.seq++, bytes)), ms),
    [Symbol.dispose]: () => clearInterval(cam.timer),
  };
  return cam;
}

describe("--max-per-host over real sockets", () => {
  test("classroom viewers and browser places from one address are refused past the limit, whatever kind took the others", async () => {
    await withServer(async (server, log) => {
      const viewers = [await classicViewer(server.port), await classicViewer(server.port)];
      try {
        await until(() => server.viewerCount === 2, 3000, "two classroom viewers");
        const third = await classicViewer(server.port);
        viewers.push(third);
        await until(() => third.state.closed, 3000, "the third closed");
        expect(log.lines.some((l) => l.includes(`kind=classic udp=${third.port} reason="too many viewers from this address" max=2`))).toBe(true);
        expect(server.admitOther("browser", "127.0.0.1", "")).toEqual({ refused: "too many viewers from 127.0.0.1: at most 2 per address" });
        expect("id" in server.admitOther("browser", "127.0.0.2", "")).toBe(true);
        expect(server.viewerCount).toBe(3);
      } finally {
        for (const v of viewers) v.close();
      }
    }, 8, 5000, { maxPerHost: 2 });
  });
});

describe("classroom viewers on the control port", () => {
  test("get one picture per answer from the UDP port the welcome names, at their own address and port; end leaves, logged", async () => {
    await withServer(async (server, log) => {
      using _cam = camera(server);
      const v = await classicViewer(server.port);
      try {
        await until(() => v.got.length === 1, 3000, "a first picture");
        expect(v.got[0]).toMatchObject({ port: server.udpPort, address: "127.0.0.1" });
        expect(log.lines.some((l) => l.includes(`client joined client=127.0.0.1:`) && l.includes(`kind=classic udp=${v.port} clients=1`))).toBe(true);
        // Unanswered, no second picture comes (the resend is a minute away here, not 500 ms).
        await Bun.sleep(150);
        expect(v.got).toHaveLength(1);
        for (let i = 2; i <= 5; i++) {
          v.answer("continue");
          await until(() => v.got.length === i, 3000, `picture ${i}`);
        }
        // Each one the newest at the time: numbers only go up.
        const seqs = v.got.map((g) => g.bytes[0]!);
        expect(seqs.every((n, i) => i === 0 || n > seqs[i - 1]!)).toBe(true);
        expect(server.viewerCount).toBe(1);
        expect(server.clientCount).toBe(0);
        // Strangers' datagrams and more TCP bytes from the viewer are counted, not obeyed.
        const stranger = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
        stranger.send("end", server.udpPort, "127.0.0.1");
        v.tcpWrite("8888 more");
        await until(() => server.stats.classicAnswersIgnored === 1 && server.stats.classicTcpBytesIgnored === 9, 3000, "both counted");
        stranger.close();
        expect(server.viewerCount).toBe(1);
        v.answer("end");
        await until(() => v.state.closed, 3000, "the server closing its TCP connection");
        const left = log.lines.find((l) => l.includes("client left") && l.includes("kind=classic"));
        expect(left).toMatch(new RegExp(`kind=classic udp=${v.port} reason=end seconds=[\\d.]+ framesSent=5 framesReceived=4 resends=0 clients=0$`));
        expect(server.viewerCount).toBe(0);
        expect(server.stats.classicDatagramsSent).toBe(5);
      } finally {
        v.close();
      }
    }, 4, 5000, { classic: { resendMs: 60_000, timeoutMs: 120_000 } });
  });

  test("one that stops answering gets the newest picture again, then is dropped, its TCP closed", async () => {
    await withServer(async (server, log) => {
      using _cam = camera(server);
      const v = await classicViewer(server.port);
      try {
        await until(() => v.state.closed, 3000, "the silent viewer dropped");
        expect(v.got.length).toBeGreaterThanOrEqual(3); // the first, then resends every 100 ms
        expect(log.lines.some((l) => l.includes(`kind=classic udp=${v.port} reason=timeout `))).toBe(true);
      } finally {
        v.close();
      }
    }, 4, 5000, { classic: { resendMs: 100, timeoutMs: 450 } });
  });

  test("a frame over one datagram is fitted once for all classroom viewers, only while there are any; lancam viewers get it whole", async () => {
    const fits: number[] = [];
    const fit = async (jpeg: Uint8Array, maxBytes: number): Promise<FitJpegResult> => {
      fits.push(jpeg.length);
      return { jpeg: Buffer.alloc(maxBytes - 7, jpeg[0]!), width: 160, height: 120, quality: 50 };
    };
    const lancamGot: number[] = [];
    const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, buf) => void lancamGot.push(buf.length) } });
    try {
      await withServer(async (server) => {
        const big = 70_000;
        server.broadcast(picture(1, big));
        await Bun.sleep(20);
        expect(fits).toEqual([]);
        const c = await rawClient(server.port);
        c.send(helloBytes(udp.port));
        const a = await classicViewer(server.port);
        const b = await classicViewer(server.port);
        try {
          await until(() => server.viewerCount === 3, 3000, "three viewers");
          await Bun.sleep(60); // past the classroom viewers' first-send delay
          server.broadcast(picture(2, big));
          await until(() => a.got.length === 1 && b.got.length === 1, 3000, "the fitted picture at both");
          expect(fits).toEqual([big]);
          for (const v of [a, b]) expect(v.got[0]!.bytes.length).toBe(MAX_CLASSIC_DATAGRAM - 7);
          await until(() => lancamGot.reduce((x, y) => x + y, 0) >= big, 3000, "the whole frame at the lancam viewer");
          c.end();
        } finally {
          a.close();
          b.close();
        }
      }, 4, 5000, { classic: { fit } });
    } finally {
      udp.close();
    }
  });

  test("bytes that are neither are closed and logged; a port number cut short waits only the hello deadline", async () => {
    await withServer(async (server, log) => {
      const http = await rawClient(server.port);
      http.send(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
      await until(() => http.closed, 3000, "the HTTP request closed");
      expect(http.messages).toEqual([]);
      expect(log.lines.some((l) => l.includes('client refused') && l.includes('reason="bad first bytes"') && l.includes("0x47"))).toBe(true);
      const cut = await rawClient(server.port);
      const sentAt = performance.now();
      cut.send(new TextEncoder().encode("80\r"));
      await until(() => cut.closed, 3000, "the undecided connection closed");
      expect(performance.now() - sentAt).toBeGreaterThanOrEqual(550);
      expect(log.lines.some((l) => l.includes("reason=\"no hello within timeout\""))).toBe(true);
      expect(server.viewerCount).toBe(0);
    }, 4, 600);
  });

  test("stopping the server closes classroom viewers' connections, logged as shutdown", async () => {
    const log = memoryLogger("server");
    const server = await StreamServer.start({ port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 320, height: 240, fps: 30 } });
    const v = await classicViewer(server.port);
    try {
      await until(() => server.viewerCount === 1, 3000, "joined");
      await server.stop();
      await until(() => v.state.closed, 3000, "closed by the server");
      expect(log.lines.some((l) => l.includes(`kind=classic udp=${v.port} reason=shutdown `))).toBe(true);
    } finally {
      v.close();
      await server.stop();
    }
  });
});

describe("viewers of every kind", () => {
  test("viewers() lists lancam, classroom and other viewers; admitOther shares --max-clients, and updateOther and leaveOther keep its row", async () => {
    await withServer(async (server, log) => {
      const c = await rawClient(server.port);
      c.send(helloBytes(7301));
      await until(() => c.messages.length > 0, 3000, "welcome");
      const v = await classicViewer(server.port);
      try {
        await until(() => server.viewerCount === 2, 3000, "the classroom viewer joined");
        const other = server.admitOther("browser", "::ffff:127.0.0.1", "Firefox 120");
        if (!("id" in other)) throw new Error(`refused: ${other.refused}`);
        expect(log.lines.at(-1)).toMatch(/INFO \[server\] client joined client=127\.0\.0\.1 kind=browser name="Firefox 120" clients=3$/);
        expect(server.admitOther("browser", "127.0.0.1", "")).toEqual({ refused: "server full: 3 viewers already connected" });
        const refusedLancam = await rawClient(server.port);
        refusedLancam.send(helloBytes(7302));
        await until(() => refusedLancam.closed, 3000, "the lancam viewer refused");
        expect(refusedLancam.messages[0]).toMatchObject({ type: "refuse", reason: RefuseReason.ServerFull });

        expect(server.updateOther(other.id, { framesSent: 12, framesReceived: 11, latencyP50Ms: 4.5 })).toBe(true);
        const rows = server.viewers();
        expect(rows.map((r) => [r.kind, r.udpPort, r.name])).toEqual([["udp", 7301, "raw"], ["classic", v.port, ""], ["browser", null, "Firefox 120"]]);
        const welcome = c.messages[0]!;
        expect(rows[0]!.id).toBe(welcome.type === "welcome" ? welcome.sessionId : -1);
        expect(rows.every((r) => Math.abs(r.joinedAt - Date.now()) < 5000)).toBe(true);
        expect(rows[2]).toMatchObject({ id: other.id, address: "127.0.0.1", framesSent: 12, framesReceived: 11, latencyP50Ms: 4.5, framesLost: null, fps: null });

        server.leaveOther(other.id, "connection closed");
        expect(log.lines.at(-1)).toMatch(/client left client=127\.0\.0\.1 kind=browser name="Firefox 120" reason="connection closed" seconds=[\d.]+ framesSent=12 framesReceived=11 clients=2$/);
        expect(server.viewers().map((r) => r.kind)).toEqual(["udp", "classic"]);
        expect(server.updateOther(other.id, { framesSent: 13 })).toBe(false);
        c.end();
      } finally {
        v.close();
      }
    }, 3);
  });
});
