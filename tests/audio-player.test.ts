import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { AudioPlayer } from "../lib/audio/audio-player.ts";
import { DEFAULT_AUDIO_FORMAT, type AudioPacket } from "../lib/wire/audio-packet.ts";
import type { AudioOutSpec } from "../lib/audio/audio-output.ts";
import { WAV_HEADER_BYTES } from "../lib/audio/wav-header.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { prng } from "./helpers/prng.ts";
import { spawnBun, spawnChild, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { peak, readWav, toneOnsets } from "./helpers/wav-audio.ts";

const tempDir = tempDirs("lancam-audio-");
/** A whole second: the beeps start at capture times % 1 s == 0. */
const T0 = 1_700_000_000_000_000;
/** This viewer's clock runs this far ahead of the sender's (any offset must work). */
const OFFSET = 3_600_123_457;
const ms = (n: number) => (n * 48_000) / 1000;

interface FakeRun {
  wav: ReturnType<typeof readWav>;
  player: AudioPlayer;
  /** Each beep's capture time -> the wav sample where it should be heard (by playoutTimeOf at the time). */
  expected: Map<number, number>;
  lastNow: number;
}

/**
 * Plays `packets` into a WAV file on a fake clock: each arrives at its capture time +
 * OFFSET + 5 ms + `jitter`() (undefined from `arrivalOf` = lost), the player ticks every
 * 10 ms of fake time, `during` runs at every tick.
 */
async function playFake(packets: AudioPacket[], opts: { arrivalOf?: (p: AudioPacket, i: number) => number | undefined; during?: (player: AudioPlayer, now: number) => void } = {}): Promise<FakeRun> {
  const path = join(tempDir(), "out.wav");
  let now = T0 + OFFSET - 30_000;
  const log = memoryLogger();
  const player = await AudioPlayer.open({ format: DEFAULT_AUDIO_FORMAT, output: { kind: "wav", path }, log, now: () => now, timer: false });
  const arrivalOf = opts.arrivalOf ?? ((p) => p.capturedAt + OFFSET + 5000);
  const order = packets.map((p, i) => ({ p, at: arrivalOf(p, i) })).filter((a): a is { p: AudioPacket; at: number } => a.at !== undefined).sort((a, b) => a.at - b.at);
  // (The source ends on a whole second: the packet there is silence, not a beep.)
  const beeps = packets.filter((p) => (p.capturedAt - T0) % 1_000_000 === 0 && p.capturedAt < packets.at(-1)!.capturedAt).map((p) => p.capturedAt);
  const expected = new Map<number, number>();
  const end = packets.at(-1)!.capturedAt + OFFSET + 500_000;
  let k = 0;
  for (let step = 0; now < end; step++) {
    now += 1000;
    for (; k < order.length && order[k]!.at <= now; k++) player.push(order[k]!.p, order[k]!.at);
    if (step % 10 !== 0) continue;
    opts.during?.(player, now);
    player.tick();
    // Where each beep goes is decided when its samples are written (now + the lead).
    for (const c of beeps) {
      const t = player.playoutTimeOf(c);
      if (!expected.has(c) && t !== null && t <= now + 20_000) expected.set(c, Math.round(((t - player.firstSampleAt) * 48) / 1000));
    }
  }
  await player.close();
  // The header's time is the player's sample 0, on the same clock.
  const wav = readWav(path);
  expect(wav.firstSampleAt).toBe(player.firstSampleAt);
  expect(log.lines.some((l) => l.includes("audio output started") && l.includes(`firstSampleAt=${player.firstSampleAt}`))).toBe(true);
  return { wav, player, expected, lastNow: now };
}

describe("AudioPlayer into a WAV file (fake clock)", () => {
  test("the beeps are heard where playoutTimeOf says, within 2 ms; the file is continuous real time", async () => {
    const rnd = prng(3);
    const packets = await opusPackets({ seconds: 5, startMicros: T0 });
    // Up to 15 ms of jitter, so packets also come out of order.
    const run = await playFake(packets, { arrivalOf: (p) => p.capturedAt + OFFSET + 5000 + rnd() * 15_000 });
    const { wav, player, expected } = run;
    // Continuous: one sample per 1/48000 s from sample 0 up to the last tick (+ the 20 ms written ahead).
    expect(wav.samples.length).toBe(Math.floor(((run.lastNow + 20_000 - wav.firstSampleAt) * 48) / 1000));
    expect(wav.dataBytes).toBe(wav.samples.length * 2);
    const onsets = toneOnsets(wav.samples);
    expect(onsets.length).toBe(5);
    const want = [...expected.values()];
    for (const [i, at] of onsets.entries()) expect(Math.abs(at - want[i]!)).toBeLessThanOrEqual(ms(2));
    // Each beep plays 40..~130 ms after its capture instant reached this viewer at the earliest.
    for (const [c, pos] of expected) {
      const heardAt = wav.firstSampleAt + (pos * 1000) / 48;
      const delay = heardAt - (c + OFFSET + 5000);
      expect(delay).toBeGreaterThanOrEqual(40_000);
      expect(delay).toBeLessThanOrEqual(130_000);
    }
    // 100 ms beeps, silence in between.
    expect(peak(wav.samples, onsets[1]! + ms(10), onsets[1]! + ms(90))).toBeGreaterThan(10_000);
    expect(peak(wav.samples, onsets[1]! + ms(200), onsets[2]! - ms(100))).toBeLessThan(200);
    expect(player.stats).toMatchObject({ received: packets.length, played: packets.length, late: 0, duplicate: 0, undecodable: 0 });
  });

  test("with 5 % of the packets lost, playback goes on: right duration, every beep still there", async () => {
    const rnd = prng(11);
    const packets = await opusPackets({ seconds: 6, startMicros: T0 });
    const lost = new Set<number>();
    // Drop 5 %, sparing no beep onset on purpose (random, seeded).
    packets.forEach((_, i) => rnd() < 0.05 && lost.add(i));
    expect(lost.size).toBeGreaterThan(5);
    const run = await playFake(packets, { arrivalOf: (p, i) => (lost.has(i) ? undefined : p.capturedAt + OFFSET + 5000 + rnd() * 10_000) });
    const { wav, player, expected } = run;
    expect(wav.samples.length).toBe(Math.floor(((run.lastNow + 20_000 - wav.firstSampleAt) * 48) / 1000));
    expect(player.stats.played).toBe(packets.length - lost.size);
    // Every loss was concealed (none in a run long enough to fall silent), plus the stream's end.
    expect(player.stats.concealed).toBeGreaterThanOrEqual(lost.size);
    // Each second's beep is heard at its time, give or take the 20 ms of a concealed onset packet.
    for (const pos of expected.values()) {
      expect(peak(wav.samples, pos - ms(2), pos + ms(100))).toBeGreaterThan(5000);
      expect(peak(wav.samples, pos - ms(300), pos - ms(25))).toBeLessThan(1000);
    }
    expect(expected.size).toBe(6);
  });

  test("muted writes silence (the meter still reads the sound); unmuted the sound is back", async () => {
    const packets = await opusPackets({ seconds: 4, startMicros: T0 });
    let toggled = 0;
    const levels: number[] = [];
    const run = await playFake(packets, {
      during: (player, now) => {
        // Muted from 1.5 s to 2.5 s of capture time (beep 2 falls inside).
        const t = now - OFFSET - T0;
        if ((t >= 1_500_000 && toggled === 0) || (t >= 2_500_000 && toggled === 1)) {
          player.toggleMute();
          toggled++;
        }
        if (player.muted) levels.push(player.level());
      },
    });
    const [b0, b1, b2, b3] = [...run.expected.values()];
    expect(peak(run.wav.samples, b0!, b0! + ms(100))).toBeGreaterThan(10_000);
    expect(peak(run.wav.samples, b1!, b1! + ms(100))).toBeGreaterThan(10_000);
    expect(peak(run.wav.samples, b2! - ms(100), b2! + ms(200))).toBe(0);
    expect(peak(run.wav.samples, b3!, b3! + ms(100))).toBeGreaterThan(10_000);
    expect(run.player.muted).toBe(false);
    // While muted the meter went up with the beep (about -6 dBFS) and down after it.
    expect(Math.max(...levels)).toBeGreaterThan(-10);
    expect(Math.min(...levels)).toBeLessThan(-60);
  });

  test("unavailable(): silence at once, no playout time, and a new stream anchors afresh", async () => {
    const packets = await opusPackets({ seconds: 3, startMicros: T0 });
    let cut = false;
    const run = await playFake(packets, {
      during: (player, now) => {
        if (!cut && now - OFFSET - T0 >= 1_500_000) {
          cut = true;
          player.unavailable();
          expect(player.playoutTimeOf(T0)).toBeNull();
        }
      },
    });
    // After the cut the packets still pushed anchor a new stream: beep 2 is heard again.
    const onsets = toneOnsets(run.wav.samples);
    expect(onsets.length).toBe(3);
    expect(run.player.playoutTimeOf(T0)).not.toBeNull();
  });
});

describe("AudioPlayer in real time", () => {
  test("a viewer killed mid-stream leaves a WAV that reads; its beeps sit where playoutTimeOf said (real timer)", async () => {
    const path = join(tempDir(), "killed.wav");
    await using child = spawnBun(["tests/helpers/audio-play-child.ts", `wav:${path}`, "30"]);
    // Three beeps in (about 3 s), then kill -9.
    const beepsSaid = () => new Set([...child.stdout().matchAll(/beep (\d+) /g)].map((m) => m[1])).size;
    await until(() => beepsSaid() >= 4, 30_000, () => `four beeps; stdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`);
    const started = await child.waitFor(/firstSampleAt=(\d+)/, 5000, "stderr");
    child.proc.kill("SIGKILL");
    await child.exited;
    const wav = readWav(path);
    expect(wav.firstSampleAt).toBe(Number(started[1]));
    // The header's sizes are at most 100 ms behind what is in the file.
    const inFile = statSync(path).size - WAV_HEADER_BYTES;
    expect(wav.dataBytes).toBeLessThanOrEqual(inFile);
    expect(inFile - wav.dataBytes).toBeLessThanOrEqual(2 * ms(100) + 2 * ms(30));
    // ffmpeg reads it to the end without complaint.
    const probe = Bun.spawnSync([resolveFfmpeg().path, "-v", "error", "-i", path, "-f", "null", "-"]);
    expect(probe.stderr.toString()).toBe("");
    expect(probe.exitCode).toBe(0);
    // The beeps written so far sit where the player said they would be heard: the timer's lateness did not shift them.
    // (The player may move a beep's time while it waits, so the one in force when it was written is among those said.)
    const said = new Map<number, number[]>();
    for (const m of child.stdout().matchAll(/beep (\d+) (\d+)/g)) {
      const c = Number(m[1]);
      said.set(c, [...(said.get(c) ?? []), Math.round(((Number(m[2]) - wav.firstSampleAt) * 48) / 1000)]);
    }
    const onsets = toneOnsets(wav.samples);
    expect(onsets.length).toBeGreaterThanOrEqual(3);
    const beeps = [...said.values()];
    for (const [i, at] of onsets.entries()) expect(Math.min(...beeps[i]!.map((p) => Math.abs(at - p)))).toBeLessThanOrEqual(ms(2));
  }, 60_000);

  test("a device that cannot be opened is said once; the player goes on with none", async () => {
    const log = memoryLogger();
    const spec: AudioOutSpec = { kind: "alsa", device: "lancam-no-such-device" };
    await using player = await AudioPlayer.open({ format: DEFAULT_AUDIO_FORMAT, output: spec, log });
    const packets = await opusPackets({ seconds: 1, startMicros: Math.floor(Date.now() / 1000) * 1e6 });
    const deadline = Date.now() + 20_000;
    let i = 0;
    while (player.stats.output !== "none" && Date.now() < deadline) {
      player.push(packets[i++ % packets.length]!, Date.now() * 1000);
      await Bun.sleep(20);
    }
    expect(player.stats.output).toBe("none");
    await Bun.sleep(200);
    const warned = log.lines.filter((l) => l.includes("WARN"));
    expect(warned.filter((l) => l.includes("audio output failed") && l.includes("output=alsa:lancam-no-such-device")).length).toBe(1);
    expect(warned.filter((l) => l.includes("no audio output works")).length).toBe(1);
  }, 30_000);
});

/** A private PulseAudio daemon with a null sink `lc`, or why there is none. */
async function privatePulse(): Promise<{ env: Record<string, string>; stop: () => Promise<void> } | { skip: string }> {
  if (!Bun.which("pulseaudio")) return { skip: "pulseaudio is not installed (scripts/setup.sh --test installs it)" };
  const dir = tempDir();
  const runtime = join(dir, "run");
  mkdirSync(runtime, { mode: 0o700 });
  const env = { XDG_RUNTIME_DIR: runtime, HOME: dir };
  // Anonymous: only this test's processes know the socket, in its private 0700 folder.
  const start = Bun.spawnSync(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix auth-anonymous=1", "--load=module-null-sink sink_name=lc"], { env: { ...process.env, ...env }, stderr: "pipe" });
  const pidFile = join(runtime, "pulse", "pid");
  const deadline = Date.now() + 10_000;
  while (!existsSync(join(runtime, "pulse", "native")) && Date.now() < deadline) await Bun.sleep(50);
  if (start.exitCode !== 0 || !existsSync(pidFile)) return { skip: `pulseaudio did not start: ${start.stderr.toString().trim()}` };
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  return {
    env,
    stop: async () => {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        return;
      }
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await Bun.sleep(50);
      }
      process.kill(pid, "SIGKILL");
    },
  };
}

