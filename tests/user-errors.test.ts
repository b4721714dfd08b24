// A problem the user can fix is one line saying what and how, never a stack trace.
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnBun } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-user-errors-");

/** A TCP port on 127.0.0.1 that something else holds while `fn` runs. */
async function withTakenPort<T>(fn: (port: number) => Promise<T>): Promise<T> {
  const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    return await fn(holder.port);
  } finally {
    holder.stop(true);
  }
}

/**
 * The run's exit code and the lines it wrote that are not log lines (log lines start
 * with an ISO 8601 time), so a test can ask for exactly one message and no stack.
 */
async function runToExit(args: string[]): Promise<{ code: number; stdout: string; said: string[] }> {
  await using p = spawnBun(args);
  const code = await p.exited;
  const said = p.stderr().split("\n").filter((line) => line !== "" && !/^\d{4}-\d\d-\d\dT/.test(line));
  return { code, stdout: p.stdout(), said };
}

describe("user errors, run", () => {
  test("--http on a taken port: one line naming the port and --http, exit 1", async () => {
    const log = join(tempDir(), "s.log");
    const run = await withTakenPort((port) =>
      runToExit(["server.ts", "--source", "test", "--port", "0", "--bind", "127.0.0.1", "--http", String(port), "--http-bind", "127.0.0.1", "--log", log])
        .then((r) => ({ ...r, port })));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.said).toHaveLength(1);
    expect(run.said[0]).toStartWith(`lancam-server: error: cannot listen on 127.0.0.1:${run.port} for the browser view: `);
    expect(run.said[0]).toEndWith("(port in use; choose another --http port or 0)");
  }, 30_000);

  test("--port taken: one line naming the port and --port, exit 1", async () => {
    const log = join(tempDir(), "s.log");
    const run = await withTakenPort((port) =>
      runToExit(["server.ts", "--source", "test", "--port", String(port), "--bind", "127.0.0.1", "--log", log]).then((r) => ({ ...r, port })));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.said).toHaveLength(1);
    expect(run.said[0]).toStartWith(`lancam-server: error: cannot listen on 127.0.0.1:${run.port}: `);
    expect(run.said[0]).toEndWith("(port in use; choose another --port or 0)");
  }, 30_000);

  test("a --token-file that cannot be read: the file and the reason, no stack (a usage error: exit 2 with the --help pointer)", async () => {
    // Run as root, mode 000 would still read: a folder cannot be read as a file by anyone.
    const dir = join(tempDir(), "token-is-a-folder");
    mkdirSync(dir);
    for (const argv of [["server.ts", "--port", "0"], ["client.ts", "127.0.0.1", "9", "0", "--no-window", "--no-record"]]) {
      const program = argv[0] === "server.ts" ? "lancam-server" : "lancam-client";
      const run = await runToExit([...argv, "--token-file", dir]);
      expect(run).toEqual({
        code: 2, stdout: "",
        said: [`${program}: invalid --token-file=${dir}: cannot read the token file ${dir}: EISDIR`, `Run \`bun ${argv[0]} --help\` for usage.`],
      });
    }
  }, 30_000);

  test("an unwritable --out (client) or --record (server): one line naming the folder, the reason and the flag, exit 1", async () => {
    const blocker = join(tempDir(), "a-file");
    writeFileSync(blocker, "");
    const rec = join(blocker, "rec");
    const client = await runToExit(["client.ts", "127.0.0.1", "9", "0", "--no-window", "--out", rec]);
    expect(client).toEqual({
      code: 1, stdout: "",
      said: [`lancam-client: error: cannot record into ${rec}: a part of the path is a file, not a folder (ENOTDIR); choose another --out or pass --no-record`],
    });
    const server = await runToExit(["server.ts", "--source", "test", "--port", "0", "--log", join(tempDir(), "s.log"), "--record", rec]);
    expect(server).toEqual({
      code: 1, stdout: "",
      said: [`lancam-server: error: cannot record into ${rec}: a part of the path is a file, not a folder (ENOTDIR); choose another --record or run without --record`],
    });
  }, 30_000);
});
