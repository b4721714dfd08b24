// --audio pulse:NAME and default end to end with a private PulseAudio daemon and a null
// sink: the test tone is played into it in real time and captured from its monitor.
// Where PulseAudio cannot run, the tests are skipped and the reason printed.
import { afterAll, describe, expect, test } from "bun:test";
import { AudioDeviceError, openAudioCapture } from "../lib/audio/audio-capture.ts";
import type { AudioPacket } from "../lib/wire/audio-packet.ts";
import { sampleAtMicros, testToneSamples } from "../lib/audio/test-tone.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { beepOnsets, fromWholeSecond } from "./helpers/audio-beeps.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { join } from "node:path";
import { startPulse } from "./helpers/pulse.ts";

const pulse = await startPulse();
const skip = "skip" in pulse ? pulse.skip : null;
if (skip !== null) console.warn(`audio-capture-pulse: skipped: ${skip}`);
afterAll(async () => {
  if (!("skip" in pulse)) await pulse[Symbol.asyncDispose]();
});
const env = "skip" in pulse ? {} : pulse.env;

/**
 * How far ahead of its time each sample is written. pacat takes only what its 20 ms
 * stream buffer has room for and leaves the rest in the pipe, so this adds no delay:
 * the first sample starts playing at once and the sink's clock paces the rest. It lets
 * this process's timer be late by that much without the stream running dry (a run dry
 * pauses the stream and moves every later beep by the gap).
 */
const WRITE_AHEAD_MICROS = 250_000;

/** Plays the test tone into the null sink `lc`, each sample at its capture time. */
function playTone(): AsyncDisposable {
  const player = Bun.spawn(["pacat", "--playback", "-d", "lc", "--format=s16le", "--rate=48000", "--channels=1", "--latency-msec=20", "--raw"], {
    stdin: "pipe", stdout: "ignore", stderr: "ignore", env: { ...process.env, ...env },
  });
  let next = sampleAtMicros(nowMicros());
  const timer = setInterval(() => {
    const due = sampleAtMicros(nowMicros() + WRITE_AHEAD_MICROS);
    if (due <= next) return;
    const pcm = testToneSamples(next, due - next);
    next = due;
    try {
      player.stdin.write(new Uint8Array(pcm.buffer));
      void Promise.resolve(player.stdin.flush()).catch(() => undefined);
    } catch {
      // pacat gone: the capture shows silence and the test fails on it.
    }
  }, 5);
  return {
    async [Symbol.asyncDispose]() {
      clearInterval(timer);
      player.kill();
      await player.exited;
    },
  };
}

