import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseInteger, UsageError } from "../lib/app/cli.ts";
import { cameraSettings } from "../lib/app/cameras.ts";
import { CLIENT_COMMAND } from "../lib/app/client-flags.ts";
import { ConfigError, MAX_CONFIG_KEYS, parseConfigText } from "../lib/app/config-file.ts";
import { configLoader, MAX_CONFIG_BYTES } from "../lib/app/config-load.ts";
import { defineCommand, listFlag, parseCommandLine, valueFlag, type Command, type FlagTable, type OperandTable } from "../lib/app/flags.ts";
import { printConfig } from "../lib/app/print-config.ts";
import { SERVER_COMMAND } from "../lib/app/server-flags.ts";
import { parseCameraSource } from "../lib/app/source-flag.ts";
import { keyLines } from "../lib/app/toml-lines.ts";
import { prng } from "./helpers/prng.ts";
import { ROOT } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-config-");

type Cmd = Command<FlagTable, OperandTable>;

/** `text` written to a file named `name` in a new folder; its path. */
function configFile(text: string | Uint8Array, name = "server.toml"): string {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  return path;
}

/** A run's flags and operands for `argv` (with --config where given). */
function run<F extends FlagTable, O extends OperandTable>(cmd: Command<F, O>, argv: string[]) {
  const cli = parseCommandLine(cmd, argv, configLoader(cmd as unknown as Cmd));
  if (cli.action !== "run") throw new Error(`expected a run, got ${cli.action}`);
  return cli;
}

