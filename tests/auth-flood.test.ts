// Token guessing from many addresses: the lockout table that refuses rather than forgets,
// the per-network and server-wide backoffs, the lockout checked again at the proof, one
// challenge per address, handshakes a flood cannot evict, and a real viewer getting in
// while a flood runs. First the machine with a fake clock, then real sockets from
// hundreds of 127.x.y.z addresses.
import { describe, expect, test } from "bun:test";
import { formatLine } from "../lib/log/format.ts";
import { clientProof, deriveSessionKeys, tokenKey } from "../lib/net/session-keys.ts";
import { Admission, type AdmissionAction, type AdmissionOptions } from "../lib/send/admission.ts";
import { networkOf, type LockoutOptions } from "../lib/send/auth-lockout.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { CAP_DECRYPT, CAP_TOKEN_AUTH, PROTOCOL_VERSION, RefuseReason, type Challenge, type ControlMessage, type Hello } from "../lib/wire/control.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { encodeControl } from "../lib/wire/control.ts";
import net from "node:net";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { until } from "./helpers/process.ts";
import { flood, guessToken, loopbackAddresses } from "./helpers/token-guesser.ts";

// scrypt is slow on purpose: stretch each token once for the whole file.
const RIGHT = tokenKey("flood test right token, long enough");
const WRONG = tokenKey("flood test wrong token, long enough");
const STREAM = { width: 320, height: 240, fpsMillihertz: 30_000, fragmentSize: 1352, udpSourcePort: 40_000 };
const HELLO: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: 5000, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "" };

function server(lockout: LockoutOptions = {}, over: Partial<AdmissionOptions> = {}): Admission {
  let id = 0x100;
  return new Admission({
    maxClients: 8, maxPending: 64, heartbeatMs: 1000, timeoutMs: 5000, stream: STREAM, wallClockUs: (now) => 1.7e15 + now * 1000,
    randomId: () => id++, auth: { token: RIGHT, lockout }, ...over,
  });
}

const sent = (actions: AdmissionAction[]) => actions.flatMap((a) => (a.kind === "send" ? [a.msg] : []));
const security = (actions: AdmissionAction[]) => actions.flatMap((a) => (a.kind === "log" && a.level === "security" ? [a] : []));
const lines = (actions: AdmissionAction[]) =>
  actions.flatMap((a) => (a.kind === "log" ? [formatLine(new Date(0), (a.level === "security" ? "WARN" : a.level.toUpperCase()) as "INFO", "server", a.message, a.fields).replace(/^\S+ /, "")] : []));

/** The response a viewer holding `token` sends to `challenge`. */
function response(token: typeof RIGHT, challenge: Challenge): ControlMessage {
  const t = { hello: HELLO, challenge, clientNonce: crypto.getRandomValues(new Uint8Array(32)) };
  return { type: "response", clientNonce: t.clientNonce, proof: clientProof(deriveSessionKeys(token, t), t) };
}

let nextConn = 1;
/** One whole attempt from `address` at `now`, closed at its end; returns every action and the last message the server sent. */
function attempt(m: Admission, address: string, token: typeof RIGHT, now: number): { actions: AdmissionAction[]; last: ControlMessage | undefined } {
  const conn = nextConn++;
  const actions = [...m.connected(conn, { address, port: 40_000 }, now), ...m.received(conn, HELLO, now)];
  const challenge = sent(actions).find((x) => x.type === "challenge");
  if (challenge?.type === "challenge") actions.push(...m.received(conn, response(token, challenge), now));
  const last = sent(actions).at(-1);
  actions.push(...m.closed(conn, now));
  return { actions, last };
}

