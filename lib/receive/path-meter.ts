import type { PathCounters } from "../wire/control.ts";
import { seqLess } from "../wire/seq.ts";

/** How a datagram taken into a frame came: as first sent, resent on the viewer's request, or rebuilt here from parity. */
export type Arrival = "sent" | "resent" | "rebuilt";

/** What the meter needs of a datagram's header. */
export interface MeteredDatagram {
  frameNumber: number;
  fragmentIndex: number;
  fragmentCount: number;
  /** Capture time, µs since the Unix epoch (the server's clock). */
  capturedAt: number;
}

/**
 * Report intervals whose smallest one-way delay make up the base (about 10 s at one
 * report a second): long enough to have seen the path empty, short enough that a
 * change of route or of the server's encoding time is taken as the new normal soon.
 */
export const BASE_INTERVALS = 10;

/**
 * The standing queue is judged on the interval's last frames (about a quarter second
 * at 30 fps): a queue that grew during the interval shows at once, while a busy host
 * would have to be late with every one of them to look like one.
 */
export const QUEUE_FRAMES = 8;

const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;

/**
 * The least-squares slope of one-way delay over arrival time: (arrival − capture) per
 * frame against arrival, on the viewer's monotonic clock against the server's wall
 * clock. The two clocks' offset is a constant in every sample and drops out of a slope;
 * only whether the delay grows (a queue building on the path) or shrinks remains.
 * Constant memory: running sums, relative to the window's first sample so they stay exact.
 */
export class DelayTrend {
  #n = 0;
  #t0 = 0;
  #d0 = 0;
  #st = 0;
  #sd = 0;
  #stt = 0;
  #std = 0;

  /** One frame's first datagram: arrival on the monotonic clock (ms), capture time (µs since the epoch). */
  add(arrivalMs: number, capturedAtUs: number): void {
    const delay = arrivalMs - capturedAtUs / 1000;
    if (this.#n === 0) {
      this.#t0 = arrivalMs;
      this.#d0 = delay;
    }
    const t = arrivalMs - this.#t0;
    const d = delay - this.#d0;
    this.#n++;
    this.#st += t;
    this.#sd += d;
    this.#stt += t * t;
    this.#std += t * d;
  }

  /** Frames in the window. */
  get samples(): number {
    return this.#n;
  }