/** The UsageError `argv` gives, as runMain prints it. */
function refusal(cmd: Cmd, argv: string[]): string {
  try {
    parseCommandLine(cmd, argv, configLoader(cmd));
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${argv.join(" ")}`);
}

/** The message a server config file of `text` is refused with, read from a file named server.toml. */
function serverRefusal(text: string): string {
  try {
    parseConfigText(SERVER_COMMAND, text, "server.toml");
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`no error for:\n${text}`);
}

const defaults = <F extends FlagTable, O extends OperandTable>(cmd: Command<F, O>, operands: string[] = []) => run(cmd, operands).flags;

describe("precedence", () => {
  test("the file's values replace the defaults; what it leaves out keeps the default", () => {
    const path = configFile('port = 9000\nmax-clients = 8\nrepair = false\nmin-free = "2G"\n\n[[source]]\nsrc = "test"\nsize = "640x480"\nfps = 12.5\n');
    const { flags, cameras } = run(SERVER_COMMAND, ["--config", path]);
    expect(flags).toMatchObject({ port: 9000, maxClients: 8, repair: false, minFreeBytes: 2 * 1024 ** 3, source: [{ name: null, spec: { kind: "test" } }] });
    // The camera's own size and rate are its own.
    expect(cameras).toHaveLength(1);
    expect(cameras[0]).toMatchObject({ source: [{ name: null, spec: { kind: "test" } }], size: { width: 640, height: 480 }, fps: 12.5, port: 9000 });
    // Everything else, as without a file.
    const { port, maxClients, repair, minFreeBytes, source, config, ...rest } = flags;
    const { port: _p, maxClients: _m, repair: _r, minFreeBytes: _f, source: _s, config: _c, ...restDefaults } = defaults(SERVER_COMMAND);
    expect(rest).toEqual(restDefaults);
    expect(config).toBe(path);
  });

  test("flags on the command line override the file, on/off flags both ways", () => {
    const path = configFile('port = 9000\nloop = true\nrepair = false\nquality = 50\npublish = ["rtsp://a.example/x", "rtsp://b.example/y"]\n');
    const { flags } = run(SERVER_COMMAND, ["--config", path, "--port", "7000", "--no-loop", "--repair", "--publish", "rtsp://c.example/z"]);
    expect(flags).toMatchObject({ port: 7000, loop: false, repair: true, quality: 50, publish: ["rtsp://c.example/z"] });
    // The order of --config among the flags does not matter.
    expect(run(SERVER_COMMAND, ["--port", "7000", "--config", path]).flags.port).toBe(7000);
  });

  test("a flag that overrides a bad value does not hide it: the file is refused as a whole", () => {
    const path = configFile("port = 9000\nmax-clients = 9000\n");
    expect(refusal(SERVER_COMMAND, ["--config", path, "--max-clients", "4"])).toBe(`invalid ${path} line 2: max-clients = 9000: expected an integer 1..1024`);
  });

  test("the client's HOST PORT UDPPORT come from host, port and udp-port; those given on the line come first", () => {
    const path = configFile('host = "10.1.2.3"\nport = 9999\nudp-port = 5000\nwindow = false\nname = "room 12"\n', "client.toml");
    expect(run(CLIENT_COMMAND, ["--config", path])).toMatchObject({ operands: { host: "10.1.2.3", port: 9999, udpPort: 5000 }, flags: { window: false, name: "room 12" } });
    expect(run(CLIENT_COMMAND, ["otherhost", "--config", path]).operands).toEqual({ host: "otherhost", port: 9999, udpPort: 5000 });
    expect(run(CLIENT_COMMAND, ["otherhost", "1234", "0", "--config", path, "--window"])).toMatchObject({ operands: { host: "otherhost", port: 1234, udpPort: 0 }, flags: { window: true } });
    const partial = configFile("port = 9999\n", "client.toml");
    expect(refusal(CLIENT_COMMAND, ["--config", partial])).toBe(`expected HOST PORT UDPPORT, got 0 arguments, and ${partial} has no host`);
    // Without a file, the message is the one it always was.
    expect(refusal(CLIENT_COMMAND, [])).toBe("expected HOST PORT UDPPORT, got 0 arguments");
  });

  test("a file with only comments changes nothing", () => {
    const path = configFile("# nothing yet\n\n   # still nothing\n");
    expect({ ...run(SERVER_COMMAND, ["--config", path]).flags, config: null }).toEqual({ ...defaults(SERVER_COMMAND), config: null });
  });
});

describe("a bad file is named with its line and key", () => {
  const cases: [string, string, string][] = [
    ["unknown key", "port = 9000\nmax-clinets = 8\n", "line 2: unknown key max-clinets; the keys are the flags' names, as in --help"],
    ["a key spelled another way", "max_clients = 8\n", "line 1: unknown key max_clients; the key is max-clients"],
    ["--no-X as a key", "port = 1\nno-repair = true\n", "line 2: unknown key no-repair; write repair = false"],
    ["a [table]", "[server]\nport = 1\n", "line 1: unknown table [server]; settings go at the top of the file, keyed by the flags' names"],
    ["a key only the command line takes", "# comment\nconfig = \"other.toml\"\n", "line 2: config: only on the command line, not in a config file"],
    ["print-config in the file", "print-config = true\n", "line 1: print-config: only on the command line, not in a config file"],
    ["true for a value", "\nport = true\n", "line 2: port = true: wrong type: expected one value for --port N, not true or false"],
    ["text for an on/off flag", 'loop = "yes"\n', 'line 1: loop = "yes": expected true or false'],
    ["a number for an on/off flag", "repair = 0\n", "line 1: repair = 0: expected true or false"],
    ["a list for a single value", "quality = [80, 90]\n", "line 1: quality = [80, 90]: wrong type: expected one value for --quality Q, not a list"],
    ["a date", "http = 1979-05-27T07:32:00Z\n", "line 1: http = 1979-05-27T07:32:00Z: wrong type: expected one value for --http PORT, not a date or time"],
    ["an inline table", "source = { src = \"test\" }\n", "line 1: source = {...}: wrong type: expected a value for --source [NAME=]SRC, or a list of them, not a table"],
    ["a list of lists for a repeatable flag", "publish = [[\"rtsp://a/x\"]]\n", "line 1: publish: wrong type: expected a value for --publish URL, or a list of them, not a list"],
    ["a number for a flag whose value is text", "\n[[source]]\nsrc = 0\n", 'line 3: [[source]] (camera 0) src = 0: wrong type: expected text for --source [NAME=]SRC, e.g. src = "0"'],
    ["a number in a list of URLs", 'publish = ["rtsp://a/x", 5]\n', 'line 1: publish: expected rtsp://HOST[:PORT]/PATH, e.g. rtsp://192.168.1.10:8554/classroom'],
    ["a value out of range", "port = 9000\nmax-clients = 9000\nmtu = 1400\n", "line 2: max-clients = 9000: expected an integer 1..1024"],
    ["a bad size", 'size = "640x481"\n', 'line 1: size = "640x481": expected WIDTHxHEIGHT with even sides, 16x16..7680x4320'],
    ["a bad source", 'source = "camera:x"\n', 'line 1: source = "camera:x": expected camera:N with N a camera index 0..9999'],
    ["an empty value", 'log = "  "\n', 'line 1: log = "  ": --log needs a value'],
    ["infinity", "fps = inf\n", "line 1: fps = Infinity: expected a number 0.1..240"],
    ["the earliest of several", "mtu = 1\nport = true\n", "line 1: mtu = 1: expected an integer 576..65507"],
    ["a secret --print-config hid", 'port = 1\ntoken = "<redacted>"\n', 'line 2: token = "<redacted>": --print-config hid this secret; write the real value'],
    ["a secret's bad value, not repeated", "token = \"a b\"\n", "line 1: token: contains a space or control character (U+0020)"],
    ["TOML: a missing value", "port = 9000\nquality =\n", "line 2: TOML: Missing value after '='; values must be on the same line"],
    ["TOML: a key twice", "port = 9000\nmtu = 1400\nport = 9001\n", "line 3: TOML: Cannot redefine key 'port'"],
    ["TOML: after a string over several lines", 'log = """\nx.log"""\nport = "unterminated\n', "line 3: TOML: Unterminated string; newlines must be escaped in basic strings"],
    ["a camera's bad overlay position", '[[source]]\nsrc = "camera:0"\noverlay-pos = "middle"\n', "line 3: [[source]] (camera 0) overlay-pos = \"middle\": expected top-left, top-right, bottom-left or bottom-right"],
    ["a camera in single brackets", 'port = 1\n[source]\nsrc = "test"\n', "line 2: [source] with one pair of brackets; write each camera as [[source]]"],
    ["a camera without src", '[[source]]\nsize = "640x480"\n', 'line 1: [[source]] (camera 0) has no src; give one, e.g. src = "camera:0"'],
    ["an unknown camera key", '[[source]]\nsrc = "test"\nloop = true\n', "line 3: unknown key loop in [[source]] (camera 0); it takes name, src, size, fps, quality, overlay, overlay-pos"],
    ["an object's own property name as a camera key", '[[source]]\nsrc = "test"\nconstructor = 1\n__proto__ = 2\n', "line 3: unknown key constructor in [[source]] (camera 0); it takes name, src, size, fps, quality, overlay, overlay-pos"],
    ["an object's own property name as a key", "toString = 1\n", "line 1: unknown key toString; the keys are the flags' names, as in --help"],
    ["a camera's bad value", '[[source]]\nsrc = "test"\nfps = 0\n', "line 3: [[source]] (camera 0) fps = 0: expected a number 0.1..240"],
  ];
  for (const [what, text, message] of cases) {
    test(what, () => {
      expect(serverRefusal(text)).toBe(`invalid server.toml ${message}`);
    });
  }

  test("a file of more keys than any config has is refused at the first one too many", () => {
    const keys = Array.from({ length: MAX_CONFIG_KEYS + 5 }, (_, i) => `k${i} = 1`);
    expect(serverRefusal(keys.join("\n"))).toBe(`invalid server.toml line ${MAX_CONFIG_KEYS + 1}: more than ${MAX_CONFIG_KEYS} keys; a config file has a few dozen`);
  });

  test("a syntax error among many keys, and one after values over several lines, is found on its line", () => {
    const keys = Array.from({ length: MAX_CONFIG_KEYS - 1 }, (_, i) => `k${i} = 1`);
    keys.splice(1234, 0, "bad =");
    expect(serverRefusal(keys.join("\n"))).toBe("invalid server.toml line 1235: TOML: Missing value after '='; values must be on the same line");
    const text = ['a = """', "one", 'two"""', "b = [", "  1,", "  2,", "]", "c = { x = 1 }", "d = 1 2", "e = 3"].join("\n");
    expect(serverRefusal(text)).toStartWith("invalid server.toml line 9: TOML: ");
  });

  test("the client's operands are checked like the command line's", () => {
    const message = (text: string) => {
      try {
        parseConfigText(CLIENT_COMMAND, text, "client.toml");
      } catch (e) {
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(message('host = "h"\nport = 0\n')).toBe("invalid client.toml line 2: port = 0: expected a port 1..65535");
    expect(message("host = 10\n")).toBe('invalid client.toml line 1: host = 10: wrong type: expected text, e.g. host = "10"');
    expect(message("udp-port = true\n")).toBe("invalid client.toml line 1: udp-port = true: wrong type: expected one UDPPORT, not true or false");
    expect(message('name = "a\\tb"\n')).toBe('invalid client.toml line 1: name = "a\\tb": name "a\\tb" contains control characters');
    // The client has no camera.
    expect(message('[[source]]\nsrc = "test"\n')).toBe("invalid client.toml line 1: unknown table [source]; settings go at the top of the file, keyed by the flags' names");
  });

  test("a file that cannot be read: missing, a folder, too large, not UTF-8", () => {
    const dir = tempDir();
    const missing = join(dir, "nope.toml");
    expect(refusal(SERVER_COMMAND, ["--config", missing])).toBe(`cannot read --config ${missing}: no such file (ENOENT)`);
    expect(refusal(SERVER_COMMAND, ["--config", dir])).toBe(`cannot read --config ${dir}: it is a folder, not a file`);
    const inFile = join(configFile("port = 1\n"), "x.toml");
    expect(refusal(SERVER_COMMAND, ["--config", inFile])).toBe(`cannot read --config ${inFile}: a part of the path is a file, not a folder (ENOTDIR)`);
    const big = configFile(`# ${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    expect(refusal(SERVER_COMMAND, ["--config", big])).toBe(`cannot read --config ${big}: larger than 64K; a config file is a few lines`);
    const latin1 = configFile(new Uint8Array([...new TextEncoder().encode('log = "caf'), 0xe9, ...new TextEncoder().encode('.log"\n')]));
    expect(refusal(SERVER_COMMAND, ["--config", latin1])).toBe(`cannot read --config ${latin1}: not UTF-8 text`);
  });

  test("a file only root could read, when not root", () => {
    const path = configFile("port = 1\n");
    chmodSync(path, 0o000);
    // Root reads any file: then there is no refusal to see, and the file is simply read.
    if (process.getuid?.() === 0) expect(run(SERVER_COMMAND, ["--config", path]).flags.port).toBe(1);
    else expect(refusal(SERVER_COMMAND, ["--config", path])).toBe(`cannot read --config ${path}: permission denied (EACCES)`);
  });

  test("--config is given once, with a value", () => {
    const path = configFile("port = 1\n");
    expect(refusal(SERVER_COMMAND, ["--config", path, "--config", path])).toBe("--config given more than once");
    expect(refusal(SERVER_COMMAND, ["--config"])).toBe("--config needs a value");
  });
});

