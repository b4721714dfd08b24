import { RefuseReason } from "../wire/control.ts";

/**
 * What a server's refusal means for a viewer that wants in:
 * - `final`: for the user to fix; asking again gets the same answer (another protocol
 *   version, a bad hello, a missing or wrong token, a viewer that cannot decrypt).
 * - `busy`: the server has no room for it right now, and room comes by itself: a viewer
 *   leaves (server full, too many viewers from this address), a flood of connections
 *   that say nothing ends (evicted to make room), the server comes back (shutting down),
 *   or the server notices that an old session of this UDP port went silent (port in use).
 * - `locked`: this address gave wrong tokens too often; the server takes none for `waitMs`.
 *   Worth waiting out: the wrong tokens may have been someone else's on this address.
 * - `other`: a reason this viewer does not know; final at the first attempt (the user
 *   should read it), retried once a session has run, as any trouble is then.
 */
export type Refusal = { kind: "final" } | { kind: "busy" } | { kind: "locked"; waitMs: number } | { kind: "other" };

/** The longest lockout a viewer waits out; a server asking for more is taken at most at this. */
const MAX_LOCKOUT_WAIT_MS = 3600_000;

// The texts lancam servers send with RefuseReason.Other when they are busy (kept in step
// with lib/send/admission.ts by tests/handshake.test.ts, which runs them through here).
const BUSY_TEXTS = [
  /^server full\b/,
  /^shutting down\b/,
  /^too many connections without hello\b/,
  /^too many viewers from \S+: at most \d+ per address$/,
  /^UDP port \d+ of \S+ is already receiving this stream\b/,
  /^too many handshakes (from this address|in progress): try again$/,
];
// A lockout of the address, its network or the server (lib/send/token-exchange.ts), or a full lockout table.
const LOCKOUT_TEXT = /^(?:wrong token too often (?:from \S+|on this server from addresses it does not know)|too many addresses are locked out for a wrong token): try again in (\d{1,7}) s$/;

/** How a refusal with `reason` and the server's `text` should be taken. */
export function classifyRefusal(reason: number, text: string): Refusal {
  switch (reason) {
    case RefuseReason.ServerFull:
      return { kind: "busy" };
    case RefuseReason.VersionMismatch:
    case RefuseReason.BadHello:
    // Asking again will not give the server the camera.
    case RefuseReason.NoSuchCamera:
      return { kind: "final" };
    case RefuseReason.AuthRequired: {
      const locked = LOCKOUT_TEXT.exec(text);
      // At least a second (the server rounds up to whole ones): "0 s" must not make a reconnect loop.
      return locked ? { kind: "locked", waitMs: Math.min(Math.max(Number(locked[1]), 1) * 1000, MAX_LOCKOUT_WAIT_MS) } : { kind: "final" };
    }
    default:
      return BUSY_TEXTS.some((re) => re.test(text)) ? { kind: "busy" } : { kind: "other" };
  }
}