  /** The slope in µs of delay per second of arrival (0 with fewer than two distinct arrival times). */
  slopeUsPerS(): number {
    const n = this.#n;
    const den = n * this.#stt - this.#st * this.#st;
    if (n < 2 || den <= 0) return 0;
    // ms per ms is dimensionless; × 1e6 gives µs per s.
    return ((n * this.#std - this.#st * this.#sd) / den) * 1e6;
  }

  /** Starts a new window. */
  reset(): void {
    this.#n = this.#st = this.#sd = this.#stt = this.#std = 0;
  }
}

/**
 * What a viewer measures of its path for the server's rate estimate: bytes and datagrams
 * that arrived, datagrams missing inside the frames it saw, and the trend of its one-way
 * delay since the last report. Fed every datagram the reassembler accepted (authentic,
 * not a duplicate), so a stranger's datagrams do not count. Pure: the clock is passed in.
 */
export class PathMeter {
  #bytes = 0;
  #datagrams = 0;
  #lost = 0;
  /** The newest frame seen, its fragment count and the highest fragment index seen of it. */
  #frame: { number: number; count: number; highest: number } | null = null;
  readonly #trend = new DelayTrend();
  /** The smallest one-way delay (arrival − capture, ms) of a frame's first datagram this interval. */
  #intervalMin = Infinity;
  /** The smallest of each of the last BASE_INTERVALS intervals, oldest first. */
  #mins: number[] = [];
  /** This interval's last QUEUE_FRAMES frames' delays, ms, oldest first. */
  #recent: number[] = [];

  /**
   * A datagram of `bytes` bytes (whole, header included) arrived at `nowMs` (monotonic).
   * A datagram rebuilt from parity did not cross the path: it is not counted as
   * arrived. A resent one did, but its original stays counted lost (it fills a gap that
   * was not a reordering): the loss is the path's all the same, and `--fec auto` and the
   * rate estimate go by it.
   */
  datagram(h: MeteredDatagram, bytes: number, nowMs: number, how: Arrival = "sent"): void {
    if (how === "rebuilt") return;
    this.#bytes += bytes;
    this.#datagrams++;
    const f = this.#frame;
    if (f === null || seqLess(f.number, h.frameNumber)) {
      // The tail of the previous frame that never came, and the head of this one.
      if (f) this.#lost += f.count - 1 - f.highest;
      this.#lost += h.fragmentIndex;
      this.#frame = { number: h.frameNumber, count: h.fragmentCount, highest: h.fragmentIndex };
      this.#trend.add(nowMs, h.capturedAt);
      const delay = nowMs - h.capturedAt / 1000;
      this.#intervalMin = Math.min(this.#intervalMin, delay);
      this.#recent.push(delay);
      if (this.#recent.length > QUEUE_FRAMES) this.#recent.shift();
      return;
    }
    if (f.number !== h.frameNumber) return; // late, from an older frame: already counted as lost
    if (h.fragmentIndex > f.highest) {
      this.#lost += h.fragmentIndex - f.highest - 1;
      f.highest = h.fragmentIndex;
    } else if (this.#lost > 0 && how === "sent") {
      // Reordered: it was counted missing when a later one came first.
      this.#lost--;
    }
  }

  /**
   * A datagram of this session arrived that no frame takes: a parity, or one late or a
   * duplicate (a resend that crossed its original). Sent and carried like the others:
   * the server counts it as sent, so it counts as arrived, and is no loss.
   */
  arrived(bytes: number): void {
    this.#bytes += bytes;
    this.#datagrams++;
  }

  /**
   * The counters for a report; the delay trend and the standing queue cover the frames
   * since the previous one.
   *
   * The standing queue is the smallest one-way delay of the interval's last
   * QUEUE_FRAMES frames above the smallest of the last BASE_INTERVALS intervals. The
   * clocks' offset drops out of the difference. A smallest delay, not a mean, because a
   * busy viewer (or server) handles some frames late, but seldom every one of several
   * in a row; a queue on the path delays every frame.
   */
  report(): PathCounters {
    const slope = Math.round(this.#trend.slopeUsPerS());
    const counters: PathCounters = {
      bytesReceived: Math.min(this.#bytes, Number.MAX_SAFE_INTEGER),
      datagramsReceived: Math.min(this.#datagrams, 0xffffffff),
      datagramsLost: Math.min(this.#lost, 0xffffffff),
      delayTrendUsPerS: Math.min(I32_MAX, Math.max(I32_MIN, slope)),
      delaySamples: Math.min(this.#trend.samples, 0xffff),
    };
    const least = this.#intervalMin;
    if (Number.isFinite(least)) {
      this.#mins.push(least);
      if (this.#mins.length > BASE_INTERVALS) this.#mins.shift();
      counters.queueDelayMs = Math.max(0, Math.min(...this.#recent) - Math.min(...this.#mins));
    }
    this.#intervalMin = Infinity;
    this.#recent = [];
    this.#trend.reset();
    return counters;
  }

  /**
   * The frames' path changed on purpose (another layer, whose encoding takes its own
   * time at the server): the delays seen so far are no base for the new ones.
   */
  rebase(): void {
    this.#mins = [];
    this.#intervalMin = Infinity;
    this.#recent = [];
  }

  /** A new session: the server's counts start over, so do these. */
  reset(): void {
    this.#bytes = this.#datagrams = this.#lost = 0;
    this.#frame = null;
    this.#trend.reset();
    this.#intervalMin = Infinity;
    this.#mins = [];
    this.#recent = [];
  }
}
