import { describe, expect, test } from "bun:test";
import { IN_GROUP_TEXT, SILENT_AFTER_MS, TCP_LOW_WATER_BYTES, TCP_REFUSED_TEXT, TcpDelivery, frameMessages } from "../lib/send/tcp-delivery.ts";
import { ControlChannel, MAX_PENDING_BYTES, type ByteSocket } from "../lib/net/control-channel.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { SwitchReason, TransportEvent } from "../lib/wire/control.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

describe("the server's TCP delivery", () => {
  test("frames sent and nothing reported for SILENT_AFTER_MS: the viewer is told, the log says so once", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    expect(t.report(1, 0, 30, 1000)).toEqual({});
    expect(t.report(1, 0, 60, SILENT_AFTER_MS - 1)).toEqual({});
    const out = t.report(1, 0, 80, SILENT_AFTER_MS);
    expect(out.tell).toEqual({ type: "transport", transport: "udp", event: TransportEvent.Silent, framesSent: 80, text: "" });
    expect(out.log?.level).toBe("warn");
    expect(out.log?.message).toBe("no datagrams reached the viewer");
    expect(out.firstSilence).toBe(true);
    expect(out.log?.fields.framesSent).toBe(80);
    expect(t.counters(1)?.noDatagrams).toBe(true);
    // Said once; the next report changes nothing.
    expect(t.report(1, 0, 110, SILENT_AFTER_MS + 1000)).toEqual({});
  });

  test("a firewall that closes mid-session is a new silence: told again, logged once per viewer", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    t.report(1, 0, 90, 3000);
    expect(t.report(1, 0, 120, 4000)).toEqual({}); // told at 3000 already
    t.report(1, 30, 150, 5000); // it opened: frames arrive
    t.report(1, 60, 180, 6000); // ... and closed again after this
    const again = t.report(1, 60, 260, 6000 + SILENT_AFTER_MS);
    expect(again.tell?.event).toBe(TransportEvent.Silent);
    expect(again.firstSilence).toBeUndefined();
    expect(again.log?.level).toBe("info");
  });

  test("a viewer that receives anything, or was sent nothing, is not silent", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    t.join(2, 0, false);
    t.report(1, 3, 30, 1000);
    expect(t.report(1, 3, 90, 3000)).toEqual({}); // the baseline moved at 1000: not 2.5 s yet
    expect(t.report(1, 50, 120, 4000)).toEqual({});
    expect(t.report(2, 0, 0, 10_000)).toEqual({}); // the camera sent nothing: not the path's fault
    expect(t.counters(1)?.noDatagrams).toBe(false);
  });

  test("a viewer in the multicast group is judged only once it falls back to its own port", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, true);
    expect(t.report(1, 0, 90, 5000)).toEqual({});
    t.unicast(1);
    expect(t.report(1, 0, 100, 6000)).toEqual({}); // sets the baseline
    expect(t.report(1, 0, 180, 6000 + SILENT_AFTER_MS).tell?.event).toBe(TransportEvent.Silent);
  });

  test("a switch to TCP is answered; back on UDP, silence is judged afresh from the next report and logged at info", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    t.report(1, 0, 90, 3000);
    const sw = t.switch(1, { type: "switch", transport: "tcp", reason: SwitchReason.Silent }, 90, 3100);
    expect(sw.tell).toEqual({ type: "transport", transport: "tcp", event: TransportEvent.Switched, framesSent: 90, text: "" });
    expect(sw.log?.fields.transport).toBe("tcp");
    expect(t.transport(1)).toBe("tcp");
    // On TCP its reports (frames arriving by TCP) say nothing about UDP.
    expect(t.report(1, 0, 500, 60_000)).toEqual({});
    t.switch(1, { type: "switch", transport: "udp", reason: SwitchReason.Retry }, 2000, 63_000);
    expect(t.transport(1)).toBe("udp");
    expect(t.report(1, 1900, 2030, 64_000)).toEqual({}); // frames that came by TCP before the switch: the baseline
    const again = t.report(1, 1900, 2100, 64_000 + SILENT_AFTER_MS);
    expect(again.tell?.event).toBe(TransportEvent.Silent);
    expect(again.log).toMatchObject({ level: "info", message: "udp still blocked for the viewer" });
    expect(t.leave(1)).toMatchObject({ transport: "udp", switches: 2, noDatagrams: true });
    expect(t.counters(1)).toBeUndefined();
  });

  test("--no-tcp-delivery refuses with a text that names the flag, and the viewer stays on UDP", () => {
    const t = new TcpDelivery({ allowTcp: false });
    t.join(1, 0, false);
    const out = t.switch(1, { type: "switch", transport: "tcp", reason: SwitchReason.Asked }, 7, 100);
    expect(out.tell).toEqual({ type: "transport", transport: "udp", event: TransportEvent.Refused, framesSent: 7, text: TCP_REFUSED_TEXT });
    expect(TCP_REFUSED_TEXT).toContain("--no-tcp-delivery");
    expect(t.transport(1)).toBe("udp");
  });

  test("a viewer in the multicast group is refused TCP until it falls back to its own port", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, true);
    const ask = { type: "switch", transport: "tcp", reason: SwitchReason.Asked } as const;
    expect(t.switch(1, ask, 3, 0).tell).toMatchObject({ event: TransportEvent.Refused, text: IN_GROUP_TEXT });
    expect(t.transport(1)).toBe("udp");
    t.unicast(1);
    expect(t.switch(1, ask, 4, 5000).tell).toMatchObject({ event: TransportEvent.Switched, transport: "tcp" });
  });

  test("a viewer that switches without end is answered every time, and logged once a second with a count of the rest", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    const flip = (i: number, now: number) => t.switch(1, { type: "switch", transport: i % 2 ? "udp" : "tcp", reason: SwitchReason.Asked }, i, now);
    let logged = 0;
    for (let i = 0; i < 100; i++) {
      const out = flip(i, i * 5);
      expect(out.tell?.event).toBe(TransportEvent.Switched);
      if (out.log) logged++;
    }
    expect(logged).toBe(1);
    const next = flip(100, 1000);
    expect(next.log?.fields.similar).toBe(99);
    expect(t.counters(1)?.switches).toBe(101);
  });

  test("a frame is offered only when nothing is queued and the kernel holds at most the low-water mark; skips are counted", () => {
    const t = new TcpDelivery({ allowTcp: true });
    t.join(1, 0, false);
    expect(t.offer(1, 0, 0)).toBe(true);
    expect(t.offer(1, 0, TCP_LOW_WATER_BYTES)).toBe(true);
    expect(t.offer(1, 0, TCP_LOW_WATER_BYTES + 1)).toBe(false);
    expect(t.offer(1, 1, 0)).toBe(false);
    expect(t.offer(1, 0, null)).toBe(true); // unknown kernel queue: ours alone decides
    expect(t.counters(1)).toMatchObject({ tcpFramesSent: 3, tcpFramesSkipped: 2 });
    expect(t.offer(99, 0, 0)).toBe(false);
  });
});

