// Multicast end to end, real server and viewer processes: on loopback (open and with a
// token), and across network namespaces on a bridge, where a viewer behind a router
// (no multicast route, no multicast forwarded) falls back to unicast. Every frame from
// a viewer's first is counted: none missing, none incomplete.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { NetnsLan, netnsUnavailable } from "./helpers/netns.ts";
import { spawnBun, type Child, expectExit } from "./helpers/process.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-multicast-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A group and port of our own, so runs beside each other do not share one. */
function group(): string {
  const r = crypto.getRandomValues(new Uint16Array(2));
  return `239.255.${(r[0]! % 200) + 20}.${(r[1]! % 250) + 1}:${20_000 + (r[0]! % 20_000)}`;
}

const readStats = (path: string): StatsSummary => JSON.parse(readFileSync(path, "utf8"));
const logLines = (path: string, what: string) => readFileSync(path, "utf8").split("\n").filter((l) => l.includes(`[server] ${what} `));
const field = (line: string, name: string) => /* the value of name=... */ new RegExp(`(?:^| )${name}=(\\S+)`).exec(line)?.[1];

/**
 * The viewer counted every frame from its first: exactly `frames`, in order, none refused,
 * and whatever it missed counted as skipped. UDP has no retransmission, and a receiver on a
 * busy 2-core machine misses a datagram now and then: at most one frame in six runs when
 * the machine ran only other tests, two in a run with both cores kept busy. So the bound
 * is a tenth of the frames (3 of 30, 12 of 120; a stall of 0.4 s at 30 fps): random loss
 * stays far below it, while a lost stream, a failed switch to unicast or a viewer's
 * departure disturbing the others does not. (Loss rates are for bench/ to measure.)
 */
function expectEveryFrame(who: string, s: StatsSummary, frames: number): void {
  expect({ who, received: s.framesReceived, outOfOrder: s.framesOutOfOrder, rejected: s.framesRejected }).toEqual({ who, received: frames, outOfOrder: 0, rejected: 0 });
  const skipped = s.framesMissing + s.framesIncomplete;
  const bound = Math.floor(frames / 10);
  expect({ who, skipped: Math.min(skipped, bound + 1) }).toEqual({ who, skipped: Math.min(skipped, bound) });
}

/** The server's stop line as numbers. */
type StopCounts = Record<"datagramsSent" | "groupDatagramsSent" | "groupFramesSent" | "framesBroadcast" | "framesEncrypted" | "keyRotations" | "fallbacks" | "repairDatagramsResent", number>;
function stopCounts(log: string): StopCounts {
  const line = logLines(log, "stopped")[0];
  expect(line).toBeDefined();
  return Object.fromEntries([...line!.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])])) as StopCounts;
}

