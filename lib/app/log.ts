import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Severity of one log line. */
export type Level = "DEBUG" | "INFO" | "WARN" | "ERROR";
/** Extra facts appended to a log line as key=value. */
export type Fields = Record<string, string | number | boolean | null | undefined>;

/** One line per event: `<ISO time> LEVEL [part] message key=value ...`. */
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

function formatValue(v: string | number | boolean | null | undefined): string {
  const s = String(v);
  return s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** Formats one line; exported for tests. */
export function formatLine(at: Date, level: Level, part: string, message: string, fields?: Fields): string {
  let line = `${at.toISOString()} ${level} [${part}] ${message}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    }
  }
  return line;
}

/** A logger writing to the given sinks at `minLevel` and above. */
export function createLogger(part: string, sinks: Sink[], minLevel: Level = "INFO", clock: () => Date = () => new Date()): Logger {
  const emit = (level: Level, message: string, fields?: Fields) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const line = formatLine(clock(), level, part, message, fields);
    for (const sink of sinks) sink(line, level);
  };
  return {
    debug: (m, f) => emit("DEBUG", m, f),
    info: (m, f) => emit("INFO", m, f),
    warn: (m, f) => emit("WARN", m, f),
    error: (m, f) => emit("ERROR", m, f),
    child: (p) => createLogger(p, sinks, minLevel, clock),
  };
}

/** Writes lines to stderr. */
export const stderrSink: Sink = (line) => {
  process.stderr.write(line + "\n");
};

/** The log file cannot be opened; the message says which and why. */
export class LogFileError extends Error {
  override name = "LogFileError";
}

/** An append-only log file, written synchronously so a crash loses no line. */
export class FileSink implements Disposable {
  readonly #fd: number;
  #closed = false;
  constructor(readonly path: string) {
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#fd = openSync(path, "a");
    } catch (e) {
      throw new LogFileError(`cannot open the log file ${path}: ${(e as Error).message}; choose another --log`);
    }
  }
  readonly sink: Sink = (line) => {
    if (!this.#closed) writeSync(this.#fd, line + "\n");
  };
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

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