/** A socket that takes at most `room` bytes per write, remembering what it took. */
class FakeSocket implements ByteSocket {
  written: number[] = [];
  ended = false;
  constructor(public room: number) {}
  write(data: Uint8Array): number {
    const n = Math.min(this.room, data.length);
    this.written.push(...data.subarray(0, n));
    return n;
  }
  end(): void {
    this.ended = true;
  }
}

describe("frames over the control connection", () => {
  const datagrams = [Uint8Array.from({ length: 1400 }, (_, i) => i & 0xff), Uint8Array.from([1, 2, 3]), new Uint8Array(1100).fill(9)];

  test("a viewer's reader gets back exactly the datagrams, whatever the chunking", () => {
    const bytes = frameMessages(datagrams);
    expect(bytes.length).toBe(1403 + 6 + 1103);
    for (const chunk of [1, 2, 3, 7, 1000, bytes.length]) {
      const r = new MessageReader({ datagrams: true });
      const got: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; at += chunk) {
        for (const m of r.push(bytes.subarray(at, at + chunk))) if (m.type === "datagram") got.push(m.bytes);
      }
      expect(got).toEqual(datagrams);
    }
  });

  test("a server's reader refuses them", () => {
    expect(() => new MessageReader().push(frameMessages([Uint8Array.from([1, 2, 3])]))).toThrow(DecodeError);
  });

  test("sendFrame writes whole frames only: not while anything is queued; a partial write's rest does not count toward the control bound", () => {
    const sock = new FakeSocket(1000);
    const ch = new ControlChannel(sock);
    const big = new Uint8Array(MAX_PENDING_BYTES * 2).fill(7);
    expect(ch.sendFrame(big)).toBe(true);
    expect(ch.queuedBytes).toBe(big.length - 1000);
    // The next frame is skipped, and a heartbeat still fits behind the queued rest.
    expect(ch.sendFrame(new Uint8Array(10))).toBe(false);
    expect(ch.send({ type: "heartbeat", sentAt: 1 })).toBe(true);
    expect(ch.closed).toBe(false);
    sock.room = Infinity;
    ch.drain();
    expect(ch.queuedBytes).toBe(0);
    expect(sock.written.length).toBe(big.length + 11);
    expect(ch.sendFrame(new Uint8Array(10))).toBe(true);
  });

  test("control messages that pile up past the bound still close the channel", () => {
    const sock = new FakeSocket(0);
    const ch = new ControlChannel(sock);
    let ok = true;
    for (let i = 0; i < MAX_PENDING_BYTES && ok; i++) ok = ch.send({ type: "heartbeat", sentAt: i });
    expect(ok).toBe(false);
    expect(ch.overflowed).toBe(true);
  });
});
