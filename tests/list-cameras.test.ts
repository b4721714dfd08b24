// `bun server.ts --list-cameras`: the listing's text from the addon's data, and the whole
// path (flag, addon, V4L2 ioctls) against the fake camera (tests/helpers/fake-v4l2.c,
// preloaded) with the machine's own /dev/video* hidden, so what is printed does not
// depend on the cameras of the machine the tests run on.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cameraListText } from "../lib/capture/camera-list.ts";
import type { CameraDevice, CameraFormat, CameraList, FrameSize } from "../lib/native/cv.ts";
import { buildFakeV4l2, fakeCameraEnv, type FakeCamera } from "./helpers/fake-camera.ts";
import { exitWithin, spawnBun } from "./helpers/process.ts";

const FOOTER = "lancam asks a camera for MJPG where it has it (its JPEG is sent as it is);\n--size and --fps choose among the sizes and rates above\n";

/** A discrete size offered at `fps` (whole frames per second). */
const size = (width: number, height: number, ...fps: number[]): FrameSize => ({
  kind: "discrete", width, height, rates: { kind: "discrete", intervals: fps.map((f) => ({ numerator: 1, denominator: f })) },
});

const format = (fourcc: string, description: string, sizes: FrameSize[]): CameraFormat => ({ fourcc, description, compressed: fourcc === "MJPG", sizes });

const camera = (index: number, formats: CameraFormat[], extra: Partial<Extract<CameraDevice, { error: null }>> = {}): CameraDevice => ({
  path: `/dev/video${index}`, index, error: null, kind: "capture", card: "Fake Camera", driver: "fake-v4l2", bus: "usb-0000:00:14.0-1", inUse: false, formats, ...extra,
});

const list = (...devices: CameraDevice[]): CameraList => ({ devices, lastIndex: 63 });

