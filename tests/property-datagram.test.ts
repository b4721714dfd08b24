// Properties of the datagram codec over generated headers and payloads: what is
// encoded decodes to the same thing, and no truncation, extension or mutation of it
// makes the decoder throw anything but a DecodeError or accept a non-canonical form.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeDatagram, encodeDatagramHeader, fragmentPayloadLength, HEADER_SIZE, MAX_CAPTURE_TIME, MAX_DATAGRAM_SIZE, MAX_FRAGMENT_SIZE,
  MAX_FRAGMENTS, TAG_SIZE, type Datagram, type DatagramHeader,
} from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

/** Seeded, so a failure replays; bounded in runs and, on a slow machine, in time. */
const RUN = { seed: 0x1c4d, numRuns: 2000, interruptAfterTimeLimit: 5000 };

/** Mostly small fragments (fast), sometimes up to the format's largest. */
const fragmentSize = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 1500 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_FRAGMENT_SIZE }) });

/** A header the encoder accepts: count, size and length agree, the index is below the count. */
const header: fc.Arbitrary<DatagramHeader> = fragmentSize
  .chain((size) =>
    fc.integer({ min: 1, max: Math.min(MAX_FRAGMENTS, Math.floor(0xffffffff / size)) }).chain((count) =>
      fc.record({
        fragmentSize: fc.constant(size),
        fragmentCount: fc.constant(count),
        frameLength: fc.integer({ min: (count - 1) * size + 1, max: count * size }),
        fragmentIndex: fc.integer({ min: 0, max: count - 1 }),
      }),
    ),
  )
  .chain((shape) =>
    fc.record({
      encrypted: fc.boolean(),
      keyId: fc.integer({ min: 0, max: 0xffff }),
      payloadType: fc.constant(0 as const),
      sessionId: fc.integer({ min: 0, max: 0xffffffff }),
      frameNumber: fc.integer({ min: 0, max: 0xffffffff }),
      fragmentIndex: fc.constant(shape.fragmentIndex),
      fragmentCount: fc.constant(shape.fragmentCount),
      frameLength: fc.constant(shape.frameLength),
      fragmentSize: fc.constant(shape.fragmentSize),
      capturedAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 }), fc.constant(MAX_CAPTURE_TIME), fc.integer({ min: 0, max: MAX_CAPTURE_TIME })),
    }),
  )
  // The key id is a field only of encrypted datagrams; the others carry 0 there.
  .map(({ keyId, ...h }): DatagramHeader => (h.encrypted ? { ...h, keyId } : h))
  // An encrypted fragment carries its tag too, and the whole still fits one UDP datagram.
  .filter((h) => HEADER_SIZE + fragmentPayloadLength(h) + (h.encrypted ? TAG_SIZE : 0) <= MAX_DATAGRAM_SIZE);

/** A whole datagram: header plus the payload its fields call for, filled from `fill`. */
const datagram = fc.tuple(header, fc.integer({ min: 0, max: 255 })).map(([h, fill]) => {
  const bytes = new Uint8Array(HEADER_SIZE + fragmentPayloadLength(h) + (h.encrypted ? TAG_SIZE : 0));
  encodeDatagramHeader(bytes, 0, h);
  for (let i = HEADER_SIZE; i < bytes.length; i++) bytes[i] = (fill + i * 31) & 0xff;
  return { header: h, bytes };
});

/** The decoded datagram, or the DecodeError; any other exception fails the property. */
function attempt(bytes: Uint8Array): Datagram | DecodeError {
  try {
    return decodeDatagram(bytes);
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw new Error(`decodeDatagram threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

/** What decodes must encode back to the very same bytes: the decoder has no lenient spellings. */
function expectCanonical(bytes: Uint8Array, d: Datagram): void {
  const again = new Uint8Array(bytes.length);
  encodeDatagramHeader(again, 0, d.header);
  again.set(d.payload, HEADER_SIZE);
  expect(Buffer.compare(again, bytes)).toBe(0);
}

/** Prefix lengths worth trying: all of them for a small datagram, a spread for a large one. */
function cuts(length: number): number[] {
  if (length <= 2048) return Array.from({ length }, (_, i) => i);
  return [...Array.from({ length: 64 }, (_, i) => i), ...Array.from({ length: 64 }, (_, i) => Math.floor(((i + 1) * (length - 1)) / 65)), length - 1];
}

describe("datagram codec, generated", () => {
  test("round trip: the header and payload come back as encoded", () => {
    fc.assert(
      fc.property(datagram, ({ header: h, bytes }) => {
        const d = attempt(bytes);
        expect(d).not.toBeInstanceOf(DecodeError);
        expect((d as Datagram).header).toEqual(h);
        expect((d as Datagram).payload).toEqual(bytes.subarray(HEADER_SIZE));
      }),
      RUN,
    );
  });

  test("every truncation is a DecodeError, and so is one byte more", () => {
    fc.assert(
      fc.property(datagram, ({ bytes }) => {
        for (const n of cuts(bytes.length)) expect(attempt(bytes.subarray(0, n))).toBeInstanceOf(DecodeError);
        const longer = new Uint8Array(bytes.length + 1);
        longer.set(bytes);
        expect(attempt(longer)).toBeInstanceOf(DecodeError);
      }),
      { ...RUN, numRuns: 300 },
    );
  });

  test("a mutated datagram is a DecodeError or decodes canonically: never another exception", () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(datagram, mutation, fc.boolean(), ({ bytes }, changes, inHeader) => {
        const m = bytes.slice();
        for (const [at, value] of changes) m[inHeader ? at % HEADER_SIZE : at % m.length] = value;
        const d = attempt(m);
        if (!(d instanceof DecodeError)) expectCanonical(m, d);
      }),
      RUN,
    );
  });

  test("random bytes of any length up to the largest datagram are a DecodeError or canonical", () => {
    const noise = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // Magic and version right, so the later checks get exercised too.
      fc.uint8Array({ minLength: HEADER_SIZE - 4, maxLength: 200 }).map((rest) => Uint8Array.of(0x4c, 0x43, 0x01, rest[0]! & 0x0f, ...rest.subarray(1))),
      fc.integer({ min: MAX_DATAGRAM_SIZE - 2, max: MAX_DATAGRAM_SIZE + 2 }).map((n) => new Uint8Array(n).fill(0x4c)),
    );
    fc.assert(
      fc.property(noise, (bytes) => {
        const d = attempt(bytes);
        if (!(d instanceof DecodeError)) expectCanonical(bytes, d);
      }),
      RUN,
    );
  });

  test("decoding reads only its own bytes: a view at any offset of a larger buffer decodes the same", () => {
    fc.assert(
      fc.property(datagram, fc.integer({ min: 1, max: 7 }), ({ header: h, bytes }, offset) => {
        const pool = new Uint8Array(offset + bytes.length + 5).fill(0xee);
        pool.set(bytes, offset);
        const d = attempt(pool.subarray(offset, offset + bytes.length));
        expect((d as Datagram).header).toEqual(h);
      }),
      { ...RUN, numRuns: 300 },
    );
  });
});
