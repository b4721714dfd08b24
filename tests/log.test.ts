import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { AddressLimiter, addressKey, DEFAULT_CHURN, DEFAULT_PER_ADDRESS, type LogEvent } from "../lib/log/address-limiter.ts";
import { FileSink } from "../lib/log/file-sink.ts";
import { formatLine, type Sink } from "../lib/log/format.ts";
import { createLogger, throttled } from "../lib/log/logger.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-log-");
const canMount = process.getuid?.() === 0;

/** A tmpfs with the given mount options (size, inodes), unmounted on dispose. Needs root. */
function tinyDisk(options: string): { dir: string } & Disposable {
  const dir = tempDir();
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", options, "tmpfs", dir]);
  if (mount.exitCode !== 0) throw new Error(`mount tmpfs: ${mount.stderr.toString()}`);
  return { dir, [Symbol.dispose]: () => void Bun.spawnSync(["umount", dir]) };
}
const AT = new Date("2026-11-24T10:00:00.000Z");

test("a log line reads `time LEVEL [part] message key=value` and quotes awkward values", () => {
  expect(formatLine(AT, "INFO", "server", "client joined", { addr: "127.0.0.1", udp: 8888, why: "said goodbye", skip: undefined }))
    .toBe('2026-11-24T10:00:00.000Z INFO [server] client joined addr=127.0.0.1 udp=8888 why="said goodbye"');
});

describe("what a peer sends cannot hide in a log line", () => {
  test("bidi overrides, zero-width and control characters are spelled out, in values, messages and parts", () => {
    const name = "invoice\u202egnp.exe";
    expect(formatLine(AT, "INFO", "server", "client joined", { name })).toBe('2026-11-24T10:00:00.000Z INFO [server] client joined name="invoice\\u{202e}gnp.exe"');
    expect(formatLine(AT, "WARN", "p\u2066", "m\u200b\u0007", { a: "x\u200dy", b: "\u00a0", c: "\u3164", d: "e\u0301" }))
      .toBe('2026-11-24T10:00:00.000Z WARN [p\\u{2066}] m\\u{200b}\\u{7} a="x\\u{200d}y" b="\\u{a0}" c="\\u{3164}" d=e\u0301');
  });

  test("a value cannot start a new line or a new field", () => {
    const line = formatLine(AT, "WARN", "server", "client refused", { name: "bob\n2026-11-24T10:00:00.000Z ERROR [server] forged client=1.2.3.4", why: "x admin=true" });
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toEndWith('name="bob\\n2026-11-24T10:00:00.000Z ERROR [server] forged client=1.2.3.4" why="x admin=true"');
  });

  // The reading side of the format: a quoted value with \" \\ \n \r \t and \u{hex}.
  function readValue(text: string): string {
    if (!text.startsWith('"')) return text;
    expect(text.endsWith('"')).toBe(true);
    return text.slice(1, -1).replace(/\\(u\{([0-9a-f]+)\}|.)/g, (_m, what: string, hexCode?: string) =>
      hexCode ? String.fromCodePoint(parseInt(hexCode, 16)) : ({ n: "\n", r: "\r", t: "\t" } as Record<string, string>)[what] ?? what);
  }

  test("any string value comes out on one line of visible characters and reads back exactly", () => {
    const anyText = fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }),
      fc.stringMatching(/^[\u0000-\u0020\u007f-\u00a0\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"=\\ a]{0,20}$/));
    fc.assert(
      fc.property(anyText, (v) => {
        const line = formatLine(AT, "WARN", "t", "m", { v, end: 1 });
        const text = line.slice(line.indexOf(" v=") + 3, line.lastIndexOf(" end=1"));
        expect(line).not.toMatch(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\u00a0\u200b\u3000]/u);
        expect(readValue(text)).toBe(v);
      }),
      { seed: 1224, numRuns: 3000 },
    );
  });
});

test("a file sink appends and keeps earlier lines", () => {
  const path = join(tempDir(), "sub", "server.log");
  for (const word of ["first", "second"]) {
    using file = new FileSink(path);
    createLogger("server", [file.sink]).info(word);
  }
  const lines = readFileSync(path, "utf8").trim().split("\n");
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO \[server\] first$/);
  expect(lines[1]).toEndWith("INFO [server] second");
});

test("levels below the minimum are dropped", () => {
  const lines: string[] = [];
  const log = createLogger("x", [(l) => lines.push(l)], "WARN");
  log.info("quiet");
  log.child("y").warn("loud");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("WARN [y] loud");
});

