import { formatByteSize, parseByteSize, UsageError } from "./cli.ts";
import { valueFlag } from "./flags.ts";
import { DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES, MIN_LOG_MAX_BYTES } from "../log/file-sink.ts";

/** `--log-max SIZE`, the same row for the server and the client: where the log file is rotated. */
export const LOG_MAX_FLAG = valueFlag("log-max", "SIZE", DEFAULT_LOG_MAX_BYTES, (raw, flag) => {
  const bytes = parseByteSize(flag, raw);
  if (bytes < MIN_LOG_MAX_BYTES) throw new UsageError(`invalid ${flag}=${raw}: at least ${formatByteSize(MIN_LOG_MAX_BYTES)}`);
  return bytes;
}, `rotate the log file at this size, keeping FILE.1 to FILE.${DEFAULT_LOG_KEEP}`, formatByteSize);
