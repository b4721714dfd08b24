// The client's side of the session against a hand-made server on 127.0.0.1.
import { expect, test } from "bun:test";
import { encodeControl, type ControlMessage } from "../lib/control.ts";
import { MessageReader } from "../lib/message-reader.ts";
import { StreamClient } from "../lib/stream-client.ts";

/** A server that welcomes every hello and then says nothing more. */
function silentServer(timeoutMs: number) {
  const heard: ControlMessage[] = [];
  const listener = Bun.listen<{ reader: MessageReader }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { reader: new MessageReader() };
      },
      data: (s, chunk) => {
        for (const m of s.data.reader.push(chunk)) {
          heard.push(m);
          if (m.type === "hello") {
            s.write(encodeControl({
              type: "welcome", sessionId: 42, width: 64, height: 48, fpsMillihertz: 10_000, fragmentSize: 1368,
              udpSourcePort: 1, heartbeatMs: 100, timeoutMs, flags: 0,
            }));
          }
        }
      },
    },
  });
  return { listener, heard };
}

test("a server that goes silent ends the session as a timeout, after the client's heartbeats and reports", async () => {
  const { listener, heard } = silentServer(600);
  try {
    await using client = await StreamClient.open({ host: "127.0.0.1", port: listener.port, udpPort: 0, onFrame: () => {} });
    const welcome = await client.connect();
    expect(welcome.sessionId).toBe(42);
    const t0 = performance.now();
    const end = await client.ended;
    expect(end.reason).toBe("timeout");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(550);
    expect(heard[0]).toMatchObject({ type: "hello", udpPort: client.udpPort });
    expect(heard.some((m) => m.type === "heartbeat")).toBe(true);
    expect(heard.some((m) => m.type === "report")).toBe(true);
  } finally {
    listener.stop(true);
  }
});

test("datagrams from an address or port other than the welcome's are dropped and counted", async () => {
  const { listener } = silentServer(5000);
  const stranger = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    let frames = 0;
    await using client = await StreamClient.open({ host: "127.0.0.1", port: listener.port, udpPort: 0, onFrame: () => frames++ });
    await client.connect();
    client.resume();
    // The welcome named source port 1: anything from the stranger's port is foreign.
    for (let i = 0; i < 5; i++) stranger.send(new Uint8Array(40), client.udpPort, "127.0.0.1");
    const deadline = performance.now() + 2000;
    while (client.droppedForeign.address < 5 && performance.now() < deadline) await Bun.sleep(10);
    expect(client.droppedForeign.address).toBe(5);
    expect(client.reassembly.datagrams).toBe(0);
    expect(frames).toBe(0);
  } finally {
    stranger.close();
    listener.stop(true);
  }
});

/** A server that answers every hello with `reply` (raw bytes) and nothing more. */
function scriptedServer(reply: (hello: ControlMessage) => Uint8Array | null) {
  return Bun.listen<{ reader: MessageReader }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { reader: new MessageReader() };
      },
      data: (s, chunk) => {
        for (const m of s.data.reader.push(chunk)) {
          const bytes = m.type === "hello" ? reply(m) : null;
          if (bytes) s.write(bytes);
        }
      },
    },
  });
}

const WELCOME = encodeControl({
  type: "welcome", sessionId: 9, width: 64, height: 48, fpsMillihertz: 10_000, fragmentSize: 1368,
  udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
});

test("a goodbye in the same packet as the welcome ends the session as the server's goodbye", async () => {
  const bye = encodeControl({ type: "bye", reason: 2 });
  const listener = scriptedServer(() => new Uint8Array([...WELCOME, ...bye]));
  try {
    await using client = await StreamClient.open({ host: "127.0.0.1", port: listener.port, udpPort: 0, onFrame: () => {} });
    await client.connect();
    expect(await client.ended).toEqual({ reason: "server bye", text: "server shutting down" });
  } finally {
    listener.stop(true);
  }
});

test("a server that never answers the hello: the handshake times out with a message naming it", async () => {
  const listener = scriptedServer(() => null);
  try {
    await using client = await StreamClient.open({ host: "127.0.0.1", port: listener.port, udpPort: 0, onFrame: () => {}, connectTimeoutMs: 300 });
    const t0 = performance.now();
    await expect(client.connect()).rejects.toThrow(`server 127.0.0.1:${listener.port} did not complete the handshake within 0.3 s`);
    expect(performance.now() - t0).toBeLessThan(2000);
  } finally {
    listener.stop(true);
  }
});

test("disconnect() during the handshake cancels it at once", async () => {
  const listener = scriptedServer(() => null);
  try {
    await using client = await StreamClient.open({ host: "127.0.0.1", port: listener.port, udpPort: 0, onFrame: () => {}, connectTimeoutMs: 10_000 });
    const attempt = client.connect();
    setTimeout(() => client.disconnect(), 50);
    const t0 = performance.now();
    await expect(attempt).rejects.toThrow("connection attempt cancelled");
    expect(performance.now() - t0).toBeLessThan(1000);
  } finally {
    listener.stop(true);
  }
});
