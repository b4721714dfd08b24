import type { Subprocess } from "bun";
import { join } from "node:path";

/** The repository root (tests spawn the entry scripts from here). */
export const ROOT = join(import.meta.dir, "..", "..");

/** A child process whose output is collected as it arrives. */
export interface Child extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first stdout/stderr line matching `re`; rejects on exit or timeout. */
  waitFor: (re: RegExp, timeoutMs?: number, stream?: "stdout" | "stderr") => Promise<RegExpMatchArray>;
  /** Exit code once it has exited. */
  exited: Promise<number>;
}

async function collect(stream: ReadableStream<Uint8Array>, into: { text: string }, notify: () => void): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    into.text += decoder.decode(chunk, { stream: true });
    notify();
  }
}

/** Starts `bun <script> ...args` from the repository root. */
export function spawnBun(args: string[], env: Record<string, string | undefined> = {}): Child {
  return spawnChild([process.execPath, ...args], env);
}

/** Starts a command with collected output; killed (SIGKILL) on dispose if still running. */
export function spawnChild(cmd: string[], env: Record<string, string | undefined> = {}): Child {
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const out = { text: "" };
  const err = { text: "" };
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const done = Promise.all([collect(proc.stdout, out, notify), collect(proc.stderr, err, notify)]);
  const exited = done.then(() => proc.exited).then((code) => {
    notify();
    return code;
  });
  let finished = false;
  void exited.then(() => {
    finished = true;
    notify();
  });
  const waitFor = (re: RegExp, timeoutMs = 15_000, stream: "stdout" | "stderr" = "stdout") =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = (stream === "stdout" ? out : err).text.match(re);
        if (m) {
          cleanup();
          resolve(m);
        } else if (finished) {
          cleanup();
          reject(new Error(`process exited (${proc.exitCode}) before ${re} appeared on ${stream}\nstdout:\n${out.text}\nstderr:\n${err.text}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} on ${stream}\nstdout:\n${out.text}\nstderr:\n${err.text}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    proc,
    stdout: () => out.text,
    stderr: () => err.text,
    waitFor,
    exited,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Polls `cond` every 50 ms until it holds; throws with `what` after `timeoutMs`. `what` may be a
 * function, called at the timeout, so the message can say how far things got.
 */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof what === "string" ? what : what()}`);
    await Bun.sleep(50);
  }
}

/**
 * The exit code of a child that is expected to end by itself (its peer went away, its input
 * ended). A loaded machine may take seconds for that, so a test must wait for the exit rather
 * than kill the child right after the action: a kill reads as exit 137. Past `timeoutMs` the
 * child is killed and this throws, naming `what` and showing its output.
 */
export async function exitWithin(child: Child, timeoutMs: number, what: string): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), timeoutMs)));
  const code = await Promise.race([child.exited, late]);
  clearTimeout(timer);
  if (code !== "late") return code;
  await child[Symbol.asyncDispose]();
  throw new Error(`timed out after ${timeoutMs} ms: ${what} did not exit\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`);
}

/** Reads a child's stdout until a whole line starting with `prefix` came; that line. Throws at `timeoutMs` or if the child ends first. */
export async function readLine(stream: ReadableStream<Uint8Array>, prefix: string, timeoutMs: number): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Bun.sleep(timeoutMs).then(() => null);
  try {
    for (;;) {
      const r = await Promise.race([reader.read(), deadline]);
      if (r === null) throw new Error(`no "${prefix}" line within ${timeoutMs} ms; got: ${text}`);
      if (r.done) throw new Error(`child ended before printing "${prefix}"; got: ${text}`);
      text += decoder.decode(r.value, { stream: true });
      const line = text.split("\n").find((l) => l.startsWith(prefix));
      if (line !== undefined && text.includes(line + "\n")) return line;
    }
  } finally {
    reader.releaseLock();
  }
}

/** The last `max` characters of a child's output, for a failure message. */
const tail = (text: string, max = 4000): string => (text.length > max ? `[…${text.length - max} characters before]\n${text.slice(-max)}` : text);

/**
 * Waits for `child` to exit and checks its exit code. Any other code fails with the child's
 * output, so a failure in CI says why the process ended, not only that it did.
 */
export async function expectExit(child: Child, code: number): Promise<void> {
  const got = await child.exited;
  if (got !== code) throw new Error(`exit code ${got}, expected ${code}\nstdout:\n${tail(child.stdout())}\nstderr:\n${tail(child.stderr())}`);
}

/**
 * Does `act` (a key press, a close request) until `child` exits, again every `everyMs`
 * while it runs, as a user presses again when nothing happens: on a loaded machine a
 * request that comes while a window is still busy can go unanswered. `act` returns false
 * once there is nothing left to act on (the window is gone: the child is ending), and the
 * child is then only waited for. The exit code; past `times` tries this throws, naming
 * `what` with `details()` and the child's output.
 */
export async function repeatUntilExit(child: Child, act: () => boolean | Promise<boolean>, what: string,
  details: () => string = () => "", times = 10, everyMs = 2000): Promise<number> {
  let open = true;
  for (let tries = 1; ; tries++) {
    if (open) open = await act();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([child.exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), everyMs)))]);
    clearTimeout(timer);
    if (code !== null) return code;
    if (tries >= times) throw new Error(`the process did not end after ${tries} ${what}, ${everyMs} ms apart\n${details()}\nstderr:\n${tail(child.stderr())}`);
  }
}
