import { describe, expect, test } from "bun:test";
import { audioOutText, parseAudioOut } from "../lib/audio/audio-output.ts";
import { decodeWavHeader, encodeWavHeader, WAV_HEADER_BYTES } from "../lib/audio/wav-header.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

/** Hex bytes, each line's `//` comment dropped. */
const hexBytes = (s: string) => Uint8Array.from(s.split("\n").map((l) => l.replace(/\/\/.*/, "")).join("").replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

/** A mono header at firstSampleAt 1700000000123456 µs with 96 000 data bytes (1 s). */
const GOLDEN = {
  info: { channels: 1, sampleRate: 48_000, firstSampleAt: 1_700_000_000_123_456, dataBytes: 96_000 },
  bytes: hexBytes(`
    52494646 78770100 57415645           // "RIFF", 96000 + 120, "WAVE"
    666d7420 10000000 0100 0100          // "fmt ", 16, PCM, 1 channel
    80bb0000 00770100 0200 1000          // 48000 Hz, 96000 bytes/s, 2 bytes a frame, 16 bits
    4c495354 4c000000 494e464f           // "LIST", 76, "INFO"
    49434d54 40000000                    // "ICMT", 64
    6c616e63 616d2066 69727374 53616d70 6c654174 3d                 // "lancam firstSampleAt="
    30303030 31373030 30303030 30303132 33343536                    // "00001700000000123456"
    00000000 00000000 00000000 00000000 00000000 000000              // NUL padding to 64
    64617461 00770100                    // "data", 96000
  `),
};

describe("the WAV header of --audio-out wav:", () => {
  test("golden bytes: encode, decode, round trip; every truncation throws", () => {
    expect(GOLDEN.bytes.length).toBe(WAV_HEADER_BYTES);
    expect(encodeWavHeader(GOLDEN.info)).toEqual(GOLDEN.bytes);
    expect(decodeWavHeader(GOLDEN.bytes)).toEqual(GOLDEN.info);
    for (let n = 0; n < WAV_HEADER_BYTES; n++) expect(() => decodeWavHeader(GOLDEN.bytes.subarray(0, n))).toThrow(DecodeError);
    const bad = GOLDEN.bytes.slice();
    bad[60] = 0x58; // the comment is not ours
    expect(() => decodeWavHeader(bad)).toThrow(DecodeError);
  });

  test("sizes past what RIFF can state are written as its largest", () => {
    const h = decodeWavHeader(encodeWavHeader({ ...GOLDEN.info, dataBytes: 2 ** 33 }));
    expect(h.dataBytes).toBe(0xffffffff - (WAV_HEADER_BYTES - 8));
  });
});

describe("--audio-out", () => {
  test("each form reads back as it is written", () => {
    for (const raw of ["default", "none", "pulse", "pulse:lc", "alsa:default", "alsa:hw:1,0", "wav:out.wav", "wav:/tmp/a b.wav"]) {
      const spec = parseAudioOut(raw);
      if ("problem" in spec) throw new Error(spec.problem);
      expect(audioOutText(spec)).toBe(raw);
    }
    expect(parseAudioOut("alsa")).toEqual({ kind: "alsa", device: "default" });
  });

  test("bad values name the problem", () => {
    expect(parseAudioOut("speaker")).toEqual({ problem: "expected default, none, pulse[:NAME], alsa[:DEVICE] or wav:FILE" });
    expect(parseAudioOut("wav:")).toEqual({ problem: "wav: needs a file name after the colon" });
    expect(parseAudioOut("pulse:-f")).toEqual({ problem: "a device name cannot start with '-'" });
    expect(parseAudioOut("alsa:a\nb")).toEqual({ problem: "the name has control characters" });
    expect(parseAudioOut(`wav:${"x".repeat(2000)}`)).toEqual({ problem: "the name is longer than 1024 characters" });
  });
});
