/**
 * How cameras are called: by number (from 0, in the order the server was given them) or
 * by the name the server gave them. One rule for names and one way to pick, shared by the
 * server's flags and config file, the control protocol and the browser view's URLs.
 */

/** Cameras one server serves at most. */
export const MAX_CAMERAS = 8;

/** Longest camera name, bytes (names are ASCII). */
export const MAX_CAMERA_NAME = 32;

/**
 * A name: a letter first, then letters, digits, `_` or `-`. Not a number, so `--camera 1`
 * always means the second camera; ASCII, so it is safe in a path, a URL and a metric label.
 */
const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** Why `name` cannot name a camera, or null when it can. */
export function cameraNameProblem(name: string): string | null {
  if (NAME.test(name)) return null;
  if (name === "") return "a camera name cannot be empty";
  if (/^[0-9]/.test(name)) return `camera name "${shown(name)}" starts with a digit; numbers already call cameras by their place (0, 1, ...)`;
  return `camera name "${shown(name)}" is not allowed: a letter, then up to ${MAX_CAMERA_NAME - 1} letters, digits, _ or -`;
}

/** The camera `selector` calls among `names` (index = camera number), or null when none. An empty selector is camera 0. */
export function pickCamera(selector: string, names: readonly string[]): number | null {
  if (selector === "") return names.length > 0 ? 0 : null;
  if (/^[0-9]{1,3}$/.test(selector)) {
    const n = Number(selector);
    return n < names.length ? n : null;
  }
  const i = names.indexOf(selector);
  return i >= 0 ? i : null;
}

/** Camera `index` as a user reads it: `0=board`, or `2` for one without a name. */
export function cameraLabel(index: number, name: string): string {
  return name === String(index) ? name : `${index}=${name}`;
}

/** The cameras as a user types them: `0=board, 1=desk, 2`. */
export function cameraList(names: readonly string[]): string {
  return names.map((n, i) => cameraLabel(i, n)).join(", ");
}

/** What a refusal says when the selector calls no camera. */
export function noSuchCamera(selector: string, names: readonly string[]): string {
  return `no camera "${shown(selector)}" on this server; it has ${names.length === 1 ? "one camera" : `${names.length} cameras`}: ${cameraList(names)}`;
}

/** At most 40 characters of a hostile string, without control characters. */
function shown(s: string): string {
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, "?");
  return clean.length > 40 ? `${clean.slice(0, 40)}...` : clean;
}
