// Several cameras from one server, as the user gives them: --source NAME=SRC on the command
// line, [[source]] tables in a config file, and what --print-config writes of them.
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../lib/app/cli.ts";
import { cameraSettings, type CameraSetting } from "../lib/app/cameras.ts";
import { configLoader } from "../lib/app/config-load.ts";
import { parseCommandLine } from "../lib/app/flags.ts";
import { printConfig } from "../lib/app/print-config.ts";
import { SERVER_COMMAND } from "../lib/app/server-flags.ts";
import { cameraSourceSpelling, parseCameraSource } from "../lib/app/source-flag.ts";
import type { SourceSpec } from "../lib/capture/capture.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-cameras-");

/** `text` in a file named server.toml in a new folder; its path. */
function configFile(text: string): string {
  const path = join(tempDir(), "server.toml");
  writeFileSync(path, text);
  return path;
}

/** The server's run for `argv`, a config file read where --config names one. */
function run(argv: string[]) {
  const cli = parseCommandLine(SERVER_COMMAND, argv, configLoader(SERVER_COMMAND));
  if (cli.action !== "run") throw new Error(`expected a run, got ${cli.action}`);
  return cli;
}

/** The usage error `argv` is refused with (exit 2). */
function refusal(argv: string[]): string {
  try {
    run(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`no usage error for ${argv.join(" ")}`);
}

/** The cameras `argv` gives, as the server opens them. */
const cameras = (argv: string[]): CameraSetting[] => cameraSettings(run(argv), "lab-pc");

/** Each camera's name and what it captures, the way --source writes it. */
const named = (argv: string[]) => cameras(argv).map((c) => `${c.name}:${cameraSourceSpelling({ name: null, spec: c.spec })}`);

describe("--source NAME=SRC", () => {
  test("text before the first = is a name unless it holds : or /", () => {
    const cases: [string, string | null, SourceSpec][] = [
      ["board=camera:0", "board", { kind: "camera", index: 0 }],
      ["test", null, { kind: "test" }],
      ["camera:2", null, { kind: "camera", index: 2 }],
      // A pipeline's own = come after gst:.
      ["gst:videotestsrc pattern=ball ! videoconvert ! appsink", null, { kind: "gst", pipeline: "videotestsrc pattern=ball ! videoconvert ! appsink" }],
      ["desk=gst:videotestsrc pattern=ball ! appsink", "desk", { kind: "gst", pipeline: "videotestsrc pattern=ball ! appsink" }],
      ["clip=lesson.mp4", "clip", { kind: "file", path: "lesson.mp4" }],
      // A file whose name has =: after a / or behind file:.
      ["./a=b.mp4", null, { kind: "file", path: "./a=b.mp4" }],
      ["/videos/week=3.mp4", null, { kind: "file", path: "/videos/week=3.mp4" }],
      ["file:a=b.mp4", null, { kind: "file", path: "a=b.mp4" }],
      ["hall_2-B=file:x=y.mkv", "hall_2-B", { kind: "file", path: "x=y.mkv" }],
    ];
    for (const [raw, name, spec] of cases) {
      const camera = parseCameraSource(raw);
      expect([raw, camera]).toEqual([raw, { name, spec }]);
      // Written back, it reads the same.
      expect(parseCameraSource(cameraSourceSpelling(camera))).toEqual(camera);
    }
  });

  test("a name that breaks the rule is refused, never taken as part of a path", () => {
    const cases: [string, string][] = [
      ["1cam=test", 'invalid --source=1cam=test: camera name "1cam" starts with a digit; numbers already call cameras by their place (0, 1, ...)'],
      ["my.cam=test", 'invalid --source=my.cam=test: camera name "my.cam" is not allowed: a letter, then up to 31 letters, digits, _ or -'],
      ["=test", "invalid --source==test: a camera name cannot be empty"],
      ["board=", "invalid --source=board=: expected NAME=SRC with SRC camera:N, test, gst:PIPELINE or a video file path"],
      ["board=camera:x", "invalid --source=camera:x: expected camera:N with N a camera index 0..9999"],
    ];
    for (const [raw, message] of cases) {
      // Where a file was meant, the message says how to write it.
      const hint = message.includes("camera name") ? " (text before = names the camera; write a file whose name has = as ./PATH or file:PATH)" : "";
      expect(refusal(["--source", raw])).toBe(message + hint);
    }
  });
});

describe("cameras on the command line", () => {
  test("numbered from 0 in the order given; one without a name is called by its number; none given is camera:0", () => {
    expect(named(["--source", "board=camera:0", "--source", "desk=camera:2", "--source", "test"])).toEqual(["board:camera:0", "desk:camera:2", "2:test"]);
    expect(cameras(["--source", "board=camera:0", "--source", "test"]).map((c) => [c.index, c.named])).toEqual([[0, true], [1, false]]);
    expect(cameras([])).toEqual([{ index: 0, name: "0", named: false, spec: { kind: "camera", index: 0 }, size: undefined, fps: undefined, quality: 80, overlay: null }]);
  });

  test("--size, --fps, --quality and --overlay are for every camera; {camera} is each one's name", () => {
    const all = cameras(["--source", "board=camera:0", "--source", "test", "--size", "640x480", "--fps", "15", "--quality", "60", "--overlay", "{camera} %T", "--overlay-pos", "top-right"]);
    expect(all.map(({ size, fps, quality }) => ({ size, fps, quality }))).toEqual([
      { size: { width: 640, height: 480 }, fps: 15, quality: 60 },
      { size: { width: 640, height: 480 }, fps: 15, quality: 60 },
    ]);
    expect(all.map((c) => c.overlay)).toEqual([
      { template: "{camera} %T", position: "top-right", camera: "board", host: "lab-pc" },
      { template: "{camera} %T", position: "top-right", camera: "1", host: "lab-pc" },
    ]);
  });

  test("eight at most, each name once: exit 2 naming the cameras", () => {
    const nine = Array.from({ length: 9 }, (_, i) => ["--source", `camera:${i}`]).flat();
    expect(refusal(nine)).toBe("invalid --source: 9 cameras; a server has at most 8");
    expect(cameras(nine.slice(0, 16))).toHaveLength(8);
    expect(refusal(["--source", "board=camera:0", "--source", "test", "--source", "board=camera:2"]))
      .toBe("invalid --source: cameras 0 (board=camera:0) and 2 (board=camera:2) are both named board; give each camera its own name");
  });
});

describe("cameras in a config file", () => {
  const classroom = [
    "fps = 20", // 1
    'overlay = "%T"', // 2
    "", // 3
    "[[source]]", // 4
    'name = "board"', // 5
    'src = "camera:0"', // 6
    'size = "1280x720"', // 7
    "", // 8
    "[[source]]", // 9
    'src = "camera:2"', // 10
    'size = "640x480"', // 11
    "fps = 10", // 12
    "quality = 60", // 13
    'overlay-pos = "bottom-right"', // 14
    "", // 15
  ].join("\n");

  test("each camera: its table's keys, else the top of the file, else the defaults", () => {
    expect(cameras(["--config", configFile(classroom)])).toEqual([
      { index: 0, name: "board", named: true, spec: { kind: "camera", index: 0 }, size: { width: 1280, height: 720 }, fps: 20, quality: 80, overlay: { template: "%T", position: "top-left", camera: "board", host: "lab-pc" } },
      { index: 1, name: "1", named: false, spec: { kind: "camera", index: 2 }, size: { width: 640, height: 480 }, fps: 10, quality: 60, overlay: { template: "%T", position: "bottom-right", camera: "1", host: "lab-pc" } },
    ]);
  });

  test("a flag on the command line is for every camera, over the tables and the top of the file", () => {
    const all = cameras(["--config", configFile(classroom), "--fps", "25", "--overlay-pos", "top-right"]);
    expect(all.map((c) => [c.fps, c.overlay?.position, c.size?.width, c.quality])).toEqual([[25, "top-right", 1280, 80], [25, "top-right", 640, 60]]);
  });

  test("--source on the command line replaces the file's cameras and their own keys; the top of the file still counts", () => {
    const all = cameras(["--config", configFile(classroom), "--source", "hall=test"]);
    expect(all).toEqual([{ index: 0, name: "hall", named: true, spec: { kind: "test" }, size: undefined, fps: 20, quality: 80, overlay: { template: "%T", position: "top-left", camera: "hall", host: "lab-pc" } }]);
  });

  test("source at the top of the file takes what --source takes, a list for several", () => {
    expect(named(["--config", configFile('source = ["board=camera:0", "test"]\n')])).toEqual(["board:camera:0", "1:test"]);
    expect(named(["--config", configFile('source = "desk=camera:2"\n')])).toEqual(["desk:camera:2"]);
    // src is what --source takes, NAME= too.
    expect(named(["--config", configFile('[[source]]\nsrc = "desk=camera:2"\n[[source]]\nsrc = "./a=b.mp4"\n')])).toEqual(["desk:camera:2", "1:file:./a=b.mp4"]);
  });

  test("a bad camera is exit 2, naming the file, the line, the key and the camera", () => {
    const eight = Array.from({ length: 8 }, (_, i) => `[[source]]\nsrc = "camera:${i}"\n`).join("");
    const cases: [string, string][] = [
      [`${eight}[[source]]\nsrc = "test"\n`, "line 17: a 9th [[source]]: a server has at most 8 cameras"],
      ['[[source]]\nname = "board"\nsrc = "camera:0"\n\n[[source]]\nsrc = "camera:2"\nname = "board"\n', 'line 7: [[source]] (camera 1) name = "board": camera 0 (line 2) is named board too; give each camera its own name'],
      ['[[source]]\nsrc = "board=camera:0"\n[[source]]\nsrc = "board=camera:2"\n', 'line 4: [[source]] (camera 1) src = "board=camera:2": camera 0 (line 2) is named board too; give each camera its own name'],
      ['[[source]]\nsrc = "test"\n[[source]]\nname = "2nd"\nsrc = "test"\n', 'line 4: [[source]] (camera 1) name = "2nd": camera name "2nd" starts with a digit; numbers already call cameras by their place (0, 1, ...)'],
      ['[[source]]\nname = 3\nsrc = "test"\n', 'line 2: [[source]] (camera 0) name = 3: wrong type: expected text, e.g. name = "board"'],
      ['[[source]]\nsrc = "test"\n\n[[source]]\nsrc = "test"\nloop = true\n', "line 6: unknown key loop in [[source]] (camera 1); it takes name, src, size, fps, quality, overlay, overlay-pos"],
      ['[[source]]\nsrc = "test"\n[[source]]\nsrc = "test"\nsize = "640x481"\n', 'line 5: [[source]] (camera 1) size = "640x481": expected WIDTHxHEIGHT with even sides, 16x16..7680x4320'],
      ['[[source]]\nsrc = "test"\n[[source]]\nname = "desk"\nsrc = "cam=camera:1"\n', 'line 5: [[source]] (camera 1) src = "cam=camera:1": names the camera (cam=) as name does; give its name once'],
      ['[[source]]\nsrc = ["test", "camera:1"]\n', 'line 2: [[source]] (camera 0) src = ["test", "camera:1"]: wrong type: expected one value for --source [NAME=]SRC, not a list'],
      ['source = ["a=test", "a=camera:1"]\n', 'line 1: source = ["a=test", "a=camera:1"]: cameras 0 (a=test) and 1 (a=camera:1) are both named a; give each camera its own name'],
    ];
    for (const [text, message] of cases) {
      const path = configFile(text);
      expect(refusal(["--config", path])).toBe(`invalid ${path} ${message}`);
    }
  });
});

describe("--print-config with several cameras", () => {
  /** `argv`'s settings printed, then read back through --config. */
  function roundTrip(argv: string[]): { printed: string; before: CameraSetting[]; after: CameraSetting[] } {
    const printed = printConfig(SERVER_COMMAND, run(argv));
    return { printed, before: cameras(argv), after: cameras(["--config", configFile(printed)]) };
  }

  test("one [[source]] table per camera, named where it has a name, reads back as the same cameras", () => {
    const { printed, before, after } = roundTrip(["--source", "board=camera:0", "--source", "gst:videotestsrc pattern=ball ! appsink", "--size", "640x480", "--overlay", "{camera}"]);
    expect(after).toEqual(before);
    expect(printed).toContain([
      "[[source]]", 'name = "board"', 'src = "camera:0"', 'size = "640x480"', "# fps = N", "quality = 80", 'overlay = "{camera}"', 'overlay-pos = "top-left"', "",
      "[[source]]", 'src = "gst:videotestsrc pattern=ball ! appsink"', 'size = "640x480"',
    ].join("\n"));
    // Each setting once: what a table holds is not repeated at the top.
    expect(printed.slice(0, printed.indexOf("[[source]]"))).not.toMatch(/^(source|size|fps|quality|overlay|overlay-pos) = /m);
  });

  test("a file's cameras, each with settings of its own, printed and read back, are the same", () => {
    const file = configFile('fps = 20\n[[source]]\nname = "board"\nsrc = "camera:0"\nsize = "1280x720"\n[[source]]\nsrc = "camera:2"\nfps = 10\nquality = 60\noverlay = "%T"\n');
    const { before, after } = roundTrip(["--config", file]);
    expect(before.map((c) => [c.name, c.fps, c.quality, c.overlay?.template])).toEqual([["board", 20, 80, undefined], ["1", 10, 60, "%T"]]);
    expect(after).toEqual(before);
  });
});
