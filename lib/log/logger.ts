import { AddressLimiter, addressKey, DEFAULT_PER_ADDRESS, OVERFLOW_KEY, type PerAddressLimit } from "./address-limiter.ts";
import { formatLine, LEVEL_ORDER as ORDER, type Fields, type Level, type Logger, type Sink } from "./format.ts";

// ---------------------------------------------------------------- loggers

/** How a logger (and every child of it) writes. */
export interface LoggerOptions {
  /** Per-address limit for WARN and ERROR lines, and joins and leaves, with a `client` field; null logs every line. */
  perAddress?: PerAddressLimit | null;
  /** Monotonic ms for the per-address intervals (default performance.now). */
  now?: () => number;
}

/** What a logger and its children share: the sinks, the level, the clocks and one per-address limiter. */
interface Shared {
  sinks: Sink[];
  minLevel: Level;
  clock: () => Date;
  now: () => number;
  limiter: AddressLimiter | null;
  timer: Timer | null;
  /** When `timer` fires, on the `now` clock. */
  timerAt: number;
}

/** A logger writing to the given sinks at `minLevel` and above. */
export function createLogger(
  part: string,
  sinks: Sink[],
  minLevel: Level = "INFO",
  clock: () => Date = () => new Date(),
  options: LoggerOptions = {},
): Logger {
  const perAddress = options.perAddress === undefined ? DEFAULT_PER_ADDRESS : options.perAddress;
  const shared: Shared = {
    sinks, minLevel, clock, now: options.now ?? (() => performance.now()),
    limiter: perAddress ? new AddressLimiter(perAddress) : null, timer: null, timerAt: Infinity,
  };
  return partLogger(shared, part);
}

function partLogger(shared: Shared, part: string): Logger {
  const emit = (level: Level, message: string, fields?: Fields, security = false) => {
    if (ORDER[level] < ORDER[shared.minLevel]) return;
    try {
      const limiter = shared.limiter;
      if (!limiter) return write(shared, level, part, message, fields, security);
      const now = shared.now();
      flushDue(shared, now);
      const client = fields?.client;
      // The limiter tells which lines it holds: WARN and ERROR ones, and joins and leaves.
      if (client !== undefined && client !== null && client !== "") {
        if (!limiter.admit(addressKey(String(client)), { level, part, message, fields: fields!, security }, now)) {
          schedule(shared, now);
          return;
        }
      }
      write(shared, level, part, message, fields, security);
    } catch (e) {
      reportOnce("format", `a log line could not be formatted: ${(e as Error)?.message}`);
    }
  };
  return {
    debug: (m, f) => emit("DEBUG", m, f),
    info: (m, f) => emit("INFO", m, f),
    warn: (m, f) => emit("WARN", m, f),
    error: (m, f) => emit("ERROR", m, f),
    security: (m, f) => emit("WARN", m, f, true),
    child: (p) => partLogger(shared, p),
  };
}

function write(shared: Shared, level: Level, part: string, message: string, fields?: Fields, security = false): void {
  const line = formatLine(shared.clock(), level, part, message, fields);
  for (const sink of shared.sinks) {
    try {
      sink(line, level, security);
    } catch (e) {
      reportOnce("sink", `a log sink failed, its lines are dropped: ${(e as Error)?.message}`);
    }
  }
}

function flushDue(shared: Shared, now: number): void {
  for (const s of shared.limiter!.due(now)) {
    if (s.kind === "churn") {
      const kinds = [...s.kinds].map(([kind, n]) => `${kind}:${n}`).join(",");
      write(shared, "INFO", s.part, `joins and leaves from ${s.key}`, { joined: s.joined, left: s.left, kinds, seconds: s.seconds });
      continue;
    }
    const { key, event, held } = s;
    const fields = key === OVERFLOW_KEY ? { ...event.fields, client: OVERFLOW_KEY } : event.fields;
    write(shared, event.level, event.part, event.message, { ...fields, similar: held }, event.security);
  }
}

// The summary of a burst is due when its interval ends, whether or not the peer speaks again.
function schedule(shared: Shared, now: number): void {
  const at = shared.limiter!.nextSummaryAt();
  if (at === null || (shared.timer && shared.timerAt <= at)) return;
  if (shared.timer) clearTimeout(shared.timer);
  shared.timerAt = at;
  shared.timer = setTimeout(() => {
    shared.timer = null;
    try {
      const t = shared.now();
      flushDue(shared, t);
      schedule(shared, t);
    } catch (e) {
      reportOnce("format", `a log line could not be formatted: ${(e as Error)?.message}`);
    }
  }, Math.max(0, at - now) + 1);
  // Held-back lines must not keep a finished program alive.
  shared.timer.unref?.();
}

// ---------------------------------------------------------------- stderr

let stderrGuarded = false;

/** Writes to stderr; a closed or full stderr loses the text rather than ending the program. */
export function writeStderr(text: string): void {
  if (!stderrGuarded) {
    stderrGuarded = true;
    // Bun reports a failed stderr write as an 'error' event, which unhandled ends the process.
    process.stderr.on("error", () => {});
  }
  try {
    process.stderr.write(text);
  } catch {
    // Nowhere left to say it.
  }
}

const reported = new Set<string>();

/** Says `text` on stderr the first time `what` goes wrong in this process, never again. */
export function reportOnce(what: string, text: string): void {
  if (reported.has(what)) return;
  reported.add(what);
  writeStderr(formatLine(new Date(), "ERROR", "log", text) + "\n");
}

/** Writes lines to stderr. */
export const stderrSink: Sink = (line) => {
  writeStderr(line + "\n");
};

// ---------------------------------------------------------------- for tests and other parts

/** A logger that drops everything (for tests). */
export const silentLogger: Logger = createLogger("silent", []);

/**
 * Wraps `emit` so it runs at most once per `intervalMs`; the next call that runs is
 * told how many were suppressed in between. For events that can come per datagram.
 */
export function throttled(intervalMs: number, emit: (detail: string, suppressed: number) => void, now: () => number = () => performance.now()): (detail: string) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (detail) => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed++;
      return;
    }
    last = t;
    emit(detail, suppressed);
    suppressed = 0;
  };
}
