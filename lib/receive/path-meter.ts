import type { PathCounters } from "../wire/control.ts";
import { seqLess } from "../wire/seq.ts";

/** What the meter needs of a datagram's header. */
export interface MeteredDatagram {
  frameNumber: number;
  fragmentIndex: number;
  fragmentCount: number;
  /** Capture time, µs since the Unix epoch (the server's clock). */
  capturedAt: number;
}

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

  /** A datagram of `bytes` bytes (whole, header included) arrived at `nowMs` (monotonic). */
  datagram(h: MeteredDatagram, bytes: number, nowMs: number): void {
    this.#bytes += bytes;
    this.#datagrams++;
    const f = this.#frame;
    if (f === null || seqLess(f.number, h.frameNumber)) {
      // The tail of the previous frame that never came, and the head of this one.
      if (f) this.#lost += f.count - 1 - f.highest;
      this.#lost += h.fragmentIndex;
      this.#frame = { number: h.frameNumber, count: h.fragmentCount, highest: h.fragmentIndex };
      this.#trend.add(nowMs, h.capturedAt);
      return;
    }
    if (f.number !== h.frameNumber) return; // late, from an older frame: already counted as lost
    if (h.fragmentIndex > f.highest) {
      this.#lost += h.fragmentIndex - f.highest - 1;
      f.highest = h.fragmentIndex;
    } else if (this.#lost > 0) {
      // Reordered: it was counted missing when a later one came first.
      this.#lost--;
    }
  }

  /** The counters for a report; the delay trend covers the frames since the previous one. */
  report(): PathCounters {
    const slope = Math.round(this.#trend.slopeUsPerS());
    const counters: PathCounters = {
      bytesReceived: Math.min(this.#bytes, Number.MAX_SAFE_INTEGER),
      datagramsReceived: Math.min(this.#datagrams, 0xffffffff),
      datagramsLost: Math.min(this.#lost, 0xffffffff),
      delayTrendUsPerS: Math.min(I32_MAX, Math.max(I32_MIN, slope)),
      delaySamples: Math.min(this.#trend.samples, 0xffff),
    };
    this.#trend.reset();
    return counters;
  }

  /** A new session: the server's counts start over, so do these. */
  reset(): void {
    this.#bytes = this.#datagrams = this.#lost = 0;
    this.#frame = null;
    this.#trend.reset();
  }
}
