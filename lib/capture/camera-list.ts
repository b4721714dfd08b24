/**
 * `--list-cameras`: every /dev/videoN with what it is and, for a camera, each format
 * with its sizes and frame rates, as `v4l2-ctl --list-formats-ext` tells them but one
 * line a format, and with the `--source` that picks the camera. A device that cannot
 * be opened is listed with the reason and the fix.
 */
import { cv, type CameraDevice, type CameraFormat, type CameraList, type FrameInterval, type FrameRates, type FrameSize } from "../native/cv.ts";
import { inUseFix, PERMISSION_FIX } from "./camera-fixes.ts";

/** A format whose sizes do not fit a line this wide gets one line per group of sizes. */
const LINE_WIDTH = 80;

/** Where a user without a camera can still try everything else. */
const NO_CAMERA_HINT = "--source test streams a test pattern without one";

/** The cameras of this machine as text; the addon asks the drivers. */
export function listCameras(): string {
  if (process.platform !== "linux") return `listing cameras needs Linux (V4L2); here try --source camera:0, camera:1, ... in turn\n`;
  return cameraListText(cv().listCameras());
}

/** The listing of `list`, one block per device, each line ending in a newline. */
export function cameraListText(list: CameraList): string {
  if (list.devices.length === 0) return `no cameras found (looked at /dev/video0..${list.lastIndex}); ${NO_CAMERA_HINT}\n`;
  const blocks = list.devices.map(deviceLines).flat();
  // Nodes that are no camera (a UVC camera's metadata node, a codec) alone: said, so the
  // user does not go on to try them as sources.
  const cameras = list.devices.some((d) => d.error === null && (d.kind === "capture" || d.kind === "multiplanar"));
  const couldNotOpen = list.devices.some((d) => d.error !== null);
  if (!cameras && !couldNotOpen) blocks.push(`no camera among them; ${NO_CAMERA_HINT}`);
  if (cameras) blocks.push("lancam asks a camera for MJPG where it has it (its JPEG is sent as it is);", "--size and --fps choose among the sizes and rates above");
  return blocks.map((line) => `${line}\n`).join("");
}

function deviceLines(d: CameraDevice): string[] {
  if (d.error !== null) return [`${d.path}: ${openProblem(d.path, d.error)}`];
  const about = [d.driver, d.bus].filter((s) => s !== "").join(", ");
  const name = `${d.path}: ${d.card || "(no name)"}${about ? ` (${about})` : ""}`;
  const lines = [`${name}  ${kindNote(d.kind, d.index, d.path)}`];
  if (d.inUse) lines.push(`  in use by another program now; ${inUseFix(d.path)} before lancam captures from it`);
  if ((d.kind === "capture" || d.kind === "multiplanar") && d.formats.length === 0) lines.push("  its driver lists no formats");
  return [...lines, ...d.formats.flatMap(formatLines)];
}

/** Why a device could not be opened or asked what it is, by errno name, and what to do. */
function openProblem(path: string, errno: string): string {
  if (errno === "EBUSY") return `busy: in use by another program; ${inUseFix(path)}`;
  if (errno === "EACCES" || errno === "EPERM") return `no permission to open it; ${PERMISSION_FIX}`;
  // It opened, but did not answer the first V4L2 question.
  if (errno === "ENOTTY") return "opens, but is not a V4L2 device (ENOTTY)";
  return `cannot open it (${errno})`;
}

/**
 * What the node is to lancam. Nodes that are no camera are listed rather than skipped:
 * a UVC camera makes two nodes, /dev/video0 and a metadata /dev/video1, and a user who
 * sees both in `ls /dev/video*` wonders which is which, or tries camera:1 and gets an
 * error that does not say why.
 */
function kindNote(kind: Extract<CameraDevice, { error: null }>["kind"], index: number, path: string): string {
  switch (kind) {
    case "capture": return `use --source camera:${index}`;
    case "multiplanar":
      return `multi-planar: --source camera:${index} needs an OpenCV whose V4L2 backend takes that; else --source 'gst:v4l2src device=${path} ! videoconvert ! appsink'`;
    case "metadata": return "metadata only, no picture (a camera's second node): not a source";
    case "codec": return "a codec or converter, not a camera";
    case "output": return "a video output, not a camera";
    case "other": return "not a video capture device";
  }
}

/** One line for a format, or (too long for one) its name and then one line per group of sizes. */
function formatLines(f: CameraFormat): string[] {
  const head = `  ${f.fourcc.trimEnd()}${f.description ? ` (${f.description})` : ""}`;
  const groups = sizeGroups(f.sizes);
  if (groups.length === 0) return [`${head}: no sizes listed by the driver`];
  const one = `${head}: ${groups.join("; ")}`;
  return one.length <= LINE_WIDTH ? [one] : [`${head}:`, ...groups.map((g) => `    ${g}`)];
}

/** The sizes as text, neighbours with the same rates together: "1280x720, 640x480 @ 30, 15 fps". */
export function sizeGroups(sizes: readonly FrameSize[]): string[] {
  // A range of sizes stands alone: it has no rates of its own to share.
  const groups: { sizes: string[]; rates: string; range: boolean }[] = [];
  for (const s of sizes) {
    if (s.kind !== "discrete") {
      groups.push({ sizes: [sizeRangeText(s)], rates: "", range: true });
      continue;
    }
    const rates = ratesText(s.rates);
    const last = groups.at(-1);
    if (last && !last.range && last.rates === rates) last.sizes.push(`${s.width}x${s.height}`);
    else groups.push({ sizes: [`${s.width}x${s.height}`], rates, range: false });
  }
  return groups.map((g) => `${g.sizes.join(", ")}${g.rates ? ` @ ${g.rates}` : ""}`);
}

function sizeRangeText(s: Extract<FrameSize, { kind: "stepwise" | "continuous" }>): string {
  const range = `${s.minWidth}x${s.minHeight} to ${s.maxWidth}x${s.maxHeight}`;
  return s.kind === "continuous" ? `any size from ${range}` : `${range} in steps of ${s.stepWidth}x${s.stepHeight}`;
}

/** "30, 15 fps", "5 to 30 fps", or "" when the driver says nothing usable. */
export function ratesText(r: FrameRates): string {
  if (r.kind === "unknown") return "";
  if (r.kind === "discrete") {
    const rates = r.intervals.map(fpsText).filter((t) => t !== null);
    return rates.length === 0 ? "" : `${rates.join(", ")} fps`;
  }
  // The longest interval is the lowest rate.
  const low = fpsText(r.max);
  const high = fpsText(r.min);
  if (low === null || high === null) return "";
  return low === high ? `${low} fps` : `${low} to ${high} fps`;
}

/** Frames per second of an interval, to two decimals (1001/30000 s is 29.97); null for a zero in it. */
export function fpsText(interval: FrameInterval): string | null {
  if (interval.numerator === 0 || interval.denominator === 0) return null;
  return String(Math.round((interval.denominator / interval.numerator) * 100) / 100);
}
