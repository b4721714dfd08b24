import { resolveFfmpeg } from "../../lib/media/ffmpeg.ts";
import type { AudioPacket } from "../../lib/wire/audio-packet.ts";
import { opusPacketSamples } from "../../lib/wire/opus-toc.ts";
import { OggReader } from "../../lib/mux/ogg.ts";

/**
 * `seconds` of Opus packets (48 kHz, mono, 20 ms, 64 kbit/s) encoded by ffmpeg from the
 * lavfi expression `expr` of t (seconds), for example the test beep:
 * `if(lt(mod(t,1),0.1),0.5*sin(2*PI*1000*t),0)`. Packet i is captured at
 * `startMicros + i * 20 ms` and numbered `firstSeq + i`.
 */
export async function opusPackets(opts: { seconds: number; expr?: string; startMicros?: number; firstSeq?: number; channels?: 1 | 2 }): Promise<AudioPacket[]> {
  const expr = opts.expr ?? "if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)";
  const ch = opts.channels ?? 1;
  const proc = Bun.spawn([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `aevalsrc=${expr}:s=48000:c=${ch === 1 ? "mono" : "stereo"}:d=${opts.seconds}`,
    "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-application", "audio", "-f", "ogg", "-page_duration", "20000", "pipe:1",
  ], { stdout: "pipe", stderr: "pipe" });
  const bytes = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
  const code = await proc.exited;
  if (code !== 0) throw new Error(`ffmpeg failed (${code}): ${await new Response(proc.stderr).text()}`);
  const reader = new OggReader();
  const packets = reader.push(bytes).slice(2); // OpusHead, OpusTags
  const start = opts.startMicros ?? 1_700_000_000_000_000;
  const first = opts.firstSeq ?? 0;
  return packets.map((p, i) => ({ seq: (first + i) >>> 0, capturedAt: start + i * 20_000, samples: opusPacketSamples(p.data), data: p.data }));
}
