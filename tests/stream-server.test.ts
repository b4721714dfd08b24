// The server's control channel against hand-made clients on 127.0.0.1: refusals,
// malformed input closing one connection only, and datagrams going only to the TCP peer.
import { describe, expect, test } from "bun:test";
import { ByeReason, encodeControl, PROTOCOL_VERSION, RefuseReason, type ControlMessage } from "../lib/wire/control.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { memoryLogger } from "../lib/app/log.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { MAX_PENDING_PER_ADDRESS } from "../lib/send/admission.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
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

async function withServer(fn: (server: StreamServer, log: ReturnType<typeof memoryLogger>) => Promise<void>, maxClients = 4, timeoutMs = 5000) {
  const log = memoryLogger("server");
  await using server = await StreamServer.start({
    port: 0, bind: "127.0.0.1", mtu: 1400, maxClients, log, stream: { width: 320, height: 240, fps: 30 },
    heartbeatMs: Math.min(1000, Math.round(timeoutMs / 3)), timeoutMs,
  });
  await fn(server, log);
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
        await until(() => got.length === Math.ceil(10_000 / w.fragmentSize), 3000, "all fragments");
        for (const d of got) {
          const { header } = decodeDatagram(d);
          expect(header.sessionId).toBe(w.sessionId);
          expect(header.frameNumber).toBe(7);
          expect(header.frameLength).toBe(10_000);
        }
        c.end();
      });
    } finally {
      udp.close();
    }
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
      c.send(encodeControl({ type: "report", framesReceived: 147, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }));
      c.send(encodeControl({ type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: 149, framesLost: 0, framesIncomplete: 1, framesRecorded: 149 } }));
      await until(() => c.closed, 3000, "server closes after the bye");
      const leave = log.lines.find((l) => l.includes("client left") && l.includes("udp=7101"));
      expect(leave).toContain("reason=goodbye");
      expect(leave).toContain("framesReceived=149 framesLost=1 framesRecorded=149 clients=0");
    });
  });

  test("a new session for the same address and UDP port replaces the old one (its viewer is gone)", async () => {
    await withServer(async (server, log) => {
      const a = await rawClient(server.port);
      a.send(helloBytes(8001));
      await until(() => a.messages.length > 0, 3000, "first welcomed");
      const b = await rawClient(server.port);
      b.send(helloBytes(8001));
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

  test("one address cannot hold more than a few connections without hello", async () => {
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
    const got: number[] = [];
    const live = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, buf) => void got.push(buf.length) } });
    const dead = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = dead.port;
    dead.close();
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