describe("the listing's text", () => {
  test("a camera: its name, driver and bus, the --source that picks it, one line a format with sizes of the same rates together", () => {
    const text = cameraListText(list(camera(0, [
      format("MJPG", "Motion-JPEG", [size(1280, 720, 30), size(640, 480, 30, 15), size(320, 240, 30, 15)]),
      format("YUYV", "YUYV 4:2:2", [size(640, 480, 30)]),
    ])));
    expect(text).toBe(
      "/dev/video0: Fake Camera (fake-v4l2, usb-0000:00:14.0-1)  use --source camera:0\n" +
        "  MJPG (Motion-JPEG): 1280x720 @ 30 fps; 640x480, 320x240 @ 30, 15 fps\n" +
        "  YUYV (YUYV 4:2:2): 640x480 @ 30 fps\n" +
        FOOTER,
    );
  });

  test("a format too long for one line: one line per group of sizes", () => {
    const sizes = [size(1920, 1080, 30, 25, 20, 15, 10, 5), size(1280, 720, 30, 25, 20, 15, 10), size(800, 600, 30, 20), size(640, 480, 30, 15)];
    const text = cameraListText(list(camera(2, [format("MJPG", "Motion-JPEG", sizes)])));
    expect(text).toBe(
      "/dev/video2: Fake Camera (fake-v4l2, usb-0000:00:14.0-1)  use --source camera:2\n" +
        "  MJPG (Motion-JPEG):\n" +
        "    1920x1080 @ 30, 25, 20, 15, 10, 5 fps\n" +
        "    1280x720 @ 30, 25, 20, 15, 10 fps\n" +
        "    800x600 @ 30, 20 fps\n" +
        "    640x480 @ 30, 15 fps\n" +
        FOOTER,
    );
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
  });

  test("ranges of sizes and rates, NTSC rates, and sizes whose rates the driver does not list", () => {
    const stepwise: FrameSize = { kind: "stepwise", minWidth: 16, maxWidth: 1920, stepWidth: 16, minHeight: 16, maxHeight: 1080, stepHeight: 8 };
    const continuous: FrameSize = { kind: "continuous", minWidth: 1, maxWidth: 4096, stepWidth: 1, minHeight: 1, maxHeight: 2160, stepHeight: 1 };
    const rateRange: FrameSize = {
      kind: "discrete", width: 1920, height: 1080,
      rates: { kind: "continuous", min: { numerator: 1, denominator: 60 }, max: { numerator: 1, denominator: 1 }, step: { numerator: 1, denominator: 1 } },
    };
    const ntsc: FrameSize = { kind: "discrete", width: 720, height: 480, rates: { kind: "discrete", intervals: [{ numerator: 1001, denominator: 30000 }, { numerator: 2, denominator: 15 }] } };
    const unlisted: FrameSize = { kind: "discrete", width: 320, height: 240, rates: { kind: "unknown" } };
    const text = cameraListText(list(camera(1, [
      format("YU12", "Planar YUV 4:2:0", [stepwise]),
      format("BA81", "", [continuous]),
      format("NV12", "Y/UV 4:2:0", [rateRange, ntsc, unlisted]),
      format("GREY", "8-bit Greyscale", []),
    ])));
    expect(text).toBe(
      "/dev/video1: Fake Camera (fake-v4l2, usb-0000:00:14.0-1)  use --source camera:1\n" +
        "  YU12 (Planar YUV 4:2:0): 16x16 to 1920x1080 in steps of 16x8\n" +
        "  BA81: any size from 1x1 to 4096x2160\n" +
        "  NV12 (Y/UV 4:2:0): 1920x1080 @ 1 to 60 fps; 720x480 @ 29.97, 7.5 fps; 320x240\n" +
        "  GREY (8-bit Greyscale): no sizes listed by the driver\n" +
        FOOTER,
    );
  });

  test("devices that could not be opened: the reason and the fix", () => {
    const text = cameraListText(list(
      { path: "/dev/video0", index: 0, error: "EBUSY" },
      { path: "/dev/video1", index: 1, error: "EACCES" },
      { path: "/dev/video2", index: 2, error: "Input/output error" },
      { path: "/dev/video3", index: 3, error: "ENOTTY" },
    ));
    expect(text).toBe(
      "/dev/video0: busy: in use by another program; close it (`fuser -v /dev/video0` names it)\n" +
        "/dev/video1: no permission to open it; add your user to the video group (sudo usermod -aG video $USER, then log in again)\n" +
        "/dev/video2: cannot open it (Input/output error)\n" +
        "/dev/video3: opens, but is not a V4L2 device (ENOTTY)\n",
    );
  });

  test("a camera another program streams from: listed, with what to do before lancam can use it", () => {
    const text = cameraListText(list(camera(0, [format("MJPG", "Motion-JPEG", [size(640, 480, 30)])], { inUse: true })));
    expect(text).toContain("/dev/video0: Fake Camera (fake-v4l2, usb-0000:00:14.0-1)  use --source camera:0\n" +
      "  in use by another program now; close it (`fuser -v /dev/video0` names it) before lancam captures from it\n" +
      "  MJPG (Motion-JPEG): 640x480 @ 30 fps\n");
  });

  test("nodes that are no camera are listed as what they are; with no camera among them, that is said", () => {
    const node = (index: number, kind: "metadata" | "codec" | "output" | "other", card: string, driver: string): CameraDevice => ({
      path: `/dev/video${index}`, index, error: null, kind, card, driver, bus: "", inUse: false, formats: [],
    });
    const text = cameraListText(list(node(1, "metadata", "HD Webcam", "uvcvideo"), node(10, "codec", "bcm2835-codec-decode", "bcm2835-codec"),
      node(20, "output", "Loopback", "v4l2 loopback"), node(30, "other", "", "")));
    expect(text).toBe(
      "/dev/video1: HD Webcam (uvcvideo)  metadata only, no picture (a camera's second node): not a source\n" +
        "/dev/video10: bcm2835-codec-decode (bcm2835-codec)  a codec or converter, not a camera\n" +
        "/dev/video20: Loopback (v4l2 loopback)  a video output, not a camera\n" +
        "/dev/video30: (no name)  not a video capture device\n" +
        "no camera among them; --source test streams a test pattern without one\n",
    );
  });

  test("a multi-planar camera: its formats, and a GStreamer source for an OpenCV that does not take it", () => {
    const text = cameraListText(list(camera(0, [format("NV12", "Y/UV 4:2:0", [size(1920, 1080, 30)])], { kind: "multiplanar" })));
    expect(text.split("\n")[0]).toBe("/dev/video0: Fake Camera (fake-v4l2, usb-0000:00:14.0-1)  multi-planar: --source camera:0 needs an OpenCV whose V4L2 backend takes that; " +
      "else --source 'gst:v4l2src device=/dev/video0 ! videoconvert ! appsink'");
    expect(text).toContain("  NV12 (Y/UV 4:2:0): 1920x1080 @ 30 fps\n");
  });

  test("no device at all: where it looked", () => {
    expect(cameraListText(list())).toBe("no cameras found (looked at /dev/video0..63); --source test streams a test pattern without one\n");
  });
});

