// The server's control protocol driven directly, with a fake clock: every timeout
// here is a number passed in, never a wait. Classroom viewers and viewers served
// elsewhere go through the same machine, which counts every kind against maxClients.
import { describe, expect, test } from "bun:test";
import { formatLine } from "../lib/log/format.ts";
import { Admission, MAX_PENDING_PER_ADDRESS, type AdmissionAction, type AdmissionOptions, type ConnId } from "../lib/send/admission.ts";
import {
  ByeReason,
  encodeControl,
  MAX_REFUSE_TEXT_BYTES,
  CAP_RESUME,
  PROTOCOL_VERSION,
  RefuseReason,
  type ControlMessage,
  type Hello,
} from "../lib/wire/control.ts";
import type { SendCounters } from "../lib/send/sessions.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { prng } from "./helpers/prng.ts";

const HERE = "192.168.1.20";
const THERE = "192.168.1.30";
const WALL_START_US = 1_700_000_000_000_000;
const STREAM = { width: 320, height: 240, fpsMillihertz: 30_000, fragmentSize: 1368, udpSourcePort: 40_000 };

/** What the sender has sent, per machine and session id: tests set it as the sender would count it. */
const SENT = new WeakMap<Admission, Map<number, SendCounters>>();

function machine(over: Partial<AdmissionOptions> = {}): Admission {
  let id = 0x100;
  const sent = new Map<number, SendCounters>();
  const m = new Admission({
    maxClients: 4, maxPending: 64, heartbeatMs: 1000, timeoutMs: 5000, stream: STREAM,
    wallClockUs: (now) => WALL_START_US + now * 1000, randomId: () => id++, sent: (sid) => sent.get(sid), ...over,
  });
  SENT.set(m, sent);
  return m;
}

/** Says the sender has sent `counts` to session `sid` of `m`. */
function sendCounts(m: Admission, sid: number, counts: Partial<SendCounters>): void {
  const sent = SENT.get(m)!;
  sent.set(sid, { framesSent: 0, firstFrame: null, lastFrame: null, ...sent.get(sid), ...counts });
}

const hello = (udpPort: number, name = "v"): Hello => ({ type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities: 0, name });
const heartbeat: ControlMessage = { type: "heartbeat", sentAt: WALL_START_US };
const report = (framesReceived: number, framesLost = 0, framesIncomplete = 0): ControlMessage => ({
  type: "report", framesReceived, framesLost, framesIncomplete, datagramsDropped: 0, latencyP50Us: 900, latencyP95Us: 2000, fpsMillihertz: 30_000,
});

/** Messages sent to one connection. */
const sentTo = (actions: AdmissionAction[], conn: ConnId) =>
  actions.flatMap((a) => (a.kind === "send" && a.conn === conn ? [a.msg] : []));

/** Log actions as the server's log would print them, without the timestamp (a security event is a WARN line). */
const lines = (actions: AdmissionAction[]) =>
  actions.flatMap((a) => (a.kind === "log" ? [formatLine(new Date(0), (a.level === "security" ? "WARN" : a.level.toUpperCase()) as "INFO", "server", a.message, a.fields).replace(/^\S+ /, "")] : []));

/** Action kinds in order, with the connection they are for. */
const kinds = (actions: AdmissionAction[]) => actions.map((a) => (a.kind === "log" ? `log ${a.message}` : `${a.kind} ${a.conn}`));

/** Connects and says hello; returns what the hello produced. */
function join(m: Admission, conn: ConnId, udpPort: number, now = 0, address = HERE): AdmissionAction[] {
  expect(m.connected(conn, { address, port: 50_000 + conn }, now)).toEqual([]);
  return m.received(conn, hello(udpPort), now);
}

function sessionOf(actions: AdmissionAction[]) {
  const start = actions.find((a) => a.kind === "start");
  if (!start || start.kind !== "start") throw new Error(`no session started: ${kinds(actions).join(", ")}`);
  return start.session;
}

describe("cameras", () => {
  const DESK = { width: 640, height: 480, fpsMillihertz: 15_000, fragmentSize: 1368, udpSourcePort: 40_000 };
  const twoCameras = () => machine({ cameras: [{ name: "board", stream: STREAM, multicast: null }, { name: "desk", stream: DESK, multicast: null }] });
  const helloFor = (udpPort: number, camera: string): Hello => ({ ...hello(udpPort), camera });

  test("a hello that names a camera, by name or number, is welcomed to that camera's stream, and the welcome names it", () => {
    const m = twoCameras();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const byName = m.received(1, helloFor(8001, "desk"), 0);
    expect(sentTo(byName, 1)).toEqual([{ type: "welcome", sessionId: 0x100, ...DESK, heartbeatMs: 1000, timeoutMs: 5000, flags: 0, camera: { index: 1, count: 2, name: "desk" } }]);
    expect(sessionOf(byName).camera).toBe(1);
    expect(lines(byName)[0]).toContain("camera=desk");
    m.connected(2, { address: HERE, port: 50_002 }, 0);
    const byNumber = m.received(2, helloFor(8002, "0"), 0);
    expect(sentTo(byNumber, 2)[0]).toMatchObject({ width: 320, height: 240, camera: { index: 0, count: 2, name: "board" } });
    expect(m.viewers().map((v) => v.camera)).toEqual([1, 0]);
    expect([m.viewerCountOf(0), m.viewerCountOf(1)]).toEqual([1, 1]);
  });

  test("a hello without a camera (an older viewer) gets camera 0 and a welcome without the camera block", () => {
    const m = twoCameras();
    const out = join(m, 1, 8001);
    expect(sentTo(out, 1)).toEqual([{ type: "welcome", sessionId: 0x100, ...STREAM, heartbeatMs: 1000, timeoutMs: 5000, flags: 0 }]);
    expect(sessionOf(out).camera).toBe(0);
  });

  test("a camera the server does not have is refused with the list of cameras, and takes no place", () => {
    const m = twoCameras();
    for (const [conn, wanted] of [[1, "2"], [2, "Desk"], [3, "window"]] as const) {
      m.connected(conn, { address: HERE, port: 50_000 + conn }, 0);
      const out = m.received(conn, helloFor(8000 + conn, wanted), 0);
      expect(kinds(out)).toEqual(["log client refused", "send " + conn, "close " + conn]);
      expect(sentTo(out, conn)).toEqual([{ type: "refuse", reason: RefuseReason.NoSuchCamera, text: `no camera "${wanted}" on this server; it has 2 cameras: 0=board, 1=desk` }]);
      expect(lines(out)[0]).toContain('reason="no such camera"');
    }
    expect(m.viewerCount).toBe(0);
  });

  test("a browser reader moved down the ladder leaves with the picture it was last sent", () => {
    const m = twoCameras();
    expect(m.admitOther(7, "browser", THERE, "Chrome", 0, 1).refused).toBeNull();
    m.updateOther(7, { framesSent: 30, framesReceived: 28, framesLost: 2, picture: { layer: 1, width: 320, height: 240 } });
    expect(lines(m.leaveOther(7, "closed", 2000))[0]).toContain("framesLost=2 picture=320x240");
  });

  test("viewers served elsewhere count for the camera they watch; a camera out of range is a programming error", () => {
    const m = twoCameras();
    expect(m.admitOther(7, "browser", THERE, "Chrome", 0, 1).refused).toBeNull();
    expect([m.viewerCountOf(0), m.viewerCountOf(1)]).toEqual([0, 1]);
    expect(m.viewers()[0]!.camera).toBe(1);
    expect(() => m.admitOther(8, "browser", THERE, "Chrome", 0, 2)).toThrow(RangeError);
  });
});

