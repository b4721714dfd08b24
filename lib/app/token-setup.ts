import { networkInterfaces } from "node:os";
import { dirname, join, resolve } from "node:path";
import { tokenKey, type TokenKey } from "../net/session-keys.ts";
import { AUTO_TOKEN_FILE, loadOrCreateToken, readableByOthers, SHORT_TOKEN_CHARS } from "../net/token.ts";
import { isStandalone } from "./run-main.ts";
import type { TokenSource } from "./token-flags.ts";

/** A token ready for use, and what the program should say about it. */
export interface TokenSetup {
  token: string;
  key: TokenKey;
  /** `--token auto`: the file it is kept in, and whether this start created it. */
  file: { path: string; created: boolean } | null;
  /** Things the user should know (a short token, a token file others can read). */
  warnings: string[];
}

/**
 * The token `source` names, stretched for use; null without one. `--token auto` reads
 * or creates AUTO_TOKEN_FILE in the log's folder; a file that cannot be written is a
 * TokenError (lib/net/token.ts), for the caller to report as a start failure.
 */
export function setUpToken(source: TokenSource, logPath: string | null): TokenSetup | null {
  if (source.kind === "none") return null;
  const warnings: string[] = [];
  let token: string;
  let file: TokenSetup["file"] = null;
  let path: string | null = null;
  if (source.kind === "auto") {
    path = join(dirname(resolve(logPath ?? ".")), AUTO_TOKEN_FILE);
    const got = loadOrCreateToken(path);
    token = got.token;
    file = { path, created: got.created };
  } else {
    token = source.token;
    if (source.from !== "--token" && source.from !== "LANCAM_TOKEN") path = source.from;
    if (token.length < SHORT_TOKEN_CHARS) {
      warnings.push(`the token is ${token.length} characters: someone who records a handshake can try guesses at it offline; --token auto on the server makes a 128-bit one`);
    }
  }
  if (path && readableByOthers(path)) warnings.push(`the token file ${path} can be read by other users of this machine (chmod 600 ${path})`);
  return { token, key: tokenKey(token), file, warnings };
}

/** An address viewers can reach this server at: the bound one, or this machine's first LAN address. */
export function reachableAddress(bind: string): string {
  if (bind !== "0.0.0.0" && bind !== "::" && bind !== "") return bind;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/** The exact command that joins this server with its token (the built client beside a built server). */
export function joinCommand(host: string, port: number, token: string): string {
  return `${isStandalone() ? "lancam-client" : "bun client.ts"} ${host} ${port} 0 --token ${token}`;
}

/**
 * The browser view is plain HTTP: its key (derived from the token, never the token
 * itself) and its pictures cross the network in the clear. Said when it listens
 * beyond this machine; null when it does not.
 */
export function browserViewWarning(httpBind: string): string | null {
  if (/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(httpBind)) return null;
  return "the browser view is plain HTTP: its link and its pictures cross the network unencrypted (the link holds a key derived from the token, not the token); use --http-bind 127.0.0.1 to keep it on this machine";
}
