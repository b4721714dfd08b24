// Recording end to end: real server and client processes on 127.0.0.1, then ffprobe
// reads back what landed on disk.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { logLine } from "./helpers/log-file.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { filesUnder } from "./helpers/files.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "lancam-rec-e2e-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function startServer(name: string, extra: string[]) {
  const log = join(dir, `${name}.log`);
  const server = spawnBun(["server.ts", "--source", "test", "--port", "0", "--log", log, ...extra]);
  const m = await server.waitFor(/lancam server listening tcp=(\d+)/);
  return { server, port: Number(m[1]), log };
}

describe("recording end to end", () => {
  test("the client's segments hold exactly the frames its stats say it received and recorded", async () => {
    const { server, port } = await startServer("client-rec", ["--size", "640x480", "--fps", "30"]);
    await using _s = server;
    const out = join(dir, "client-out");
    const statsPath = join(dir, "client-rec.json");
    await using client = spawnBun([
      "client.ts", "127.0.0.1", String(port), "0", "--no-window", "--duration", "5", "--segment", "2", "--out", out, "--stats", statsPath,
    ]);
    await expectExit(client, 0);
    const stats = JSON.parse(readFileSync(statsPath, "utf8"));
    const rec = stats.recording;
    expect(rec.framesIn).toBe(stats.framesReceived);
    // Frames that arrive while the recorder opens are held for it, not dropped.
    expect(stats.datagramsDropped.notReady).toBe(0);
    expect(rec.framesNotRecorded).toBe(0);
    expect(rec.framesWritten + rec.dropped + rec.rejected).toBe(rec.framesIn);
    // (How many a busy machine's ffmpeg falls behind on and drops is counted above, not bounded.)
    expect(rec.framesWritten).toBeGreaterThan(0);
    const files = filesUnder(out);
    expect(files.every((f) => /^\d{4}-\d\d-\d\d\/\d\d-\d\d-\d\d(-\d+)?\.avi$/.test(f))).toBe(true); // no partial left
    expect(files.length).toBeGreaterThanOrEqual(3); // 5 s in 2 s segments
    let frames = 0;
    for (const f of files) {
      const p = await probeVideo(join(out, f));
      expect(p).toMatchObject({ codec: "mjpeg", width: 640, height: 480 });
      frames += p.frames!;
    }
    expect(frames).toBe(rec.framesWritten + rec.repeats);
  }, 40_000);

  test("after a clean exit the server's leave line agrees exactly with the viewer's --stats file", async () => {
    const { server, port, log } = await startServer("leave-totals", ["--size", "640x480", "--fps", "30"]);
    await using _s = server;
    const statsPath = join(dir, "leave-totals.json");
    await using client = spawnBun([
      "client.ts", "127.0.0.1", String(port), "0", "--no-window", "--frames", "149", "--out", join(dir, "leave-out"), "--stats", statsPath, "--name", "counted",
    ]);
    await expectExit(client, 0);
    const leaveLine = await logLine(log, /client left /, 10_000, "the server's leave line");
    const fields = Object.fromEntries([...leaveLine.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
    const stats = JSON.parse(readFileSync(statsPath, "utf8"));
    expect(stats.framesReceived).toBe(149);
    expect(fields.reason).toBe("goodbye");
    expect(Number(fields.framesReceived)).toBe(stats.framesReceived);
    // Skipped frames (a server pacing a busy viewer) are in the bye's lost count, apart in the viewer's stats.
    expect(Number(fields.framesLost)).toBe(stats.framesDropped + stats.framesSkipped);
    expect(Number(fields.framesRecorded)).toBe(stats.recording.framesWritten);
    // Every frame is written or counted dropped (a busy machine's ffmpeg may fall behind).
    const rec = stats.recording;
    expect(rec.framesWritten + rec.dropped + rec.rejected).toBe(149);
    expect(rec.framesWritten).toBeGreaterThan(0);
  }, 40_000);

  test("the server records its own source with --record, and finishes the segment on SIGTERM", async () => {
    const out = join(dir, "server-out");
    const { server, log } = await startServer("server-rec", ["--size", "320x240", "--fps", "20", "--record", out, "--container", "mkv", "--segment", "2"]);
    await using _s = server;
    // Wait until the first segment has rotated, so at least two files exist at the end.
    await server.waitFor(/segment finished/, 15_000, "stderr");
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);
    const closed = /recorder closed framesIn=(\d+) framesWritten=(\d+) repeats=(\d+) dropped=(\d+)/.exec(readFileSync(log, "utf8"));
    expect(closed).not.toBeNull();
    const [, framesIn, written, repeats, dropped] = closed!.map(Number);
    expect(written! + dropped!).toBe(framesIn!);
    const files = filesUnder(out);
    expect(files.length).toBeGreaterThanOrEqual(2);
    let frames = 0;
    for (const f of files) {
      expect(f).toMatch(/\.mkv$/);
      const p = await probeVideo(join(out, f));
      expect(p).toMatchObject({ codec: "mjpeg", width: 320, height: 240 });
      frames += p.frames!;
    }
    expect(frames).toBe(written! + repeats!);
  }, 40_000);

  test("Ctrl-C at a terminal (SIGINT to the whole process group) finishes the open segment cleanly", async () => {
    const { server, port } = await startServer("ctrl-c", ["--size", "320x240", "--fps", "15"]);
    await using _s = server;
    const out = join(dir, "ctrl-c-out");
    // Its own process group, like a shell job: the signal goes to every process in it.
    const client = Bun.spawn([process.execPath, "client.ts", "127.0.0.1", String(port), "0", "--no-window", "--out", out], {
      cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe", detached: true,
    });
    try {
      let err = "";
      const reader = (async () => {
        for await (const chunk of client.stderr) err += new TextDecoder().decode(chunk);
      })();
      await until(() => err.includes("INFO [recorder] recording"), 15_000, "the recorder starting");
      // Some frames into the segment: ~6 KB each, and ffmpeg writes in 32 KB blocks.
      const openSize = () => filesUnder(out).filter((f) => f.endsWith(".partial")).reduce((n, f) => n + statSync(join(out, f)).size, 0);
      await until(() => openSize() > 100_000, 15_000, "frames in the open segment");
      process.kill(-client.pid, "SIGINT");
      expect(await client.exited).toBe(0);
      await reader;
      expect(err).toContain("reason=close");
      expect(err).not.toContain("ffmpeg failed");
      expect(err).not.toContain("ffmpeg exited mid-segment");
      const files = filesUnder(out);
      expect(files).toHaveLength(1);
      expect((await probeVideo(join(out, files[0]!))).frames).toBeGreaterThan(5);
    } finally {
      if (client.exitCode === null) client.kill("SIGKILL");
    }
  }, 30_000);

  test("an output folder that cannot be created is a clear error before connecting", async () => {
    const blocker = join(dir, "a-file");
    writeFileSync(blocker, "not a folder");
    await using client = spawnBun(["client.ts", "127.0.0.1", "9", "0", "--no-window", "--out", join(blocker, "rec")]);
    await expectExit(client, 1);
    expect(client.stderr()).toContain(`cannot record into ${join(blocker, "rec")}`);
    expect(client.stderr()).toContain("choose another --out or pass --no-record");
    expect(client.stderr()).not.toContain("cannot connect");
  }, 20_000);
});
