import type { CaptureSource } from "../../lib/capture/capture.ts";
import type { Frame } from "../../lib/wire/frame.ts";

/** Up to `n` frames from a source, fewer if it ends first. */
export async function take(source: CaptureSource, n: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (let i = 0; i < n; i++) {
    const f = await source.next();
    if (!f) break;
    frames.push(f);
  }
  return frames;
}
