// Tags on control messages after the handshake: what a peer without the session's keys
// injects (a bye, a report) is dropped and counted, replays and reorders fail, and
// the genuine messages around them still check. At the channel, then through a real
// server on 127.0.0.1.
import { describe, expect, test } from "bun:test";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { ControlChannel } from "../lib/net/control-channel.ts";
import { ControlMac } from "../lib/net/control-mac.ts";
import { clientProof, deriveSessionKeys, tokenKey, type SessionKeys } from "../lib/net/session-keys.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import {
  ByeReason, CAP_DECRYPT, CAP_TOKEN_AUTH, encodeControl, PROTOCOL_VERSION, RefuseReason,
  type Challenge, type ControlMessage, type Hello,
} from "../lib/wire/control.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { until } from "./helpers/process.ts";

const KEYS = { a: new Uint8Array(32).fill(1), b: new Uint8Array(32).fill(2) };
const bye: ControlMessage = { type: "bye", reason: ByeReason.UserQuit };
const heartbeat = (sentAt: number): ControlMessage => ({ type: "heartbeat", sentAt });

/** A sender and a receiver channel, bytes carried by hand. */
function pair() {
  const wire: Uint8Array[] = [];
  const sender = new ControlChannel({ write: (b) => (wire.push(b.slice()), b.length), end: () => {} });
  const receiver = new ControlChannel({ write: (b) => b.length, end: () => {} });
  sender.secure(new ControlMac({ send: KEYS.a, receive: KEYS.b }));
  receiver.secure(new ControlMac({ send: KEYS.b, receive: KEYS.a }));
  /** Decodes `bytes` on the receiver: the messages that check out. */
  const accept = (bytes: Uint8Array) => receiver.receive(bytes).filter((m) => receiver.authentic(m));
  return { wire, sender, receiver, accept };
}

describe("control message tags", () => {
  test("a tagged message checks; its tag is 16 bytes, and the T bit is set", () => {
    const { wire, sender, accept } = pair();
    sender.send(heartbeat(1));
    expect(wire[0]![2]).toBe(0x84);
    expect(wire[0]!.length).toBe(3 + 8 + 16);
    expect(accept(wire[0]!)).toMatchObject([{ type: "heartbeat", sentAt: 1 }]);
  });

  test("a forged bye (no tag, a made-up tag, a tag from other keys) is dropped and counted; the genuine messages around it still check", () => {
    const { wire, sender, receiver, accept } = pair();
    sender.send(heartbeat(1));
    expect(accept(wire[0]!)).toHaveLength(1);
    const forgeries = [
      encodeControl(bye),
      encodeControl({ ...bye, tag: new Uint8Array(16).fill(0xee) }),
      new ControlMac({ send: new Uint8Array(32).fill(9), receive: KEYS.b }).seal(bye),
    ];
    for (const f of forgeries) expect(accept(f)).toEqual([]);
    expect(receiver.forged).toBe(3);
    sender.send(heartbeat(2));
    sender.send(bye);
    expect(accept(wire[1]!).map((m) => m.type)).toEqual(["heartbeat"]);
    expect(accept(wire[2]!).map((m) => m.type)).toEqual(["bye"]);
    expect(receiver.forged).toBe(3);
  });

  test("a replayed or reordered message fails: each tag covers its position in the stream", () => {
    const { wire, sender, receiver, accept } = pair();
    sender.send(heartbeat(1));
    sender.send(heartbeat(2));
    sender.send(heartbeat(3));
    expect(accept(wire[0]!)).toHaveLength(1);
    expect(accept(wire[0]!)).toHaveLength(0); // replay
    expect(accept(wire[2]!)).toHaveLength(0); // the third before the second
    expect(accept(wire[1]!)).toHaveLength(1);
    expect(accept(wire[2]!)).toHaveLength(1);
    expect(receiver.forged).toBe(2);
  });

  test("a tag from the other direction (a message bounced back) fails", () => {
    const { receiver } = pair();
    const bounced = new ControlMac({ send: KEYS.b, receive: KEYS.a }).seal(bye);
    expect(receiver.receive(bounced).filter((m) => receiver.authentic(m))).toEqual([]);
  });

  test("an untagged refuse is believed only before the first tagged message (a server that could not check the proof)", () => {
    const { wire, sender, receiver } = pair();
    const refuse: ControlMessage = { type: "refuse", reason: RefuseReason.AuthRequired, text: "wrong token" };
    expect(receiver.authentic(receiver.receive(encodeControl(refuse))[0]!)).toBe(true);
    sender.send(heartbeat(1));
    expect(receiver.authentic(receiver.receive(wire[0]!)[0]!)).toBe(true);
    expect(receiver.authentic(receiver.receive(encodeControl(refuse))[0]!)).toBe(false);
  });

  test("a peer that stops reading: the outgoing buffer is bounded, then the connection is cut at once", () => {
    let terminated = false;
    let ended = false;
    const ch = new ControlChannel({ write: () => 0, end: () => (ended = true), terminate: () => (terminated = true) }, { maxPendingBytes: 1000 });
    let sent = 0;
    while (ch.send(heartbeat(sent))) sent++;
    expect(sent).toBe(Math.floor(1000 / 11));
    expect(ch.overflowed).toBe(true);
    expect(ch.closed).toBe(true);
    expect({ terminated, ended }).toEqual({ terminated: true, ended: false });
    expect(ch.send(heartbeat(0))).toBe(false);
  });
});

