import { closeSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Severity of one log line. */
export type Level = "DEBUG" | "INFO" | "WARN" | "ERROR";
/** Extra facts appended to a log line as key=value. */
export type Fields = Record<string, string | number | boolean | null | undefined>;

/**
 * One line per event: `<ISO time> LEVEL [part] message key=value ...`. A log call
 * never throws: a sink that fails is the logger's problem, not the caller's.
 */
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** The same sinks under another part name, e.g. `log.child("recorder")`. */
  child(part: string): Logger;
}

/** Where formatted lines go. */
export type Sink = (line: string, level: Level) => void;

const ORDER: Record<Level, number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 };

// ---------------------------------------------------------------- formatting

// What a peer could use to forge a field or a line, or to make text read other than it
// is: controls, format characters (bidi overrides and isolates, zero-width joiners),
// lone surrogates, unassigned code points, line and paragraph separators, every space
// but U+0020 (a no-break space passes for a field separator), and what Unicode says
// renders as nothing (Hangul fillers, variation selectors, tags).
const HIDDEN = "\\p{Cc}\\p{Cf}\\p{Cs}\\p{Cn}\\p{Zl}\\p{Zp}\\p{Zs}\\p{Default_Ignorable_Code_Point}";
const BARE_ESCAPES = new RegExp(`[${HIDDEN}]`, "gu");
const QUOTED_ESCAPES = new RegExp(`["\\\\${HIDDEN}]`, "gu");
const NEEDS_QUOTES = new RegExp(`["=\\\\${HIDDEN}]`, "u");
const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\", " ": " " };

