// The multicast pieces without a network: the server's admission (who is sent to the
// group, the fallback), the viewer's machine (the 2 s wait, a failed join), the
// reassembler (the stream id counts only by the group), the group flag, and the
// fragments a group gets (one copy, whatever the number of viewers).
import { describe, expect, test } from "bun:test";
import { formatLine } from "../lib/log/format.ts";
import { multicastSettings, parseMulticastFlag, SERVER_COMMAND } from "../lib/app/server-flags.ts";
import { parseCommandLine } from "../lib/app/flags.ts";
import { UsageError } from "../lib/app/cli.ts";
import { autoGroupAddress, DEFAULT_GROUP_PORT, isAdminScopedGroup } from "../lib/net/multicast.ts";
import { Handshake, MULTICAST_WAIT_MS, type HandshakeAction } from "../lib/receive/handshake.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { Admission, type AdmissionAction, type ConnId } from "../lib/send/admission.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import {
  CAP_MULTICAST, CAP_RESUME, FallbackReason, PROTOCOL_VERSION, WELCOME_MULTICAST, type ControlMessage, type Report, type Welcome,
} from "../lib/wire/control.ts";
import { welcome } from "./helpers/fake-server.ts";

const STREAM = { width: 320, height: 240, fpsMillihertz: 30_000, fragmentSize: 1368, udpSourcePort: 40_000 };
const GROUP = { address: "239.255.10.1", port: 9998, streamId: 0x5eed };

function admission(multicast: typeof GROUP | null = GROUP): Admission {
  let id = 0x100;
  return new Admission({
    maxClients: 8, maxPending: 64, heartbeatMs: 1000, timeoutMs: 5000, stream: STREAM, multicast,
    wallClockUs: (now) => 1_700_000_000_000_000 + now * 1000, randomId: () => id++,
  });
}

const sentTo = (actions: AdmissionAction[], conn: ConnId) => actions.flatMap((a) => (a.kind === "send" && a.conn === conn ? [a.msg] : []));
const kinds = (actions: AdmissionAction[]) => actions.map((a) => (a.kind === "log" ? `log ${a.message}` : `${a.kind} ${a.conn}`));
const lines = (actions: AdmissionAction[]) =>
  actions.flatMap((a) => (a.kind === "log" ? [formatLine(new Date(0), a.level.toUpperCase() as "INFO", "server", a.message, a.fields).replace(/^\S+ /, "")] : []));

function join(m: Admission, conn: ConnId, udpPort: number, capabilities: number): AdmissionAction[] {
  m.connected(conn, { address: "10.77.0.11", port: 50_000 + conn }, 0);
  return m.received(conn, { type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities, name: "" }, 0);
}

describe("admission with a multicast group", () => {
  test("a viewer that can join is welcomed to the group and its session is in it; the join line says so", () => {
    const m = admission();
    const out = join(m, 1, 8001, CAP_MULTICAST);
    const w = sentTo(out, 1)[0] as Welcome;
    expect(w).toMatchObject({ type: "welcome", sessionId: 0x100, flags: WELCOME_MULTICAST, multicast: GROUP });
    const start = out.find((a) => a.kind === "start");
    expect(start?.kind === "start" && start.session.delivery).toBe("multicast");
    expect(lines(out)).toEqual(["INFO [server] client joined client=10.77.0.11:50001 udp=8001 session=00000100 delivery=multicast clients=1"]);
  });

  test("a viewer that cannot join (an older one) is sent unicast, and its welcome names no group", () => {
    const m = admission();
    const out = join(m, 1, 8001, CAP_RESUME);
    const w = sentTo(out, 1)[0] as Welcome;
    expect(w.flags & WELCOME_MULTICAST).toBe(0);
    expect(w.multicast).toBeUndefined();
    const start = out.find((a) => a.kind === "start");
    expect(start?.kind === "start" && start.session.delivery).toBe("unicast");
  });

  test("without a group nothing changes: no flag, no delivery field in the log", () => {
    const m = admission(null);
    const out = join(m, 1, 8001, CAP_MULTICAST);
    expect((sentTo(out, 1)[0] as Welcome).flags).toBe(0);
    expect(lines(out)[0]).not.toContain("delivery=");
  });

  test("a fallback switches that session alone to unicast, logged once as fallback with the reason; a repeat changes nothing", () => {
    const m = admission();
    join(m, 1, 8001, CAP_MULTICAST);
    join(m, 2, 8002, CAP_MULTICAST);
    const out = m.received(2, { type: "fallback", reason: FallbackReason.Silent }, 2100);
    expect(kinds(out)).toEqual(["unicast 2", "log fallback"]);
    expect(lines(out)).toEqual([
      `WARN [server] fallback client=10.77.0.11:50002 udp=8002 session=00000101 reason="no multicast datagram arrived" detail="multicast does not reach this viewer; sending to it alone"`,
    ]);
    expect(m.fallbacks).toBe(1);
    expect(m.received(2, { type: "fallback", reason: FallbackReason.JoinFailed }, 2200)).toEqual([]);
    expect(m.fallbacks).toBe(1);
    // The session is still there, and its leave line says how it was served at the end.
    const bye = m.received(2, { type: "bye", reason: 1 }, 3000);
    expect(lines(bye)[0]).toContain("delivery=unicast");
    const bye1 = m.received(1, { type: "bye", reason: 1 }, 3000);
    expect(lines(bye1)[0]).toContain("delivery=multicast");
  });

  test("a fallback from a session never in the group is ignored", () => {
    const m = admission();
    join(m, 1, 8001, CAP_RESUME);
    expect(m.received(1, { type: "fallback", reason: FallbackReason.Silent }, 100)).toEqual([]);
    expect(m.fallbacks).toBe(0);
  });
});

