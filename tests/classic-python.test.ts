// The classroom program itself (../shared/seed beside the checkout, run through its shim) against
// lancam's classic pieces: its server with lancam's classic client, and its viewer
// with a lancam server in this process (tests/classic-e2e.test.ts runs real processes).
import { describe, expect, test } from "bun:test";
import { createLogger } from "../lib/log/logger.ts";
import { cv } from "../lib/native/cv.ts";
import { ClassicClient } from "../lib/receive/classic-client.ts";
import { MAX_CLASSIC_DATAGRAM } from "../lib/wire/classic.ts";
import {
  classroomPython,
  classroomSkipReason,
  freeUdpPort,
  noisyCameraJpegs,
  startClassicFront,
  startPythonServer,
  startPythonViewer,
  untilDecoded,
} from "./helpers/classic-python.ts";
import { until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-classroom-");
/** The classroom program is not part of this repository: without it these tests are skipped (said once). */
const noProgram = classroomSkipReason() !== null;
const silent = createLogger("test", []);
/** The classroom server's log lines name a viewer as ('IP', PORT). */
const joinLine = (port: number) => `客户端('127.0.0.1', ${port}) 接入`;
const leaveLine = (port: number) => `客户端('127.0.0.1', ${port}) 退出`;

describe("classroom program", () => {
  test("a Python with OpenCV is installed (scripts/setup.sh --test)", () => {
    expect(classroomPython()).toMatch(/python3$/);
  });
});

describe.skipIf(noProgram)("lancam's classic client on the classroom server", () => {
  test("pictures arrive at the server's rate, decodable; stopping says end and the server logs the leave", async () => {
    const dir = tempDir();
    await using server = await startPythonServer(dir, { fps: 30 });
    const sizes: string[] = [];
    let undecodable = 0;
    let client: ClassicClient | null = await ClassicClient.open({
      host: "127.0.0.1", port: server.port, udpPort: 0, log: silent,
      sinks: [
        (f) => {
          const info = cv().jpegInfo(f.jpeg);
          if (info) sizes.push(`${info.width}x${info.height}`);
          else undecodable++;
        },
      ],
    });
    try {
      const udpPort = client.udpPort;
      await until(() => server.log().includes(joinLine(udpPort)), 5000, "the server logging the join");
      await until(() => client!.stream !== null, 10_000, "the rate measured");
      // One viewer answering at once gets about every picture of the 30 fps camera
      // (less on a busy machine; a stall would cost a whole second).
      expect(client.stream).toMatchObject({ width: 160, height: 90 });
      expect(client.stream!.fpsMillihertz).toBeGreaterThan(15_000);
      expect(client.stream!.fpsMillihertz).toBeLessThan(34_000);
      expect(undecodable).toBe(0);
      expect(new Set(sizes)).toEqual(new Set(["160x90"]));
      expect(client.drops).toEqual({ foreign: 0, notJpeg: 0, wrongSize: 0 });
      expect(client.nudges).toBe(0);
      expect(server.log()).not.toContain(leaveLine(udpPort));
      client.stop();
      expect(await client.ended).toEqual({ reason: "stopped" });
      client = null;
      await until(() => server.log().includes(leaveLine(udpPort)), 5000, "the server logging the leave");
      expect(server.child.stderr()).not.toContain("Traceback");
    } finally {
      await client?.[Symbol.asyncDispose]();
    }
  }, 30_000);
});

describe.skipIf(noProgram)("classroom viewers (harness for the server-side tests)", () => {
  test("on the classroom server: the viewer shows pictures; ESC says end, it exits 0 and the server logs the leave", async () => {
    const dir = tempDir();
    await using server = await startPythonServer(dir);
    const udpPort = await freeUdpPort();
    await using viewer = startPythonViewer(dir, "127.0.0.1", server.port, udpPort);
    await untilDecoded([viewer], 15);
    expect(viewer.lastSize()).toBe("160x90");
    expect(viewer.undecodable()).toBe(0);
    expect(server.log()).toContain(joinLine(udpPort));
    viewer.pressEsc();
    await expectExit(viewer.child, 0);
    expect(viewer.child.stdout()).toMatch(/classroom-viewer esc\n[^]*classroom-viewer done decoded=\d+ written=\d+\n$/);
    expect(viewer.child.stderr()).not.toContain("Traceback");
    await until(() => server.log().includes(leaveLine(udpPort)), 5000, "the server logging the leave");
  }, 30_000);

  test("on a lancam server: pictures fitted to one datagram, end from one viewer ends that one only, a killed one is dropped", async () => {
    const dir = tempDir();
    const jpegs = noisyCameraJpegs(3);
    expect(jpegs.every((j) => j.length > MAX_CLASSIC_DATAGRAM)).toBe(true);
    await using front = await startClassicFront(jpegs, 30);
    const ports = [await freeUdpPort(), await freeUdpPort()];
    await using first = startPythonViewer(dir, "127.0.0.1", front.port, ports[0]!);
    await using second = startPythonViewer(dir, "127.0.0.1", front.port, ports[1]!);
    await untilDecoded([first, second], 20);
    const lines = (what: string) => front.log.filter((l) => l.includes(what) && l.includes(" kind=classic "));
    expect(lines("client joined")).toHaveLength(2);
    for (const v of [first, second]) {
      const [w, h] = v.lastSize()!.split("x").map(Number);
      expect(Math.abs(w! / h! - 16 / 9)).toBeLessThan(0.02);
      expect(w!).toBeLessThan(1280);
      expect(v.undecodable()).toBe(0);
    }
    expect(front.server.stats.classicFitFailures).toBe(0);
    first.pressEsc();
    await expectExit(first.child, 0);
    await until(() => lines("client left").length === 1, 5000, "the leave");
    expect(lines("client left")[0]).toContain(` udp=${ports[0]} reason=end `);
    // The other goes on.
    const before = second.decoded();
    await untilDecoded([second], before + 10);
    second.child.proc.kill("SIGKILL");
    await until(() => front.server.viewerCount === 0, 5000, "the killed viewer dropped");
    expect(lines("client left")[1]).toContain(` udp=${ports[1]} reason=closed `);
  }, 40_000);
});