function escapeChar(c: string): string {
  return SHORT_ESCAPES[c] ?? `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** Text with every hidden character spelled out (`\u{202e}`), so what is read is what was sent. */
function escapeBare(s: string): string {
  return s.replace(BARE_ESCAPES, escapeChar);
}

// Quoted when it could be misread: empty, spaces, quotes, `=`, backslashes or hidden
// characters. Inside quotes `"` and `\` are escaped too, so every value reads back exactly.
function formatValue(v: string | number | boolean | null | undefined): string {
  const s = String(v);
  return s === "" || NEEDS_QUOTES.test(s) ? `"${s.replace(QUOTED_ESCAPES, escapeChar)}"` : s;
}

/** Formats one line; exported for tests. */
export function formatLine(at: Date, level: Level, part: string, message: string, fields?: Fields): string {
  let line = `${at.toISOString()} ${level} [${escapeBare(part)}] ${escapeBare(message)}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined) line += ` ${escapeBare(k)}=${formatValue(v)}`;
    }
  }
  return line;
}

// ---------------------------------------------------------------- one address's lines

/** How many WARN and ERROR lines about one address get through, and how often its summary comes. */
export interface PerAddressLimit {
  /** Lines logged as they come in each interval; the rest are held back and counted. */
  burst: number;
  intervalMs: number;
  /** Addresses tracked at once; beyond that, new ones share one count (`client=*`). */
  maxAddresses: number;
}

/** A peer reconnecting in a loop gets 5 lines, then one summary per 10 s. */
export const DEFAULT_PER_ADDRESS: PerAddressLimit = { burst: 5, intervalMs: 10_000, maxAddresses: 1024 };

/** One log call, kept for a summary. */
export interface LogEvent {
  level: Level;
  part: string;
  message: string;
  fields: Fields;
}

/** The last held-back event of an interval and how many lines it stands for. */
export interface HeldSummary {
  /** The address, or `*` for those that came when the table was full. */
  key: string;
  event: LogEvent;
  held: number;
}

interface Window {
  endsAt: number;
  logged: number;
  held: number;
  last: LogEvent | null;
}

/** Key for the addresses that came after the table was full. */
export const OVERFLOW_KEY = "*";

/**
 * The address a `client=` value names, without its port: each connection of one peer
 * has another port, and it is the peer that is repeating itself.
 */
export function addressKey(client: string): string {
  const v4 = /^(.*\.\d+):(\d+|\?)$/.exec(client);
  if (v4) return v4[1]!;
  const v6 = /^\[(.*)\]:(\d+|\?)$/.exec(client);
  return v6 ? v6[1]! : client;
}

/**
 * Holds back repeated lines about one address: each address gets `burst` lines per
 * interval (from its first line), the rest are counted, and when the interval ends the
 * last one held comes out once with the count. A pure state machine on the caller's clock.
 * Memory is bounded by `maxAddresses` (plus the shared overflow entry).
 */
export class AddressLimiter {
  // Every window lasts intervalMs and is (re)inserted when it opens, so insertion order
  // is also closing order: the ones over are always at the front.
  readonly #windows = new Map<string, Window>();
  /** Summaries of windows already closed, not yet taken by due(). */
  readonly #closed: HeldSummary[] = [];

  constructor(readonly limit: PerAddressLimit = DEFAULT_PER_ADDRESS) {}

  /** True when the line goes out now; false when it is held back (and counted). */
  admit(key: string, event: LogEvent, now: number): boolean {
    this.#expire(now);
    let w = this.#windows.get(key);
    if (!w) {
      if (this.#windows.size >= this.limit.maxAddresses && key !== OVERFLOW_KEY) return this.admit(OVERFLOW_KEY, event, now);
      w = { endsAt: now + this.limit.intervalMs, logged: 0, held: 0, last: null };
      this.#windows.set(key, w);
    }
    if (w.logged < this.limit.burst) {
      w.logged++;
      return true;
    }
    // A line that is itself a summary (similar=N) stands for N more.
    const already = event.fields.similar;
    w.held += 1 + (typeof already === "number" && already > 0 ? already : 0);
    w.last = event;
    return false;
  }

  #expire(now: number): void {
    for (const [key, w] of this.#windows) {
      if (now < w.endsAt) return;
      this.#windows.delete(key);
      if (w.held > 0) this.#closed.push({ key, event: w.last!, held: w.held });
    }
  }

  /** Summaries of the intervals over by `now` that held lines back, oldest first. */
  due(now: number): HeldSummary[] {
    this.#expire(now);
    return this.#closed.splice(0);
  }

  /** When the first interval with held lines ends; null when nothing is held. */
  nextSummaryAt(): number | null {
    if (this.#closed.length > 0) return -Infinity;
    for (const w of this.#windows.values()) if (w.held > 0) return w.endsAt;
    return null;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#windows.size;
  }
}

// ---------------------------------------------------------------- loggers

/** How a logger (and every child of it) writes. */
export interface LoggerOptions {
  /** Per-address limit for WARN and ERROR lines with a `client` field; null logs every line. */
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
  const emit = (level: Level, message: string, fields?: Fields) => {
    if (ORDER[level] < ORDER[shared.minLevel]) return;
    try {
      const limiter = shared.limiter;
      if (!limiter) return write(shared, level, part, message, fields);
      const now = shared.now();
      flushDue(shared, now);
      const client = fields?.client;
      if (ORDER[level] >= ORDER.WARN && client !== undefined && client !== null && client !== "") {
        if (!limiter.admit(addressKey(String(client)), { level, part, message, fields: fields! }, now)) {
          schedule(shared, now);
          return;
        }
      }
      write(shared, level, part, message, fields);
    } catch (e) {
      reportOnce("format", `a log line could not be formatted: ${(e as Error)?.message}`);
    }
  };
  return {
    debug: (m, f) => emit("DEBUG", m, f),
    info: (m, f) => emit("INFO", m, f),
    warn: (m, f) => emit("WARN", m, f),
    error: (m, f) => emit("ERROR", m, f),
    child: (p) => partLogger(shared, p),
  };
}

function write(shared: Shared, level: Level, part: string, message: string, fields?: Fields): void {
  const line = formatLine(shared.clock(), level, part, message, fields);
  for (const sink of shared.sinks) {
    try {
      sink(line, level);
    } catch (e) {
      reportOnce("sink", `a log sink failed, its lines are dropped: ${(e as Error)?.message}`);
    }
  }
}

function flushDue(shared: Shared, now: number): void {
  for (const { key, event, held } of shared.limiter!.due(now)) {
    const fields = key === OVERFLOW_KEY ? { ...event.fields, client: OVERFLOW_KEY } : event.fields;
    write(shared, event.level, event.part, event.message, { ...fields, similar: held });
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
function writeStderr(text: string): void {
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
function reportOnce(what: string, text: string): void {
  if (reported.has(what)) return;
  reported.add(what);
  writeStderr(formatLine(new Date(), "ERROR", "log", text) + "\n");
}

/** Writes lines to stderr. */
export const stderrSink: Sink = (line) => {
  writeStderr(line + "\n");
};

// ---------------------------------------------------------------- log file

/** The log file cannot be opened; the message says which and why. */
export class LogFileError extends Error {
  override name = "LogFileError";
}

/** Default size at which the log file is rotated (`--log-max`). */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Smallest `--log-max`: room for some lines of context in each file. */
export const MIN_LOG_MAX_BYTES = 4096;
/** Rotated files kept: FILE.1 (newest) to FILE.3. */
export const DEFAULT_LOG_KEEP = 3;
/** After a failed write, lines are dropped (and counted) this long before the next try. */
const RETRY_MS = 1000;
/** Errors that mean the disk is full, not that the path is wrong: the program carries on. */
const FULL = new Set(["ENOSPC", "EDQUOT", "EFBIG"]);

/** How a FileSink bounds and reports itself. */
export interface FileSinkOptions {
  /** Size cap: a line that would take the file past it goes to a new file (default 10M). */
  maxBytes?: number;
  /** Rotated files kept, FILE.1 newest (default 3; 0 keeps none). */
  keep?: number;
  /** Where the one line about a failing log file goes (default stderr). */
  report?: (line: string) => void;
  /** Monotonic ms for the retry pause (default performance.now). */
  now?: () => number;
}

/**
 * An append-only log file, written synchronously so a crash loses no line, and bounded:
 * past `maxBytes` it is renamed FILE.1 (FILE.1 to FILE.2, ...) and a new one started.
 * A write that fails (disk full, file system gone) never reaches the caller: the line
 * is counted, the first failure is said once on stderr, and the file is opened and
 * tried again a second later; the first line that gets through says how many were lost.
 */
export class FileSink implements Disposable {
  readonly maxBytes: number;
  readonly keep: number;
  /** Lines that could not be written, over the sink's life. */
  linesLost = 0;
  /** Times the file was rotated. */
  rotations = 0;
  #fd = -1;
  #size = 0;
  #closed = false;
  #reported = false;
  /** Lines lost since the last one written, and why, for the note that follows them. */
  #gap: { lines: number; error: string } | null = null;
  #lastError = "unknown";
  #pausedUntil = -Infinity;
  /** A short write left half a line: the next write starts on a new line. */
  #midLine = false;
  readonly #report: (line: string) => void;
  readonly #now: () => number;

  constructor(
    readonly path: string,
    options: FileSinkOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.keep = options.keep ?? DEFAULT_LOG_KEEP;
    this.#report = options.report ?? writeStderr;
    this.#now = options.now ?? (() => performance.now());
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#open();
    } catch (e) {
      // A full disk is no reason not to serve; a wrong path is one to say at once.
      if (!FULL.has((e as { code?: string }).code ?? "")) {
        throw new LogFileError(`cannot open the log file ${path}: ${(e as Error).message}; choose another --log`);
      }
      this.#fail(e, 0);
    }
  }

  readonly sink: Sink = (line) => {
    if (this.#closed) return;
    if (this.#now() < this.#pausedUntil) return this.#lose(1);
    try {
      if (this.#fd < 0) this.#open();
      if (this.#gap) {
        this.#append(formatLine(new Date(), "WARN", "log", "log lines were lost", { lines: this.#gap.lines, error: this.#gap.error }));
        this.#gap = null;
      }
      this.#append(line);
    } catch (e) {
      this.#fail(e, 1);
    }
  };

  #open(): void {
    this.#fd = openSync(this.path, "a");
    this.#size = fstatSync(this.#fd).size;
  }

  #append(line: string): void {
    const bytes = Buffer.from(`${this.#midLine ? "\n" : ""}${line}\n`);
    if (this.#size > 0 && this.#size + bytes.length > this.maxBytes) this.#rotate();
    const written = writeSync(this.#fd, bytes);
    this.#size += written;
    this.#midLine = written < bytes.length;
    if (this.#midLine) throw Object.assign(new Error(`short write: ${written} of ${bytes.length} bytes`), { code: "ENOSPC" });
  }

  // A failed rename leaves the file as it was and throws: nothing more is written to it
  // until a rotation succeeds, so the cap holds whatever happens.
  #rotate(): void {
    const fd = this.#fd;
    this.#fd = -1;
    closeSync(fd);
    for (let i = this.keep - 1; i >= 1; i--) renameIfThere(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    if (this.keep > 0) renameSync(this.path, `${this.path}.1`);
    else unlinkSync(this.path);
    this.#midLine = false;
    this.#open();
    this.rotations++;
  }

  #fail(e: unknown, lines: number): void {
    const err = e as { code?: string; message?: string };
    this.#lastError = err.code ?? err.message ?? String(e);
    this.#pausedUntil = this.#now() + RETRY_MS;
    this.#lose(lines);
    // Opened afresh on the next try: the file may have been moved, or its file system remounted.
    this.#closeFile();
    if (this.#reported) return;
    this.#reported = true;
    this.#report(formatLine(new Date(), "ERROR", "log", "cannot write the log file; carrying on without it, lines lost are counted", {
      path: this.path, error: err.message ?? this.#lastError,
    }) + "\n");
  }

  #lose(lines: number): void {
    if (lines === 0) return;
    this.linesLost += lines;
    this.#gap = { lines: (this.#gap?.lines ?? 0) + lines, error: this.#lastError };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeFile();
  }

  #closeFile(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    try {
      closeSync(fd);
    } catch {
      // Nothing more is written to it either way.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function renameIfThere(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") throw e;
  }
}

// ---------------------------------------------------------------- for tests and other parts

/** A logger that drops everything (for tests). */
export const silentLogger: Logger = createLogger("silent", []);

/** A logger that keeps its lines in memory (for tests). */
export function memoryLogger(part = "test"): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(part, [(line) => lines.push(line)], "DEBUG");
  return Object.assign(log, { lines });
}

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