describe("a config file holding a secret", () => {
  test("readable by other users: a warning naming the file and the keys; mode 600, or a token file: none", () => {
    const cases: [string, number, string[]][] = [
      ['token = "correct-horse-battery-staple"\n', 0o644, ["token"]],
      ['token = "correct-horse-battery-staple"\npublish = ["rtsp://u:pw@h.example/x"]\n', 0o640, ["token", "publish"]],
      ['token = "correct-horse-battery-staple"\n', 0o600, []],
      ['token = "auto"\npublish = ["rtsp://h.example/x"]\n', 0o644, []],
    ];
    for (const [text, mode, secrets] of cases) {
      const path = configFile(text);
      chmodSync(path, mode);
      const loader = configLoader(SERVER_COMMAND as unknown as Cmd);
      parseCommandLine(SERVER_COMMAND, ["--config", path], loader);
      expect(loader.warnings).toEqual(secrets.length === 0 ? [] : [
        `the config file ${path} holds a secret (${secrets.join(", ")}) and can be read by other users of this machine (chmod 600 ${path}, or use token-file)`,
      ]);
    }
  });
});

describe("[[source]] keys follow the flag table", () => {
  const withOverlay = defineCommand({
    role: "demo", script: "demo.ts", about: "a server with an overlay flag", operands: {},
    flags: {
      source: listFlag("source", "[NAME=]SRC", parseCameraSource, "the cameras"),
      quality: valueFlag("quality", "Q", 80, (raw, flag) => parseInteger(flag, raw, 1, 100), "JPEG quality"),
      overlay: valueFlag<string | null>("overlay", "TEXT", null, (raw) => raw, "text on the picture"),
    },
  }) as Cmd;

  test("a camera key is taken exactly when the program has a flag of its name", () => {
    const text = '[[source]]\nsrc = "camera:1"\noverlay = "%H:%M"\nquality = 70\n';
    const camera = { name: null, spec: { kind: "camera", index: 1 } };
    expect(parseConfigText(withOverlay, text, "demo.toml").cameras).toEqual([{ source: [camera], overlay: "%H:%M", quality: 70 }]);
    // The server has --overlay: its camera takes one.
    expect(parseConfigText(SERVER_COMMAND as Cmd, text, "server.toml").cameras).toEqual([{ source: [camera], overlay: "%H:%M", quality: 70 }]);
    // A per-camera key the demo has no flag for is refused there as unknown.
    expect(() => parseConfigText(withOverlay, '[[source]]\nsrc = "x"\nsize = "640x480"\n', "demo.toml")).toThrow("invalid demo.toml line 3: unknown key size in [[source]] (camera 0); it takes name, src, quality, overlay");
  });

  test("every top-level key is a flag's name: each row of both tables is taken under its own name", () => {
    for (const cmd of [SERVER_COMMAND, CLIENT_COMMAND] as Cmd[]) {
      for (const flag of Object.values(cmd.flags)) {
        if (flag.cliOnly) continue;
        const value = flag.kind === "boolean" ? String(!flag.default) : `"x"`;
        let message = "accepted";
        try {
          parseConfigText(cmd, `${flag.name} = ${value}\n`, "f.toml");
        } catch (e) {
          message = (e as Error).message;
        }
        // A bad value is fine here (x is not a port); an unknown key is not.
        expect([flag.name, message]).not.toEqual([flag.name, expect.stringContaining("unknown key")]);
      }
    }
  });
});

