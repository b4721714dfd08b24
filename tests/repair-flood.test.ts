// A hostile viewer floods a real server (in process, on loopback) with repair requests
// for everything it was sent: what it gets back stays within its own budget (a fifth of
// what it was sent), the messages over the rate are dropped and counted, and a viewer
// that never offered repair is ended for sending one.
import { describe, expect, test } from "bun:test";
import { CAP_REPAIR, encodeControl, PROTOCOL_VERSION, WELCOME_REPAIR, type ControlMessage, type Welcome } from "../lib/wire/control.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { DEFAULT_REPAIR_BYTE_FRACTION } from "../lib/send/repair-budget.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { until } from "./helpers/process.ts";

function picture(seq: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seq * 13 + i * 5) & 0xff;
  return out;
}

/** A viewer speaking the protocol by hand: it counts what arrives on its UDP port and can send anything. */
async function rawViewer(port: number, capabilities: number) {
  const messages: ControlMessage[] = [];
  const reader = new MessageReader();
  const got = { datagrams: 0, bytes: 0, frames: new Map<number, number>() };
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1", port: 0,
    socket: {
      data: (_s, buf) => {
        got.datagrams++;
        got.bytes += buf.length;
        const h = decodeDatagram(buf).header;
        got.frames.set(h.frameNumber, h.fragmentCount);
      },
    },
  });
  let closed = false;
  const tcp = await Bun.connect({
    hostname: "127.0.0.1", port,
    socket: {
      data: (_s, chunk) => void messages.push(...reader.push(chunk)),
      close: () => void (closed = true),
    },
  });
  tcp.write(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: udp.port, capabilities, name: "raw" }));
  return {
    messages, got, tcp,
    get closed() {
      return closed;
    },
    welcome: () => messages.find((m): m is Welcome => m.type === "welcome") ?? null,
    close: () => (tcp.end(), udp.close()),
  };
}

describe("repair requests against a real server", () => {
  test("a flood is answered within the viewer's byte budget, the excess dropped and counted; without the capability a repair ends the session", async () => {
    const log = memoryLogger("server");
    await using server = await StreamServer.start({ port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 8, log, stream: { width: 320, height: 240, fps: 30 } });
    const hostile = await rawViewer(server.port, CAP_REPAIR);
    const plain = await rawViewer(server.port, 0);
    try {
      await until(() => hostile.welcome() !== null && plain.welcome() !== null, 5000, "both welcomed");
      expect(hostile.welcome()!.flags & WELCOME_REPAIR).toBe(WELCOME_REPAIR);
      expect(plain.welcome()!.flags & WELCOME_REPAIR).toBe(0);
      for (let seq = 0; seq < 20; seq++) {
        server.broadcast({ seq, capturedAt: 1_700_000_000_000_000 + seq, width: 320, height: 240, jpeg: picture(seq, 20_000) });
        await Bun.sleep(15); // a frame interval, so the pacer sends each frame whole
      }
      await until(() => hostile.got.frames.size >= 20, 5000, "the frames arrived");
      const firstBytes = hostile.got.bytes;
      // Every fragment of every frame, again and again: 2000 messages at once.
      const entries = [...hostile.got.frames.keys()].map((frameNumber) => ({ frameNumber, first: 0, mask: 0xffff }));
      const flood = encodeControl({ type: "repair", entries });
      for (let k = 0; k < 2000; k++) hostile.tcp.write(flood);
      // The flood arrives in many TCP reads: wait until most of it was refused, not for the first refusal.
      await until(() => server.stats.repairRequestsDropped > 1000 && server.stats.repairGoneSent > 0, 15_000, () => `the flood was handled (dropped ${server.stats.repairRequestsDropped} so far)`);
      // Every resend the server counts reaches the viewer (loopback loses nothing).
      await until(() => hostile.got.bytes - firstBytes === server.stats.repairBytesResent, 5000, "the resends arrived");
      const resent = hostile.got.bytes - firstBytes;
      expect(resent).toBeGreaterThan(0);
      expect(resent).toBeLessThanOrEqual(firstBytes * DEFAULT_REPAIR_BYTE_FRACTION);
      expect(server.stats.repairRequestsDropped).toBeGreaterThan(1000);
      expect(hostile.messages.some((m) => m.type === "gone")).toBe(true);
      expect(hostile.closed).toBe(false);

      plain.tcp.write(encodeControl({ type: "repair", entries: [{ frameNumber: 0, first: 0, mask: 0 }] }));
      await until(() => plain.closed, 5000, "the viewer without the capability ended");
      expect(plain.messages.some((m) => m.type === "bye")).toBe(true);
    } finally {
      hostile.close();
      plain.close();
    }
  });
});
