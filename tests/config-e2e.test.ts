// The config file through the real entry scripts: printed, read back, refused, and used by a
// server and a client that really run.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exitWithin, ROOT, spawnBun } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-config-e2e-");

/** Runs `bun SCRIPT ...args` from `cwd` to its end: exit code and output. */
async function runIn(cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, join(ROOT, args[0]!), ...args.slice(1)], {
    cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, LANCAM_TOKEN: undefined },
  });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, stdout, stderr };
}

describe("--print-config, run", () => {
  const programs: [string, string[], string][] = [
    ["server.ts", [], 'port = 9000\nmax-clients = 8\nrepair = false\n\n[[source]]\nsrc = "test"\nsize = "640x480"\nfps = 15\n'],
    ["client.ts", [], 'host = "10.1.2.3"\nport = 9999\nudp-port = 0\nwindow = false\nrecv-buffer = "8M"\nname = "room 12"\n'],
  ];
  for (const [script, operands, text] of programs) {
    test(`bun ${script} --config F --print-config prints the file's settings, and what it prints reads back the same`, async () => {
      const dir = tempDir();
      const file = join(dir, "first.toml");
      writeFileSync(file, text);
      const first = await runIn(dir, [script, ...operands, "--config", file, "--print-config"]);
      expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
      const printed = Bun.TOML.parse(first.stdout) as Record<string, unknown>;
      if (script === "server.ts") {
        expect(printed).toMatchObject({ port: 9000, "max-clients": 8, repair: false, source: [{ src: "test", size: "640x480", fps: 15, quality: 80 }] });
      } else {
        expect(printed).toMatchObject({ host: "10.1.2.3", port: 9999, "udp-port": 0, window: false, "recv-buffer": "8M", name: "room 12", record: true });
      }
      const again = join(dir, "printed.toml");
      writeFileSync(again, first.stdout);
      const second = await runIn(dir, [script, "--config", again, "--print-config"]);
      expect(second).toEqual(first);
      // Printing starts nothing: no log, no recording folder.
      expect(readdirSync(dir).sort()).toEqual(["first.toml", "printed.toml"]);
    }, 20_000);
  }

  test("a flag on the command line wins over the file", async () => {
    const dir = tempDir();
    const file = join(dir, "server.toml");
    writeFileSync(file, "port = 9000\nloop = true\n");
    const { code, stdout } = await runIn(dir, ["server.ts", "--config", file, "--port", "7000", "--no-loop", "--print-config"]);
    expect(code).toBe(0);
    expect(Bun.TOML.parse(stdout)).toMatchObject({ port: 7000, loop: false });
  }, 20_000);
});

describe("a bad config file, run", () => {
  const cases: [string, string, string, string][] = [
    ["server.ts", "server.toml", 'port = 9000\n\n[[source]]\nsrc = "board=test"\n[[source]]\nname = "board"\nsrc = "camera:1"\n', 'line 6: [[source]] (camera 1) name = "board": camera 0 (line 4) is named board too; give each camera its own name'],
    ["server.ts", "server.toml", "port = 9000\nbind = \"0.0.0.0\"\n\nmax-clients = 9000\n", "line 4: max-clients = 9000: expected an integer 1..1024"],
    ["client.ts", "client.toml", 'host = "h"\nport = 9999\nudp-port = 0\nwindw = false\n', "line 4: unknown key windw; the keys are the flags' names, as in --help"],
    ["client.ts", "client.toml", 'host = "h"\nport = [9999\n', "line 2: TOML: Expected ',' or ']' in an array but found end of file"],
  ];
  for (const [script, name, text, message] of cases) {
    test(`bun ${script} --config ${name} (${message.split(": ").slice(1).join(": ").slice(0, 40)}...): exit 2, one line naming file, line and key, nothing started`, async () => {
      const dir = tempDir();
      writeFileSync(join(dir, name), text);
      const program = script === "server.ts" ? "lancam-server" : "lancam-client";
      // Relative to the folder it runs in, as a user types it; no log or recording may appear there.
      const result = await runIn(dir, [script, "--config", name]);
      expect(result).toEqual({ code: 2, stdout: "", stderr: `${program}: invalid ${name} ${message}\nRun \`bun ${script} --help\` for usage.\n` });
      expect(readdirSync(dir)).toEqual([name]);
    }, 20_000);
  }

  test("an unreadable --config: exit 2, naming it", async () => {
    const dir = tempDir();
    const result = await runIn(dir, ["server.ts", "--config", "missing.toml"]);
    expect(result).toEqual({ code: 2, stdout: "", stderr: "lancam-server: cannot read --config missing.toml: no such file (ENOENT)\nRun `bun server.ts --help` for usage.\n" });
    expect(readdirSync(dir)).toEqual([]);
  }, 20_000);
});

describe("a server and a client configured by files", () => {
  test("a server whose config file holds a token others can read says so in its security log", async () => {
    const dir = tempDir();
    const file = join(dir, "server.toml");
    writeFileSync(file, `port = 0\nsource = "test"\nsize = "160x120"\nlog = ${JSON.stringify(join(dir, "server.log"))}\ntoken = "correct-horse-battery-staple"\n`, { mode: 0o644 });
    await using server = spawnBun(["server.ts", "--config", file], { LANCAM_TOKEN: undefined });
    await server.waitFor(/lancam server listening tcp=\d+/);
    const warning = `the config file ${file} holds a secret (token) and can be read by other users of this machine (chmod 600 ${file}, or use token-file)`;
    expect(server.stderr()).toContain(`WARN [server] ${warning}`);
    expect(readFileSync(join(dir, "server.security.log"), "utf8")).toContain(warning);
    expect(server.stderr()).not.toContain("correct-horse-battery-staple");
  }, 30_000);


  test("the server streams what its file says, a flag overriding one key; the client joins with host and ports from its file", async () => {
    const dir = tempDir();
    const serverFile = join(dir, "server.toml");
    writeFileSync(serverFile, [
      "port = 0",
      `log = ${JSON.stringify(join(dir, "server.log"))}`,
      "max-clients = 2",
      "",
      "[[source]]",
      'src = "test"',
      'size = "320x240"',
      "fps = 30",
      "",
    ].join("\n"));
    await using server = spawnBun(["server.ts", "--config", serverFile, "--fps", "20"], { LANCAM_TOKEN: undefined });
    const m = await server.waitFor(/lancam server listening tcp=(\d+) source=(\S+) size=(\S+) fps=(\S+)/);
    expect(m.slice(2)).toEqual(["test", "320x240", "20"]);

    const stats = join(dir, "stats.json");
    const clientFile = join(dir, "client.toml");
    writeFileSync(clientFile, `host = "127.0.0.1"\nport = ${m[1]}\nudp-port = 0\nwindow = false\nrecord = false\nframes = 5\nstats = ${JSON.stringify(stats)}\n`);
    await using client = spawnBun(["client.ts", "--config", clientFile], { LANCAM_TOKEN: undefined });
    expect(await exitWithin(client, 20_000, "the client, after --frames 5 from its file")).toBe(0);
    const summary = JSON.parse(readFileSync(stats, "utf8"));
    expect(summary.framesReceived).toBe(5);
    expect(summary.recording).toBeNull();
  }, 40_000);
});
