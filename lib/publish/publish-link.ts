/**
 * The connection bookkeeping of one publish target, apart from any process: when to start ffmpeg,
 * when a frame may go to it, when it is stuck, and how long to wait after it fails.
 *
 *            first frame                 ffmpeg reports output
 *   idle ───────────────> connecting ───────────────────────> publishing
 *    ^                      │   │ connect timeout: stop            │ pipe full too long: stop
 *    │ restart (new size)   │   v                                  v
 *    └──────────────────── exited ──> backoff (0.5 s, 1 s, 2 s ... 10 s) ──> connecting
 *                                               first frame after the wait
 *
 * Driven by `offer(now)` for each frame and by the wrapper's reports (started, publishing,
 * ended); times are milliseconds on any monotonic clock. No timers: a target with no frames to
 * send has nothing to retry for.
 */

/** Where one target stands. */
export type PublishState = "idle" | "connecting" | "publishing" | "backoff" | "closed";

/** How patient a target is; all in milliseconds. */
export interface PublishTimings {
  /** The wait after the first failure; each failure in a row doubles it. */
  firstRetryMs: number;
  /** The longest wait between attempts. */
  maxRetryMs: number;
  /** An attempt that neither publishes nor fails within this is ended (a server that accepts TCP but never answers). */
  connectTimeoutMs: number;
  /** A publishing ffmpeg whose input pipe stays full this long is ended (the server stopped reading). */
  stallMs: number;
  /** A connection that published at least this long starts the waits again from firstRetryMs. */
  stableMs: number;
}

/** Defaults: retries at 0.5 s doubling to 10 s. */
export const DEFAULT_TIMINGS: Readonly<PublishTimings> = {
  firstRetryMs: 500,
  maxRetryMs: 10_000,
  connectTimeoutMs: 10_000,
  stallMs: 5_000,
  stableMs: 10_000,
};

/** Why the link asks for ffmpeg to be ended. */
export type StopReason = "connect timeout" | "stalled";

/** What to do with an offered frame. */
export type Decision =
  | { readonly do: "start" }
  | { readonly do: "send" }
  | { readonly do: "drop"; readonly why: "offline" | "slow" }
  | { readonly do: "stop"; readonly why: StopReason };

const START: Decision = { do: "start" };
const SEND: Decision = { do: "send" };
const DROP_OFFLINE: Decision = { do: "drop", why: "offline" };
const DROP_SLOW: Decision = { do: "drop", why: "slow" };
const STOP_TIMEOUT = { do: "stop", why: "connect timeout" } as const satisfies Decision;
const STOP_STALLED = { do: "stop", why: "stalled" } as const satisfies Decision;

/** What an ended ffmpeg means for the next attempt. */
export interface Ended {
  /** False when the end was asked for (a restart, or closing): not counted, no wait. */
  failure: boolean;
  /** Milliseconds until the next attempt (0: with the next frame). */
  retryInMs: number;
  /** The state the link was in when ffmpeg ended. */
  was: PublishState;
}

/** One target's connect / publish / back-off cycle. */
export class PublishLink {
  readonly timings: Readonly<PublishTimings>;
  #state: PublishState = "idle";
  #since: number;
  #retryAt = 0;
  #nextWaitMs: number;
  #starts = 0;
  #failures = 0;
  /** An end was asked for (by stop or restart): the coming exit is expected. */
  #ending: StopReason | "restart" | null = null;

  constructor(timings: Partial<PublishTimings> = {}, now = 0) {
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
    const t = this.timings;
    if (!(t.firstRetryMs > 0 && t.maxRetryMs >= t.firstRetryMs)) {
      throw new RangeError(`retry waits must satisfy 0 < firstRetryMs <= maxRetryMs, got ${t.firstRetryMs} and ${t.maxRetryMs}`);
    }
    if (!(t.connectTimeoutMs > 0 && t.stallMs > 0 && t.stableMs >= 0)) {
      throw new RangeError(`connectTimeoutMs and stallMs must be > 0 and stableMs >= 0`);
    }
    this.#nextWaitMs = t.firstRetryMs;
    this.#since = now;
  }

