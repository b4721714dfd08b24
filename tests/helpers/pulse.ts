import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./process.ts";

/** A private PulseAudio daemon with one null sink, `lc` (its monitor: `lc.monitor`). */
export interface PulseDaemon extends AsyncDisposable {
  /** What clients need in their environment to reach it (PULSE_SERVER, XDG_RUNTIME_DIR). */
  env: Record<string, string>;
  /** Runs pactl against it; its stdout. */
  pactl(...args: string[]): Promise<string>;
}

/**
 * Starts a PulseAudio daemon of its own (private runtime dir and home, so it touches no
 * other), or returns the reason it cannot run here.
 */
export async function startPulse(): Promise<PulseDaemon | { skip: string }> {
  if (!Bun.which("pulseaudio") || !Bun.which("pactl")) return { skip: "pulseaudio or pactl is not installed (apt-get install pulseaudio pulseaudio-utils)" };
  const dir = mkdtempSync(join(tmpdir(), "lancam-pulse-"));
  const env = { XDG_RUNTIME_DIR: dir, HOME: dir, PULSE_SERVER: `unix:${join(dir, "pulse", "native")}` };
  const start = Bun.spawn(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=lc"], {
    env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe",
  });
  const code = await start.exited;
  const pidFile = join(dir, "pulse", "pid");
  const pid = () => {
    try {
      return Number(readFileSync(pidFile, "utf8").trim()) || null;
    } catch {
      return null;
    }
  };
  const pactl = async (...args: string[]) => {
    const p = Bun.spawn(["pactl", ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    const [out, err, rc] = [await new Response(p.stdout).text(), await new Response(p.stderr).text(), await p.exited];
    if (rc !== 0) throw new Error(`pactl ${args.join(" ")}: ${err.trim()} (exit ${rc})`);
    return out;
  };
  const stop = async () => {
    const p = pid();
    if (p !== null) {
      try {
        process.kill(p, "SIGTERM");
        await until(() => { try { process.kill(p, 0); return false; } catch { return true; } }, 10_000, "pulseaudio to exit");
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (code !== 0) {
    const why = (await new Response(start.stderr).text()).trim().split("\n").at(-1);
    await stop();
    return { skip: `pulseaudio did not start (exit ${code}): ${why}` };
  }
  try {
    await until(async () => (await pactl("list", "short", "sources").catch(() => "")).includes("lc.monitor"), 15_000, "the null sink's monitor");
  } catch (e) {
    await stop();
    return { skip: `pulseaudio started but its null sink did not appear: ${(e as Error).message}` };
  }
  return { env, pactl, [Symbol.asyncDispose]: stop };
}
