import { cv } from "../native/cv.ts";

/** What `client.ts --verify` found. */
export interface FrameCheckCounts {
  decoded: number;
  failed: number;
  wrongSize: number;
}

/**
 * Decodes every received frame and checks its size against what the server
 * announced: a diagnostic for links and tests, costing one JPEG decode per frame
 * (the pixels stay in the addon). A frame that does not decode, or whose header
 * claims more than the addon's decode limit, counts as failed.
 */
export class FrameCheck {
  readonly counts: FrameCheckCounts = { decoded: 0, failed: 0, wrongSize: 0 };

  /**
   * Loads the addon now, before the viewer connects: loading it takes over a second on a
   * busy machine, and on the first frame that stalled the session (no heartbeat) with the
   * server counting towards its timeout. A missing addon is also an error at start, not one
   * per frame.
   */
  constructor() {
    cv();
  }

  check(jpeg: Uint8Array, width: number, height: number): void {
    const size = cv().jpegInfo(jpeg);
    if (!size) {
      this.counts.failed++;
      return;
    }
    this.counts.decoded++;
    if (size.width !== width || size.height !== height) this.counts.wrongSize++;
  }
}