describe("--print-config", () => {
  /** The settings printConfig writes for `argv`, read back through --config. */
  function roundTrip(cmd: Cmd, argv: string[]): { printed: string; before: ReturnType<typeof run>; after: ReturnType<typeof run> } {
    const before = run(cmd, argv);
    const printed = printConfig(cmd, before);
    const path = configFile(printed, "printed.toml");
    const after = run(cmd, ["--config", path]);
    return { printed, before, after };
  }

  /** Flags without --config itself, which the read-back run has and the first does not. */
  const settings = (cli: ReturnType<typeof run>) => ({ ...cli.flags, config: null });

  test("the defaults, printed and read back, are the defaults, for both programs", () => {
    for (const [cmd, operands] of [[SERVER_COMMAND, []], [CLIENT_COMMAND, ["h", "9999", "0"]]] as [Cmd, string[]][]) {
      const { before, after } = roundTrip(cmd, operands);
      expect(settings(after)).toEqual(settings(before));
      expect(after.operands).toEqual(before.operands);
    }
  });

  test("the server's settings, none left at its default, printed and read back, are the same", () => {
    const dir = tempDir();
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
    mkdirSync(join(dir, "rec"));
    const argv = [
      "--port", "0", "--bind", "127.0.0.1", "--source", "gst:videotestsrc ! appsink", "--loop", "--size", "640x480", "--fps", "12.5",
      "--quality", "55", "--reencode", "--log", join(dir, "s.log"), "--log-max", "5M", "--security-log", join(dir, "sec.log"), "--security-log-max", "64K",
      "--max-clients", "7", "--max-per-host", "3", "--token-file", tokenFile, "--mtu", "1200", "--spread", "0.5", "--layers", "320x240,160x120",
      "--multicast", "239.255.1.2:5000", "--multicast-ttl", "4", "--multicast-if", "127.0.0.1", "--no-repair", "--fec", "10",
      "--http", "0", "--http-bind", "127.0.0.1", "--publish", "rtsp://a.example:8554/x", "--publish", "rtsps://b.example/y", "--publish-codec", "h264",
      "--publish-token-file", join(dir, "publish-token"), "--record", join(dir, "rec"), "--segment", "30", "--container", "mkv", "--keep-days", "0.5", "--max-size", "20G", "--min-free", "1500",
      "--overlay", "%H:%M {camera}", "--overlay-pos", "bottom-right", "--no-tcp-delivery", "--audio", "pulse:desk mic.monitor", "--audio-bitrate", "96000",
    ];
    const { printed, before, after } = roundTrip(SERVER_COMMAND, argv);
    // Every flag but these is set away from its default, so each row's value is printed and
    // read back: a flag added to the table fails here until it joins the line above.
    const untouched = Object.entries(before.flags).filter(([key, v]) => Bun.deepEquals(v, defaults(SERVER_COMMAND)[key as never]));
    expect(untouched.map(([key]) => key).sort()).toEqual(["config", "help", "listCameras", "printConfig", "token", "version"]);
    // The camera's settings went into its [[source]] table: read back, the camera has every flag as before.
    expect(after.cameras.map((c) => ({ ...c, config: null }))).toEqual(before.cameras.map((c) => ({ ...c, config: null })));
    expect(printed).toContain('\n[[source]]\nsrc = "gst:videotestsrc ! appsink"\nsize = "640x480"\nfps = 12.5\nquality = 55\noverlay = "%H:%M {camera}"\noverlay-pos = "bottom-right"\n');
    // Written the way a person would: sizes with their unit, numbers as numbers.
    expect(printed).toContain('\nmax-size = "20G"\n');
    expect(printed).toContain("\nmax-clients = 7\n");
    expect(printed).toContain('\nmulticast = "239.255.1.2:5000"\n');
    expect(printed).toContain('\naudio = "pulse:desk mic.monitor"\n');
    expect(printed).toContain('\naudio-bitrate = "96k"\n');
    expect(printed).toContain(`\ntoken-file = ${JSON.stringify(tokenFile)}\n`);
    // The token file's path, never the token in it.
    expect(printed).not.toContain("0123456789abcdef");
  });

  test("the client's settings, none left at its default, printed and read back, are the same", () => {
    const dir = tempDir();
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "correct-horse-battery-staple\n", { mode: 0o600 });
    const argv = [
      "10.0.0.7", "1234", "5000", "--classic", "--no-window", "--frames", "100", "--duration", "60", "--stats", join(dir, "s.json"), "--verify",
      "--out", join(dir, "rec"), "--no-record", "--segment", "60", "--container", "mkv", "--keep-days", "3", "--max-size", "1G", "--min-free", "2G",
      "--no-repair", "--max-delay", "20", "--record-delay", "900", "--recv-buffer", "8M", "--connect-timeout", "2.5", "--log", join(dir, "c.log"),
      "--log-max", "1M", "--token-file", tokenFile, "--name", "room 12", "--transport", "tcp", "--fullscreen", "--camera", "desk",
      "--audio-out", `wav:${join(dir, "heard.wav")}`, "--display-log", join(dir, "shown.log"),
    ];
    const { printed, before, after } = roundTrip(CLIENT_COMMAND, argv);
    // As for the server: a flag added to the table fails here until it joins the line above.
    const untouched = Object.entries(before.flags).filter(([key, v]) => Bun.deepEquals(v, defaults(CLIENT_COMMAND, ["h", "1", "0"])[key as never]));
    expect(untouched.map(([key]) => key).sort()).toEqual(["config", "help", "printConfig", "token", "version"]);
    expect(settings(after)).toEqual(settings(before));
    expect(after.operands).toEqual({ host: "10.0.0.7", port: 1234, udpPort: 5000 });
    expect(printed).toStartWith('# lancam client settings, written by `bun client.ts --print-config`.\n');
    expect(printed).toContain('\nhost = "10.0.0.7"\nport = 1234\nudp-port = 5000\n');
    expect(printed).toContain("\n# window = false: do not open a window (also automatic where there is no display)\nwindow = false\n");
    expect(printed).toContain("\n# classic = true: the server is the classroom program");
  });

  test("a token is written <redacted>, never itself, and a file that still says so is refused", () => {
    const token = "correct-horse-battery-staple";
    for (const [cmd, operands] of [[SERVER_COMMAND, []], [CLIENT_COMMAND, ["h", "1", "0"]]] as [Cmd, string[]][]) {
      const printed = printConfig(cmd, run(cmd, [...operands, "--token", token]));
      expect(printed).not.toContain(token);
      expect(printed).toContain('\ntoken = "<redacted>"\n');
      const line = printed.split("\n").indexOf('token = "<redacted>"') + 1;
      const path = configFile(printed);
      expect(refusal(cmd, ["--config", path])).toBe(`invalid ${path} line ${line}: token = "<redacted>": --print-config hid this secret; write the real value`);
    }
    // auto is no secret: it reads back as auto.
    const { after } = roundTrip(SERVER_COMMAND, ["--token", "auto"]);
    expect(after.flags.token as unknown).toBe("auto");
  });

  test("a publish URL's user and password are redacted; one without them is written as it is", () => {
    const printed = printConfig(SERVER_COMMAND, run(SERVER_COMMAND, ["--publish", "rtsp://teacher:s3cret@media.example:8554/classroom", "--publish", "rtsp://open.example/x"]));
    expect(printed).not.toContain("s3cret");
    expect(printed).not.toContain("teacher");
    expect(printed).toContain('\npublish = ["rtsp://<redacted>@media.example:8554/classroom", "rtsp://open.example/x"]\n');
  });

  test("what has no value is a commented line with the flag's placeholder, which changes nothing", () => {
    const printed = printConfig(SERVER_COMMAND, run(SERVER_COMMAND, []));
    expect(printed).toContain("\n# record = DIR\n");
    expect(printed).toContain("\n# http = PORT (default off)\n");
    const client = printConfig(CLIENT_COMMAND, run(CLIENT_COMMAND, ["h", "1", "0"]));
    // 0 frames means no limit: help's words, not a value the flag takes.
    expect(client).toContain("\n# frames = N (default none: run until stopped)\n");
    // Nothing only the command line takes.
    for (const text of [printed, client]) expect(text).not.toMatch(/^#? ?(config|print-config|help|version) = /m);
  });
});

