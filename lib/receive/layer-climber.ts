/**
 * Which layer's multicast group a viewer should be in, by its own loss: receiver-driven
 * layered multicast (RLM, McCanne, Jacobson and Vetterli 1996). The server cannot pace
 * one copy for many viewers, so each viewer picks the largest picture its own path
 * carries: it drops a layer when it loses too many frames, and after a hold tries the
 * next larger one again (a join experiment); a try that brings the loss back doubles
 * the hold, so a path that cannot carry a layer is not made to lose frames every few
 * seconds. Pure: the caller feeds it the time and its cumulative frame counts, and moves
 * between groups as it says.
 */

/** Share of the frames in the window lost or incomplete above which the viewer drops a layer. */
export const CLIMB_LOSS_SHARE = 0.05;
/** How far back the loss is measured; also how long a new group is given before it is judged. */
export const CLIMB_WINDOW_MS = 2000;
/**
 * After a move (and after the first join), frame counts are not taken for this long: the
 * frames lost in the change itself are the move's, not the path's. A group left keeps
 * arriving until the switch stops forwarding it, which an IGMP leave does only after its
 * last-member queries (Linux bridge and RFC 2236 defaults: 2 queries 1 s apart), and the
 * frames it crowded out are counted missing when the new group's first frame comes.
 * Measured in namespaces behind a 6 Mbit/s link: with 0.5 s, the move down from the full
 * layer was judged by that gap (90 % lost while 30 frames a second arrived) and went one
 * layer too far.
 */
export const CLIMB_SETTLE_MS = 2500;
/** Time on a smaller layer before the first try of the next larger one. */
export const CLIMB_HOLD_MS = 5000;
/** The hold never grows past this (a path that got better is tried again within minutes). */
export const CLIMB_MAX_HOLD_MS = 160_000;
/**
 * Fewest frames a window must hold to be judged: at 2 fps a window is 4 frames, and one
 * lost of 4 is no evidence of a full path.
 */
export const CLIMB_MIN_FRAMES = 8;

/** The viewer's frame counts since the session began; only their growth matters. */
export interface ClimbCounts {
  /** Frames that arrived whole. */
  complete: number;
  /** Frames that never arrived, or arrived in part and were given up. */
  lost: number;
}

/** A move the viewer should make now: leave layer `from`'s group, join `to`'s. */
export interface LayerMove {
  from: number;
  to: number;
  /** "loss": too many frames lost on `from`; "probe": `from` was clean for the hold, so `to` is tried. */
  why: "loss" | "probe";
  /** The loss share that decided it, over the window. */
  lossShare: number;
  /** After a drop: how long until the next try of a larger layer. */
  holdMs: number;
}

export interface LayerClimberOptions {
  /** Layers there are, the full one included (1: nothing to climb). */
  layers: number;
  lossShare?: number;
  windowMs?: number;
  holdMs?: number;
  maxHoldMs?: number;
  minFrames?: number;
  settleMs?: number;
}

/** One viewer's layer and its RLM timers. */
export class LayerClimber {
  readonly #layers: number;
  readonly #lossShare: number;
  readonly #windowMs: number;
  readonly #baseHoldMs: number;
  readonly #maxHoldMs: number;
  readonly #minFrames: number;
  readonly #settleMs: number;
  #layer = 0;
  /** The last move, until the next: what revert() undoes. */
  #last: LayerMove | null = null;
  /** Counts at each tick within the window, oldest first (cleared at each move: the old group's frames say nothing of the new one's). */
  #samples: { at: number; counts: ClimbCounts }[] = [];
  /** When the current group was joined: it is judged only once a whole window has passed. */
  #movedAt: number;
  /** The hold before the next try, doubled by each try undone by loss. */
  #holdMs: number;
  /** No try of a larger layer before this. */
  #nextProbeAt = -Infinity;
  /** When the last try began, while it is still being judged (a drop within the judging time undoes it). */
  #probeAt: number | null = null;

