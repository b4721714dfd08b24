import { mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors/user-error.ts";

/** The output folder cannot be used; the message says what to do. */
export class RecordError extends UserError {
  override name = "RecordError";
}

const REASONS: Record<string, string> = {
  ENOTDIR: "a part of the path is a file, not a folder",
  EEXIST: "it exists and is not a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  ENOENT: "the folder cannot be created there",
  EDQUOT: "disk quota exceeded",
};

/** How a command's flags choose the recording folder and turn recording off, for error messages. */
export interface RecordCliFlags {
  /** The flag that names the folder, e.g. `--out`. */
  dir: string;
  /** What to do to run without recording, e.g. `pass --no-record`. */
  off: string;
}

/** The client's wording: `--out DIR`, and `--no-record` to view only. */
export const CLIENT_RECORD_FLAGS: RecordCliFlags = { dir: "--out", off: "pass --no-record" };

/**
 * Creates `dir` and writes a probe file in it, or throws a RecordError saying what to do in
 * terms of the caller's `flags`.
 */
export function checkWritable(dir: string, flags: RecordCliFlags = CLIENT_RECORD_FLAGS): void {
  const fail = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const reason = REASONS[code] ? `${REASONS[code]} (${code})` : (err instanceof Error ? err.message : String(err));
    throw new RecordError(`cannot record into ${dir}: ${reason}; choose another ${flags.dir} or ${flags.off}`);
  };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    fail(err);
  }
  const probe = join(dir, `.lancam-write-test-${process.pid}`);
  try {
    writeFileSync(probe, "");
    unlinkSync(probe);
  } catch (err) {
    fail(err);
  }
}
