import { describe, expect, test } from "bun:test";
import { decodeControl, encodeControl, MessageType, TAGGED_BIT, type ControlMessage } from "../lib/wire/control.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { entriesFor, entryIndexes, GoneReason, goneReasonText, MAX_GONE_FRAMES, MAX_REPAIR_ENTRIES } from "../lib/wire/repair.ts";
import { prng } from "./helpers/prng.ts";

interface Golden {
  name: string;
  bytes: number[];
  msg: ControlMessage;
}

const TAG = Array.from({ length: 16 }, (_, i) => 0xe0 + i);

/** The golden table of repair (12) and gone (13) messages. */
const GOLDEN: Golden[] = [
  {
    name: "repair, one entry",
    bytes: [
      0x00, 0x0b, //             length 11 = type + 2 + 8
      0x0c, //                   type repair
      0x01, //                   1 entry
      0x00, //                   reserved
      0x00, 0x00, 0x01, 0x2c, // frame 300
      0x00, 0x05, //             first missing index 5
      0x80, 0x01, //             mask: 6 (bit 0) and 21 (bit 15) too
    ],
    msg: { type: "repair", entries: [{ frameNumber: 300, first: 5, mask: 0x8001 }] },
  },
  {
    name: "repair, two entries, tagged",
    bytes: [
      0x00, 0x23, //             length 35 = type + 2 + 16 + tag 16
      0x8c, //                   type repair, T set
      0x02, 0x00, //             2 entries, reserved
      0xff, 0xff, 0xff, 0xff, // frame 2^32-1
      0x00, 0x00, 0x00, 0x00, // index 0 alone
      0x00, 0x00, 0x00, 0x00, // frame 0
      0xff, 0xee, 0x00, 0x00, // index 0xffee alone
      ...TAG,
    ],
    msg: {
      type: "repair",
      entries: [
        { frameNumber: 0xffffffff, first: 0, mask: 0 },
        { frameNumber: 0, first: 0xffee, mask: 0 },
      ],
      tag: Uint8Array.from(TAG),
    },
  },
  {
    name: "gone, expired",
    bytes: [
      0x00, 0x0b, //             length 11 = type + 2 + 8
      0x0d, //                   type gone
      0x01, //                   reason: expired
      0x02, //                   2 frames
      0x00, 0x00, 0x01, 0x2c, // frame 300
      0x00, 0x00, 0x01, 0x2d, // frame 301
    ],
    msg: { type: "gone", reason: GoneReason.Expired, frames: [300, 301] },
  },
  {
    name: "gone, over budget, tagged",
    bytes: [
      0x00, 0x17, //             length 23 = type + 2 + 4 + tag 16
      0x8d, //                   type gone, T set
      0x02, 0x01, //             reason: over budget; 1 frame
      0x00, 0x01, 0x00, 0x00, // frame 65536
      ...TAG,
    ],
    msg: { type: "gone", reason: GoneReason.OverBudget, frames: [65536], tag: Uint8Array.from(TAG) },
  },
  {
    name: "gone, skipped (never sent to this viewer)",
    bytes: [
      0x00, 0x07, //             length 7 = type + 2 + 4
      0x0d, //                   type gone
      0x03, 0x01, //             reason: skipped; 1 frame
      0x00, 0x00, 0x00, 0x2a, // frame 42
    ],
    msg: { type: "gone", reason: GoneReason.Skipped, frames: [42] },
  },
];

function decodeError(bytes: number[]): DecodeError {
  try {
    decodeControl(Uint8Array.from(bytes));
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw e;
  }
  throw new Error(`decoded ${JSON.stringify(bytes)} without an error`);
}

/** A framed untagged message with this type and body. */
function frame(type: number, body: number[]): number[] {
  const n = body.length + 1;
  return [n >> 8, n & 0xff, type, ...body];
}

describe("golden repair and gone messages", () => {
  test("the types are 12 and 13", () => {
    expect(MessageType.Repair).toBe(12);
    expect(MessageType.Gone).toBe(13);
  });
  for (const g of GOLDEN) {
    describe(g.name, () => {
      test("decodes", () => expect(decodeControl(Uint8Array.from(g.bytes))).toEqual(g.msg));
      test("encodes", () => expect([...encodeControl(g.msg)]).toEqual(g.bytes));
      test("decodes from a view at an odd offset of a shared buffer", () => {
        const backing = new Uint8Array(g.bytes.length + 7).fill(0xa5);
        backing.set(g.bytes, 3);
        expect(decodeControl(Buffer.from(backing.buffer, 3, g.bytes.length))).toEqual(g.msg);
      });
      test("every truncated prefix is a DecodeError", () => {
        for (let n = 0; n < g.bytes.length; n++) expect(decodeError(g.bytes.slice(0, n)).code).toBe("truncated");
      });
      test("every truncated body is a DecodeError, even with a length prefix that matches", () => {
        const untagged = g.bytes[2]! & ~TAGGED_BIT;
        const body = g.bytes.slice(3, g.msg.tag ? -16 : undefined);
        for (let n = 0; n < body.length; n++) expect(decodeError(frame(untagged, body.slice(0, n))).code).toBe("truncated");
      });
      test("a byte more is a bad-length error", () => {
        const untagged = g.bytes[2]! & ~TAGGED_BIT;
        const body = g.bytes.slice(3, g.msg.tag ? -16 : undefined);
        expect(decodeError(frame(untagged, [...body, 0])).code).toBe("bad-length");
      });
    });
  }
});