describe("the viewer's machine", () => {
  const report = (): Report => ({ type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 });
  const machine = (multicast?: boolean) =>
    new Handshake({
      server: "10.77.0.1:9999", udpPort: 5000, report, totals: () => ({ framesReceived: 0, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 }),
      wallClockMicros: () => 1, multicast,
    });
  const group = welcome({ flags: WELCOME_MULTICAST, multicast: GROUP });
  const welcomed = (m: Handshake, w: Welcome, t = 0) => {
    m.push({ type: "start" }, t);
    const hello = m.push({ type: "connected" }, t)[0] as Extract<HandshakeAction, { type: "send" }>;
    return { hello: hello.msg, actions: m.push({ type: "message", msg: w }, t) };
  };
  const sent = (actions: HandshakeAction[]) => actions.flatMap((a) => (a.type === "send" ? [a.msg] : []));

  test("offers to join in its hello, unless told not to", () => {
    expect((welcomed(machine(), welcome()).hello as { capabilities: number }).capabilities & CAP_MULTICAST).toBe(CAP_MULTICAST);
    expect((welcomed(machine(false), welcome()).hello as { capabilities: number }).capabilities & CAP_MULTICAST).toBe(0);
  });

  test("nothing from the group within 2 s of the welcome: one fallback (silent), and it leaves the group; heartbeats go on", () => {
    const m = machine();
    expect(welcomed(m, group, 1000).actions).toEqual([{ type: "receive", welcome: group }]);
    expect(m.delivery).toBe("waiting");
    const before = m.push({ type: "tick" }, 1000 + MULTICAST_WAIT_MS - 1);
    expect(sent(before).some((x) => x.type === "fallback")).toBe(false);
    const at = m.push({ type: "tick" }, 1000 + MULTICAST_WAIT_MS);
    const fallback: ControlMessage = { type: "fallback", reason: FallbackReason.Silent };
    expect(sent(at).filter((x) => x.type === "fallback")).toEqual([fallback]);
    expect(at.find((a) => a.type === "leave-group")).toMatchObject({ type: "leave-group", reason: FallbackReason.Silent, text: expect.stringContaining("within 2 s") });
    expect(m.delivery).toBe("unicast");
    const later = [4100, 5100].flatMap((t) => m.push({ type: "tick" }, t));
    expect(sent(later).some((x) => x.type === "fallback")).toBe(false);
    expect(sent(later).filter((x) => x.type === "heartbeat")).toHaveLength(2);
  });

  test("a datagram by the group in time: no fallback, ever", () => {
    const m = machine();
    welcomed(m, group, 0);
    m.push({ type: "multicast-arrived" }, 1999);
    expect(m.delivery).toBe("flowing");
    for (let t = 100; t <= 4000; t += 100) expect(sent(m.push({ type: "tick" }, t)).some((x) => x.type === "fallback")).toBe(false);
  });

  test("a join that fails asks for unicast at once (could not join)", () => {
    const m = machine();
    welcomed(m, group, 0);
    const out = m.push({ type: "multicast-failed", text: "cannot join multicast group 239.255.10.1:9998 on 10.77.0.11: ENODEV" }, 5);
    expect(out).toEqual([
      { type: "send", msg: { type: "fallback", reason: FallbackReason.JoinFailed } },
      { type: "leave-group", reason: FallbackReason.JoinFailed, text: "cannot join multicast group 239.255.10.1:9998 on 10.77.0.11: ENODEV" },
    ]);
    // A late datagram, or the 2 s passing, change nothing more.
    expect(m.push({ type: "multicast-arrived" }, 10)).toEqual([]);
    expect(sent(m.push({ type: "tick" }, 2500)).some((x) => x.type === "fallback")).toBe(false);
  });

  test("a unicast welcome has no group to wait for", () => {
    const m = machine();
    welcomed(m, welcome(), 0);
    expect(m.delivery).toBeNull();
    expect(m.push({ type: "multicast-failed", text: "x" }, 1)).toEqual([]);
    expect(sent(m.push({ type: "tick" }, 2500)).some((x) => x.type === "fallback")).toBe(false);
  });

  test("a viewer that did not offer to join refuses a welcome to a group", () => {
    const m = machine(false);
    const { actions } = welcomed(m, group, 0);
    expect(actions.map((a) => a.type)).toEqual(["close", "finished"]);
  });
});

