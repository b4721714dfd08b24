// Token authentication end to end: real server.ts and client.ts processes on 127.0.0.1,
// waiting on printed lines, never on fixed sleeps. The right token streams and records,
// a wrong one is refused on both sides, and without one both programs say who can watch.
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { spawnBun, type Child, expectExit } from "./helpers/process.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-token-e2e-");

type Stats = StatsSummary & { recording: { framesWritten: number } | null };

async function startServer(dir: string, extra: string[]): Promise<{ server: Child; port: number; log: string }> {
  const log = join(dir, "server.log");
  const server = spawnBun(["server.ts", "--source", "test", "--size", "320x240", "--fps", "20", "--port", "0", "--log", log, ...extra], { LANCAM_TOKEN: undefined });
  const m = await server.waitFor(/lancam server listening tcp=(\d+)/);
  return { server, port: Number(m[1]), log };
}

function startClient(port: number, dir: string, extra: string[]): { client: Child; stats: string } {
  const stats = join(dir, "client.json");
  const client = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--stats", stats, ...extra], { LANCAM_TOKEN: undefined });
  return { client, stats };
}

describe("--token", () => {
  test("auto: a 0600 token file next to the log, the join command printed; with it the viewer streams and records, and a restart keeps the token", async () => {
    const dir = tempDir();
    const { server, port, log } = await startServer(dir, ["--token", "auto"]);
    await using _s = server;
    const join1 = (await server.waitFor(/join with: bun client\.ts (\S+) (\d+) 0 --token ([0-9a-f]{32})\n/))!;
    expect(Number(join1[2])).toBe(port);
    const token = join1[3]!;
    const file = join(dir, "lancam-token");
    expect(server.stdout()).toContain(`lancam server token file=${file} (new)`);
    expect(readFileSync(file, "utf8")).toBe(`${token}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const out = join(dir, "recordings");
    const { client, stats } = startClient(port, dir, ["--token", token, "--frames", "40", "--out", out]);
    await using _c = client;
    await expectExit(client, 0);
    const s: Stats = JSON.parse(readFileSync(stats, "utf8"));
    expect(s.framesReceived).toBe(40);
    expect(s.datagramsDropped.auth).toBe(0);
    expect(s.recording!.framesWritten).toBeGreaterThan(0);
    expect(listFiles(out).length).toBeGreaterThan(0);
    expect(client.stderr()).toContain("encrypted=yes");
    expect(client.stderr()).not.toContain("anyone on the network");
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);
    const text = readFileSync(log, "utf8");
    expect(text).toMatch(/client joined .* auth=token/);
    expect(text).toMatch(/client left .*reason=goodbye .*framesReceived=40 /);
    // The token itself is never logged.
    expect(text).not.toContain(token);

    // A restart with the same log folder keeps the token: viewers keep working.
    const again = await startServer(dir, ["--token", "auto"]);
    await using _s2 = again.server;
    await again.server.waitFor(/join with: /);
    expect(again.server.stdout()).toContain(`lancam server token file=${file} (kept from an earlier start)`);
    expect(again.server.stdout()).toContain(`--token ${token}\n`);
  }, 40_000);

  test("a wrong token: the viewer exits 1 with one clear line, the server logs refused reason=auth", async () => {
    const dir = tempDir();
    const { server, port, log } = await startServer(dir, ["--token", "the-right-token-1234567890"]);
    await using _s = server;
    const { client } = startClient(port, dir, ["--token", "a-wrong-token-1234567890", "--no-record", "--frames", "10"]);
    await using _c = client;
    await expectExit(client, 1);
    expect(client.stderr()).toContain(`lancam-client: error: server 127.0.0.1:${port} refused the session: wrong token (the viewer's token is not the server's)\n`);
    await server.waitFor(/refused reason=auth/, 5000, "stderr");
    expect(readFileSync(log, "utf8")).toMatch(/WARN \[server\] client refused reason=auth client=127\.0\.0\.1:\d+ detail="wrong token" udp=\d+ failures=1\n/);

    // No token at all against a server that needs one: as clear, and final.
    const { client: none } = startClient(port, dir, ["--no-record", "--frames", "10"]);
    await using _n = none;
    await expectExit(none, 1);
    expect(none.stderr()).toContain("this server needs a token: run the viewer with --token or --token-file (or LANCAM_TOKEN)");
  }, 30_000);

  test("the viewer's token against a server without one: refused by the viewer, which cannot trust it", async () => {
    const dir = tempDir();
    const { server, port } = await startServer(dir, []);
    await using _s = server;
    const { client } = startClient(port, dir, ["--token", "some-token-1234567890", "--no-record", "--frames", "10"]);
    await using _c = client;
    await expectExit(client, 1);
    expect(client.stderr()).toContain("does not ask for a token: anyone on the network can watch it");
  }, 30_000);

  test("no token anywhere: it works as before, and both programs say that anyone on the network can watch", async () => {
    const dir = tempDir();
    const { server, port } = await startServer(dir, []);
    await using _s = server;
    expect(server.stderr()).toContain("WARN [server] no token: anyone on the network can watch this stream; start with --token auto to require one");
    const { client, stats } = startClient(port, dir, ["--no-record", "--frames", "20"]);
    await using _c = client;
    await expectExit(client, 0);
    expect(client.stderr()).toContain("WARN [client] this server has no token: anyone on the network can watch this stream");
    expect(client.stderr()).toContain("encrypted=no");
    expect((JSON.parse(readFileSync(stats, "utf8")) as Stats).framesReceived).toBe(20);
  }, 30_000);
});