test("a throttled warning runs at most once per interval and then says how many it held back", () => {
  let t = 0;
  const seen: [string, number][] = [];
  const warn = throttled(1000, (d, n) => seen.push([d, n]), () => t);
  warn("a");
  t = 10;
  warn("b");
  warn("c");
  t = 1000;
  warn("d");
  expect(seen).toEqual([["a", 0], ["d", 2]]);
});

describe("security events", () => {
  test("are WARN lines that every sink gets, marked so a security log can keep them apart", () => {
    const seen: [string, string, boolean | undefined][] = [];
    const log = createLogger("server", [(line, level, security) => seen.push([line, level, security])], "INFO", () => new Date(0), { perAddress: null });
    log.warn("client joined", { client: "10.0.0.1:5" });
    log.security("auth lockout", { address: "10.0.0.1" });
    expect(seen.map(([, level, security]) => [level, security])).toEqual([["WARN", false], ["WARN", true]]);
    expect(seen[1]![0]).toBe("1970-01-01T00:00:00.000Z WARN [server] auth lockout address=10.0.0.1");
  });
});

describe("a log call never throws", () => {
  test("a sink that throws costs its own lines only: the others get them, the caller carries on", () => {
    const lines: string[] = [];
    const broken: Sink = () => {
      throw new Error("EIO: disk gone");
    };
    const log = createLogger("server", [broken, (l) => lines.push(l)]);
    for (let i = 0; i < 100; i++) expect(() => log.warn("client refused", { n: i })).not.toThrow();
    expect(lines).toHaveLength(100);
  });

  test("a value whose text cannot be made is not the caller's problem", () => {
    const log = createLogger("server", [() => {}]);
    const hostile = { toString: () => { throw new Error("no text"); } } as unknown as string;
    expect(() => log.warn("odd", { v: hostile })).not.toThrow();
  });
});