describe("multicast on loopback", () => {
  for (const token of [null, "loopback-test-token-long-enough-0123"]) {
    test(`three viewers get every frame from one copy of each datagram; one that leaves stops nothing for the others${token ? " (with a token: the key changes as it leaves)" : ""}`, async () => {
      const name = token ? "lo-token" : "lo-open";
      const log = join(dir, `${name}.log`);
      const g = group();
      const env = token ? { LANCAM_TOKEN: token } : {};
      await using server = spawnBun(["server.ts", "--source", "test", "--size", "640x360", "--fps", "30", "--port", "0", "--bind", "127.0.0.1", "--log", log, "--multicast", g], env);
      const port = (await server.waitFor(new RegExp(`lancam server listening tcp=(\\d+) .* multicast=${g.replace(/\./g, "\\.")}$`, "m")))[1]!;
      // The first leaves after 30 frames, while the other two go on to 120.
      const frames = [30, 120, 120];
      const viewers: { child: Child; stats: string }[] = frames.map((n, i) => {
        const stats = join(dir, `${name}-${i}.json`);
        return { child: spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--frames", String(n), "--stats", stats], env), stats };
      });
      try {
        for (const v of viewers) await v.child.waitFor(/multicast group joined group=(\S+)/, 15_000, "stderr");
        const codes = await Promise.all(viewers.map((v) => v.child.exited));
        expect(codes).toEqual([0, 0, 0]);
        server.proc.kill("SIGTERM");
        await expectExit(server, 0);
        for (const [i, v] of viewers.entries()) {
          const s = readStats(v.stats);
          expectEveryFrame(`viewer ${i}`, s, frames[i]!);
          // A group member's own port gets only resends it asked for (a datagram late on a busy machine looks lost).
          expect(s.delivery).toEqual({ datagramsByGroup: expect.any(Number), datagramsByOwnPort: expect.any(Number), fallbacks: 0 });
          expect(s.delivery.datagramsByGroup).toBeGreaterThan(frames[i]!);
          expect(v.child.stderr()).not.toContain("fallback");
        }
        const joins = logLines(log, "client joined");
        expect(joins).toHaveLength(3);
        for (const j of joins) expect(field(j, "delivery")).toBe("multicast");
        const leaves = logLines(log, "client left");
        expect(leaves.map((l) => field(l, "reason"))).toEqual(["goodbye", "goodbye", "goodbye"]);
        expect(logLines(log, "fallback")).toEqual([]);
        const c = stopCounts(log);
        // Every datagram went to the group, once: none to a viewer's own port but the resends
        // viewers asked for (counted as handed out; one for a viewer that left meanwhile is not sent).
        expect(c.datagramsSent).toBeGreaterThanOrEqual(c.groupDatagramsSent);
        expect(c.datagramsSent - c.groupDatagramsSent).toBeLessThanOrEqual(c.repairDatagramsResent);
        const ownPort = viewers.reduce((n, v) => n + readStats(v.stats).delivery.datagramsByOwnPort, 0);
        expect(ownPort).toBeLessThanOrEqual(c.repairDatagramsResent);
        expect(c.groupFramesSent).toBeGreaterThanOrEqual(120);
        expect(c.groupFramesSent).toBeLessThanOrEqual(c.framesBroadcast);
        expect(c.fallbacks).toBe(0);
        if (token) {
          expect(c.framesEncrypted).toBeGreaterThanOrEqual(c.groupFramesSent);
          expect(c.keyRotations).toBeGreaterThanOrEqual(1);
        }
      } finally {
        for (const v of viewers) await v.child[Symbol.asyncDispose]();
      }
    }, 60_000);
  }
});

const unavailable = netnsUnavailable();
if (unavailable) console.warn(`multicast across namespaces skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)("multicast across network namespaces", () => {
  test("three viewers on the bridge get every frame by the group; one behind a router falls back to unicast and still gets every frame; one that leaves stops nothing", async () => {
    await using lan = new NetnsLan("lcmt-", [
      { name: "srv", address: "10.77.0.1", multicastRoute: true },
      { name: "v1", address: "10.77.0.11", multicastRoute: true },
      { name: "v2", address: "10.77.0.12", multicastRoute: true },
      { name: "v3", address: "10.77.0.13", multicastRoute: true },
      { name: "far", address: "10.77.1.2", behindRouter: true },
    ]);
    const log = join(dir, "netns.log");
    const g = group();
    const server = lan.bun("srv", ["server.ts", "--source", "test", "--size", "640x360", "--fps", "30", "--port", "0", "--log", log, "--multicast", g]);
    const port = (await server.waitFor(/lancam server listening tcp=(\d+)/))[1]!;
    // v3 leaves after 30 frames; the far viewer needs 2 s more than the others before its frames come.
    const plan: [string, number][] = [["v1", 150], ["v2", 150], ["v3", 30], ["far", 120]];
    const viewers = plan.map(([host, n]) => {
      const stats = join(dir, `netns-${host}.json`);
      return { host, n, stats, child: lan.bun(host, ["client.ts", "10.77.0.1", port, "0", "--no-window", "--no-record", "--frames", String(n), "--stats", stats]) };
    });
    const codes = await Promise.all(viewers.map((v) => v.child.exited));
    expect(codes).toEqual([0, 0, 0, 0]);
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);

    for (const v of viewers) {
      const s = readStats(v.stats);
      expectEveryFrame(v.host, s, v.n);
      if (v.host === "far") {
        expect(s.delivery).toMatchObject({ datagramsByGroup: 0, fallbacks: 1 });
        expect(s.delivery.datagramsByOwnPort).toBeGreaterThan(v.n);
        expect(v.child.stderr()).toContain("WARN [client] fallback to unicast");
      } else {
        // Only resends it asked for come to a group member's own port.
        expect(s.delivery).toMatchObject({ fallbacks: 0 });
        expect(s.delivery.datagramsByOwnPort).toBeLessThan(s.delivery.datagramsByGroup / 5);
        expect(s.delivery.datagramsByGroup).toBeGreaterThan(v.n);
        expect(v.child.stderr()).toContain("multicast group joined");
      }
    }
    const fallbacks = logLines(log, "fallback");
    expect(fallbacks).toHaveLength(1);
    expect(field(fallbacks[0]!, "client")).toStartWith("10.77.1.2:");
    expect(fallbacks[0]).toContain(`reason="no multicast datagram arrived"`);
    const leaves = logLines(log, "client left");
    expect(leaves).toHaveLength(4);
    for (const l of leaves) {
      expect(field(l, "reason")).toBe("goodbye");
      expect(field(l, "delivery")).toBe(l.includes("client=10.77.1.2:") ? "unicast" : "multicast");
    }
    const c = stopCounts(log);
    expect(c.fallbacks).toBe(1);
    // One copy for the group whatever the number of viewers in it, plus the far viewer's own (and resends asked for).
    const unicast = c.datagramsSent - c.groupDatagramsSent - c.repairDatagramsResent;
    const far = readStats(viewers[3]!.stats);
    expect(unicast + c.repairDatagramsResent).toBeGreaterThanOrEqual(far.delivery.datagramsByOwnPort);
    expect(unicast).toBeLessThan(far.delivery.datagramsByOwnPort * 1.1 + 50);
    expect(c.groupDatagramsSent).toBeLessThan(c.datagramsSent);
  }, 90_000);
});
