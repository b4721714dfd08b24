import { beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { cv, renderTestFrame } from "../lib/native/cv.ts";
import { H264Encoder } from "../lib/publish/h264-encoder.ts";
import { TS_PACKET, type TsPiece, TsSplitter } from "../lib/mux/mpegts.ts";
import { Publisher } from "../lib/publish/publisher.ts";
import { Publishers, parsePublishTargets } from "../lib/publish/publishers.ts";
import { rtpJpegProblem } from "../lib/mux/rtp-jpeg.ts";
import { parsePublishUrl, readPublishTokenFile } from "../lib/publish/publish-url.ts";
import { resolveFfmpeg, resolveFfprobe } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { splitJpegs, jpegFrames } from "./helpers/jpeg-frames.ts";
import { freePort, listening, receiver } from "./helpers/rtsp-receiver.ts";
import { type Child, exitWithin, spawnChild, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";

// The receiving end is ffmpeg's own RTSP server mode (a real RTSP implementation, one
// publisher per run); frames come from the native test pattern, as the server's capture makes
// them, with the frame number drawn as a barcode.

const FPS = 30;
const WIDTH = 640;
const HEIGHT = 360;
const USER = "room-4b";
const PASSWORD = "Tr0ub4dor-and-3";
const ffmpeg = resolveFfmpeg().path;
const ffprobe = resolveFfprobe();
const tempDir = tempDirs("lancam-publish-");

/** Distinct frames: more than any test writes, so frame numbers never repeat within a test. */
const PATTERN_FRAMES = 450;
const frames: Uint8Array[] = [];
beforeAll(async () => {
  for (let n = 0; n < PATTERN_FRAMES; n++) frames.push(new Uint8Array(await renderTestFrame(WIDTH, HEIGHT, n, `#${n}`, 80)));
});

/** Frame times of a file, in seconds, as a player decodes them. */
async function frameTimes(path: string): Promise<number[]> {
  const p = Bun.spawn([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`ffprobe failed on ${path}: ${err}`);
  return out.split("\n").filter((l) => l.trim() !== "").map(Number);
}

/**
 * How far the frame times are from the capture rate: each gap should be a whole number of frame
 * intervals (a dropped frame leaves a double one), and no whole second may hold more than
 * fps + 1 (arrival times would bunch up). Fewer is a dropped frame, which a busy machine may
 * cause and the publisher counts: not a timing problem.
 */
function timingProblems(times: number[], fps: number): string[] {
  const interval = 1 / fps;
  const problems: string[] = [];
  for (let i = 1; i < times.length; i++) {
    const gap = times[i]! - times[i - 1]!;
    const n = Math.round(gap / interval);
    // Matroska keeps milliseconds: 33 or 34 ms for 33.3.
    if (n < 1 || Math.abs(gap - n * interval) > 0.0025) problems.push(`gap ${(gap * 1000).toFixed(1)} ms before frame ${i}`);
  }
  for (let s = times[0]!; s + 1 <= times.at(-1)!; s += 1) {
    const count = times.filter((t) => t >= s && t < s + 1).length;
    if (count > fps + 1) problems.push(`${count} frames in the second from ${s.toFixed(3)} s`);
  }
  return problems;
}

/** The frame number the test pattern drew into the first or last frame of a copy-published file. */
async function barcode(path: string, which: "first" | "last"): Promise<number | null> {
  const input = which === "first" ? ["-i", path, "-frames:v", "1"] : ["-sseof", "-0.5", "-i", path];
  const p = Bun.spawn([ffmpeg, "-hide_banner", "-loglevel", "error", ...input, "-c", "copy", "-f", "image2pipe", "pipe:1"], { stdout: "pipe", stderr: "pipe" });
  const jpegs = splitJpegs(new Uint8Array(await new Response(p.stdout).arrayBuffer()));
  await p.exited;
  const jpeg = which === "first" ? jpegs[0] : jpegs.at(-1);
  if (!jpeg) return null;
  const img = cv().decodeJpeg(jpeg);
  return readFrameNumber(img.bgr, img.width, img.height);
}

interface Drive {
  /** Stops writing; resolves when the loop has ended. */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after `count` frames, or stop()). */
  done: Promise<void>;
  /** Each write: when (ms), how long it took (ms), and what it returned. */
  writes: { at: number; ms: number; returned: unknown }[];
  /** Frames written so far. */
  count(): number;
}

/**
 * Writes frames at `fps` in the background. Capture times are exactly 1/fps apart, but each
 * delivery is `jitterMs` early or late in turn, as a busy capture loop would deliver them: only
 * a publisher that sends capture times, not arrival times, gets a steady rate through.
 */
function drive(sink: { write: (f: Frame) => unknown }, source: Uint8Array[], opts: { jitterMs?: number; width?: number; height?: number; count?: number } = {}): Drive {
  const jitter = opts.jitterMs ?? 12;
  const t0 = Date.now() * 1000;
  const start = performance.now() + 20;
  const writes: Drive["writes"] = [];
  let stopped = false;
  let n = 0;
  const loop = (async () => {
    while (!stopped && n < (opts.count ?? Infinity)) {
      const due = start + (n * 1000) / FPS + (n % 2 ? jitter : -jitter);
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      if (stopped) break;
      const frame: Frame = {
        seq: n, capturedAt: t0 + Math.round((n * 1e6) / FPS), width: opts.width ?? WIDTH, height: opts.height ?? HEIGHT, jpeg: source[n % source.length]!,
      };
      const at = performance.now();
      const returned = sink.write(frame);
      writes.push({ at, ms: performance.now() - at, returned });
      n++;
    }
  })();
  return {
    writes,
    done: loop,
    count: () => n,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Nothing that could identify the credentials in what the publisher logged or reports. */
function expectNoSecrets(lines: string[], state: unknown): void {
  const all = lines.join("\n") + JSON.stringify(state);
  for (const secret of [USER, PASSWORD, encodeURIComponent(PASSWORD), Buffer.from(`${USER}:${PASSWORD}`).toString("base64")]) {
    expect(all).not.toContain(secret);
  }
}

describe("publishing to a real RTSP server", () => {
  test("copy: the server gets the JPEG frames as they are, at their size, with their capture times", async () => {
    const port = freePort();
    const out = join(tempDir(), "copy.mkv");
    await using recv = await receiver(port, out);
    const log = memoryLogger("publish");
    const pub = new Publisher({ target: parsePublishUrl(`rtsp://${USER}:${PASSWORD}@127.0.0.1:${port}/classroom`), codec: "copy", fps: FPS, log });
    await drive(pub, frames, { count: 3 * FPS }).done;
    await pub.close();
    await expectExit(recv, 0); // the publisher ended the session; the receiver finished its file

    const s = pub.stats;
    expect(s).toMatchObject({ state: "closed", frames: 3 * FPS, failures: 0, reconnects: 0, rejected: 0, url: `rtsp://***@127.0.0.1:${port}/classroom` });
    expect(s.sent + s.dropped).toBe(s.frames);
    expect(s.published).toBe(s.sent);
    const probe = await probeVideo(out);
    expect({ codec: probe.codec, width: probe.width, height: probe.height }).toEqual({ codec: "mjpeg", width: WIDTH, height: HEIGHT });
    expect(probe.frames).toBe(s.published);
    const times = await frameTimes(out);
    expect(times.length).toBe(s.published);
    expect(timingProblems(times, FPS)).toEqual([]);
    expect(await barcode(out, "first")).toBe(0);
    expect(log.lines.some((l) => / INFO \[publish\] publishing url=rtsp:\/\/\*\*\*@127\.0\.0\.1:\d+\/classroom codec=copy connectMs=\d+$/.test(l))).toBe(true);
    expectNoSecrets(log.lines, s);
  }, 30_000);

  test("h264: any JPEG (here 4:4:4 with optimized tables, which copy refuses) is encoded once, with a keyframe every second", async () => {
    const port = freePort();
    const out = join(tempDir(), "h264.mkv");
    const any = await jpegFrames(60, WIDTH, HEIGHT);
    await using recv = await receiver(port, out);
    const log = memoryLogger("publish");
    const pub = new Publisher({ target: parsePublishUrl(`rtsp://${USER}:${PASSWORD}@127.0.0.1:${port}/classroom`), codec: "h264", fps: FPS, log });
    await drive(pub, any, { count: 3 * FPS }).done;
    await pub.close();
    await expectExit(recv, 0);

    const s = pub.stats;
    const e = pub.encoderStats!;
    expect(e).toMatchObject({ state: "closed", frames: 3 * FPS, restarts: 0, failures: 0, rejected: 0 });
    expect(e.sent + e.dropped).toBe(e.frames);
    expect(e.encoded).toBe(e.sent);
    // The connection takes what the encoder made, from its first keyframe on.
    expect(s).toMatchObject({ state: "closed", frames: e.encoded, failures: 0, rejected: 0 });
    expect(s.sent + s.dropped).toBe(s.frames);
    const probe = await probeVideo(out);
    expect({ codec: probe.codec, width: probe.width, height: probe.height }).toEqual({ codec: "h264", width: WIDTH, height: HEIGHT });
    expect(probe.frames).toBe(s.published);
    expect(s.published).toBeGreaterThan(0); // how many a busy machine's encoder keeps up with is counted above
    expect(timingProblems(await frameTimes(out), FPS)).toEqual([]);
    const keys = await keyframeTimes(out);
    expect(keys[0]).toBe(0);
    for (let i = 1; i < keys.length; i++) expect(keys[i]! - keys[i - 1]!).toBeCloseTo(1, 1);
    expect(keys.length).toBeGreaterThanOrEqual(2);
    expectNoSecrets(log.lines, s);
  }, 30_000);

  test("the receiver stops and starts again: writes never wait, frames meanwhile are dropped and counted, the publisher reconnects with back-off, and the second file plays", async () => {
    const port = freePort();
    const dir = tempDir();
    const log = memoryLogger("publish");
    let recv = await receiver(port, join(dir, "first.mkv"));
    const pub = new Publisher({ target: parsePublishUrl(`rtsp://${USER}:${PASSWORD}@127.0.0.1:${port}/classroom`), codec: "copy", fps: FPS, log });
    const d = drive(pub, frames);
    try {
      await until(() => pub.stats.state === "publishing" && pub.stats.published >= FPS, 10_000, "publishing for a second");

      recv.proc.kill("SIGINT"); // ffmpeg finishes its file and closes the connection
      await recv.exited;
      await until(() => pub.stats.state !== "publishing", 10_000, "the publisher notices");
      const outageFrom = d.writes.length;
      const before = pub.stats;
      // Lost (retry in 0.5 s), then refused while the server is down (retry in 1 s): back-off doubles.
      await until(() => log.lines.some((l) => l.includes("cannot publish; retrying in 1 s")), 10_000, "a refused retry");
      const outage = d.writes.slice(outageFrom);
      const during = pub.stats;
      expect(during.state).toBe("backoff");
      // Every frame is accounted for; those not handed to a connection attempt are dropped.
      expect(during.dropped - before.dropped + during.sent - before.sent).toBe(outage.length);
      // Dropped while backing off. (More than the attempts took, once: but how many frames an
      // attempt takes is how long a busy machine's ffmpeg needs to start and be refused.)
      expect(during.dropped - before.dropped).toBeGreaterThan(0);

      recv = await receiver(port, join(dir, "second.mkv"));
      const publishedBefore = pub.stats.published;
      await until(() => pub.stats.state === "publishing" && pub.stats.published >= publishedBefore + FPS, 15_000, "publishing again for a second");
      await d.stop();
      await pub.close();
      await expectExit(recv, 0);

      // Writes during the outage returned at once, and returned nothing to wait on.
      expect(outage.length).toBeGreaterThan(10);
      expect(outage.every((w) => w.returned === undefined)).toBe(true);
      // (A write that waited on the network would take its timeout; 500 ms leaves room for a
      // busy machine's scheduler, which can hold any write up for tens of ms.)
      const slowest = Math.max(...outage.map((w) => w.ms));
      expect(slowest).toBeLessThan(500);

      const s = pub.stats;
      expect(s.reconnects).toBeGreaterThanOrEqual(2);
      expect(s.failures).toBe(s.reconnects);
      expect(s.droppedOffline).toBeGreaterThan(0);
      expect(s.sent + s.dropped).toBe(s.frames);
      const warnings = log.lines.filter((l) => l.includes(" WARN "));
      expect(warnings[0]).toMatch(/ WARN \[publish\] publishing stopped; retrying in 0\.5 s url=rtsp:\/\/\*\*\*@127\.0\.0\.1:\d+\/classroom code=\d+ /);
      expect(warnings[1]).toMatch(/ WARN \[publish\] cannot publish; retrying in 1 s .*error=".*Connection refused/);
      expect(log.lines.filter((l) => / INFO \[publish\] publishing /.test(l))).toHaveLength(2);
      expect(log.lines.some((l) => / INFO \[publish\] reconnecting .*attempt=2/.test(l))).toBe(true);

      for (const name of ["first.mkv", "second.mkv"]) {
        const probe = await probeVideo(join(dir, name));
        expect({ name, codec: probe.codec, width: probe.width, height: probe.height }).toEqual({ name, codec: "mjpeg", width: WIDTH, height: HEIGHT });
        expect(probe.frames!).toBeGreaterThanOrEqual(FPS);
      }
      // The second file continues the live stream: it starts after the first one ended.
      const lastOfFirst = await barcode(join(dir, "first.mkv"), "last");
      const firstOfSecond = await barcode(join(dir, "second.mkv"), "first");
      expect(lastOfFirst).not.toBeNull();
      expect(firstOfSecond).not.toBeNull();
      expect(firstOfSecond! - lastOfFirst!).toBeGreaterThan(outage.length / 2);
      expectNoSecrets(log.lines, s);
    } finally {
      await d.stop();
      await pub.close();
      await recv[Symbol.asyncDispose]();
    }
  }, 45_000);

  test("credentials from a token file reach the server encoded as it expects, and no log line or state shows them", async () => {
    const requests: string[] = [];
    // A server that asks for Basic credentials and refuses whatever it gets.
    const server = Bun.listen<{ buf: string }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(sock) {
          sock.data = { buf: "" };
        },
        data(sock, chunk) {
          sock.data.buf += chunk.toString("latin1");
          let end: number;
          while ((end = sock.data.buf.indexOf("\r\n\r\n")) >= 0) {
            const req = sock.data.buf.slice(0, end);
            sock.data.buf = sock.data.buf.slice(end + 4);
            requests.push(req);
            const cseq = /^CSeq:\s*(\d+)/im.exec(req)?.[1] ?? "0";
            sock.write(`RTSP/1.0 401 Unauthorized\r\nCSeq: ${cseq}\r\nWWW-Authenticate: Basic realm="lancam"\r\n\r\n`);
          }
        },
      },
    });
    const dir = tempDir();
    const tokenFile = join(dir, "publish-token");
    const password = `p@ss:${PASSWORD}/%`; // every character the URL must escape
    writeFileSync(tokenFile, `${USER}:${password}\n`);
    const log = memoryLogger("publish");
    const [target] = parsePublishTargets([`rtsp://127.0.0.1:${server.port}/classroom`], readPublishTokenFile(tokenFile));
    const pub = new Publisher({ target: target!, codec: "copy", fps: FPS, log });
    const d = drive(pub, frames);
    try {
      await until(() => pub.stats.failures >= 2, 10_000, "two refused attempts");
    } finally {
      await d.stop();
      await pub.close();
      server.stop(true);
    }
    const auth = requests.map((r) => /^Authorization:\s*Basic\s+(\S+)/im.exec(r)?.[1]).filter((a) => a !== undefined);
    expect(auth.length).toBeGreaterThan(0);
    expect(Buffer.from(auth[0]!, "base64").toString()).toBe(`${USER}:${password}`);
    const s = pub.stats;
    expect(s.lastError).toContain("401 Unauthorized");
    expect(log.lines.some((l) => l.includes("401 Unauthorized"))).toBe(true);
    expectNoSecrets(log.lines, s);
    for (const secret of [password, encodeURIComponent(password)]) expect(log.lines.join("\n") + JSON.stringify(s)).not.toContain(secret);
  }, 30_000);
});

/** Times of the keyframes of a file's video stream, in seconds. */
async function keyframeTimes(path: string): Promise<number[]> {
  const p = Bun.spawn([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time,key_frame", "-of", "csv=p=0", path], { stdout: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out.split("\n").map((l) => l.split(",")).filter(([k]) => k === "1").map(([, t]) => Number(t));
}

/** Command lines of this process's children (ffmpeg runs in its own session, but stays our child). */
function childCommands(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // The fields after the command name, which is in parentheses and may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) out.push(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" "));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Noisy JPEGs: H.264 cannot shrink them much, so a slow reader falls behind fast. */
function noisyJpegs(count: number): Uint8Array[] {
  const p = Bun.spawnSync([
    ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${FPS},noise=alls=40:allf=t`,
    "-frames:v", String(count), "-c:v", "mjpeg", "-q:v", "3", "-f", "image2pipe", "pipe:1",
  ]);
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return splitJpegs(new Uint8Array(p.stdout));
}

/** Each frame of a TS stream: its PTS (90 kHz) from the PES header, and whether it is a keyframe. */
function tsFrames(pieces: TsPiece[]): { pts: number; key: boolean }[] {
  return pieces.filter((p) => p.start).map((p) => {
    const pes = p.bytes.subarray(p.bytes.length - TS_PACKET);
    const payload = pes[3]! & 0x20 ? 5 + pes[4]! : 4;
    // 00 00 01 id, length (2), flags (2), header length, then the PTS in 5 bytes with marker bits.
    const b = pes.subarray(payload + 9, payload + 14);
    const pts = (((b[0]! >> 1) & 7) * 2 ** 30) + (b[1]! << 22) + ((b[2]! >> 1) << 15) + (b[3]! << 7) + (b[4]! >> 1);
    return { pts, key: p.key };
  });
}

/** What ffmpeg says decoding `path` from start to end: empty when every frame decodes cleanly. */
async function decodeErrors(path: string): Promise<string> {
  const p = Bun.spawn([ffmpeg, "-hide_banner", "-v", "error", "-i", path, "-f", "null", "-"], { stdout: "ignore", stderr: "pipe" });
  const [err] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return err.trim();
}

/**
 * Writes a stand-in for a target's ffmpeg: a shell script that reports `frame=1` on stdout as
 * ffmpeg's -progress does, then records its input into `dir`/<pid>.mkv (record), never reads it
 * (stall), reads it slowly into `dir`/<pid>.ts (slow); or that says nothing and never reads
 * (silent), or fails at once (fail).
 */
function fakeFfmpeg(dir: string, mode: "record" | "stall" | "silent" | "slow" | "fail"): string {
  const path = join(dir, `fake-ffmpeg-${mode}`);
  const body = {
    record: `echo frame=1\nexec cat > "${dir}/$$.mkv"\n`,
    stall: "echo frame=1\nexec sleep 60\n",
    silent: "exec sleep 60\n",
    // Takes 64 KB twice a second, like a server on a slow link.
    slow: `echo frame=1\nwhile :; do\n  n=$(head -c 65536 | tee -a "${dir}/$$.ts" | wc -c)\n  [ "$n" -gt 0 ] || exit 0\n  sleep 0.5\ndone\n`,
    fail: "echo 'Connection refused' >&2\nexit 1\n",
  }[mode];
  writeFileSync(path, `#!/bin/sh\n${body}`);
  chmodSync(path, 0o755);
  return path;
}

/** JPEGs from ffmpeg's own encoder: one quantization table, optimized Huffman tables unless told not to. */
function ffmpegJpegs(pixFmt: string, huffman: "default" | "optimal"): Uint8Array[] {
  const p = Bun.spawnSync([
    ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `testsrc=size=${WIDTH}x${HEIGHT}:rate=${FPS}`,
    "-frames:v", "10", "-pix_fmt", pixFmt, "-c:v", "mjpeg", "-huffman", huffman, "-f", "image2pipe", "pipe:1",
  ]);
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return splitJpegs(new Uint8Array(p.stdout));
}

/**
 * Publishes `jpegs` with ffmpeg as an RTSP client exactly as the publisher's ffmpeg does (stream
 * copy), into a receiver; the pictures the receiver wrote, and what each side said.
 */
async function throughRtsp(jpegs: Uint8Array[]): Promise<{ received: Uint8Array[]; sender: string; receiver: string }> {
  const port = freePort();
  const out = join(tempDir(), "rtp-jpeg.mkv");
  await using recv = await receiver(port, out);
  const send = Bun.spawn([
    ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-f", "mjpeg", "-framerate", String(FPS), "-i", "pipe:0",
    "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", `rtsp://127.0.0.1:${port}/classroom`,
  ], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  for (const j of jpegs) send.stdin.write(j);
  await send.stdin.end();
  const [stderr] = await Promise.all([new Response(send.stderr).text(), send.exited, recv.exited]);
  const p = Bun.spawn([ffmpeg, "-hide_banner", "-loglevel", "quiet", "-i", out, "-c", "copy", "-f", "image2pipe", "pipe:1"], { stdout: "pipe", stderr: "ignore" });
  const bytes = new Uint8Array(await new Response(p.stdout).arrayBuffer());
  await p.exited; // no file, or no stream in it: nothing came through
  return { received: bytes.length > 0 ? splitJpegs(bytes) : [], sender: stderr, receiver: recv.stderr() };
}

/** True when both decode to the very same pixels. */
function samePicture(a: Uint8Array, b: Uint8Array): boolean {
  const x = cv().decodeJpeg(a);
  const y = cv().decodeJpeg(b);
  return x.width === y.width && x.height === y.height && Buffer.compare(x.bgr, y.bgr) === 0;
}

describe("RTP/JPEG through a real RTSP server", () => {
  test("what the check accepts arrives as the very same pictures without a complaint; what it refuses, ffmpeg drops or the receiver complains about", async () => {
    const samples: { name: string; jpegs: Uint8Array[]; problem: string | null; sender: RegExp; receiver: RegExp | null }[] = [
      { name: "OpenCV 4:2:0", jpegs: frames.slice(0, 10), problem: null, sender: /^$/, receiver: null },
      // ffmpeg's receiver still makes a picture of it, but says every frame is invalid.
      { name: "ffmpeg 4:2:0, standard tables", jpegs: ffmpegJpegs("yuvj420p", "default"), problem: "1 quantization table; RTP/JPEG carries exactly two, 0 (luma) then 1 (chroma)", sender: /suggests two quantization tables, 1 provided/, receiver: /Invalid RTP\/JPEG packet\. Invalid qtable length 64/ },
      { name: "ffmpeg 4:2:0, optimized tables (its default)", jpegs: ffmpegJpegs("yuvj420p", "optimal"), problem: "optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones", sender: /requires standard Huffman tables/, receiver: null },
      { name: "ffmpeg 4:4:4", jpegs: ffmpegJpegs("yuvj444p", "default"), problem: "chroma subsampling 4:4:4 (Y 1x2, Cb 1x2, Cr 1x2); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only", sender: /Unsupported pixel format|chroma blocks/, receiver: null },
    ];
    for (const s of samples) {
      const got = await throughRtsp(s.jpegs);
      const intact = got.received.length === s.jpegs.length && got.received.every((r, i) => samePicture(r, s.jpegs[i]!));
      const complaint = /Invalid RTP\/JPEG|error/i.test(got.receiver);
      expect({ name: s.name, problem: rtpJpegProblem(s.jpegs[0]!), intactWithoutComplaint: intact && !complaint })
        .toEqual({ name: s.name, problem: s.problem, intactWithoutComplaint: s.problem === null });
      expect(got.sender.trim()).toMatch(s.sender);
      if (s.receiver) expect(got.receiver).toMatch(s.receiver);
    }
  }, 40_000);
});

describe("h264 for several targets", () => {
  test("two servers get one encoding; a server that comes up late gets the stream from a keyframe", async () => {
    const [portA, portB] = [freePort(), freePort()];
    const dir = tempDir();
    await using recvA = await receiver(portA, join(dir, "a.mkv"));
    const log = memoryLogger("publish");
    const pubs = new Publishers({
      targets: parsePublishTargets([portA, portB].map((p) => `rtsp://${USER}:${PASSWORD}@127.0.0.1:${p}/classroom`)),
      codec: "h264", fps: FPS, log,
    });
    const d = drive(pubs, frames);
    let recvB: Child | null = null;
    let codeB: number | null = null;
    try {
      await until(() => pubs.stats[0]!.state === "publishing" && pubs.stats[1]!.failures >= 1, 10_000, "A publishing, B refused");
      const x264 = childCommands().filter((c) => c.includes("libx264"));
      expect(x264).toHaveLength(1);
      recvB = await receiver(portB, join(dir, "b.mkv"));
      await until(() => pubs.stats[1]!.state === "publishing" && pubs.stats[1]!.published >= FPS, 15_000, "B publishing for a second");
      expect(childCommands().filter((c) => c.includes("libx264"))).toHaveLength(1);
    } finally {
      await d.stop();
      await pubs.close();
      // B ends by itself once its publisher has gone and it has finished b.mkv; killing it at
      // once (as dispose does) raced that on a busy machine and read as exit 137.
      if (recvB) codeB = await exitWithin(recvB, 20_000, "receiver B after its publisher closed");
    }
    expect(await exitWithin(recvA, 20_000, "receiver A after its publisher closed")).toBe(0);
    expect(codeB).toBe(0);
    const e = pubs.encoder!;
    expect(e).toMatchObject({ state: "closed", frames: d.count(), restarts: 0, failures: 0 });
    const [a, b] = pubs.stats;
    expect(a!.frames).toBe(e.encoded);
    expect(b!.frames).toBe(e.encoded);
    for (const [name, s] of [["a.mkv", a!], ["b.mkv", b!]] as const) {
      const probe = await probeVideo(join(dir, name));
      expect({ name, codec: probe.codec, width: probe.width, height: probe.height }).toEqual({ name, codec: "h264", width: WIDTH, height: HEIGHT });
      expect(probe.frames).toBe(s.published);
      expect(await decodeErrors(join(dir, name))).toBe("");
    }
    expect((await keyframeTimes(join(dir, "b.mkv")))[0]).toBe(0);
    expect(log.lines.filter((l) => l.includes("encoder starting"))).toHaveLength(1);
    expectNoSecrets(log.lines, pubs.stats);
  }, 45_000);

  test("a target that falls behind drops frames and resumes at a keyframe: what it got decodes cleanly", async () => {
    const dir = tempDir();
    const log = memoryLogger("publish");
    await using encoder = new H264Encoder({ fps: FPS, log });
    const pub = new Publisher({ target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "h264", fps: FPS, log, encoder, ffmpegPath: fakeFfmpeg(dir, "slow"), closeTimeoutMs: 500 });
    // Everything the encoder made, to tell the target's drops from the encoder's own.
    const encoded: TsPiece[] = [];
    encoder.subscribe({ piece: (p) => p.start && encoded.push(p), wantsInput: () => false });
    const d = drive(encoder, noisyJpegs(30), { jitterMs: 0 });
    try {
      await until(() => pub.stats.droppedSlow > 0, 10_000, "frames dropped");
      const sentAtFirstDrop = pub.stats.sent;
      // At this rate mostly keyframes get through: each one sent after a drop is a resumption.
      // The stand-in reads what it is sent seconds later: it is to have read some of them.
      await until(() => pub.stats.sent >= sentAtFirstDrop + 6, 15_000, "six resumptions");
    } finally {
      await d.stop();
      await encoder.close();
      await pub.close();
    }
    const recorded = readdirSync(dir).filter((f) => f.endsWith(".ts"));
    expect(recorded.length).toBeGreaterThan(0);
    let gaps = 0;
    for (const f of recorded) {
      // The stand-in was killed mid-read at the end: its last frame may be cut short.
      const pieces = new TsSplitter().push(new Uint8Array(readFileSync(join(dir, f))));
      const whole = pieces.slice(0, pieces.findLastIndex((p) => p.start));
      const got = tsFrames(whole);
      expect(got.length).toBeGreaterThan(3);
      expect(got[0]!.key).toBe(true);
      // Wherever the target skipped some of the encoder's frames, the next one it sent is a keyframe.
      const position = new Map(tsFrames(encoded).map((e, i) => [e.pts, i]));
      for (let i = 1; i < got.length; i++) {
        if (position.get(got[i]!.pts)! !== position.get(got[i - 1]!.pts)! + 1) {
          gaps++;
          expect({ f, frame: i, key: got[i]!.key }).toEqual({ f, frame: i, key: true });
        }
      }
      writeFileSync(join(dir, `whole-${f}`), Buffer.concat(whole.map((p) => p.bytes)));
      expect({ f, errors: await decodeErrors(join(dir, `whole-${f}`)) }).toEqual({ f, errors: "" });
    }
    expect(gaps).toBeGreaterThanOrEqual(2);
    expect(pub.stats.sent + pub.stats.dropped).toBe(pub.stats.frames);
  }, 40_000);

  test("while no target takes the stream the encoder stops, and starts again when one wants it", async () => {
    const dir = tempDir();
    const log = memoryLogger("publish");
    await using encoder = new H264Encoder({ fps: FPS, log, idleStopMs: 200 });
    const pub = new Publisher({
      target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "h264", fps: FPS, log, encoder,
      ffmpegPath: fakeFfmpeg(dir, "fail"), timings: { firstRetryMs: 1500 },
    });
    const d = drive(encoder, frames, { jitterMs: 0 });
    try {
      await until(() => pub.stats.failures >= 2, 15_000, "two attempts");
    } finally {
      await d.stop();
      await pub.close();
    }
    const e = encoder.stats;
    expect(e.droppedIdle).toBeGreaterThan(10);
    expect(e.restarts).toBeGreaterThanOrEqual(1);
    expect(e.failures).toBe(0);
    expect(log.lines.some((l) => / INFO \[publish\] no target is taking the stream; encoding stops until one is idleMs=\d+$/.test(l))).toBe(true);
    expect(log.lines.some((l) => / INFO \[publish\] encoder restarting /.test(l))).toBe(true);
    expect(pub.stats.lastError).toBe("Connection refused");
  }, 30_000);
});

describe("a publisher on its own", () => {
  test("a server that stops reading: frames are dropped as slow without waiting, and after stallMs ffmpeg is replaced", async () => {
    const log = memoryLogger("publish");
    const pub = new Publisher({
      target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "copy", fps: FPS, log,
      ffmpegPath: fakeFfmpeg(tempDir(), "stall"), timings: { stallMs: 400, firstRetryMs: 100 }, closeTimeoutMs: 200,
    });
    const d = drive(pub, frames, { jitterMs: 0 });
    try {
      await until(() => pub.stats.reconnects >= 1 && pub.stats.state === "publishing", 10_000, "replaced after a stall");
    } finally {
      await d.stop();
      await pub.close();
    }
    const s = pub.stats;
    expect(s.droppedSlow).toBeGreaterThan(0);
    expect(s.sent + s.dropped).toBe(s.frames);
    const warnings = log.lines.filter((l) => l.includes(" WARN "));
    expect(warnings[0]).toMatch(/ WARN \[publish\] the server stopped taking the stream; retrying in 0\.1 s .*signal=SIGKILL .*state=publishing waitedMs=(\d+)$/);
    expect(Number(/waitedMs=(\d+)$/.exec(warnings[0]!)![1])).toBeGreaterThanOrEqual(400);
    expect(s.lastError).toMatch(/^the server stopped taking the stream \(waited 0\.\d+ s\)$/);
    expect(Math.max(...d.writes.map((w) => w.ms))).toBeLessThan(500); // never waits (see the outage test)
    // Closing does not hang on an ffmpeg that takes no input either.
    expect(log.lines.some((l) => / WARN \[publish\] ffmpeg did not end in time; killing it .*timeoutMs=200$/.test(l))).toBe(true);
    expect(log.lines.at(-1)).toMatch(/ INFO \[publish\] publisher closed .*state=closed /);
  }, 20_000);

  test("a server that never answers: the attempt is ended after connectTimeoutMs and retried", async () => {
    const log = memoryLogger("publish");
    const pub = new Publisher({
      target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "copy", fps: FPS, log,
      ffmpegPath: fakeFfmpeg(tempDir(), "silent"), timings: { connectTimeoutMs: 300, firstRetryMs: 100 },
    });
    const d = drive(pub, frames, { jitterMs: 0 });
    try {
      await until(() => pub.stats.failures >= 2, 10_000, "two timed-out attempts");
    } finally {
      await d.stop();
      await pub.close();
    }
    const warnings = log.lines.filter((l) => l.includes(" WARN "));
    expect(warnings[0]).toMatch(/ WARN \[publish\] the server did not accept the stream in time; retrying in 0\.1 s .*state=connecting waitedMs=\d+$/);
    expect(warnings[1]).toMatch(/ WARN \[publish\] the server did not accept the stream in time; retrying in 0\.2 s /);
    expect(pub.stats.published).toBe(0);
  }, 20_000);

  test("ffmpeg that cannot be started is retried with back-off, and said so", async () => {
    const log = memoryLogger("publish");
    const pub = new Publisher({
      target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "copy", fps: FPS, log,
      ffmpegPath: join(tempDir(), "no-such-ffmpeg"), timings: { firstRetryMs: 100 },
    });
    const d = drive(pub, frames, { jitterMs: 0 });
    try {
      await until(() => pub.stats.failures >= 2, 10_000, "two failed starts");
    } finally {
      await d.stop();
      await pub.close();
    }
    const errors = log.lines.filter((l) => l.includes(" ERROR [publish] cannot start ffmpeg: "));
    expect(errors[0]).toMatch(/; retrying in 0\.1 s url=/);
    expect(errors[1]).toMatch(/; retrying in 0\.2 s url=/);
    expect(pub.stats.sent + pub.stats.dropped).toBe(pub.stats.frames);
  }, 20_000);

  test("a new frame size restarts the stream at once with the new size, without counting a failure", async () => {
    const dir = tempDir();
    const log = memoryLogger("publish");
    const pub = new Publisher({ target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "copy", fps: FPS, log, ffmpegPath: fakeFfmpeg(dir, "record") });
    const small = [new Uint8Array(await renderTestFrame(320, 240, 1, "small", 80))];
    let d = drive(pub, frames);
    await until(() => pub.stats.sent >= 10, 10_000, "10 frames sent");
    await d.stop();
    d = drive(pub, small, { width: 320, height: 240 });
    await until(() => pub.stats.reconnects === 1 && pub.stats.sent >= 20, 10_000, "10 frames sent at the new size");
    await d.stop();
    await pub.close();
    expect(pub.stats).toMatchObject({ failures: 0, reconnects: 1 });
    expect(log.lines.some((l) => / INFO \[publish\] frame size changed; reconnecting with the new size .*from=640x360 to=320x240/.test(l))).toBe(true);
    const sizes: string[] = [];
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".mkv")).sort((a, b) => Number.parseInt(a) - Number.parseInt(b))) {
      const probe = await probeVideo(join(dir, f));
      sizes.push(`${probe.width}x${probe.height}`);
    }
    expect(sizes).toEqual(["640x360", "320x240"]);
  }, 20_000);

  test("copy refuses frames RTP/JPEG cannot carry: counted, said once with the way out, nothing started", async () => {
    const log = memoryLogger("publish");
    const pub = new Publisher({ target: parsePublishUrl("rtsp://127.0.0.1:9/classroom"), codec: "copy", fps: FPS, log, ffmpegPath: "/bin/false" });
    const bad = await jpegFrames(3, 320, 240);
    for (let i = 0; i < 30; i++) pub.write({ seq: i, capturedAt: i * 33_333, width: 320, height: 240, jpeg: bad[i % 3]! });
    expect(pub.stats).toMatchObject({ state: "idle", frames: 30, rejected: 30, dropped: 30, sent: 0 });
    // ffmpeg's own JPEGs are 4:4:4 with optimized tables: the first problem met is named.
    expect(pub.stats.lastError).toBe("frames rejected: optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones");
    const errors = log.lines.filter((l) => l.includes(" ERROR "));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("frame cannot be published: optimized (non-standard) Huffman tables");
    expect(errors[0]).toContain("; publish with --publish-codec h264, which re-encodes any JPEG");
    await pub.close();
  });

  test("Publishers hands every frame to every target and sums them up", async () => {
    const dir = tempDir();
    const log = memoryLogger("publish");
    await using pubs = new Publishers({
      targets: parsePublishTargets(["rtsp://127.0.0.1:9/a", "rtsp://127.0.0.1:9/b"], { user: USER, password: PASSWORD }),
      codec: "copy", fps: FPS, log, ffmpegPath: fakeFfmpeg(dir, "record"),
    });
    const d = drive(pubs, frames);
    await until(() => pubs.totals.publishing === 2 && pubs.totals.sent >= 20, 10_000, "both targets publishing");
    await d.stop();
    await pubs.close();
    const [a, b] = pubs.stats;
    expect([a!.url, b!.url]).toEqual(["rtsp://***@127.0.0.1:9/a", "rtsp://***@127.0.0.1:9/b"]);
    expect(a!.frames).toBe(d.count());
    expect(b!.frames).toBe(d.count());
    expect(pubs.totals).toEqual({ targets: 2, publishing: 0, sent: a!.sent + b!.sent, dropped: a!.dropped + b!.dropped, reconnects: 0 });
    expect(readdirSync(dir).filter((f) => f.endsWith(".mkv"))).toHaveLength(2);
    expectNoSecrets(log.lines, pubs.stats);
  }, 20_000);
});

