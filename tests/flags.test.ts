import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseInteger, UsageError } from "../lib/app/cli.ts";
import { CLIENT_COMMAND, CLIENT_RECORD_CLI } from "../lib/app/client-flags.ts";
import {
  booleanFlag, defineCommand, flagSpellings, helpText, operand, parseCommandLine, valueFlag,
  type Command, type FlagTable, type OperandTable, type ValueFlag,
} from "../lib/app/flags.ts";
import { checkCanRecord } from "../lib/app/record-check.ts";
import { recordSettings } from "../lib/app/record-flags.ts";
import { SERVER_COMMAND, SERVER_RECORD_CLI } from "../lib/app/server-flags.ts";
import { parseSourceFlag, sourceSpelling } from "../lib/app/source-flag.ts";
import { RecordError } from "../lib/record/record-dir.ts";
import { ROOT, spawnBun, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-flags-");

/** A small command exercising every kind of row. */
const DEMO = defineCommand({
  role: "demo",
  script: "demo.ts",
  about: "Does nothing, for the tests.",
  operands: { host: operand("HOST", (s) => s) },
  flags: {
    count: valueFlag("count", "N", 3, (raw, flag) => parseInteger(flag, raw, 1, 9), "how many"),
    outDir: valueFlag("out-dir", "DIR", "out", (raw) => raw, "where to write\nsecond line of help"),
    loud: booleanFlag("loud", "speak up"),
    window: booleanFlag("window", "no window", { default: true }),
  },
});

/** The parsed flags, or the UsageError's message. */
function run<F extends FlagTable, O extends OperandTable>(cmd: Command<F, O>, argv: string[]) {
  const cli = parseCommandLine(cmd, argv);
  if (cli.action !== "run") throw new Error(`expected a run, got ${cli.action}`);
  return cli;
}

function usageError<F extends FlagTable, O extends OperandTable>(cmd: Command<F, O>, argv: string[]): string {
  try {
    parseCommandLine(cmd, argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${argv.join(" ")}`);
}

describe("a flag table", () => {
  test("gives defaults for what is not given, parsed values for what is", () => {
    expect(run(DEMO, ["h"])).toEqual({ action: "run", operands: { host: "h" }, flags: { count: 3, outDir: "out", loud: false, window: true, version: false, help: false }, cameras: [] });
    const cli = run(DEMO, ["--count", "7", "h", "--out-dir=x", "--loud", "--no-window"]);
    expect(cli.flags).toMatchObject({ count: 7, outDir: "x", loud: true, window: false });
  });

  test("--no-X is a boolean's other setting, and the last of several wins", () => {
    expect(run(DEMO, ["h", "--no-loud"]).flags.loud).toBe(false);
    expect(run(DEMO, ["h", "--window"]).flags.window).toBe(true);
    expect(run(DEMO, ["h", "--no-window", "--window"]).flags.window).toBe(true);
    expect(run(DEMO, ["h", "--loud", "--loud"]).flags.loud).toBe(true);
  });

  test("--no-X of a flag that takes a value is a usage error, wherever it stands", () => {
    expect(usageError(DEMO, ["h", "--no-count"])).toBe("--count takes a value; --no-count is not an option");
    expect(usageError(DEMO, ["h", "--no-out-dir", "--out-dir", "x"])).toBe("--out-dir takes a value; --no-out-dir is not an option");
    expect(usageError(DEMO, ["h", "--out-dir", "x", "--no-out-dir"])).toBe("--out-dir takes a value; --no-out-dir is not an option");
  });

  test("a missing, repeated or bad value, an unknown flag and a wrong argument count are usage errors", () => {
    expect(usageError(DEMO, ["h", "--count"])).toBe("--count needs a value");
    expect(usageError(DEMO, ["h", "--out-dir", "--loud"])).toBe("--out-dir needs a value");
    expect(usageError(DEMO, ["h", "--count", "1", "--count=2"])).toBe("--count given more than once");
    expect(usageError(DEMO, ["h", "--count", "10"])).toBe("invalid --count=10: expected an integer 1..9");
    expect(usageError(DEMO, ["h", "--cuont", "1"])).toBe("unknown option --cuont");
    expect(usageError(DEMO, ["h", "--no-such"])).toBe("unknown option --no-such");
    expect(usageError(DEMO, ["h", "-x"])).toBe("unknown option -x");
    expect(usageError(DEMO, [])).toBe("expected HOST, got 0 arguments");
    expect(usageError(DEMO, ["a", "b"])).toBe("expected HOST, got 2 arguments");
  });

  test("--help and -h win over anything else on the line; then --version", () => {
    expect(parseCommandLine(DEMO, ["--bogus", "--count", "99", "-h"])).toEqual({ action: "help" });
    expect(parseCommandLine(DEMO, ["--help", "--version"])).toEqual({ action: "help" });
    expect(parseCommandLine(DEMO, ["--version", "--no-count"])).toEqual({ action: "version" });
  });

  test("the help text lists every row, its placeholder and its help under one column", () => {
    expect(helpText(DEMO)).toBe(`Usage: bun demo.ts HOST [options]

Does nothing, for the tests.

Options:
  --count N            how many (default 3)
  --out-dir DIR        where to write
                       second line of help (default out)
  --loud               speak up
  --no-window          no window
  --version            print versions of lancam, Bun, OpenCV and the ffmpeg used
  -h, --help           print this help
`);
    expect(flagSpellings(DEMO)).toEqual(["--count", "--out-dir", "--loud", "--no-window", "--version", "--help"]);
  });
});

describe("the server's command line", () => {
  test("defaults", () => {
    const { flags } = run(SERVER_COMMAND, []);
    expect(flags).toMatchObject({
      port: 9999, bind: "0.0.0.0", source: [{ name: null, spec: { kind: "camera", index: 0 } }], loop: false, size: undefined, fps: undefined,
      quality: 80, log: "lancam-server.log", maxClients: 32, mtu: 1400, spread: 0.25, record: null, tcpDelivery: true,
    });
    expect(run(SERVER_COMMAND, ["--no-tcp-delivery"]).flags.tcpDelivery).toBe(false);
    expect(recordSettings(flags)).toEqual({ segmentSeconds: 15, container: "avi", keepDays: undefined, maxBytes: undefined, minFreeBytes: undefined });
  });

  test("--no-record and --no-log are usage errors, not a folder or a file named false", () => {
    expect(usageError(SERVER_COMMAND, ["--no-record"])).toBe("--record takes a value; --no-record is not an option");
    expect(usageError(SERVER_COMMAND, ["--no-log"])).toBe("--log takes a value; --no-log is not an option");
    expect(usageError(SERVER_COMMAND, ["--record"])).toBe("--record needs a value");
    expect(usageError(SERVER_COMMAND, ["camera:1"])).toBe("unexpected argument camera:1: the server takes only options");
  });

  test("values are checked with exact messages", () => {
    expect(usageError(SERVER_COMMAND, ["--port", "70000"])).toBe("invalid --port=70000: expected a port 0..65535");
    expect(usageError(SERVER_COMMAND, ["--mtu", "100"])).toBe("invalid --mtu=100: expected an integer 576..65507");
    expect(usageError(SERVER_COMMAND, ["--spread", "2"])).toBe("invalid --spread=2: expected a number 0..1");
    expect(usageError(SERVER_COMMAND, ["--size", "640"])).toBe("invalid --size=640: expected WIDTHxHEIGHT with even sides, 16x16..7680x4320");
    expect(usageError(SERVER_COMMAND, ["--record", "r", "--segment", "0"])).toBe("invalid --segment=0: expected a number 1..86400");
    const { flags } = run(SERVER_COMMAND, ["--record", "rec", "--container", "mkv", "--max-size", "20G", "--source", "test", "--loop"]);
    expect(flags).toMatchObject({ record: "rec", container: "mkv", maxBytes: 20 * 1024 ** 3, source: [{ name: null, spec: { kind: "test" } }], loop: true });
  });
});

describe("the client's command line", () => {
  test("operands and defaults", () => {
    const cli = run(CLIENT_COMMAND, ["10.0.0.5", "9999", "0"]);
    expect(cli.operands).toEqual({ host: "10.0.0.5", port: 9999, udpPort: 0 });
    expect(cli.flags).toMatchObject({
      window: true, frames: 0, duration: 0, stats: null, verify: false, out: "recordings", record: true, recvBuffer: 4 << 20, log: null, name: "",
    });
    expect(usageError(CLIENT_COMMAND, ["h", "0", "0"])).toBe("invalid PORT=0: expected a port 1..65535");
    expect(usageError(CLIENT_COMMAND, ["h", "1", "x"])).toBe("invalid UDPPORT=x: expected a port 0..65535");
  });

  test("--no-window and --no-record switch off; --no-out is a usage error, not a folder named false", () => {
    expect(run(CLIENT_COMMAND, ["h", "1", "0", "--no-window", "--no-record"]).flags).toMatchObject({ window: false, record: false });
    expect(usageError(CLIENT_COMMAND, ["h", "1", "0", "--no-out"])).toBe("--out takes a value; --no-out is not an option");
    expect(usageError(CLIENT_COMMAND, ["h", "1", "0", "--no-stats"])).toBe("--stats takes a value; --no-stats is not an option");
    expect(usageError(CLIENT_COMMAND, ["h", "1", "0", "--name", "a\tb"])).toBe('invalid --name: name "a\\tb" contains control characters');
  });

  test("--transport: auto by default, udp or tcp when given, anything else a usage error", () => {
    expect(run(CLIENT_COMMAND, ["h", "1", "0"]).flags.transport).toBe("auto");
    expect(run(CLIENT_COMMAND, ["h", "1", "0", "--transport", "tcp"]).flags.transport).toBe("tcp");
    expect(run(CLIENT_COMMAND, ["h", "1", "0", "--transport=udp"]).flags.transport).toBe("udp");
    expect(usageError(CLIENT_COMMAND, ["h", "1", "0", "--transport", "sctp"])).toBe("invalid --transport=sctp: expected auto, udp or tcp");
  });

  test("--camera: a number 0-7 or a camera name; camera 0 is the same as none given", () => {
    const camera = (...argv: string[]) => run(CLIENT_COMMAND, ["h", "1", "0", ...argv]).flags.camera;
    expect(camera()).toBe("");
    expect(camera("--camera", "0")).toBe("");
    expect(camera("--camera", "3")).toBe("3");
    expect(camera("--camera", "07")).toBe("7");
    expect(camera("--camera", "desk")).toBe("desk");
    expect(camera("--camera=Board_2")).toBe("Board_2");
    const cases: [string, string][] = [
      ["8", "invalid --camera=8: a server has at most 8 cameras, numbered 0..7"],
      ["-1", 'invalid --camera=-1: camera name "-1" is not allowed: a letter, then up to 31 letters, digits, _ or -'],
      ["2b", 'invalid --camera=2b: camera name "2b" starts with a digit; numbers already call cameras by their place (0, 1, ...)'],
      ["front desk", 'invalid --camera=front desk: camera name "front desk" is not allowed: a letter, then up to 31 letters, digits, _ or -'],
    ];
    for (const [raw, message] of cases) expect(usageError(CLIENT_COMMAND, ["h", "1", "0", `--camera=${raw}`])).toBe(message);
    expect(usageError(CLIENT_COMMAND, ["h", "1", "0", "--camera"])).toBe("--camera needs a value");
  });
});

describe("both programs", () => {
  for (const cmd of [SERVER_COMMAND, CLIENT_COMMAND] as Command<FlagTable, OperandTable>[]) {
    const operands = Object.values(cmd.operands).map((o) => (o.name === "HOST" ? "h" : "1"));
    const rows = Object.values(cmd.flags);

    test(`${cmd.role}: --no-X of every flag that takes a value is refused; of every on/off flag, accepted`, () => {
      for (const flag of rows) {
        const argv = [...operands, `--no-${flag.name}`];
        if (flag.kind === "value") expect(usageError(cmd, argv)).toBe(`--${flag.name} takes a value; --no-${flag.name} is not an option`);
        else expect(parseCommandLine(cmd, argv).action).toBe("run");
      }
    });

    test(`${cmd.role}: its help and its recording advice name only its own flags`, () => {
      const own = new Set([...flagSpellings(cmd), ...rows.map((f) => `--${f.name}`)]);
      const advice = cmd === SERVER_COMMAND ? SERVER_RECORD_CLI : CLIENT_RECORD_CLI;
      expect(advice.dir).toMatch(/^--[a-z]/);
      expect(advice.off).toMatch(/ --[a-z]/);
      const named = [...`${helpText(cmd)} ${advice.dir} ${advice.off}`.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]);
      expect(named.filter((f) => !own.has(f))).toEqual([]);
    });
  }

  for (const cmd of [SERVER_COMMAND, CLIENT_COMMAND] as Command<FlagTable, OperandTable>[]) {
    const rows = Object.values(cmd.flags).filter((f) => f.kind === "value");

    test(`${cmd.role}: each default is written once, by the table: help shows it, no help line repeats it`, () => {
      const help = helpText(cmd);
      for (const flag of rows) {
        if (flag.defaultText !== null) {
          expect([flag.name, flag.help.includes("(default")]).toEqual([flag.name, false]);
          expect(help).toContain(`(default ${flag.defaultText})`);
        }
      }
    });

    test(`${cmd.role}: a default help shows, given back as the value, is the default`, () => {
      for (const flag of rows) {
        // null (off) and 0 (no limit) have words in help, not a value to give.
        if (flag.defaultText === null || flag.default === null || flag.default === 0) continue;
        expect([flag.name, flag.parse(flag.defaultText, `--${flag.name}`)]).toEqual([flag.name, flag.default]);
      }
    });
  }

  test("byte sizes are shown the way they are written: the client's 4 MiB receive buffer reads 4M", () => {
    expect(CLIENT_COMMAND.flags.recvBuffer.default).toBe(4 * 1024 ** 2);
    expect(helpText(CLIENT_COMMAND)).toMatch(/\n {2}--recv-buffer SIZE +UDP receive buffer to ask the kernel for \(default 4M\)\n/);
    expect(helpText(SERVER_COMMAND)).toMatch(/\n {2}--log-max SIZE +rotate the log file at this size, keeping FILE\.1 to FILE\.3 \(default 10M\)\n/);
  });

  test("the client's help says where recordings go, under every container's extension", () => {
    expect(helpText(CLIENT_COMMAND)).toEndWith(
      "\nRecordings: OUT/YYYY-MM-DD/HH-MM-SS.EXT (local time of the segment's first frame),\nEXT being the --container: avi or mkv.\n",
    );
  });

  test("the recording flags are the same rows in both tables", () => {
    for (const key of ["segmentSeconds", "container", "keepDays", "maxBytes", "minFreeBytes"] as const) {
      expect(SERVER_COMMAND.flags[key]).toBe(CLIENT_COMMAND.flags[key]);
    }
  });
});

describe("--source", () => {
  test("valid specs", () => {
    expect(parseSourceFlag("test")).toEqual({ kind: "test" });
    expect(parseSourceFlag("camera:0")).toEqual({ kind: "camera", index: 0 });
    expect(parseSourceFlag("camera:12")).toEqual({ kind: "camera", index: 12 });
    expect(parseSourceFlag("gst:videotestsrc ! appsink")).toEqual({ kind: "gst", pipeline: "videotestsrc ! appsink" });
    expect(parseSourceFlag("/x/y.mp4")).toEqual({ kind: "file", path: "/x/y.mp4" });
    expect(parseSourceFlag("file:/x/y.mp4")).toEqual({ kind: "file", path: "/x/y.mp4" });
    expect(parseSourceFlag("clip.mkv")).toEqual({ kind: "file", path: "clip.mkv" });
  });

  test("sourceSpelling writes a spec the way --source reads it back", () => {
    for (const written of ["test", "camera:0", "camera:12", "gst:videotestsrc ! appsink", "file:/x/y.mp4", "file:clip.mkv"]) {
      const spec = parseSourceFlag(written);
      expect(sourceSpelling(spec)).toBe(written);
      expect(parseSourceFlag(sourceSpelling(spec))).toEqual(spec);
    }
  });

  test("invalid specs are usage errors with exact messages", () => {
    const cases: [string, string][] = [
      ["camera:x", "invalid --source=camera:x: expected camera:N with N a camera index 0..9999"],
      ["camera:", "invalid --source=camera:: expected camera:N with N a camera index 0..9999"],
      ["camera:-1", "invalid --source=camera:-1: expected camera:N with N a camera index 0..9999"],
      ["gst:", "invalid --source=gst:: expected gst:PIPELINE ending in appsink"],
      ["file:", "invalid --source=file:: expected file:PATH"],
      ["", "invalid --source=: expected camera:N, test, gst:PIPELINE or a video file path"],
    ];
    for (const [spec, message] of cases) {
      expect(() => parseSourceFlag(spec)).toThrow(UsageError);
      expect(() => parseSourceFlag(spec)).toThrow(message);
    }
    expect(usageError(SERVER_COMMAND, ["--source", "camera:x"])).toBe("invalid --source=camera:x: expected camera:N with N a camera index 0..9999");
  });
});

describe("a folder recording cannot use", () => {
  test("is a RecordError ending in the advice of the program that says it", () => {
    const blocker = join(tempDir(), "a-file");
    writeFileSync(blocker, "not a folder");
    const dir = join(blocker, "rec");
    let err: unknown;
    try {
      checkCanRecord(dir, SERVER_RECORD_CLI);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RecordError);
    expect((err as Error).message).toBe(`cannot record into ${dir}: a part of the path is a file, not a folder (ENOTDIR); choose another --record or run without --record`);
  });
});

/** The rows of the flag table in README's section `heading`, and the flags in its usage block. */
function readmeSection(heading: string): { table: Set<string>; usage: Set<string> } {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`\n${heading}\n`);
  expect(start).toBeGreaterThan(0);
  const end = readme.indexOf("\n### ", start + 1);
  const section = readme.slice(start, end);
  const flags = (text: string) => new Set([...text.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
  const firstCells = section.split("\n").filter((l) => l.startsWith("| `")).map((l) => l.split("|")[1]!);
  const usage = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  return { table: flags(firstCells.join(" ")), usage: flags(usage) };
}

describe("README", () => {
  for (const [heading, cmd] of [["### Server", SERVER_COMMAND], ["### Client", CLIENT_COMMAND]] as const) {
    test(`${heading}: the table lists exactly the flags the program accepts, and so does the usage block but for --version and --help`, () => {
      const { table, usage } = readmeSection(heading);
      const accepted = flagSpellings(cmd);
      expect([...table].sort()).toEqual([...accepted].sort());
      expect([...usage].sort()).toEqual(accepted.filter((f) => f !== "--version" && f !== "--help").sort());
    });
  }
});

/** Each README table row's flags and its meaning cell, and each `[--flag VALUE]` of the usage block, of section `heading`. */
function readmeDefaults(heading: string): { cells: [string[], string][]; usage: [string, string][] } {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`\n${heading}\n`);
  const section = readme.slice(start, readme.indexOf("\n### ", start + 1));
  const cells = section.split("\n").filter((l) => l.startsWith("| `")).map((l) => {
    const [, flags = "", meaning = ""] = l.split("|");
    return [[...flags.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]), meaning.replaceAll("`", "")] as [string[], string];
  });
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  const usage = [...block.matchAll(/\[(--[a-z][a-z-]*) ([^\]\s|]+)\]/g)].map((m) => [m[1]!, m[2]!] as [string, string]);
  return { cells, usage };
}

