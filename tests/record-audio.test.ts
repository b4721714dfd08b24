import { beforeAll, describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { DEFAULT_AUDIO_FORMAT, type AudioPacket } from "../lib/wire/audio-packet.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { type SegmentInfo, SegmentWriter, type SegmentWriterStats } from "../lib/record/segment-writer.ts";
import { beepOnsets, decodeAudio, median, pictures, streamInfo } from "./helpers/av-sync.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { prng } from "./helpers/prng.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-rec-audio-");

const FPS = 30;
const INTERVAL = 1_000_000 / FPS;
const W = 320;
const H = 240;
const SECONDS = 7;
/** 2025-01-02 03:04:05 local time, in µs: a whole second, so frame 0, 30, 60 ... are white. */
const T0 = new Date(2025, 0, 2, 3, 4, 5).getTime() * 1000;
/** The audio's 20 ms packets start 7 ms off the frames' grid, as two capture clocks would. */
const GRID_OFFSET = 7_000;
/** Audio starts a second before the first frame (that second is not recorded). */
const AUDIO_START = T0 - 1_000_000 + GRID_OFFSET;
/** Most a beep may start away from its white frame. */
const MAX_OFFSET_SEC = 0.045;

let dark: Uint8Array[] = [];
let white: Uint8Array = new Uint8Array(0);
let packets: AudioPacket[] = [];

beforeAll(async () => {
  dark = await jpegFrames(30, W, H, FPS);
  const proc = Bun.spawn([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `color=white:s=${W}x${H}`, "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1",
  ], { stdout: "pipe" });
  white = await new Response(proc.stdout).bytes();
  // The test beep (1 kHz for 100 ms) at every whole second of capture time.
  const off = ((1_000_000 - GRID_OFFSET) / 1e6).toFixed(6);
  packets = await opusPackets({ seconds: SECONDS + 2, startMicros: AUDIO_START, expr: `if(lt(mod(t+${1 - Number(off)}\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)` });
});

const frameAt = (i: number) => T0 + Math.round(i * INTERVAL);
const frameCount = SECONDS * FPS;

interface Run {
  infos: SegmentInfo[];
  stats: SegmentWriterStats;
  /** The packets handed to writeAudio. */
  fed: AudioPacket[];
}

interface Feed {
  /** Audio reaches the recorder this much later (negative: earlier) than frames of the same capture time. */
  audioLagMicros?: number;
  /** Packets that never come. */
  lost?: (p: AudioPacket) => boolean;
  /** Called before the frame at capture time `at` is written; may wait (e.g. to look at the open partial). */
  beforeFrame?: (writer: SegmentWriter, i: number) => Promise<void>;
}

/** Records SECONDS of frames and the packets, in arrival order, into 2 s segments, and closes. */
async function record(container: "avi" | "mkv", feed: Feed = {}): Promise<Run> {
  const infos: SegmentInfo[] = [];
  const writer = await SegmentWriter.open({
    dir: tempDir(), segmentSeconds: 2, container, fps: FPS, log: memoryLogger("recorder"), audio: DEFAULT_AUDIO_FORMAT, onSegment: (i) => infos.push(i),
  });
  const fed = packets.filter((p) => !feed.lost?.(p));
  const lag = feed.audioLagMicros ?? 0;
  type Ev = { at: number; frame?: number; packet?: AudioPacket };
  const events: Ev[] = [];
  for (let i = 0; i < frameCount; i++) events.push({ at: frameAt(i), frame: i });
  for (const p of fed) events.push({ at: p.capturedAt + lag, packet: p });
  events.sort((a, b) => a.at - b.at);
  for (const e of events) {
    if (e.packet) {
      writer.writeAudio(e.packet);
      continue;
    }
    const i = e.frame!;
    await feed.beforeFrame?.(writer, i);
    await writer.whenWritable();
    writer.write({ seq: i, capturedAt: frameAt(i), width: W, height: H, jpeg: i % FPS === 0 ? white : dark[i % dark.length]! });
  }
  await writer.close();
  infos.sort((a, b) => a.startedAt - b.startedAt);
  return { infos, stats: { ...writer.stats }, fed };
}

interface Checked {
  /** Beep onset minus white frame time, one per white frame, seconds. */
  offsets: number[];
  /** Decoded (played) samples over all segments. */
  played: number;
  /** Capture time where the last segment's audio ends, µs. */
  audioEnd: number;
}

/** Checks every segment of a run: both streams, sync of each beep, durations, continuity at boundaries. */
async function check(run: Run, container: "avi" | "mkv"): Promise<Checked> {
  const offsets: number[] = [];
  let played = 0;
  const { infos } = run;
  expect(infos.map((i) => (i.startedAt - T0) / 1e6)).toEqual([0, 2, 4, 6]);
  let prevAudioEnd: number | null = null;
  for (const [k, info] of infos.entries()) {
    const where = `segment ${k} (${info.path})`;
    const streams = await streamInfo(info.path);
    expect({ where, ...streams }).toEqual({
      where,
      video: { codec: "mjpeg", frames: info.frames + info.repeats },
      audio: { codec: container === "mkv" ? "opus" : "pcm_s16le", channels: 1, sampleRate: 48000 },
    });
    const pics = await pictures(info.path);
    const audio = await decodeAudio(info.path);
    played += audio.samples.length;
    const videoStart = pics[0]!.pts;
    const videoEnd = pics.at(-1)!.pts + 1 / FPS;
    const audioEnd = audio.startPts + audio.samples.length / 48_000;
    // The audio starts with the video and lasts as long (to within one 20 ms packet).
    expect({ where, start: Math.abs(audio.startPts - videoStart) <= 0.002 }).toEqual({ where, start: true });
    expect({ where, end: Math.abs(audioEnd - videoEnd) <= 0.021 }).toEqual({ where, end: true });
    // Continuous from segment to segment: this one's audio starts where the previous one's ended.
    if (prevAudioEnd !== null) expect({ where, gap: Math.abs(prevAudioEnd - info.startedAt) <= 20_500 }).toEqual({ where, gap: true });
    prevAudioEnd = info.startedAt + (audioEnd - videoStart) * 1e6;

    const whites = pics.filter((p) => p.mean > 200).map((p) => p.pts);
    const expectedWhites = Math.ceil(info.durationSec - 1e-6);
    expect({ where, whites: whites.length }).toEqual({ where, whites: expectedWhites });
    const onsets = beepOnsets(audio.samples).map((i) => audio.startPts + i / 48_000);
    for (const w of whites) {
      const nearest = onsets.reduce((best, o) => (Math.abs(o - w) < Math.abs(best - w) ? o : best), Number.POSITIVE_INFINITY);
      offsets.push(nearest - w);
    }
  }
  return { offsets, played, audioEnd: prevAudioEnd! };
}

function report(name: string, offsets: number[]): void {
  const ms = offsets.map((o) => o * 1000);
  const worst = ms.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0);
  console.log(`${name}: ${ms.length} beeps, offset median ${median(ms).toFixed(2)} ms, worst ${worst.toFixed(2)} ms [${ms.map((m) => m.toFixed(1)).join(" ")}]`);
}

