// The client's side of the session against a hand-made server on 127.0.0.1.
import { expect, test } from "bun:test";
import { encodeControl } from "../lib/wire/control.ts";
import { StreamClient } from "../lib/receive/stream-client.ts";
import { fakeServer, welcome, welcomingServer } from "./helpers/fake-server.ts";
import { until } from "./helpers/process.ts";

const open = (port: number, connectTimeoutMs?: number) =>
  StreamClient.open({ host: "127.0.0.1", port, udpPort: 0, onFrame: () => {}, connectTimeoutMs });

test("a server that goes silent ends the session as a timeout, after the client's heartbeats and reports", async () => {
  using server = welcomingServer({ heartbeatMs: 100, timeoutMs: 600 });
  await using client = await open(server.port);
  expect((await client.connect()).sessionId).toBe(42);
  const t0 = performance.now();
  expect(await client.ended).toEqual({ reason: "timeout" });
  expect(performance.now() - t0).toBeGreaterThanOrEqual(550);
  expect(server.heard[0]).toMatchObject({ type: "hello", udpPort: client.udpPort });
  expect(server.heard.some((m) => m.type === "heartbeat")).toBe(true);
  expect(server.heard.some((m) => m.type === "report")).toBe(true);
});

test("datagrams from an address or port other than the welcome's are dropped and counted", async () => {
  using server = welcomingServer();
  const stranger = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    let frames = 0;
    await using client = await StreamClient.open({ host: "127.0.0.1", port: server.port, udpPort: 0, onFrame: () => frames++ });
    await client.connect();
    client.resume();
    // The welcome named source port 1: anything from the stranger's port is foreign.
    for (let i = 0; i < 5; i++) stranger.send(new Uint8Array(40), client.udpPort, "127.0.0.1");
    await until(() => client.droppedForeign.address === 5, 2000, "five foreign datagrams counted");
    expect(client.reassembly.datagrams).toBe(0);
    expect(frames).toBe(0);
  } finally {
    stranger.close();
  }
});

test("a goodbye in the same packet as the welcome ends the session as the server's goodbye", async () => {
  const bye = encodeControl({ type: "bye", reason: 2 });
  using server = fakeServer(() => new Uint8Array([...encodeControl(welcome()), ...bye]));
  await using client = await open(server.port);
  await client.connect();
  expect(await client.ended).toEqual({ reason: "server bye", text: "server shutting down" });
});

test("a server that never answers the hello: the handshake times out with a message naming it", async () => {
  using server = fakeServer(() => null);
  await using client = await open(server.port, 300);
  const t0 = performance.now();
  await expect(client.connect()).rejects.toThrow(`server 127.0.0.1:${server.port} did not complete the handshake within 0.3 s`);
  expect(performance.now() - t0).toBeLessThan(2000);
});

test("disconnect() during the handshake cancels it at once", async () => {
  using server = fakeServer(() => null);
  await using client = await open(server.port, 10_000);
  const attempt = client.connect();
  setTimeout(() => client.disconnect(), 50);
  const t0 = performance.now();
  await expect(attempt).rejects.toThrow("connection attempt cancelled");
  expect(performance.now() - t0).toBeLessThan(1000);
});
