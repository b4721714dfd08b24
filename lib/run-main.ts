import { UsageError } from "./cli.ts";

/** Errors whose message is already the whole story for the user (no stack trace). */
const USER_ERRORS = new Set(["UsageError", "ConnectError", "CaptureError", "RecordError", "CvLoadError", "FfmpegNotFoundError", "StartError"]);

/**
 * Runs an entry script's main: a UsageError prints its message and the usage hint
 * with exit 2, a known error prints one line with exit 1, anything else its stack.
 */
export async function runMain(program: string, script: string, main: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (err instanceof UsageError) {
      process.stderr.write(`${program}: ${err.message}\nRun \`${invocation(script)} --help\` for usage.\n`);
      code = 2;
    } else if (USER_ERRORS.has(err.name)) {
      process.stderr.write(`${program}: error: ${err.message}\n`);
      code = 1;
    } else {
      process.stderr.write(`${program}: unexpected error: ${err.stack ?? err.message}\n`);
      code = 1;
    }
  }
  process.exit(code);
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let resolve!: (s: NodeJS.Signals) => void;
  const promise = new Promise<NodeJS.Signals>((r) => (resolve = r));
  let seen = false;
  const handler = (sig: NodeJS.Signals) => {
    if (seen) process.exit(130);
    seen = true;
    resolve(sig);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    promise,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

/** True inside a `bun build --compile` executable (its modules live in Bun's embedded filesystem). */
export function isStandalone(): boolean {
  return Bun.main.startsWith("/$bunfs/") || /^[A-Z]:\\~BUN\\/.test(Bun.main);
}

/** How the user started this program, for usage lines: `bun server.ts`, or the executable's name. */
export function invocation(script: string): string {
  return isStandalone() ? (process.execPath.split(/[\\/]/).pop() ?? script) : `bun ${script}`;
}