describe("hello", () => {
  test("is answered with a welcome describing the stream; frames start for the TCP peer's address and the hello's UDP port", () => {
    const m = machine();
    const out = join(m, 1, 8001);
    expect(kinds(out)).toEqual(["send 1", "start 1", "log client joined"]);
    expect(sentTo(out, 1)).toEqual([{ type: "welcome", sessionId: 0x100, ...STREAM, heartbeatMs: 1000, timeoutMs: 5000, flags: 0 }]);
    expect(sessionOf(out)).toMatchObject({ id: 0x100, address: HERE, udpPort: 8001, tcpPort: 50_001, name: "v" });
    expect(lines(out)).toEqual(["INFO [server] client joined client=192.168.1.20:50001 udp=8001 session=00000100 name=v clients=1"]);
    expect(m.sessionCount).toBe(1);
    expect(m.pendingCount).toBe(0);
  });

  test("of another protocol version is refused as a version mismatch, saying why", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.decodeFailed(1, new DecodeError("bad-version", "hello protocol version 0x02, this build speaks 0x01"), 0);
    expect(kinds(out)).toEqual(["log client refused", "send 1", "close 1"]);
    expect(sentTo(out, 1)).toEqual([{ type: "refuse", reason: RefuseReason.VersionMismatch, text: "protocol version mismatch: hello protocol version 0x02, this build speaks 0x01" }]);
    expect(lines(out)[0]).toContain('reason="version mismatch"');
    expect(m.pendingCount).toBe(0);
  });

  test("that does not decode is refused as a bad hello; a refuse text too long to carry is cut to fit", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.decodeFailed(1, new DecodeError("bad-magic", "hello magic 0x4c43414e, expected 0x4c43414d (\"LCAM\")"), 0);
    expect(sentTo(out, 1)).toEqual([{ type: "refuse", reason: RefuseReason.BadHello, text: 'bad hello: hello magic 0x4c43414e, expected 0x4c43414d ("LCAM")' }]);

    m.connected(2, { address: HERE, port: 50_002 }, 0);
    const long = sentTo(m.decodeFailed(2, new DecodeError("bad-value", "é".repeat(400)), 0), 2)[0]!;
    if (long.type !== "refuse") throw new Error(`expected refuse, got ${long.type}`);
    expect(new TextEncoder().encode(long.text).length).toBeLessThanOrEqual(MAX_REFUSE_TEXT_BYTES);
    expect(long.text).toEndWith("...");
    expect(() => encodeControl(long)).not.toThrow();
  });

  test("input that fails for another reason than a decode error ends the connection without a refuse", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.decodeFailed(1, new Error("reader broke"), 0);
    expect(kinds(out)).toEqual(["log malformed control message", "close 1"]);
    expect(lines(out)).toEqual(['WARN [server] malformed control message client=192.168.1.20:50001 error="Error: reader broke"']);
  });

  test("a first message other than hello is refused as a bad hello", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.received(1, heartbeat, 0);
    expect(sentTo(out, 1)).toEqual([{ type: "refuse", reason: RefuseReason.BadHello, text: "expected hello, got heartbeat" }]);
    expect(kinds(out).at(-1)).toBe("close 1");
    // Forgotten: what still arrives is ignored.
    expect(m.received(1, hello(8001), 1)).toEqual([]);
    expect(m.sessionCount).toBe(0);
  });

  test("must come within the hello deadline (2 s by default, shorter than the session timeout)", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 1000);
    expect(m.tick(3000)).toEqual([]);
    const out = m.tick(3001);
    expect(kinds(out)).toEqual(["log connection closed", "close 1"]);
    expect(lines(out)).toEqual(['WARN [server] connection closed client=192.168.1.20:50001 reason="no hello within timeout"']);
    expect(m.pendingCount).toBe(0);
    expect(m.received(1, hello(8001), 3002)).toEqual([]);
    const slow = machine({ helloTimeoutMs: 500 });
    slow.connected(1, { address: HERE, port: 50_001 }, 0);
    expect(kinds(slow.tick(501))).toEqual(["log connection closed", "close 1"]);
  });
});

