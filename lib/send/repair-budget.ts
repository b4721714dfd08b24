/**
 * Repair messages a viewer may send per second, on average: a 150-datagram frame at 2 %
 * loss has about three gaps, each noticed (and asked for) on its own, so 30 fps needs
 * about 100 a second. The byte budget, not this, is what bounds the resent bytes.
 */
export const DEFAULT_REPAIR_REQUESTS_PER_S = 250;
/** Repair messages a viewer may send at once after a quiet spell. */
export const DEFAULT_REPAIR_REQUEST_BURST = 100;
/** Resent bytes a viewer earns per byte it was sent: repair never exceeds this share of its stream. */
export const DEFAULT_REPAIR_BYTE_FRACTION = 0.2;
/** Most resent bytes a viewer may have in hand (a 1280x720 frame is ~200 kB). */
export const DEFAULT_REPAIR_BYTE_BURST = 1024 * 1024;

/** Limits of one viewer's repair budget. */
export interface RepairBudgetLimits {
  requestsPerSecond: number;
  requestBurst: number;
  /** Bytes of resend allowance earned per byte of stream sent to the viewer. */
  byteFraction: number;
  byteBurst: number;
}

/** The defaults above, as one object. */
export const DEFAULT_REPAIR_BUDGET: RepairBudgetLimits = {
  requestsPerSecond: DEFAULT_REPAIR_REQUESTS_PER_S,
  requestBurst: DEFAULT_REPAIR_REQUEST_BURST,
  byteFraction: DEFAULT_REPAIR_BYTE_FRACTION,
  byteBurst: DEFAULT_REPAIR_BYTE_BURST,
};

/**
 * One viewer's allowance for retransmissions, so a viewer cannot turn the server
 * into an amplifier: a token bucket of repair messages refilled with time, and one of
 * bytes refilled only by what the viewer was sent (a fraction of it), so resends stay a
 * bounded share of that viewer's own stream whatever it asks. Each viewer has its
 * own: a flood spends only the flooder's budget. Pure: driven by `now` (ms).
 */
export class RepairBudget {
  readonly limits: RepairBudgetLimits;
  #requests: number;
  #bytes: number;
  #at: number;
  /** Repair messages taken. */
  requestsAllowed = 0;
  /** Repair messages refused for the message rate. */
  requestsDropped = 0;
  /** Resent bytes granted. */
  bytesAllowed = 0;
  /** Resent bytes refused for the byte budget. */
  bytesRefused = 0;

  constructor(now: number, limits: RepairBudgetLimits = DEFAULT_REPAIR_BUDGET) {
    for (const [k, v] of Object.entries(limits)) {
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`repair budget ${k}=${v}: expected a finite number >= 0`);
    }
    this.limits = limits;
    this.#requests = limits.requestBurst;
    // A viewer starts with nothing to spend: it earns resends by being sent the stream.
    this.#bytes = 0;
    this.#at = now;
  }

  /** Bytes were sent to the viewer (first sends, not resends): it earns a share of them. */
  sent(bytes: number): void {
    this.#bytes = Math.min(this.limits.byteBurst, this.#bytes + bytes * this.limits.byteFraction);
  }

  /** Takes one repair message's token; false (and counted) when the viewer asks too often. */
  takeRequest(now: number): boolean {
    const elapsed = Math.max(0, now - this.#at) / 1000;
    this.#at = Math.max(this.#at, now);
    this.#requests = Math.min(this.limits.requestBurst, this.#requests + elapsed * this.limits.requestsPerSecond);
    if (this.#requests >= 1) {
      this.#requests -= 1;
      this.requestsAllowed++;
      return true;
    }
    this.requestsDropped++;
    return false;
  }

  /** Takes `n` bytes of resend; false (and counted) when the budget has fewer. */
  takeBytes(n: number): boolean {
    if (n <= this.#bytes) {
      this.#bytes -= n;
      this.bytesAllowed += n;
      return true;
    }
    this.bytesRefused += n;
    return false;
  }

  /** Bytes of resend the viewer could be granted now. */
  get bytesAvailable(): number {
    return this.#bytes;
  }
}
