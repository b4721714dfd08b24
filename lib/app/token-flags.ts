import { checkToken, readTokenFile, TokenError } from "../net/token.ts";
import { UsageError } from "./cli.ts";
import { REDACTED } from "./config-file.ts";
import { valueFlag } from "./flags.ts";

/** The environment variable either program reads its token from when no flag gives one. */
export const TOKEN_ENV = "LANCAM_TOKEN";

/** Where a token comes from, once the command line and the environment are read. */
export type TokenSource =
  | { kind: "none" }
  /** `from` names it for messages, never the token itself. */
  | { kind: "token"; token: string; from: string }
  /** The server's `--token auto`: a random token kept in a file. */
  | { kind: "auto" };

function tokenValue(raw: string, flag: string): string {
  try {
    return checkToken(raw, flag);
  } catch (e) {
    throw new UsageError(`invalid ${flag}: ${(e as Error).message.replace(`${flag} `, "")}`);
  }
}

/** --print-config writes no token but `auto`, which is no secret. */
const redactToken = (text: string) => (text === "auto" ? text : REDACTED);

/** --print-config writes a token file's path; the token it holds stays in the file. */
const tokenFilePath = (value: { path: string }) => value.path;

function tokenFileValue(raw: string, flag: string): { path: string; token: string } {
  try {
    return { path: raw, token: readTokenFile(raw) };
  } catch (e) {
    if (e instanceof TokenError) throw new UsageError(`invalid ${flag}=${raw}: ${e.message}`);
    throw e;
  }
}

/** `--token` and `--token-file` of the server: `auto` makes and keeps a random token. */
export const SERVER_TOKEN_FLAGS = {
  token: valueFlag<string | null>("token", "T", null, tokenValue,
    "viewers must prove this token (it never crosses the network) and every\nframe is encrypted; auto makes a random one, kept in lancam-token next to\nthe log, and prints the client command (default: LANCAM_TOKEN, else none)", undefined, { redact: redactToken }),
  tokenFile: valueFlag<{ path: string; token: string } | null>("token-file", "FILE", null, tokenFileValue,
    "the token is the first line of FILE (not shown in the process list)", undefined, { format: tokenFilePath }),
};

/** `--token` and `--token-file` of the client. */
export const CLIENT_TOKEN_FLAGS = {
  token: valueFlag<string | null>("token", "T", null, (raw, flag) => {
    if (raw === "auto") throw new UsageError(`invalid ${flag}=auto: auto is for the server; give the viewer the token the server printed`);
    return tokenValue(raw, flag);
  }, "the server's token: the server must prove it holds it too, and frames\nare decrypted (default: LANCAM_TOKEN, else none)", undefined, { redact: redactToken }),
  tokenFile: valueFlag<{ path: string; token: string } | null>("token-file", "FILE", null, tokenFileValue,
    "the token is the first line of FILE (not shown in the process list)", undefined, { format: tokenFilePath }),
};

/** The token the flags or, failing them, the environment give; both flags at once are a usage error. */
export function tokenSource(flags: { token: string | null; tokenFile: { path: string; token: string } | null }, env: Record<string, string | undefined>): TokenSource {
  if (flags.token !== null && flags.tokenFile !== null) throw new UsageError("give --token or --token-file, not both");
  if (flags.token === "auto") return { kind: "auto" };
  if (flags.token !== null) return { kind: "token", token: flags.token, from: "--token" };
  if (flags.tokenFile !== null) return { kind: "token", token: flags.tokenFile.token, from: flags.tokenFile.path };
  const fromEnv = env[TOKEN_ENV];
  if (fromEnv === undefined || fromEnv === "") return { kind: "none" };
  if (fromEnv === "auto") return { kind: "auto" };
  return { kind: "token", token: tokenValue(fromEnv, TOKEN_ENV), from: TOKEN_ENV };
}
