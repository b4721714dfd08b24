/**
 * The ffmpeg binary embedded in a `bun build --compile` executable, if any.
 *
 * In source form nothing is embedded. When scripts/build.ts has a binary to embed
 * (ffmpeg-static's, or `$LANCAM_EMBED_FFMPEG`), its plugin swaps the EMBEDDED line
 * below for an `import ... with { type: "file" }` of that binary. An embedded file
 * lives under `/$bunfs/`, where it can be read but not run, so the first use copies
 * it into a per-user cache folder and later runs reuse that copy.
 */
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { errorText } from "../errors/error-text.ts";

/** A binary inside the executable and what its extracted copy must match. */
export interface EmbeddedBinary {
  /** Where the executable holds it (`/$bunfs/...`): readable, not runnable. */
  path: string;
  /** Size in bytes: an extracted copy of another size is rewritten. */
  size: number;
  /** Leading hex digits of its SHA-256: names the cache folder, so two builds never share a copy. */
  hash: string;
}

// scripts/build.ts replaces this exact line when it embeds a binary: keep it on one line.
const EMBEDDED: EmbeddedBinary | null = null;

/** What this executable embeds, or null (always null when running from source). */
export function embeddedFfmpegInfo(): EmbeddedBinary | null {
  return EMBEDDED;
}

let extracted: string | undefined;

/**
 * The embedded ffmpeg as a runnable file, extracted on first use; null when nothing is
 * embedded. Throws when the cache folder cannot be written.
 */
export function embeddedFfmpeg(): string | null {
  if (!EMBEDDED) return null;
  extracted ??= extractBinary(EMBEDDED, join(cacheRoot(), `ffmpeg-${EMBEDDED.hash}`), process.platform === "win32" ? "ffmpeg.exe" : "ffmpeg");
  return extracted;
}

/**
 * lancam's per-user cache folder: `$XDG_CACHE_HOME/lancam` when set, else
 * `~/Library/Caches/lancam` (macOS), `%LOCALAPPDATA%\lancam` (Windows) or `~/.cache/lancam`.
 */
export function cacheRoot(env: Record<string, string | undefined> = process.env, platform: NodeJS.Platform = process.platform, home: string = homedir()): string {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "lancam");
  if (platform === "darwin") return join(home, "Library", "Caches", "lancam");
  if (platform === "win32") return join(env.LOCALAPPDATA ?? join(home, "AppData", "Local"), "lancam");
  return join(home, ".cache", "lancam");
}

/**
 * Copies `bin` to `dir/name` unless a runnable copy of the same size is already there,
 * and returns that path. The copy is written beside the target and renamed into place,
 * so a server and a client starting together never run a half-written file.
 */
export function extractBinary(bin: EmbeddedBinary, dir: string, name: string): string {
  const target = join(dir, name);
  if (sizeOf(target) === bin.size && runnable(target)) return target;
  const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    copyFile(bin.path, tmp);
    const written = sizeOf(tmp);
    if (written !== bin.size) throw new Error(`wrote ${written} bytes, expected ${bin.size}`);
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the folder itself is the problem: nothing was written
    }
    throw new Error(
      `cannot extract the embedded ffmpeg to ${target} (${errorText(err)}); ` +
        "set XDG_CACHE_HOME to a writable folder, or FFMPEG_BIN=/path/to/ffmpeg",
    );
  }
  return target;
}

// Only whole-file reads work under /$bunfs/ (copyFileSync and openSync fail there).
function copyFile(from: string, to: string): void {
  writeFileSync(to, readFileSync(from), { mode: 0o600 });
}

function sizeOf(path: string): number | null {
  try {
    const s = statSync(path);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

function runnable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
