// A multicast group per quality layer, on loopback: the server's side (which groups a
// welcome lists and to whom, what a layer message moves, what is encoded and sent for
// whom) and the protocol rules a hostile viewer meets.
import { describe, expect, test } from "bun:test";
import { cv } from "../lib/native/cv.ts";
import { SIGNATURE_SIZE } from "../lib/net/frame-signature.ts";
import { openGroupReceiver, type GroupReceiver } from "../lib/net/multicast.ts";
import { Handshake, type HandshakeAction } from "../lib/receive/handshake.ts";
import { Admission, type AdmissionAction, type ConnId } from "../lib/send/admission.ts";
import { FrameFanout } from "../lib/send/frame-fanout.ts";
import { newServerStats } from "../lib/send/server-stats.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import {
  ByeReason, CAP_MULTICAST, CAP_MULTICAST_LAYERS, encodeControl, formatIPv4, parseIPv4, PROTOCOL_VERSION, WELCOME_MULTICAST, WELCOME_MULTICAST_LAYERS, type ControlMessage, type Hello, type Welcome,
} from "../lib/wire/control.ts";
import { welcome } from "./helpers/fake-server.ts";
import { decodeDatagram } from "../lib/wire/datagram.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { until } from "./helpers/process.ts";

const STREAM = { width: 640, height: 480, fpsMillihertz: 10_000, fragmentSize: 1368, udpSourcePort: 40_000 };
const GROUP = { address: "239.255.10.1", port: 9998, streamId: 0x5eed };
const LAYER_GROUPS = [
  { address: "239.255.10.2", port: 9998, width: 320, height: 240, streamId: 0x1001 }, { address: "239.255.10.3", port: 9998, width: 160, height: 120, streamId: 0x1002 },
];

function admission(): Admission {
  let id = 0x100;
  return new Admission({
    maxClients: 8, maxPending: 64, heartbeatMs: 1000, timeoutMs: 5000, stream: STREAM,
    cameras: [{ name: "0", stream: STREAM, multicast: GROUP, layerGroups: LAYER_GROUPS }],
    wallClockUs: (now) => 1_700_000_000_000_000 + now * 1000, randomId: () => id++,
  });
}

const sentTo = (actions: AdmissionAction[], conn: ConnId) => actions.flatMap((a) => (a.kind === "send" && a.conn === conn ? [a.msg] : []));

function join(m: Admission, conn: ConnId, capabilities: number): AdmissionAction[] {
  m.connected(conn, { address: "10.77.0.11", port: 50_000 + conn }, 0);
  return m.received(conn, { type: "hello", version: PROTOCOL_VERSION, udpPort: 8000 + conn, capabilities, name: "" }, 0);
}

describe("admission with a group per layer", () => {
  test("a viewer that picks its own layer is welcomed with every layer's group; an older one gets the full layer's only", () => {
    const m = admission();
    const picks = sentTo(join(m, 1, CAP_MULTICAST | CAP_MULTICAST_LAYERS), 1)[0] as Welcome;
    expect(picks).toMatchObject({ flags: WELCOME_MULTICAST, multicast: GROUP, layerGroups: LAYER_GROUPS });
    const older = sentTo(join(m, 2, CAP_MULTICAST), 2)[0] as Welcome;
    expect(older.layerGroups).toBeUndefined();
    expect(older.flags & WELCOME_MULTICAST_LAYERS).toBe(0);
    // A viewer that cannot join a group at all hears of none.
    expect((sentTo(join(m, 3, CAP_MULTICAST_LAYERS), 3)[0] as Welcome).multicast).toBeUndefined();
  });

  test("a layer message moves the session; a repeat or one after a fallback changes nothing; the leave line names its group's layer", () => {
    const m = admission();
    join(m, 1, CAP_MULTICAST | CAP_MULTICAST_LAYERS);
    expect(m.received(1, { type: "layer", layer: 2 }, 100)).toEqual([{ kind: "group-layer", conn: 1, sessionId: 0x100, layer: 2 }]);
    expect(m.received(1, { type: "layer", layer: 2 }, 200)).toEqual([]);
    const bye = m.received(1, { type: "bye", reason: ByeReason.UserQuit }, 300);
    expect(bye.some((a) => a.kind === "log" && a.message === "client left" && a.fields.groupLayer === 2)).toBe(true);
    join(m, 2, CAP_MULTICAST | CAP_MULTICAST_LAYERS);
    m.received(2, { type: "fallback", reason: 1 }, 2100);
    expect(m.received(2, { type: "layer", layer: 1 }, 2200)).toEqual([]);
  });

  test("a layer the welcome did not list, or a layer message from a viewer that was listed none, ends the session as a protocol error", () => {
    const m = admission();
    join(m, 1, CAP_MULTICAST | CAP_MULTICAST_LAYERS);
    const out = m.received(1, { type: "layer", layer: 3 }, 100);
    expect(sentTo(out, 1)).toContainEqual({ type: "bye", reason: ByeReason.ProtocolError });
    expect(out.some((a) => a.kind === "group-layer")).toBe(false);
    join(m, 2, CAP_MULTICAST);
    expect(sentTo(m.received(2, { type: "layer", layer: 1 }, 100), 2)).toContainEqual({ type: "bye", reason: ByeReason.ProtocolError });
  });
});

