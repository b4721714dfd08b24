import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { securityLogSettings } from "../lib/app/log-flags.ts";
import { UsageError } from "../lib/app/cli.ts";
import { DEFAULT_LOG_KEEP, FileSink, securityLogPath } from "../lib/log/file-sink.ts";
import { createLogger } from "../lib/log/logger.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-seclog-");

/** Every line of a log and its rotated files, oldest first. */
function allLines(path: string): string[] {
  const files = [...Array.from({ length: DEFAULT_LOG_KEEP }, (_, i) => `${path}.${DEFAULT_LOG_KEEP - i}`), path];
  return files.filter((f) => existsSync(f)).flatMap((f) => readFileSync(f, "utf8").split("\n").filter((l) => l !== ""));
}

describe("where the security log goes", () => {
  test("beside the main log, .security before its extension", () => {
    expect(securityLogPath("server.log")).toBe("server.security.log");
    expect(securityLogPath("/var/log/lancam/lancam-server.log")).toBe("/var/log/lancam/lancam-server.security.log");
    expect(securityLogPath("logs.d/server")).toBe("logs.d/server.security");
    expect(securityLogPath("/tmp/.log")).toBe("/tmp/.log.security");
  });

  test("--security-log names it; the main log itself is refused", () => {
    expect(securityLogSettings({ log: "a.log", securityLog: null, securityLogMax: 4096 })).toEqual({ path: "a.security.log", maxBytes: 4096 });
    expect(securityLogSettings({ log: "a.log", securityLog: "/x/s.log", securityLogMax: 4096 }).path).toBe("/x/s.log");
    expect(() => securityLogSettings({ log: "a.log", securityLog: "./a.log", securityLogMax: 4096 })).toThrow(UsageError);
  });

  test("a --log that is a device or a pipe has no security file beside it, unless --security-log names one", () => {
    expect(securityLogSettings({ log: "/dev/null", securityLog: null, securityLogMax: 4096 }).path).toBeNull();
    expect(securityLogSettings({ log: "/dev/full", securityLog: null, securityLogMax: 4096 }).path).toBeNull();
    expect(securityLogSettings({ log: "/dev/full", securityLog: "/tmp/x/s.log", securityLogMax: 4096 }).path).toBe("/tmp/x/s.log");
  });

  test("one that cannot be opened is an error at once, naming --security-log", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "a-file"), "");
    expect(() => new FileSink(join(dir, "a-file", "s.log"), { securityOnly: true, flag: "--security-log" }))
      .toThrow(/^cannot open the log file .*\/a-file\/s\.log: .*; choose another --security-log$/);
  });
});

describe("a security log", () => {
  test("takes only security lines, while the main log takes them too", () => {
    const dir = tempDir();
    using main = new FileSink(join(dir, "s.log"));
    using security = new FileSink(join(dir, "s.security.log"), { securityOnly: true });
    const log = createLogger("server", [main.sink, security.sink], "INFO", () => new Date(0), { perAddress: null });
    log.info("client joined", { client: "10.0.0.1:5" });
    log.warn("udp send failed");
    log.security("client refused", { client: "10.0.0.9:7", reason: "auth" });
    expect(readFileSync(join(dir, "s.security.log"), "utf8")).toBe("1970-01-01T00:00:00.000Z WARN [server] client refused client=10.0.0.9:7 reason=auth\n");
    expect(readFileSync(join(dir, "s.log"), "utf8").split("\n")).toHaveLength(4);
  });

  test("churn from many addresses rotates the main log past an early security event; the security log still holds it", () => {
    const dir = tempDir();
    using main = new FileSink(join(dir, "s.log"), { maxBytes: 4096 });
    using security = new FileSink(join(dir, "s.security.log"), { maxBytes: 4096, securityOnly: true });
    const log = createLogger("server", [main.sink, security.sink]);
    log.security("client refused", { client: "10.0.0.9:7", reason: "auth", detail: "wrong token" });
    // Each address within its own burst: every line is written.
    for (let i = 0; i < 1000; i++) {
      const client = `10.1.${i >> 8}.${i & 255}:${40_000 + i}`;
      log.info("client joined", { client, udp: 9000, clients: 1 });
      log.info("client left", { client, udp: 9000, reason: "goodbye", seconds: "0.1", clients: 0 });
    }
    expect(main.rotations).toBeGreaterThan(DEFAULT_LOG_KEEP);
    expect(allLines(join(dir, "s.log")).some((l) => l.includes("wrong token"))).toBe(false);
    expect(allLines(join(dir, "s.security.log"))).toEqual([expect.stringMatching(/ WARN \[server\] client refused client=10\.0\.0\.9:7 reason=auth detail="wrong token"$/)]);
  });
});

/** Connects from `localAddress`, sends bytes that are no lancam hello, and resets. */
function junkFrom(port: number, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      s.write(Uint8Array.from([0x47, 0x47]));
      s.end();
    });
    s.on("close", () => resolve());
    s.on("error", () => resolve());
  });
}

describe("the server's security log", () => {
  test("with --log-max 4K, a flood from 300 addresses rotates the main log past the early warning; the security log keeps it", async () => {
    const dir = tempDir();
    const log = join(dir, "server.log");
    // A short token is a security warning at start, before any peer came.
    await using server = spawnBun(["server.ts", "--source", "test", "--size", "160x120", "--fps", "5", "--port", "0", "--bind", "127.0.0.1",
      "--log", log, "--log-max", "4K", "--token", "short-token"]);
    const port = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
    const security = join(dir, "server.security.log");
    expect(readFileSync(security, "utf8")).toMatch(/^\S+ WARN \[server\] the token is 11 characters: /);
    for (let i = 0; i < 300; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => junkFrom(port, `127.0.${2 + ((i + j) >> 8)}.${(i + j) & 255 || 1}`)));
    }
    const refusals = () => allLines(log).filter((l) => l.includes("client refused")).length;
    await until(() => readdirSync(dir).includes(`server.log.${DEFAULT_LOG_KEEP}`) && refusals() > 0 && !allLines(log).some((l) => l.includes("the token is")), 10_000,
      "the main log rotated past the warning");
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);
    // Every file within its cap, and the warning only where churn cannot reach it.
    for (const f of readdirSync(dir).filter((f) => f.startsWith("server.log"))) expect(readFileSync(join(dir, f)).length).toBeLessThanOrEqual(4096);
    expect(allLines(log).some((l) => l.includes("the token is"))).toBe(false);
    const kept = allLines(security);
    expect(kept[0]).toMatch(/ WARN \[server\] the token is 11 characters: /);
    // Nothing but security lines: no joins, leaves, start or stop lines.
    expect(kept.some((l) => / INFO /.test(l))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith("server.security.log"))).toEqual(["server.security.log"]);
  }, 40_000);

  test("--security-log naming the main log is a usage error, nothing started", async () => {
    const dir = tempDir();
    await using p = spawnBun(["server.ts", "--source", "test", "--port", "0", "--log", join(dir, "s.log"), "--security-log", join(dir, "s.log")]);
    await expectExit(p, 2);
    expect(p.stderr()).toStartWith(`lancam-server: invalid --security-log=${join(dir, "s.log")}: it is the --log file; choose another\n`);
  }, 15_000);
});