describe("where the keys are", () => {
  test("keys and headers with their lines, past strings, arrays and tables over several lines", () => {
    const text = [
      "# a = 1", // 1
      "port = 9000 # x = 2", // 2
      's = """', // 3
      "fake = 1", // 4
      '"""', // 5
      "list = [", // 6
      '  "a = b", # c = d', // 7
      "  [1, 2],", // 8
      "]", // 9
      "\"quoted key\" = 'lit = 1'", // 10
      "dotted.key = { a = 1, b = [ 2 ] }", // 11
      "", // 12
      "[[source]]", // 13
      "src = 'x'", // 14
      "[table.sub]", // 15
      "k = '''", // 16
      "y = 1'''", // 17
      "last = true", // 18
    ].join("\r\n");
    expect(Bun.TOML.parse(text.replaceAll("\r\n", "\n"))).toBeDefined();
    expect(keyLines(text)).toEqual([
      { line: 2, path: ["port"] },
      { line: 3, path: ["s"] },
      { line: 6, path: ["list"] },
      { line: 10, path: ["quoted key"] },
      { line: 11, path: ["dotted", "key"] },
      { line: 13, path: ["source"], header: "array" },
      { line: 14, path: ["source", "src"] },
      { line: 15, path: ["table", "sub"], header: "table" },
      { line: 16, path: ["table", "sub", "k"] },
      { line: 18, path: ["table", "sub", "last"] },
    ]);
  });

  test("never throws and always ends, whatever the text", () => {
    for (const text of ["[", "[[", "a = [", 'a = "', "a = '''", "= 1", "\u0000\n\u0001 = 2", "a.b. = 1", "x = {{{", "]]]]"]) {
      expect(Array.isArray(keyLines(text))).toBe(true);
    }
  });
});

