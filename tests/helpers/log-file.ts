import { existsSync, readFileSync } from "node:fs";
import { until } from "./process.ts";

/** The lines of a log file now (none while it does not exist yet). */
export function logFileLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((l) => l !== "") : [];
}

/**
 * The first line of the log file at `path` that matches `re`, once it is there. A process logs
 * an event when it has handled it, which on a busy machine can be well after the action that
 * caused it (a viewer's exit, a closed socket), so tests wait for the line instead of reading
 * the file right after the action. Throws naming `what`, with the file's tail, after `timeoutMs`.
 */
export async function logLine(path: string, re: RegExp, timeoutMs: number, what: string): Promise<string> {
  let found: string | undefined;
  try {
    await until(() => (found = logFileLines(path).find((l) => re.test(l))) !== undefined, timeoutMs, `${what} (${re} in ${path})`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast lines:\n${logFileLines(path).slice(-20).join("\n")}`);
  }
  return found!;
}