/** Packets whose capture time falls in the recorded span (first frame to the end of the last). */
const inSpan = (ps: AudioPacket[]) => ps.filter((p) => p.capturedAt >= T0 && p.capturedAt < frameAt(frameCount - 1) + INTERVAL);

describe("recording with audio", () => {
  for (const container of ["mkv", "avi"] as const) {
    for (const lagMs of [150, -150]) {
      test(`${container}, audio ${lagMs > 0 ? "late" : "early"} by ${Math.abs(lagMs)} ms: every segment has its audio, each beep on its white frame, nothing lost at boundaries`, async () => {
        const run = await record(container, { audioLagMicros: lagMs * 1000 });
        const { offsets, played, audioEnd } = await check(run, container);
        report(`${container} lag ${lagMs} ms`, offsets);
        expect(offsets.length).toBe(SECONDS);
        for (const o of offsets) expect(Math.abs(o)).toBeLessThanOrEqual(MAX_OFFSET_SEC);
        // Every packet of the recorded span is in exactly one segment; together the segments play
        // the span once, give or take the part of a packet that spans a boundary.
        const s = run.stats;
        expect(s.audioWritten).toBe(inSpan(run.fed).length);
        expect(s.audioIn).toBe(run.fed.length);
        expect(s.audioWritten + s.audioDropped).toBe(s.audioIn);
        expect([s.audioConcealed, s.audioRejected, s.audioSilenceMs]).toEqual([0, 0, 0]);
        const overlap = played / 48_000 - (audioEnd - T0) / 1e6;
        expect(overlap).toBeGreaterThanOrEqual(-0.0015);
        expect(overlap).toBeLessThanOrEqual((run.infos.length - 1) * 0.02);
        expect([s.dropped, s.framesWritten]).toEqual([0, frameCount]);
      }, 60_000);
    }

    test(`${container}: with 5 % of the packets lost, later audio keeps its place (concealed)`, async () => {
      const rnd = prng(7);
      const lost = new Set(packets.filter(() => rnd() < 0.05).map((p) => p.seq));
      const run = await record(container, { audioLagMicros: 60_000, lost: (p) => lost.has(p.seq) });
      const { offsets, played, audioEnd } = await check(run, container);
      report(`${container} 5 % lost`, offsets);
      expect(offsets.length).toBe(SECONDS);
      for (const o of offsets) expect(Math.abs(o)).toBeLessThanOrEqual(MAX_OFFSET_SEC);
      const s = run.stats;
      const lostInSpan = inSpan(packets).filter((p) => lost.has(p.seq)).length;
      expect(lostInSpan).toBeGreaterThan(10);
      expect(s.audioWritten).toBe(inSpan(run.fed).length);
      // A loss right at a segment's start may be silence, every other is concealed.
      expect(s.audioConcealed).toBeGreaterThanOrEqual(lostInSpan - run.infos.length);
      const overlap = played / 48_000 - (audioEnd - T0) / 1e6;
      expect(overlap).toBeGreaterThanOrEqual(-0.0015);
      expect(overlap).toBeLessThanOrEqual((run.infos.length - 1) * 0.02);
    }, 60_000);

    test(`${container}: audio that stops for 3 s never holds up the video; silence fills the hole and the beeps after it keep sync`, async () => {
      const from = T0 + 2_500_000;
      const to = T0 + 5_500_000;
      const run = await record(container, {
        lost: (p) => p.capturedAt >= from && p.capturedAt < to,
        beforeFrame: async (writer, i) => {
          // Mid-outage, the open segment's video reaches its file while no audio comes.
          if (frameAt(i) !== T0 + 5_000_000) return;
          const partial = writer.openPartial!;
          const until = performance.now() + 20_000;
          const want = (white.length + dark[0]!.length * 11) * 0.9; // the segment's first 12 frames
          while (statSync(partial).size < want) {
            if (performance.now() > until) throw new Error(`video stalled: ${partial} holds ${statSync(partial).size} bytes, expected ${want}`);
            await Bun.sleep(20);
          }
        },
      });
      const { offsets } = await check(run, container);
      // The beeps at 3 s, 4 s and 5 s fall in the hole.
      const heard = offsets.filter((o) => Math.abs(o) <= MAX_OFFSET_SEC);
      report(`${container} 3 s outage`, heard);
      expect(heard.length).toBe(SECONDS - 3);
      const s = run.stats;
      expect([s.dropped, s.framesWritten]).toEqual([0, frameCount]);
      expect(s.audioSilenceMs).toBeGreaterThanOrEqual(2_900);
      expect(s.audioSilenceMs).toBeLessThanOrEqual(3_100);
    }, 60_000);
  }
});

