// A viewer started while the server is full: it asks again until its connect timeout,
// and gets in as soon as a place is free, or gives up with one line saying why.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { spawnBun, type Child, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-retry-");

/** A server with room for one viewer, and that viewer, connected. */
async function fullServer(dir: string): Promise<{ server: Child; port: number; first: Child }> {
  const server = spawnBun(["server.ts", "--source", "test", "--size", "160x120", "--fps", "10", "--port", "0", "--bind", "127.0.0.1",
    "--max-clients", "1", "--log", join(dir, "server.log")]);
  const port = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
  const first = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--no-record", "--name", "first"]);
  // Its first frame, not only its welcome: a viewer stopped before any frame came exits 1.
  await first.waitFor(/INFO \[client\] first frame /, 15_000, "stderr");
  return { server, port, first };
}

describe("a viewer refused because the server is full", () => {
  test("asks again with backoff, and gets in once the first viewer leaves within its connect timeout", async () => {
    const { server, port, first } = await fullServer(tempDir());
    await using _s = server;
    await using _f = first;
    await using second = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--no-record", "--frames", "5", "--connect-timeout", "30"]);
    await second.waitFor(/WARN \[client\] server busy; trying again .*server full: 1 viewers already connected/, 15_000, "stderr");
    first.proc.kill("SIGTERM");
    await expectExit(first, 0);
    await expectExit(second, 0);
    expect(second.stderr()).toMatch(/INFO \[client\] connected /);
    expect(second.stderr()).not.toMatch(/ERROR|lancam-client: error/);
    await server.waitFor(/client joined .*clients=1/, 5000, "stderr");
  }, 60_000);

  test("gives up at its connect timeout when nobody leaves: exit 1 and one line naming the last refusal", async () => {
    const { server, port, first } = await fullServer(tempDir());
    await using _s = server;
    await using _f = first;
    const started = performance.now();
    await using second = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--no-record", "--connect-timeout", "3"]);
    await expectExit(second, 1);
    const seconds = (performance.now() - started) / 1000;
    const lines = second.stderr().trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(new RegExp(
      `^lancam-client: error: gave up connecting to 127\\.0\\.0\\.1:${port} after 2\\.\\d s and \\d attempts; the last refusal: server full: 1 viewers already connected$`,
    ));
    expect(lines.filter((l) => l.includes("server busy; trying again")).length).toBeGreaterThanOrEqual(2);
    expect(seconds).toBeGreaterThan(2.5);
    expect(seconds).toBeLessThan(10);
    // The viewer inside never noticed.
    expect(first.stderr()).not.toContain("server went away");
  }, 60_000);
});
