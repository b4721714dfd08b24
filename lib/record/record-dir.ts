import { mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The output folder cannot be used; the message says what to do. */
export class RecordError extends Error {
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

/** Creates `dir` and writes a probe file in it, or throws a RecordError saying what to do. */
export function checkWritable(dir: string): void {
  const fail = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const reason = REASONS[code] ? `${REASONS[code]} (${code})` : (err instanceof Error ? err.message : String(err));
    throw new RecordError(`cannot record into ${dir}: ${reason}; choose another --out or pass --no-record`);
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
