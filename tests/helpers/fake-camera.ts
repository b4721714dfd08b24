// The fake V4L2 camera (tests/helpers/fake-v4l2.c), built with the system compiler,
// and the environment that makes a process see it as /dev/videoN.
import { existsSync } from "node:fs";
import { join } from "node:path";

/** What the fake camera offers and does. */
export interface FakeCamera {
  /** Its index: the camera answers for /dev/video<index>. */
  index: number;
  /**
   * FOURCC:WxH, the first the default, e.g. ["MJPG:640x360", "YUYV:320x240"]; a size may name
   * the rates it offers, "MJPG:640x360@30/15" (listed only: frames still come at `fps`).
   */
  formats: string[];
  fps?: number;
  /** A folder of .jpg files sent in name order, in a loop, as MJPG. */
  jpegs?: string;
  /** Unplugged after this many frames: the file `unplugged` is created and the device is gone until it is removed. */
  unplugAfter?: number;
  unplugged?: string;
  /** Opening fails with EBUSY. */
  busy?: boolean;
  /** Opening fails with EACCES. */
  denied?: boolean;
  /** A metadata node (a UVC camera's second one): no picture. */
  metadata?: boolean;
  /** Every other /dev/video* is hidden (ENOENT), so the machine's own cameras do not show. */
  hideReal?: boolean;
}

/** Builds the shim into `dir` (once per folder); its path. Throws with the compiler's output when it fails. */
export function buildFakeV4l2(dir: string): string {
  const out = join(dir, "fake-v4l2.so");
  if (existsSync(out)) return out;
  const p = Bun.spawnSync(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", out, join(import.meta.dir, "fake-v4l2.c"), "-ldl", "-lpthread"]);
  if (p.exitCode !== 0) throw new Error(`cc failed: ${p.stderr.toString()}`);
  return out;
}

/** The environment for a process that should see `camera`. */
export function fakeCameraEnv(shim: string, camera: FakeCamera): Record<string, string> {
  const env: Record<string, string> = {
    LD_PRELOAD: shim,
    FAKE_V4L2_DEVICE: `/dev/video${camera.index}`,
    FAKE_V4L2_FORMATS: camera.formats.join(","),
    FAKE_V4L2_FPS: String(camera.fps ?? 30),
  };
  if (camera.jpegs) env.FAKE_V4L2_JPEGS = camera.jpegs;
  if (camera.unplugAfter !== undefined) env.FAKE_V4L2_UNPLUG_AFTER = String(camera.unplugAfter);
  if (camera.unplugged) env.FAKE_V4L2_UNPLUGGED = camera.unplugged;
  if (camera.busy) env.FAKE_V4L2_BUSY = "1";
  if (camera.denied) env.FAKE_V4L2_DENIED = "1";
  if (camera.metadata) env.FAKE_V4L2_METADATA = "1";
  if (camera.hideReal) env.FAKE_V4L2_HIDE_REAL = "1";
  return env;
}