describe("recording with audio when things go wrong", () => {
  test("mkv: ffmpeg killed mid-segment: the repaired segment and the next ones keep their audio in sync", async () => {
    let killed = false;
    const run = await record("mkv", {
      audioLagMicros: 100_000,
      beforeFrame: async (writer, i) => {
        if (i !== 100 || killed) return; // 1.33 s into the second segment
        const partial = writer.openPartial!;
        const until = performance.now() + 20_000;
        while (statSync(partial).size < 100_000) {
          if (performance.now() > until) throw new Error("nothing reached the partial");
          await Bun.sleep(20);
        }
        process.kill(writer.ffmpegPid!, "SIGKILL");
        killed = true;
        while (writer.ffmpegPid !== null && performance.now() < until) await Bun.sleep(10);
      },
    });
    const repaired = run.infos.filter((i) => i.recovered);
    expect(repaired.length).toBe(1);
    for (const info of run.infos) {
      const streams = await streamInfo(info.path);
      expect({ path: info.path, audio: streams.audio?.codec }).toEqual({ path: info.path, audio: "opus" });
      const pics = await pictures(info.path);
      const audio = await decodeAudio(info.path);
      const audioEnd = audio.startPts + audio.samples.length / 48_000;
      const onsets = beepOnsets(audio.samples).map((i) => audio.startPts + i / 48_000);
      for (const w of pics.filter((p) => p.mean > 200 && p.pts < audioEnd - 0.15).map((p) => p.pts)) {
        const o = onsets.reduce((b, x) => (Math.abs(x - w) < Math.abs(b - w) ? x : b), Number.POSITIVE_INFINITY);
        expect({ path: info.path, w, ok: Math.abs(o - w) <= MAX_OFFSET_SEC }).toEqual({ path: info.path, w, ok: true });
      }
    }
    expect(run.stats.ffmpegFailures).toBe(1);
  }, 60_000);
});