describe("the reassembler and the two ids", () => {
  const frag = new Fragmenter(1400);
  const frame = { seq: 7, capturedAt: 1_700_000_000_000_000, jpeg: new Uint8Array(3000).fill(9) };

  test("the stream id counts only by the group, the session id only by the viewer's own port", () => {
    const r = new Reassembler({ sessionId: 0 });
    r.reset(0x100, null, GROUP.streamId);
    for (const d of frag.fragment(frame, GROUP.streamId)) expect(r.push(d, 0)).toBeNull();
    expect(r.stats.dropped.wrongSession).toBe(3);
    for (const d of frag.fragment(frame, 0x100)) expect(r.push(d, 0, true)).toBeNull();
    expect(r.stats.dropped.wrongSession).toBe(6);
    const byGroup = frag.fragment(frame, GROUP.streamId).map((d) => d.slice());
    const byPort = frag.fragment({ ...frame }, 0x100).map((d) => d.slice());
    // A frame that arrives partly each way (the switch to unicast) is still one frame.
    expect(r.push(byGroup[0]!, 1, true)).toBeNull();
    expect(r.push(byPort[1]!, 1)).toBeNull();
    const done = r.push(byPort[2]!, 1);
    expect(done?.frameNumber).toBe(7);
    expect(done?.jpeg).toEqual(frame.jpeg);
  });

  test("by the group, what comes before a frame's first fragment is the rest of a frame begun before the join: dropped, not a loss", () => {
    const r = new Reassembler({ sessionId: 0x100 });
    r.reset(0x100, null, GROUP.streamId);
    const first = frag.fragment(frame, GROUP.streamId).map((d) => d.slice());
    expect(r.push(first[1]!, 0, true)).toBeNull();
    expect(r.push(first[2]!, 0, true)).toBeNull();
    expect(r.stats.dropped.joinedMidFrame).toBe(2);
    const next = frag.fragment({ ...frame, seq: 8 }, GROUP.streamId).map((d) => d.slice());
    expect(r.push(next[0]!, 1, true)).toBeNull();
    expect(r.push(next[1]!, 1, true)).toBeNull();
    expect(r.push(next[2]!, 1, true)?.frameNumber).toBe(8);
    expect({ incomplete: r.stats.incomplete, missing: r.stats.framesMissing }).toEqual({ incomplete: { lostFragment: 0, timeout: 0, evicted: 0 }, missing: 0 });
    // After the start, a lost first fragment is a loss like any other.
    const third = frag.fragment({ ...frame, seq: 9 }, GROUP.streamId).map((d) => d.slice());
    r.push(third[1]!, 2, true);
    expect(r.stats.dropped.joinedMidFrame).toBe(2);
    expect(r.inFlight).toBe(1);
  });

  test("without a stream id, nothing by the group counts", () => {
    const r = new Reassembler({ sessionId: 0x100 });
    for (const d of frag.fragment(frame, 0x100)) r.push(d, 0, true);
    expect(r.stats.dropped.wrongSession).toBe(3);
    expect(r.stats.framesCompleted).toBe(0);
  });
});

