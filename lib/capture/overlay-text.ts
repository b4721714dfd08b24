/**
 * The text of `--overlay`: a template with strftime-like time codes and {fields},
 * checked once when the flag is read and filled in for every frame with that
 * frame's capture time. Pure: the time, camera, frame number and host come in.
 *
 *   %Y year (2026)   %m month 01-12   %d day 01-31   %H hour 00-23   %M minute 00-59
 *   %S second 00-59  %F = %Y-%m-%d    %T = %H:%M:%S  %% a percent sign
 *   {camera} the camera's name or number   {frame} the frame number   {host} the host name
 *
 * Times are local, as a clock on the wall shows them (TZ decides).
 */
import type { OverlayPosition } from "../native/cv.ts";

export type { OverlayPosition } from "../native/cv.ts";

/** The longest template --overlay takes, in characters. */
export const MAX_OVERLAY_CHARS = 200;
/** Fields longer than this (a long host name) are cut, so the drawn line stays bounded. */
export const MAX_FIELD_CHARS = 64;

/** The corners, in the order help lists them. */
export const OVERLAY_POSITIONS: readonly OverlayPosition[] = ["top-left", "top-right", "bottom-left", "bottom-right"];

const TIME_CODES = "YmdHMSFT%";
const FIELDS = ["camera", "frame", "host"] as const;

/** What fills the {fields} of a template. */
export interface OverlayFields {
  camera: string;
  frame: number;
  host: string;
}

/**
 * Why `template` is not an overlay text, or null when it is: at most
 * MAX_OVERLAY_CHARS printable ASCII characters (what the font draws), known codes only.
 */
export function overlayTextProblem(template: string): string | null {
  if (template.length === 0) return "expected some text";
  if (template.length > MAX_OVERLAY_CHARS) return `${template.length} characters, expected at most ${MAX_OVERLAY_CHARS}`;
  const bad = /[^\x20-\x7e]/.exec(template);
  if (bad) return `character ${JSON.stringify(bad[0])} at ${bad.index + 1}: expected printable ASCII (the font has nothing else)`;
  for (let i = 0; i < template.length; i++) {
    if (template[i] !== "%") continue;
    const code = template[i + 1];
    if (code === undefined) return "a lone % at the end: write %% for a percent sign";
    if (!TIME_CODES.includes(code)) return `%${code} is not a time code it knows: %Y %m %d %H %M %S %F %T, or %% for a percent sign`;
    i++;
  }
  for (const m of template.matchAll(/\{(\w*)\}/g)) {
    if (!(FIELDS as readonly string[]).includes(m[1]!)) return `{${m[1]}} is not a field it knows: {camera}, {frame} or {host}`;
  }
  return null;
}

const two = (n: number) => String(n).padStart(2, "0");

/** `template` filled in for a frame captured at `capturedAtMicros` (µs since the epoch, local time). */
export function formatOverlay(template: string, fields: OverlayFields, capturedAtMicros: number): string {
  const t = new Date(Math.floor(capturedAtMicros / 1000));
  const date = () => `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}`;
  const time = () => `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
  const code: Record<string, () => string> = {
    Y: () => String(t.getFullYear()),
    m: () => two(t.getMonth() + 1),
    d: () => two(t.getDate()),
    H: () => two(t.getHours()),
    M: () => two(t.getMinutes()),
    S: () => two(t.getSeconds()),
    F: date,
    T: time,
    "%": () => "%",
  };
  const field: Record<string, string> = {
    camera: fields.camera.slice(0, MAX_FIELD_CHARS),
    frame: String(fields.frame),
    host: fields.host.slice(0, MAX_FIELD_CHARS),
  };
  // One pass, so a % or a brace inside a field's value is never read as a code.
  return template.replace(/%(.)|\{(camera|frame|host)\}/g, (all, c: string | undefined, name: string | undefined) =>
    c !== undefined ? (code[c]?.() ?? all) : field[name!]!);
}
