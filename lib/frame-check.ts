import { cv } from "./cv.ts";

/** What `client.ts --verify` found. */
export interface FrameCheckCounts {
  decoded: number;
  failed: number;
  wrongSize: number;
}

/**
 * Decodes every received frame and checks its size against what the server
 * announced: a diagnostic for links and tests, costing one JPEG decode per frame.
 */
export class FrameCheck {
  readonly counts: FrameCheckCounts = { decoded: 0, failed: 0, wrongSize: 0 };

  check(jpeg: Uint8Array, width: number, height: number): void {
    let img: { width: number; height: number };
    try {
      img = cv().decodeJpeg(jpeg);
    } catch {
      this.counts.failed++;
      return;
    }
    this.counts.decoded++;
    if (img.width !== width || img.height !== height) this.counts.wrongSize++;
  }
}
