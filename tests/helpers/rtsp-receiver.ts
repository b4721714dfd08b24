import { readFileSync } from "node:fs";
import { resolveFfmpeg } from "../../lib/media/ffmpeg.ts";
import { type Child, spawnChild, until } from "./process.ts";

const ffmpeg = resolveFfmpeg().path;

/** A port nothing listens on right now. */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** True when something listens on 127.0.0.1:`port` (read from the kernel, so no connection is used up). */
export function listening(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8").split("\n").some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1] === local && f[3] === "0A";
  });
}

/** ffmpeg as an RTSP server for one publisher, writing what it gets into `out` (stream copy). */
export async function receiver(port: number, out: string): Promise<Child> {
  const child = spawnChild([
    ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", "-rtsp_flags", "listen",
    "-i", `rtsp://127.0.0.1:${port}/classroom`, "-c", "copy", "-y", out,
  ]);
  let exited = false;
  void child.exited.then(() => (exited = true));
  await until(() => exited || listening(port), 10_000, `the receiver listens on ${port}`);
  if (exited) throw new Error(`the receiver exited at once:\n${child.stderr()}`);
  return child;
}

