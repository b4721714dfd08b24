// One log line: its fields, its escaping, its format.
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
  /**
   * A security event (an auth failure, a lockout, a forged frame, an eviction): a WARN
   * line like any other, which sinks are also told is a security event, so a security
   * log can keep it apart from the churn of joins and leaves.
   */
  security(message: string, fields?: Fields): void;
  /** The same sinks under another part name, e.g. `log.child("recorder")`. */
  child(part: string): Logger;
}

/** Where formatted lines go; `security` is true for Logger.security's lines. */
export type Sink = (line: string, level: Level, security?: boolean) => void;

/** Levels from least to most severe. */
export const LEVEL_ORDER: Record<Level, number> = { DEBUG: 0, INFO: 1, WARN: 2, ERROR: 3 };

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

/**
 * Text with every hidden character spelled out (`\u{202e}`), so what is read is what was
 * sent: for a peer's text wherever it is shown (log lines, the browser view, the terminal).
 */
export function escapeBare(s: string): string {
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
