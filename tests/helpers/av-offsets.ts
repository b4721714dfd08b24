// Lip sync as a user would check it with `--audio test`: the test audio beeps at each
// whole second of capture time and the test pattern flashes white on the first frame
// of that second. Live: when each beep is heard (a --audio-out wav: file, whose sample 0
// was played at the logged firstSampleAt) against when its flash frame was shown (the
// --display-log). Recorded: where each beep starts in a segment's audio against its
// white frame's timestamp. Offsets are beep minus picture, ms: positive, the sound
// comes after the picture.
import { readFileSync } from "node:fs";
import { decodeAudio, pictures } from "./av-sync.ts";

/** Quiet before an onset counts it, 50 ms: the start of a file is no onset (it may begin inside a beep). */
const QUIET_SAMPLES = 2400;
const LOUD = 3000;

/** Beeps are a second apart: loudness within half a second after an onset is that beep's (concealment can break one up). */
const SAME_BEEP_SAMPLES = 24_000;

/** Sample indices where a beep begins: loud after at least QUIET_SAMPLES of quiet seen in the file, half a second or more after the last. */
export function onsets(samples: Int16Array): number[] {
  const out: number[] = [];
  let quiet = 0;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]!) >= LOUD) {
      if (quiet >= QUIET_SAMPLES && (out.length === 0 || i - out.at(-1)! >= SAME_BEEP_SAMPLES)) out.push(i);
      quiet = 0;
    } else quiet++;
  }
  return out;
}

/** Samples of the test beep (100 ms). */
const BEEP_SAMPLES = 4800;

/**
 * Where each beep starts. "onset": its first loud sample. "edges": the same when the beep is
 * whole (100 ms loud); when it is shorter its first packet was lost (concealed from the
 * silence before it, it starts up to 40 ms late), and its end, 100 ms after its start,
 * says where it began. That measures the sync of the sound, not the loss of a packet.
 */
export function starts(samples: Int16Array, how: "onset" | "edges"): number[] {
  // A beep the file ends inside (a segment's last, the run's) is not whole: left out.
  const found = onsets(samples).filter((i) => i + BEEP_SAMPLES * 1.5 <= samples.length);
  if (how === "onset") return found;
  return found.map((i) => {
    let last = i;
    for (let j = i; j < i + BEEP_SAMPLES * 1.5; j++) if (Math.abs(samples[j]!) >= LOUD) last = j;
    return last - i >= BEEP_SAMPLES * 0.95 ? i : last - BEEP_SAMPLES;
  });
}

/** The shown frames of a --display-log: [capturedAt, shownAt] µs. */
export function displayLog(path: string): [number, number][] {
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split(" ").map(Number) as [number, number]);
}

/**
 * Live offsets (ms): each beep heard in `wav` (sample 0 played at `firstSampleAt`, µs),
 * paired with the flash frame of the same second. A flash frame is the first shown
 * frame of a new second of capture time; the beep of that second is the one heard
 * nearest its showing. Beeps heard before the first or after the last shown frame are
 * left out.
 */
export async function liveOffsets(wav: string, firstSampleAt: number, shown: [number, number][], how: "onset" | "edges" = "onset"): Promise<number[]> {
  const { samples } = await decodeAudio(wav);
  const heard = starts(samples, how).map((i) => firstSampleAt + (i * 1e6) / 48_000);
  const flashes: number[] = [];
  for (let i = 1; i < shown.length; i++) if (Math.floor(shown[i]![0] / 1e6) > Math.floor(shown[i - 1]![0] / 1e6)) flashes.push(shown[i]![1]);
  if (flashes.length === 0) return [];
  const first = shown[0]![1];
  const last = shown.at(-1)![1];
  return heard.filter((t) => t > first + 500_000 && t < last - 500_000).map((t) => {
    const nearest = flashes.reduce((a, b) => (Math.abs(b - t) < Math.abs(a - t) ? b : a));
    return (t - nearest) / 1000;
  });
}

/** Recorded offsets (ms) of one segment: each beep against the nearest white frame's timestamp. */
export async function recordedOffsets(path: string, how: "onset" | "edges" = "onset"): Promise<number[]> {
  const pics = await pictures(path);
  const white = pics.filter((p) => p.mean > 200).map((p) => p.pts);
  if (white.length === 0) return [];
  const { startPts, samples } = await decodeAudio(path);
  return starts(samples, how).map((i) => {
    const t = startPts + i / 48_000;
    const nearest = white.reduce((a, b) => (Math.abs(b - t) < Math.abs(a - t) ? b : a));
    return (t - nearest) * 1000;
  });
}
