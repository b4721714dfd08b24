import { createHmac, randomBytes } from "node:crypto";
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { UserError } from "../errors/user-error.ts";

/** A token that cannot be used, or a token file that cannot be read or written; the message says which. */
export class TokenError extends UserError {
  override name = "TokenError";
}

/** Longest token accepted (a token file's first line is read whole). */
export const MAX_TOKEN_CHARS = 256;
/** Random bytes in a `--token auto` token: 128 bits, written as 32 hex digits. */
export const AUTO_TOKEN_BYTES = 16;
/** Shorter tokens work, but a recorded handshake lets anyone guess them offline. */
export const SHORT_TOKEN_CHARS = 16;
/** The file `--token auto` keeps its token in, next to the server's log. */
export const AUTO_TOKEN_FILE = "lancam-token";

// Control characters and spaces would not survive being typed or pasted into a command line.
const BAD_CHARS = /[\u0000-\u0020\u007f-\u009f]/;

/** `token` if it can be used, else a TokenError saying why (`from` names where it came from). */
export function checkToken(token: string, from: string): string {
  if (token.length === 0) throw new TokenError(`${from} is empty`);
  if (token.length > MAX_TOKEN_CHARS) throw new TokenError(`${from} is ${token.length} characters, at most ${MAX_TOKEN_CHARS}`);
  const bad = BAD_CHARS.exec(token);
  if (bad) throw new TokenError(`${from} contains a space or control character (U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0")})`);
  return token;
}

/** The token in `path`: its first line, without the line end. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new TokenError(`cannot read the token file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return checkToken(text.split(/\r?\n/, 1)[0]!, `the token file ${path}`);
}

/** Whether a file others than its owner can read (a token file should not be). */
export function readableByOthers(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

/**
 * `--token auto`: the token kept in `path`, or a new random one written there (mode
 * 0600, created exclusively, so two servers starting at once cannot both write one).
 * The same file on the next start gives the same token: viewers keep working across restarts.
 */
export function loadOrCreateToken(path: string): { token: string; created: boolean } {
  try {
    return { token: readTokenFile(path), created: false };
  } catch (e) {
    if (!(e instanceof TokenError) || !/ENOENT/.test(e.message)) throw e;
  }
  const token = randomBytes(AUTO_TOKEN_BYTES).toString("hex");
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Another server created it meanwhile: use that one.
    if (code === "EEXIST") return { token: readTokenFile(path), created: false };
    throw new TokenError(`cannot create the token file ${path}: ${code ?? (e as Error).message}`);
  }
  try {
    // The umask cannot widen 0600, but a chmod makes the mode independent of it.
    chmodSync(path, 0o600);
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  return { token, created: true };
}

/**
 * The browser view's own key, derived from the token. The view is plain HTTP, so its key
 * may be seen on the network; a derived one lets whoever sees it watch the page, but not
 * learn the token (HMAC is one-way), so they can neither join as a lancam viewer nor
 * read the encrypted UDP stream nor pose as the server.
 */
export function browserViewToken(token: string): string {
  return createHmac("sha256", token).update("lancam browser view v1").digest("base64url").slice(0, 22);
}