describe("README", () => {
  test("the Config file section's server file and client file are taken by their programs as they stand", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("\n### Config file\n");
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
    const blocks = [...section.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(2);
    const dir = tempDir();
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "3f0c1d2e4b5a69788796a5b4c3d2e1f0\n", { mode: 0o600 });
    // The token files they name are the lab's; one that exists here stands in for them.
    const withToken = (text: string) => text.replace(/^token-file = .*$/m, `token-file = ${JSON.stringify(tokenFile)}`);
    const server = run(SERVER_COMMAND, ["--config", configFile(withToken(blocks[0]!))]);
    expect(server.flags).toMatchObject({ port: 9999, maxClients: 40, keepDays: 30 });
    // The classroom's two cameras: the board at 1280x720, the desk smaller with the time on it; both at the file's 30 fps.
    expect(cameraSettings(server, "lab-pc")).toEqual([
      { index: 0, name: "board", named: true, spec: { kind: "camera", index: 0 }, size: { width: 1280, height: 720 }, fps: 30, quality: 80, overlay: null },
      {
        index: 1, name: "desk", named: true, spec: { kind: "camera", index: 2 }, size: { width: 640, height: 480 }, fps: 30, quality: 80,
        overlay: { template: "{camera} %F %T", position: "bottom-right", camera: "desk", host: "lab-pc" },
      },
    ]);
    const client = run(CLIENT_COMMAND, ["--config", configFile(withToken(blocks[1]!), "client.toml")]);
    expect(client.operands).toEqual({ host: "192.168.1.5", port: 9999, udpPort: 0 });
    expect(client.flags).toMatchObject({ name: "front desk", camera: "board", keepDays: 14, tokenFile: { path: tokenFile, token: "3f0c1d2e4b5a69788796a5b4c3d2e1f0" } });
  });
});