describe("--multicast and its companions", () => {
  test("GROUP[:PORT] in 239.0.0.0/8; auto picks a group in 239.255.0.0/16 outside 239.255.255.x", () => {
    expect(parseMulticastFlag("239.255.10.1")).toEqual({ address: "239.255.10.1", port: DEFAULT_GROUP_PORT });
    expect(parseMulticastFlag("239.1.2.3:5004")).toEqual({ address: "239.1.2.3", port: 5004 });
    expect(parseMulticastFlag("auto", "--multicast", () => 0)).toEqual({ address: "239.255.0.1", port: DEFAULT_GROUP_PORT });
    expect(parseMulticastFlag("auto", "--multicast", () => 0.9999)).toEqual({ address: "239.255.254.254", port: DEFAULT_GROUP_PORT });
    for (let i = 0; i < 200; i++) {
      const a = autoGroupAddress();
      expect(isAdminScopedGroup(a)).toBe(true);
      expect(a.startsWith("239.255.") && !a.startsWith("239.255.255.")).toBe(true);
    }
  });

  const bad: [string, string][] = [
    ["224.1.1.1", "invalid --multicast=224.1.1.1: expected auto, or GROUP[:PORT] with GROUP in 239.0.0.0-239.255.255.255 (administratively scoped), e.g. 239.255.10.1:9998"],
    ["10.0.0.1", "invalid --multicast=10.0.0.1: expected auto"],
    ["239.255.1", "invalid --multicast=239.255.1: expected auto"],
    ["239.255.1.1:0", "invalid --multicast=239.255.1.1:0: port 0 outside 1..65535"],
    ["239.255.1.1:65536", "invalid --multicast=239.255.1.1:65536: port 65536 outside 1..65535"],
    ["239.255.1.1:", "invalid --multicast=239.255.1.1:: expected auto"],
    ["", "invalid --multicast=: expected auto"],
  ];
  for (const [raw, message] of bad) {
    test(`--multicast=${raw} is refused: ${message}`, () => {
      expect(() => parseMulticastFlag(raw)).toThrow(UsageError);
      expect(() => parseMulticastFlag(raw)).toThrow(message);
    });
  }

  const flags = (argv: string[]) => {
    const cli = parseCommandLine(SERVER_COMMAND, argv);
    if (cli.action !== "run") throw new Error(cli.action);
    return cli.flags;
  };

  test("TTL 1 by default; the interface is --multicast-if's, else --bind's, else the route's", () => {
    expect(multicastSettings(flags(["--multicast", "239.255.1.1"]))).toEqual({ address: "239.255.1.1", port: 9998, ttl: 1, interfaceAddress: null });
    expect(multicastSettings(flags(["--multicast", "239.255.1.1", "--bind", "10.77.0.1"]))).toMatchObject({ interfaceAddress: "10.77.0.1" });
    expect(multicastSettings(flags(["--multicast", "239.255.1.1:7000", "--bind", "10.77.0.1", "--multicast-if", "127.0.0.1", "--multicast-ttl", "4"])))
      .toEqual({ address: "239.255.1.1", port: 7000, ttl: 4, interfaceAddress: "127.0.0.1" });
    expect(multicastSettings(flags([]))).toBeNull();
  });

  test("--multicast-ttl and --multicast-if need --multicast, and are checked", () => {
    expect(() => multicastSettings(flags(["--multicast-ttl", "2"]))).toThrow("--multicast-ttl needs --multicast");
    expect(() => multicastSettings(flags(["--multicast-if", "127.0.0.1"]))).toThrow("--multicast-if needs --multicast");
    expect(() => flags(["--multicast-ttl", "0"])).toThrow("invalid --multicast-ttl=0");
    expect(() => flags(["--multicast-ttl", "256"])).toThrow("invalid --multicast-ttl=256");
    expect(() => flags(["--multicast-if", "eth0"])).toThrow("invalid --multicast-if=eth0: expected an IPv4 address of this machine");
  });
});