describe("repeated lines about one address", () => {
  const event = (message: string, fields: LogEvent["fields"] = {}): LogEvent => ({ level: "WARN", part: "server", message, fields });

  test("the address is the client field without its port", () => {
    expect(addressKey("192.168.1.20:50001")).toBe("192.168.1.20");
    expect(addressKey("192.168.1.20:?")).toBe("192.168.1.20");
    expect(addressKey("192.168.1.30")).toBe("192.168.1.30");
    expect(addressKey("::ffff:10.0.0.1:4000")).toBe("::ffff:10.0.0.1");
    expect(addressKey("[fe80::1]:4000")).toBe("fe80::1");
    expect(addressKey("fe80::1")).toBe("fe80::1");
  });

  test("each address gets its burst per interval; the rest come out once, as the last one with how many", () => {
    const lim = new AddressLimiter({ burst: 2, intervalMs: 1000, maxAddresses: 8 });
    const a = [0, 1, 2, 3, 4].map((i) => lim.admit("10.0.0.1", event("client refused", { n: i }), i * 10));
    expect(a).toEqual([true, true, false, false, false]);
    expect(lim.admit("10.0.0.2", event("client refused"), 50)).toBe(true);
    expect(lim.due(999)).toEqual([]);
    expect(lim.nextSummaryAt()).toBe(1000);
    expect(lim.due(1000)).toEqual([{ kind: "repeat", key: "10.0.0.1", event: event("client refused", { n: 4 }), held: 3 }]);
    expect(lim.nextSummaryAt()).toBeNull();
    // A new interval starts with the next line: the burst again.
    expect(lim.admit("10.0.0.1", event("x"), 1001)).toBe(true);
    // A held line that already summed up others counts for all of them.
    lim.admit("10.0.0.1", event("x"), 1002);
    lim.admit("10.0.0.1", event("x", { similar: 9 }), 1003);
    expect(lim.due(5000).map((s) => [s.key, s.kind === "repeat" && s.held])).toEqual([["10.0.0.1", 10]]);
  });

  test("memory stays bounded: past maxAddresses the newcomers share one entry", () => {
    const lim = new AddressLimiter({ burst: 1, intervalMs: 1000, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) lim.admit(`10.0.${i >> 8}.${i & 255}`, event("client refused"), i / 100);
    expect(lim.size).toBe(101);
    const summaries = lim.due(2000);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ kind: "repeat", key: "*", held: 9_900 - 1 });
    // Once intervals are over, the table has room again.
    expect(lim.admit("10.9.9.9", event("client refused"), 2000)).toBe(true);
    expect(lim.size).toBe(1);
  });

  test("a reconnect loop from one address: its burst, then one line with similar=N per interval; other lines untouched", () => {
    let now = 0;
    const lines: string[] = [];
    const log = createLogger("server", [(l) => lines.push(l)], "INFO", () => AT, { now: () => now });
    // 288 000 refusals in 10 s, as from the hostile-LAN loop, with a viewer's join between them.
    for (let i = 0; i < 288_000; i++) {
      now = i / 28.8;
      log.warn("client refused", { client: `10.0.0.66:${1024 + (i % 60000)}`, reason: "bad first bytes" });
      if (i === 1000) log.info("client joined", { client: "10.0.0.7:5000", udp: 8888 });
      if (i === 1001) log.warn("connection error", { client: "10.0.0.7:5000", error: "reset" });
      if (i === 1002) log.warn("udp send failed", { error: "EPERM" });
    }
    now = 10_000;
    log.info("stopped");
    const refused = lines.filter((l) => l.includes("client refused"));
    expect(refused).toHaveLength(DEFAULT_PER_ADDRESS.burst + 1);
    expect(refused.at(-1)).toBe(
      `${AT.toISOString()} WARN [server] client refused client=10.0.0.66:${1024 + (287_999 % 60000)} reason="bad first bytes" similar=${288_000 - DEFAULT_PER_ADDRESS.burst}`,
    );
    expect(lines.filter((l) => /client joined|connection error|udp send failed/.test(l))).toHaveLength(3);
    expect(lines.at(-1)).toEndWith("INFO [server] stopped");
  });

  test("the summary comes when its interval ends, even if the address goes quiet", async () => {
    const lines: string[] = [];
    const log = createLogger("server", [(l) => lines.push(l)], "INFO", () => AT, { perAddress: { burst: 1, intervalMs: 40, maxAddresses: 8 } });
    for (let i = 0; i < 50; i++) log.child("admission").warn("malformed control message", { client: "10.0.0.66:999" });
    expect(lines).toHaveLength(1);
    const deadline = performance.now() + 2000;
    while (lines.length < 2 && performance.now() < deadline) await Bun.sleep(10);
    expect(lines).toEqual([
      `${AT.toISOString()} WARN [admission] malformed control message client=10.0.0.66:999`,
      `${AT.toISOString()} WARN [admission] malformed control message client=10.0.0.66:999 similar=49`,
    ]);
  });

  test("each summary comes when its own interval ends, also when a later one was held first", async () => {
    const lines: string[] = [];
    // The limiter's clock is the test's: only the timer that flushes is real, so a busy machine cannot reorder the intervals.
    let t = 0;
    const log = createLogger("server", [(l) => lines.push(l)], "INFO", () => AT, { perAddress: { burst: 1, intervalMs: 400, maxAddresses: 8 }, now: () => t });
    log.warn("refused", { client: "10.0.0.1:1" });
    t = 200;
    log.warn("refused", { client: "10.0.0.2:1" });
    log.warn("refused", { client: "10.0.0.2:2" }); // held: its interval ends at 600 ms
    log.warn("refused", { client: "10.0.0.1:2" }); // held: its interval ends at 400 ms
    t = 450;
    await until(() => lines.some((l) => l.includes("10.0.0.1:2")), 10_000, "the first address's summary");
    expect(lines.filter((l) => l.includes("similar="))).toEqual([`${AT.toISOString()} WARN [server] refused client=10.0.0.1:2 similar=1`]);
    t = 650;
    await until(() => lines.length >= 4, 10_000, "the second address's summary");
    expect(lines.at(-1)).toBe(`${AT.toISOString()} WARN [server] refused client=10.0.0.2:2 similar=1`);
  });

  test("without a limit every line is written", () => {
    const lines: string[] = [];
    const log = createLogger("server", [(l) => lines.push(l)], "INFO", () => AT, { perAddress: null });
    for (let i = 0; i < 50; i++) log.warn("client refused", { client: "10.0.0.66:999" });
    expect(lines).toHaveLength(50);
  });
});