describe("pending connections", () => {
  test("one address holds at most MAX_PENDING_PER_ADDRESS without hello: one more evicts that address's oldest, no one else's", () => {
    const m = machine();
    expect(m.connected(99, { address: THERE, port: 50_099 }, 0)).toEqual([]);
    for (let i = 0; i < MAX_PENDING_PER_ADDRESS; i++) expect(m.connected(i, { address: HERE, port: 50_000 + i }, i)).toEqual([]);
    const over = m.connected(100, { address: HERE, port: 50_100 }, 100);
    expect(kinds(over)).toEqual(["log connection evicted", "send 0", "close 0"]);
    expect(sentTo(over, 0)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "too many connections without hello from this address" }]);
    expect(lines(over)).toEqual(['WARN [server] connection evicted client=192.168.1.20:50000 reason="too many connections without hello from this address"']);
    expect(m.pendingCount).toBe(MAX_PENDING_PER_ADDRESS + 1);
    expect(m.pendingEvicted).toBe(1);
    // The newest is the one that stays; the evicted one's hello is too late.
    expect(m.received(0, hello(8000), 101)).toEqual([]);
    expect(sentTo(m.received(100, hello(8100), 101), 100)[0]!.type).toBe("welcome");
    expect(sentTo(m.received(99, hello(8099), 101), 99)[0]!.type).toBe("welcome");
  });

  test("all addresses together hold at most maxPending: one more evicts the oldest; a closed one frees its place", () => {
    const m = machine({ maxPending: 2 });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    m.connected(2, { address: THERE, port: 50_002 }, 1);
    const over = m.connected(3, { address: "192.168.1.40", port: 50_003 }, 2);
    expect(kinds(over)).toEqual(["log connection evicted", "send 1", "close 1"]);
    expect(sentTo(over, 1)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "too many connections without hello" }]);
    expect(m.closed(2, 3)).toEqual([{ kind: "close", conn: 2, reason: "connection closed" }]);
    expect(m.connected(4, { address: "192.168.1.40", port: 50_004 }, 3)).toEqual([]);
    expect(m.pendingCount).toBe(2);
  });

  test("a flood of silent connections cannot keep a viewer out: it connects and is welcomed", () => {
    const m = machine({ maxPending: 8 });
    for (let i = 0; i < 1000; i++) m.connected(1000 + i, { address: `10.0.${i >> 8}.${i & 0xff}`, port: 40_000 }, i);
    expect(m.pendingCount).toBe(8);
    expect(kinds(m.connected(1, { address: HERE, port: 50_001 }, 1000))).toEqual(["log connection evicted", "send 1992", "close 1992"]);
    expect(sentTo(m.received(1, hello(8001), 1000), 1)[0]!.type).toBe("welcome");
  });
});

describe("admission", () => {
  test("a full server refuses with server full; a leave makes room", () => {
    const m = machine({ maxClients: 1 });
    join(m, 1, 8001);
    m.connected(2, { address: THERE, port: 50_002 }, 0);
    const out = m.received(2, hello(8002), 0);
    expect(kinds(out)).toEqual(["log client refused", "send 2", "close 2"]);
    expect(sentTo(out, 2)).toEqual([{ type: "refuse", reason: RefuseReason.ServerFull, text: "server full: 1 viewers already connected" }]);
    expect(lines(out)[0]).toBe('WARN [server] client refused client=192.168.1.30:50002 udp=8002 reason="server full" max=1');
    m.received(1, { type: "bye", reason: ByeReason.UserQuit }, 10);
    expect(sentTo(join(m, 3, 8003, 10, THERE), 3)[0]!.type).toBe("welcome");
  });

  test("a hello for an address and UDP port that has a session, with that session's resume secret, replaces it, even when full", () => {
    const m = machine({ maxClients: 1, randomSecret: () => new Uint8Array(16).fill(0x5e) });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const first = m.received(1, { ...hello(8001), capabilities: CAP_RESUME }, 0);
    const welcome = sentTo(first, 1)[0]!;
    expect(welcome).toMatchObject({ type: "welcome", resume: new Uint8Array(16).fill(0x5e) });
    sendCounts(m, sessionOf(first).id, { framesSent: 40 });
    m.received(1, report(38, 1, 1), 1000);
    m.connected(2, { address: HERE, port: 50_002 }, 1500);
    const out = m.received(2, { ...hello(8001), capabilities: CAP_RESUME, resume: (welcome as { resume: Uint8Array }).resume }, 1500);
    expect(kinds(out)).toEqual(["send 1", "stop 1", "log client left", "close 1", "send 2", "start 2", "log client joined"]);
    expect(sentTo(out, 1)).toEqual([{ type: "bye", reason: ByeReason.Other }]);
    expect(sentTo(out, 2)[0]!.type).toBe("welcome");
    expect(lines(out)[0]).toBe(
      'INFO [server] client left client=192.168.1.20:50001 udp=8001 session=00000100 reason="replaced by a new session" seconds=1.5 framesSent=40 framesReceived=38 framesLost=2 clients=0',
    );
    expect(m.sessionCount).toBe(1);
    // The old connection is forgotten: its late bye changes nothing.
    expect(m.received(1, { type: "bye", reason: ByeReason.UserQuit }, 1600)).toEqual([]);
  });

  test("any other hello for that address and UDP port is refused: no secret, or a wrong one", () => {
    const m = machine({ randomSecret: () => new Uint8Array(16).fill(0x5e) });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    m.received(1, { ...hello(8001), capabilities: CAP_RESUME }, 0);
    for (const [conn, resume] of [[2, undefined], [3, new Uint8Array(16).fill(0x5f)]] as const) {
      m.connected(conn, { address: HERE, port: 50_000 + conn }, 100);
      const out = m.received(conn, { ...hello(8001), capabilities: CAP_RESUME, resume }, 100);
      expect(kinds(out)).toEqual(["log client refused", `send ${conn}`, `close ${conn}`]);
      expect(sentTo(out, conn)).toEqual([
        { type: "refuse", reason: RefuseReason.Other, text: "UDP port 8001 of 192.168.1.20 is already receiving this stream; it is freed when that viewer leaves or is silent for 5 s" },
      ]);
      expect(lines(out)[0]).toBe(`WARN [server] client refused client=192.168.1.20:5000${conn} udp=8001 reason="udp port in use"`);
    }
    expect(m.sessionCount).toBe(1);
    expect(m.viewers()[0]!.udpPort).toBe(8001);
  });

  test("the same UDP port on another address is another viewer, not a replacement", () => {
    const m = machine();
    join(m, 1, 8001, 0, HERE);
    const out = join(m, 2, 8001, 0, THERE);
    expect(kinds(out)).toEqual(["send 2", "start 2", "log client joined"]);
    expect(m.sessionCount).toBe(2);
  });

  test("a failure while handling a message costs that connection only", () => {
    const m = machine({ randomId: () => 0 }); // never a usable session id
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.received(1, hello(8001), 0);
    expect(kinds(out)).toEqual(["log control message handling failed", "close 1"]);
    expect(lines(out)[0]).toContain('error="cannot draw a unique session id"');
    expect(m.pendingCount).toBe(0);
    expect(m.sessionCount).toBe(0);
  });

  test("a welcome the codec cannot carry is refused when the machine is built, not at every hello", () => {
    expect(() => machine({ heartbeatMs: 5000, timeoutMs: 5000 })).toThrow(RangeError);
  });
});

