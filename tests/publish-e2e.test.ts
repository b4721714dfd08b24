// server.ts --publish end to end: a real server process pushing to ffmpeg's RTSP server mode
// (a real RTSP implementation) while a real lancam viewer watches over UDP.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { freePort, receiver } from "./helpers/rtsp-receiver.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-publish-e2e-");
const PASSWORD = "s3cret-Pa55";

interface PublishState {
  publish: { url: string; state: string; sent: number; dropped: number; reconnects: number }[];
}

test("the media server stops and comes back mid-stream: the UDP viewer keeps its rate, the server reconnects, both files play, the password is never shown", async () => {
  const dir = tempDir();
  const port = freePort();
  const log = join(dir, "server.log");
  let first = await receiver(port, join(dir, "first.mkv"));
  await using server = spawnBun([
    "server.ts", "--source", "test", "--size", "640x360", "--fps", "30", "--port", "0", "--log", log,
    "--http", "0", "--http-bind", "127.0.0.1", "--publish", `rtsp://lancam:${PASSWORD}@127.0.0.1:${port}/classroom`,
  ]);
  const tcp = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
  const url = (await server.waitFor(/lancam http listening url=(\S+)/))[1]!;
  const statsPath = join(dir, "viewer.json");
  await using viewer = spawnBun(["client.ts", "127.0.0.1", String(tcp), "0", "--no-window", "--no-record", "--duration", "9", "--stats", statsPath]);
  await viewer.waitFor(/receiving udp=/);
  const stateText = async () => await (await fetch(`${url}state`)).text();
  const target = async () => (JSON.parse(await stateText()) as PublishState).publish[0]!;
  await until(async () => (await target()).state === "publishing" && (await target()).sent > 45, 10_000, "publishing for 1.5 s");

  // The media server goes away for a while, then comes back on the same address.
  first.proc.kill("SIGINT");
  await first.exited;
  await until(async () => (await target()).dropped > 15, 10_000, "frames dropped while the server is gone");
  const second = await receiver(port, join(dir, "second.mkv"));
  await until(async () => {
    const t = await target();
    return t.state === "publishing" && t.reconnects >= 1;
  }, 15_000, "publishing again");
  const sentAgain = (await target()).sent;
  await until(async () => (await target()).sent > sentAgain + 45, 10_000, "1.5 s more published");
  const state = await stateText();
  second.proc.kill("SIGINT");
  await second.exited;

  await expectExit(viewer, 0);
  server.proc.kill("SIGTERM");
  await expectExit(server, 0);

  for (const file of ["first.mkv", "second.mkv"]) {
    const p = await probeVideo(join(dir, file));
    expect(p).toMatchObject({ codec: "mjpeg", width: 640, height: 360 });
    expect(p.frames!).toBeGreaterThan(30);
  }
  // The UDP viewer never waited for the publisher: every full second of its run had its frames.
  const stats = JSON.parse(readFileSync(statsPath, "utf8"));
  const seconds: number[] = stats.fpsPerSecond.slice(1, -1);
  expect(seconds.length).toBeGreaterThanOrEqual(6);
  expect(Math.min(...seconds)).toBeGreaterThanOrEqual(25);

  const lines = readFileSync(log, "utf8");
  expect(lines).toContain("rtsp://***@127.0.0.1");
  expect(lines).toMatch(/ stopped .*publishTargets=1 .*publishReconnects=[1-9]/);
  for (const text of [lines, server.stdout(), server.stderr(), state]) expect(text).not.toContain(PASSWORD);
}, 60_000);
