import { parseByteSize, parseChoice, parseNumber } from "./cli.ts";
import type { SegmentWriterOptions } from "../record/segment-writer.ts";

/** Flags every recording command takes, for mri's `string` list. */
export const RECORD_FLAGS = ["segment", "container", "keep-days", "max-size", "min-free"] as const;

/** Help lines for the recording flags (shared by server and client). */
export const RECORD_HELP = `  --segment S          seconds per segment file (default 15)
  --container C        avi (MJPEG in AVI, plays everywhere) or mkv (Matroska, real timestamps); default avi
  --keep-days D        delete finished segments older than D days
  --max-size SIZE      keep the recordings under SIZE in total, e.g. 20G (oldest deleted first)
  --min-free SIZE      keep at least SIZE free on the disk, e.g. 1G (oldest deleted first)`;

/** The writer options the recording flags set. */
export type RecordSettings = Pick<SegmentWriterOptions, "segmentSeconds" | "container" | "keepDays" | "maxBytes" | "minFreeBytes">;

/** Validates the recording flags; throws UsageError naming the bad one. */
export function parseRecordFlags(args: Record<string, unknown>): RecordSettings {
  const a = args as Record<string, string | undefined>;
  return {
    segmentSeconds: a.segment === undefined ? 15 : parseNumber("segment", a.segment, 1, 86_400),
    container: a.container === undefined ? "avi" : parseChoice("container", a.container, ["avi", "mkv"] as const),
    keepDays: a["keep-days"] === undefined ? undefined : parseNumber("keep-days", a["keep-days"], 0.001, 36_500),
    maxBytes: a["max-size"] === undefined ? undefined : parseByteSize("max-size", a["max-size"]),
    minFreeBytes: a["min-free"] === undefined ? undefined : parseByteSize("min-free", a["min-free"]),
  };
}