describe("liveness", () => {
  test("heartbeats go every heartbeatMs from the welcome, stamped with the wall clock; after a stall, one, not a burst", () => {
    const m = machine();
    join(m, 1, 8001, 0);
    expect(m.tick(999)).toEqual([]);
    expect(m.tick(1000)).toEqual([{ kind: "send", conn: 1, msg: { type: "heartbeat", sentAt: WALL_START_US + 1_000_000 } }]);
    expect(m.tick(1999)).toEqual([]);
    expect(sentTo(m.tick(2000), 1)).toHaveLength(1);
    m.received(1, heartbeat, 3000);
    expect(sentTo(m.tick(4700), 1)).toEqual([{ type: "heartbeat", sentAt: WALL_START_US + 4_700_000 }]);
    expect(m.tick(5699)).toEqual([]);
    expect(sentTo(m.tick(5700), 1)).toHaveLength(1);
  });

  test("a session silent for longer than timeoutMs gets bye timeout and leaves; any message keeps it", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 0)).id, { framesSent: 60 });
    m.received(1, report(59), 2000);
    expect(sentTo(m.tick(7000), 1).map((msg) => msg.type)).toEqual(["heartbeat"]);
    const out = m.tick(7001);
    expect(kinds(out)).toEqual(["send 1", "stop 1", "log client left", "close 1"]);
    expect(sentTo(out, 1)).toEqual([{ type: "bye", reason: ByeReason.Timeout }]);
    expect(lines(out)[0]).toBe("INFO [server] client left client=192.168.1.20:50001 udp=8001 session=00000100 reason=timeout seconds=7.0 framesSent=60 framesReceived=59 framesLost=0 clients=0");
    expect(m.sessionCount).toBe(0);
    expect(m.tick(20_000)).toEqual([]);
  });

  test("a closed connection ends its session without a bye; a pending one just goes", () => {
    const m = machine();
    join(m, 1, 8001, 0);
    m.connected(2, { address: HERE, port: 50_002 }, 0);
    const out = m.closed(1, 2000);
    expect(kinds(out)).toEqual(["stop 1", "log client left", "close 1"]);
    expect(lines(out)[0]).toContain('reason="connection closed"');
    expect(lines(out)[0]).not.toContain("framesReceived=");
    expect(m.closed(2, 2000)).toEqual([{ kind: "close", conn: 2, reason: "connection closed" }]);
    expect(m.closed(2, 2001)).toEqual([]);
    expect(m.pendingCount + m.sessionCount).toBe(0);
  });
});

describe("leaving", () => {
  test("a bye with the viewer's totals is logged with those exact totals, not the last report", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 0)).id, { framesSent: 150 });
    m.received(1, report(147, 1, 0), 4000);
    const out = m.received(1, { type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: 149, framesLost: 1, framesIncomplete: 0, framesRecorded: 149 } }, 5000);
    expect(kinds(out)).toEqual(["stop 1", "log client left", "close 1"]);
    expect(sentTo(out, 1)).toEqual([]);
    expect(lines(out)).toEqual([
      "INFO [server] client left client=192.168.1.20:50001 udp=8001 session=00000100 reason=goodbye seconds=5.0 framesSent=150 framesReceived=149 framesLost=1 framesRecorded=149 clients=0",
    ]);
  });

  test("a bye without totals (an older viewer) falls back to the last report", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 0)).id, { framesSent: 150 });
    m.received(1, report(147, 2, 1), 4000);
    const [line] = lines(m.received(1, { type: "bye", reason: ByeReason.UserQuit }, 5000));
    expect(line).toContain("reason=goodbye");
    expect(line).toContain("framesReceived=147 framesLost=3 clients=0");
    expect(line).not.toContain("framesRecorded=");
  });

  test("a malformed or unexpected message after the welcome gets bye protocol error", () => {
    const m = machine();
    join(m, 1, 8001, 0);
    join(m, 2, 8002, 0);
    const bad = m.decodeFailed(1, new DecodeError("bad-length", "control length 0xffff outside 1..1022"), 100);
    expect(kinds(bad)).toEqual(["log malformed control message", "send 1", "stop 1", "log client left", "close 1"]);
    expect(sentTo(bad, 1)).toEqual([{ type: "bye", reason: ByeReason.ProtocolError }]);
    expect(lines(bad)[1]).toContain('reason="protocol error"');
    const again = m.received(2, hello(8002), 100);
    expect(lines(again)[0]).toBe("WARN [server] unexpected control message client=192.168.1.20:50002 type=hello");
    expect(sentTo(again, 2)).toEqual([{ type: "bye", reason: ByeReason.ProtocolError }]);
    expect(m.sessionCount).toBe(0);
  });

  test("shutdown says bye to every viewer, closes waiting connections quietly and refuses new ones", () => {
    const m = machine();
    join(m, 1, 8001, 0);
    m.connected(2, { address: HERE, port: 50_002 }, 0);
    const out = m.shutdown(3000);
    expect(kinds(out)).toEqual(["send 1", "stop 1", "log client left", "close 1", "close 2"]);
    expect(sentTo(out, 1)).toEqual([{ type: "bye", reason: ByeReason.Shutdown }]);
    expect(lines(out)[0]).toContain('reason="server shutdown"');
    expect(sentTo(m.connected(3, { address: HERE, port: 50_003 }, 3001), 3)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "shutting down" }]);
    expect(m.tick(10_000)).toEqual([]);
  });
});

