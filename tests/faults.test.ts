// Faults end to end: real server.ts and client.ts processes on 127.0.0.1, killed or
// crowded the way a classroom's machines fail. The server killed under a recording viewer,
// a burst of idle connections at the control port, the viewer's ffmpeg killed mid-segment.
// (A viewer killed with -9 is in stream-e2e.test.ts.) Waits are on printed lines and
// conditions, never on fixed sleeps.
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import { recoverPartial } from "../lib/record/segment-recovery.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import type { SegmentWriterStats } from "../lib/record/segment-writer.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { logLine } from "./helpers/log-file.ts";
import { spawnBun, until, type Child, expectExit } from "./helpers/process.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-faults-");

type Stats = StatsSummary & { recording: SegmentWriterStats | null };

/**
 * A viewer carried on through the fault: frames arrived in every full second of its run, in
 * order, and each frame it counted is in its per-second counts. These tests once asked for
 * 27 fps in every second and 29.5 on average; on the 2-core machine they run on, shared
 * with other suites, 8 viewers with no fault at all fell to 25 in some seconds, and while
 * a neighbour ran a capture benchmark every viewer fell to 2 to 22 fps, fault or not. How
 * many frames a second a loaded machine delivers is for bench/ to measure; a fault that
 * stopped the stream (a second without any frame) or garbled it fails here.
 */
function expectFramesThroughout(s: Stats): void {
  const seconds = fullSeconds(s);
  expect(seconds.length).toBeGreaterThanOrEqual(5);
  expect(seconds.filter((n) => n === 0)).toEqual([]);
  expect(s.framesOutOfOrder).toBe(0);
  expect(s.fpsPerSecond.reduce((a, b) => a + b, 0)).toBe(s.framesReceived);
}

async function startServer(dir: string, name: string, extra: string[]): Promise<{ server: Child; port: number; log: string }> {
  const log = join(dir, `${name}.log`);
  const port = extra.includes("--port") ? [] : ["--port", "0"];
  const server = spawnBun(["server.ts", "--source", "test", "--size", "640x480", "--fps", "30", ...port, "--log", log, ...extra]);
  const m = await server.waitFor(/lancam server listening tcp=(\d+)/);
  return { server, port: Number(m[1]), log };
}

function startViewer(dir: string, port: number, name: string, extra: string[]): { viewer: Child; stats: string } {
  const stats = join(dir, `${name}.json`);
  const viewer = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--stats", stats, "--name", name, ...extra]);
  return { viewer, stats };
}

const readStats = (path: string): Stats => JSON.parse(readFileSync(path, "utf8"));

/** The frames of every full second: the first and last are cut by start and stop. */
const fullSeconds = (s: Stats) => s.fpsPerSecond.slice(1, -1);

