import { describe, expect, test } from "bun:test";
import { ByeReason, encodeControl, MAX_MESSAGE_SIZE, RefuseReason, type ControlMessage } from "../lib/wire/control.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { prng } from "./helpers/prng.ts";


const MESSAGES: ControlMessage[] = [
  { type: "hello", version: 1, udpPort: 50000, capabilities: 0, name: "Küche ☕" },
  {
    type: "welcome", sessionId: 0xdeadbeef, width: 1280, height: 720, fpsMillihertz: 30000, fragmentSize: 1440,
    udpSourcePort: 40000, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
  },
  { type: "heartbeat", sentAt: 1700000000123456 },
  {
    type: "report", framesReceived: 1, framesLost: 2, framesIncomplete: 3, datagramsDropped: 4,
    latencyP50Us: 5, latencyP95Us: 6, fpsMillihertz: 7,
  },
  { type: "refuse", reason: RefuseReason.ServerFull, text: "x".repeat(200) },
  { type: "bye", reason: ByeReason.UserQuit },
];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const STREAM = concat(MESSAGES.map(encodeControl));

function pushError(reader: MessageReader, chunk: Uint8Array): DecodeError {
  try {
    reader.push(chunk);
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw e;
  }
  throw new Error("push did not throw");
}

describe("MessageReader", () => {
  test("many messages in one chunk come out in order", () => {
    const r = new MessageReader();
    expect(r.push(STREAM)).toEqual(MESSAGES);
    expect(r.buffered).toBe(0);
  });

  test("a stream split at every possible byte boundary", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const r = new MessageReader();
      const got = [...r.push(STREAM.subarray(0, i)), ...r.push(STREAM.subarray(i))];
      expect(got).toEqual(MESSAGES);
      expect(r.buffered).toBe(0);
    }
  });

  test("a stream split at every pair of boundaries", () => {
    const r = new MessageReader();
    for (let i = 0; i <= STREAM.length; i += 3) {
      for (let j = i; j <= STREAM.length; j += 2) {
        const got = [...r.push(STREAM.subarray(0, i)), ...r.push(STREAM.subarray(i, j)), ...r.push(STREAM.subarray(j))];
        expect(got).toEqual(MESSAGES);
      }
    }
  });

  test("one byte at a time", () => {
    const r = new MessageReader();
    const got: ControlMessage[] = [];
    for (let i = 0; i < STREAM.length; i++) got.push(...r.push(STREAM.subarray(i, i + 1)));
    expect(got).toEqual(MESSAGES);
  });

  test("random chunking of a long stream never holds more than one message", () => {
    const rnd = prng(5);
    const long = concat(Array.from({ length: 200 }, (_, i) => encodeControl(MESSAGES[i % MESSAGES.length]!)));
    const r = new MessageReader();
    let count = 0;
    for (let at = 0; at < long.length; ) {
      const n = 1 + Math.floor(rnd() * 700);
      count += r.push(long.subarray(at, at + n)).length;
      expect(r.buffered).toBeLessThanOrEqual(MAX_MESSAGE_SIZE);
      at += n;
    }
    expect(count).toBe(200);
    expect(r.buffered).toBe(0);
  });

  test("messages do not change when the chunk's memory is reused", () => {
    const r = new MessageReader();
    const chunk = STREAM.slice();
    const cut = 10;
    const first = r.push(chunk.subarray(0, cut));
    const rest = chunk.slice(cut);
    chunk.fill(0xee);
    expect([...first, ...r.push(rest)]).toEqual(MESSAGES);
  });

  test("an empty chunk yields nothing", () => {
    expect(new MessageReader().push(new Uint8Array(0))).toEqual([]);
  });

  test("a length past MAX_MESSAGE_SIZE fails as soon as the prefix is complete", () => {
    const r = new MessageReader();
    expect(r.push(Uint8Array.from([0x04]))).toEqual([]);
    const e = pushError(r, Uint8Array.from([0x00]));
    expect(e.code).toBe("bad-length");
    expect(e.message).toContain("0x0400");
  });

  test("a zero length fails", () => {
    expect(pushError(new MessageReader(), Uint8Array.from([0, 0, 1])).code).toBe("bad-length");
  });

  test("an unknown type fails before its body arrives", () => {
    const r = new MessageReader();
    expect(r.push(Uint8Array.from([0x03, 0x00]))).toEqual([]);
    expect(pushError(r, Uint8Array.from([0x63])).code).toBe("bad-type");
  });

  test("the largest length is accepted and buffered until the body is complete", () => {
    const r = new MessageReader();
    const max = new Uint8Array(MAX_MESSAGE_SIZE);
    max.set([(MAX_MESSAGE_SIZE - 2) >> 8, (MAX_MESSAGE_SIZE - 2) & 0xff, 0x05]); // a report with a far too long body
    expect(r.push(max.subarray(0, MAX_MESSAGE_SIZE - 1))).toEqual([]);
    expect(r.buffered).toBe(MAX_MESSAGE_SIZE - 1);
    expect(pushError(r, max.subarray(MAX_MESSAGE_SIZE - 1)).code).toBe("bad-length");
  });

  test("good messages before a bad one in the same chunk are not returned: the connection is done", () => {
    const r = new MessageReader();
    const bad = concat([encodeControl(MESSAGES[2]!), Uint8Array.from([0, 1, 0x3f])]);
    expect(pushError(r, bad).code).toBe("bad-type");
  });

  test("after an error every push fails the same way", () => {
    const r = new MessageReader();
    const first = pushError(r, Uint8Array.from([0xff, 0xff]));
    expect(pushError(r, encodeControl(MESSAGES[5]!))).toBe(first);
  });

  test("a bad body in the middle of a stream fails", () => {
    const r = new MessageReader();
    const broken = STREAM.slice();
    broken[4] = 0x00; // hello magic "LCAM" -> "L\0AM"
    expect(pushError(r, broken).code).toBe("bad-magic");
  });
});