describe("hostile repair and gone bodies", () => {
  test("no entries, too many entries, a reserved byte set: bad-value", () => {
    expect(decodeError(frame(12, [0x00, 0x00])).code).toBe("bad-value");
    expect(decodeError(frame(12, [MAX_REPAIR_ENTRIES + 1, 0x00, ...new Array(8 * (MAX_REPAIR_ENTRIES + 1)).fill(0)])).code).toBe("bad-value");
    expect(decodeError(frame(12, [0x01, 0x01, 0, 0, 0, 1, 0, 0, 0, 0])).code).toBe("bad-value");
  });
  test("an entry naming an index past the format's last (0xfffe): bad-value", () => {
    expect(decodeError(frame(12, [0x01, 0x00, 0, 0, 0, 1, 0xff, 0xff, 0, 0])).code).toBe("bad-value");
    expect(decodeError(frame(12, [0x01, 0x00, 0, 0, 0, 1, 0xff, 0xf0, 0x80, 0x00])).code).toBe("bad-value");
  });
  test("gone: unknown reason, no frames, too many: bad-value", () => {
    expect(decodeError(frame(13, [0x04, 0x01, 0, 0, 0, 1])).code).toBe("bad-value");
    expect(decodeError(frame(13, [0x01, 0x00])).code).toBe("bad-value");
    expect(decodeError(frame(13, [0x01, MAX_GONE_FRAMES + 1, ...new Array(4 * (MAX_GONE_FRAMES + 1)).fill(0)])).code).toBe("bad-value");
    expect(goneReasonText(9)).toBe("unknown gone reason 0x09");
  });
  test("the encoder refuses what the format cannot carry", () => {
    expect(() => encodeControl({ type: "repair", entries: [] })).toThrow(RangeError);
    expect(() => encodeControl({ type: "repair", entries: new Array(MAX_REPAIR_ENTRIES + 1).fill({ frameNumber: 1, first: 0, mask: 0 }) })).toThrow(RangeError);
    expect(() => encodeControl({ type: "repair", entries: [{ frameNumber: 1, first: 0xfff0, mask: 0x8000 }] })).toThrow(RangeError);
    expect(() => encodeControl({ type: "gone", reason: 7 as GoneReason, frames: [1] })).toThrow(RangeError);
  });
  test("a largest repair message fits a control message", () => {
    const entries = Array.from({ length: MAX_REPAIR_ENTRIES }, (_, k) => ({ frameNumber: k, first: k, mask: 0xffff }));
    const bytes = encodeControl({ type: "repair", entries, tag: new Uint8Array(16) });
    expect(decodeControl(bytes)).toEqual({ type: "repair", entries, tag: new Uint8Array(16) });
  });
});

describe("packing missing indexes into entries", () => {
  test("any set of indexes packs into entries that name exactly that set, 17 at most per entry", () => {
    const rnd = prng(12);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rnd() * 60);
      const want = new Set<number>();
      const span = 1 + Math.floor(rnd() * 400);
      for (let i = 0; i < n; i++) want.add(Math.floor(rnd() * span));
      const entries = entriesFor(77, [...want, ...want]);
      const got = entries.flatMap(entryIndexes);
      expect(got).toEqual([...want].sort((a, b) => a - b));
      for (const e of entries) expect(e.frameNumber).toBe(77);
      // Greedy packing: one entry per 17-wide window at worst.
      expect(entries.length).toBeLessThanOrEqual(want.size);
      const decoded = decodeControl(encodeControl({ type: "repair", entries: entries.slice(0, MAX_REPAIR_ENTRIES) }));
      expect(decoded).toEqual({ type: "repair", entries: entries.slice(0, MAX_REPAIR_ENTRIES) });
    }
  });
  test("17 consecutive indexes take one entry, 18 take two", () => {
    expect(entriesFor(1, Array.from({ length: 17 }, (_, i) => i + 3))).toEqual([{ frameNumber: 1, first: 3, mask: 0xffff }]);
    expect(entriesFor(1, Array.from({ length: 18 }, (_, i) => i))).toHaveLength(2);
  });
});
