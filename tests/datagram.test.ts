import { describe, expect, test } from "bun:test";
import {
  decodeDatagram,
  encodeDatagramHeader,
  FLAG_ENCRYPTED,
  HEADER_SIZE,
  MAGIC,
  MAX_DATAGRAM_SIZE,
  SESSION_ID_OFFSET,
  SESSION_ID_SIZE,
  TAG_SIZE,
  VERSION,
  type DatagramHeader,
} from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { prng } from "./helpers/prng.ts";


interface Golden {
  name: string;
  bytes: number[];
  msg: { header: DatagramHeader; payload: number[] };
}

/** The one table every datagram test runs over. */
const GOLDEN: Golden[] = [
  {
    name: "single-fragment frame",
    bytes: [
      0x4c, 0x43, //             magic "LC"
      0x01, //                   version 1
      0x00, //                   flags: not encrypted, payload type 0 (JPEG)
      0x01, 0x02, 0x03, 0x04, // session id 0x01020304
      0x00, 0x00, 0x00, 0x07, // frame number 7
      0x00, 0x00, //             fragment index 0
      0x00, 0x01, //             fragment count 1
      0x00, 0x00, 0x00, 0x03, // frame length 3
      0x05, 0xa0, //             fragment size 1440
      0x00, 0x00, //             reserved
      0x00, 0x06, 0x0a, 0x24, 0x18, 0x20, 0x22, 0x40, // capture time 1700000000123456 µs
      0xff, 0xd8, 0xd9, //       payload: the whole frame
    ],
    msg: {
      header: {
        encrypted: false, payloadType: 0, sessionId: 0x01020304, frameNumber: 7, fragmentIndex: 0, fragmentCount: 1,
        frameLength: 3, fragmentSize: 1440, capturedAt: 1700000000123456,
      },
      payload: [0xff, 0xd8, 0xd9],
    },
  },
  {
    name: "middle fragment carries exactly the fragment size",
    bytes: [
      0x4c, 0x43, //             magic "LC"
      0x01, //                   version 1
      0x00, //                   flags
      0x00, 0x00, 0x00, 0x2a, // session id 42
      0x00, 0x01, 0x00, 0x00, // frame number 65536
      0x00, 0x01, //             fragment index 1
      0x00, 0x03, //             fragment count 3 = ceil(10 / 4)
      0x00, 0x00, 0x00, 0x0a, // frame length 10
      0x00, 0x04, //             fragment size 4
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // capture time 1 µs
      0x10, 0x11, 0x12, 0x13, // payload: frame bytes 4..7
    ],
    msg: {
      header: {
        encrypted: false, payloadType: 0, sessionId: 42, frameNumber: 65536, fragmentIndex: 1, fragmentCount: 3,
        frameLength: 10, fragmentSize: 4, capturedAt: 1,
      },
      payload: [0x10, 0x11, 0x12, 0x13],
    },
  },
  {
    name: "last fragment carries the rest",
    bytes: [
      0x4c, 0x43, //             magic "LC"
      0x01, //                   version 1
      0x00, //                   flags
      0x00, 0x00, 0x00, 0x2a, // session id 42
      0x00, 0x01, 0x00, 0x00, // frame number 65536
      0x00, 0x02, //             fragment index 2 (last)
      0x00, 0x03, //             fragment count 3
      0x00, 0x00, 0x00, 0x0a, // frame length 10
      0x00, 0x04, //             fragment size 4
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // capture time 1 µs
      0x18, 0x19, //             payload: frame bytes 8..9 (10 - 2 * 4)
    ],
    msg: {
      header: {
        encrypted: false, payloadType: 0, sessionId: 42, frameNumber: 65536, fragmentIndex: 2, fragmentCount: 3,
        frameLength: 10, fragmentSize: 4, capturedAt: 1,
      },
      payload: [0x18, 0x19],
    },
  },
  {
    name: "encrypted fragment: key id in the header, the GCM tag after the payload",
    bytes: [
      0x4c, 0x43, //             magic "LC"
      0x01, //                   version 1
      0x01, //                   flags: encrypted, payload type 0
      0xff, 0xff, 0xff, 0xff, // session id 0xFFFFFFFF
      0xff, 0xff, 0xff, 0xff, // frame number 0xFFFFFFFF
      0x00, 0x00, //             fragment index 0
      0x00, 0x01, //             fragment count 1
      0x00, 0x00, 0x00, 0x01, // frame length 1 (plaintext)
      0xff, 0xb3, //             fragment size 65459 (largest with a tag: 65507 - 32 - 16)
      0xbe, 0xef, //             key id 0xBEEF
      0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // capture time 2^53 - 1 µs
      0xab, //                   payload: 1 byte of ciphertext
      0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, // its 16-byte tag
      0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    ],
    msg: {
      header: {
        encrypted: true, keyId: 0xbeef, payloadType: 0, sessionId: 0xffffffff, frameNumber: 0xffffffff, fragmentIndex: 0, fragmentCount: 1,
        frameLength: 1, fragmentSize: 65459, capturedAt: Number.MAX_SAFE_INTEGER,
      },
      payload: [0xab, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f],
    },
  },
];

