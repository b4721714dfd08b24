import { formatByteSize, parseByteSize, UsageError } from "./cli.ts";
import { valueFlag } from "./flags.ts";
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES, DEFAULT_SECURITY_LOG_MAX_BYTES, MIN_LOG_MAX_BYTES, securityLogPath } from "../log/file-sink.ts";

/** A log file's cap: a size, no smaller than MIN_LOG_MAX_BYTES. */
function logCap(raw: string, flag: string): number {
  const bytes = parseByteSize(flag, raw);
  if (bytes < MIN_LOG_MAX_BYTES) throw new UsageError(`invalid ${flag}=${raw}: at least ${formatByteSize(MIN_LOG_MAX_BYTES)}`);
  return bytes;
}

/** `--log-max SIZE`, the same row for the server and the client: where the log file is rotated. */
export const LOG_MAX_FLAG = valueFlag("log-max", "SIZE", DEFAULT_LOG_MAX_BYTES, logCap,
  `rotate the log file at this size, keeping FILE.1 to FILE.${DEFAULT_LOG_KEEP}`, formatByteSize);

/** `--security-log FILE` (server): where security events go too, apart from the churn; null: beside --log. */
export const SECURITY_LOG_FLAG = valueFlag<string | null>("security-log", "FILE", null, (raw) => raw,
  "security events (refused tokens, lockouts, evictions, forged messages)\nalso go here, kept apart from the churn of the main log", () => "beside --log, e.g. lancam-server.security.log");

/** `--security-log-max SIZE` (server): the security log's own, smaller cap. */
export const SECURITY_LOG_MAX_FLAG = valueFlag("security-log-max", "SIZE", DEFAULT_SECURITY_LOG_MAX_BYTES, logCap,
  `rotate the security log at this size, keeping FILE.1 to FILE.${DEFAULT_LOG_KEEP}`, formatByteSize);

/**
 * Where the security log goes and how large it grows; path null when --log is not a
 * file (a device such as /dev/stdout, or a pipe) and no --security-log was given: the
 * security lines then go where all lines go. A UsageError when it is the main log itself.
 */
export function securityLogSettings(flags: { log: string; securityLog: string | null; securityLogMax: number }): { path: string | null; maxBytes: number } {
  if (flags.securityLog === null && !isFileOrAbsent(flags.log)) return { path: null, maxBytes: flags.securityLogMax };
  const path = flags.securityLog ?? securityLogPath(flags.log);
  // Two sinks rotating one file would each rename it under the other.
  if (resolve(path) === resolve(flags.log)) throw new UsageError(`invalid --security-log=${path}: it is the --log file; choose another`);
  return { path, maxBytes: flags.securityLogMax };
}

/** True for a regular file, or nothing yet (the log will be one); false for a device, pipe or socket. */
function isFileOrAbsent(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() || st.isDirectory(); // a folder is the log file's own error to report
  } catch {
    return true;
  }
}
