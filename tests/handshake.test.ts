// The viewer's side of the control protocol as a plain state machine, driven with a
// fake clock: every timing rule is checked to the millisecond without waiting.
import { describe, expect, test } from "bun:test";
import { ByeReason, CAP_DECRYPT, CAP_MULTICAST, CAP_MULTICAST_LAYERS, CAP_PATH_REPORTS, CAP_REPAIR, CAP_RESUME, CAP_SOURCE_STATUS, CAP_CAMERA, CAP_TCP_DELIVERY, SourceState, WELCOME_SOURCE_STATUS, CAP_TOKEN_AUTH, CAP_VERIFY, PROTOCOL_VERSION, RefuseReason, refuseReasonText, TransportEvent, WELCOME_PATH_REPORTS, WELCOME_REPAIR, WELCOME_TCP_DELIVERY, type ByeTotals, type Hello, type ControlMessage, type Report } from "../lib/wire/control.ts";
import { ConnectError, Handshake, reconnectDelayMs, type HandshakeAction, type HandshakeOptions, type SessionEnd } from "../lib/receive/handshake.ts";
import { GoneReason } from "../lib/wire/repair.ts";
import { classifyRefusal } from "../lib/receive/refusal.ts";
import { tokenKey } from "../lib/net/session-keys.ts";
import { Admission, MAX_PENDING_PER_ADDRESS, type AdmissionAction } from "../lib/send/admission.ts";
import { welcome } from "./helpers/fake-server.ts";

const SERVER = "10.0.0.1:9000";
const WALL_US = 1_700_000_000_000_000;

/** A machine whose reports count up (framesReceived = the report's ordinal) and whose totals are `totals.now`. */
function machine(over: Partial<HandshakeOptions> = {}) {
  let reports = 0;
  const totals = { now: { framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 } as ByeTotals, asked: 0 };
  const report = (): Report => ({
    type: "report", framesReceived: ++reports, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
  });
  const m = new Handshake({
    server: SERVER, udpPort: 5000, name: "hall", report,
    totals: () => {
      totals.asked++;
      return { ...totals.now };
    },
    wallClockMicros: () => WALL_US, ...over,
  });
  return { m, totals };
}

const msg = (m: ControlMessage) => ({ type: "message", msg: m }) as const;

/** Starts, connects and is welcomed at `t`; returns the welcome's actions. */
function welcomed(m: Handshake, t: number, over: Parameters<typeof welcome>[0] = {}): HandshakeAction[] {
  expect(m.push({ type: "start" }, t)).toEqual([{ type: "connect" }]);
  return connectAndWelcome(m, t, over);
}

function connectAndWelcome(m: Handshake, t: number, over: Parameters<typeof welcome>[0] = {}): HandshakeAction[] {
  expect(m.push({ type: "connected" }, t)).toHaveLength(1);
  return m.push(msg(welcome(over)), t);
}

/** Ticks every `step` ms over (from, to], returning each non-empty answer with its time. */
function ticks(m: Handshake, from: number, to: number, step = 100): [number, HandshakeAction[]][] {
  const out: [number, HandshakeAction[]][] = [];
  for (let t = from + step; t <= to; t += step) {
    const a = m.push({ type: "tick" }, t);
    if (a.length > 0) out.push([t, a]);
  }
  return out;
}

/** The error a `finished` action carries, failing when the answer is not [close, finished]. */
function finishedWith(actions: HandshakeAction[]): ConnectError {
  expect(actions.map((a) => a.type)).toEqual(["close", "finished"]);
  const fin = actions[1] as Extract<HandshakeAction, { type: "finished" }>;
  expect(fin.error).toBeInstanceOf(ConnectError);
  return fin.error!;
}

function retried(actions: HandshakeAction[]): Extract<HandshakeAction, { type: "retry" }> {
  expect(actions.map((a) => a.type)).toEqual(["close", "retry"]);
  return actions[1] as Extract<HandshakeAction, { type: "retry" }>;
}