function encode(msg: Golden["msg"]): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + msg.payload.length);
  expect(encodeDatagramHeader(out, 0, msg.header)).toBe(HEADER_SIZE);
  out.set(msg.payload, HEADER_SIZE);
  return out;
}

function decodeError(bytes: Uint8Array): DecodeError {
  try {
    decodeDatagram(bytes);
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw e;
  }
  throw new Error(`decoded without error: ${Buffer.from(bytes).toString("hex")}`);
}

describe("golden datagrams", () => {
  test("the header is 32 bytes and the table agrees", () => {
    expect(HEADER_SIZE).toBe(32);
    expect(MAGIC).toBe(0x4c43);
    expect(VERSION).toBe(1);
    for (const g of GOLDEN) expect(g.bytes.length).toBe(HEADER_SIZE + g.msg.payload.length);
    expect(GOLDEN.some((g) => g.msg.header.encrypted)).toBe(true);
  });

  for (const g of GOLDEN) {
    describe(g.name, () => {
      test("decodes", () => {
        const bytes = Uint8Array.from(g.bytes);
        const { header, payload } = decodeDatagram(bytes);
        expect(header).toEqual(g.msg.header);
        expect([...payload]).toEqual(g.msg.payload);
      });

      test("payload is a view into the input, not a copy", () => {
        const bytes = Uint8Array.from(g.bytes);
        const { payload } = decodeDatagram(bytes);
        expect(payload.buffer).toBe(bytes.buffer);
        expect(payload.byteOffset).toBe(HEADER_SIZE);
      });

      test("encodes", () => {
        expect([...encode(g.msg)]).toEqual(g.bytes);
      });

      test("encodes at an offset inside a bigger buffer, touching nothing else", () => {
        const big = new Uint8Array(HEADER_SIZE + 10).fill(0xee);
        expect(encodeDatagramHeader(big, 5, g.msg.header)).toBe(5 + HEADER_SIZE);
        expect([...big.subarray(5, 5 + HEADER_SIZE)]).toEqual(g.bytes.slice(0, HEADER_SIZE));
        expect([...big.subarray(0, 5)]).toEqual([0xee, 0xee, 0xee, 0xee, 0xee]);
        expect([...big.subarray(5 + HEADER_SIZE)]).toEqual([0xee, 0xee, 0xee, 0xee, 0xee]);
      });

      test("round-trips", () => {
        const { header, payload } = decodeDatagram(encode(g.msg));
        expect(header).toEqual(g.msg.header);
        expect([...payload]).toEqual(g.msg.payload);
      });

      test("decodes from a view at an odd offset of a shared buffer (pooled Buffer)", () => {
        const backing = new Uint8Array(g.bytes.length + 7).fill(0x5a);
        backing.set(g.bytes, 3);
        const view = Buffer.from(backing.buffer, 3, g.bytes.length);
        expect(decodeDatagram(view).header).toEqual(g.msg.header);
      });

      test("every truncated prefix is a DecodeError", () => {
        for (let n = 0; n < g.bytes.length; n++) {
          const e = decodeError(Uint8Array.from(g.bytes.slice(0, n)));
          expect(e.code).toBe("truncated");
        }
      });

      test("a byte too many is a DecodeError", () => {
        expect(decodeError(Uint8Array.from([...g.bytes, 0])).code).toBe("bad-length");
      });
    });
  }
});

