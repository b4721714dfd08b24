import { mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../errors/user-error.ts";
import { errorText } from "../errors/error-text.ts";

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

/**
 * What to do about a recording error, in the words of the caller's flags (`; choose
 * another --out or pass --no-record`), or nothing for a caller without a command line.
 * The spellings come from the caller's flag table only, never from here.
 */
export function recordAdvice(flags: RecordCliFlags | undefined, what: "dir" | "off"): string {
  if (!flags) return "";
  return what === "dir" ? `; choose another ${flags.dir} or ${flags.off}` : `; or ${flags.off}`;
}

/**
 * Creates `dir` and writes a probe file in it, or throws a RecordError saying what to do in
 * terms of the caller's `flags`.
 */
export function checkWritable(dir: string, flags?: RecordCliFlags): void {
  const fail = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const reason = REASONS[code] ? `${REASONS[code]} (${code})` : errorText(err);
    throw new RecordError(`cannot record into ${dir}: ${reason}${recordAdvice(flags, "dir")}`);
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
