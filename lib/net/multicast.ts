import { createSocket, type Socket as DgramSocket } from "node:dgram";
import type { udp } from "bun";
import { formatIPv4, isMulticastIPv4, parseIPv4 } from "../wire/control.ts";

/** Port of a group given without one (`--multicast 239.255.1.2`). */
export const DEFAULT_GROUP_PORT = 9998;
/** A sender's TTL by default: the group stays on the local link, no router forwards it. */
export const DEFAULT_MULTICAST_TTL = 1;

/** Where a stream's multicast datagrams go and how they leave. */
export interface GroupConfig {
  /** IPv4 group address. */
  address: string;
  port: number;
  /** IP_MULTICAST_TTL: 1 keeps the datagrams on the local link. */
  ttl: number;
  /** Address of the interface datagrams leave by; null: the route for the group decides. */
  interfaceAddress: string | null;
}

/**
 * A group in 239.255.0.0/16, the IPv4 Local Scope (RFC 2365): never forwarded beyond
 * the site, so a randomly picked one cannot leak. 239.255.255.x is left out: SSDP
 * (239.255.255.250) and SLP (239.255.255.253) live there, and their traffic would
 * reach viewers bound to the group.
 */
export function autoGroupAddress(random: () => number = Math.random): string {
  const third = Math.floor(random() * 255);
  const fourth = 1 + Math.floor(random() * 254);
  return `239.255.${third}.${fourth}`;
}

/** Whether `address` is an administratively scoped IPv4 group (239.0.0.0/8, RFC 2365). */
export function isAdminScopedGroup(address: string): boolean {
  const v = parseIPv4(address);
  return v !== null && isMulticastIPv4(v) && v >>> 24 === 239;
}

/** The dotted quad, normalised (for log lines and welcomes); null when `address` is none. */
export function normaliseIPv4(address: string): string | null {
  const v = parseIPv4(address);
  return v === null ? null : formatIPv4(v);
}

/**
 * Makes a server's UDP socket send to `group` as well as to viewers: its TTL, the
 * interface, and loopback on (viewers on the server's own machine are in the group
 * too). Throws an Error naming what failed.
 */
export function configureGroupSender(socket: udp.Socket<"buffer">, group: GroupConfig): void {
  if (socket.setMulticastTTL(group.ttl) !== group.ttl) throw new Error(`cannot set the multicast TTL to ${group.ttl}`);
  if (group.interfaceAddress !== null && !socket.setMulticastInterface(group.interfaceAddress)) {
    throw new Error(`cannot send multicast by the interface of ${group.interfaceAddress} (is that address on this machine?)`);
  }
  socket.setMulticastLoopback(true);
}

/** A viewer's membership of one group: datagrams to it arrive through `onDatagram`. */
export interface GroupReceiver {
  /** Receive buffer the kernel granted (it reports twice the usable size), or null where unknown. */
  readonly receiveBufferBytes: number | null;
  close(): void;
}

/** How a viewer joins a group. */
export interface GroupReceiverOptions {
  address: string;
  port: number;
  /** This machine's address on the interface facing the server: the group is joined there. */
  interfaceAddress: string;
  receiveBufferBytes: number;
  onDatagram: (bytes: Uint8Array, port: number, address: string) => void;
}

/**
 * Joins a group. The socket is bound to the group's address, so datagrams sent to this
 * machine's port for anything else never reach it, and with SO_REUSEADDR, so several
 * viewers on one machine each get every datagram. The group is joined on the interface
 * the control connection uses, which is the one that reaches the server, whatever the
 * routing table says about multicast. Rejects with an Error naming what failed (the
 * port taken without SO_REUSEADDR, no such interface).
 *
 * Bun's own UDP socket has no public SO_REUSEADDR, so this one is node:dgram's.
 */
export function openGroupReceiver(opts: GroupReceiverOptions): Promise<GroupReceiver> {
  return new Promise((resolve, reject) => {
    let socket: DgramSocket;
    try {
      socket = createSocket({ type: "udp4", reuseAddr: true, recvBufferSize: opts.receiveBufferBytes });
    } catch (e) {
      reject(new Error(`cannot open a socket for multicast group ${opts.address}:${opts.port}: ${(e as Error).message}`));
      return;
    }
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      try {
        socket.close();
      } catch {
        // Already closed by the failure itself.
      }
      reject(new Error(`cannot join multicast group ${opts.address}:${opts.port} on ${opts.interfaceAddress}: ${why}`));
    };
    socket.on("error", (e) => fail(e.message));
    socket.on("message", (msg, rinfo) => opts.onDatagram(msg, rinfo.port, rinfo.address));
    socket.bind(opts.port, opts.address, () => {
      if (settled) return;
      try {
        socket.addMembership(opts.address, opts.interfaceAddress);
      } catch (e) {
        fail((e as Error).message);
        return;
      }
      settled = true;
      // Errors after the join (an ICMP report, say) must not become unhandled events.
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      let granted: number | null = null;
      try {
        granted = socket.getRecvBufferSize();
      } catch {
        // Unknown on this platform.
      }
      let closed = false;
      resolve({
        receiveBufferBytes: granted,
        close() {
          if (closed) return;
          closed = true;
          try {
            socket.dropMembership(opts.address, opts.interfaceAddress);
          } catch {
            // Closing leaves the group anyway.
          }
          socket.close();
        },
      });
    });
  });
}
