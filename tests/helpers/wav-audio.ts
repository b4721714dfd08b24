import { readFileSync } from "node:fs";
import { decodeWavHeader, WAV_HEADER_BYTES, type WavInfo } from "../../lib/audio/wav-header.ts";

/** A WAV file `--audio-out wav:` wrote: its header and the samples actually in the file (channel 0). */
export function readWav(path: string): WavInfo & { samples: Int16Array } {
  const bytes = readFileSync(path);
  const info = decodeWavHeader(bytes);
  const body = bytes.subarray(WAV_HEADER_BYTES);
  const frames = Math.floor(body.length / (2 * info.channels));
  const all = new Int16Array(body.buffer.slice(body.byteOffset, body.byteOffset + frames * 2 * info.channels));
  const samples = info.channels === 1 ? all : all.filter((_, i) => i % info.channels === 0);
  return { ...info, samples };
}

/**
 * Where tones start in 48 kHz samples: the first sample above `threshold` after at
 * least `quietMs` below it (the test beep: 100 ms of 1 kHz each second).
 */
export function toneOnsets(samples: Int16Array, threshold = 3000, quietMs = 300): number[] {
  const quiet = (quietMs * 48_000) / 1000;
  const out: number[] = [];
  let lastLoud = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]!) < threshold) continue;
    if (i - lastLoud > quiet) out.push(i);
    lastLoud = i;
  }
  return out;
}

/** The peak magnitude of samples[from, to). */
export function peak(samples: Int16Array, from = 0, to = samples.length): number {
  let p = 0;
  for (let i = Math.max(0, from); i < Math.min(to, samples.length); i++) p = Math.max(p, Math.abs(samples[i]!));
  return p;
}
