import { expect, test } from "bun:test";
import { enlargeBuffer, enlargeReceiveBuffer, MAX_SOCKET_BUFFER, socketFd } from "../lib/net/udp-buffer.ts";

test("a UDP socket's buffers can be enlarged, and what the kernel granted is read back", async () => {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const fd = socketFd(s);
    expect(fd).toBeGreaterThanOrEqual(0);
    const small = enlargeReceiveBuffer(fd, 64 << 10);
    const big = enlargeReceiveBuffer(fd, 4 << 20);
    expect(small.actual).not.toBeNull();
    expect(big.actual).not.toBeNull();
    // The kernel grants what it may (Linux doubles it, rmem_max caps it) and says so.
    expect(big.actual!).toBeGreaterThan(small.actual!);
    if (big.actual! < big.requested) expect(big.note).toContain("net.core.rmem_max");
    expect(enlargeBuffer(fd, "send", 1 << 20).actual).not.toBeNull();
  } finally {
    s.close();
  }
});

test("impossible requests are refused with a note, not passed to the kernel", () => {
  expect(enlargeReceiveBuffer(undefined, 1 << 20)).toMatchObject({ actual: null, note: "socket has no file descriptor" });
  expect(enlargeReceiveBuffer(3, MAX_SOCKET_BUFFER * 2).note).toContain("outside");
});