describe("any text", () => {
  test("is settings or one ConfigError naming a line of the file, never anything else (2000 mangled files, fixed seed)", () => {
    const base = readFileSync(join(ROOT, "scripts/server.toml"), "utf8").replace("/etc/lancam/token", "/nonexistent/token");
    const pieces = ["[", "]", "[[", "]]", "=", '"', "'", '"""', "'''", "{", "}", ",", ".", "#", "\n", "\\", "source", "src", "port", "1e400", "-", "x", "\u0000", "\r\n", "__proto__", "true"];
    const random = prng(21);
    const pick = (n: number) => Math.floor(random() * n);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      let text = base;
      for (let edits = 1 + pick(4); edits > 0; edits--) {
        const at = pick(text.length + 1);
        const cut = pick(3) === 0 ? pick(8) : 0;
        text = text.slice(0, at) + pieces[pick(pieces.length)] + text.slice(at + cut);
      }
      try {
        parseConfigText(SERVER_COMMAND, text, "f.toml");
      } catch (e) {
        if (!(e instanceof ConfigError)) throw new Error(`not a ConfigError for:\n${text}\n${(e as Error).stack}`);
        const line = Number(/^invalid f\.toml line (\d+): ./.exec(e.message)?.[1]);
        expect([e.message, line >= 1 && line <= text.split("\n").length]).toEqual([e.message, true]);
        refused++;
      }
    }
    // The sample names a token file that is not there, so a file is accepted only where a
    // mangle took that line out (a # before it): nearly all are refused, each as above.
    expect(refused).toBeGreaterThan(1900);
  });
});