describe.skipIf(skip !== null)("--audio pulse (private PulseAudio, null sink)", () => {
  test("pulse:lc.monitor: the beeps played into the sink come back 1 s apart in capturedAt, near the whole seconds they were played for", async () => {
    await using _player = playTone();
    const packets: AudioPacket[] = [];
    {
      await using capture = await openAudioCapture({ kind: "pulse", name: "lc.monitor" }, { env, onPacket: (p) => packets.push(p) });
      expect(capture.description).toBe("pulse:lc.monitor");
      // Three beeps heard, however long pacat and the capture take to get going on a busy
      // machine: looked for after 3.3 s of packets, then after each further second.
      let lookedAt = 3.3e6 - 1e6;
      await until(async () => {
        const span = packets.length > 1 ? packets.at(-1)!.capturedAt - packets[0]!.capturedAt : 0;
        if (span < lookedAt + 1e6) return false;
        lookedAt = span;
        return (await beepOnsets(packets.slice())).length >= 3;
      }, 60_000, () => `3 beeps captured; have ${packets.length} packets`);
    }
    expect(packets.map((p) => p.seq)).toEqual(packets.map((_, i) => i));
    const onsets = await beepOnsets(packets);
    // The measurement: how far after the second it was played for each beep is stamped.
    // The truth lies between 0 and the player's buffering (pacat asks for 20 ms); an
    // error of the capture clock shows as a value outside that. Printed first, so a
    // failure below comes with the figures.
    const offsets = onsets.map((t) => fromWholeSecond(t) / 1000);
    console.log(`pulse loopback: beep onsets stamped ${offsets.map((o) => o.toFixed(1)).join(", ")} ms after the second they were played for`);
    expect(onsets.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < onsets.length; i++) expect(Math.abs(onsets[i]! - onsets[i - 1]! - 1e6)).toBeLessThan(5_000);
    for (const o of offsets) expect(Math.abs(o)).toBeLessThan(100);
  }, 120_000);

  test("default finds PulseAudio's default source", async () => {
    const packets: AudioPacket[] = [];
    await using capture = await openAudioCapture({ kind: "default" }, { env, onPacket: (p) => packets.push(p) });
    expect(capture.description).toBe("default (pulse:default)");
    await until(() => packets.length >= 5, 60_000, "packets");
  }, 120_000);

  test("a PulseAudio source that does not exist: AudioDeviceError (exit 2) naming it and how to list sources", async () => {
    const err = await openAudioCapture({ kind: "pulse", name: "nosuch" }, { env, onPacket: () => undefined }).catch((e) => e);
    expect(err).toBeInstanceOf(AudioDeviceError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toStartWith("cannot open audio device pulse:nosuch: ");
    expect(err.message).toContain("`pactl list short sources`");
  }, 120_000);

  test("the sink goes away mid-stream: unavailable; back when it returns", async () => {
    if ("skip" in pulse) return;
    const availability: boolean[] = [];
    const packets: AudioPacket[] = [];
    await using _capture = await openAudioCapture({ kind: "pulse", name: "lc.monitor" }, { env, onPacket: (p) => packets.push(p), onAvailability: (a) => availability.push(a) });
    await until(() => packets.length >= 5, 60_000, "packets");
    await pulse.pactl("unload-module", "module-null-sink");
    await until(() => availability.length >= 1, 60_000, "the loss to be noticed");
    expect(availability).toEqual([false]);
    await pulse.pactl("load-module", "module-null-sink", "sink_name=lc");
    const before = packets.length;
    await until(() => availability.length >= 2 && packets.length > before, 60_000, () => `packets again; availability ${availability.join(",")}`);
    expect(availability).toEqual([false, true]);
    expect(packets.map((p) => p.seq)).toEqual(packets.map((_, i) => i));
  }, 120_000);

  test("end to end: the server captures pulse:, its viewer hears it; when the sink goes away the picture goes on and the viewer is told, and again when it is back", async () => {
    if ("skip" in pulse) return;
    const dir = tempDirs("lancam-pulse-e2e-")();
    await using tone = playTone();
    await using server = spawnBun(["server.ts", "--source", "test", "--size", "320x240", "--fps", "20", "--audio", "pulse:lc.monitor", "--port", "0", "--bind", "127.0.0.1", "--log", join(dir, "server.log")], env);
    const port = (await server.waitFor(/lancam server listening tcp=(\d+)/, 60_000))[1]!;
    await using viewer = spawnBun(["client.ts", "127.0.0.1", port, "0", "--no-window", "--no-record", "--audio-out", `wav:${join(dir, "heard.wav")}`, "--stats", join(dir, "stats.json")], env);
    await viewer.waitFor(/connected .*audio="opus mono 64k"/, 60_000, "stderr");
    await viewer.waitFor(/audio output started/, 60_000, "stderr");
    await pulse.pactl("unload-module", "module-null-sink");
    await viewer.waitFor(/WARN \[client\] the server's audio is unavailable/, 60_000, "stderr");
    await pulse.pactl("load-module", "module-null-sink", "sink_name=lc");
    await viewer.waitFor(/INFO \[client\] the server's audio is back/, 60_000, "stderr");
    viewer.proc.kill("SIGTERM");
    await expectExit(viewer, 0);
    const stats = await Bun.file(join(dir, "stats.json")).json();
    expect(stats.framesReceived).toBeGreaterThan(20);
    // The picture went on without the sound: frames in every whole second of the run.
    expect(stats.fpsPerSecond.slice(1, -1).filter((n: number) => n === 0)).toEqual([]);
    expect(stats.audio.datagrams.received).toBeGreaterThan(0);
    expect(stats.audio.datagrams.forged + stats.audio.datagrams.malformed).toBe(0);
    expect(server.stderr()).toMatch(/WARN \[audio\]/);
  }, 180_000);
});