/*
 * Segment boundaries on beeps, as a viewer records: 50 fps, 1 s segments starting at whole seconds
 * (so every boundary falls on a beep and its white frame), the audio reaching the recorder half a
 * second before the frames of the same capture time (the viewer delays its frames for repair),
 * packets on a 20 ms grid at an offset from the frames, a tenth of them lost (a fixed seed), and at
 * each boundary one of the packets around it lost on purpose: the last of the pre-roll, the one
 * that spans the boundary, the first after it, or two of them; two packets swapped on the way.
 */
describe("segment boundaries on beeps with packets lost", () => {
  const BFPS = 50;
  const BINTERVAL = 1_000_000 / BFPS;
  const BSECONDS = 9;
  const LEAD = 500_000;
  /**
   * Loud milliseconds of a beep, at least: its 100 ms less one lost packet's worth (20 ms), and
   * 5 ms for the decoder to come back to full strength after it (when the beep's first packet is
   * lost, the next one decodes a little faint: CELT codes its energies as changes from the lost one).
   */
  const MIN_BEEP_MS = 75;
  /**
   * At boundary k (k s), which packets around it are lost, AROUND[k % 8], by their place from the
   * one that spans the boundary (0; -1 is the last of the new segment's pre-roll, 1 the first after).
   */
  const AROUND: number[][] = [[], [-1], [0], [1], [-1, 0], [2], [-2], [-1, 1]];

  /** Loud 1 ms steps (max |sample| >= 3000) in [from, to) seconds of a decoded track. */
  function loudMs(a: { startPts: number; samples: Int16Array }, from: number, to: number): { ms: number; first: number | null } {
    let ms = 0;
    let first: number | null = null;
    const i0 = Math.max(0, Math.round((from - a.startPts) * 48_000));
    const i1 = Math.min(a.samples.length, Math.round((to - a.startPts) * 48_000));
    for (let i = i0; i + 48 <= i1; i += 48) {
      let m = 0;
      for (let j = i; j < i + 48; j++) m = Math.max(m, Math.abs(a.samples[j]!));
      if (m < 3000) continue;
      ms++;
      if (first === null) {
        let j = i;
        while (Math.abs(a.samples[j]!) < 3000) j++;
        first = a.startPts + j / 48_000;
      }
    }
    return { ms, first };
  }

  for (const [container, gridOffset] of [["mkv", 7_000], ["mkv", 0], ["mkv", 13_000], ["mkv", 19_000], ["avi", 7_000]] as const) {
    test(`${container}, packets ${gridOffset / 1000} ms off the frames: every beep at a boundary is whole in its segment and on its white frame; the audio lasts as long as the recording`, async () => {
      const start = T0 - 1_000_000 + gridOffset;
      const all = await opusPackets({ seconds: BSECONDS + 2, startMicros: start, expr: `if(lt(mod(t+${gridOffset / 1e6}\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)` });
      const rnd = prng(11 + gridOffset);
      const lost = new Set<number>();
      for (const p of all) if (rnd() < 0.1) lost.add(p.seq);
      /** The packet whose 20 ms hold capture time `t`. */
      const spanning = (t: number) => all.find((p) => p.capturedAt <= t && t < p.capturedAt + 20_000)!;
      for (let k = 1; k < BSECONDS; k++) {
        const s = spanning(T0 + k * 1_000_000).seq;
        // Around a boundary only the chosen packets are lost, so that each case is what it says.
        for (let d = -4; d <= 5; d++) lost.delete(s + d);
        for (const d of AROUND[k % AROUND.length]!) lost.add(s + d);
      }
      const fed = all.filter((p) => !lost.has(p.seq));
      type Ev = { at: number; frame?: number; packet?: AudioPacket };
      const events: Ev[] = [];
      const frames = BSECONDS * BFPS;
      const at = (i: number) => T0 + i * BINTERVAL;
      for (let i = 0; i < frames; i++) events.push({ at: at(i), frame: i });
      for (const p of fed) events.push({ at: p.capturedAt - LEAD, packet: p });
      events.sort((a, b) => a.at - b.at);
      // Two packets just after the boundary at 4 s arrive the wrong way round.
      const swap = events.findIndex((e) => e.packet && e.packet.capturedAt >= T0 + 4_030_000);
      [events[swap], events[swap + 1]] = [events[swap + 1]!, events[swap]!];

      const infos: SegmentInfo[] = [];
      const writer = await SegmentWriter.open({
        dir: tempDir(), segmentSeconds: 1, container, fps: BFPS, log: memoryLogger("recorder"), audio: DEFAULT_AUDIO_FORMAT, onSegment: (i) => infos.push(i),
      });
      for (const e of events) {
        if (e.packet) {
          writer.writeAudio(e.packet);
          continue;
        }
        const i = e.frame!;
        await writer.whenWritable();
        writer.write({ seq: i, capturedAt: at(i), width: W, height: H, jpeg: i % BFPS === 0 ? white : dark[i % dark.length]! });
      }
      await writer.close();
      infos.sort((a, b) => a.startedAt - b.startedAt);
      expect(infos.map((i) => (i.startedAt - T0) / 1e6)).toEqual([...Array(BSECONDS).keys()]);

      const decoded = await Promise.all(infos.map((i) => decodeAudio(i.path)));
      const pics = await Promise.all(infos.map((i) => pictures(i.path)));
      let played = 0;
      const found: string[] = [];
      for (const [k, a] of decoded.entries()) {
        played += a.samples.length;
        const w = pics[k]![0]!.pts; // every segment starts with its white frame
        expect(pics[k]![0]!.mean).toBeGreaterThan(200);
        const beep = loudMs(a, w - 0.045, w + 0.2);
        // The previous segment holds at most the part of the packet that spans the boundary.
        const prev = k > 0 ? decoded[k - 1]! : null;
        const prevEnd = prev ? prev.startPts + prev.samples.length / 48_000 : 0;
        const before = prev ? loudMs(prev, prevEnd - 0.045, prevEnd).ms : 0;
        const onset = beep.first === null ? null : Math.round((beep.first - w) * 1000);
        found.push(`${k}s: ${beep.ms} ms loud, onset ${onset} ms, ${before} ms before the boundary`);
      }
      console.log(`${container} grid ${gridOffset / 1000} ms, lost around the boundaries ${JSON.stringify(AROUND)}:\n  ${found.join("\n  ")}`);
      for (const [k, f] of found.entries()) {
        const [, ms, onset, before] = /(\d+) ms loud, onset (-?\d+|null) ms, (\d+) ms/.exec(f)!.map(Number);
        expect({ k, f, whole: ms! >= MIN_BEEP_MS, onTime: Math.abs(onset!) <= MAX_OFFSET_SEC * 1000, once: before! <= 20 }).toEqual({ k, f, whole: true, onTime: true, once: true });
      }
      // Together the segments play the recorded span once (each may overlap the next by the part of a packet).
      const span = frames * BINTERVAL;
      const overlap = played / 48_000 - span / 1e6;
      expect(overlap).toBeGreaterThanOrEqual(-0.0015);
      expect(overlap).toBeLessThanOrEqual((infos.length - 1) * 0.02 + 0.0015);
      const s = writer.stats;
      expect([s.dropped, s.framesWritten]).toEqual([0, frames]);
      expect(s.audioWritten).toBe(fed.filter((p) => p.capturedAt >= T0 && p.capturedAt < at(frames - 1) + BINTERVAL).length);
    }, 60_000);
  }
});
