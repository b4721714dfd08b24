import { UserError } from "../errors/user-error.ts";
import { UsageError } from "./cli.ts";

/**
 * Runs an entry script's main and exits with its status. A UsageError prints its
 * message and the usage hint with exit 2; any other UserError prints one line with
 * its exitCode (1 unless it says otherwise); anything else is a bug and prints its stack, exit 1.
 */
export async function runMain(program: string, script: string, main: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (e) {
    code = reportFailure(program, script, e, (text) => process.stderr.write(text));
  }
  process.exit(code);
}

/** Writes what `main` threw the way runMain does, and returns the exit status (exported for tests). */
export function reportFailure(program: string, script: string, thrown: unknown, write: (text: string) => void): number {
  if (thrown instanceof UsageError) {
    write(`${program}: ${thrown.message}\nRun \`${invocation(script)} --help\` for usage.\n`);
    return 2;
  }
  if (thrown instanceof UserError) {
    write(`${program}: error: ${thrown.message}\n`);
    return thrown.exitCode;
  }
  const err = thrown instanceof Error ? thrown : new Error(String(thrown));
  write(`${program}: unexpected error: ${err.stack ?? err.message}\n`);
  return 1;
}

/**
 * SIGINT/SIGTERM as a stop request: the first asks the program to wind down (its
 * teardown then runs), a second exits at once with 130. Dispose it last, after the
 * teardown, so that second signal keeps that meaning throughout.
 */
export class StopSignal implements Disposable {
  stopped = false;
  #reason = "";
  readonly #waiters = new Set<() => void>();
  readonly #listeners: ((signal: string) => void)[] = [];
  readonly #handler = (sig: NodeJS.Signals) => {
    if (this.stopped) process.exit(130);
    this.stop(sig);
  };

  constructor() {
    process.on("SIGINT", this.#handler);
    process.on("SIGTERM", this.#handler);
  }

  /** Calls `fn` once, when stopped (at once if already stopped). */
  onStop(fn: (signal: string) => void): void {
    if (this.stopped) fn(this.#reason);
    else this.#listeners.push(fn);
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.#reason = reason;
    for (const w of this.#waiters) w();
    for (const fn of this.#listeners) fn(reason);
  }

  /**
   * `p`'s value, or null once stopped. Leaves nothing behind when `p` wins, so it can
   * wrap every frame of a long-running loop (a race against one long-lived promise
   * would add a reaction to it per frame, forever).
   */
  async race<T>(p: Promise<T>): Promise<T | null> {
    if (this.stopped) return null;
    let wake!: () => void;
    const stop = new Promise<null>((resolve) => (wake = () => resolve(null)));
    this.#waiters.add(wake);
    try {
      return await Promise.race([p, stop]);
    } finally {
      this.#waiters.delete(wake);
    }
  }

  [Symbol.dispose](): void {
    process.off("SIGINT", this.#handler);
    process.off("SIGTERM", this.#handler);
  }
}

/** True inside a `bun build --compile` executable (its modules live in Bun's embedded filesystem). */
export function isStandalone(): boolean {
  return Bun.main.startsWith("/$bunfs/") || /^[A-Z]:\\~BUN\\/.test(Bun.main);
}

/** How the user started this program, for usage lines: `bun server.ts`, or the executable's name. */
export function invocation(script: string): string {
  return isStandalone() ? (process.execPath.split(/[\\/]/).pop() ?? script) : `bun ${script}`;
}
