// Properties of the control codec and the stream reader over generated messages: what
// is encoded decodes to the same message, whatever the chunking of the stream; no
// truncation or mutation makes either throw anything but a DecodeError, and what
// decodes is the one canonical encoding of its message.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  AUDIO_BITRATE_RANGE, AUDIO_FRAME_MS, WELCOME_AUDIO, CAP_CAMERA, WELCOME_CAMERA, type Hello, ByeReason, decodeControl, encodeControl, FallbackReason, MAX_DELIVERY_LAYERS, MAX_FPS_MILLIHERTZ, MAX_MESSAGE_SIZE, MAX_NAME_BYTES, MAX_REFUSE_TEXT_BYTES, peekMessageSize,
  PROTOCOL_VERSION, RefuseReason, SIGNING_KEY_SIZE, WELCOME_ENCRYPTED, WELCOME_MULTICAST, WELCOME_SIGNED, type ControlMessage, type Welcome,
} from "../lib/wire/control.ts";
import { MAX_FRAGMENT_SIZE, MIN_MTU, HEADER_SIZE as DATAGRAM_HEADER_SIZE } from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";

/** Seeded, so a failure replays; bounded in runs and, on a slow machine, in time. */
const RUN = { seed: 0x4c43414d, numRuns: 2000, interruptAfterTimeLimit: 5000 };

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const utf8Length = (s: string) => new TextEncoder().encode(s).length;
// Text a peer may send: any code point but controls, bidi and zero-width included (the
// log spells those out), within the byte budget.
const text = (maxBytes: number) =>
  fc.oneof(fc.string({ unit: "binary", maxLength: maxBytes }), fc.string({ unit: "grapheme", maxLength: 30 }), fc.stringMatching(/^[\u202e\u200b\ufeff a-z]{0,20}$/))
    .map((s) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ""))
    .filter((s) => utf8Length(s) <= maxBytes);

// A camera asked for: its capability bit is set exactly when the camera is there (as decoding gives it).
const cameraText = (minLength: number) => fc.stringMatching(/^[!-~]{0,32}$/).filter((c) => c.length >= minLength);
const hello = fc.record({
  type: fc.constant("hello" as const), version: fc.constant(PROTOCOL_VERSION), udpPort: fc.integer({ min: 1, max: 0xffff }), capabilities: u32,
  name: text(MAX_NAME_BYTES),
}).chain((h) =>
  fc.option(cameraText(0), { nil: undefined })
    .map((camera): Hello => (camera === undefined ? { ...h, capabilities: (h.capabilities & ~CAP_CAMERA) >>> 0 } : { ...h, capabilities: (h.capabilities | CAP_CAMERA) >>> 0, camera })),
);
const welcome = fc.integer({ min: 1, max: 0xfffe }).chain((heartbeatMs) =>
  fc.record({
    type: fc.constant("welcome" as const), sessionId: u32, width: fc.integer({ min: 1, max: 0xffff }), height: fc.integer({ min: 1, max: 0xffff }),
    fpsMillihertz: fc.integer({ min: 1, max: MAX_FPS_MILLIHERTZ }), fragmentSize: fc.integer({ min: MIN_MTU - DATAGRAM_HEADER_SIZE, max: MAX_FRAGMENT_SIZE }),
    udpSourcePort: fc.integer({ min: 1, max: 0xffff }), heartbeatMs: fc.constant(heartbeatMs), timeoutMs: fc.integer({ min: heartbeatMs + 1, max: 0xffff }),
    flags: fc.constantFrom(0, WELCOME_ENCRYPTED),
  }),
).chain((w) =>
  // A group in 224.0.0.0/4, when the multicast flag is set: the block sits between the flags and the resume secret.
  fc.option(fc.record({ address: fc.tuple(fc.integer({ min: 224, max: 239 }), u8, u8, u8).map((q) => q.join(".")), port: fc.integer({ min: 1, max: 0xffff }), streamId: u32 }), { nil: undefined })
    .map((multicast): Welcome => (multicast ? { ...w, flags: w.flags | WELCOME_MULTICAST, multicast } : w)),
).chain((w) =>
  // A signing key, when the signed flag is set: its block follows the multicast block.
  fc.option(fc.record({ publicKey: fc.uint8Array({ minLength: SIGNING_KEY_SIZE, maxLength: SIGNING_KEY_SIZE }), streamId: u32 }), { nil: undefined })
    .map((signing): Welcome => (signing ? { ...w, flags: w.flags | WELCOME_SIGNED, signing } : w)),
).chain((w) =>
  // The camera it serves, when the camera flag is set: its block follows the signing block.
  fc.option(fc.integer({ min: 1, max: 8 }).chain((count) => fc.record({ index: fc.integer({ min: 0, max: count - 1 }), count: fc.constant(count), name: cameraText(1) })), { nil: undefined })
    .map((camera): Welcome => (camera ? { ...w, flags: w.flags | WELCOME_CAMERA, camera } : w)),
).chain((w) =>
  // The audio format, when the audio flag is set: its block follows the camera block.
  fc.option(fc.record({ codec: fc.constant("opus" as const), channels: fc.constantFrom(1 as const, 2 as const), frameMs: fc.constantFrom(...AUDIO_FRAME_MS), bitrate: fc.integer({ min: AUDIO_BITRATE_RANGE.min, max: AUDIO_BITRATE_RANGE.max }) }), { nil: undefined })
    .map((audio): Welcome => (audio ? { ...w, flags: w.flags | WELCOME_AUDIO, audio } : w)),
);
const fallback = fc.record({ type: fc.constant("fallback" as const), reason: fc.constantFrom(...Object.values(FallbackReason)) });
const refuse = fc.record({ type: fc.constant("refuse" as const), reason: fc.constantFrom(...Object.values(RefuseReason)), text: text(MAX_REFUSE_TEXT_BYTES) });
const heartbeat = fc.record({ type: fc.constant("heartbeat" as const), sentAt: fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constant(Number.MAX_SAFE_INTEGER)) });
const report = fc.record(
  {
    type: fc.constant("report" as const), framesReceived: u32, framesLost: u32, framesIncomplete: u32, datagramsDropped: u32,
    latencyP50Us: u32, latencyP95Us: u32, fpsMillihertz: u32,
    path: fc.record({
      bytesReceived: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), datagramsReceived: u32, datagramsLost: u32,
      delayTrendUsPerS: fc.integer({ min: -0x80000000, max: 0x7fffffff }), delaySamples: fc.integer({ min: 0, max: 0xffff }),
    }),
  },
  { requiredKeys: ["type", "framesReceived", "framesLost", "framesIncomplete", "datagramsDropped", "latencyP50Us", "latencyP95Us", "fpsMillihertz"] },
);
const bye = fc.record(
  {
    type: fc.constant("bye" as const), reason: fc.constantFrom(...Object.values(ByeReason)),
    totals: fc.record({ framesReceived: u32, framesLost: u32, framesIncomplete: u32, framesRecorded: u32 }),
  },
  { requiredKeys: ["type", "reason"] },
);
const side = fc.integer({ min: 8, max: 0x7fff }).map((half) => half * 2);
const delivery = fc.record({
  type: fc.constant("delivery" as const), layer: fc.integer({ min: 0, max: MAX_DELIVERY_LAYERS - 1 }), width: side, height: side,
  rateBytesPerS: u32, framesSkipped: u32, skippedThrough: u32,
});
const message: fc.Arbitrary<ControlMessage> = fc.oneof(hello, welcome, refuse, heartbeat, report, bye, fallback, delivery);

