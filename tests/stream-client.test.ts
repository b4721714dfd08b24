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
