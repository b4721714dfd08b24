import { describe, expect, test } from "bun:test";
import { CONCEAL_STEP_SAMPLES, OpusDecoder } from "../lib/audio/opus-decoder.ts";
import { cv } from "../lib/native/cv.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { peak } from "./helpers/wav-audio.ts";

/** The beep's frequency estimated from zero crossings of `pcm` (mono). */
function frequency(pcm: Int16Array): number {
  let crossings = 0;
  for (let i = 1; i < pcm.length; i++) if ((pcm[i - 1]! < 0) !== (pcm[i]! < 0)) crossings++;
  return (crossings / 2) * (48_000 / pcm.length);
}

describe("Opus decoder (libopus in the addon)", () => {
  test("decodes ffmpeg's packets to 960 samples of the beep: 1 kHz at about half scale, silence after it", async () => {
    // A constant 1 kHz tone for 1 s: packets 10..40 are well inside it.
    const tone = await opusPackets({ seconds: 1, expr: "0.5*sin(2*PI*1000*t)" });
    using dec = OpusDecoder.create(1);
    const out = tone.map((p) => dec.decode(p.data));
    for (const pcm of out) expect(pcm.length).toBe(960);
    const mid = out[20]!;
    expect(frequency(mid)).toBeGreaterThan(950);
    expect(frequency(mid)).toBeLessThan(1050);
    // 0.5 of full scale is 16384; Opus at 64 kbit/s keeps it within a few percent.
    expect(peak(mid)).toBeGreaterThan(14_000);
    expect(peak(mid)).toBeLessThan(19_000);

    const beep = await opusPackets({ seconds: 1 });
    using dec2 = OpusDecoder.create(1);
    const pcm = beep.map((p) => dec2.decode(p.data));
    expect(peak(pcm[2]!)).toBeGreaterThan(10_000); // 40..60 ms: inside the 100 ms beep
    expect(peak(pcm[30]!)).toBeLessThan(50); // 600 ms: silence
  });

  test("a lost packet is concealed: the right length, continuing the tone rather than noise, fading over a run", async () => {
    const tone = await opusPackets({ seconds: 0.6, expr: "0.5*sin(2*PI*1000*t)" });
    using dec = OpusDecoder.create(1);
    for (const p of tone.slice(0, 20)) dec.decode(p.data);
    const plc = dec.conceal(960);
    expect(plc.length).toBe(960);
    // Concealment carries on the 1 kHz tone at a similar level: not silence, not garbage.
    expect(frequency(plc)).toBeGreaterThan(900);
    expect(frequency(plc)).toBeLessThan(1100);
    expect(peak(plc)).toBeGreaterThan(4000);
    expect(peak(plc)).toBeLessThan(24_000);
    // A long run fades out.
    let last = plc;
    for (let i = 0; i < 10; i++) last = dec.conceal(960);
    expect(peak(last)).toBeLessThan(peak(plc) / 4);
    // And the next real packet decodes normally again.
    const after = dec.decode(tone[25]!.data);
    expect(after.length).toBe(960);
  });

  test("concealment lengths are whole 2.5 ms steps; stereo gives interleaved pairs", async () => {
    using dec = OpusDecoder.create(1);
    expect(dec.conceal(1).length).toBe(CONCEAL_STEP_SAMPLES);
    expect(dec.conceal(961).length).toBe(1080);
    const stereo = await opusPackets({ seconds: 0.2, channels: 2 });
    using dec2 = OpusDecoder.create(2);
    expect(dec2.decode(stereo[0]!.data).length).toBe(1920);
    expect(dec2.conceal(960).length).toBe(1920);
  });

  test("bad input comes back as a DecodeError (an error code from C++), never a crash", () => {
    using dec = OpusDecoder.create(1);
    // Code 3 packets: without their count byte, claiming 0 frames, claiming 63 (over 120 ms), too short for their frames.
    for (const bad of [[0x03], [0x03, 0x00], [0x0b, 0x3f], [0xfb, 0xff, 0xff, 0xff]].map((b) => new Uint8Array(b))) {
      expect(() => dec.decode(bad)).toThrow(DecodeError);
    }
    const native = cv();
    const h = native.opusDecoderCreate(1);
    if (typeof h === "number") throw new Error(`create failed: ${h}`);
    expect(native.opusDecode(h, new Uint8Array(0), 960)).toBeLessThan(0);
    expect(native.opusDecode(h, null, 100)).toBeLessThan(0); // not a multiple of 2.5 ms
    expect(native.opusDecode(h, null, 0)).toBeLessThan(0);
    expect(native.opusDecode(h, null, 100_000)).toBeLessThan(0);
    expect(native.opusDecoderCreate(3)).toBeLessThan(0);
    native.opusDecoderDestroy(h);
    native.opusDecoderDestroy(h); // twice is fine
    expect(native.opusDecode(h, null, 960)).toBeLessThan(0);
    expect(native.opusErrorText(-4)).toBe("corrupted stream");
    expect(() => native.opusDecode({} as never, null, 960)).toThrow(TypeError);
    dec.close();
    expect(() => dec.conceal(960)).toThrow("closed");
  });

  test("many decodes keep memory flat (the samples are copied out, the scratch buffer reused)", async () => {
    const packets = await opusPackets({ seconds: 2 });
    using dec = OpusDecoder.create(1);
    for (let i = 0; i < 500; i++) dec.decode(packets[i % packets.length]!.data);
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 20_000; i++) dec.decode(packets[i % packets.length]!.data);
    Bun.gc(true);
    // 20 000 packets are 38 MB of samples: the RSS must not keep them.
    expect(process.memoryUsage().rss - before).toBeLessThan(30 * 1024 * 1024);
  }, 60_000);
});
