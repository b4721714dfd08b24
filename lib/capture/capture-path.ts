/**
 * Which way a source's frames become JPEG, from what the opened capture says it
 * delivers: its own JPEG sent as it is, raw YUV encoded straight from the planes,
 * or (everything else) a picture decoded to BGR by OpenCV and encoded again.
 */
import type { YuvLayout } from "../native/cv.ts";

/** How frames become JPEG: "passthrough" sends the source's JPEG, "yuv" encodes raw planes, "bgr" decodes then encodes. */
export type CapturePath = "passthrough" | "yuv" | "bgr";

/** The path chosen, with the raw layout for "yuv". */
export type PathChoice = { path: "passthrough" } | { path: "yuv"; layout: YuvLayout } | { path: "bgr" };

/** What an opened capture reports about its frames. */
export interface SourceFormat {
  /** OpenCV's backend: "FFMPEG" (files), "V4L2" (cameras on Linux), "GSTREAMER", ... */
  backend: string;
  /** The codec's FOURCC, or a camera's pixel format ("MJPG", "YUYV"). */
  fourcc: string;
  /** FFmpeg only: the pixel format the codec decodes to ("I420", "YUY2"); "" elsewhere. */
  pixelFormat: string;
}

/** What the user asked for. */
export interface PathOptions {
  /** False: decode everything with OpenCV (the BGR path), as lancam did before raw packets. */
  rawPackets: boolean;
  /** True: never send the source's JPEG as it is; encode at --quality instead. */
  reencode: boolean;
}

// Tags FFmpeg and V4L2 give JPEG-per-frame video ("mjpe" is FFmpeg's codec name,
// for containers without a tag, e.g. Matroska). MJPEG-B ("mjpb") is not JPEG.
const JPEG_FOURCCS = new Set(["MJPG", "mjpg", "mjpe", "jpeg", "JPEG"]);
// Raw video: FFmpeg tags rawvideo with the pixel format's own code; V4L2 names it.
const I420_FOURCCS = new Set(["I420", "IYUV", "YU12"]);
const YUYV_FOURCCS = new Set(["YUY2", "YUYV", "YUNV"]);

/** The path for a source of `format`; the per-frame checks still catch what does not fit. */
export function choosePath(format: SourceFormat, opts: PathOptions): PathChoice {
  if (!opts.rawPackets) return { path: "bgr" };
  const { backend, fourcc, pixelFormat } = format;
  if (backend !== "FFMPEG" && backend !== "V4L2") return { path: "bgr" };
  if (JPEG_FOURCCS.has(fourcc)) return opts.reencode ? { path: "bgr" } : { path: "passthrough" };
  // FFmpeg reports the pixel format, V4L2 has only the FOURCC (which is the pixel format).
  const pixels = backend === "FFMPEG" ? pixelFormat : fourcc;
  if (I420_FOURCCS.has(fourcc) && I420_FOURCCS.has(pixels)) return { path: "yuv", layout: "i420" };
  if (YUYV_FOURCCS.has(fourcc) && YUYV_FOURCCS.has(pixels)) return { path: "yuv", layout: "yuyv" };
  return { path: "bgr" };
}