test("a network is the /24 of an IPv4 address and the /64 of an IPv6 one, however it is written", () => {
  expect(networkOf("192.168.1.20")).toBe("192.168.1.0/24");
  expect(networkOf("2001:db8:0:1:2:3:4:5")).toBe("2001:db8:0:1::/64");
  expect(networkOf("2001:0DB8:0000:0001::9")).toBe("2001:db8:0:1::/64");
  expect(networkOf("2001:db8::5")).toBe("2001:db8:0:0::/64");
  expect(networkOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
  expect(networkOf("::1")).toBe("0:0:0:0::/64");
});

describe("lockout under a flood, the machine", () => {
  test("more addresses than the table holds: locked ones stay, new ones are refused as locked without their proof looked at, logged once per interval", () => {
    const wide = { freeFailures: 1e9 };
    const m = server({ freeFailures: 0, maxAddresses: 64, network: wide, server: wide });
    const all: AdmissionAction[] = [];
    for (let i = 0; i < 200; i++) all.push(...attempt(m, `10.1.${i >> 8}.${i & 0xff}`, WRONG, i).actions);
    expect(m.authCounters).toEqual({ authFailures: 64, authProofsEvaluated: 64, authLockedRefusals: 136, authTableRefused: 136 });
    expect(lines(all).filter((l) => l.includes("auth lockout table full"))).toEqual([
      'WARN [server] auth lockout table full refused=1 detail="every address it holds is locked out; new addresses are refused as locked"',
    ]);
    // A refused address was told to wait, as a locked one is (final for the viewer, like any auth refusal).
    const refused = attempt(m, "10.1.0.150", WRONG, 300);
    expect(refused.last).toEqual({ type: "refuse", reason: RefuseReason.AuthRequired, text: "too many addresses are locked out for a wrong token: try again in 1 s" });
    // The first 64 are still locked; once every lockout is over, addresses are counted again.
    expect(attempt(m, "10.1.0.0", WRONG, 300).last).toMatchObject({ type: "refuse", text: "wrong token too often from 10.1.0.0: try again in 1 s" });
    expect(sent(attempt(m, "10.1.0.150", WRONG, 2000).actions)[0]!.type).toBe("challenge");
  });

  test("a flood from 5000 addresses (over the 4096 the table holds) gets the server's free failures, about one guess per lockout and one per network of its own; a viewer that watched before gets in during it, and a new one from another network", () => {
    const m = server();
    const viewer = "192.168.1.20";
    expect(attempt(m, viewer, RIGHT, 0).last?.type).toBe("welcome");
    const addresses = Array.from({ length: 5000 }, (_, i) => `127.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`);
    let attempts = 0;
    let admittedDuringFlood = false;
    let newcomer: ControlMessage | undefined;
    let neighbour: ControlMessage | undefined;
    // 150 000 guesses over 30 s (5 per ms), every address in turn.
    for (let n = 0; n < 150_000; n++) {
      const now = 1000 + n / 5;
      attempt(m, addresses[n % addresses.length]!, WRONG, now);
      attempts++;
      if (n === 50_000) admittedDuringFlood = attempt(m, viewer, RIGHT, now).last?.type === "welcome";
      // Once the flood has spent a pass in each of its 20 networks (one a second), newcomers elsewhere get them.
      if (n === 125_000) {
        newcomer = attempt(m, "192.168.7.7", RIGHT, now + 0.1).last;
        neighbour = attempt(m, "127.100.0.250", RIGHT, now + 0.1).last;
      }
    }
    const evaluated = m.authCounters.authProofsEvaluated - 3;
    console.log(`5000 addresses, 150 000 guesses in 30 s (simulated): ${evaluated} evaluated`);
    // 100 free failures server-wide, then lockouts of 1, 2, 4, 8 and 16 s: one guess at the
    // end of each; and at most one a second from an address in a network without failures
    // (the flood's 20 networks each spend one that way).
    expect(evaluated).toBeGreaterThanOrEqual(100);
    expect(evaluated).toBeLessThanOrEqual(106 + 20);
    expect(attempts).toBe(150_000);
    expect(admittedDuringFlood).toBe(true);
    // A newcomer in a network the flood does not use gets in too; one in the flood's network waits it out.
    expect(newcomer?.type).toBe("welcome");
    expect(neighbour).toMatchObject({ type: "refuse", reason: RefuseReason.AuthRequired, text: expect.stringContaining("try again") });
  });

  test("a network's failures lock that /24 out, not the others; its lockout is logged as a security event", () => {
    const m = server({ network: { freeFailures: 5 } });
    const all: AdmissionAction[] = [];
    for (let i = 1; i <= 6; i++) all.push(...attempt(m, `10.2.0.${i}`, WRONG, i).actions);
    expect(lines(security(all)).at(-1)).toBe("WARN [server] auth lockout network=10.2.0.0/24 seconds=1");
    expect(attempt(m, "10.2.0.77", RIGHT, 10).last).toEqual({ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token too often from 10.2.0.0/24: try again in 1 s" });
    expect(attempt(m, "10.3.0.77", RIGHT, 10).last?.type).toBe("welcome");
    expect(attempt(m, "10.2.0.77", RIGHT, 1010).last?.type).toBe("welcome");
  });

  test("the lockout is checked again when the proof arrives: a lockout that began meanwhile holds it, unlooked-at", () => {
    const m = server({ server: { freeFailures: 3 } });
    m.connected(1, { address: "10.4.0.1", port: 1 }, 0);
    const challenge = sent(m.received(1, HELLO, 0))[0] as Challenge;
    // From its own network: no pass past the server's lockout for it either.
    for (let i = 0; i < 4; i++) attempt(m, `10.4.0.${2 + i}`, WRONG, 1);
    const before = m.authCounters.authProofsEvaluated;
    const out = m.received(1, response(RIGHT, challenge), 2);
    expect(sent(out)).toEqual([{ type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token too often on this server from addresses it does not know: try again in 1 s" }]);
    expect(m.authCounters.authProofsEvaluated).toBe(before);
    expect(lines(out)[0]).toContain('client refused reason=auth client=10.4.0.1:1 detail="locked out" scope=server retryInSec=1');
  });

  test("one address has one connection on a challenge at a time: the next waits its turn, is never evicted, and is challenged once the first is done", () => {
    const m = server({}, { maxPending: 4 });
    m.connected(1, { address: "10.6.0.1", port: 1 }, 0);
    m.connected(2, { address: "10.6.0.1", port: 2 }, 0);
    const c1 = sent(m.received(1, HELLO, 0))[0] as Challenge;
    expect(m.received(2, HELLO, 0)).toEqual([]);
    // A flood of silent connections evicts only those that said nothing.
    const evicted: AdmissionAction[] = [];
    for (let i = 0; i < 100; i++) evicted.push(...m.connected(100 + i, { address: `10.7.${i}.1`, port: 1 }, 1));
    expect(evicted.some((a) => a.kind === "close" && (a.conn === 1 || a.conn === 2))).toBe(false);
    expect(security(evicted).every((a) => a.message === "connection evicted")).toBe(true);
    const out = m.received(1, response(RIGHT, c1), 2);
    expect(sent(out).map((x) => x.type)).toEqual(["welcome", "challenge"]);
    expect(out.filter((a) => a.kind === "send").map((a) => a.kind === "send" && a.conn)).toEqual([1, 2]);
    // A hello beyond MAX_PENDING_PER_ADDRESS handshakes from one address is refused (not final: try again).
    const busy = server();
    for (let i = 0; i < 16; i++) {
      busy.connected(i, { address: "10.8.0.1", port: i }, 0);
      busy.received(i, HELLO, 0);
    }
    busy.connected(99, { address: "10.8.0.1", port: 99 }, 0);
    expect(sent(busy.received(99, HELLO, 0))).toEqual([{ type: "refuse", reason: RefuseReason.Other, text: "too many handshakes from this address: try again" }]);
  });
});

describe("lockout under a flood, real sockets from 127.x.y.z", () => {
  test("guesses from more addresses than the table holds are mostly refused unlooked-at; a viewer that watched before gets in during the flood", async () => {
    const log = memoryLogger("server");
    await using srv = await StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 8, log, stream: { width: 320, height: 240, fps: 30 }, token: RIGHT,
      lockout: { maxAddresses: 64, server: { freeFailures: 40 } },
    });
    // The viewer has watched before from its address.
    expect(await guessToken(srv.port, "127.0.0.1", RIGHT)).toEqual({ kind: "welcome" });
    const addresses = loopbackAddresses(200, 25);
    let stop = false;
    const running = flood(srv.port, addresses, WRONG, 16, () => stop);
    try {
      await until(() => srv.stats.authLockedRefusals >= 200, 30_000, "the flood meets the lockout");
      expect(await guessToken(srv.port, "127.0.0.1", RIGHT)).toEqual({ kind: "welcome" });
    } finally {
      stop = true;
    }
    const counts = await running;
    await until(() => srv.stats.authProofsEvaluated + srv.stats.authLockedRefusals >= counts.refused, 5000, "the server counted every refusal");
    const evaluated = srv.stats.authProofsEvaluated - 2;
    expect(counts.welcomed).toBe(0);
    // 40 free failures server-wide, then about one per lockout (1 s, then 2 s, ...) while the
    // flood runs, and at most one pass for each of its 8 networks.
    expect(evaluated).toBeGreaterThanOrEqual(40);
    expect(evaluated).toBeLessThanOrEqual(40 + 8 + 8);
    expect(counts.attempts).toBeGreaterThan(4 * evaluated);
  });

  test("a flood of silent connections during a real viewer's handshake evicts only the silent ones: the viewer, challenged, still gets in", async () => {
    const log = memoryLogger("server");
    await using srv = await StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 8, log, stream: { width: 320, height: 240, fps: 30 }, token: RIGHT, maxPending: 8, helloTimeoutMs: 10_000,
    });
    const reader = new MessageReader();
    const got: ControlMessage[] = [];
    const viewer = net.connect({ host: "127.0.0.1", port: srv.port, localAddress: "127.0.0.1" });
    const silent: net.Socket[] = [];
    try {
      viewer.on("data", (chunk: Buffer) => void got.push(...reader.push(new Uint8Array(chunk))));
      viewer.write(encodeControl(HELLO));
      await until(() => got.some((m) => m.type === "challenge"), 5000, "the challenge");
      for (let i = 0; i < 100; i++) silent.push(net.connect({ host: "127.0.0.1", port: srv.port, localAddress: `127.9.${i >> 8}.${(i & 0xff) + 1}` }).on("error", () => {}));
      await until(() => srv.stats.pendingEvicted >= 90, 10_000, "the flood evicting");
      viewer.write(encodeControl(response(RIGHT, got.find((m) => m.type === "challenge") as Challenge)));
      await until(() => got.some((m) => m.type === "welcome" || m.type === "refuse"), 5000, "an answer");
      expect(got.map((m) => m.type)).toContain("welcome");
      expect(srv.clientCount).toBe(1);
      expect(log.lines.filter((l) => l.includes("connection evicted")).length).toBeGreaterThanOrEqual(90);
    } finally {
      viewer.destroy();
      for (const s of silent) s.destroy();
    }
  });
});