describe("handshake", () => {
  test("start connects; the connection says hello with the UDP port and name; a welcome starts taking datagrams", () => {
    const { m } = machine();
    expect(m.push({ type: "start" }, 0)).toEqual([{ type: "connect" }]);
    expect(m.state).toBe("handshake");
    // Capability bit 2: it keeps the welcome's resume secret for its next hello.
    expect(m.push({ type: "connected" }, 10)).toEqual([{ type: "send", msg: { type: "hello", version: 1, udpPort: 5000, capabilities: CAP_RESUME | CAP_VERIFY | CAP_PATH_REPORTS | CAP_MULTICAST | CAP_MULTICAST_LAYERS | CAP_TCP_DELIVERY | CAP_SOURCE_STATUS | CAP_CAMERA, name: "hall", camera: "" } }]);
    const w = welcome({ sessionId: 9 });
    expect(m.push(msg(w), 20)).toEqual([{ type: "receive", welcome: w }]);
    expect(m.state).toBe("session");
    expect(m.push({ type: "start" }, 30)).toEqual([]);
  });

  test("the whole handshake, TCP connect included, must finish within the connect timeout", () => {
    const { m } = machine({ connectTimeoutMs: 300 });
    m.push({ type: "start" }, 1000);
    expect(ticks(m, 1000, 1299, 1)).toEqual([]);
    const e = finishedWith(m.push({ type: "tick" }, 1300));
    expect(e.message).toBe(`server ${SERVER} did not complete the handshake within 0.3 s`);
    expect(m.state).toBe("finished");
  });

  test("at the first attempt a refusal that is for the user to fix ends it at once, with the server's words", () => {
    const cases: [RefuseReason, string][] = [
      [RefuseReason.VersionMismatch, "protocol version mismatch: version 2, this server speaks 1"],
      [RefuseReason.BadHello, "bad hello: name too long"],
      [RefuseReason.AuthRequired, "wrong token"],
      [RefuseReason.AuthRequired, "this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)"],
      [RefuseReason.AuthRequired, "this server encrypts its frames and this viewer cannot decrypt them"],
      [RefuseReason.Other, "go away"],
      [RefuseReason.Other, ""],
      [0x42 as RefuseReason, ""],
    ];
    for (const [reason, text] of cases) {
      const { m } = machine();
      m.push({ type: "start" }, 0);
      m.push({ type: "connected" }, 0);
      const e = finishedWith(m.push(msg({ type: "refuse", reason, text }), 5));
      expect(e.refusedFor).toBe(reason);
      expect(e.message).toBe(`server ${SERVER} refused the session: ${text || refuseReasonText(reason)}`);
    }
  });

  test("at the first attempt, anything but a welcome or refuse fails it with a message naming the server", () => {
    const cases: [Parameters<Handshake["push"]>[0], string][] = [
      [msg({ type: "heartbeat", sentAt: 1 }), `server ${SERVER} answered the hello with heartbeat, not welcome`],
      [{ type: "decode-error", text: "bad-type: control type 0x07" }, `server ${SERVER} sent a malformed message: bad-type: control type 0x07`],
      [{ type: "closed" }, `server ${SERVER} closed the connection during the handshake`],
      [{ type: "closed", error: "ECONNRESET" }, `cannot talk to ${SERVER}: ECONNRESET`],
    ];
    for (const [input, text] of cases) {
      const { m } = machine();
      m.push({ type: "start" }, 0);
      m.push({ type: "connected" }, 0);
      expect(finishedWith(m.push(input, 1)).message).toBe(text);
    }
    const { m } = machine();
    m.push({ type: "start" }, 0);
    expect(finishedWith(m.push({ type: "connect-failed", text: "cannot connect to x: connection refused" }, 1)).message).toBe("cannot connect to x: connection refused");
  });

  test("once streaming, refusals that can clear up (full, other) are retried; version, bad hello and auth end it", () => {
    for (const [reason, final] of [[RefuseReason.ServerFull, false], [RefuseReason.Other, false], [RefuseReason.VersionMismatch, true], [RefuseReason.BadHello, true], [RefuseReason.AuthRequired, true]] as const) {
      const { m } = machine();
      welcomed(m, 0);
      expect(retried(m.push({ type: "closed" }, 100)).afterMs).toBe(500);
      expect(m.push({ type: "tick" }, 600)).toEqual([{ type: "connect" }]);
      m.push({ type: "connected" }, 610);
      const answer = m.push(msg({ type: "refuse", reason, text: "" }), 620);
      if (final) {
        expect(finishedWith(answer).isFinal).toBe(true);
        expect(m.state).toBe("finished");
      } else {
        const r = retried(answer);
        expect(r.afterMs).toBe(1000);
        expect((r.cause as ConnectError).refusedFor).toBe(reason);
        expect(m.state).toBe("backoff");
      }
    }
  });

  test("once streaming, a lockout of this address is waited out, however long, instead of ending the viewer", () => {
    const { m } = machine();
    welcomed(m, 0);
    retried(m.push({ type: "closed" }, 100));
    m.push({ type: "tick" }, 600);
    m.push({ type: "connected" }, 610);
    const r = retried(m.push(msg({ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token too often from 10.0.0.9: try again in 120 s" }), 620));
    expect(r.afterMs).toBe(120_000);
    expect(m.push({ type: "tick" }, 120_619)).toEqual([]);
    expect(m.push({ type: "tick" }, 120_620)).toEqual([{ type: "connect" }]);
  });

  test("once streaming, a failed connect or handshake timeout is retried, not reported as final", () => {
    const { m } = machine({ connectTimeoutMs: 300 });
    welcomed(m, 0);
    retried(m.push({ type: "closed" }, 0));
    m.push({ type: "tick" }, 500);
    const r = retried(m.push({ type: "connect-failed", text: "cannot connect to x: connection refused" }, 501));
    expect(r.cause).toBeInstanceOf(ConnectError);
    expect(m.push({ type: "tick" }, 1501)).toEqual([{ type: "connect" }]);
    expect(retried(m.push({ type: "tick" }, 1801)).afterMs).toBe(2000);
  });
});

describe("session", () => {
  test("heartbeats and reports go out every heartbeat interval; a silent server is given up after timeoutMs", () => {
    const { m } = machine();
    welcomed(m, 0, { heartbeatMs: 1000, timeoutMs: 5000 });
    const seen = ticks(m, 0, 6000);
    const beats = seen.filter(([, a]) => a[0]!.type === "send");
    expect(beats.map(([t]) => t)).toEqual([1000, 2000, 3000, 4000, 5000]);
    for (const [i, [, a]] of beats.entries()) {
      expect(a).toEqual([
        { type: "send", msg: { type: "heartbeat", sentAt: WALL_US } },
        { type: "send", msg: expect.objectContaining({ type: "report", framesReceived: i + 1 }) },
      ]);
    }
    // Silence means more than timeoutMs: at 5000 exactly the server still counts as alive.
    const [t, end] = seen.find(([, a]) => a[0]!.type === "close")!;
    expect(t).toBe(5100);
    expect(retried(end).cause).toEqual({ reason: "timeout" });
    expect(ticks(m, 5100, 5500)).toEqual([]);
  });

  test("any message from the server restarts the silence timer", () => {
    const { m } = machine();
    welcomed(m, 0, { heartbeatMs: 100, timeoutMs: 600 });
    ticks(m, 0, 500);
    m.push(msg({ type: "heartbeat", sentAt: 1 }), 500);
    expect(ticks(m, 500, 1100).some(([, a]) => a[0]!.type === "close")).toBe(false);
    expect(retried(m.push({ type: "tick" }, 1101)).cause).toEqual({ reason: "timeout" });
  });

  test("report cadence stays on the interval when ticks come late, and a long stall sends one, not a burst", () => {
    const { m } = machine();
    welcomed(m, 0, { heartbeatMs: 1000, timeoutMs: 60_000 });
    const beatAt = (t: number) => m.push({ type: "tick" }, t).length === 2;
    expect([1090, 1990, 2050, 2999, 3000].map(beatAt)).toEqual([true, false, true, false, true]);
    // Stalled for 5 intervals: one beat now, the next a whole interval later.
    expect([8500, 8600, 9499, 9500].map(beatAt)).toEqual([true, false, false, true]);
  });

  test("the server's bye, a protocol error and a closed connection each end the session and reconnect", () => {
    const cases: [Parameters<Handshake["push"]>[0], SessionEnd][] = [
      [msg({ type: "bye", reason: ByeReason.Shutdown }), { reason: "server bye", text: "server shutting down" }],
      [{ type: "decode-error", text: "bad-length" }, { reason: "protocol error", text: "bad-length" }],
      [{ type: "closed" }, { reason: "connection closed" }],
    ];
    for (const [input, cause] of cases) {
      const { m } = machine();
      welcomed(m, 0);
      const r = retried(m.push(input, 10));
      expect(r.cause).toEqual(cause);
      expect(r.afterMs).toBe(500);
    }
  });

  test("a delivery message goes to the viewer in a path-reports session; out of place or larger than the stream it is a protocol error", () => {
    const d = { type: "delivery", layer: 1, width: 32, height: 24, rateBytesPerS: 1000, framesSkipped: 2, skippedThrough: 9 } as const;
    const { m } = machine();
    welcomed(m, 0, { flags: WELCOME_PATH_REPORTS });
    expect(m.push(msg(d), 10)).toEqual([{ type: "delivery", delivery: d }]);
    const cases: [Parameters<typeof welcome>[0], ControlMessage, string][] = [
      [{}, d, "delivery message in a session whose welcome did not announce path reports"],
      [{ flags: WELCOME_PATH_REPORTS }, { ...d, width: 128 }, "delivery layer 1 of 128x24 is larger than the stream's 64x48"],
      [{ flags: WELCOME_PATH_REPORTS }, { ...d, layer: 0 }, "delivery layer 0 of 32x24 is not the stream's 64x48"],
    ];
    for (const [over, bad, text] of cases) {
      const { m } = machine();
      welcomed(m, 0, over);
      expect(retried(m.push(msg(bad), 10)).cause).toEqual({ reason: "protocol error", text });
    }
  });

  test("loss repair: offered only when asked for; a gone message reaches the viewer only in a session whose welcome agreed", () => {
    const { m } = machine({ repair: true });
    m.push({ type: "start" }, 0);
    const hello = m.push({ type: "connected" }, 0)[0] as Extract<HandshakeAction, { type: "send" }>;
    expect(hello.msg).toMatchObject({ type: "hello", capabilities: CAP_RESUME | CAP_VERIFY | CAP_PATH_REPORTS | CAP_MULTICAST | CAP_MULTICAST_LAYERS | CAP_REPAIR | CAP_TCP_DELIVERY | CAP_SOURCE_STATUS | CAP_CAMERA });
    m.push(msg(welcome({ flags: WELCOME_REPAIR })), 0);
    expect(m.push(msg({ type: "gone", reason: GoneReason.Expired, frames: [7, 8] }), 10)).toEqual([{ type: "gone", frames: [7, 8], skipped: false }]);
    expect(m.push(msg({ type: "gone", reason: GoneReason.Skipped, frames: [9] }), 11)).toEqual([{ type: "gone", frames: [9], skipped: true }]);
    const plain = machine().m;
    welcomed(plain, 0);
    expect(retried(plain.push(msg({ type: "gone", reason: GoneReason.Expired, frames: [7] }), 10)).cause).toEqual({ reason: "protocol error", text: "gone message in a session whose welcome did not offer repair" });
  });

  test("the camera's status: offered always, taken only in a session whose welcome agreed", () => {
    const { m } = machine();
    m.push({ type: "start" }, 0);
    const hello = m.push({ type: "connected" }, 0)[0] as Extract<HandshakeAction, { type: "send" }>;
    expect((hello.msg as Hello).capabilities & CAP_SOURCE_STATUS).toBe(CAP_SOURCE_STATUS);
    m.push(msg(welcome({ flags: WELCOME_SOURCE_STATUS })), 0);
    expect(m.push(msg({ type: "source", state: SourceState.Unavailable }), 10)).toEqual([{ type: "source", available: false }]);
    expect(m.push(msg({ type: "source", state: SourceState.Available }), 20)).toEqual([{ type: "source", available: true }]);
    const plain = machine().m;
    welcomed(plain, 0);
    expect(retried(plain.push(msg({ type: "source", state: SourceState.Unavailable }), 10)).cause).toEqual({ reason: "protocol error", text: "source message in a session whose welcome did not offer the camera's status" });
  });

  test("tcp delivery: offered unless turned off; a transport message reaches the viewer only in a session whose welcome offered it", () => {
    const { m } = machine({ tcpDelivery: false });
    m.push({ type: "start" }, 0);
    const hello = m.push({ type: "connected" }, 0)[0] as Extract<HandshakeAction, { type: "send" }>;
    expect((hello.msg as Hello).capabilities & CAP_TCP_DELIVERY).toBe(0);
    const told: ControlMessage = { type: "transport", transport: "udp", event: TransportEvent.Silent, framesSent: 9, text: "" };
    const offered = machine().m;
    welcomed(offered, 0, { flags: WELCOME_TCP_DELIVERY });
    expect(offered.push(msg(told), 10)).toEqual([{ type: "transport", msg: told }]);
    const plain = machine().m;
    welcomed(plain, 0);
    expect(retried(plain.push(msg(told), 10)).cause).toEqual({ reason: "protocol error", text: "transport message in a session whose welcome did not offer tcp delivery" });
  });

  test("a bye right behind the welcome ends the session just started", () => {
    const { m } = machine();
    m.push({ type: "start" }, 0);
    m.push({ type: "connected" }, 0);
    expect(m.push(msg(welcome()), 0).map((a) => a.type)).toEqual(["receive"]);
    expect(retried(m.push(msg({ type: "bye", reason: ByeReason.Shutdown }), 0)).cause).toEqual({ reason: "server bye", text: "server shutting down" });
  });
});

describe("reconnecting", () => {
  test("backoff: 0.5 s doubling to at most 5 s, and a welcome starts it over", () => {
    const { m } = machine();
    welcomed(m, 0);
    let now = 0;
    const delays: number[] = [retried(m.push({ type: "closed" }, now)).afterMs];
    for (let i = 0; i < 6; i++) {
      const due = now + delays.at(-1)!;
      expect(m.push({ type: "tick" }, due - 1)).toEqual([]);
      expect(m.push({ type: "tick" }, due)).toEqual([{ type: "connect" }]);
      now = due + 3;
      delays.push(retried(m.push({ type: "connect-failed", text: "refused" }, now)).afterMs);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
    now += 5000;
    expect(m.push({ type: "tick" }, now)).toEqual([{ type: "connect" }]);
    expect(connectAndWelcome(m, now)[0]!.type).toBe("receive");
    expect(retried(m.push({ type: "closed" }, now + 1)).afterMs).toBe(500);
  });

  test("a reconnecting hello presents the last welcome's resume secret (so the server lets it replace its own stale session); the next welcome's secret replaces it", () => {
    const { m } = machine();
    const first = new Uint8Array(16).fill(0xa1);
    welcomed(m, 0, { resume: first });
    retried(m.push({ type: "closed" }, 10));
    expect(m.push({ type: "tick" }, 510)).toEqual([{ type: "connect" }]);
    const [hello] = m.push({ type: "connected" }, 511);
    expect(hello).toEqual({ type: "send", msg: { type: "hello", version: 1, udpPort: 5000, capabilities: CAP_RESUME | CAP_VERIFY | CAP_PATH_REPORTS | CAP_MULTICAST | CAP_MULTICAST_LAYERS | CAP_TCP_DELIVERY | CAP_SOURCE_STATUS | CAP_CAMERA, name: "hall", camera: "", resume: first } });
    const second = new Uint8Array(16).fill(0xa2);
    m.push(msg(welcome({ resume: second })), 512);
    retried(m.push({ type: "closed" }, 600));
    m.push({ type: "tick" }, 1100);
    expect((m.push({ type: "connected" }, 1101)[0] as { msg: { resume?: Uint8Array } }).msg.resume).toEqual(second);
  });

  test("reconnectDelayMs: 0.5 s doubling, at most 5 s", () => {
    expect([0, 1, 2, 3, 4, 10, 1000].map(reconnectDelayMs)).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  test("a late answer from a connection already given up changes nothing", () => {
    const { m } = machine();
    welcomed(m, 0);
    retried(m.push({ type: "closed" }, 0));
    expect(m.push(msg(welcome()), 10)).toEqual([]);
    expect(m.push({ type: "connected" }, 10)).toEqual([]);
    expect(m.push({ type: "closed" }, 10)).toEqual([]);
    expect(m.state).toBe("backoff");
  });
});

describe("stopping", () => {
  test("in a session: a goodbye with the totals as they are when it is built, then close and finish", () => {
    const { m, totals } = machine();
    welcomed(m, 0);
    ticks(m, 0, 3000);
    expect(totals.asked).toBe(0); // reports never stand in for the final count
    totals.now = { framesReceived: 57, framesLost: 2, framesIncomplete: 1, framesRecorded: 55 };
    expect(m.push({ type: "stop" }, 3050)).toEqual([
      { type: "send", msg: { type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: 57, framesLost: 2, framesIncomplete: 1, framesRecorded: 55 } } },
      { type: "close", reason: "stopped" },
      { type: "finished", error: null },
    ]);
    expect(totals.asked).toBe(1);
    expect(m.push({ type: "stop" }, 3060)).toEqual([]);
    expect(ticks(m, 3060, 10_000)).toEqual([]);
  });

  test("during a connect: closed at once, no goodbye (there is no session to end)", () => {
    const { m, totals } = machine();
    m.push({ type: "start" }, 0);
    m.push({ type: "connected" }, 5);
    expect(m.push({ type: "stop" }, 10)).toEqual([{ type: "close", reason: "stopped" }, { type: "finished", error: null }]);
    expect(totals.asked).toBe(0);
    expect(m.push(msg(welcome()), 20)).toEqual([]);
  });

  test("during a backoff: finished at once, and the reconnect never comes", () => {
    const { m } = machine();
    welcomed(m, 0);
    retried(m.push({ type: "closed" }, 100));
    expect(m.push({ type: "stop" }, 200)).toEqual([{ type: "finished", error: null }]);
    expect(ticks(m, 200, 10_000)).toEqual([]);
    expect(m.state).toBe("finished");
  });

  test("before start: finished, and a later start does nothing", () => {
    const { m } = machine();
    expect(m.push({ type: "stop" }, 0)).toEqual([{ type: "finished", error: null }]);
    expect(m.push({ type: "start" }, 1)).toEqual([]);
  });
});

const FULL = { type: "refuse", reason: RefuseReason.ServerFull, text: "server full: 1 viewers already connected" } as const;

/** Connects at `t` and is answered with `answer` at once; returns the machine's answer. */
function attempt(m: Handshake, t: number, answer: ControlMessage): HandshakeAction[] {
  expect(m.push({ type: "connected" }, t)).toHaveLength(1);
  return m.push(msg(answer), t);
}

/** Ticks every ms from `from` until the machine asks to connect or finishes; returns that moment and answer. */
function nextMove(m: Handshake, from: number, limit = 60_000): [number, HandshakeAction[]] {
  for (let t = from + 1; t <= from + limit; t++) {
    const a = m.push({ type: "tick" }, t);
    if (a.length > 0) return [t, a];
  }
  throw new Error(`nothing happened within ${limit} ms of ${from}`);
}

describe("a busy server before the first welcome", () => {
  test("'server full' is asked again with backoff, and a welcome within the connect timeout starts the session", () => {
    const { m } = machine({ connectTimeoutMs: 10_000, random: () => 0.5 });
    m.push({ type: "start" }, 0);
    const r1 = retried(attempt(m, 5, FULL));
    expect(r1.afterMs).toBe(500);
    expect((r1.cause as ConnectError).message).toBe(`server ${SERVER} refused the session: server full: 1 viewers already connected`);
    expect(m.state).toBe("backoff");
    expect(nextMove(m, 5)).toEqual([505, [{ type: "connect" }]]);
    expect(retried(attempt(m, 510, FULL)).afterMs).toBe(1000);
    expect(nextMove(m, 510)).toEqual([1510, [{ type: "connect" }]]);
    expect(m.push({ type: "connected" }, 1511)).toHaveLength(1);
    expect(m.push(msg(welcome()), 1512).map((a) => a.type)).toEqual(["receive"]);
    expect(m.state).toBe("session");
  });

  test("nobody leaves: at the connect timeout it gives up with one line naming the last refusal", () => {
    const { m } = machine({ connectTimeoutMs: 10_000, random: () => 0.5 });
    m.push({ type: "start" }, 0);
    const waits: number[] = [];
    let t = 0;
    for (;;) {
      const answer = attempt(m, t, FULL);
      if (answer[1]?.type === "finished") {
        const e = finishedWith(answer);
        expect(e.message).toBe(`gave up connecting to ${SERVER} after 9.5 s and 6 attempts; the last refusal: server full: 1 viewers already connected`);
        expect(e.refusedFor).toBe(RefuseReason.ServerFull);
        break;
      }
      waits.push(retried(answer).afterMs);
      const [at, next] = nextMove(m, t);
      expect(next).toEqual([{ type: "connect" }]);
      t = at;
    }
    // Doubling, until the last try is kept 0.5 s before the timeout.
    expect(waits).toEqual([500, 1000, 2000, 4000, 2000]);
    expect(m.state).toBe("finished");
  });

  test("retries are spread: half to one and a half times the backoff", () => {
    for (const [r, wait] of [[0, 250], [0.999, 750]] as const) {
      const { m } = machine({ random: () => r });
      m.push({ type: "start" }, 0);
      expect(Math.round(retried(attempt(m, 0, FULL)).afterMs)).toBe(wait);
    }
  });

  test("each busy kind is waited for: full, evicted by a flood, shutting down, too many from this address, UDP port still held", () => {
    const texts = [
      "too many connections without hello", "too many connections without hello from this address", "shutting down",
      "too many viewers from 10.0.0.5: at most 16 per address",
      "UDP port 5000 of 10.0.0.5 is already receiving this stream; it is freed when that viewer leaves or is silent for 5 s",
    ];
    for (const text of texts) {
      const { m } = machine({ random: () => 0.5 });
      m.push({ type: "start" }, 0);
      const r = retried(attempt(m, 0, { type: "refuse", reason: RefuseReason.Other, text }));
      expect((r.cause as ConnectError).isTransient).toBe(true);
    }
  });

  test("after a busy refusal, a refused connect or a close (the server restarting) is waited out too; the message names both", () => {
    const { m } = machine({ connectTimeoutMs: 3000, random: () => 0.5 });
    m.push({ type: "start" }, 0);
    retried(attempt(m, 0, { type: "refuse", reason: RefuseReason.Other, text: "shutting down" }));
    expect(nextMove(m, 0)).toEqual([500, [{ type: "connect" }]]);
    expect(retried(m.push({ type: "connect-failed", text: "cannot connect to x: connection refused" }, 501)).afterMs).toBe(1000);
    expect(nextMove(m, 501)).toEqual([1501, [{ type: "connect" }]]);
    m.push({ type: "connected" }, 1502);
    // Waits 2000, but no later than 0.5 s before the timeout.
    expect(retried(m.push({ type: "closed" }, 1503)).afterMs).toBe(997);
    expect(nextMove(m, 1503)).toEqual([2500, [{ type: "connect" }]]);
    // The last attempt hangs until the timeout.
    const [at, end] = nextMove(m, 2500);
    expect(at).toBe(3000);
    expect(finishedWith(end).message).toBe(
      `gave up connecting to ${SERVER} after 3.0 s and 4 attempts; the last refusal: shutting down; the last attempt: server ${SERVER} did not complete the handshake within 0.5 s`,
    );
  });

  test("a lockout of this address is waited out when it ends within the connect timeout, else it gives up at once saying so", () => {
    const locked = (n: number) => ({ type: "refuse", reason: RefuseReason.AuthRequired, text: `wrong token too often from 10.0.0.5: try again in ${n} s` }) as const;
    const { m } = machine({ connectTimeoutMs: 10_000 });
    m.push({ type: "start" }, 0);
    expect(retried(attempt(m, 0, locked(3))).afterMs).toBe(3000);
    expect(nextMove(m, 0)).toEqual([3000, [{ type: "connect" }]]);
    expect(finishedWith(attempt(m, 3000, locked(7))).message).toBe(
      `gave up connecting to ${SERVER} after 3.0 s and 2 attempts; the last refusal: wrong token too often from 10.0.0.5: try again in 7 s; waiting 7 s would pass the connect timeout of 10 s`,
    );
  });

  test("what a lockout asks for is bounded: at least 1 s, at most an hour, and only in the server's words", () => {
    const wait = (text: string) => classifyRefusal(RefuseReason.AuthRequired, text);
    expect(wait("wrong token too often from 10.0.0.5: try again in 0 s")).toEqual({ kind: "locked", waitMs: 1000 });
    expect(wait("wrong token too often from 10.0.0.5: try again in 9999999 s")).toEqual({ kind: "locked", waitMs: 3_600_000 });
    expect(wait("wrong token too often from 10.0.0.5: try again in 99999999 s")).toEqual({ kind: "final" });
    expect(wait("try again in 5 s")).toEqual({ kind: "final" });
    // Lockouts of a network, of the server for unknown addresses, and of a full table are waited out alike.
    expect(wait("wrong token too often from 10.0.0.0/24: try again in 4 s")).toEqual({ kind: "locked", waitMs: 4000 });
    expect(wait("wrong token too often on this server from addresses it does not know: try again in 2 s")).toEqual({ kind: "locked", waitMs: 2000 });
    expect(wait("too many addresses are locked out for a wrong token: try again in 3 s")).toEqual({ kind: "locked", waitMs: 3000 });
    // A handshake queue that is full clears by itself.
    expect(classifyRefusal(RefuseReason.Other, "too many handshakes from this address: try again")).toEqual({ kind: "busy" });
    expect(classifyRefusal(RefuseReason.Other, "too many handshakes in progress: try again")).toEqual({ kind: "busy" });
  });

  test("a refusal that is for the user to fix, after busy ones, ends it at once with its own words", () => {
    const { m } = machine({ random: () => 0.5 });
    m.push({ type: "start" }, 0);
    retried(attempt(m, 0, FULL));
    nextMove(m, 0);
    expect(finishedWith(attempt(m, 500, { type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token" })).message)
      .toBe(`server ${SERVER} refused the session: wrong token`);
  });

  // The refusals as the server's own admission machine words them, so the two stay in step.
  test("the server's refusals, as it sends them, are taken as meant: busy ones waited for, a lockout waited out, the rest final", () => {
    const refusals = (actions: AdmissionAction[]) => actions.flatMap((a) => (a.kind === "send" && a.msg.type === "refuse" ? [a.msg] : []));
    const hello = (udpPort: number, capabilities = 0) => ({ type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities, name: "" }) as const;
    const base = { maxClients: 1, maxPending: 2, heartbeatMs: 1000, timeoutMs: 5000, wallClockUs: () => 0, stream: { width: 8, height: 8, fpsMillihertz: 1000, fragmentSize: 1000, udpSourcePort: 1 } };
    const got: { refuse: ControlMessage; want: string }[] = [];
    const take = (actions: AdmissionAction[], want: string) => {
      const [r] = refusals(actions);
      expect(r).toBeDefined();
      got.push({ refuse: r!, want });
    };
    let a = new Admission(base);
    a.connected(1, { address: "10.0.0.5", port: 1 }, 0);
    a.received(1, hello(5000), 0);
    a.connected(2, { address: "10.0.0.6", port: 2 }, 0);
    take(a.received(2, hello(5001), 0), "busy");
    a.connected(3, { address: "10.0.0.5", port: 3 }, 0);
    take(a.received(3, hello(5000), 0), "busy"); // its UDP port is still held
    a = new Admission({ ...base, maxClients: 8, maxPerHost: 1 });
    a.connected(1, { address: "10.0.0.5", port: 1 }, 0);
    a.received(1, hello(5000), 0);
    a.connected(2, { address: "10.0.0.5", port: 2 }, 0);
    take(a.received(2, hello(5001), 0), "busy");
    a = new Admission(base);
    a.connected(1, { address: "10.0.0.5", port: 1 }, 0);
    a.connected(2, { address: "10.0.0.6", port: 2 }, 0);
    take(a.connected(3, { address: "10.0.0.7", port: 3 }, 0), "busy"); // evicted by a flood of connections that say nothing
    a = new Admission({ ...base, maxPending: 64 });
    let evicted: AdmissionAction[] = [];
    for (let i = 0; i <= MAX_PENDING_PER_ADDRESS; i++) evicted = a.connected(i, { address: "10.0.0.5", port: i }, 0);
    take(evicted, "busy");
    a.shutdown(0);
    take(a.connected(99, { address: "10.0.0.8", port: 9 }, 0), "busy");
    a = new Admission({ ...base, auth: { token: tokenKey("the server's token"), lockout: { freeFailures: 0, baseMs: 3000 } } });
    a.connected(1, { address: "10.0.0.5", port: 1 }, 0);
    take(a.received(1, hello(5000), 0), "final"); // no token
    a.connected(2, { address: "10.0.0.5", port: 2 }, 0);
    take(a.received(2, hello(5000, CAP_TOKEN_AUTH), 0), "final"); // cannot decrypt
    a.connected(3, { address: "10.0.0.5", port: 3 }, 0);
    a.received(3, hello(5000, CAP_TOKEN_AUTH | CAP_DECRYPT), 0);
    take(a.received(3, { type: "response", clientNonce: new Uint8Array(32).fill(1), proof: new Uint8Array(32) }, 0), "final"); // wrong token
    a.connected(4, { address: "10.0.0.5", port: 4 }, 0);
    take(a.received(4, hello(5000, CAP_TOKEN_AUTH | CAP_DECRYPT), 0), "locked 3000");
    a.connected(5, { address: "10.0.0.9", port: 5 }, 0);
    take(a.received(5, { ...hello(5000), version: PROTOCOL_VERSION + 1 }, 0), "final");
    const kinds = got.map(({ refuse }) => {
      if (refuse.type !== "refuse") throw new Error("not a refuse");
      const r = classifyRefusal(refuse.reason, refuse.text);
      return r.kind === "locked" ? `locked ${r.waitMs}` : r.kind;
    });
    expect(kinds).toEqual(got.map((g) => g.want));
  });
});
