import { readFileSync } from "node:fs";
import { UserError } from "../errors/user-error.ts";

/**
 * Where a publisher pushes the stream: an RTSP (or RTSP over TLS) URL, checked before ffmpeg
 * ever sees it, and its redacted form for logs and state.
 *
 *   rtsp://  [USER[:PASSWORD]@]  HOST  [:PORT]  /PATH  [?QUERY]
 *   rtsps:// ...                                (port 322 by default, 554 for rtsp)
 *
 * ffmpeg percent-decodes USER and PASSWORD before it sends them, so a password holding `@`, `:`
 * or `/` is written %40, %3A, %2F; credentials from a token file are encoded that way here.
 * A query (MediaMTX reads `?jwt=...` there) may be a secret too, so its values are redacted.
 */

/**
 * A `--publish` URL or a token file that cannot be used. The message names the flag and never
 * holds a password, so the flag table can print it as a usage error as it is.
 */
export class PublishUrlError extends UserError {
  override name = "PublishUrlError";
}

/** The schemes ffmpeg can publish to as an RTSP client. */
export type PublishScheme = "rtsp" | "rtsps";

/** Port used when the URL names none (RFC 7826 for rtsp, IANA for rtsps). */
export const DEFAULT_PORTS: Readonly<Record<PublishScheme, number>> = { rtsp: 554, rtsps: 322 };

/** What a log line shows instead of a user, a password or a query value. */
export const REDACTED = "***";

/** One place to publish to. */
export interface PublishTarget {
  /** The URL ffmpeg connects to, credentials included: never log it, never show it. */
  readonly url: string;
  /** The URL with user, password and query values replaced by `***`: for logs and state. */
  readonly redacted: string;
  readonly scheme: PublishScheme;
  /** Host name, IPv4 address, or IPv6 address in brackets. */
  readonly host: string;
  readonly port: number;
  /** The stream's path, with its leading slash, as written (percent escapes kept). */
  readonly path: string;
  /** True when the URL carries a user and password. */
  readonly hasCredentials: boolean;
  /** Texts that must never reach a log line: user, password and query values, raw and decoded. */
  readonly secrets: readonly string[];
}

/**
 * The target one level down, for one of several cameras: `rtsp://h/classroom` becomes
 * `rtsp://h/classroom/board` (before any query). `name` is a camera name or number
 * (lib/wire/camera-name.ts), which needs no escaping in a path.
 */
export function withSubPath(target: PublishTarget, name: string): PublishTarget {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new RangeError(`path segment ${JSON.stringify(name)}: letters, digits, _ and - only`);
  // No ? can come before the query: credentials and hosts cannot hold one (parsePublishUrl).
  const insert = (url: string) => {
    const q = url.indexOf("?");
    const at = q < 0 ? url.length : q;
    const base = url.slice(0, at).replace(/\/+$/, "");
    return `${base}/${name}${url.slice(at)}`;
  };
  return { ...target, url: insert(target.url), redacted: insert(target.redacted), path: `${target.path.replace(/\/+$/, "")}/${name}` };
}

/** A user and password, as the server should receive them (not percent-encoded). */
export interface PublishCredentials {
  user: string;
  password: string;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// RFC 3986: unreserved, sub-delims, and percent escapes (checked apart); ":" and "@" where allowed.
const USERINFO_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:%]*$/;
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9\-._~]+)?\]$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
const EXAMPLE = "rtsp://HOST[:PORT]/PATH, e.g. rtsp://192.168.1.10:8554/classroom";

/**
 * Checks a `--publish` value and splits it; throws {@link PublishUrlError} naming `flag` and what
 * is wrong. The error shows the URL redacted.
 */
