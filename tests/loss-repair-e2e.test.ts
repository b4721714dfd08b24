// Loss repair end to end: a real server and viewer in network namespaces on a bridge,
// the viewer's namespace dropping 2 % of incoming UDP at random (iptables statistic;
// the TCP control connection, which carries the repair requests, is spared), on a
// 1280x720 test pattern of about 36 datagrams a frame. With
// repair the viewer shows nearly every frame and records all of them; without it
// (the viewer does not offer it) the same loss costs a large share of the frames.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import type { RepairSummary } from "../lib/receive/repair-session.ts";
import type { RecordingStats } from "../lib/record/recorder-sink.ts";
import { NetnsLan, netnsUnavailable } from "./helpers/netns.ts";

const unavailable = netnsUnavailable() ?? (Bun.which("iptables") ? null : "no iptables");
const LOSS_PERCENT = 2;
const SECONDS = 8;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-loss-repair-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString().trim()}`);
}

/** Drops incoming UDP in `ns` with probability `percent` / 100, and counts what it dropped. */
function setLoss(ns: string, percent: number): void {
  run(["ip", "netns", "exec", ns, "iptables", "-F", "INPUT"]);
  run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random", "--probability", String(percent / 100), "-j", "DROP"]);
}

function droppedBy(ns: string): number {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-x", "-n"], { stdout: "pipe" });
  const drop = r.stdout.toString().split("\n").find((l) => l.includes("DROP"));
  return Number(drop?.trim().split(/\s+/)[0] ?? 0);
}

type Stats = StatsSummary & { repair: RepairSummary | null; recording: RecordingStats | null };

/** One viewer run of SECONDS against a fresh server; the args are added to each one's command line. */
async function watch(lan: NetnsLan, name: string, viewerArgs: string[], serverArgs: string[] = []): Promise<{ stats: Stats; serverLog: string; dropped: number }> {
  setLoss(lan.ns("v1"), LOSS_PERCENT);
  const serverLog = join(dir, `${name}-server.log`);
  const server = lan.bun("srv", ["server.ts", "--source", "test", "--size", "1280x720", "--fps", "30", "--port", "0", "--log", serverLog, ...serverArgs]);
  const port = (await server.waitFor(/lancam server listening tcp=(\d+)/))[1]!;
  const statsPath = join(dir, `${name}.json`);
  const viewer = lan.bun("v1", ["client.ts", "10.77.0.1", port, "0", "--no-window", "--out", join(dir, `${name}-rec`), "--duration", String(SECONDS), "--stats", statsPath, ...viewerArgs]);
  expect(await viewer.exited).toBe(0);
  server.proc.kill("SIGTERM");
  expect(await server.exited).toBe(0);
  return { stats: JSON.parse(readFileSync(statsPath, "utf8")), serverLog: readFileSync(serverLog, "utf8"), dropped: droppedBy(lan.ns("v1")) };
}

/** Every frame number the viewer's session spanned. */
const span = (s: Stats) => s.framesReceived + s.framesMissing + s.framesIncomplete + (s.repair?.framesRecordOnly ?? 0);

describe.skipIf(unavailable !== null)("loss repair across network namespaces, 2 % random loss at the viewer", () => {
  test("with repair (resends and 10 % parity) nearly every frame is shown and every frame recorded; without it many are lost", async () => {
    await using lan = new NetnsLan("lcw19", [{ name: "srv", address: "10.77.0.1" }, { name: "v1", address: "10.77.0.11" }]);

    const repaired = await watch(lan, "repair", [], ["--fec", "10"]);
    const s = repaired.stats;
    expect(repaired.dropped).toBeGreaterThan(50); // the loss really happened
    expect(s.repair).not.toBeNull();
    // Parity rebuilds most single losses; resends mend the rest (two lost in one group, a lost parity).
    expect(s.repair!.datagramsRepairedByFec).toBeGreaterThan(0);
    expect(s.repair!.datagramsRepairedByNack + s.repair!.datagramsRepairedByFec).toBeGreaterThan(repaired.dropped / 2);
    const total = span(s);
    expect(total).toBeGreaterThan(150);
    // Nearly every frame live, and the recording has every frame of the span but the last few in flight at the end.
    expect(s.framesReceived / total).toBeGreaterThan(0.97);
    expect(s.repair!.framesGivenUp).toBeLessThanOrEqual(2);
    expect(s.framesOutOfOrder).toBe(0);
    expect(s.recording!.framesIn).toBeGreaterThanOrEqual(total - 2);
    expect(repaired.serverLog).toMatch(/INFO \[server\] repair .*parities=[1-9]/);
    // The server's leave line has the viewer's own counts, from its reports.
    expect(repaired.serverLog).toMatch(/INFO \[server\] repair .*repairedByParity=[1-9]\d* repairedByResend=\d+ unrepaired=\d+/);
    // Random loss on a free path is not congestion: the viewer keeps the full picture and
    // is skipped no frame (a full path, where it is, is tests/adaptive-e2e.test.ts).
    expect(Object.keys(s.framesBySize)).toEqual(["1280x720"]);
    expect(s.framesSkipped).toBe(0);
    expect(repaired.serverLog).not.toContain("viewer layer");

    const plain = await watch(lan, "plain", ["--no-repair"]);
    const p = plain.stats;
    expect(plain.dropped).toBeGreaterThan(50);
    expect(p.repair).toBeNull();
    expect(p.framesReceived / span(p)).toBeLessThan(0.9);
    expect(p.recording!.framesIn).toBeLessThan(span(p) * 0.9);
    expect(plain.serverLog).not.toContain("[server] repair ");
  }, 90_000);
});
