import { FfmpegNotFoundError, resolveFfmpeg } from "../media/ffmpeg.ts";
import { checkWritable, recordAdvice, RecordError, type RecordCliFlags } from "../record/record-dir.ts";

/**
 * Checks, before connecting or capturing, what recording needs: a folder it can write
 * and an ffmpeg. Either missing is a RecordError whose advice is worded in `flags`,
 * the flags of the program that prints it.
 */
export function checkCanRecord(dir: string, flags: RecordCliFlags): void {
  checkWritable(dir, flags);
  try {
    resolveFfmpeg();
  } catch (e) {
    if (e instanceof FfmpegNotFoundError) throw new RecordError(`cannot record: ${e.message}${recordAdvice(flags, "off")}`);
    throw e;
  }
}