// --- first bytes, classroom viewers, and one count for every kind ----------------------

const ascii = (s: string) => new TextEncoder().encode(s);
const FRAME = (seq: number): Frame => ({ seq, capturedAt: 0, width: 16, height: 9, jpeg: new Uint8Array([0xff, 0xd8, seq & 0xff]) });
/** Datagrams sent, as "address:port seq-byte". */
const datagrams = (actions: AdmissionAction[]) =>
  actions.flatMap((a) => (a.kind === "datagram" ? [`${a.address}:${a.port} ${a.bytes[2]}`] : []));

/** Connects and announces a classroom viewer's UDP port. */
function classic(m: Admission, conn: ConnId, udpPort: number, now = 0, address = HERE): AdmissionAction[] {
  expect(m.connected(conn, { address, port: 50_000 + conn }, now)).toEqual([]);
  return m.arrived(conn, ascii(String(udpPort)), now);
}

describe("first bytes", () => {
  test("a lancam connection's bytes all go to the control decoder, from its very first byte", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const bytes = encodeControl(hello(8001));
    expect(m.arrived(1, bytes.subarray(0, 1), 0)).toEqual([{ kind: "control", conn: 1, bytes: bytes.subarray(0, 1) }]);
    expect(m.arrived(1, bytes.subarray(1), 0)).toEqual([{ kind: "control", conn: 1, bytes: bytes.subarray(1) }]);
    expect(m.arrived(1, new Uint8Array(0), 0)).toEqual([]);
    // Still waiting for the hello the decoder will hand over.
    expect(m.pendingCount).toBe(1);
    expect(kinds(m.received(1, hello(8001), 1))).toEqual(["send 1", "start 1", "log client joined"]);
  });

  test("an ASCII port number is a classroom viewer, at once or once a CR's LF has come", () => {
    const m = machine();
    const out = classic(m, 1, 8888);
    expect(lines(out)).toEqual(["INFO [server] client joined client=192.168.1.20:50001 kind=classic udp=8888 clients=1"]);
    m.connected(2, { address: THERE, port: 50_002 }, 0);
    expect(m.arrived(2, ascii("80\r"), 0)).toEqual([]);
    expect(lines(m.arrived(2, ascii("\n"), 0))).toEqual(["INFO [server] client joined client=192.168.1.30:50002 kind=classic udp=80 clients=2"]);
    expect(m.classicCount).toBe(2);
    expect(m.pendingCount).toBe(0);
  });

  test("anything else is closed without a refuse (it would mean nothing to the peer) and logged with the bytes", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const out = m.arrived(1, ascii("GET / HTTP/1.1\r\n"), 0);
    expect(kinds(out)).toEqual(["log client refused", "close 1"]);
    expect(lines(out)).toEqual(['WARN [server] client refused client=192.168.1.20:50001 reason="bad first bytes" detail="first byte 0x47 is neither a lancam hello nor an ASCII port number"']);
    expect(m.pendingCount).toBe(0);
    expect(m.arrived(1, ascii("more"), 1)).toEqual([]);
  });

  test("undecided bytes wait at most the hello deadline, and count as pending", () => {
    const m = machine({ maxPending: 2 });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    expect(m.arrived(1, ascii("8\r"), 0)).toEqual([]);
    m.connected(2, { address: THERE, port: 50_002 }, 0);
    // The undecided one is pending like any other: the oldest, it makes room for the newest.
    expect(sentTo(m.connected(3, { address: THERE, port: 50_003 }, 0), 1)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "too many connections without hello" }]);
    expect(m.tick(2000)).toEqual([]);
    const out = m.tick(2001);
    expect(lines(out)).toEqual([
      'WARN [server] connection closed client=192.168.1.30:50002 reason="no hello within timeout"',
      'WARN [server] connection closed client=192.168.1.30:50003 reason="no hello within timeout"',
    ]);
    expect(kinds(out).filter((k) => k.startsWith("close"))).toEqual(["close 2", "close 3"]);
  });

  test("a joined classroom viewer is no longer pending: it frees its place and gets no hello deadline or heartbeats", () => {
    const m = machine({ maxClients: 32 });
    for (let i = 0; i < MAX_PENDING_PER_ADDRESS; i++) classic(m, i, 9000 + i);
    expect(m.pendingCount).toBe(0);
    expect(m.connected(100, { address: HERE, port: 50_100 }, 0)).toEqual([]);
    // Only the connection that said nothing meets the deadline; with no picture sent,
    // nothing was left unanswered, so the classroom viewers stay.
    expect(kinds(m.tick(60_000))).toEqual(["log connection closed", "close 100"]);
    expect(m.classicTick(60_000)).toEqual([]);
    expect(m.classicCount).toBe(MAX_PENDING_PER_ADDRESS);
  });

  test("bytes a classroom viewer sends after its port are counted and ignored", () => {
    const m = machine();
    classic(m, 1, 8888);
    expect(m.arrived(1, ascii("8888 and more"), 10)).toEqual([]);
    expect(m.classicExtraBytes).toBe(13);
    expect(m.classicCount).toBe(1);
  });

  test("hostile first bytes never throw; the first byte alone decides lancam or refusal", () => {
    const rand = prng(11);
    const m = machine({ maxPending: 10_000 });
    for (let conn = 1; conn <= 2000; conn++) {
      m.connected(conn, { address: `10.0.${conn >> 8}.${conn & 0xff}`, port: 1 }, 0);
      for (let chunk = 0; chunk < 3; chunk++) {
        const bytes = Uint8Array.from({ length: 1 + Math.floor(rand() * 6) }, () => (rand() < 0.6 ? 0x30 + Math.floor(rand() * 10) : Math.floor(rand() * 256)));
        const out = m.arrived(conn, bytes, 0);
        if (chunk > 0) continue;
        if (bytes[0]! <= 4) expect(out).toEqual([{ kind: "control", conn, bytes }]);
        else if (bytes[0]! < 0x30 || bytes[0]! > 0x39) expect(kinds(out)).toEqual(["log client refused", `close ${conn}`]);
        else expect(out.every((a) => a.kind === "log" || a.kind === "close")).toBe(true);
      }
    }
    expect(m.viewerCount).toBe(4); // the first four classroom viewers; the rest found the server full
  });
});

