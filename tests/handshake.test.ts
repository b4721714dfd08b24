// The viewer's side of the control protocol as a plain state machine, driven with a
// fake clock: every timing rule is checked to the millisecond without waiting.
import { describe, expect, test } from "bun:test";
import { ByeReason, CAP_MULTICAST, CAP_PATH_REPORTS, CAP_RESUME, RefuseReason, type ByeTotals, type ControlMessage, type Report } from "../lib/wire/control.ts";
import { ConnectError, Handshake, reconnectDelayMs, type HandshakeAction, type HandshakeOptions, type SessionEnd } from "../lib/receive/handshake.ts";
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
    expect(m.push({ type: "connected" }, 10)).toEqual([{ type: "send", msg: { type: "hello", version: 1, udpPort: 5000, capabilities: CAP_RESUME | CAP_PATH_REPORTS | CAP_MULTICAST, name: "hall" } }]);
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

  test("at the first attempt every refusal is the user's to read, final or not", () => {
    for (const reason of Object.values(RefuseReason)) {
      const { m } = machine();
      m.push({ type: "start" }, 0);
      m.push({ type: "connected" }, 0);
      const e = finishedWith(m.push(msg({ type: "refuse", reason, text: reason === RefuseReason.ServerFull ? "" : "go away" }), 5));
      expect(e.refusedFor).toBe(reason);
      expect(e.message).toBe(`server ${SERVER} refused the session: ${reason === RefuseReason.ServerFull ? "server full" : "go away"}`);
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
    expect(hello).toEqual({ type: "send", msg: { type: "hello", version: 1, udpPort: 5000, capabilities: CAP_RESUME | CAP_PATH_REPORTS | CAP_MULTICAST, name: "hall", resume: first } });
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
