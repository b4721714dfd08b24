/**
 * The name a browser viewer shows under in the log and the viewers table: its own
 * `?name=`, else what its User-Agent says it is ("Chrome 131", "VLC", "ffmpeg").
 */

/** Longest name kept; the rest is cut. */
export const MAX_READER_NAME = 64;

const KNOWN: [RegExp, (m: RegExpMatchArray) => string][] = [
  [/\bVLC\/([\d.]+)|LibVLC/i, () => "VLC"],
  // ffplay, ffprobe and ffmpeg all say Lavf (libavformat).
  [/\bLavf\/[\d.]+/, () => "ffmpeg"],
  [/\bcurl\/[\d.]+/, () => "curl"],
  [/\bFirefox\/(\d+)/, (m) => `Firefox ${m[1]}`],
  [/\bEdg\/(\d+)/, (m) => `Edge ${m[1]}`],
  [/\b(?:HeadlessChrome|Chrome|Chromium)\/(\d+)/, (m) => `Chrome ${m[1]}`],
  [/\bVersion\/(\d+)[^ ]* .*Safari\//, (m) => `Safari ${m[1]}`],
];

/** Printable text only (names end up in log lines and table cells), at most MAX_READER_NAME characters. */
export function cleanName(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").trim().slice(0, MAX_READER_NAME);
}

/** The reader's name from its `name` query parameter or, failing that, its User-Agent. */
export function readerName(url: URL, userAgent: string | null): string {
  const given = cleanName(url.searchParams.get("name") ?? "");
  if (given) return given;
  if (!userAgent) return "";
  for (const [re, name] of KNOWN) {
    const m = userAgent.match(re);
    if (m) return name(m);
  }
  return cleanName(userAgent.split(/[\s(]/, 1)[0] ?? "");
}
