import { describe, expect, test } from "bun:test";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { encodeOggPage, oggCrc, OggReader, OGG_BOS } from "../lib/mux/ogg.ts";
import { decodeOpusHead, OggOpusWriter, opusHead } from "../lib/mux/ogg-opus.ts";
import { opusPacketSamples } from "../lib/wire/opus-toc.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { opusPackets } from "./helpers/opus-packets.ts";

describe("Ogg pages", () => {
  test("the CRC of 'OggS' matches the reference polynomial", () => {
    // Computed independently: CRC-32/MPEG-2 without final xor and initial 0 over "123456789" is 0x89a1897f.
    expect(oggCrc(new TextEncoder().encode("123456789"))).toBe(0x89a1897f);
  });

  test("packets of every size round-trip, split across pushes at every byte", () => {
    const packets = [new Uint8Array(0), new Uint8Array(1).fill(7), new Uint8Array(254).fill(1), new Uint8Array(255).fill(2), new Uint8Array(600).fill(3)];
    const page = encodeOggPage({ headerType: OGG_BOS, granule: 960n, serial: 5, pageSeq: 0, packets });
    for (const cut of [1, 26, 27, 100, page.length - 1]) {
      const r = new OggReader();
      const got = [...r.push(page.subarray(0, cut)), ...r.push(page.subarray(cut))];
      expect(got.map((p) => p.data.length)).toEqual(packets.map((p) => p.length));
      expect(got[4]!.granule).toBe(960n);
      expect(got[0]!.granule).toBe(-1n);
      expect(got[0]!.bos).toBe(true);
    }
  });

  test("a flipped byte is a CRC error, not a wrong packet", () => {
    const page = encodeOggPage({ headerType: 0, granule: 1n, serial: 1, pageSeq: 1, packets: [new Uint8Array([1, 2, 3])] });
    page[page.length - 1]! ^= 1;
    expect(() => new OggReader().push(page)).toThrow(DecodeError);
    expect(() => new OggReader().push(new TextEncoder().encode("RIFF....................................."))).toThrow(/not an Ogg page/);
  });
});

describe("Ogg Opus", () => {
  test("ffmpeg's Opus packets are 20 ms each, and the header says mono", async () => {
    const packets = await opusPackets({ seconds: 0.5 });
    expect(packets.length).toBeGreaterThanOrEqual(25);
    for (const p of packets) expect(opusPacketSamples(p.data)).toBe(960);
    expect(decodeOpusHead(opusHead({ channels: 1 })).channels).toBe(1);
  });

  test("what the writer makes, ffmpeg decodes to the same length, a lost packet filled in", async () => {
    const packets = await opusPackets({ seconds: 1 });
    const w = new OggOpusWriter({ channels: 1, frameMs: 20 }, 42);
    const kept = packets.filter((_, i) => i !== 10); // one lost
    const parts = [w.header(), ...kept.map((p, i) => w.page(p, i === kept.length - 1))];
    const ogg = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { ogg.set(p, at); at += p.length; }
    const proc = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "pipe:1"], { stdin: ogg, stdout: "pipe", stderr: "pipe" });
    const pcm = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
    expect(await proc.exited).toBe(0);
    const samples = pcm.length / 2;
    // Every packet's 960 samples, the lost one's too, less the pre-skip.
    expect(Math.abs(samples - (packets.length * 960 - 312))).toBeLessThanOrEqual(960);
  });
});