describe("joins and leaves of one address", () => {
  const churn = (message: "client joined" | "client left", kind?: string, client = "10.0.0.2:4000"): LogEvent =>
    ({ level: "INFO", part: "server", message, fields: { client, kind } });
  const limit = { burst: 5, intervalMs: 10_000, maxAddresses: 8, churn: { burst: 2, intervalMs: 1000 } };

  test("past the burst they are counted by kind and summed up when the second ends; while they keep on, no fresh burst", () => {
    const lim = new AddressLimiter(limit);
    const admitted = [
      lim.admit("10.0.0.2", churn("client joined"), 0),
      lim.admit("10.0.0.2", churn("client left"), 1),
      lim.admit("10.0.0.2", churn("client joined", "classic"), 2),
      lim.admit("10.0.0.2", churn("client left", "classic"), 3),
      lim.admit("10.0.0.2", churn("client joined"), 4),
    ];
    expect(admitted).toEqual([true, true, false, false, false]);
    // Other INFO lines about the address, and other addresses, are not held.
    expect(lim.admit("10.0.0.2", { level: "INFO", part: "server", message: "client renamed", fields: { client: "10.0.0.2:4000" } }, 5)).toBe(true);
    expect(lim.admit("10.0.0.3", churn("client joined", "browser", "10.0.0.3"), 6)).toBe(true);
    expect(lim.due(999)).toEqual([]);
    expect(lim.nextSummaryAt()).toBe(1000);
    expect(lim.due(1000)).toEqual([
      { kind: "churn", key: "10.0.0.2", part: "server", joined: 2, left: 1, kinds: new Map([["classic", 2], ["udp", 1]]), seconds: 1 },
    ]);
    // Still at it in the next second: held from its first line, summed up again.
    expect(lim.admit("10.0.0.2", churn("client joined"), 1001)).toBe(false);
    expect(lim.due(2000).map((s) => s.kind === "churn" && [s.joined, s.left])).toEqual([[1, 0]]);
    // A whole quiet second, and the address has its burst again.
    expect(lim.due(3000)).toEqual([]);
    expect(lim.admit("10.0.0.2", churn("client joined"), 3500)).toBe(true);
  });

  test("the kinds counted in one summary are bounded: past 8 they count as other", () => {
    const lim = new AddressLimiter({ ...limit, churn: { burst: 0, intervalMs: 1000 } });
    for (let i = 0; i < 1000; i++) lim.admit("10.0.0.2", churn("client joined", `k${i}`), i / 10);
    const [s] = lim.due(1000);
    expect(s?.kind === "churn" && [s.kinds.size, s.kinds.get("other")]).toEqual([9, 992]);
  });

  test("memory stays bounded: past maxAddresses the newcomers share one entry", () => {
    const lim = new AddressLimiter(limit);
    for (let i = 0; i < 10_000; i++) {
      lim.admit(`10.0.${i >> 8}.${i & 255}`, churn("client joined"), i / 100);
      lim.admit(`10.0.${i >> 8}.${i & 255}`, { level: "WARN", part: "server", message: "client refused", fields: {} }, i / 100);
    }
    expect(lim.size).toBe(2 * (limit.maxAddresses + 1));
    const overflow = lim.due(2000).find((s) => s.kind === "churn" && s.key === "*");
    expect(overflow?.kind === "churn" && overflow.joined).toBe(10_000 - limit.maxAddresses - limit.churn.burst);
  });

  test("two addresses joining and leaving in a loop for 20 s: a few lines, then one a second each, every join counted", () => {
    let now = 0;
    const lines: string[] = [];
    const log = createLogger("server", [(l) => lines.push(l)], "INFO", () => AT, { now: () => now });
    let joins = 0;
    // 100 joins and 100 leaves a second from each, as lancam and classroom viewers by turns.
    for (let i = 0; i < 2000; i++) {
      now = i * 10;
      for (const address of ["127.0.0.2", "127.0.0.3"]) {
        const fields = { client: `${address}:${20_000 + i}`, kind: i % 2 ? "classic" : undefined, udp: 9000 };
        log.info("client joined", { ...fields, clients: 1 });
        log.info("client left", { ...fields, reason: "goodbye", seconds: "0.0", clients: 0 });
        joins++;
      }
    }
    now = 21_000;
    log.info("stopped");
    const bytes = lines.reduce((n, l) => n + l.length + 1, 0);
    // Unlimited, the same loop writes 8000 lines (about 1 MB).
    expect(lines.length).toBeLessThanOrEqual(2 * (DEFAULT_CHURN.burst + 20) + 1);
    expect(bytes).toBeLessThan(10_000);
    expect(lines).toContain(`${AT.toISOString()} INFO [server] joins and leaves from 127.0.0.2 joined=100 left=100 kinds=udp:100,classic:100 seconds=1`);
    const logged = lines.filter((l) => l.includes("client joined")).length;
    const summed = lines.reduce((n, l) => n + Number(/ joined=(\d+)/.exec(l)?.[1] ?? 0), 0);
    expect(logged + summed).toBe(joins);
    expect(lines.filter((l) => l.includes("joins and leaves from 127.0.0.3"))).toHaveLength(20);
  });
});

