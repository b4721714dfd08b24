import { createHash, timingSafeEqual } from "node:crypto";

/**
 * The optional access check of the browser view: a shared token given as
 * `?token=TOKEN`, as the password of HTTP Basic (any user name), or as
 * `Authorization: Bearer TOKEN` (what Prometheus sends).
 */

/** Decides whether a request may see the view. */
export type AuthCheck = (request: Request, url: URL) => AuthVerdict;

/** ok, or why not (for the log line; the client only gets 401). */
export type AuthVerdict = { ok: true } | { ok: false; why: "no token" | "wrong token" };

/** The challenge a 401 carries, so a browser asks for the password. */
export const AUTH_CHALLENGE = 'Basic realm="lancam", charset="UTF-8"';

// Hashing both sides first makes the comparison constant-time whatever their lengths.
function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** The token offered by a request, or null when it offers none. */
export function offeredToken(request: Request, url: URL): string | null {
  const q = url.searchParams.get("token");
  if (q !== null) return q;
  const h = request.headers.get("authorization");
  if (!h) return null;
  const [scheme, value = ""] = h.trim().split(/\s+/, 2);
  switch (scheme?.toLowerCase()) {
    case "bearer":
      return value;
    case "basic": {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      return colon < 0 ? null : decoded.slice(colon + 1);
    }
    default:
      return null;
  }
}

/** A check that admits requests offering exactly `token`. */
export function tokenAuth(token: string): AuthCheck {
  if (token === "") throw new RangeError("the access token must not be empty");
  const want = digest(token);
  return (request, url) => {
    const got = offeredToken(request, url);
    if (got === null) return { ok: false, why: "no token" };
    return timingSafeEqual(digest(got), want) ? { ok: true } : { ok: false, why: "wrong token" };
  };
}