describe("the viewer's machine", () => {
  const machine = (multicast?: boolean) => new Handshake({
    server: "10.77.0.1:9999", udpPort: 5000, multicast, wallClockMicros: () => 1,
    report: () => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }),
    totals: () => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 }),
  });
  const hello = (m: Handshake) => {
    m.push({ type: "start" }, 0);
    return (m.push({ type: "connected" }, 0)[0] as Extract<HandshakeAction, { type: "send" }>).msg as Hello;
  };

  test("offers to pick its own layer's group exactly when it offers to join a group", () => {
    expect(hello(machine()).capabilities & (CAP_MULTICAST | CAP_MULTICAST_LAYERS)).toBe(CAP_MULTICAST | CAP_MULTICAST_LAYERS);
    expect(hello(machine(false)).capabilities & (CAP_MULTICAST | CAP_MULTICAST_LAYERS)).toBe(0);
  });

  test("a welcome listing a layer larger than its stream is not believed (its size would be taken as a frame size)", () => {
    const m = machine();
    hello(m);
    const w = welcome({ width: 640, height: 480, flags: WELCOME_MULTICAST, multicast: GROUP, layerGroups: [{ ...LAYER_GROUPS[0]!, width: 1280, height: 960 }] });
    const out = m.push({ type: "message", msg: w }, 0);
    expect(out.some((a) => a.type === "receive")).toBe(false);
    expect(JSON.stringify(out.map((a) => ("error" in a ? a.error?.message : "cause" in a ? (a.cause as Error).message : a.type)))).toContain("layer group of 1280x960, larger than its stream's 640x480");
  });
});

describe("the fan-out's layer groups", () => {
  const fanout = () => new FrameFanout({
    socket: { sendMany: () => 0, send: () => false } as never, mtu: 1400, fps: 10, spread: 0.25, group: GROUP, stats: newServerStats(), warnSend: () => {},
    layers: [{ width: 640, height: 480 }, { width: 320, height: 240 }, { width: 160, height: 120 }], layerGroups: LAYER_GROUPS, now: () => 0,
  });
  const target = (id: number, delivery: "multicast" | "unicast") => ({ id, address: "10.77.0.11", tcpPort: 1, udpPort: 8000 + id, name: "", delivery, pathReports: false });

  test("a layer is wanted only while a member is in its group; a unicast session cannot be moved into one, nor anyone into a layer without a group", () => {
    const f = fanout();
    f.start(target(1, "multicast"));
    f.start(target(2, "unicast"));
    expect(f.wantedLayers()).toEqual([]);
    expect(f.groupLayer(1, 2)).toBe(true);
    expect(f.wantedLayers()).toEqual([2]);
    expect(f.groupMembers).toEqual([0, 0, 1]);
    expect(f.groupLayer(2, 1)).toBe(false);
    expect(f.groupLayer(1, 3)).toBe(false);
    expect(f.groupMembers).toEqual([0, 0, 1]);
    f.unicast(1);
    expect(f.wantedLayers()).toEqual([]);
    expect(f.groupMembers).toEqual([0, 0, 0]);
    f.close();
  });

  test("a member's repairs are cut from the layer each frame went to it at, though it moved since; a frame of a layer it was not in was never sent to it", () => {
    const f = fanout();
    f.start(target(1, "multicast"));
    const frame = (seq: number) => ({ seq, capturedAt: seq, width: 640, height: 480, jpeg: new Uint8Array(100) });
    f.send(frame(1), null, 0);
    f.groupLayer(1, 2);
    // Frame 1's half-size copy comes after the move: not this member's.
    f.send(frame(1), null, 1);
    f.send(frame(2), null, 0);
    f.send(frame(2), null, 2);
    expect([f.layerOf(1, 1), f.layerOf(1, 2)]).toEqual([0, 2]);
    expect(f.sent(1)!.framesSent).toBe(2);
    // Frame 3 is not cut yet: its layer will be the member's current one.
    expect(f.layerOf(1, 3)).toBe(2);
    f.close();
  });

  test("more layer groups than smaller layers is a bug, refused at once", () => {
    expect(() => new FrameFanout({
      socket: {} as never, mtu: 1400, fps: 10, spread: 0.25, group: GROUP, stats: newServerStats(), warnSend: () => {}, layers: [{ width: 640, height: 480 }], layerGroups: LAYER_GROUPS,
    })).toThrow(RangeError);
  });
});