  constructor(opts: LayerClimberOptions, now: number) {
    if (!Number.isInteger(opts.layers) || opts.layers < 1) throw new RangeError(`layers=${opts.layers}: expected an integer >= 1`);
    this.#layers = opts.layers;
    this.#lossShare = opts.lossShare ?? CLIMB_LOSS_SHARE;
    this.#windowMs = opts.windowMs ?? CLIMB_WINDOW_MS;
    this.#baseHoldMs = opts.holdMs ?? CLIMB_HOLD_MS;
    this.#maxHoldMs = opts.maxHoldMs ?? CLIMB_MAX_HOLD_MS;
    this.#minFrames = opts.minFrames ?? CLIMB_MIN_FRAMES;
    this.#settleMs = opts.settleMs ?? CLIMB_SETTLE_MS;
    this.#holdMs = this.#baseHoldMs;
    this.#movedAt = now;
  }

  /** The layer whose group the viewer should be in: 0 the full picture, then ever smaller. */
  get layer(): number {
    return this.#layer;
  }

  /** The hold the next drop would start. */
  get holdMs(): number {
    return this.#holdMs;
  }

  /**
   * Time passes with the viewer's cumulative counts; a move when one is due, else null.
   * Called about every few hundred ms; the caller makes the move (and says so) at once.
   */
  tick(now: number, counts: ClimbCounts): LayerMove | null {
    const judgedFrom = this.#movedAt + this.#settleMs;
    if (now < judgedFrom) return null;
    this.#samples.push({ at: now, counts: { ...counts } });
    // Keep one sample at or before the window's start: the window is measured from it.
    while (this.#samples.length > 2 && this.#samples[1]!.at <= now - this.#windowMs) this.#samples.shift();
    // A try that lasted a whole judging time without loss succeeded: the hold starts over.
    if (this.#probeAt !== null && now - this.#probeAt >= this.#judgingMs()) {
      this.#probeAt = null;
      this.#holdMs = this.#baseHoldMs;
    }
    if (now - judgedFrom < this.#windowMs) return null;
    const first = this.#samples[0]!.counts;
    const complete = counts.complete - first.complete;
    const lost = counts.lost - first.lost;
    const frames = complete + lost;
    // Too few frames to tell (a slow camera, a pause): no move either way.
    if (frames < this.#minFrames) return null;
    const share = lost / frames;
    if (share > this.#lossShare) return this.#layer + 1 < this.#layers ? this.#drop(now, share) : null;
    if (this.#layer > 0 && now >= this.#nextProbeAt) return this.#move(now, this.#layer - 1, "probe", share);
    return null;
  }

  /**
   * The last move could not be made (the new group could not be joined, or nothing came
   * by it): back to the layer before, as if the move had never been. A try that could
   * not be made is a failed try: the hold doubles.
   */
  revert(now: number): void {
    const m = this.#last;
    if (!m || m.to !== this.#layer) return;
    this.#last = null;
    this.#layer = m.from;
    this.#movedAt = now;
    this.#samples = [];
    if (m.why === "probe") {
      this.#probeAt = null;
      this.#holdMs = Math.min(this.#holdMs * 2, this.#maxHoldMs);
    }
    this.#nextProbeAt = now + this.#holdMs;
  }

  /** A try is judged for its settling time and two windows: loss within that undoes it. */
  #judgingMs(): number {
    return this.#settleMs + 2 * this.#windowMs;
  }

  #drop(now: number, share: number): LayerMove {
    // The larger layer was just tried and the loss came back: wait twice as long before the next try.
    if (this.#probeAt !== null) this.#holdMs = Math.min(this.#holdMs * 2, this.#maxHoldMs);
    this.#probeAt = null;
    this.#nextProbeAt = now + this.#holdMs;
    return this.#move(now, this.#layer + 1, "loss", share);
  }

  #move(now: number, to: number, why: LayerMove["why"], share: number): LayerMove {
    const from = this.#layer;
    this.#layer = to;
    this.#movedAt = now;
    this.#samples = [];
    if (why === "probe") {
      this.#probeAt = now;
      // One step up per hold, however clean: each larger layer is a try of its own.
      this.#nextProbeAt = now + this.#holdMs;
    }
    this.#last = { from, to, why, lossShare: share, holdMs: this.#holdMs };
    return this.#last;
  }
}