/** A TCP port nothing listens on now, so a server can be started on it, killed, and started again on it. */
function freePort(): number {
  const probe = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** The processes `pid` started (all its threads' children), with their command lines. */
function childrenOf(pid: number): { pid: number; cmdline: string[] }[] {
  const out: { pid: number; cmdline: string[] }[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    let kids: string;
    try {
      kids = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch {
      continue;
    }
    for (const k of kids.split(" ").filter(Boolean).map(Number)) {
      try {
        out.push({ pid: k, cmdline: readFileSync(`/proc/${k}/cmdline`, "utf8").split("\0").filter(Boolean) });
      } catch {
        // exited in between
      }
    }
  }
  return out;
}

/** The ffmpeg a viewer's recorder feeds (reading frames on its stdin), or null while there is none. */
function recordingFfmpeg(viewerPid: number): { pid: number; partial: string } | null {
  const c = childrenOf(viewerPid).find((p) => p.cmdline.includes("pipe:0") && p.cmdline.at(-1)!.endsWith(".partial"));
  return c ? { pid: c.pid, partial: c.cmdline.at(-1)! } : null;
}

/** Bytes in a file, 0 while it does not exist (ffmpeg creates its output after the first frame; a finished partial is renamed). */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const occurrences = (text: string, re: RegExp) => text.match(new RegExp(re.source, "g"))?.length ?? 0;

describe("faults", () => {
  test("the server killed with -9 under a recording viewer: the viewer says so, what it recorded plays, and it picks up when the server returns on the same port", async () => {
    const dir = tempDir();
    const out = join(dir, "rec");
    const port = freePort();
    const first = await startServer(dir, "first", ["--port", String(port)]);
    const { viewer, stats } = startViewer(dir, port, "survivor", ["--out", out, "--segment", "2"]);
    await using _v = viewer;
    try {
      await viewer.waitFor(/INFO \[recorder\] segment finished .*reason=/, 15_000, "stderr");
      // Kill it mid-segment, with frames in the open file.
      const partials = () => listFiles(out).filter((f) => f.endsWith(".partial"));
      await until(() => partials().length === 1 && sizeOf(join(out, partials()[0]!)) > 200_000, 10_000, "frames in the open segment");
      first.server.proc.kill("SIGKILL");
      await first.server.exited;
      expect(first.server.proc.signalCode).toBe("SIGKILL");
      const wentAway = await viewer.waitFor(/WARN \[client\] server went away; reconnecting .*\n/, 10_000, "stderr");
      expect(wentAway[0]).toMatch(/reason=\S+ .*retryInSec=/);
      expect(viewer.proc.exitCode).toBeNull();
    } finally {
      await first.server[Symbol.asyncDispose]();
    }

    // While the server is away: finished segments play; the open one, repaired as the
    // next start would repair it after a crash, plays too. A segment rotating at the
    // moment of the kill finishes first.
    await until(() => listFiles(out).filter((f) => f.endsWith(".partial")).length === 1, 10_000, "one open segment");
    const finishedBefore = listFiles(out).filter((f) => f.endsWith(".avi"));
    expect(finishedBefore.length).toBeGreaterThanOrEqual(1);
    for (const f of finishedBefore) {
      const p = await probeVideo(join(out, f));
      expect(p).toMatchObject({ codec: "mjpeg", width: 640, height: 480 });
      expect(p.frames!).toBeGreaterThan(30);
    }
    const partial = listFiles(out).find((f) => f.endsWith(".partial"))!;
    // A copy under the same date folder and hidden name: the viewer still holds the original open.
    const scratch = join(dir, "scratch", basename(dirname(partial)));
    mkdirSync(scratch, { recursive: true });
    const copy = join(scratch, basename(partial));
    copyFileSync(join(out, partial), copy);
    const recovery = await recoverPartial(copy, { ffmpegPath: resolveFfmpeg().path, log: memoryLogger("recorder") });
    expect(recovery.action).toBe("recovered");
    const repaired = await probeVideo(recovery.path!);
    expect(repaired).toMatchObject({ codec: "mjpeg", width: 640, height: 480 });
    expect(repaired.frames!).toBeGreaterThan(5);

    const second = await startServer(dir, "second", ["--port", String(port)]);
    await using _s = second.server;
    await viewer.waitFor(/INFO \[client\] reconnected /, 15_000, "stderr");
    // The segment open across the outage is finished by the first frame after it (a hole
    // of more than 2 s, or past the segment's length), and the next one fills with frames.
    const before = new Set([...finishedBefore, partial.replace(/\/\.([^/]+)\.partial$/, "/$1")].map((f) => join(out, f)));
    const finishedPaths = () => [...viewer.stderr().matchAll(/INFO \[recorder\] segment finished path=(\S+)/g)].map((m) => m[1]!);
    await until(() => finishedPaths().some((p) => !before.has(p)), 10_000, "a segment recorded after the reconnect");
    viewer.proc.kill("SIGTERM");
    await expectExit(viewer, 0);
    expect(viewer.stderr()).not.toMatch(/ERROR |unexpected error/);

    const s = readStats(stats);
    expect(s.reconnects).toBe(1);
    // The server logs the leave once it has read the goodbye, which may come after the exit.
    const leave = await logLine(second.log, /client left /, 10_000, "the viewer's leave in the second server's log");
    expect(leave).toContain("reason=goodbye");
    const sent = Number(/framesSent=(\d+)/.exec(leave!)![1]);
    const receivedAfter = Number(/framesReceived=(\d+)/.exec(leave!)![1]);
    // A 2 s segment finished after the reconnect: about 60 frames sent, and more by the stop.
    expect(sent).toBeGreaterThanOrEqual(50);
    expect(receivedAfter).toBeGreaterThanOrEqual(Math.floor(0.95 * sent));

    // Everything on disk is finished and plays, and holds every frame the recorder wrote.
    const files = listFiles(out);
    expect(files.filter((f) => !f.endsWith(".avi"))).toEqual([]);
    let frames = 0;
    for (const f of files) {
      const p = await probeVideo(join(out, f));
      expect(p).toMatchObject({ codec: "mjpeg", width: 640, height: 480 });
      frames += p.frames!;
    }
    const rec = s.recording!;
    expect(rec.ffmpegFailures).toBe(0);
    expect(rec.framesIn).toBe(s.framesReceived);
    expect(frames).toBe(rec.framesWritten + rec.repeats);
  }, 60_000);

  test("200 connections opened at once and left idle: closed (the oldest at once, the rest at the 2 s hello deadline) and logged in a few lines; the viewer's frames keep coming", async () => {
    const dir = tempDir();
    const { server, port, log } = await startServer(dir, "idle", []);
    await using _s = server;
    const { viewer, stats } = startViewer(dir, port, "watcher", ["--no-record", "--duration", "9"]);
    await using _v = viewer;
    await viewer.waitFor(/INFO \[client\] connected /, 10_000, "stderr");
    await server.waitFor(/client joined .*name=watcher/, 10_000, "stderr");

    const N = 200;
    interface Idle {
      openedAt: number;
      closedAt: number | null;
      received: Uint8Array[];
    }
    const idle: Idle[] = [];
    const socks = await Promise.all(Array.from({ length: N }, () => {
      const me: Idle = { openedAt: performance.now(), closedAt: null, received: [] };
      idle.push(me);
      const closed = () => {
        me.closedAt ??= performance.now();
      };
      return Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: { data: (_s, chunk) => void me.received.push(chunk.slice()), end: closed, close: closed, error: closed },
      });
    }));
    try {
      await until(() => idle.every((c) => c.closedAt !== null), 15_000, "the server to close every idle connection");
    } finally {
      for (const s of socks) s.terminate();
    }

    // One address may hold 16 connections without a hello; each one more evicts the
    // oldest, with a refuse that says why. The 16 left are closed at their deadline.
    const PER_ADDRESS = 16;
    const said = (c: Idle) => {
      const bytes = Buffer.concat(c.received);
      return bytes.length ? new MessageReader().push(bytes) : [];
    };
    const evicted = idle.filter((c) => said(c).some((m) => m.type === "refuse" && m.text === "too many connections without hello from this address"));
    const timedOut = idle.filter((c) => c.received.length === 0);
    expect([evicted.length, timedOut.length]).toEqual([N - PER_ADDRESS, PER_ADDRESS]);
    // The ones left are not closed before their deadline. (How soon after it, and how soon
    // the evicted ones go, is up to the machine's load: the wait above bounds it.)
    for (const c of timedOut) expect(c.closedAt! - c.openedAt).toBeGreaterThanOrEqual(1900);

    // Warnings about one address: the first 5 as they come, then one summary for the
    // rest when its 10 s interval ends: every connection is in the log, in 6 lines.
    const summary = await server.waitFor(/WARN \[server\] connection closed client=127\.0\.0\.1:\d+ reason="no hello within timeout" similar=(\d+)\n/, 15_000, "stderr");
    const shown = server.stderr().match(/WARN \[server\] connection evicted client=127\.0\.0\.1:\d+ reason="too many connections without hello from this address"\n/g) ?? [];
    expect(shown).toHaveLength(5);
    expect(shown.length + Number(summary[1])).toBe(N);
    // Nothing else is warned about (the one line left is "no token"): the lines themselves, so a failure shows them.
    const others = server.stderr().split("\n").filter((l) => / WARN \[server\] /.test(l) && !/ WARN \[server\] (connection evicted|connection closed|no token)/.test(l));
    expect(others).toEqual([]);
    expect(occurrences(server.stderr(), /WARN \[server\] /)).toBe(6 + occurrences(server.stderr(), /WARN \[server\] no token/));

    await expectExit(viewer, 0);
    server.proc.kill("SIGTERM");
    await expectExit(server, 0);
    expect(server.stderr()).toMatch(/INFO \[server\] stopped .*pendingEvicted=184 /);
    expect(readFileSync(log, "utf8")).toContain(`similar=${summary[1]}`);
    const s = readStats(stats);
    console.log(`200 idle connections: viewer fps per second ${s.fpsPerSecond.join(" ")}`);
    expect(viewer.stderr()).not.toMatch(/server went away|unexpected error/);
    expectFramesThroughout(s);
  }, 60_000);

  test("ffmpeg killed with -9 under a recording viewer: the live view goes on, the recorder repairs the segment and starts another, and everything recorded plays", async () => {
    const dir = tempDir();
    const out = join(dir, "rec");
    const { server, port } = await startServer(dir, "ffmpeg-kill", []);
    await using _s = server;
    const { viewer, stats } = startViewer(dir, port, "recorder", ["--out", out, "--segment", "60", "--duration", "9"]);
    await using _v = viewer;
    await viewer.waitFor(/INFO \[recorder\] recording /, 15_000, "stderr");
    let victim: { pid: number; partial: string } | null = null;
    await until(() => (victim = recordingFfmpeg(viewer.proc.pid)) !== null && sizeOf(victim.partial) > 300_000, 15_000, "the recorder's ffmpeg writing frames");
    const dead = victim!;
    process.kill(dead.pid, "SIGKILL");
    let next: { pid: number; partial: string } | null = null;
    // The next frame starts a new segment: the first failure is retried at once (retryInMs=0 below).
    await until(() => (next = recordingFfmpeg(viewer.proc.pid)) !== null && next.pid !== dead.pid, 10_000, "a new ffmpeg for the next segment");
    expect(next!.partial).not.toBe(dead.partial);
    await viewer.waitFor(/ERROR \[recorder\] ffmpeg exited mid-segment; a new segment starts with the next frame .*signal=SIGKILL .*retryInMs=0/, 10_000, "stderr");
    await viewer.waitFor(/INFO \[recorder\] recovered partial segment /, 10_000, "stderr");
    await expectExit(viewer, 0);

    const s = readStats(stats);
    console.log(`ffmpeg killed: viewer fps per second ${s.fpsPerSecond.join(" ")}`);
    expect(viewer.stderr()).not.toMatch(/server went away|unexpected error|frame sink failed/);
    expectFramesThroughout(s);
    const rec = s.recording!;
    expect(rec.ffmpegFailures).toBe(1);
    expect(rec.segmentsClosed).toBe(2);
    expect(rec.framesIn).toBe(s.framesReceived);
    // The frame ffmpeg died holding is counted dropped; no other is lost to the recorder.
    expect(rec.framesWritten + rec.dropped + rec.rejected).toBe(rec.framesIn);
    expect(rec.dropped).toBeLessThanOrEqual(1);

    const files = listFiles(out);
    expect(files.filter((f) => !f.endsWith(".avi"))).toEqual([]);
    expect(files).toHaveLength(2);
    // The repaired segment keeps the name its partial had; the next one, started in the same
    // second, may carry a suffix that sorts before it.
    const repairedPath = join(dirname(dead.partial), basename(dead.partial).replace(/^\.(.+)\.partial$/, "$1"));
    expect(files.map((f) => join(out, f))).toContain(repairedPath);
    const nextPath = files.map((f) => join(out, f)).find((f) => f !== repairedPath)!;
    const probes = [await probeVideo(repairedPath), await probeVideo(nextPath)];
    for (const p of probes) expect(p).toMatchObject({ codec: "mjpeg", width: 640, height: 480 });
    // Killed once its file passed 300 KB (~25 KB frames): the repaired one holds those frames.
    const [repaired, after] = probes.map((p) => p.frames!) as [number, number];
    expect(repaired).toBeGreaterThan(5);
    expect(after).toBeGreaterThan(0); // the rest of the run (how many a busy machine delivers, the checks below account for)
    // What ffmpeg had taken in but not yet written when it died is gone; the rest is there.
    const frames = repaired + after;
    console.log(`ffmpeg killed: repaired ${repaired} + ${after} frames on disk, ${rec.framesWritten} written + ${rec.repeats} repeats, ${rec.dropped} dropped`);
    expect(frames).toBeLessThanOrEqual(rec.framesWritten + rec.repeats);
    expect(frames).toBeGreaterThanOrEqual(rec.framesWritten + rec.repeats - 10);
  }, 60_000);
});