/** A viewer on 127.0.0.1 that picks its layer's group by hand: what a real one's machine does by its loss. */
interface GroupViewer {
  welcome: () => Welcome | undefined;
  messages: ControlMessage[];
  /** Whole frames by group address: frame number to picture size, signature stripped. */
  frames: Map<string, Map<number, string>>;
  /** Datagrams by a group whose session id was not that group's stream id. */
  foreign: number;
  join: (g: { address: string; port: number; streamId: number }) => Promise<void>;
  leave: (address: string) => void;
  send: (msg: ControlMessage) => void;
  close: () => void;
}

async function groupViewer(tcpPort: number, capabilities: number, udpPort: number): Promise<GroupViewer> {
  const reader = new MessageReader();
  const groups = new Map<string, GroupReceiver>();
  const v: GroupViewer = {
    welcome: () => v.messages.find((m): m is Welcome => m.type === "welcome"), messages: [], frames: new Map(), foreign: 0,
    join: async ({ address, port, streamId }) => {
      const parts = new Map<number, Uint8Array[]>();
      const got = new Map<number, string>();
      v.frames.set(address, got);
      groups.set(address, await openGroupReceiver({
        address, port, interfaceAddress: "127.0.0.1", receiveBufferBytes: 1 << 20,
        onDatagram: (buf) => {
          const d = decodeDatagram(new Uint8Array(buf));
          const h = d.header;
          if (h.sessionId !== streamId) {
            v.foreign++;
            return;
          }
          const list = parts.get(h.frameNumber) ?? new Array<Uint8Array>(h.fragmentCount);
          list[h.fragmentIndex] = d.payload.slice();
          parts.set(h.frameNumber, list);
          if (list.filter(Boolean).length !== h.fragmentCount) return;
          const whole = Buffer.concat(list);
          const info = cv().jpegInfo(whole.subarray(0, whole.length - SIGNATURE_SIZE));
          if (info) got.set(h.frameNumber, `${info.width}x${info.height}`);
          parts.delete(h.frameNumber);
        },
      }));
    },
    leave: (address) => {
      groups.get(address)?.close();
      groups.delete(address);
    },
    send: () => {},
    close: () => {},
  };
  const sock = await Bun.connect({ hostname: "127.0.0.1", port: tcpPort, socket: { data: (_s, chunk) => void v.messages.push(...reader.push(chunk)) } });
  v.send = (msg) => void sock.write(encodeControl(msg));
  v.close = () => {
    for (const g of groups.values()) g.close();
    groups.clear();
    sock.end();
  };
  // Its own UDP port is never sent to while it is in a group: any free-looking number does.
  v.send({ type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities, name: "" });
  await until(() => v.welcome() !== undefined, 3000, () => `welcomed; heard ${JSON.stringify(v.messages)}`);
  return v;
}

/** The group address `n` after `address`. */
const plus = (address: string, n: number) => formatIPv4(parseIPv4(address)! + n);

/** A group and base port of our own, so runs beside each other do not share one. */
const GROUP_ADDRESS = `239.255.${(crypto.getRandomValues(new Uint8Array(1))[0]! % 200) + 20}.${(crypto.getRandomValues(new Uint8Array(1))[0]! % 250) + 1}`;
const BASE_PORT = 20_000 + (crypto.getRandomValues(new Uint16Array(1))[0]! % 20_000);

