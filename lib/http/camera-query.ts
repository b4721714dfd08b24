import { noSuchCamera, pickCamera } from "../wire/camera-name.ts";

/**
 * `?camera=N` or `?camera=NAME` on the view's routes: which camera a request is for. The
 * rule is the server's own (lib/wire/camera-name.ts), so a number or a name means the
 * same camera in a URL, on the command line and in the control protocol.
 */

/** The camera the request names (null when it names none), or the text of its 404 when no camera has that number or name. */
export type CameraQuery = { camera: number | null } | { refusal: string };

/** Reads `?camera=` against the cameras' names (index = number). */
export function cameraQuery(url: URL, names: readonly string[]): CameraQuery {
  const selector = url.searchParams.get("camera");
  if (selector === null) return { camera: null };
  const camera = pickCamera(selector, names);
  return camera === null ? { refusal: noSuchCamera(selector, names) } : { camera };
}