describe("classroom viewers", () => {
  test("get the newest frame per answer at the address and port they announced; end leaves, logged with reason and counts", () => {
    const m = machine();
    classic(m, 1, 8888);
    expect(m.classicFrame(FRAME(1), 10)).toEqual([]); // the first-send delay
    expect(datagrams(m.classicTick(100))).toEqual([`${HERE}:8888 1`]);
    m.classicFrame(FRAME(2), 110);
    m.classicFrame(FRAME(3), 120);
    expect(datagrams(m.answer(HERE, 8888, ascii("continue"), 150))).toEqual([`${HERE}:8888 3`]);
    // From anyone else, an answer is counted and does nothing.
    expect(m.answer(THERE, 8888, ascii("end"), 160)).toEqual([]);
    expect(m.answer(HERE, 8889, ascii("continue"), 160)).toEqual([]);
    expect(m.answer(HERE, 8888, ascii("continu"), 160)).toEqual([]);
    expect(m.classicCounters).toMatchObject({ foreign: 2, invalid: 1 });
    const out = m.answer(HERE, 8888, ascii("end"), 1000);
    expect(kinds(out)).toEqual(["log client left", "close 1"]);
    expect(lines(out)).toEqual(["INFO [server] client left client=192.168.1.20:50001 kind=classic udp=8888 reason=end seconds=1.0 framesSent=2 framesReceived=1 resends=0 clients=0"]);
    expect(m.classicCount).toBe(0);
    expect(m.closed(1, 1001)).toEqual([]);
  });

  test("a closed connection, silence on UDP and shutdown end them too", () => {
    const m = machine();
    classic(m, 1, 8001);
    classic(m, 2, 8002);
    classic(m, 3, 8003);
    m.classicFrame(FRAME(1), 0);
    m.classicTick(50);
    m.answer(HERE, 8002, ascii("continue"), 60);
    m.answer(HERE, 8003, ascii("continue"), 60);
    expect(lines(m.closed(1, 1000))[0]).toContain("kind=classic udp=8001 reason=closed ");
    // 8002 and 8003 answered; given a new picture, 8002 never answers it again.
    m.classicFrame(FRAME(2), 100);
    m.answer(HERE, 8003, ascii("continue"), 150);
    let timedOut: string[] = [];
    for (let t = 150; t <= 5200 && timedOut.length === 0; t += 50) {
      m.answer(HERE, 8003, ascii("continue"), t);
      m.classicFrame(FRAME(3 + t), t);
      timedOut = lines(m.classicTick(t)).filter((l) => l.includes("client left"));
    }
    expect(timedOut).toHaveLength(1);
    expect(timedOut[0]).toContain("udp=8002 reason=timeout ");
    const out = m.shutdown(6000);
    expect(lines(out)).toEqual([expect.stringContaining("kind=classic udp=8003 reason=shutdown ")]);
    expect(kinds(out)).toEqual(["log client left", "close 3"]);
    expect(m.viewerCount).toBe(0);
  });

  test("a new connection announcing the same address and port replaces the old one", () => {
    const m = machine({ maxClients: 1 });
    classic(m, 1, 8888);
    const out = classic(m, 2, 8888, 500);
    expect(kinds(out)).toEqual(["log client left", "close 1", "log client joined"]);
    expect(lines(out)[0]).toContain("reason=replaced");
    expect(m.classicCount).toBe(1);
  });
});

