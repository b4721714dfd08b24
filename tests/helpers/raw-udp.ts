// UDP with a source port of the test's choosing (the server's own), written by a raw
// socket that builds the UDP header itself: how a spoofer on the LAN would send. Needs
// CAP_NET_RAW (root).
import { dlopen, FFIType, ptr } from "bun:ffi";

/** The largest UDP payload over IPv4. */
const MAX_UDP_PAYLOAD = 65_507;

/** A raw sender of UDP from 127.0.0.1:`fromPort`; multicast goes out on loopback. */
export function rawUdpSender(fromPort: number): { send: (payload: Uint8Array, toAddress: string, toPort: number) => void; close: () => void } {
  const libc = dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
  const AF_INET = 2;
  const SOCK_RAW = 3;
  const IPPROTO_UDP = 17;
  const IPPROTO_IP = 0;
  const IP_MULTICAST_IF = 32;
  const fd = libc.symbols.socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
  if (fd < 0) throw new Error("cannot open a raw socket");
  const loopback = Uint8Array.from([127, 0, 0, 1]);
  if (libc.symbols.setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, ptr(loopback), 4) !== 0) throw new Error("cannot send multicast on loopback");
  const to = new Uint8Array(16);
  const toView = new DataView(to.buffer);
  const packet = new Uint8Array(8 + MAX_UDP_PAYLOAD);
  const udp = new DataView(packet.buffer);
  return {
    send(payload, toAddress, toPort) {
      toView.setUint16(0, AF_INET, true);
      toView.setUint16(2, toPort);
      to.set(toAddress.split(".").map(Number), 4);
      udp.setUint16(0, fromPort);
      udp.setUint16(2, toPort);
      udp.setUint16(4, 8 + payload.length);
      udp.setUint16(6, 0); // no checksum (allowed over IPv4)
      packet.set(payload, 8);
      const sent = libc.symbols.sendto(fd, ptr(packet), 8 + payload.length, 0, ptr(to), 16);
      if (Number(sent) !== 8 + payload.length) throw new Error(`raw sendto returned ${sent}`);
    },
    close: () => void libc.symbols.close(fd),
  };
}
