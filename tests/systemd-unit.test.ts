// scripts/lancam-server.service and scripts/server.toml, the pair README's "Run at boot"
// installs: the unit's command line parses with the sample config, the folders the config
// writes to are the ones the unit makes writable, and systemd itself accepts the unit.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-unit-");
const UNIT = join(ROOT, "scripts/lancam-server.service");
const SAMPLE = join(ROOT, "scripts/server.toml");
/** Where the unit expects the built executable and its config. */
const INSTALLED_BINARY = "/usr/local/bin/lancam-server";
const INSTALLED_CONFIG = "/etc/lancam/server.toml";
const INSTALLED_TOKEN = "/etc/lancam/token";

/** A unit file's settings: section, then key, then every value given (in order). */
function readUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = readUnit(readFileSync(UNIT, "utf8"));
const service = unit.get("Service")!;
const one = (key: string) => {
  const values = service.get(key) ?? [];
  expect([key, values.length]).toEqual([key, 1]);
  return values[0]!;
};

/** The sample config with its token file moved to `tokenFile`, which exists here: the only change. */
function sampleWithToken(dir: string): { config: string; tokenFile: string } {
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "3f0c1d2e4b5a69788796a5b4c3d2e1f0\n", { mode: 0o600 });
  const sample = readFileSync(SAMPLE, "utf8");
  expect(sample).toContain(`token-file = "${INSTALLED_TOKEN}"`);
  const config = join(dir, "server.toml");
  writeFileSync(config, sample.replace(`"${INSTALLED_TOKEN}"`, JSON.stringify(tokenFile)));
  return { config, tokenFile };
}

describe("scripts/lancam-server.service", () => {
  test("ExecStart, run with the sample config and --print-config, parses: exit 0 with the sample's settings", async () => {
    const exec = one("ExecStart");
    // No quoting, no prefixes (-, @, +): a plain command line, split on spaces as systemd would.
    expect(exec).toMatch(/^\/[^\s"'\\]+( [^\s"'\\]+)*$/);
    const argv = exec.split(" ");
    expect(argv).toEqual([INSTALLED_BINARY, "--config", INSTALLED_CONFIG]);
    const dir = tempDir();
    const { config, tokenFile } = sampleWithToken(dir);
    // `bun server.ts`, not a dist/ executable, which may predate the source under test.
    const command = [process.execPath, join(ROOT, "server.ts"), ...argv.slice(1).map((a) => (a === INSTALLED_CONFIG ? config : a)), "--print-config"];
    const p = Bun.spawn(command, { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, LANCAM_TOKEN: undefined } });
    const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(Bun.TOML.parse(stdout)).toMatchObject({
      port: 9999, "max-clients": 32, "token-file": tokenFile, source: [{ name: "board", src: "camera:0", size: "1280x720", fps: 30, quality: 80 }],
      log: "/var/log/lancam/lancam-server.log", record: "/var/lib/lancam/recordings", "keep-days": 30, "min-free": "5G",
    });
  }, 20_000);

  test("restarts on failure but not on a bad config, runs as lancam with the video group, hardened", () => {
    expect(one("Restart")).toBe("on-failure");
    // Exit 2 is a usage error: a bad config file stays bad however often it is retried.
    expect(one("RestartPreventExitStatus")).toBe("2");
    expect(one("User")).toBe("lancam");
    expect(one("SupplementaryGroups")).toBe("video");
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(one("ProtectSystem")).toBe("strict");
    expect(one("PrivateTmp")).toBe("yes");
    expect(one("CapabilityBoundingSet")).toBe("");
    // The log lines on stderr are the journal's.
    expect(one("StandardError")).toBe("journal");
    // Cameras are video4linux devices; with a closed device policy they must be allowed.
    expect(one("DevicePolicy")).toBe("closed");
    expect(one("DeviceAllow")).toBe("char-video4linux rw");
    expect(unit.get("Install")?.get("WantedBy")).toEqual(["multi-user.target"]);
  });

  test("every path the sample config writes to is one the unit leaves writable", () => {
    const writable = [
      ...(service.get("StateDirectory") ?? []).map((d) => `/var/lib/${d}`),
      ...(service.get("LogsDirectory") ?? []).map((d) => `/var/log/${d}`),
      ...(service.get("CacheDirectory") ?? []).map((d) => `/var/cache/${d}`),
      ...(service.get("ReadWritePaths") ?? []).flatMap((v) => v.split(/\s+/)),
    ];
    const sample = Bun.TOML.parse(readFileSync(SAMPLE, "utf8")) as Record<string, unknown>;
    const inside = (path: string) => writable.some((d) => path === d || path.startsWith(`${d}/`));
    for (const key of ["log", "record"]) {
      const path = sample[key];
      expect(typeof path).toBe("string");
      expect([key, path, inside(path as string)]).toEqual([key, path, true]);
    }
    // The embedded ffmpeg is unpacked into $XDG_CACHE_HOME/lancam.
    const cacheHome = /^XDG_CACHE_HOME=(\S+)$/.exec(one("Environment"))?.[1];
    expect(inside(`${cacheHome}/lancam`)).toBe(true);
    // The working folder (the default log's and token's) is writable too.
    expect(inside(one("WorkingDirectory"))).toBe(true);
  });

  const analyze = Bun.which("systemd-analyze");
  test.skipIf(!analyze)(`systemd-analyze verify accepts it${analyze ? "" : " (skipped: systemd-analyze is not installed here)"}`, () => {
    const dir = tempDir();
    // verify checks that the executable exists: point it at one that does, under the unit's own name.
    const copy = join(dir, "lancam-server.service");
    writeFileSync(copy, readFileSync(UNIT, "utf8").replace(`\nExecStart=${INSTALLED_BINARY} `, `\nExecStart=${process.execPath} `));
    const p = Bun.spawnSync([analyze!, "verify", copy], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const output = `${p.stdout.toString()}${p.stderr.toString()}`;
    // Warnings about other units of this machine are not this unit's.
    const ours = output.split("\n").filter((l) => l.includes("lancam-server"));
    expect({ code: p.exitCode, ours }).toEqual({ code: 0, ours: [] });
  }, 30_000);
});
