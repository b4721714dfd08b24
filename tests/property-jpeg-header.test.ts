// Properties of the JPEG size reader over generated headers: a well-formed header gives
// its size, whatever segments, fill bytes and standalone markers come first; a header
// cut before its frame header is complete gives null; and no mutation or noise makes
// it throw or read past its input. It answers null for "no size", never a DecodeError:
// callers refuse the picture either way.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { readJpegSize, type JpegSize } from "../lib/wire/jpeg-header.ts";

/** Seeded, so a failure replays; bounded in runs and, on a slow machine, in time. */
const RUN = { seed: 0xffd8, numRuns: 3000, interruptAfterTimeLimit: 5000 };

/** Marker codes that carry a length and may come before the frame header. */
const SEGMENT_CODES = [0xc4, 0xc8, 0xcc, 0xdb, 0xdd, 0xfe, ...Array.from({ length: 16 }, (_, i) => 0xe0 + i), 0x02, 0xbf, 0xf0];
/** Frame header codes: C0..CF but C4 (DHT), C8 (JPG) and CC (DAC). */
const SOF_CODES = Array.from({ length: 16 }, (_, i) => 0xc0 + i).filter((c) => c !== 0xc4 && c !== 0xc8 && c !== 0xcc);

const segment = fc.tuple(fc.constantFrom(...SEGMENT_CODES), fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 3 })).map(([code, payload, fill]) =>
  [...Array(fill).fill(0xff), 0xff, code, (payload.length + 2) >> 8, (payload.length + 2) & 0xff, ...payload]);
/** RSTn and TEM stand alone, without a length. */
const standalone = fc.constantFrom(0x01, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7).map((code) => [0xff, code]);

/** A header with its size and where its frame header ends. */
const header = fc
  .record({
    before: fc.array(fc.oneof({ weight: 4, arbitrary: segment }, { weight: 1, arbitrary: standalone }), { maxLength: 8 }),
    code: fc.constantFrom(...SOF_CODES),
    width: fc.integer({ min: 1, max: 0xffff }),
    height: fc.integer({ min: 1, max: 0xffff }),
    components: fc.integer({ min: 1, max: 4 }),
    scan: fc.uint8Array({ maxLength: 30 }),
  })
  .map(({ before, code, width, height, components, scan }) => {
    const length = 8 + components * 3;
    const sof = [0xff, code, length >> 8, length & 0xff, 8, height >> 8, height & 0xff, width >> 8, width & 0xff, components];
    for (let i = 0; i < components; i++) sof.push(i + 1, 0x11, 0);
    const head = [0xff, 0xd8, ...before.flat(), ...sof];
    const sos = [0xff, 0xda, 0, 8, 1, 1, 0, 0, 0x3f, 0];
    return { bytes: Uint8Array.from([...head, ...sos, ...scan, 0xff, 0xd9]), size: { width, height }, headerEnd: head.length };
  });

/** The size, or null; any exception fails the property. */
function attempt(bytes: Uint8Array): JpegSize | null {
  try {
    return readJpegSize(bytes);
  } catch (e) {
    throw new Error(`readJpegSize threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

describe("readJpegSize, generated", () => {
  test("a well-formed header gives its size, after any segments, fill bytes and standalone markers", () => {
    fc.assert(fc.property(header, ({ bytes, size }) => expect(attempt(bytes)).toEqual(size)), RUN);
  });

  test("every cut before the frame header is complete is null; from there on it is the size", () => {
    fc.assert(
      fc.property(header, ({ bytes, size, headerEnd }) => {
        for (let n = 0; n <= bytes.length; n++) expect(attempt(bytes.subarray(0, n))).toEqual(n < headerEnd ? null : size);
      }),
      { ...RUN, numRuns: 500 },
    );
  });

  test("mutations and noise never throw; a size read is one the bytes really hold at a frame header", () => {
    const changes = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(header, changes, fc.uint8Array({ maxLength: 100 }), fc.boolean(), ({ bytes }, edits, noise, useNoise) => {
        const m = useNoise ? Uint8Array.of(0xff, 0xd8, ...noise) : bytes.slice();
        if (!useNoise) for (const [at, value] of edits) m[at % m.length] = value;
        // Read through a view into a larger buffer full of plausible bytes: a reader that
        // strays past its view would find a size there.
        const pool = new Uint8Array(m.length + 64).fill(0x01);
        pool.set(m);
        const got = attempt(pool.subarray(0, m.length));
        expect(got).toEqual(attempt(m.slice()));
        if (got) {
          expect(got.width).toBeGreaterThanOrEqual(1);
          expect(got.height).toBeGreaterThanOrEqual(1);
          let found = false;
          for (let i = 2; i + 9 <= m.length && !found; i++) {
            found = m[i - 1] === 0xff && SOF_CODES.includes(m[i]!) && ((m[i + 4]! << 8) | m[i + 5]!) === got.height && ((m[i + 6]! << 8) | m[i + 7]!) === got.width;
          }
          expect(found).toBe(true);
        }
      }),
      RUN,
    );
  });
});
