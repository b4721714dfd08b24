import { dlopen, FFIType, ptr } from "bun:ffi";

/** The largest buffer that can be asked for: setsockopt takes an int, which Linux then doubles. */
export const MAX_SOCKET_BUFFER = 1 << 30;
/** The receive buffer a viewer asks for unless told otherwise (`--recv-buffer`): a few frames at full rate. */
export const DEFAULT_RECEIVE_BUFFER = 4 << 20;

/** What enlarging a socket's receive buffer achieved. */
export interface BufferResult {
  requested: number;
  /** Bytes the kernel reports now (Linux reports twice the usable size), or null where unknown. */
  actual: number | null;
  /** Why it could not be set, when it could not. */
  note?: string;
}

// Socket option numbers differ per platform.
interface Options { lib: string; SOL_SOCKET: number; receive: [number, number?]; send: [number, number?] }
/** [SO_RCVBUF, SO_RCVBUFFORCE] and [SO_SNDBUF, SO_SNDBUFFORCE]; the FORCE variants exist on Linux only. */
const CONSTANTS: Partial<Record<NodeJS.Platform, Options>> = {
  linux: { lib: "libc.so.6", SOL_SOCKET: 1, receive: [8, 33], send: [7, 32] },
  darwin: { lib: "libc.dylib", SOL_SOCKET: 0xffff, receive: [0x1002], send: [0x1001] },
};

type Libc = {
  setsockopt: (fd: number, level: number, name: number, value: number, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, value: number, len: number) => number;
};
let libc: Libc | null | undefined;

function loadLibc(lib: string): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const { symbols } = dlopen(lib, {
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    });
    libc = symbols as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * Asks the kernel for a socket buffer of `bytes` on a file descriptor. Bun's UDP
 * socket has no option for this, and a 720p frame is bigger than the default
 * buffer: without it a burst is dropped silently by the receiving kernel, or
 * refused by the sending one. Tries SO_RCVBUF/SO_SNDBUF, then the FORCE variant
 * (which passes the rmem_max/wmem_max cap with CAP_NET_ADMIN).
 */
export function enlargeBuffer(fd: number | undefined, which: "receive" | "send", bytes: number): BufferResult {
  const c = CONSTANTS[process.platform];
  if (fd === undefined || fd < 0) return { requested: bytes, actual: null, note: "socket has no file descriptor" };
  if (!c) return { requested: bytes, actual: null, note: `not supported on ${process.platform}` };
  const lib = loadLibc(c.lib);
  if (!lib) return { requested: bytes, actual: null, note: `cannot load ${c.lib}` };
  if (!(bytes > 0 && bytes <= MAX_SOCKET_BUFFER)) return { requested: bytes, actual: null, note: `not set: ${bytes} is outside 1..${MAX_SOCKET_BUFFER}` };
  const [option, force] = c[which];
  const value = new Int32Array([bytes]);
  lib.setsockopt(fd, c.SOL_SOCKET, option, ptr(value) as unknown as number, 4);
  let actual = readBuffer(lib, fd, c.SOL_SOCKET, option);
  if (actual !== null && actual < bytes && force !== undefined) {
    if (lib.setsockopt(fd, c.SOL_SOCKET, force, ptr(value) as unknown as number, 4) === 0) {
      actual = readBuffer(lib, fd, c.SOL_SOCKET, option);
    }
  }
  const sysctl = which === "receive" ? "net.core.rmem_max" : "net.core.wmem_max";
  const note = actual !== null && actual < bytes ? `capped by the kernel (raise ${sysctl} to allow more)` : undefined;
  return { requested: bytes, actual, note };
}

/** The receive side of {@link enlargeBuffer}. */
export function enlargeReceiveBuffer(fd: number | undefined, bytes: number): BufferResult {
  return enlargeBuffer(fd, "receive", bytes);
}

function readBuffer(lib: Libc, fd: number, level: number, name: number): number | null {
  const out = new Int32Array(1);
  const len = new Uint32Array([4]);
  const rc = lib.getsockopt(fd, level, name, ptr(out) as unknown as number, ptr(len) as unknown as number);
  return rc === 0 ? out[0]! : null;
}

/** The file descriptor behind a Bun UDP socket (present at run time, missing from the typings). */
export function socketFd(socket: object): number | undefined {
  const fd = (socket as { fd?: unknown }).fd;
  return typeof fd === "number" ? fd : undefined;
}
