/**
 * `--source [NAME=]SRC`: what one camera of the server captures, and what it is called.
 * Repeatable, one value per camera; the same text is a config file's `source` and `src`.
 */
import type { SourceSpec } from "../capture/capture.ts";
import { cameraNameProblem, MAX_CAMERAS } from "../wire/camera-name.ts";
import { UsageError } from "./cli.ts";

/** One value of --source: the source, and the camera's name when it was given one. */
export interface CameraSource {
  readonly name: string | null;
  readonly spec: SourceSpec;
}

/** The camera --source means when none is given. */
export const DEFAULT_CAMERA: CameraSource = { name: null, spec: { kind: "camera", index: 0 } };

/** Parses one source: "camera:N", "test", "gst:PIPELINE", "file:PATH" or a file path. */
export function parseSourceFlag(s: string, flag = "--source"): SourceSpec {
  if (s === "") throw new UsageError(`invalid ${flag}=: expected camera:N, test, gst:PIPELINE or a video file path`);
  if (s === "test") return { kind: "test" };
  if (s.startsWith("camera:")) {
    const n = s.slice("camera:".length);
    if (!/^\d{1,4}$/.test(n)) throw new UsageError(`invalid ${flag}=${s}: expected camera:N with N a camera index 0..9999`);
    return { kind: "camera", index: Number(n) };
  }
  if (s.startsWith("gst:")) {
    const pipeline = s.slice("gst:".length).trim();
    if (!pipeline) throw new UsageError(`invalid ${flag}=${s}: expected gst:PIPELINE ending in appsink`);
    return { kind: "gst", pipeline };
  }
  if (s.startsWith("file:")) {
    const path = s.slice("file:".length);
    if (!path) throw new UsageError(`invalid ${flag}=${s}: expected file:PATH`);
    return { kind: "file", path };
  }
  return { kind: "file", path: s };
}

/** How --source names `spec`: the inverse of parseSourceFlag, never read as NAME=SRC (it has a `:` before any `=`, or no `=`). */
export function sourceSpelling(spec: SourceSpec): string {
  switch (spec.kind) {
    case "camera": return `camera:${spec.index}`;
    case "test": return "test";
    case "gst": return `gst:${spec.pipeline}`;
    case "file": return `file:${spec.path}`;
  }
}

/**
 * The name part of `raw`, or null when it has none. The rule, one for the command line
 * and the config file: the text before the first `=` is a name unless it holds a `:` or
 * a `/`. So `board=camera:0` is named; `gst:... pattern=ball ...`, `file:a=b.mp4` and
 * `./a=b.mp4` are not (their `=` comes after a `:` or `/`), nor is `test`. A name found
 * so may still break the name rule: then it is refused, never taken as part of a path.
 */
export function namePart(raw: string): { name: string; src: string } | null {
  const eq = raw.indexOf("=");
  if (eq < 0) return null;
  const name = raw.slice(0, eq);
  return /[:/]/.test(name) ? null : { name, src: raw.slice(eq + 1) };
}

/** What the rule above means for a user whose file name has `=` in it. */
const NAME_RULE = "text before = names the camera; write a file whose name has = as ./PATH or file:PATH";

/** Parses one `--source`: `NAME=SRC` or `SRC`, by namePart's rule. */
export function parseCameraSource(raw: string, flag = "--source"): CameraSource {
  const named = namePart(raw);
  if (named === null) return { name: null, spec: parseSourceFlag(raw, flag) };
  const problem = cameraNameProblem(named.name);
  if (problem !== null) throw new UsageError(`invalid ${flag}=${raw}: ${problem} (${NAME_RULE})`);
  if (named.src === "") throw new UsageError(`invalid ${flag}=${raw}: expected NAME=SRC with SRC camera:N, test, gst:PIPELINE or a video file path`);
  return { name: named.name, spec: parseSourceFlag(named.src, flag) };
}

/** How --source writes `camera`: the inverse of parseCameraSource. */
export function cameraSourceSpelling(camera: CameraSource): string {
  const src = sourceSpelling(camera.spec);
  return camera.name === null ? src : `${camera.name}=${src}`;
}

/**
 * Refuses cameras that cannot go together, wherever they were given: more than
 * MAX_CAMERAS, or two of one name (a viewer could not tell which it asked for).
 */
export function checkCameraSources(cameras: readonly CameraSource[], flag = "--source"): void {
  if (cameras.length > MAX_CAMERAS) {
    throw new UsageError(`invalid ${flag}: ${cameras.length} cameras; a server has at most ${MAX_CAMERAS}`);
  }
  for (const [i, camera] of cameras.entries()) {
    const j = cameras.findIndex((other) => other.name !== null && other.name === camera.name);
    if (j >= 0 && j < i) {
      throw new UsageError(`invalid ${flag}: cameras ${j} (${cameraSourceSpelling(cameras[j]!)}) and ${i} (${cameraSourceSpelling(camera)}) are both named ${camera.name}; give each camera its own name`);
    }
  }
}
