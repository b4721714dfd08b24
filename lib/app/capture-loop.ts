/**
 * One camera's capture loop: each frame to where it goes, until the server stops, the
 * source ends (a file without --loop), or capture fails. Several cameras run one loop
 * each, side by side; one that ends leaves the others going.
 */
import type { CaptureSource } from "../capture/capture.ts";
import type { Logger } from "../log/format.ts";
import type { Frame } from "../wire/frame.ts";
import type { StopSignal } from "./run-main.ts";

/** How a camera's loop ended. */
export type LoopEnd = "stopped" | "ended" | "failed";

export async function captureLoop(source: Pick<CaptureSource, "next" | "description">, signal: Pick<StopSignal, "race" | "stopped">, deliver: (frame: Frame) => void, log: Logger): Promise<LoopEnd> {
  try {
    while (!signal.stopped) {
      const frame = await signal.race(source.next());
      if (frame) {
        deliver(frame);
        continue;
      }
      if (signal.stopped) return "stopped";
      log.info("source ended", { source: source.description });
      return "ended";
    }
    return "stopped";
  } catch (e) {
    log.error("capture failed", { source: source.description, error: (e as Error).message });
    return "failed";
  }
}

/** Where camera `name`'s recordings go: `dir` itself for a server with one camera, else a folder of its own in it. */
export function cameraRecordDir(dir: string, name: string, several: boolean): string {
  return several ? `${dir.replace(/\/+$/, "")}/${name}` : dir;
}