describe("a server with a group per layer, on loopback", () => {
  test("a member that moves to layer 1's group gets half-size frames there; layer 1 is encoded only while someone is in it; an older viewer keeps the full picture", async () => {
    const jpegs = await jpegFrames(4, 640, 480);
    const log = memoryLogger("server");
    await using server = await StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 640, height: 480, fps: 10 },
      multicast: { address: GROUP_ADDRESS, port: BASE_PORT, ttl: 1, interfaceAddress: "127.0.0.1" },
    });
    const picks = await groupViewer(server.port, CAP_MULTICAST | CAP_MULTICAST_LAYERS, 9);
    const older = await groupViewer(server.port, CAP_MULTICAST, 10);
    try {
      const w = picks.welcome()!;
      // --layers auto on 640x480: half and quarter, each at the group's address + L with its own stream id.
      expect(w.layerGroups).toEqual([
        { address: plus(GROUP_ADDRESS, 1), port: BASE_PORT, width: 320, height: 240, streamId: expect.any(Number) },
        { address: plus(GROUP_ADDRESS, 2), port: BASE_PORT, width: 160, height: 120, streamId: expect.any(Number) },
      ]);
      expect(new Set([w.multicast!.streamId, ...w.layerGroups!.map((g) => g.streamId)]).size).toBe(3);
      expect(older.welcome()!.layerGroups).toBeUndefined();
      expect(server.layerGroups).toEqual(w.layerGroups!);
      const full = w.multicast!;
      const half = w.layerGroups![0]!;
      await picks.join(full);
      await older.join(full);
      // Layer 1's group joined before anyone says they are in it: nothing may arrive there.
      await picks.join(half);
      let seq = 0;
      const frame = () => server.broadcast({ seq, capturedAt: seq * 100_000, width: 640, height: 480, jpeg: jpegs[seq++ % jpegs.length]! });
      for (let i = 0; i < 3; i++) {
        frame();
        await until(() => picks.frames.get(full.address)!.has(seq - 1) && older.frames.get(full.address)!.has(seq - 1), 3000, "full frames by the group");
      }
      expect(server.stats.layerFramesEncoded).toBe(0);
      expect(picks.frames.get(half.address)!.size).toBe(0);

      // Into layer 1's group, out of the full one's.
      picks.leave(full.address);
      picks.send({ type: "layer", layer: 1 });
      await until(() => server.stats.groupLayerMoves === 1, 3000, "the move heard");
      const from = seq;
      for (let i = 0; i < 5; i++) {
        frame();
        await until(() => older.frames.get(full.address)!.has(seq - 1), 3000, "the older viewer's full frame");
      }
      await until(() => picks.frames.get(half.address)!.size >= 3, 3000, "half-size frames by layer 1's group");
      expect(new Set(picks.frames.get(half.address)!.values())).toEqual(new Set(["320x240"]));
      expect([...picks.frames.get(half.address)!.keys()].every((n) => n >= from)).toBe(true);
      expect(new Set([...older.frames.get(full.address)!.values()])).toEqual(new Set(["640x480"]));
      expect(server.stats.layerFramesEncoded).toBeGreaterThan(0);
      expect(server.stats.layerGroupFramesSent).toBe(server.stats.layerFramesEncoded);
      expect(picks.foreign + older.foreign).toBe(0);

      // Back to the full layer: layer 1 costs nothing again.
      await picks.join(full);
      picks.send({ type: "layer", layer: 0 });
      await until(() => server.stats.groupLayerMoves === 2, 3000, "the move back heard");
      const encoded = server.stats.layerFramesEncoded;
      const back = seq;
      for (let i = 0; i < 3; i++) {
        frame();
        await until(() => picks.frames.get(full.address)!.has(seq - 1), 3000, "full frames again");
      }
      // A copy of the frame broadcast just before the move may still have been in the making.
      expect(server.stats.layerFramesEncoded).toBeLessThanOrEqual(encoded + 1);
      expect([...picks.frames.get(half.address)!.keys()].filter((n) => n >= back)).toEqual([]);
    } finally {
      picks.close();
      older.close();
    }
  });

  test("a group address with no room for the layer groups after it is refused at start, naming the way out", async () => {
    const log = memoryLogger("server");
    await expect(StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 640, height: 480, fps: 10 },
      multicast: { address: "239.255.255.254", port: BASE_PORT, ttl: 1, interfaceAddress: "127.0.0.1" },
    })).rejects.toThrow("--layers off");
  });
});
