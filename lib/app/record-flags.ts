import { formatByteSize, parseByteSize, parseChoice, parseNumber } from "./cli.ts";
import { valueFlag, type FlagValues } from "./flags.ts";
import { FFMPEG_FORMAT, type Container } from "../record/segment-naming.ts";
import type { SegmentWriterOptions } from "../record/segment-writer.ts";

/** Every recording container, in the order --container lists them; each is also its files' extension. */
export const CONTAINERS = Object.keys(FFMPEG_FORMAT) as Container[];

/** The recording flags both programs take, as rows of their flag tables, keyed like the writer's options. */
export const RECORD_FLAGS = {
  segmentSeconds: valueFlag("segment", "S", 15, (raw, flag) => parseNumber(flag, raw, 1, 86_400), "seconds per segment file"),
  container: valueFlag<Container>("container", "C", "avi", (raw, flag) => parseChoice(flag, raw, CONTAINERS),
    "avi (MJPEG in AVI, plays everywhere) or mkv (Matroska,\nreal timestamps)"),
  keepDays: valueFlag<number | undefined>("keep-days", "D", undefined, (raw, flag) => parseNumber(flag, raw, 0.001, 36_500),
    "delete finished segments older than D days"),
  maxBytes: valueFlag<number | undefined>("max-size", "SIZE", undefined, (raw, flag) => parseByteSize(flag, raw),
    "keep the recordings under SIZE in total, e.g. 20G (oldest deleted first)", undefined, { format: formatByteSize }),
  minFreeBytes: valueFlag<number | undefined>("min-free", "SIZE", undefined, (raw, flag) => parseByteSize(flag, raw),
    "keep at least SIZE free on the disk, e.g. 1G (oldest deleted first)", undefined, { format: formatByteSize }),
} as const;

/** The writer options the recording flags set. */
export type RecordSettings = Pick<SegmentWriterOptions, "segmentSeconds" | "container" | "keepDays" | "maxBytes" | "minFreeBytes">;

/** The recording settings out of a program's parsed flags. */
export function recordSettings(flags: FlagValues<typeof RECORD_FLAGS>): RecordSettings {
  const { segmentSeconds, container, keepDays, maxBytes, minFreeBytes } = flags;
  return { segmentSeconds, container, keepDays, maxBytes, minFreeBytes };
}