describe("the log file's size cap", () => {
  test("past the cap the file becomes FILE.1 (FILE.1 becomes FILE.2 ...), keeping `keep` of them, every line whole", () => {
    const path = join(tempDir(), "server.log");
    const log = (file: FileSink, i: number) => file.sink(formatLine(AT, "INFO", "server", "line", { n: i, pad: "x".repeat(i % 37) }), "INFO");
    {
      using file = new FileSink(path, { maxBytes: 1000, keep: 2 });
      for (let i = 0; i < 400; i++) log(file, i);
      expect(file.rotations).toBeGreaterThan(10);
      expect(file.linesLost).toBe(0);
    }
    expect(existsSync(`${path}.3`)).toBe(false);
    const numbers: number[] = [];
    for (const p of [`${path}.2`, `${path}.1`, path]) {
      expect(statSync(p).size).toBeLessThanOrEqual(1000);
      // A rotated file was filled up to the cap, less than one line short of it.
      if (p !== path) expect(statSync(p).size).toBeGreaterThan(1000 - 200);
      for (const l of readFileSync(p, "utf8").trimEnd().split("\n")) {
        expect(l).toMatch(/^2026-11-24T10:00:00.000Z INFO \[server\] line n=\d+ pad=x*$/);
        numbers.push(Number(/n=(\d+)/.exec(l)![1]));
      }
    }
    // The newest lines, in order, none missing across the files.
    expect(numbers.at(-1)).toBe(399);
    expect(numbers).toEqual(numbers.map((_, i) => 400 - numbers.length + i));
  });

  test("a file already past the cap is rotated before the first new line; keep 0 starts it over", () => {
    const path = join(tempDir(), "client.log");
    writeFileSync(path, "old\n".repeat(2000));
    {
      using file = new FileSink(path, { maxBytes: 4096, keep: 0 });
      file.sink("new", "INFO");
    }
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(existsSync(`${path}.1`)).toBe(false);
  });

  test("a rotation that cannot rename leaves the file alone: nothing is written past the cap", () => {
    const dir = tempDir();
    const path = join(dir, "server.log");
    writeFileSync(path, "x".repeat(900) + "\n");
    // FILE.1 as a non-empty folder: renaming the log onto it fails.
    mkdirSync(`${path}.1/inside`, { recursive: true });
    const reports: string[] = [];
    {
      using file = new FileSink(path, { maxBytes: 1000, keep: 1, report: (l) => reports.push(l) });
      for (let i = 0; i < 10; i++) expect(() => file.sink("y".repeat(200), "INFO")).not.toThrow();
      expect(file.linesLost).toBe(10);
    }
    expect(statSync(path).size).toBe(901);
    expect(reports).toHaveLength(1);
  });
});

describe("a log file that cannot be written", () => {
  test("/dev/full: no call throws, the first failure is said once, every lost line is counted", () => {
    const reports: string[] = [];
    let now = 0;
    using file = new FileSink("/dev/full", { report: (l) => reports.push(l), now: () => now });
    const log = createLogger("server", [file.sink]);
    for (let i = 0; i < 5000; i++) {
      now = i; // 5 s: a retry every second
      expect(() => log.info("client joined", { n: i })).not.toThrow();
    }
    expect(file.linesLost).toBe(5000);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(/^\S+ ERROR \[log\] cannot write the log file; carrying on without it, lines lost are counted path=\/dev\/full error="ENOSPC[^"]*"\n$/);
  });

  test("once it can be written again, the first line says how many were lost", () => {
    const dir = tempDir();
    const path = join(dir, "server.log");
    symlinkSync("/dev/full", path);
    let now = 0;
    const reports: string[] = [];
    const file = new FileSink(path, { report: (l) => reports.push(l), now: () => now });
    for (let i = 0; i < 30; i++) file.sink(`lost ${i}`, "INFO");
    // The disk has room again (here: the path is a plain file now).
    rmSync(path);
    now = 500;
    file.sink("still paused", "INFO");
    now = 1500;
    file.sink("back", "INFO");
    file.close();
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/ WARN \[log\] log lines were lost lines=31 error=ENOSPC$/);
    expect(lines[1]).toBe("back");
    expect(file.linesLost).toBe(31);
    expect(reports).toHaveLength(1);
  });

  test.skipIf(!canMount)("a full disk at start (no room for the file itself) is carried on with", () => {
    using disk = tinyDisk("size=64k,nr_inodes=1");
    const reports: string[] = [];
    let file: FileSink | undefined;
    expect(() => (file = new FileSink(join(disk.dir, "logs", "server.log"), { report: (l) => reports.push(l) }))).not.toThrow();
    file!.sink("a line", "INFO");
    file!.close();
    expect(file!.linesLost).toBe(1);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toContain("error=\"ENOSPC");
  });

  test("a wrong path is still an error at once, naming --log", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "a-file"), "");
    expect(() => new FileSink(join(dir, "a-file", "x.log"))).toThrow(/^cannot open the log file .*\/a-file\/x\.log: .*; choose another --log$/);
  });
});

