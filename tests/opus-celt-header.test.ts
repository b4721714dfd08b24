import { describe, expect, test } from "bun:test";
import { OggOpusWriter } from "../lib/mux/ogg-opus.ts";
import { opusSilence } from "../lib/mux/opus-silence.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { celtHeader } from "../lib/wire/opus-celt-header.ts";
import { opusPackets } from "./helpers/opus-packets.ts";

const flags = (b: number[]) => {
  const h = celtHeader(Uint8Array.from(b));
  return h ? Object.entries(h).filter(([, v]) => v).map(([k]) => k).join("+") || "none" : null;
};

describe("celtHeader", () => {
  test("golden: the first symbols of a CELT frame; other packets are not read", () => {
    expect(flags([0xf8, 0xff, 0xfe])).toBe("silence"); // our silence packet: the silence flag
    expect(flags([0xf8, 0x00, 0x00, 0x00])).toBe("none"); // every symbol 0: an inter frame, no post-filter
    expect(flags([0xf8, 0x70, 0x00, 0x00])).toBe("transient");
    expect(flags([0xf8, 0x7e, 0x00, 0x00])).toBe("transient+intra");
    expect(flags([0xf8, 0x7f, 0xff, 0xff])).toBe("postFilter");
    expect(flags([0xf8])).toBe(null); // no frame data: a lost frame
    expect(flags([0xf9, 0x00, 0x00])).toBe(null); // code 1: two frames
    expect(flags([0x78, 0x00, 0x00])).toBe(null); // config 15: hybrid (SILK first)
    expect(flags([0x08, 0x00, 0x00])).toBe(null); // SILK
  });

  test("an intra frame decodes at full strength after silence, an inter frame comes out faint (ffmpeg's decoder)", async () => {
    // A tone that sweeps and pauses: frames of every kind.
    const pk = await opusPackets({ seconds: 2, startMicros: 0, expr: "if(lt(mod(t\\,0.5)\\,0.2)\\,0.5*sin(2*PI*(500+400*t)*t)\\,0.1*sin(2*PI*300*t))" });
    const silence = opusSilence(960, 1)[0]!.data;
    async function decode(list: Uint8Array[]): Promise<Int16Array> {
      const w = new OggOpusWriter({ channels: 1, frameMs: 20 }, 1);
      const pages = [w.header(), ...list.map((d, i) => w.page({ seq: i, capturedAt: i * 20_000, samples: 960, data: d }, i === list.length - 1))];
      const p = Bun.spawnSync([resolveFfmpeg().path, "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "pipe:1"], { stdin: await new Blob(pages).bytes() });
      return new Int16Array(p.stdout.buffer.slice(0, p.stdout.length & ~1));
    }
    /** RMS of the middle of the last packet's 20 ms. */
    const level = (s: Int16Array) => {
      let e = 0;
      const from = 3 * 960 - 312 + 240;
      for (let i = from; i < from + 480; i++) e += (s[i] ?? 0) ** 2;
      return Math.sqrt(e / 480);
    };
    const ratios: Record<"intra" | "inter", number[]> = { intra: [], inter: [] };
    for (let k = 3; k < pk.length && (ratios.intra.length < 4 || ratios.inter.length < 8); k++) {
      const h = celtHeader(pk[k]!.data);
      if (!h || h.silence || h.transient) continue;
      const kind = h.intra ? "intra" : "inter";
      if (ratios[kind].length >= (kind === "intra" ? 4 : 8)) continue;
      const before = pk.slice(k - 3, k).map((p) => p.data);
      const ref = level(await decode([...before, pk[k]!.data]));
      if (ref < 500) continue; // too quiet to tell
      ratios[kind].push(level(await decode([...before.slice(0, 2), silence, pk[k]!.data])) / ref);
    }
    expect(ratios.intra.length).toBe(4);
    expect(ratios.inter.length).toBe(8);
    for (const r of ratios.intra) expect(r).toBeGreaterThan(0.8);
    for (const r of ratios.inter) expect(r).toBeLessThan(0.2);
  });
});