describe("one count of viewers of every kind", () => {
  test("lancam sessions, classroom viewers and viewers served elsewhere share maxClients", () => {
    const m = machine({ maxClients: 3 });
    join(m, 1, 8001);
    classic(m, 2, 8002);
    const browser = m.admitOther(100, "browser", THERE, "Firefox", 0);
    expect(browser.refused).toBeNull();
    expect(lines(browser.actions)).toEqual(["INFO [server] client joined client=192.168.1.30 kind=browser name=Firefox clients=3"]);
    expect(m.viewerCount).toBe(3);

    const lancam = join(m, 3, 8003);
    expect(sentTo(lancam, 3)).toEqual([{ type: "refuse", reason: RefuseReason.ServerFull, text: "server full: 3 viewers already connected" }]);
    const classicOut = classic(m, 4, 8004);
    expect(kinds(classicOut)).toEqual(["log client refused", "close 4"]);
    expect(lines(classicOut)).toEqual(['WARN [server] client refused client=192.168.1.20:50004 kind=classic udp=8004 reason="server full" max=3']);
    const other = m.admitOther(101, "browser", THERE, "", 0);
    expect(other.refused).toBe("server full: 3 viewers already connected");
    expect(lines(other.actions)).toEqual(['WARN [server] client refused client=192.168.1.30 kind=browser reason="server full" max=3']);

    // Any leave makes room for any kind.
    expect(lines(m.leaveOther(100, "connection closed", 2500))).toEqual([
      'INFO [server] client left client=192.168.1.30 kind=browser name=Firefox reason="connection closed" seconds=2.5 framesSent=0 clients=2',
    ]);
    expect(lines(classic(m, 5, 8005, 2500))[0]).toContain("kind=classic udp=8005 clients=3");
    m.closed(5, 2600);
    expect(sentTo(join(m, 6, 8006, 2600), 6)[0]!.type).toBe("welcome");
    expect(lines(m.closed(1, 2700))[0]).toContain("clients=2");
  });

  test("viewers() lists every kind with what is known of it; updateOther and leaveOther change only their own", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 1000)).id, { framesSent: 60 });
    m.received(1, report(57, 2, 1), 2000);
    classic(m, 2, 8888, 1500);
    m.classicFrame(FRAME(1), 1500);
    m.classicTick(1600);
    m.answer(HERE, 8888, ascii("continue"), 1650);
    expect(m.admitOther(7, "browser", THERE, "Chrome 120", 1700).refused).toBeNull();
    expect(m.updateOther(7, { framesSent: 40, framesReceived: 38, fps: 29.5 })).toBe(true);
    expect(m.updateOther(8, { framesSent: 1 })).toBe(false);
    const wall = (t: number) => WALL_START_US / 1000 + t;
    expect(m.viewers()).toEqual([
      { id: 0x100, kind: "udp", address: HERE, udpPort: 8001, name: "v", joinedAt: wall(1000), camera: 0, framesSent: 60, framesReceived: 57, framesLost: 3, latencyP50Ms: 0.9, fps: 30 },
      { id: 2, kind: "classic", address: HERE, udpPort: 8888, name: "", joinedAt: wall(1500), camera: 0, framesSent: 1, framesReceived: 1, framesLost: null, latencyP50Ms: null, fps: null },
      { id: 7, kind: "browser", address: THERE, udpPort: null, name: "Chrome 120", joinedAt: wall(1700), camera: 0, framesSent: 40, framesReceived: 38, framesLost: null, latencyP50Ms: null, fps: 29.5 },
    ]);
    expect(lines(m.leaveOther(7, "stalled", 3700))).toEqual([
      "INFO [server] client left client=192.168.1.30 kind=browser name=\"Chrome 120\" reason=stalled seconds=2.0 framesSent=40 framesReceived=38 clients=2",
    ]);
    expect(m.leaveOther(7, "stalled", 3800)).toEqual([]);
    expect(m.viewers().map((v) => v.kind)).toEqual(["udp", "classic"]);
  });

  test("admitOther refuses names of this machine's own kinds, odd kinds and ids in use, and everyone once shutting down", () => {
    const m = machine();
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    expect(() => m.admitOther(2, "udp", HERE, "", 0)).toThrow(RangeError);
    expect(() => m.admitOther(2, "classic", HERE, "", 0)).toThrow(RangeError);
    expect(() => m.admitOther(2, "Browser view", HERE, "", 0)).toThrow(RangeError);
    expect(() => m.admitOther(1, "browser", HERE, "", 0)).toThrow(/in use/);
    m.shutdown(0);
    expect(m.admitOther(3, "browser", HERE, "", 0)).toEqual({
      refused: "shutting down",
      actions: [{ kind: "log", level: "warn", message: "client refused", fields: { client: HERE, kind: "browser", name: undefined, reason: "shutting down", max: 4 } }],
    });
  });
});

