import { accessSync, constants, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { embeddedFfmpeg } from "./embedded-ffmpeg.ts";
import { UserError } from "../errors/user-error.ts";
import { errorText } from "../errors/error-text.ts";

/** No usable ffmpeg was found; the message names every place that was tried. */
export class FfmpegNotFoundError extends UserError {
  override name = "FfmpegNotFoundError";
}

/** Where the resolved binary came from, for `--version` and logs. */
export type FfmpegOrigin = "FFMPEG_BIN" | "ffmpeg-static" | "embedded" | "PATH";

/** What resolution needs from the outside world (injected in tests). */
export interface FfmpegProbe {
  env: Record<string, string | undefined>;
  /** Path of ffmpeg-static's binary when the package is installed, else null. */
  staticBinary: () => string | null;
  /**
   * Only in a compiled executable: the ffmpeg embedded in it, extracted and runnable,
   * else null; throws when it cannot be extracted. It takes ffmpeg-static's place.
   */
  embeddedBinary?: () => string | null;
  /** Absolute path of a command on PATH, else null. */
  which: (cmd: string) => string | null;
  /** True when the path is an executable regular file. */
  isExecutable: (path: string) => boolean;
}

export const INSTALL_HINT = "install it with `sudo apt-get install ffmpeg` (Debian/Ubuntu) or `brew install ffmpeg` (macOS), or set FFMPEG_BIN=/path/to/ffmpeg";

/**
 * Resolves ffmpeg: `$FFMPEG_BIN`, then ffmpeg-static's binary (in a compiled executable:
 * the embedded one), then `ffmpeg` on PATH.
 */
export function resolveFfmpeg(probe: FfmpegProbe = systemProbe()): { path: string; origin: FfmpegOrigin } {
  const fromEnv = probe.env.FFMPEG_BIN;
  if (fromEnv) {
    if (!probe.isExecutable(fromEnv)) {
      throw new FfmpegNotFoundError(`FFMPEG_BIN=${fromEnv} is not an executable file; fix or unset it (${INSTALL_HINT})`);
    }
    return { path: fromEnv, origin: "FFMPEG_BIN" };
  }
  let bundled: string;
  if (probe.embeddedBinary) {
    try {
      const fromEmbedded = probe.embeddedBinary();
      if (fromEmbedded && probe.isExecutable(fromEmbedded)) return { path: fromEmbedded, origin: "embedded" };
      bundled = fromEmbedded ? `the embedded ffmpeg ${fromEmbedded} does not run` : "this executable embeds no ffmpeg";
    } catch (e) {
      // PATH may still have one; the reason matters only when it does not.
      bundled = errorText(e);
    }
  } else {
    const fromStatic = probe.staticBinary();
    if (fromStatic && probe.isExecutable(fromStatic)) return { path: fromStatic, origin: "ffmpeg-static" };
    bundled = "the optional ffmpeg-static package has no binary";
  }
  const fromPath = probe.which("ffmpeg");
  if (fromPath) return { path: fromPath, origin: "PATH" };
  throw new FfmpegNotFoundError(`ffmpeg not found: FFMPEG_BIN is not set, ${bundled}, and there is no ffmpeg on PATH; ${INSTALL_HINT}`);
}

/** ffprobe beside the resolved ffmpeg, else on PATH (used to check recordings). */
export function resolveFfprobe(probe: FfmpegProbe = systemProbe()): string {
  const fromEnv = probe.env.FFPROBE_BIN;
  if (fromEnv && probe.isExecutable(fromEnv)) return fromEnv;
  try {
    const beside = join(dirname(resolveFfmpeg(probe).path), process.platform === "win32" ? "ffprobe.exe" : "ffprobe");
    if (probe.isExecutable(beside)) return beside;
  } catch {
    // fall through to PATH
  }
  const fromPath = probe.which("ffprobe");
  if (fromPath) return fromPath;
  throw new FfmpegNotFoundError(`ffprobe not found beside ffmpeg or on PATH; ${INSTALL_HINT}`);
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function staticBinary(): string | null {
  try {
    const pkg = require.resolve("ffmpeg-static/package.json");
    return join(dirname(pkg), process.platform === "win32" ? "ffmpeg.exe" : "ffmpeg");
  } catch {
    return null;
  }
}

/** The real environment, filesystem and PATH (and in a compiled executable, its embedded ffmpeg). */
export function systemProbe(): FfmpegProbe {
  const probe: FfmpegProbe = { env: process.env, staticBinary, which: (cmd) => Bun.which(cmd), isExecutable };
  // An executable has no node_modules of its own: one found near the working folder is not ours.
  if (Bun.isStandaloneExecutable) return { ...probe, staticBinary: () => null, embeddedBinary: embeddedFfmpeg };
  return probe;
}