export function parsePublishUrl(text: string, flag = "--publish"): PublishTarget {
  // Typed so that TypeScript knows a call never returns and narrows after it.
  const fail: (why: string) => never = (why) => {
    throw new PublishUrlError(`invalid ${flag}=${redactUrl(text)}: ${why}`);
  };
  if (text === "") fail(`empty; expected ${EXAMPLE}`);
  // Spaces and control characters would end up in an RTSP request line or in ffmpeg's argv.
  if (/[\s\x00-\x1f\x7f]/.test(text)) fail("contains a space or control character; escape it as %XX");
  const scheme = SCHEME.exec(text);
  if (!scheme) fail(`expected ${EXAMPLE}`);
  const name = scheme[1]!.toLowerCase();
  if (name !== "rtsp" && name !== "rtsps") fail(`scheme ${name}:// is not supported; expected rtsp:// or rtsps://`);
  const rest = text.slice(scheme[0].length);
  if (rest.includes("#")) fail("a #fragment is never sent to the server; remove it");
  // Credentials end at the last @ before the query, so a stray @ or / in a password makes the
  // whole of it credentials (refused below, never quoted) rather than a host or path to quote.
  const at = userinfoEnd(rest);
  const userinfo = at < 0 ? null : rest.slice(0, at);
  const afterUser = at < 0 ? rest : rest.slice(at + 1);
  const authorityEnd = afterUser.search(/[/?]/);
  const hostPort = authorityEnd < 0 ? afterUser : afterUser.slice(0, authorityEnd);
  const afterAuthority = authorityEnd < 0 ? "" : afterUser.slice(authorityEnd);
  const queryAt = afterAuthority.indexOf("?");
  const path = queryAt < 0 ? afterAuthority : afterAuthority.slice(0, queryAt);
  const query = queryAt < 0 ? null : afterAuthority.slice(queryAt + 1);

  let user = "";
  let password = "";
  if (userinfo !== null) {
    if (userinfo.includes("@")) fail("write an @ in a user or password as %40");
    if (userinfo.includes("/")) fail("write a / in a user or password as %2F");
    if (!USERINFO_CHARS.test(userinfo) || BAD_ESCAPE.test(userinfo)) {
      fail("the user or password holds a character that must be escaped as %XX");
    }
    const colon = userinfo.indexOf(":");
    // ffmpeg sends no credentials at all without a colon: a user alone would silently go unused.
    if (colon < 0) fail("credentials must be USER:PASSWORD (or use --publish-token-file)");
    user = userinfo.slice(0, colon);
    password = userinfo.slice(colon + 1);
    if (user === "") fail("the user before the : is empty");
  }

  if (hostPort === "") fail(`no host; expected ${EXAMPLE}`);
  let host: string;
  let portText: string | null;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    if (close < 0) fail(`bad host ${JSON.stringify(hostPort)}: an IPv6 address needs its closing ]`);
    host = hostPort.slice(0, close + 1);
    const tail = hostPort.slice(close + 1);
    if (tail !== "" && !tail.startsWith(":")) fail(`bad host ${JSON.stringify(hostPort)}: expected :PORT after ]`);
    portText = tail === "" ? null : tail.slice(1);
    if (!IPV6.test(host)) fail(`bad host ${JSON.stringify(host)}: not an IPv6 address`);
  } else {
    const colon = hostPort.lastIndexOf(":");
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    portText = colon < 0 ? null : hostPort.slice(colon + 1);
    if (host === "") fail(`no host; expected ${EXAMPLE}`);
    if (!HOST_NAME.test(host)) fail(`bad host ${JSON.stringify(host)}: expected a host name, an IPv4 address or [IPv6]`);
  }
  let port = DEFAULT_PORTS[name];
  if (portText !== null) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      fail(`bad port ${JSON.stringify(portText)}: expected 1..65535`);
    }
    port = Number(portText);
  }

  if (path === "" || path === "/") fail(`no path: name the stream, e.g. ${name}://${host}:${port}/classroom`);
  if (!PATH_CHARS.test(path) || BAD_ESCAPE.test(path)) {
    fail(`bad path ${JSON.stringify(path)}: use letters, digits and - . _ ~ / (escape others as %XX)`);
  }
  if (query !== null && (!QUERY_CHARS.test(query) || BAD_ESCAPE.test(query))) {
    fail("the query holds a character that must be escaped as %XX");
  }

  const secrets: string[] = [];
  if (userinfo !== null) secrets.push(...variants(user), ...variants(password));
  if (query) {
    for (const pair of query.split("&")) {
      const eq = pair.indexOf("=");
      secrets.push(...variants(eq < 0 ? pair : pair.slice(eq + 1)));
    }
  }
  const url = `${name}://${userinfo !== null ? `${userinfo}@` : ""}${hostPort}${path}${query !== null ? `?${query}` : ""}`;
  return {
    url,
    redacted: redactUrl(url),
    scheme: name,
    host,
    port,
    path,
    hasCredentials: userinfo !== null,
    secrets: unique(secrets),
  };
}

/** Index of the @ that ends the credentials in what follows `scheme://`, or -1. */
function userinfoEnd(afterScheme: string): number {
  const q = afterScheme.indexOf("?");
  return (q < 0 ? afterScheme : afterScheme.slice(0, q)).lastIndexOf("@");
}