describe("bit flips in magic, version, flags and reserved are rejected", () => {
  const base = GOLDEN[0]!.bytes;
  const flip = (byte: number, bit: number) => {
    const b = Uint8Array.from(base);
    b[byte]! ^= 1 << bit;
    return b;
  };

  test("magic", () => {
    for (const byte of [0, 1]) {
      for (let bit = 0; bit < 8; bit++) {
        const e = decodeError(flip(byte, bit));
        expect(e.code).toBe("bad-magic");
        expect(e.message).toContain("0x");
      }
    }
  });

  test("version", () => {
    for (let bit = 0; bit < 8; bit++) {
      const e = decodeError(flip(2, bit));
      expect(e.code).toBe("bad-version");
      expect(e.message).toContain(`0x${(1 ^ (1 << bit)).toString(16).padStart(2, "0")}`);
    }
  });

  test("payload type bits (1-3) name an unknown type", () => {
    for (const bit of [1, 2, 3]) expect(decodeError(flip(3, bit)).code).toBe("bad-type");
  });

  test("reserved flag bits (4-7)", () => {
    for (const bit of [4, 5, 6, 7]) {
      const e = decodeError(flip(3, bit));
      expect(e.code).toBe("bad-value");
      expect(e.message).toContain(`0x${(1 << bit).toString(16)}`);
    }
  });

  test("bit 0 is the encrypted flag: it asks for a 16-byte tag after the payload", () => {
    expect(decodeError(flip(3, 0)).code).toBe("truncated");
    const withTag = Uint8Array.from([...flip(3, 0), ...new Array(TAG_SIZE).fill(0)]);
    expect(decodeDatagram(withTag).header).toMatchObject({ encrypted: true, keyId: 0 });
    expect("keyId" in decodeDatagram(base.length ? Uint8Array.from(base) : withTag).header).toBe(false);
    expect(FLAG_ENCRYPTED).toBe(1);
    expect(TAG_SIZE).toBe(16);
  });

  test("the u16 at 22 must be 0 without encryption", () => {
    for (const byte of [22, 23]) for (let bit = 0; bit < 8; bit++) expect(decodeError(flip(byte, bit)).code).toBe("bad-value");
  });

  test("with encryption the u16 at 22 is the key id, any value", () => {
    const enc = GOLDEN.find((g) => g.msg.header.encrypted)!;
    for (const keyId of [0, 1, 0x8000, 0xffff]) {
      const b = Uint8Array.from(enc.bytes);
      b.set([keyId >> 8, keyId & 0xff], 22);
      expect(decodeDatagram(b).header.keyId).toBe(keyId);
    }
  });

  test("the session id is at 4..8, the one field encryption leaves out", () => {
    const b = Uint8Array.from(base);
    b.set([0xaa, 0xbb, 0xcc, 0xdd], SESSION_ID_OFFSET);
    expect(SESSION_ID_SIZE).toBe(4);
    expect(decodeDatagram(b).header.sessionId).toBe(0xaabbccdd);
  });
});

