/**
 * When the picture in the viewer's window is not live, and why: a pure state machine
 * driven by (input, now). The window draws its text on the picture; an empty text
 * means all is well and nothing is drawn.
 */

/** The viewer's connection to the server. */
export type LinkState = "connecting" | "connected" | "reconnecting";

/** What the server says of its camera (a source message, docs/protocol.md 2.18), fed by `camera()`. */
export type CameraState = "available" | "unavailable";

/** Below this, a picture is never called old, however fast the stream. */
export const MIN_STALE_MS = 1000;
/** Frame intervals without a new picture before it is called old. */
const STALE_INTERVALS = 3;

/** How old a picture is, in words: "4.2 s", "3 min 12 s", "2 h 5 min". */
export function formatAge(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}

/** The window's status: nothing while pictures come, else what is wrong and how old the picture is. */
export class StreamStatus {
  #pictureAt: number | null = null;
  #datagramAt: number | null = null;
  #link: LinkState = "connecting";
  /** When the link last became connected: silence is counted from there, not from before the gap. */
  #connectedAt = 0;
  #camera: CameraState = "available";
  #staleMs = MIN_STALE_MS;

  /** A picture was shown (its datagrams arrived too). */
  picture(nowMs: number): void {
    this.#pictureAt = nowMs;
    this.#datagramAt = nowMs;
  }

  /** A datagram of the stream arrived (whether or not a picture completes). */
  datagram(nowMs: number): void {
    this.#datagramAt = nowMs;
  }

  /** The connection changed: connected (welcomed) or reconnecting (the server went away, a retry failed). */
  link(state: LinkState, nowMs: number): void {
    if (state === "connected" && this.#link !== "connected") this.#connectedAt = nowMs;
    this.#link = state;
  }

  /** The server's word on its camera: the one way a source's state reaches the window. */
  camera(state: CameraState): void {
    this.#camera = state;
  }

  /** The stream's frame rate: a slow stream's picture is called old only after a few of its intervals. */
  frameRate(fps: number): void {
    if (!Number.isFinite(fps) || fps <= 0) return;
    this.#staleMs = Math.max(MIN_STALE_MS, Math.min(60_000, (STALE_INTERVALS * 1000) / fps));
  }

  /** How long without a picture before it is called old, ms. */
  get staleAfterMs(): number {
    return this.#staleMs;
  }

  /** What is wrong now, or null while pictures come and nothing else is. */
  problem(nowMs: number): "reconnecting" | "camera unavailable" | "no datagrams arriving" | null {
    if (this.#link === "reconnecting") return "reconnecting";
    if (this.#camera === "unavailable") return "camera unavailable";
    if (this.#link === "connected") {
      const heard = Math.max(this.#datagramAt ?? -Infinity, this.#connectedAt);
      if (nowMs - heard > this.#staleMs) return "no datagrams arriving";
    }
    return null;
  }

  /**
   * The line to draw on the picture at `nowMs`: "" while the picture is live, else what is
   * wrong (when known) and the picture's age, e.g. "reconnecting, picture 4.2 s old".
   * Before the first picture there is nothing to draw it on, so "".
   */
  text(nowMs: number): string {
    if (this.#pictureAt === null) return "";
    const age = nowMs - this.#pictureAt;
    const problem = this.problem(nowMs);
    if (!problem && age <= this.#staleMs) return "";
    const old = `picture ${formatAge(age)} old`;
    return problem ? `${problem}, ${old}` : old;
  }
}
