/**
 * `--audio SRC`: where the server's sound comes from, and `--audio-bitrate`. Parsing
 * throws AudioSpecError; the flag table turns it into a usage error (exit 2).
 */
import { UserError } from "../errors/user-error.ts";

/** Where audio comes from, as given by `--audio`. */
export type AudioSourceSpec =
  | { kind: "default" }
  | { kind: "pulse"; name: string }
  | { kind: "alsa"; device: string }
  | { kind: "file" }
  | { kind: "test" };

/** A bad `--audio` or `--audio-bitrate` value; the message names the flag and what it takes. */
export class AudioSpecError extends UserError {
  override name = "AudioSpecError";
}

/** Longest device name taken (PulseAudio and ALSA names are far shorter). */
export const MAX_AUDIO_DEVICE_CHARS = 256;

const EXPECTED = "expected default, pulse:NAME, alsa:DEVICE, file or test";

/** Parses one `--audio` value. */
export function parseAudioSource(raw: string, flag = "--audio"): AudioSourceSpec {
  const bad = (why = EXPECTED) => new AudioSpecError(`invalid ${flag}=${raw.length > 80 ? `${raw.slice(0, 80)}...` : raw}: ${why}`);
  if (raw === "default" || raw === "file" || raw === "test") return { kind: raw };
  for (const kind of ["pulse", "alsa"] as const) {
    if (!raw.startsWith(`${kind}:`)) continue;
    const name = raw.slice(kind.length + 1);
    if (name === "") throw bad(`expected ${kind}:${kind === "pulse" ? "NAME" : "DEVICE"} with a device name after the colon`);
    if (name.length > MAX_AUDIO_DEVICE_CHARS) throw bad(`device name longer than ${MAX_AUDIO_DEVICE_CHARS} characters`);
    // ffmpeg takes the name as one argument; control characters have no place in a device name.
    if (/[\x00-\x1f\x7f]/.test(name)) throw bad("device name with a control character");
    return kind === "pulse" ? { kind, name } : { kind, device: name };
  }
  throw bad();
}

/** How `--audio` writes `spec`: the inverse of parseAudioSource. */
export function audioSourceSpelling(spec: AudioSourceSpec): string {
  switch (spec.kind) {
    case "pulse": return `pulse:${spec.name}`;
    case "alsa": return `alsa:${spec.device}`;
    default: return spec.kind;
  }
}

/** What --audio-bitrate takes, bits per second (libopus's range, 6 to 510 kbit/s). */
export const AUDIO_BITRATE = { min: 6_000, max: 510_000 } as const;

/** Parses `--audio-bitrate`: `64k` (kbit/s) or `64000` (bit/s), within AUDIO_BITRATE. */
export function parseAudioBitrate(raw: string, flag = "--audio-bitrate"): number {
  const m = /^(\d{1,7}(?:\.\d{1,3})?)(k?)$/i.exec(raw.trim());
  const n = m ? Math.round(Number(m[1]) * (m[2] ? 1000 : 1)) : NaN;
  if (!m || !Number.isSafeInteger(n) || n < AUDIO_BITRATE.min || n > AUDIO_BITRATE.max) {
    throw new AudioSpecError(`invalid ${flag}=${raw}: expected bits per second ${formatAudioBitrate(AUDIO_BITRATE.min)}..${formatAudioBitrate(AUDIO_BITRATE.max)}, e.g. 64k or 64000`);
  }
  return n;
}

/** A bitrate the way parseAudioBitrate reads it: 64000 is `64k`. */
export function formatAudioBitrate(bps: number): string {
  return bps % 1000 === 0 ? `${bps / 1000}k` : String(bps);
}

/** Where a `file` audio source finds its file: the video source, when that is a file. */
export type VideoSourceKind = { kind: "file"; path: string } | { kind: "camera" | "gst" | "test" };

/**
 * The file `--audio file` reads, or throws AudioSpecError when the video source is not a
 * file; null for every other audio source.
 */
export function audioFilePath(spec: AudioSourceSpec, video: VideoSourceKind | undefined, flag = "--audio"): string | null {
  if (spec.kind !== "file") return null;
  if (video?.kind === "file") return video.path;
  const what = video === undefined ? "no --source" : `--source ${video.kind === "camera" ? "camera" : video.kind}`;
  throw new AudioSpecError(`invalid ${flag}=file: it takes the audio track of a video file --source, and the server has ${what}; use --audio default, pulse:NAME or alsa:DEVICE for a microphone`);
}