/** Fills a file system until a write fails, so the next one fails too. */
function fill(dir: string): void {
  const fd = openSync(join(dir, "filler"), "w");
  const chunk = new Uint8Array(1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    expect((e as { code?: string }).code).toBe("ENOSPC");
  } finally {
    closeSync(fd);
  }
}

/**
 * A peer that connects, sends `bytes` and waits for the server to close on it; the ms
 * that took (Infinity past `limitMs`). With `wait` false it resets at once instead.
 */
async function badPeer(port: number, bytes: Uint8Array, wait: boolean, limitMs = 5000): Promise<number> {
  const started = performance.now();
  const closed = Promise.withResolvers<void>();
  const done = () => closed.resolve();
  const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => {}, end: done, close: done, error: done } });
  sock.write(bytes);
  if (!wait) {
    sock.terminate();
    return 0;
  }
  const ms = await Promise.race([closed.promise.then(() => performance.now() - started), Bun.sleep(limitMs).then(() => Infinity)]);
  sock.terminate();
  return ms;
}

describe("a server and a viewer whose log disk is full", () => {
  const places: [string, boolean][] = [["/dev/full", true], ["a full tmpfs", canMount]];
  for (const [where, can] of places) {
    test.skipIf(!can)(`${where}: both keep serving, each says so in one line, bad peers are still closed at once`, async () => {
      const dir = tempDir();
      using disk = where === "/dev/full" ? null : tinyDisk("size=64k");
      if (disk) fill(disk.dir);
      const serverLog = disk ? join(disk.dir, "server.log") : "/dev/full";
      const clientLog = disk ? join(disk.dir, "client.log") : "/dev/full";
      await using server = spawnBun(["server.ts", "--source", "test", "--size", "160x120", "--fps", "20", "--port", "0", "--log", serverLog, "--security-log", join(dir, "security.log")]);
      const port = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
      const stats = join(dir, "viewer.json");
      await using viewer = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--no-record", "--duration", "6", "--stats", stats, "--log", clientLog]);
      await viewer.waitFor(/INFO \[client\] connected /, 10_000, "stderr");
      // The hostile loop (connect, two bad bytes, reset), with some peers that wait to be closed.
      const closeMs: number[] = [];
      for (let round = 0; round < 20; round++) {
        await Promise.all(Array.from({ length: 20 }, () => badPeer(port, new Uint8Array([0x47, 0x47]), false)));
        closeMs.push(await badPeer(port, new Uint8Array([0x47, 0x47]), true));
      }
      await expectExit(viewer, 0);
      server.proc.kill("SIGTERM");
      await expectExit(server, 0);

      // At once, not at the 2 s hello deadline a silent peer would be closed at.
      expect(Math.max(...closeMs)).toBeLessThan(1900);
      const s: StatsSummary = JSON.parse(readFileSync(stats, "utf8"));
      // 20 fps for 6 s; the first and last seconds may be partial.
      expect(s.framesReceived).toBeGreaterThan(80);
      expect(Math.min(...s.fpsPerSecond.slice(1, -1))).toBeGreaterThanOrEqual(10);
      expect(viewer.stderr()).not.toContain("server went away");
      for (const p of [server, viewer]) {
        const err = p.stderr();
        expect(err.match(/ERROR \[log\] cannot write the log file/g)).toHaveLength(1);
        expect(err).not.toMatch(/unexpected error|^\s+at /m);
      }
      // 420 refusals from 127.0.0.1: its burst, not one line each.
      expect(server.stderr().match(/client refused/g)?.length).toBeLessThanOrEqual(DEFAULT_PER_ADDRESS.burst + 1);
    }, 40_000);
  }
});