  get state(): PublishState {
    return this.#state;
  }

  /** When the current state began. */
  get since(): number {
    return this.#since;
  }

  /** ffmpeg runs started so far. */
  get starts(): number {
    return this.#starts;
  }

  /** Starts after the first: each is a reconnect. */
  get reconnects(): number {
    return Math.max(0, this.#starts - 1);
  }

  /** ffmpeg runs that ended without being asked to. */
  get failures(): number {
    return this.#failures;
  }

  /** Milliseconds left before the next attempt, while backing off; else null. */
  retryIn(now: number): number | null {
    return this.#state === "backoff" ? Math.max(0, this.#retryAt - now) : null;
  }

  /** True between a stop or restart and the exit it asked for. */
  get ending(): boolean {
    return this.#ending !== null;
  }

  /**
   * A frame is offered at `now`. `pipeFullSince` is when ffmpeg's input last filled up (a write
   * still pending), or null while it has room.
   */
  offer(now: number, pipeFullSince: number | null): Decision {
    switch (this.#state) {
      case "closed":
        return DROP_OFFLINE;
      case "idle":
        return START;
      case "backoff":
        return now >= this.#retryAt ? START : DROP_OFFLINE;
      case "connecting":
        if (this.#ending) return DROP_OFFLINE;
        if (now - this.#since >= this.timings.connectTimeoutMs) {
          this.#ending = STOP_TIMEOUT.why;
          return STOP_TIMEOUT;
        }
        return pipeFullSince === null ? SEND : DROP_SLOW;
      case "publishing":
        if (this.#ending) return DROP_OFFLINE;
        if (pipeFullSince !== null && now - pipeFullSince >= this.timings.stallMs) {
          this.#ending = STOP_STALLED.why;
          return STOP_STALLED;
        }
        return pipeFullSince === null ? SEND : DROP_SLOW;
    }
  }

  /** ffmpeg was started at `now` (after a "start" decision). */
  started(now: number): void {
    if (this.#state === "closed") return;
    this.#set("connecting", now);
    this.#starts++;
    this.#ending = null;
  }

  /** ffmpeg reported its first output at `now`: the server took the stream. True when this is news. */
  publishing(now: number): boolean {
    if (this.#state !== "connecting" || this.#ending) return false;
    this.#set("publishing", now);
    return true;
  }

  /**
   * The running ffmpeg must be replaced without counting a failure (the frame size changed).
   * True when there is one to end; the next frame after its exit starts another at once.
   */
  restart(): boolean {
    if (this.#state !== "connecting" && this.#state !== "publishing") return false;
    if (this.#ending === null) this.#ending = "restart";
    return true;
  }

  /** The running ffmpeg exited at `now`. */
  ended(now: number): Ended {
    const was = this.#state;
    if (was === "closed") return { failure: false, retryInMs: 0, was };
    if (was !== "connecting" && was !== "publishing") return { failure: false, retryInMs: this.retryIn(now) ?? 0, was };
    const asked = this.#ending;
    this.#ending = null;
    if (asked === "restart") {
      this.#set("idle", now);
      return { failure: false, retryInMs: 0, was };
    }
    this.#failures++;
    if (was === "publishing" && now - this.#since >= this.timings.stableMs) this.#nextWaitMs = this.timings.firstRetryMs;
    const wait = this.#nextWaitMs;
    this.#nextWaitMs = Math.min(wait * 2, this.timings.maxRetryMs);
    this.#retryAt = now + wait;
    this.#set("backoff", now);
    return { failure: true, retryInMs: wait, was };
  }

  /** No more attempts; every later frame is dropped. */
  close(now: number): void {
    this.#set("closed", now);
  }

  #set(state: PublishState, now: number): void {
    this.#state = state;
    this.#since = now;
  }
}