// An index no machine running the tests has a real camera at.
const INDEX = 47;

let dir = "";
let shim = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-list-cameras-"));
  shim = buildFakeV4l2(dir);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `bun server.ts --list-cameras` seeing only the fake `camera`: its exit code and output. */
async function listWith(camera: Omit<FakeCamera, "index" | "hideReal">): Promise<{ code: number; stdout: string; stderr: string }> {
  const log = join(dir, "server.log");
  const child = spawnBun(["server.ts", "--list-cameras", "--log", log], fakeCameraEnv(shim, { index: INDEX, hideReal: true, ...camera }));
  const code = await exitWithin(child, 30_000, "bun server.ts --list-cameras");
  // It lists and exits before opening anything, its log included.
  expect(existsSync(log)).toBe(false);
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

describe("bun server.ts --list-cameras on the fake camera", () => {
  test("two formats with several sizes and rates: each format's sizes and rates, as the driver lists them, exit 0", async () => {
    const result = await listWith({ formats: ["MJPG:1280x720@30/15", "MJPG:640x480@30/15", "MJPG:320x240@60/30", "YUYV:640x480@30", "YUYV:320x240@30/15/5"] });
    expect(result).toEqual({
      code: 0,
      stdout:
        `/dev/video${INDEX}: lancam test camera (fake-v4l2, fake:/dev/video${INDEX})  use --source camera:${INDEX}\n` +
        "  MJPG (Motion-JPEG): 1280x720, 640x480 @ 30, 15 fps; 320x240 @ 60, 30 fps\n" +
        "  YUYV (YUYV 4:2:2): 640x480 @ 30 fps; 320x240 @ 30, 15, 5 fps\n" +
        FOOTER,
      stderr: "",
    });
  }, 40_000);

  for (const [what, camera, line] of [
    ["in use by another program", { busy: true }, `/dev/video${INDEX}: busy: in use by another program; close it (\`fuser -v /dev/video${INDEX}\` names it)\n`],
    ["without permission", { denied: true }, `/dev/video${INDEX}: no permission to open it; add your user to the video group (sudo usermod -aG video $USER, then log in again)\n`],
  ] as const) {
    test(`a camera ${what}: the reason and the fix, exit 0`, async () => {
      expect(await listWith({ formats: ["MJPG:640x480"], ...camera })).toEqual({ code: 0, stdout: line, stderr: "" });
    }, 40_000);
  }

  test("a camera's metadata node: listed as no source", async () => {
    expect(await listWith({ formats: ["MJPG:640x480"], metadata: true })).toEqual({
      code: 0,
      stdout: `/dev/video${INDEX}: lancam test camera (fake-v4l2, fake:/dev/video${INDEX})  metadata only, no picture (a camera's second node): not a source\n` +
        "no camera among them; --source test streams a test pattern without one\n",
      stderr: "",
    });
  }, 40_000);

  test("no camera: where it looked, and how to go on without one", async () => {
    expect(await listWith({ formats: [] })).toEqual({
      code: 0,
      stdout: "no cameras found (looked at /dev/video0..63); --source test streams a test pattern without one\n",
      stderr: "",
    });
  }, 40_000);

  test("a camera that a program streams from: listed with its formats, and said to be in use", async () => {
    const camera: FakeCamera = { index: INDEX, formats: ["YUYV:320x240"], hideReal: true };
    const child = spawnBun(["tests/helpers/list-while-streaming.ts", String(INDEX)], fakeCameraEnv(shim, camera));
    expect({ code: await exitWithin(child, 30_000, "the streaming child"), stdout: child.stdout(), stderr: child.stderr() }).toEqual({
      code: 0,
      stdout:
        `/dev/video${INDEX}: lancam test camera (fake-v4l2, fake:/dev/video${INDEX})  use --source camera:${INDEX}\n` +
        `  in use by another program now; close it (\`fuser -v /dev/video${INDEX}\` names it) before lancam captures from it\n` +
        "  YUYV (YUYV 4:2:2): 320x240 @ 30 fps\n" +
        FOOTER,
      stderr: "",
    });
  }, 40_000);

  test("--help names it", async () => {
    const child = spawnBun(["server.ts", "--help"]);
    expect(await exitWithin(child, 30_000, "bun server.ts --help")).toBe(0);
    expect(child.stdout()).toMatch(/\n {2}--list-cameras {7}print each camera \(\/dev\/video\*\) with its formats, sizes and frame\n {23}rates, and the --source that picks it, and exit\n/);
  }, 40_000);
});
