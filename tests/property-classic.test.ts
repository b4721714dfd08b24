// Properties of the classroom protocol's codec: a port announced in any of its
// spellings is read back, anything a connection can start with is classified without
// throwing, and an answer datagram is exactly "continue" or "end" or a DecodeError.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { classifyFirstBytes, decodeClassicAnswer, encodeClassicAnswer, encodeClassicPort, MAX_PORT_DIGITS } from "../lib/wire/classic.ts";
import { CAP_CAMERA, encodeControl, PROTOCOL_VERSION } from "../lib/wire/control.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

/** Seeded, so a failure replays; bounded in runs and, on a slow machine, in time. */
const RUN = { seed: 0x38383838, numRuns: 3000, interruptAfterTimeLimit: 5000 };

const port = fc.integer({ min: 1, max: 65_535 });
const ascii = (s: string) => new TextEncoder().encode(s);

describe("classic first bytes, generated", () => {
  test("a port as the classroom viewer sends it (or typed, with \\n or \\r\\n) reads back", () => {
    fc.assert(
      fc.property(port, fc.constantFrom("", "\n", "\r\n"), (p, ending) => {
        const bytes = new Uint8Array([...encodeClassicPort(p), ...ascii(ending)]);
        expect(classifyFirstBytes(bytes)).toEqual({ kind: "classic", port: p });
      }),
      RUN,
    );
  });

  test("any lancam hello is lancam from its first byte on", () => {
    const hello = fc.record({ udpPort: port, capabilities: fc.nat(), name: fc.string({ unit: "grapheme-ascii", maxLength: 64 }) });
    fc.assert(
      fc.property(hello, fc.integer({ min: 1, max: 80 }), ({ udpPort, capabilities, name }, n) => {
        // A hello that sets the camera capability names its camera (the encoder refuses one that does not).
        const camera = capabilities & CAP_CAMERA ? "board" : undefined;
        const bytes = encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort, capabilities, name: name.replace(/[\u0000-\u001f\u007f]/g, ""), camera });
        expect(classifyFirstBytes(bytes.subarray(0, n))).toEqual({ kind: "lancam" });
      }),
      RUN,
    );
  });

  test("any bytes classify without throwing, and the verdict follows from them", () => {
    const start = fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.stringMatching(/^[0-9]{0,7}(\r|\n|\r\n|x)?$/).map(ascii));
    fc.assert(
      fc.property(start, (bytes) => {
        const got = classifyFirstBytes(bytes);
        if (bytes.length === 0) return void expect(got).toEqual({ kind: "undecided" });
        if (bytes[0]! <= 0x04) return void expect(got).toEqual({ kind: "lancam" });
        const text = new TextDecoder("latin1").decode(bytes);
        const m = /^(\d{1,5})(\n|\r\n)?$/.exec(text);
        if (m && Number(m[1]) >= 1 && Number(m[1]) <= 65_535) return void expect(got).toEqual({ kind: "classic", port: Number(m[1]) });
        if (/^\d{1,5}\r$/.test(text)) return void expect(got).toEqual({ kind: "undecided" });
        expect(got.kind).toBe("invalid");
        if (got.kind === "invalid") expect(got.reason).toMatch(/0x[0-9a-f]{2}|longer than 5 digits|outside 1\.\.65535/);
      }),
      RUN,
    );
  });

  test("more digits than a port has are invalid, however many", () => {
    fc.assert(
      fc.property(fc.stringMatching(new RegExp(`^[1-9][0-9]{${MAX_PORT_DIGITS},40}$`)), (digits) => {
        expect(classifyFirstBytes(ascii(digits)).kind).toBe("invalid");
      }),
      RUN,
    );
  });
});

describe("classic answers, generated", () => {
  test("round trip, and every truncation, extension or change of an answer is a DecodeError", () => {
    fc.assert(
      fc.property(fc.constantFrom("continue" as const, "end" as const), fc.nat(), fc.integer({ min: 0, max: 255 }), (answer, at, value) => {
        const bytes = encodeClassicAnswer(answer);
        expect(decodeClassicAnswer(bytes)).toBe(answer);
        for (let n = 0; n < bytes.length; n++) expect(() => decodeClassicAnswer(bytes.subarray(0, n))).toThrow(DecodeError);
        expect(() => decodeClassicAnswer(Uint8Array.of(...bytes, value))).toThrow(DecodeError);
        const changed = bytes.slice();
        changed[at % changed.length] = value;
        const same = changed.every((b, i) => b === bytes[i]);
        if (same) expect(decodeClassicAnswer(changed)).toBe(answer);
        else expect(() => decodeClassicAnswer(changed)).toThrow(DecodeError);
      }),
      RUN,
    );
  });

  test("any datagram is exactly an answer or a DecodeError", () => {
    fc.assert(
      fc.property(fc.oneof(
          fc.uint8Array({ maxLength: 12 }),
          // A picture-sized datagram sent back at the server; its bytes hardly matter, its length does.
          fc.tuple(fc.integer({ min: 9, max: 65_507 }), fc.integer({ min: 0, max: 255 })).map(([n, b]) => new Uint8Array(n).fill(b)),
        ), (bytes) => {
        const text = new TextDecoder("latin1").decode(bytes);
        try {
          const got = decodeClassicAnswer(bytes);
          expect(got).toBe(text as typeof got);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
          expect(text === "continue" || text === "end").toBe(false);
        }
      }),
      { ...RUN, numRuns: 1000 },
    );
  });
});