/** The decoded message, or the DecodeError; any other exception fails the property. */
function attempt<T>(decode: () => T): T | DecodeError {
  try {
    return decode();
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw new Error(`threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte changes at positions taken modulo the target's length. */
const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });

function mutate(bytes: Uint8Array, changes: [number, number][], from = 0): Uint8Array {
  const m = bytes.slice();
  for (const [at, value] of changes) m[from + (at % (m.length - from))] = value;
  return m;
}

describe("control codec, generated", () => {
  test("round trip: every message decodes to itself, and its size is what peekMessageSize says", () => {
    fc.assert(
      fc.property(message, (msg) => {
        const bytes = encodeControl(msg);
        expect(bytes.length).toBeLessThanOrEqual(MAX_MESSAGE_SIZE);
        expect(peekMessageSize(bytes)).toBe(bytes.length);
        expect(decodeControl(bytes)).toEqual(msg);
      }),
      RUN,
    );
  });

  test("text that UTF-8 cannot carry (a lone surrogate) is refused by the encoder, not changed on the way", () => {
    const lone = fc.tuple(fc.string({ maxLength: 5 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 5 }))
      .map(([a, s, b]) => a + String.fromCharCode(s) + b)
      .filter((s) => /\p{Cs}/u.test(s) && !/[\u0000-\u001f\u007f-\u009f]/.test(s));
    fc.assert(
      fc.property(lone, fc.boolean(), (s, asName) => {
        const msg: ControlMessage = asName
          ? { type: "hello", version: PROTOCOL_VERSION, udpPort: 1, capabilities: 0, name: s }
          : { type: "refuse", reason: RefuseReason.Other, text: s };
        expect(() => encodeControl(msg)).toThrow(RangeError);
      }),
      { ...RUN, numRuns: 300 },
    );
  });

  test("every truncation is a DecodeError, with the length prefix as sent or fixed up to match", () => {
    fc.assert(
      fc.property(message, (msg) => {
        const bytes = encodeControl(msg);
        for (let n = 0; n < bytes.length; n++) {
          expect(attempt(() => decodeControl(bytes.subarray(0, n)))).toBeInstanceOf(DecodeError);
          if (n < 3) continue;
          const fixed = bytes.slice(0, n);
          fixed[0] = (n - 2) >> 8;
          fixed[1] = (n - 2) & 0xff;
          const got = attempt(() => decodeControl(fixed));
          // A bye's totals are optional: cut to its reason alone, it is the shorter bye.
          if (msg.type === "bye" && n === 4) expect(got).toEqual({ type: "bye", reason: msg.reason });
          // So are a report's path counters: cut to its 28 bytes, it is the report without them.
          else if (msg.type === "report" && msg.path && n === 3 + 28) expect(got).toEqual({ ...msg, path: undefined });
          else expect(got).toBeInstanceOf(DecodeError);
        }
      }),
      { ...RUN, numRuns: 500 },
    );
  });

  test("a mutated message is a DecodeError or the canonical encoding of what it decodes to", () => {
    fc.assert(
      fc.property(message, mutation, fc.boolean(), (msg, changes, bodyOnly) => {
        const m = mutate(encodeControl(msg), changes, bodyOnly ? 3 : 0);
        const got = attempt(() => decodeControl(m));
        if (!(got instanceof DecodeError)) expect(Buffer.compare(encodeControl(got), m)).toBe(0);
      }),
      RUN,
    );
  });

  test("random bytes are a DecodeError or canonical; peekMessageSize gives null, a size or a DecodeError", () => {
    const framed = fc.tuple(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 60 })).map(([type, body]) =>
      Uint8Array.of((body.length + 1) >> 8, (body.length + 1) & 0xff, type, ...body));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), framed), (bytes) => {
        const size = attempt(() => peekMessageSize(bytes));
        if (typeof size === "number") expect(size).toBeLessThanOrEqual(MAX_MESSAGE_SIZE);
        const got = attempt(() => decodeControl(bytes));
        if (!(got instanceof DecodeError)) expect(Buffer.compare(encodeControl(got), bytes)).toBe(0);
      }),
      { ...RUN, numRuns: 5000 },
    );
  });
});

describe("MessageReader, generated", () => {
  /** A stream of messages and the points at which the network cut it into chunks. */
  const stream = fc.array(message, { minLength: 1, maxLength: 12 }).chain((msgs) => {
    const bytes = concat(msgs.map(encodeControl));
    return fc.record({
      msgs: fc.constant(msgs),
      bytes: fc.constant(bytes),
      cuts: fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, bytes.length - 1) }), { maxLength: 20 }).map((c) => c.sort((a, b) => a - b)),
    });
  });

  function chunks(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
    const edges = [0, ...cuts.filter((c) => c < bytes.length), bytes.length];
    return edges.slice(1).map((end, i) => bytes.subarray(edges[i], end));
  }

  test("whatever the chunking, the messages come out in order and at most one message is held", () => {
    fc.assert(
      fc.property(stream, ({ msgs, bytes, cuts }) => {
        const r = new MessageReader();
        const got: ControlMessage[] = [];
        for (const c of chunks(bytes, cuts)) {
          got.push(...r.push(c));
          expect(r.buffered).toBeLessThan(MAX_MESSAGE_SIZE);
        }
        expect(got).toEqual(msgs);
        expect(r.buffered).toBe(0);
      }),
      RUN,
    );
  });

  test("a stream cut short yields exactly the whole messages before the cut and holds the rest", () => {
    fc.assert(
      fc.property(stream, fc.nat(), ({ msgs, bytes, cuts }, where) => {
        const end = where % (bytes.length + 1);
        const r = new MessageReader();
        const got = chunks(bytes.subarray(0, end), cuts).flatMap((c) => r.push(c));
        let whole = 0;
        let at = 0;
        for (const m of msgs) {
          const n = encodeControl(m).length;
          if (at + n > end) break;
          at += n;
          whole++;
        }
        expect(got).toEqual(msgs.slice(0, whole));
        expect(r.buffered).toBe(end - at);
      }),
      RUN,
    );
  });

  test("mutated or random streams throw only DecodeError, the same one ever after, and never hold more than a message", () => {
    const noise = fc.uint8Array({ minLength: 1, maxLength: 300 });
    fc.assert(
      fc.property(stream, mutation, fc.option(noise), ({ bytes, cuts }, changes, garbage) => {
        const input = garbage ?? mutate(bytes, changes);
        const r = new MessageReader();
        let failed: DecodeError | null = null;
        for (const c of chunks(input, cuts)) {
          const got = attempt(() => r.push(c));
          if (got instanceof DecodeError) {
            if (failed) expect(got).toBe(failed);
            failed = got;
            continue;
          }
          expect(failed).toBeNull();
          for (const m of got) expect(m).toEqual(decodeControl(encodeControl(m)));
          expect(r.buffered).toBeLessThan(MAX_MESSAGE_SIZE);
        }
        if (failed) expect(attempt(() => r.push(Uint8Array.of(0, 1, 4)))).toBe(failed);
      }),
      RUN,
    );
  });
});
