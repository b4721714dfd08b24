// The client's sockets against a hand-made server on 127.0.0.1: each path of the
// handshake machine carried out for real once (its timing is in handshake.test.ts).
import { expect, test } from "bun:test";
import { encodeControl, type ByeTotals, type Report, type Welcome } from "../lib/wire/control.ts";
import type { ConnectError, SessionEnd } from "../lib/receive/handshake.ts";
import { StreamClient, type StreamClientOptions } from "../lib/receive/stream-client.ts";
import { fakeServer, welcome, welcomingServer } from "./helpers/fake-server.ts";
import { until } from "./helpers/process.ts";

const TOTALS: ByeTotals = { framesReceived: 12, framesLost: 3, framesIncomplete: 1, framesRecorded: 11 };
const report = (): Report => ({
  type: "report", framesReceived: 7, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
});

/** A client of `port` that records its welcomes and why each session ended. */
async function open(port: number, over: Partial<StreamClientOptions> = {}) {
  const welcomes: Welcome[] = [];
  const ends: (SessionEnd | ConnectError)[] = [];
  const client = await StreamClient.open({
    host: "127.0.0.1", port, udpPort: 0, onFrame: () => {}, report, totals: () => TOTALS,
    onWelcome: (w) => welcomes.push(w), onRetry: (_ms, cause) => ends.push(cause), ...over,
  });
  return { client, welcomes, ends };
}

test("a server that goes silent ends the session as a timeout, after the client's heartbeats and reports", async () => {
  using server = welcomingServer({ heartbeatMs: 100, timeoutMs: 600 });
  const { client, welcomes, ends } = await open(server.port);
  await using _c = client;
  const running = client.run();
  await until(() => ends.length > 0, 10_000, "the session ended");
  expect(welcomes.map((w) => w.sessionId)).toEqual([42]);
  expect(ends[0]).toEqual({ reason: "timeout" });
  expect(server.heard[0]).toMatchObject({ type: "hello", udpPort: client.udpPort });
  expect(server.heard.some((m) => m.type === "heartbeat")).toBe(true);
  expect(server.heard.find((m) => m.type === "report")).toEqual(report());
  client.stop();
  await running;
});

test("datagrams from an address or port other than the welcome's are dropped and counted", async () => {
  using server = welcomingServer();
  const stranger = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    let frames = 0;
    const { client, welcomes } = await open(server.port, { onFrame: () => frames++ });
    await using _c = client;
    const running = client.run();
    await until(() => welcomes.length === 1, 10_000, "welcome");
    // The welcome named source port 1: anything from the stranger's port is foreign.
    for (let i = 0; i < 5; i++) stranger.send(new Uint8Array(40), client.udpPort, "127.0.0.1");
    await until(() => client.droppedForeign.address === 5, 10_000, "five foreign datagrams counted");
    expect(client.reassembly.datagrams).toBe(0);
    expect(frames).toBe(0);
    client.stop();
    await running;
  } finally {
    stranger.close();
  }
});

test("a goodbye in the same packet as the welcome ends the session as the server's goodbye", async () => {
  const bye = encodeControl({ type: "bye", reason: 2 });
  using server = fakeServer(() => new Uint8Array([...encodeControl(welcome()), ...bye]));
  const { client, welcomes, ends } = await open(server.port);
  await using _c = client;
  const running = client.run();
  await until(() => ends.length > 0, 10_000, "the session ended");
  expect(welcomes).toHaveLength(1);
  expect(ends[0]).toEqual({ reason: "server bye", text: "server shutting down" });
  client.stop();
  await running;
});

test("stopping in a session sends the goodbye with the totals, and no datagram is taken after it", async () => {
  using server = welcomingServer();
  const { client, welcomes } = await open(server.port);
  await using _c = client;
  const running = client.run();
  await until(() => welcomes.length === 1, 10_000, "welcome");
  client.stop();
  await running;
  await until(() => server.heard.some((m) => m.type === "bye"), 10_000, "the goodbye at the server");
  expect(server.heard.at(-1)).toEqual({ type: "bye", reason: 1, totals: TOTALS });
  const late = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    late.send(new Uint8Array(40), client.udpPort, "127.0.0.1");
    await until(() => client.droppedForeign.notReady === 1, 10_000, "the late datagram counted as not ready");
    expect(client.reassembly.datagrams).toBe(0);
  } finally {
    late.close();
  }
});

test("a server that never answers the hello: the handshake times out with a message naming it", async () => {
  using server = fakeServer(() => null);
  const { client } = await open(server.port, { connectTimeoutMs: 300 });
  await using _c = client;
  const t0 = performance.now();
  await expect(client.run()).rejects.toThrow(`server 127.0.0.1:${server.port} did not complete the handshake within 0.3 s`);
  expect(performance.now() - t0).toBeLessThan(2000);
});

test("nothing listening: the first attempt fails with a message saying so", async () => {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  const { client } = await open(port);
  await using _c = client;
  await expect(client.run()).rejects.toThrow(`cannot connect to 127.0.0.1:${port}: connection refused (is lancam server running there?)`);
});

test("stop() during the handshake ends the run at once, without a goodbye", async () => {
  using server = fakeServer(() => null);
  const { client } = await open(server.port, { connectTimeoutMs: 10_000 });
  await using _c = client;
  const running = client.run();
  await until(() => server.heard.length > 0, 10_000, "hello sent");
  const t0 = performance.now();
  client.stop();
  await running;
  expect(performance.now() - t0).toBeLessThan(1000);
  expect(server.heard.map((m) => m.type)).toEqual(["hello"]);
});