describe("hardening", () => {
  test("--max-per-host counts every kind of viewer from one address; other addresses are not affected", () => {
    const m = machine({ maxClients: 32, maxPerHost: 3 });
    join(m, 1, 8001);
    join(m, 2, 8002);
    m.admitOther(900, "browser", HERE, "", 0);
    m.connected(3, { address: HERE, port: 50_003 }, 0);
    const out = m.received(3, hello(8003), 0);
    expect(sentTo(out, 3)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "too many viewers from 192.168.1.20: at most 3 per address" }]);
    expect(lines(out)[0]).toBe('WARN [server] client refused client=192.168.1.20:50003 udp=8003 reason="too many viewers from this address" max=3');
    expect(sentTo(join(m, 4, 8004, 0, THERE), 4)[0]!.type).toBe("welcome");
    // A leave frees a place for that address.
    m.leaveOther(900, "closed", 1);
    expect(sentTo(join(m, 5, 8005, 1), 5)[0]!.type).toBe("welcome");
  });

  test("--max-per-host 2 --max-clients 8: lancam viewers, classroom viewers and browser readers from one address are each refused past 2, and counted together", () => {
    const opts = { maxClients: 8, maxPerHost: 2 };
    const text = "too many viewers from 192.168.1.20: at most 2 per address";
    const lancam = machine(opts);
    join(lancam, 1, 8001);
    join(lancam, 2, 8002);
    expect(sentTo(join(lancam, 3, 8003), 3)).toEqual([{ type: "refuse", reason: RefuseReason.Other, text }]);
    const room = machine(opts);
    classic(room, 1, 8001);
    classic(room, 2, 8002);
    const third = classic(room, 3, 8003);
    expect(kinds(third)).toEqual(["log client refused", "close 3"]);
    expect(lines(third)).toEqual(['WARN [server] client refused client=192.168.1.20:50003 kind=classic udp=8003 reason="too many viewers from this address" max=2']);
    expect(room.classicCount).toBe(2);
    const browsers = machine(opts);
    expect(browsers.admitOther(100, "browser", HERE, "", 0).refused).toBeNull();
    expect(browsers.admitOther(101, "browser", HERE, "", 0).refused).toBeNull();
    const refused = browsers.admitOther(102, "browser", HERE, "", 0);
    expect(refused.refused).toBe(text);
    expect(lines(refused.actions)).toEqual(['WARN [server] client refused client=192.168.1.20 kind=browser reason="too many viewers from this address" max=2']);
    // Mixed kinds share the count; another address is not affected.
    const mixed = machine(opts);
    join(mixed, 1, 8001);
    classic(mixed, 2, 8002);
    expect(mixed.admitOther(100, "browser", HERE, "", 0).refused).toBe(text);
    expect(kinds(classic(mixed, 3, 8003))).toEqual(["log client refused", "close 3"]);
    expect(mixed.admitOther(101, "browser", THERE, "", 0).refused).toBeNull();
    // And one --max-clients for all: 8 places over four addresses, then server full for every kind.
    const full = machine(opts);
    for (let i = 0; i < 4; i++) {
      const at = `10.0.0.${i}`;
      join(full, 10 + i, 8000 + i, 0, at);
      classic(full, 20 + i, 9000 + i, 0, at);
    }
    expect(full.viewerCount).toBe(8);
    expect(sentTo(join(full, 30, 8030, 0, "10.0.0.9"), 30)[0]).toMatchObject({ type: "refuse", reason: RefuseReason.ServerFull });
    expect(lines(classic(full, 31, 8031, 0, "10.0.0.9"))[0]).toContain('reason="server full" max=8');
    expect(full.admitOther(100, "browser", "10.0.0.9", "", 0).refused).toBe("server full: 8 viewers already connected");
  });

  test("security events (evictions, auth refusals) are logged at the security level; other refusals are warnings", () => {
    const m = machine({ maxPending: 1 });
    m.connected(1, { address: HERE, port: 50_001 }, 0);
    const evicted = m.connected(2, { address: THERE, port: 50_002 }, 0);
    expect(evicted.filter((a) => a.kind === "log").map((a) => a.kind === "log" && `${a.level} ${a.message}`)).toEqual(["security connection evicted"]);
    const bad = m.received(2, heartbeat, 0);
    expect(bad.filter((a) => a.kind === "log").map((a) => a.kind === "log" && a.level)).toEqual(["warn"]);
  });

  test("a report of more than twice the stream's frame rate, or a latency longer than the session has existed, is rejected and counted", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 0)).id, { framesSent: 100, firstFrame: 0, lastFrame: 99 });
    const at = (fpsMillihertz: number, latencyP50Us: number): ControlMessage => ({ ...(report(90) as Extract<ControlMessage, { type: "report" }>), fpsMillihertz, latencyP50Us });
    expect(m.received(1, at(60_000, 900), 4000)).toEqual([]);
    expect(m.viewers()[0]!.fps).toBe(60);
    const fast = m.received(1, at(60_001, 900), 4000);
    expect(lines(fast)).toEqual(['WARN [server] report rejected client=192.168.1.20:50001 udp=8001 session=00000100 what=report why="fpsMillihertz=60001, the stream has 30000"']);
    expect(m.received(1, at(30_000, 4_000_001), 4000)).toEqual([]); // rejected, logged once per session
    expect(m.reportsRejected).toBe(2);
    expect(m.viewers()[0]).toMatchObject({ fps: 60, latencyP50Ms: 0.9 });
    expect(m.received(1, at(30_000, 3_999_000), 4000)).toEqual([]);
    expect(m.viewers()[0]).toMatchObject({ fps: 30, latencyP50Ms: 3999 });
    expect(m.reportsRejected).toBe(2);
  });

  test("a report claiming more than was sent is rejected and counted (logged once), not taken; a plausible one is", () => {
    const m = machine();
    sendCounts(m, sessionOf(join(m, 1, 8001, 0)).id, { framesSent: 100, firstFrame: 1000, lastFrame: 1099 });
    expect(m.received(1, report(90, 5, 3), 1000)).toEqual([]);
    // What the report said is what the viewer list shows: lost and incomplete together.
    expect(m.viewers()[0]).toMatchObject({ framesReceived: 90, framesLost: 8 });
    const all = 0xffffffff;
    const out = m.received(1, { type: "report", framesReceived: all, framesLost: all, framesIncomplete: all, datagramsDropped: all, latencyP50Us: all, latencyP95Us: all, fpsMillihertz: all }, 2000);
    expect(lines(out)).toEqual(["WARN [server] report rejected client=192.168.1.20:50001 udp=8001 session=00000100 what=report why=\"framesReceived=4294967295 of 100 frames sent\""]);
    expect(m.received(1, report(100, 50, 0), 3000)).toEqual([]); // 150 of 100 numbers: rejected, not logged again
    expect(m.reportsRejected).toBe(2);
    expect(m.viewers()[0]).toMatchObject({ framesReceived: 90 });
    // Bye totals are checked the same way: impossible ones fall back to the last report.
    const bye = m.received(1, { type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: all, framesLost: all, framesIncomplete: all, framesRecorded: all } }, 4000);
    const left = lines(bye).find((l) => l.includes("client left"))!;
    expect(left).toContain("framesReceived=90 framesLost=8 clients=0");
    expect(left).not.toContain("8589934590");
    expect(m.reportsRejected).toBe(3);
  });

  test("a session whose UDP port answers only with ICMP errors for unreachableMs, while its reports show nothing arriving, is ended", () => {
    const m = machine({ unreachableMs: 5000 });
    join(m, 1, 8001, 0);
    sendCounts(m, sessionOf(join(m, 2, 8002, 0)).id, { framesSent: 1000 });
    // Errors do not say for whom: both are suspects. Only the one whose reports do not grow goes.
    let out: AdmissionAction[] = [];
    for (let t = 100; t <= 6000; t += 100) {
      m.unreachable([0x100, 0x101], t);
      if (t % 1000 === 0) {
        m.received(2, report(t / 40), t);
        m.received(1, report(0), t);
      }
      out = out.concat(m.tick(t));
    }
    const left = lines(out).filter((l) => l.includes("client left"));
    expect(left).toHaveLength(1);
    expect(left[0]).toContain('udp=8001 session=00000100 reason="udp port unreachable"');
    expect(sentTo(out, 1).at(-1)).toEqual({ type: "bye", reason: ByeReason.Other });
    expect(m.sessionCount).toBe(1);
    // Errors that stop (more than 2 s apart) end nothing.
    const quiet = machine({ unreachableMs: 5000 });
    join(quiet, 1, 8001, 0);
    for (let t = 0; t <= 12_000; t += 2500) {
      quiet.unreachable([0x100], t);
      quiet.received(1, heartbeat, t);
      expect(lines(quiet.tick(t)).filter((l) => l.includes("client left"))).toEqual([]);
    }
  });

  test("a viewer that stops reading its control connection is ended once its buffer is full", () => {
    const m = machine();
    join(m, 1, 8001, 0);
    const out = m.stalled(1, 3000);
    expect(kinds(out)).toEqual(["stop 1", "log client left", "close 1"]);
    expect(lines(out)[0]).toContain('reason="not reading"');
    expect(m.stalled(1, 3001)).toEqual([]);
  });
});
