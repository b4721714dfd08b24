import { closeSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { formatLine, type Level, type Sink } from "./format.ts";
import { reportOnce, writeStderr } from "./logger.ts";
import { UserError } from "../errors/user-error.ts";

// ---------------------------------------------------------------- log file

/** The log file cannot be opened; the message says which and why. */
export class LogFileError extends UserError {
  override name = "LogFileError";
}

/** Default size at which the log file is rotated (`--log-max`). */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Smallest `--log-max`: room for some lines of context in each file. */
export const MIN_LOG_MAX_BYTES = 4096;
/** Default size at which the security log is rotated (`--security-log-max`): security events are rare, so 1M holds months of them. */
export const DEFAULT_SECURITY_LOG_MAX_BYTES = 1024 * 1024;
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
  /** Take only Logger.security's lines (a security log), not every line. */
  securityOnly?: boolean;
  /** The flag that names the file, for the error when it cannot be opened (default --log). */
  flag?: string;
}

/**
 * Where the security log goes when no path is given: beside the main log, `.security`
 * before its extension (server.log -> server.security.log, server -> server.security).
 */
export function securityLogPath(logPath: string): string {
  const slash = logPath.lastIndexOf("/");
  const dot = logPath.lastIndexOf(".");
  // A dot that starts the file name (.log) is not an extension.
  return dot > slash + 1 ? `${logPath.slice(0, dot)}.security${logPath.slice(dot)}` : `${logPath}.security`;
}

/**
 * An append-only log file, written synchronously so a crash loses no line, and bounded:
 * past `maxBytes` it is renamed FILE.1 (FILE.1 to FILE.2, ...) and a new one started.
 * A write that fails (disk full, file system gone) never reaches the caller: the line
 * is counted, the first failure is said once on stderr, and the file is opened and
 * tried again a second later; the first line that gets through says how many were lost.
 * With `securityOnly` it keeps Logger.security's lines alone: a security log with its own
 * cap, which the churn of joins and leaves in the main log cannot rotate away.
 */
export class FileSink implements Disposable {
  readonly maxBytes: number;
  readonly keep: number;
  readonly securityOnly: boolean;
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
    this.securityOnly = options.securityOnly ?? false;
    this.#report = options.report ?? writeStderr;
    this.#now = options.now ?? (() => performance.now());
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#open();
    } catch (e) {
      // A full disk is no reason not to serve; a wrong path is one to say at once.
      if (!FULL.has((e as { code?: string }).code ?? "")) {
        throw new LogFileError(`cannot open the log file ${path}: ${(e as Error).message}; choose another ${options.flag ?? "--log"}`);
      }
      this.#fail(e, 0);
    }
  }

  readonly sink: Sink = (line, _level, security) => {
    if (this.#closed || (this.securityOnly && !security)) return;
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