describe("README", () => {
  for (const [heading, cmd] of [["### Server", SERVER_COMMAND], ["### Client", CLIENT_COMMAND]] as const) {
    test(`${heading}: every default the README names for a flag is the one the program uses`, () => {
      const byName = new Map<string, ValueFlag<unknown>>(Object.values(cmd.flags).flatMap((f) => (f.kind === "value" ? [[`--${f.name}`, f] as const] : [])));
      /** Whether `written`, read as `flag`'s value, is its default; null when the flag has no default or it is no value. */
      const isDefault = (name: string, written: string): boolean | null => {
        const flag = byName.get(name);
        // No default to compare, or a placeholder (ADDR, NAME) rather than a value.
        if (!flag || flag.default === null || flag.default === undefined || /^[A-Z]+$/.test(written)) return null;
        try {
          return Bun.deepEquals(flag.parse(written, name), flag.default);
        } catch {
          return null; // a range such as 1-100, or a placeholder
        }
      };
      const wrong: string[] = [];
      const { cells, usage } = readmeDefaults(heading);
      let checked = 0;
      for (const [name, written] of usage) {
        const same = isDefault(name, written);
        if (same !== null) checked++;
        if (same === false) wrong.push(`usage [${name} ${written}]`);
      }
      for (const [names, meaning] of cells) {
        const written = /\(default ([^;),\s]+)/.exec(meaning)?.[1];
        if (names.length !== 1 || written === undefined) continue;
        const same = isDefault(names[0]!, written);
        if (same !== null) checked++;
        if (same === false) wrong.push(`table ${names[0]}: default ${written}`);
      }
      expect(checked).toBeGreaterThan(3);
      expect(wrong).toEqual([]);
    });
  }
});

