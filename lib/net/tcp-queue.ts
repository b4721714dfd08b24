import { dlopen, FFIType, ptr } from "bun:ffi";

/** ioctl request for the bytes a TCP socket has not yet had acknowledged (SIOCOUTQ, Linux). */
const SIOCOUTQ = 0x5411;

type Ioctl = (fd: number, request: number, arg: number) => number;
let ioctl: Ioctl | null | undefined;

function loadIoctl(): Ioctl | null {
  if (ioctl !== undefined) return ioctl;
  ioctl = null;
  if (process.platform !== "linux") return ioctl;
  try {
    const { symbols } = dlopen("libc.so.6", { ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 } });
    ioctl = symbols.ioctl as unknown as Ioctl;
  } catch {
    ioctl = null;
  }
  return ioctl;
}

/**
 * Bytes a TCP socket's kernel still holds for the peer (sent but not acknowledged, or
 * not sent yet), or null where that cannot be asked (no descriptor, not Linux). What the
 * process itself queued is not included. A full frame waiting here is a frame of lag,
 * which is why TCP delivery asks before each frame.
 */
export function unsentBytes(fd: number | undefined): number | null {
  if (fd === undefined || fd < 0) return null;
  const call = loadIoctl();
  if (!call) return null;
  const out = new Int32Array(1);
  return call(fd, SIOCOUTQ, ptr(out) as unknown as number) === 0 ? out[0]! : null;
}
