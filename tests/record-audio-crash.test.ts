import { describe, expect, test } from "bun:test";
import { statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { DEFAULT_AUDIO_FORMAT } from "../lib/wire/audio-packet.ts";
import { SegmentWriter } from "../lib/record/segment-writer.ts";
import { beepOnsets, decodeAudio, median, pictures, streamInfo } from "./helpers/av-sync.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";
import { readLine, until } from "./helpers/process.ts";

const tempDir = tempDirs("lancam-rec-audio-crash-");

const lib = (name: string) => JSON.stringify(join(import.meta.dir, "..", name));

/**
 * A recorder with audio in its own process, fed in real time: 30 fps frames, white at every whole
 * second of capture time, and the test beep's Opus packets 100 ms behind them. Prints its ffmpeg's
 * pid, open partial and bytes per second of video once the second segment is 1.5 s along.
 */
const CHILD = `
import { SegmentWriter } from ${lib("lib/record/segment-writer.ts")};
import { DEFAULT_AUDIO_FORMAT } from ${lib("lib/wire/audio-packet.ts")};
import { silentLogger } from ${lib("lib/log/logger.ts")};
import { jpegFrames } from ${lib("tests/helpers/jpeg-frames.ts")};
import { opusPackets } from ${lib("tests/helpers/opus-packets.ts")};
const [dir, container] = process.argv.slice(2);
const frames = await jpegFrames(30, 320, 240);
const white = new Uint8Array(await new Response(Bun.spawn(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=white:s=320x240", "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"], { stdout: "pipe" }).stdout).arrayBuffer());
const t0 = Math.ceil(Date.now() / 1000) * 1e6;
const packets = await opusPackets({ seconds: 30, startMicros: t0 });
const w = await SegmentWriter.open({ dir, segmentSeconds: 2, container, fps: 30, log: silentLogger, audio: DEFAULT_AUDIO_FORMAT });
let i = 0;
let a = 0;
setInterval(() => {
  const at = t0 + Math.round((i * 1e6) / 30);
  w.write({ seq: i, capturedAt: at, width: 320, height: 240, jpeg: i % 30 === 0 ? white : frames[i % 30] });
  while (a < packets.length && packets[a].capturedAt <= at - 100_000) w.writeAudio(packets[a++]);
  i++;
  if (i === 105) console.log("ready " + w.ffmpegPid + " " + w.openPartial + " " + (white.length + frames.slice(1).reduce((n, f) => n + f.length, 0)));
}, 1000 / 30);
`;

describe("kill -9 of a recorder with audio", () => {
  for (const container of ["mkv", "avi"] as const) {
    test(`${container}: the repaired segment keeps its audio, in sync`, async () => {
      const dir = tempDir();
      const script = join(dir, "child.ts");
      writeFileSync(script, CHILD);
      const out = join(dir, "rec");
      const child = Bun.spawn([process.execPath, script, out, container], { stdout: "pipe", stderr: "pipe" });
      let partial = "";
      try {
        const [, ffmpegPid, path, perSecond] = (await readLine(child.stdout, "ready ", 20_000)).split(" ");
        partial = path!;
        // About 1.3 s of the segment in the file (ffmpeg writes the video once the audio is there too).
        await until(() => statSync(partial).size > 1.3 * Number(perSecond), 20_000, "1.3 s of frames in the partial file");
        // Nothing gets to finish the file: the recorder is stopped, then ffmpeg and the recorder are killed.
        process.kill(child.pid, "SIGSTOP");
        process.kill(Number(ffmpegPid), "SIGKILL");
        process.kill(child.pid, "SIGKILL");
      } finally {
        child.kill("SIGKILL");
      }
      expect(await child.exited).not.toBe(0);

      const log = memoryLogger("recorder");
      const writer = await SegmentWriter.open({ dir: out, segmentSeconds: 2, container, fps: 30, log, audio: DEFAULT_AUDIO_FORMAT });
      await writer.close();
      const repairedName = relative(out, partial).replace(/\/\.([^/]+)\.partial$/, "/$1");
      expect(listFiles(out).filter((f) => !f.includes(".lancam-"))).toContain(repairedName);
      const line = log.lines.find((l) => l.includes("INFO [recorder] recovered partial segment"));
      expect(line).toContain(`audio=${container === "mkv" ? "opus" : "pcm_s16le"}`);

      const path = join(out, repairedName);
      const streams = await streamInfo(path);
      expect(streams.audio).toEqual({ codec: container === "mkv" ? "opus" : "pcm_s16le", channels: 1, sampleRate: 48000 });
      const pics = await pictures(path);
      const audio = await decodeAudio(path);
      const videoEnd = pics.at(-1)!.pts + 1 / 30;
      const audioEnd = audio.startPts + audio.samples.length / 48_000;
      // What ffmpeg had not written yet is lost (it interleaves, so the video waits for the audio, which lags by 0.1 s).
      expect(audioEnd).toBeGreaterThan(0.6);
      expect(audioEnd).toBeLessThanOrEqual(videoEnd + 0.03);
      expect(Math.abs(audio.startPts - pics[0]!.pts)).toBeLessThanOrEqual(0.002);
      const whites = pics.filter((p) => p.mean > 200 && p.pts < audioEnd - 0.15).map((p) => p.pts);
      expect(whites.length).toBeGreaterThanOrEqual(1); // the one at the segment's start, at least
      const onsets = beepOnsets(audio.samples).map((i) => audio.startPts + i / 48_000);
      const offsets = whites.map((w) => onsets.reduce((b, o) => (Math.abs(o - w) < Math.abs(b - w) ? o : b), Infinity) - w);
      console.log(`${container} repaired: ${offsets.length} beeps, offset median ${(median(offsets) * 1000).toFixed(2)} ms, worst ${(Math.max(...offsets.map(Math.abs)) * 1000).toFixed(2)} ms; audio ${audioEnd.toFixed(3)} s of video ${videoEnd.toFixed(3)} s`);
      for (const o of offsets) expect(Math.abs(o)).toBeLessThanOrEqual(0.045);
    }, 60_000);
  }
});