describe("the programs, run", () => {
  const cases: [string[], string][] = [
    [["server.ts", "--no-record"], "lancam-server: --record takes a value; --no-record is not an option\nRun `bun server.ts --help` for usage.\n"],
    [["server.ts", "--no-log"], "lancam-server: --log takes a value; --no-log is not an option\nRun `bun server.ts --help` for usage.\n"],
    [["client.ts", "127.0.0.1", "1", "0", "--no-out"], "lancam-client: --out takes a value; --no-out is not an option\nRun `bun client.ts --help` for usage.\n"],
    [["client.ts", "127.0.0.1", "1", "0", "--no-window", "--fullscreen"], "lancam-client: --fullscreen: there is no window with --no-window; leave one of them out\nRun `bun client.ts --help` for usage.\n"],
  ];
  for (const [argv, stderr] of cases) {
    test(`bun ${argv.join(" ")}: exit 2, one line saying why and the usual pointer to --help, nothing created`, async () => {
      // Run from an empty folder, where a folder or log file named "false" would show.
      const cwd = tempDir();
      const p = Bun.spawn([process.execPath, join(ROOT, argv[0]!), ...argv.slice(1)], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
      expect({ code, stdout: out, stderr: err }).toEqual({ code: 2, stdout: "", stderr });
      expect(readdirSync(cwd)).toEqual([]);
    }, 15_000);
  }

  test("the server's unusable --record folder is one line naming --record, exit 1", async () => {
    const dir = tempDir();
    const blocker = join(dir, "a-file");
    writeFileSync(blocker, "");
    await using p = spawnBun(["server.ts", "--source", "test", "--port", "0", "--log", join(dir, "s.log"), "--record", join(blocker, "rec")]);
    expect({ code: await p.exited, stdout: p.stdout(), stderr: p.stderr() }).toEqual({
      code: 1, stdout: "",
      stderr: `lancam-server: error: cannot record into ${join(blocker, "rec")}: a part of the path is a file, not a folder (ENOTDIR); choose another --record or run without --record\n`,
    });
  }, 15_000);

  test("without ffmpeg, each program says how to run without recording in its own flags, exit 1", async () => {
    const dir = tempDir();
    const runs: [string[], string][] = [
      [["server.ts", "--source", "test", "--port", "0", "--log", join(dir, "s.log"), "--record", join(dir, "rec")], "lancam-server: error: cannot record: FFMPEG_BIN=/nope is not an executable file; fix or unset it"],
      [["client.ts", "127.0.0.1", "9", "0", "--no-window", "--out", join(dir, "rec")], "lancam-client: error: cannot record: FFMPEG_BIN=/nope is not an executable file; fix or unset it"],
    ];
    for (const [argv, start] of runs) {
      await using p = spawnBun(argv, { FFMPEG_BIN: "/nope" });
      await expectExit(p, 1);
      expect(p.stderr().split("\n")).toHaveLength(2);
      expect(p.stderr()).toStartWith(start);
      expect(p.stderr()).toEndWith(argv[0] === "server.ts" ? "; or run without --record\n" : "; or pass --no-record\n");
    }
  }, 15_000);

  test("--help prints the table's help on stdout and exits 0", async () => {
    await using p = spawnBun(["server.ts", "--help"]);
    expect({ code: await p.exited, stdout: p.stdout(), stderr: p.stderr() }).toEqual({ code: 0, stdout: helpText(SERVER_COMMAND), stderr: "" });
  }, 15_000);
});