describe("through a real server with a token", () => {
  const token = tokenKey("a token for the control-mac test");

  test("a forged bye and a forged report are dropped and counted; the session goes on until the viewer's own bye", async () => {
    const log = memoryLogger("server");
    await using server = await StreamServer.start({
      port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 4, log, stream: { width: 320, height: 240, fps: 30 }, token,
    });
    const reader = new MessageReader();
    const got: ControlMessage[] = [];
    let closed = false;
    const sock = await Bun.connect({
      hostname: "127.0.0.1", port: server.port,
      socket: { data: (_s, chunk) => void got.push(...reader.push(chunk)), close: () => void (closed = true) },
    });
    const hello: Hello = { type: "hello", version: PROTOCOL_VERSION, udpPort: 7001, capabilities: CAP_TOKEN_AUTH | CAP_DECRYPT, name: "raw" };
    sock.write(encodeControl(hello));
    await until(() => got.length > 0, 10_000, "challenge");
    const challenge = got[0] as Challenge;
    const t = { hello, challenge, clientNonce: new Uint8Array(32).fill(7) };
    const keys: SessionKeys = deriveSessionKeys(token, t);
    sock.write(encodeControl({ type: "response", clientNonce: t.clientNonce, proof: clientProof(keys, t) }));
    await until(() => server.clientCount === 1, 10_000, "welcomed");
    const mine = new ControlMac({ send: keys.clientMac, receive: keys.serverMac });
    // What someone on the path without the keys could inject.
    sock.write(encodeControl({ ...bye, tag: new Uint8Array(16) }));
    sock.write(encodeControl({ type: "report", framesReceived: 0xffffffff, framesLost: 0xffffffff, framesIncomplete: 0xffffffff, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }));
    sock.write(mine.seal(heartbeat(1)));
    await until(() => server.stats.controlForged === 2, 10_000, "two forgeries counted");
    expect(server.clientCount).toBe(1);
    expect(log.lines.some((l) => l.includes("control message with a wrong tag dropped client=127.0.0.1:"))).toBe(true);
    sock.write(mine.seal(bye));
    await until(() => closed, 10_000, "the viewer's own bye ends it");
    expect(server.clientCount).toBe(0);
    expect(server.stats.controlForged).toBe(2);
    expect(log.lines.find((l) => l.includes("client left"))).toContain("reason=goodbye");
    // The welcome and the key message that followed were tagged.
    expect(got.slice(1, 3).map((m) => [m.type, m.tag?.length])).toEqual([["welcome", 16], ["key", 16]]);
  });
});