describe("AudioPlayer into PulseAudio", () => {
  test("pulse:lc plays the beeps into a private null sink: its monitor hears them a second apart", async () => {
    const pulse = await privatePulse();
    if ("skip" in pulse) {
      console.log(`skipped: ${pulse.skip}`);
      return;
    }
    try {
      const capturePath = join(tempDir(), "monitor.wav");
      await using capture = spawnChild([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "pulse", "-i", "lc.monitor", "-ac", "1", "-ar", "48000", "-t", "8", "-y", capturePath], pulse.env);
      await using child = spawnBun(["tests/helpers/audio-play-child.ts", "pulse:lc", "4"], pulse.env);
      const done = await child.waitFor(/done (.*)/, 30_000);
      expect({ stats: JSON.parse(done[1]!), stderr: child.stderr() }).toMatchObject({ stats: { output: "pulse:lc", late: 0 } });
      await expectExit(child, 0);
      capture.proc.kill("SIGINT"); // ffmpeg finishes the file
      await capture.exited;
      const heard = readWav2(capturePath);
      const onsets = toneOnsets(heard, 3000, 300);
      expect(onsets.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < onsets.length; i++) expect(Math.abs(onsets[i]! - onsets[i - 1]! - 48_000)).toBeLessThanOrEqual(ms(10));
      expect(child.stderr()).not.toContain("WARN");
    } finally {
      await pulse.stop();
    }
  }, 60_000);

  test("default with no PulseAudio server goes to ALSA's default device", async () => {
    const dir = tempDir();
    const log = memoryLogger();
    await using player = await AudioPlayer.open({ format: DEFAULT_AUDIO_FORMAT, output: { kind: "default" }, log, env: { XDG_RUNTIME_DIR: dir } });
    expect(player.stats.output).toMatch(/^(alsa:default|none)$/);
    expect(log.lines.some((l) => l.includes("audio output started"))).toBe(true);
  });
});

/** A plain WAV (ffmpeg's), channel 0 as samples: ffmpeg writes its own header, so find "data". */
function readWav2(path: string): Int16Array {
  const bytes = readFileSync(path);
  const at = bytes.indexOf("data");
  const body = bytes.subarray(at + 8);
  return new Int16Array(body.buffer.slice(body.byteOffset, body.byteOffset + (body.length & ~1)));
}
