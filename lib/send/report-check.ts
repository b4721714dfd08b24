import { MAX_FPS_MILLIHERTZ } from "../wire/control.ts";
import { seqDiff } from "../wire/seq.ts";
import type { SendCounters } from "./sessions.ts";

/** How far a viewer's counts may run ahead of what was sent to it (a report is up to a second old either way). */
const REPORT_MARGIN = 8;

/** What a report or bye claims (fps and latency only reports carry). */
export interface ClaimedCounts {
  framesReceived: number;
  framesLost: number;
  framesIncomplete: number;
  fpsMillihertz?: number;
  latencyP50Us?: number;
}

/** What the server knows to check a claim against. */
export interface ReportBounds {
  sent: Readonly<SendCounters>;
  /** The stream's frame rate, x 1000: a viewer cannot receive faster than twice it. */
  streamFpsMillihertz: number;
  /** How long the session has existed, ms: no frame can have taken longer to arrive. */
  ageMs: number;
}

/**
 * Why a viewer's counts cannot be true for this session, or null when they can: it
 * cannot have received more frames than were sent to it, nor accounted (received,
 * lost, incomplete) for more frame numbers than the ones sent span, nor received at
 * more than twice the stream's rate, nor waited longer for a frame than it has been
 * a viewer.
 */
export function implausible(counts: ClaimedCounts, bounds: ReportBounds): string | null {
  const { sent } = bounds;
  const span = sent.firstFrame === null || sent.lastFrame === null ? 0 : seqDiff(sent.lastFrame, sent.firstFrame) + 1;
  const numbers = Math.max(sent.framesSent, span);
  if (counts.framesReceived > sent.framesSent + REPORT_MARGIN) return `framesReceived=${counts.framesReceived} of ${sent.framesSent} frames sent`;
  const accounted = counts.framesReceived + counts.framesLost + counts.framesIncomplete;
  if (accounted > numbers + REPORT_MARGIN) return `received, lost and incomplete frames add up to ${accounted}, ${numbers} were sent`;
  const fps = counts.fpsMillihertz;
  if (fps !== undefined && (fps > MAX_FPS_MILLIHERTZ || fps > 2 * bounds.streamFpsMillihertz)) {
    return `fpsMillihertz=${fps}, the stream has ${bounds.streamFpsMillihertz}`;
  }
  const latency = counts.latencyP50Us;
  if (latency !== undefined && latency / 1000 > bounds.ageMs) return `latencyP50Us=${latency} in a session ${Math.round(bounds.ageMs)} ms old`;
  return null;
}