function unique(secrets: string[]): string[] {
  return [...new Set(secrets.filter((s) => s !== ""))];
}

/** A secret as written in the URL and as decoded (the server and ffmpeg's messages may show either). */
function variants(raw: string): string[] {
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // a bad escape was refused above; keep the raw text
  }
  return decoded === raw ? [raw] : [raw, decoded];
}

/**
 * The credentials in a token file's text: `USER:PASSWORD` on the first line (the password may
 * hold any character, colons included). `source` names the file in errors.
 */
export function parsePublishCredentials(text: string, source: string): PublishCredentials {
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const lines = body.split(/\r?\n/);
  while (lines.length > 1 && lines[lines.length - 1]!.trim() === "") lines.pop();
  if (lines.length !== 1) throw new PublishUrlError(`${source}: expected one line USER:PASSWORD, found ${lines.length} lines`);
  const line = lines[0]!.trim();
  if (line === "") throw new PublishUrlError(`${source}: empty; expected one line USER:PASSWORD`);
  const colon = line.indexOf(":");
  if (colon < 0) throw new PublishUrlError(`${source}: expected USER:PASSWORD, found no colon`);
  const user = line.slice(0, colon);
  const password = line.slice(colon + 1);
  if (user === "") throw new PublishUrlError(`${source}: the user before the : is empty`);
  if (/[\x00-\x1f\x7f]/.test(line)) throw new PublishUrlError(`${source}: holds a control character`);
  return { user, password };
}

/** Reads and parses a `--publish-token-file`; throws {@link PublishUrlError} naming the file. */
export function readPublishTokenFile(path: string, flag = "--publish-token-file"): PublishCredentials {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PublishUrlError(`invalid ${flag}=${path}: cannot read it${code ? ` (${code})` : ""}`);
  }
  return parsePublishCredentials(text, `${flag}=${path}`);
}

/**
 * The target with `creds` as its user and password (percent-encoded for the URL). A URL that
 * already carries credentials keeps its own: the more specific setting wins.
 */
export function withCredentials(target: PublishTarget, creds: PublishCredentials): PublishTarget {
  if (target.hasCredentials) return target;
  const user = encodeURIComponent(creds.user);
  const password = encodeURIComponent(creds.password);
  const at = target.url.indexOf("://") + 3;
  const url = `${target.url.slice(0, at)}${user}:${password}@${target.url.slice(at)}`;
  return {
    ...target, url, redacted: redactUrl(url), hasCredentials: true,
    secrets: unique([...target.secrets, ...variants(user), ...variants(password)]),
  };
}

/**
 * One URL (valid or not) safe to show: everything between `://` and the last `@` before the
 * query becomes `***`, and so does each query value (but for ffmpeg's tcp:// and udp:// URLs).
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME.exec(text);
  const head = scheme ? scheme[0] : "";
  let rest = text.slice(head.length);
  const at = userinfoEnd(rest);
  if (at >= 0) rest = `${REDACTED}${rest.slice(at)}`;
  const q = rest.indexOf("?");
  // ffmpeg's socket URLs carry its own options (tcp://host:port?timeout=0), never ours.
  if (q < 0 || /^(tcp|udp):\/\/$/i.test(head)) return head + rest;
  return head + rest.slice(0, q + 1) + redactQuery(rest.slice(q + 1));
}

function redactQuery(query: string): string {
  const hash = query.indexOf("#");
  const body = hash < 0 ? query : query.slice(0, hash);
  const tail = hash < 0 ? "" : query.slice(hash);
  return body.split("&").map((p) => (p.includes("=") ? `${p.slice(0, p.indexOf("="))}=${REDACTED}` : REDACTED)).join("&") + tail;
}

/** Each URL in free text (e.g. a line of ffmpeg's stderr) passed through {@link redactUrl}. */
export function redactUrlsIn(text: string): string {
  return text.replace(/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"<>]*/g, (url) => redactUrl(url));
}

/** Secrets shorter than this are only redacted inside URLs: replacing them anywhere would garble text. */
const MIN_LOOSE_SECRET = 4;

/**
 * `text` safe to log: URLs redacted, then each of `secrets` replaced wherever it appears,
 * longest first.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = redactUrlsIn(text);
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= MIN_LOOSE_SECRET) out = out.split(s).join(REDACTED);
  }
  return out;
}
