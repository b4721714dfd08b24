// Audio datagrams between a real StreamServer and real viewers on loopback, in this
// process: every packet arrives once, as sent; with a token the wire carries no plain
// Opus and the viewer decrypts it; forged audio (sealed with the real key, signed with
// another) is counted and dropped; a viewer that does not offer audio gets none; the
// microphone's outage is told; over multicast the group carries it once.
import { describe, expect, test } from "bun:test";
import { DEFAULT_AUDIO_FORMAT, type AudioPacket } from "../lib/wire/audio-packet.ts";
import { silentLogger } from "../lib/log/logger.ts";
import { tokenKey } from "../lib/net/session-keys.ts";
import { StreamClient } from "../lib/receive/stream-client.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { FrameSigner } from "../lib/send/frame-signer.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { decodeAudioDatagram } from "../lib/wire/audio-datagram.ts";
import { type ByeTotals, type Report } from "../lib/wire/control.ts";
import { HEADER_SIZE, PayloadType, payloadTypeOf } from "../lib/wire/datagram.ts";
import { CoViewer } from "./helpers/co-viewer.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { until } from "./helpers/process.ts";
import { rawUdpSender } from "./helpers/raw-udp.ts";

const TOKEN = "audio-transport-test-token-0123456789";
const report = (): Report => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 });
const totals = (): ByeTotals => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 });
const PACKETS = await opusPackets({ seconds: 1 });

function group(): { address: string; port: number } {
  const r = crypto.getRandomValues(new Uint16Array(2));
  return { address: `239.253.${(r[0]! % 200) + 20}.${(r[1]! % 250) + 1}`, port: 20_000 + (r[0]! % 20_000) };
}

async function startServer(opts: { token?: boolean; audio?: boolean; multicast?: boolean } = {}): Promise<StreamServer> {
  const g = opts.multicast ? group() : null;
  return await StreamServer.start({
    port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 8, log: silentLogger, stream: { width: 320, height: 240, fps: 10 },
    cameras: [{ name: "0", width: 320, height: 240, fps: 10, audio: opts.audio === false ? null : DEFAULT_AUDIO_FORMAT }],
    token: opts.token ? tokenKey(TOKEN) : null,
    multicast: g ? { address: g.address, port: g.port, ttl: 1, interfaceAddress: "127.0.0.1" } : null,
  });
}

interface Viewer extends AsyncDisposable {
  client: StreamClient;
  packets: AudioPacket[];
  formats: (string | null)[];
  statuses: boolean[];
  sessionId: number | null;
}

async function viewer(port: number, opts: { token?: boolean; audio?: boolean; multicast?: boolean } = {}): Promise<Viewer> {
  const v = { packets: [] as AudioPacket[], formats: [] as (string | null)[], statuses: [] as boolean[], sessionId: null as number | null };
  const client = await StreamClient.open({
    host: "127.0.0.1", port, udpPort: 0, report, totals, multicast: opts.multicast ?? false,
    token: opts.token ? tokenKey(TOKEN) : null,
    onFrame: () => {},
    onWelcome: (w) => {
      v.sessionId = w.sessionId;
      v.formats.push(w.audio ? `${w.audio.codec}/${w.audio.channels}/${w.audio.frameMs}/${w.audio.bitrate}` : null);
    },
    ...(opts.audio === false ? {} : { onAudio: (p: AudioPacket) => v.packets.push(p), onAudioStatus: (a: boolean) => v.statuses.push(a) }),
  });
  const running = client.run();
  return {
    ...v,
    get sessionId() {
      return v.sessionId;
    },
    client,
    async [Symbol.asyncDispose]() {
      client.stop();
      await running;
      await client[Symbol.asyncDispose]();
    },
  };
}

/** Sends the test packets until `done` (each of them once, then from the start again with new numbers), paced at 2 ms. */
async function sendUntil(server: StreamServer, done: () => boolean, what: string): Promise<number> {
  let sent = 0;
  await until(async () => {
    for (let i = 0; i < 5; i++) server.broadcastAudio(PACKETS[sent++ % PACKETS.length]!);
    await Bun.sleep(2);
    return done();
  }, 15_000, what);
  return sent;
}

