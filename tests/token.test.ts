// Where tokens come from: the flags, the environment and --token auto's file.
import { describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../lib/app/cli.ts";
import { CLIENT_COMMAND } from "../lib/app/client-flags.ts";
import { parseCommandLine } from "../lib/app/flags.ts";
import { SERVER_COMMAND } from "../lib/app/server-flags.ts";
import { tokenSource } from "../lib/app/token-flags.ts";
import { browserViewWarning, joinCommand, setUpToken } from "../lib/app/token-setup.ts";
import { browserViewToken, loadOrCreateToken, TokenError } from "../lib/net/token.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-token-");

function serverFlags(argv: string[]) {
  const cli = parseCommandLine(SERVER_COMMAND, argv);
  if (cli.action !== "run") throw new Error("expected a run");
  return cli.flags;
}

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error("no usage error");
}

describe("token flags", () => {
  test("--token, --token-file, LANCAM_TOKEN, auto; the flags win over the environment", () => {
    const dir = tempDir();
    const file = join(dir, "t");
    writeFileSync(file, "from-the-file\nsecond line ignored\n");
    expect(tokenSource(serverFlags([]), {})).toEqual({ kind: "none" });
    expect(tokenSource(serverFlags([]), { LANCAM_TOKEN: "" })).toEqual({ kind: "none" });
    expect(tokenSource(serverFlags(["--token", "abc"]), { LANCAM_TOKEN: "env" })).toEqual({ kind: "token", token: "abc", from: "--token" });
    expect(tokenSource(serverFlags(["--token-file", file]), {})).toEqual({ kind: "token", token: "from-the-file", from: file });
    expect(tokenSource(serverFlags([]), { LANCAM_TOKEN: "env" })).toEqual({ kind: "token", token: "env", from: "LANCAM_TOKEN" });
    expect(tokenSource(serverFlags(["--token", "auto"]), {})).toEqual({ kind: "auto" });
    expect(usageError(() => tokenSource(serverFlags(["--token", "a", "--token-file", file]), {}))).toBe("give --token or --token-file, not both");
  });

  test("bad tokens and token files are usage errors that say why, never echoing the token", () => {
    expect(usageError(() => serverFlags(["--token", ""]))).toBe("--token needs a value");
    expect(usageError(() => serverFlags(["--token", "a b"]))).toBe("invalid --token: contains a space or control character (U+0020)");
    expect(usageError(() => serverFlags(["--token", "x".repeat(257)]))).toBe("invalid --token: is 257 characters, at most 256");
    const missing = join(tempDir(), "none");
    expect(usageError(() => serverFlags(["--token-file", missing]))).toBe(`invalid --token-file=${missing}: cannot read the token file ${missing}: ENOENT`);
    const empty = join(tempDir(), "empty");
    writeFileSync(empty, "\n");
    expect(usageError(() => serverFlags(["--token-file", empty]))).toBe(`invalid --token-file=${empty}: the token file ${empty} is empty`);
    expect(usageError(() => parseCommandLine(CLIENT_COMMAND, ["h", "1", "0", "--token", "auto"]))).toBe(
      "invalid --token=auto: auto is for the server; give the viewer the token the server printed",
    );
  });
});

describe("--token auto", () => {
  test("creates a 128-bit token in a 0600 file, and reads the same one back on the next start", () => {
    const path = join(tempDir(), "lancam-token");
    const first = loadOrCreateToken(path);
    expect(first.created).toBe(true);
    expect(first.token).toMatch(/^[0-9a-f]{32}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe(`${first.token}\n`);
    expect(loadOrCreateToken(path)).toEqual({ token: first.token, created: false });
    expect(() => loadOrCreateToken(join(tempDir(), "no", "such", "dir", "t"))).toThrow(TokenError);
  });

  test("setUpToken: the file beside the log, warnings for short tokens and files others can read", () => {
    const dir = tempDir();
    const auto = setUpToken({ kind: "auto" }, join(dir, "server.log"))!;
    expect(auto.file).toEqual({ path: join(dir, "lancam-token"), created: true });
    expect(auto.warnings).toEqual([]);
    expect(auto.key.bytes).toHaveLength(32);
    const short = setUpToken({ kind: "token", token: "hunter2", from: "--token" }, null)!;
    expect(short.warnings[0]).toContain("the token is 7 characters");
    const file = join(dir, "shared");
    writeFileSync(file, "a-long-enough-token-for-this\n");
    chmodSync(file, 0o644);
    expect(setUpToken({ kind: "token", token: "a-long-enough-token-for-this", from: file }, null)!.warnings).toEqual([
      `the token file ${file} can be read by other users of this machine (chmod 600 ${file})`,
    ]);
    expect(setUpToken({ kind: "none" }, null)).toBeNull();
    expect(joinCommand("10.0.0.5", 9999, "ab12")).toBe("bun client.ts 10.0.0.5 9999 0 --token ab12");
  });

  test("the browser view has a key of its own, derived from the token, and a warning when it listens beyond this machine", () => {
    const token = "a-long-enough-token-for-this";
    const view = browserViewToken(token);
    expect(view).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(view).toBe(browserViewToken(token));
    expect(view).not.toContain(token.slice(0, 8));
    expect(browserViewToken(token + "x")).not.toBe(view);
    expect(browserViewWarning("127.0.0.1")).toBeNull();
    expect(browserViewWarning("::1")).toBeNull();
    expect(browserViewWarning("0.0.0.0")).toContain("the browser view is plain HTTP");
  });
});
