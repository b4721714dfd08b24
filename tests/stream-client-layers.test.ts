// The viewer's side of a group per layer against a hand-made server on loopback: it
// climbs down by its own loss, joins the smaller layer's group and says so, takes
// that group's frames, and undoes a move the new group never follows. Short climber
// timings (the defaults are in layer-climber.test.ts).
import { afterEach, expect, test } from "bun:test";
import type { LayerMove } from "../lib/receive/layer-climber.ts";
import { StreamClient } from "../lib/receive/stream-client.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { encodeControl, formatIPv4, parseIPv4, WELCOME_MULTICAST, type ByeTotals, type ControlMessage, type Report } from "../lib/wire/control.ts";
import { fakeServer, welcome } from "./helpers/fake-server.ts";
import { until } from "./helpers/process.ts";

const report = (): Report => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 });
const totals = (): ByeTotals => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 });
const r = crypto.getRandomValues(new Uint8Array(3));
/** A group address and port of our own (the layer's is the next address), so runs beside each other do not share one. */
const FULL = `239.255.${(r[0]! % 200) + 20}.${(r[1]! % 200) + 1}`;
const HALF = formatIPv4(parseIPv4(FULL)! + 1);
const PORT = 20_000 + ((r[2]! * 97) % 20_000);
const CLIMB = { settleMs: 200, windowMs: 600, holdMs: 60_000, minFrames: 4 };

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/**
 * A server that welcomes to the full layer's group (with a half-size layer group) and
 * sends 30 frames a second to the groups in `sendTo`, every other one missing its last
 * datagram on the full layer (half of them lost: well over 5 %).
 */
async function layeredServer(sendTo: () => Set<string>) {
  const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  udp.setMulticastInterface("127.0.0.1");
  udp.setMulticastLoopback(true);
  udp.setMulticastTTL(1);
  const server = fakeServer(() => encodeControl(welcome({
    udpSourcePort: udp.port, flags: WELCOME_MULTICAST, multicast: { address: FULL, port: PORT, streamId: 0x100 },
    layerGroups: [{ address: HALF, port: PORT, width: 32, height: 24, streamId: 0x200 }],
  })));
  const cut = new Fragmenter(576);
  let seq = 0;
  const timer = setInterval(() => {
    seq++;
    const jpeg = new Uint8Array(1200).fill(seq & 0xff);
    const groups = sendTo();
    if (groups.has(FULL)) {
      const datagrams = cut.fragment({ seq, capturedAt: seq, jpeg }, 0x100);
      for (const d of seq % 2 ? datagrams : datagrams.slice(0, -1)) udp.send(d, PORT, FULL);
    }
    if (groups.has(HALF)) for (const d of cut.fragment({ seq, capturedAt: seq, jpeg: jpeg.subarray(0, 300) }, 0x200)) udp.send(d, PORT, HALF);
  }, 33);
  cleanup.push(() => {
    clearInterval(timer);
    udp.close();
    server[Symbol.dispose]();
  });
  return server;
}

async function client(port: number) {
  const moves: ({ move: LayerMove; width: number; height: number } | { undone: LayerMove; text: string })[] = [];
  const frames: number[] = [];
  const c = await StreamClient.open({
    host: "127.0.0.1", port, udpPort: 0, report, totals, multicastWaitMs: 1000, climb: CLIMB,
    onFrame: (f) => frames.push(f.jpeg.length), onGroupLayer: (e) => moves.push(e),
  });
  const running = c.run();
  cleanup.push(() => c.stop());
  return { c, moves, frames, running };
}

const layerMessages = (heard: ControlMessage[]) => heard.flatMap((m) => (m.type === "layer" ? [m.layer] : []));

test("too many frames lost in the full layer's group: the viewer moves to the half layer's, says so, and takes its frames", async () => {
  // The server follows what the viewer says, as a real one does: the half layer goes to its group once asked for.
  let heard: ControlMessage[] = [];
  const server = await layeredServer(() => new Set(layerMessages(heard).at(-1) === 1 ? [FULL, HALF] : [FULL]));
  heard = server.heard;
  const v = await client(server.port);
  await until(() => v.moves.length > 0, 10_000, "a move");
  expect(v.moves[0]).toMatchObject({ move: { from: 0, to: 1, why: "loss" }, width: 32, height: 24 });
  await until(() => v.frames.some((n) => n === 300), 10_000, () => `half-size frames (got sizes ${[...new Set(v.frames)]})`);
  expect(layerMessages(server.heard)).toEqual([1]);
  // From the move on, only the new group's frames: the full layer's are of another stream id.
  const after = v.frames.length;
  await until(() => v.frames.length >= after + 5, 10_000, "more frames");
  expect(new Set(v.frames.slice(after))).toEqual(new Set([300]));
  expect(v.c.delivery).toBe("group");
  v.c.stop();
  await v.running;
}, 20_000);

test("a move the new group never follows is undone: the viewer says it is back and stays in the full layer's group", async () => {
  const server = await layeredServer(() => new Set([FULL]));
  const v = await client(server.port);
  await until(() => v.moves.some((m) => "undone" in m), 10_000, "the move undone");
  const undone = v.moves.find((m): m is { undone: LayerMove; text: string } => "undone" in m)!;
  expect(undone.undone).toMatchObject({ from: 0, to: 1 });
  expect(undone.text).toContain("nothing came by layer 1's group within 1 s");
  expect(layerMessages(server.heard)).toEqual([1, 0]);
  const before = v.frames.length;
  await until(() => v.frames.length > before + 3, 10_000, "frames by the full layer's group go on");
  v.c.stop();
  await v.running;
}, 20_000);
