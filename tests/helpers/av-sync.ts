import { resolveFfmpeg, resolveFfprobe } from "../../lib/media/ffmpeg.ts";

/**
 * Reads back what a recording holds, for audio/video sync tests: the pictures' timestamps and
 * brightness, the decoded audio, and where beeps begin. Times are the file's presentation
 * times (what a player goes by), in seconds.
 */

/** One decoded picture. */
export interface Picture {
  pts: number;
  /** Mean luma, 0..255. */
  mean: number;
}

/** What ffprobe says of a file's streams. */
export interface StreamInfo {
  video: { codec: string; frames: number } | null;
  audio: { codec: string; channels: number; sampleRate: number } | null;
}

async function run(args: string[]): Promise<{ stdout: Uint8Array; stderr: string; code: number }> {
  const proc = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${args.slice(0, 3).join(" ")} ... failed (${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return { stdout, stderr, code };
}

/** The codecs (and counted frames) of the first video and audio streams. */
export async function streamInfo(path: string): Promise<StreamInfo> {
  const { stdout } = await run([
    resolveFfprobe(), "-v", "error", "-count_frames", "-show_entries", "stream=codec_type,codec_name,channels,sample_rate,nb_read_frames", "-of", "json", path,
  ]);
  const json = JSON.parse(new TextDecoder().decode(stdout)) as { streams: Record<string, string | number>[] };
  const v = json.streams.find((s) => s.codec_type === "video");
  const a = json.streams.find((s) => s.codec_type === "audio");
  return {
    video: v ? { codec: String(v.codec_name), frames: Number(v.nb_read_frames) } : null,
    audio: a ? { codec: String(a.codec_name), channels: Number(a.channels), sampleRate: Number(a.sample_rate) } : null,
  };
}

/** Every picture of the first video stream with its presentation time and mean brightness. */
export async function pictures(path: string): Promise<Picture[]> {
  const { stderr } = await run([
    resolveFfmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "info", "-i", path, "-map", "0:v:0",
    "-vf", "scale=16:16,format=gray,showinfo", "-fps_mode", "passthrough", "-f", "null", "-",
  ]);
  const out: Picture[] = [];
  for (const line of stderr.split("\n")) {
    const m = /pts_time:\s*(-?[\d.]+).*?\bmean:\[(\d+)/.exec(line);
    if (m) out.push({ pts: Number(m[1]), mean: Number(m[2]) });
  }
  return out;
}

/** The first audio stream decoded to 48 kHz mono s16, and the presentation time of its first sample (pre-skip and pre-roll dropped). */
export async function decodeAudio(path: string): Promise<{ startPts: number; samples: Int16Array }> {
  const { stdout } = await run([
    resolveFfmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "pipe:1",
  ]);
  const samples = new Int16Array(stdout.buffer.slice(stdout.byteOffset, stdout.byteOffset + (stdout.byteLength & ~1)));
  const probe = await run([
    resolveFfprobe(), "-v", "error", "-select_streams", "a:0", "-show_entries", "frame=pts_time", "-read_intervals", "%+#50", "-of", "csv=p=0", path,
  ]);
  const startPts = Number(new TextDecoder().decode(probe.stdout).trim().split("\n")[0]);
  return { startPts, samples };
}

/**
 * Sample indices where a beep begins: the first sample louder than `threshold` after at least
 * `quietSec` below it (the start of the audio counts as quiet).
 */
export function beepOnsets(samples: Int16Array, threshold = 3000, quietSec = 0.3): number[] {
  const quiet = Math.round(quietSec * 48_000);
  const out: number[] = [];
  let lastLoud = -quiet - 1;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]!) < threshold) continue;
    if (i - lastLoud > quiet) out.push(i);
    lastLoud = i;
  }
  return out;
}

/** The median of `xs` (NaN when empty). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
