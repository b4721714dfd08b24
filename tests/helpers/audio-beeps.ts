import type { AudioPacket } from "../../lib/wire/audio-packet.ts";
import { resolveFfmpeg } from "../../lib/media/ffmpeg.ts";
import { OggOpusWriter } from "../../lib/mux/ogg-opus.ts";

/** `packets` (mono) decoded by ffmpeg from the Ogg Opus that OggOpusWriter makes of them: 48 kHz PCM, pre-skip removed. */
export async function decodePackets(packets: readonly AudioPacket[]): Promise<Int16Array> {
  const w = new OggOpusWriter({ channels: 1, frameMs: 20 }, 1);
  const parts = [w.header(), ...packets.map((p, i) => w.page(p, i === packets.length - 1))];
  const dec = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-f", "s16le", "-ar", "48000", "-ac", "1", "pipe:1"], {
    stdin: new Blob(parts), stdout: "pipe", stderr: "pipe",
  });
  const pcm = new Int16Array(await new Response(dec.stdout).arrayBuffer());
  if ((await dec.exited) !== 0) throw new Error(`ffmpeg could not decode: ${await new Response(dec.stderr).text()}`);
  return pcm;
}

/**
 * Capture times (µs) of the beep onsets in `packets`: the first sample above a tenth of
 * full scale after at least 50 ms of quiet, timed by the capture time of the packet it
 * is in, as a viewer times it. The decoder drops the pre-skip, so PCM sample m is input
 * sample m: in the packet whose samples cover it.
 */
export async function beepOnsets(packets: readonly AudioPacket[]): Promise<number[]> {
  const pcm = await decodePackets(packets);
  const out: number[] = [];
  let k = 0;
  let first = 0; // input sample of packet k's start
  // Not loud at once: a stream that starts inside a beep has no onset there.
  let quiet = 0;
  for (let m = 0; m < pcm.length; m++) {
    if (Math.abs(pcm[m]!) > 3277) {
      if (quiet >= 2400) {
        while (k < packets.length - 1 && m >= first + packets[k]!.samples) first += packets[k++]!.samples;
        out.push(packets[k]!.capturedAt + ((m - first) * 1e6) / 48000);
      }
      quiet = 0;
    } else quiet++;
  }
  return out;
}

/** How far `micros` lies from the nearest whole second, µs (negative: before it). */
export function fromWholeSecond(micros: number): number {
  return ((((micros % 1e6) + 1e6 + 5e5) % 1e6) - 5e5);
}
