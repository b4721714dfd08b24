import { plainAddress } from "../net/address.ts";

/**
 * The peer of a just-opened socket, or null when it has none: a connection reset
 * before its open callback ran has no remote address any more.
 */
export function peerOf(sock: { remoteAddress?: string | null; remotePort?: number }): { address: string; port: number } | null {
  const a = sock.remoteAddress;
  if (typeof a !== "string" || a === "") return null;
  return { address: plainAddress(a), port: sock.remotePort ?? 0 };
}