describe("audio datagrams", () => {
  test("reach a viewer that offers audio, each once and as sent; the welcome says the format", async () => {
    await using server = await startServer();
    await using v = await viewer(server.port);
    await until(() => v.formats.length > 0 && server.clientCount === 1, 10_000, "the welcome");
    expect(v.formats).toEqual(["opus/1/20/64000"]);
    const sent = await sendUntil(server, () => v.packets.length >= 30, "30 packets");
    // Numbered by the server from 0, one more per packet; what arrived is what was sent.
    for (const p of v.packets) {
      const original = PACKETS[p.seq % PACKETS.length]!;
      expect(p.capturedAt).toBe(original.capturedAt);
      expect(p.data).toEqual(original.data);
      expect(p.samples).toBe(960);
    }
    expect(new Set(v.packets.map((p) => p.seq)).size).toBe(v.packets.length);
    expect(v.packets.length).toBeLessThanOrEqual(sent);
    expect(server.stats.audioPacketsBroadcast).toBe(sent);
    const c = v.client.audioCounters;
    expect(c.forged + c.auth + c.malformed + c.duplicate).toBe(0);
  });

  test("with a token the wire carries no plain Opus, the viewer decrypts it, and forged audio is counted and dropped", async () => {
    await using server = await startServer({ token: true });
    const onWire: Uint8Array[] = [];
    await using spy = await CoViewer.join(server.port, TOKEN, { audio: true, onDatagram: (d) => payloadTypeOf(d) === PayloadType.Opus && onWire.push(d) });
    await using v = await viewer(server.port, { token: true });
    await until(() => server.clientCount === 2 && spy.key !== null && v.formats.length > 0, 10_000, "both welcomed");
    await sendUntil(server, () => v.packets.length >= 20 && onWire.length >= 20, "20 packets at each");
    for (const d of onWire) {
      const { header, payload } = decodeAudioDatagram(d);
      expect(header.encrypted).toBe(true);
      const opus = PACKETS[header.frameNumber % PACKETS.length]!.data;
      // No 8-byte run of the packet appears in the payload.
      const text = Buffer.from(payload).toString("hex");
      for (let i = 0; i + 8 <= opus.length; i += 8) expect(text.includes(Buffer.from(opus.subarray(i, i + 8)).toString("hex"))).toBe(false);
    }
    for (const p of v.packets) expect(p.data).toEqual(PACKETS[p.seq % PACKETS.length]!.data);

    // The co-viewer holds the token and the stream key: it seals audio of its own, signed with its own key.
    if (process.getuid?.() !== 0) return; // sending from the server's port needs a raw socket
    const victimPort = v.client.udpPort;
    const forger = new FrameSigner(spy.welcome!.signing!.streamId);
    const sealer = new FrameSealer({ randomKey: () => spy.key!.key });
    while (sealer.current.id !== spy.key!.id) sealer.rotate();
    const raw = rawUdpSender(spy.welcome!.udpSourcePort);
    const before = v.packets.length;
    const forgedBefore = v.client.audioCounters.forged;
    try {
      const ahead = Math.max(...v.packets.map((p) => p.seq)) + 1000;
      for (let i = 0; i < 10; i++) {
        const fake = { seq: ahead + i, capturedAt: PACKETS[0]!.capturedAt, data: PACKETS[5]!.data };
        const d = sealer.sealAudio(fake.seq, fake.capturedAt, forger.signAudio(fake)).datagram;
        new DataView(d.buffer).setUint32(4, v.sessionId!);
        raw.send(d, "127.0.0.1", victimPort);
      }
      await until(() => v.client.audioCounters.forged - forgedBefore >= 10, 10_000, "ten forged packets counted");
    } finally {
      raw.close();
    }
    expect(v.packets.slice(before).some((p) => p.seq >= 1000)).toBe(false);
  });

  test("a viewer that does not offer audio gets no audio block and no audio datagram", async () => {
    await using server = await startServer();
    let audioDatagrams = 0;
    let frames = 0;
    await using old = await CoViewer.join(server.port, null, { onDatagram: (d) => (payloadTypeOf(d) === PayloadType.Opus ? audioDatagrams++ : frames++) });
    await using v = await viewer(server.port);
    await until(() => old.welcome !== null && v.formats.length > 0, 10_000, "both welcomed");
    expect(old.welcome!.audio).toBeUndefined();
    await sendUntil(server, () => v.packets.length >= 20, "20 packets to the audio viewer");
    expect(audioDatagrams).toBe(0);
  });

  test("a server without audio announces none, and sends none", async () => {
    await using server = await startServer({ audio: false });
    await using v = await viewer(server.port);
    await until(() => v.formats.length > 0, 10_000, "the welcome");
    expect(v.formats).toEqual([null]);
    for (const p of PACKETS.slice(0, 10)) server.broadcastAudio(p);
    expect(server.stats.audioDatagramsSent).toBe(0);
  });

  test("the microphone's outage and return are told to the viewers that play audio", async () => {
    await using server = await startServer();
    await using v = await viewer(server.port);
    await until(() => server.clientCount === 1 && v.formats.length > 0, 10_000, "the welcome");
    server.audioStatus(false);
    await until(() => v.statuses.length === 1, 10_000, "told it is gone");
    server.audioStatus(true);
    await until(() => v.statuses.length === 2, 10_000, "told it is back");
    expect(v.statuses).toEqual([false, true]);
    // One that joins while it is away is told after its welcome.
    server.audioStatus(false);
    await using late = await viewer(server.port);
    await until(() => late.statuses.length === 1, 10_000, "the late viewer told");
    expect(late.statuses).toEqual([false]);
  });

  test("over multicast the group carries each packet once for its members", async () => {
    await using server = await startServer({ multicast: true });
    await using a = await viewer(server.port, { multicast: true });
    await using b = await viewer(server.port, { multicast: true });
    await until(() => server.clientCount === 2, 10_000, "both welcomed");
    await sendUntil(server, () => a.packets.length >= 20 && b.packets.length >= 20, "20 packets at each");
    // Both took them by the group: one datagram per packet for the group, none per member.
    expect([a.client.delivery, b.client.delivery]).toEqual(["group", "group"]);
    expect(server.stats.audioDatagramsSent).toBeLessThanOrEqual(server.stats.audioPacketsBroadcast);
    expect(server.stats.groupDatagramsSent).toBe(server.stats.audioDatagramsSent);
  });
});
