import { resolveFfprobe } from "./ffmpeg.ts";

/** What a recording holds, as ffprobe reads it. */
export interface VideoProbe {
  /** ffprobe's format name, e.g. `avi` or `matroska,webm`. */
  format: string;
  codec: string;
  width: number;
  height: number;
  /** Container duration in seconds, else the stream's; null when neither is known. */
  durationSec: number | null;
  /** Frames actually read (`-count_frames`); null when not counted. */
  frames: number | null;
  /** Frames the container declares (AVI: header length, empty chunks included); null if unknown. */
  declaredFrames: number | null;
  /** The stream's base frame rate as ffprobe prints it, e.g. `30/1`. */
  frameRate: string;
}

/** ffprobe failed or found no video stream; the message carries ffprobe's stderr. */
export class ProbeError extends Error {
  override name = "ProbeError";
}

interface ProbeJson {
  streams?: {
    codec_name?: string; width?: number; height?: number; duration?: string; nb_read_frames?: string; nb_frames?: string; r_frame_rate?: string;
  }[];
  format?: { format_name?: string; duration?: string };
}

const num = (s: string | undefined): number | null => {
  const n = s === undefined ? NaN : Number(s);
  return Number.isFinite(n) ? n : null;
};

/** Probes the first video stream of `path`; `countFrames` reads the whole file to count frames. */
export async function probeVideo(path: string, opts: { ffprobePath?: string; countFrames?: boolean } = {}): Promise<VideoProbe> {
  const ffprobe = opts.ffprobePath ?? resolveFfprobe();
  const args = [ffprobe, "-v", "error", "-select_streams", "v:0"];
  if (opts.countFrames ?? true) args.push("-count_frames");
  args.push(
    "-show_entries", "stream=codec_name,width,height,duration,nb_read_frames,nb_frames,r_frame_rate:format=format_name,duration",
    "-of", "json", path,
  );
  const proc = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new ProbeError(`ffprobe could not read ${path} (exit ${code}): ${err.trim().split("\n").slice(-3).join(" | ")}`);
  let json: ProbeJson;
  try {
    json = JSON.parse(out) as ProbeJson;
  } catch {
    throw new ProbeError(`ffprobe printed no JSON for ${path}: ${out.slice(0, 200)}`);
  }
  const stream = json.streams?.[0];
  if (!stream) throw new ProbeError(`no video stream in ${path}`);
  return {
    format: json.format?.format_name ?? "",
    codec: stream.codec_name ?? "",
    width: stream.width ?? 0,
    height: stream.height ?? 0,
    durationSec: num(json.format?.duration) ?? num(stream.duration),
    frames: num(stream.nb_read_frames),
    declaredFrames: num(stream.nb_frames),
    frameRate: stream.r_frame_rate ?? "",
  };
}
