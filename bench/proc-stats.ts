import { readFileSync } from "node:fs";

/** USER_HZ on Linux: the unit of the CPU times in /proc/PID/stat. */
const TICKS = 100;

/** CPU seconds (user + system, every thread) a process has used, from /proc; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/** Peak resident memory of a process in MiB (VmHWM); NaN once it is gone. */
export function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds a process has used, user (its own work) and user + system; NaN once it is gone. */
export function cpuSplit(pid: number): { user: number; total: number } {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    const user = Number(rest[11]) / TICKS;
    return { user, total: user + Number(rest[12]) / TICKS };
  } catch {
    return { user: NaN, total: NaN };
  }
}
