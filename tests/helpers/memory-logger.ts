import { createLogger } from "../../lib/log/logger.ts";
import type { Logger } from "../../lib/log/format.ts";

/** A logger that keeps its lines in memory. */
export function memoryLogger(part = "test"): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(part, [(line) => lines.push(line)], "DEBUG");
  return Object.assign(log, { lines });
}