describe("header values that cannot be right", () => {
  /** Golden 2 (middle fragment) with some header bytes replaced. */
  const patched = (at: number, bytes: number[]) => {
    const b = Uint8Array.from(GOLDEN[1]!.bytes);
    b.set(bytes, at);
    return b;
  };

  test("fragment count that does not match length and size", () => {
    expect(decodeError(patched(14, [0x00, 0x04])).code).toBe("bad-value");
    expect(decodeError(patched(14, [0x00, 0x00])).code).toBe("bad-value");
  });

  test("index not below count", () => {
    const e = decodeError(patched(12, [0x00, 0x03]));
    expect(e.code).toBe("bad-value");
    expect(e.message).toContain("0x0003");
  });

  test("frame length 0", () => {
    expect(decodeError(patched(16, [0, 0, 0, 0])).code).toBe("bad-length");
  });

  test("fragment size 0 or above 65475", () => {
    expect(decodeError(patched(20, [0x00, 0x00])).code).toBe("bad-value");
    expect(decodeError(patched(20, [0xff, 0xc4])).code).toBe("bad-value");
  });

  test("capture time beyond 2^53 - 1", () => {
    const e = decodeError(patched(24, [0x00, 0x20, 0, 0, 0, 0, 0, 0]));
    expect(e.code).toBe("bad-value");
    expect(e.message).toContain("0x0020000000000000");
  });

  test("payload longer than the fragment size says", () => {
    expect(decodeError(Uint8Array.from([...GOLDEN[1]!.bytes, 0x14])).code).toBe("bad-length");
  });

  test("a datagram above the UDP maximum", () => {
    expect(decodeError(new Uint8Array(MAX_DATAGRAM_SIZE + 1)).code).toBe("bad-length");
  });
});

describe("garbage", () => {
  const decodeOrDecodeError = (bytes: Uint8Array) => {
    try {
      return decodeDatagram(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return null;
    }
  };

  test("random bytes never throw anything but DecodeError", () => {
    const rnd = prng(0xdecade);
    for (let i = 0; i < 4000; i++) {
      const bytes = new Uint8Array(Math.floor(rnd() * 80));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rnd() * 256);
      // Mostly make it past the magic and version so the later checks get exercised.
      if (bytes.length >= 4 && rnd() < 0.8) bytes.set([0x4c, 0x43, 0x01, Math.floor(rnd() * 16) & 0x01], 0);
      if (bytes.length >= 24 && rnd() < 0.5) bytes.set([0, 0], 22);
      decodeOrDecodeError(bytes);
    }
  });

  test("mutated golden datagrams either fail with DecodeError or are canonical", () => {
    const rnd = prng(7);
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const g = GOLDEN[i % GOLDEN.length]!;
      const bytes = Uint8Array.from(g.bytes);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rnd() * bytes.length)]! ^= 1 << Math.floor(rnd() * 8);
      const d = decodeOrDecodeError(bytes);
      if (!d) continue;
      accepted++;
      // Whatever decodes must encode back to the same bytes: no field is silently ignored.
      expect([...encode({ header: d.header, payload: [...d.payload] })]).toEqual([...bytes]);
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

describe("encoding rejects what the format cannot carry", () => {
  const h = GOLDEN[1]!.msg.header;
  const cases: [string, Partial<DatagramHeader>][] = [
    ["session id above u32", { sessionId: 2 ** 32 }],
    ["negative frame number", { frameNumber: -1 }],
    ["fractional capture time", { capturedAt: 1.5 }],
    ["capture time above 2^53 - 1", { capturedAt: 2 ** 53 }],
    ["index not below count", { fragmentIndex: 3 }],
    ["count not matching length and size", { fragmentCount: 4 }],
    ["zero frame length", { frameLength: 0, fragmentCount: 0 }],
    ["fragment size above 65475", { fragmentSize: 65476 }],
    ["a key id without encryption", { keyId: 1 }],
    ["a key id above u16", { encrypted: true, keyId: 0x10000 }],
  ];
  for (const [name, patch] of cases) {
    test(name, () => {
      expect(() => encodeDatagramHeader(new Uint8Array(64), 0, { ...h, ...patch })).toThrow(RangeError);
    });
  }

  test("no room for the header", () => {
    expect(() => encodeDatagramHeader(new Uint8Array(40), 9, h)).toThrow(RangeError);
  });
});
