import { describe, expect, test } from "bun:test";
import { cv } from "../lib/native/cv.ts";
import { readJpegSize } from "../lib/wire/jpeg-header.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { prng } from "./helpers/prng.ts";
import { sofAt, withSize } from "./helpers/jpeg-bytes.ts";

/** A real baseline JPEG from the addon (a gradient, so the scan is not trivial). */
function encode(width: number, height: number): Uint8Array {
  const bgr = new Uint8Array(width * height * 3);
  for (let i = 0; i < bgr.length; i++) bgr[i] = (i * 7) & 0xff;
  return new Uint8Array(cv().encodeJpeg(bgr, width, height, 80));
}

/** Bytes of a three-component SOF0 segment: marker (2) and its length field's 17. */
const SOF_SEGMENT = 2 + 17;


/** A copy whose SOF0 marker code is `code` (C2 = progressive, ...). */
function withSofCode(jpeg: Uint8Array, code: number): Uint8Array {
  const out = jpeg.slice();
  out[sofAt(jpeg) + 1] = code;
  return out;
}

/** `bytes` inserted before index `at`. */
function insert(jpeg: Uint8Array, at: number, bytes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(jpeg.length + bytes.length);
  out.set(jpeg.subarray(0, at));
  out.set(bytes, at);
  out.set(jpeg.subarray(at), at + bytes.length);
  return out;
}

/** A marker segment: FF code, u16 length (counting itself), payload. */
function segment(code: number, payload: ArrayLike<number>): number[] {
  const length = payload.length + 2;
  return [0xff, code, length >> 8, length & 0xff, ...Array.from(payload)];
}

// The body of a frame header claiming 257x257 with three components: what a
// misparsing reader would return from segments that merely look like one.
const DECOY_SOF_BODY = [0x08, 0x01, 0x01, 0x01, 0x01, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];

describe("readJpegSize", () => {
  test("real JPEGs from the addon at several sizes", () => {
    for (const [width, height] of [
      [16, 16],
      [640, 480],
      [1280, 720],
      [33, 17],
      [1, 1],
      [40000, 8], // above 32767: the sides are unsigned
    ] as const) {
      expect(readJpegSize(encode(width, height))).toEqual({ width, height });
    }
  });

  test("real JPEGs from ffmpeg's mjpeg encoder", async () => {
    const [frame] = await jpegFrames(1, 320, 240);
    expect(readJpegSize(frame!)).toEqual({ width: 320, height: 240 });
  });

  test("reads through a view with a byte offset (a pooled Buffer, a subarray)", () => {
    const jpeg = encode(64, 48);
    const big = new Uint8Array(jpeg.length + 10).fill(0xff);
    big.set(jpeg, 3);
    expect(readJpegSize(big.subarray(3, 3 + jpeg.length))).toEqual({ width: 64, height: 48 });
    expect(readJpegSize(Buffer.from(jpeg))).toEqual({ width: 64, height: 48 });
  });

  test("skips APPn, COM, DQT and DHT segments before the frame header, whatever they hold", () => {
    const jpeg = encode(64, 48);
    // The addon writes SOI, APP0 (JFIF), DQT, SOF0, DHT..., SOS: APP0 and DQT already come first.
    expect(jpeg[2]).toBe(0xff);
    expect(jpeg[3]).toBe(0xe0);
    const exifThumbnail = [...Array.from(new TextEncoder().encode("Exif\0\0")), 0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, ...DECOY_SOF_BODY];
    const extra = [
      ...segment(0xe1, exifThumbnail), // APP1 holding an embedded JPEG's header
      ...segment(0xfe, [0xff, 0xc0, 0x00, 0x11, ...DECOY_SOF_BODY]), // COM
      ...segment(0xc4, [0x00, ...DECOY_SOF_BODY]), // DHT: C4 is in the SOF range but is not one
      ...segment(0xdb, new Array(65).fill(1)), // another DQT
    ];
    expect(readJpegSize(insert(jpeg, 2, extra))).toEqual({ width: 64, height: 48 });
    expect(readJpegSize(insert(jpeg, sofAt(jpeg), extra))).toEqual({ width: 64, height: 48 });
  });

  test("C4 (DHT), C8 (JPG) and CC (DAC) are segments, every other Cn is a frame header", () => {
    const jpeg = encode(64, 48);
    for (const code of [0xc4, 0xc8, 0xcc]) {
      const decoy = segment(code, DECOY_SOF_BODY);
      expect(readJpegSize(insert(jpeg, sofAt(jpeg), decoy))).toEqual({ width: 64, height: 48 });
    }
    for (let code = 0xc0; code <= 0xcf; code++) {
      if (code === 0xc4 || code === 0xc8 || code === 0xcc) continue;
      expect({ code, size: readJpegSize(withSofCode(jpeg, code)) }).toEqual({ code, size: { width: 64, height: 48 } });
    }
  });

  test("a progressive JPEG (SOF2) gives its size", () => {
    expect(readJpegSize(withSofCode(encode(1280, 720), 0xc2))).toEqual({ width: 1280, height: 720 });
  });

  test("fill bytes before a marker and standalone RSTn / TEM markers", () => {
    const jpeg = encode(64, 48);
    const at = sofAt(jpeg);
    expect(readJpegSize(insert(jpeg, at, [0xff, 0xff, 0xff]))).toEqual({ width: 64, height: 48 });
    expect(readJpegSize(insert(jpeg, 2, [0xff, 0xff]))).toEqual({ width: 64, height: 48 });
    const standalone = [0xff, 0xd0, 0xff, 0x01, 0xff, 0xff, 0xd7];
    expect(readJpegSize(insert(jpeg, at, standalone))).toEqual({ width: 64, height: 48 });
  });

  test("no frame header before SOS, EOI or a second SOI; stray bytes; FF 00", () => {
    const jpeg = encode(64, 48);
    const at = sofAt(jpeg);
    const cases: [string, number[]][] = [
      ["SOS", segment(0xda, [1, 1, 0, 0, 0x3f, 0])],
      ["EOI", [0xff, 0xd9]],
      ["SOI", [0xff, 0xd8]],
      ["FF 00", [0xff, 0x00]],
      ["a stray byte", [0x00]],
      ["a frame header without its FF", [0xc0, 0x00, 0x11, ...DECOY_SOF_BODY]],
    ];
    for (const [name, bytes] of cases) expect({ name, size: readJpegSize(insert(jpeg, at, bytes)) }).toEqual({ name, size: null });
    expect(readJpegSize(jpeg.slice(2))).toBeNull(); // no SOI
    expect(readJpegSize(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]))).toBeNull();
  });

  test("a malformed frame header is null", () => {
    const jpeg = encode(64, 48);
    const at = sofAt(jpeg);
    const patched = (offset: number, value: number) => {
      const out = jpeg.slice();
      out[at + offset] = value;
      return out;
    };
    expect(readJpegSize(withSize(jpeg, 0, 48))).toBeNull();
    expect(readJpegSize(withSize(jpeg, 64, 0))).toBeNull(); // a DNL-defined height: libjpeg refuses it too
    expect(readJpegSize(patched(9, 0))).toBeNull(); // no components
    expect(readJpegSize(patched(9, 4))).toBeNull(); // four components in a 17-byte segment
    expect(readJpegSize(patched(3, 0x06))).toBeNull(); // length 6: shorter than the fixed fields
    expect(readJpegSize(patched(3, 0x01))).toBeNull(); // length 1: shorter than the length field
  });

  test("every truncated prefix is null until the frame header is complete, then the size", () => {
    const large = encode(640, 480);
    const small = encode(16, 16);
    for (const [jpeg, complete, size] of [
      [large, sofAt(large) + SOF_SEGMENT, { width: 640, height: 480 }],
      [withSofCode(small, 0xc2), sofAt(small) + SOF_SEGMENT, { width: 16, height: 16 }],
    ] as const) {
      const wrong: number[] = [];
      for (let n = 0; n <= jpeg.length; n++) {
        const got = readJpegSize(jpeg.subarray(0, n));
        const want = n >= complete ? size : null;
        if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(n);
      }
      expect(wrong).toEqual([]);
    }
  });

  test("seeded garbage and mutated headers never throw and give null or a plausible size", () => {
    const random = prng(0x1a2c4);
    const byte = () => Math.floor(random() * 256);
    const header = encode(64, 48).subarray(0, 700);
    const inputs: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const garbage = Uint8Array.from({ length: Math.floor(random() * 80) }, byte);
      // Half of them start like a JPEG so the walk gets past SOI.
      if (i % 2 && garbage.length >= 2) garbage.set([0xff, 0xd8]);
      inputs.push(garbage);
    }
    for (let i = 0; i < 3000; i++) {
      const mutated = header.slice();
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
        mutated[Math.floor(random() * mutated.length)] = random() < 0.3 ? 0xff : byte();
      }
      inputs.push(mutated);
    }
    let sizes = 0;
    for (const bytes of inputs) {
      const size = readJpegSize(bytes);
      if (size === null) continue;
      sizes++;
      for (const side of [size.width, size.height]) {
        expect(Number.isInteger(side) && side >= 1 && side <= 0xffff).toBe(true);
      }
    }
    expect(sizes).toBeGreaterThan(1000); // most header mutations miss the frame header
  });

  test("long runs of fill bytes or standalone markers end without a size", () => {
    const fill = new Uint8Array(1 << 20).fill(0xff);
    fill.set([0xff, 0xd8]);
    expect(readJpegSize(fill)).toBeNull();
    const restarts = new Uint8Array(1 << 20);
    for (let i = 0; i < restarts.length; i += 2) restarts.set([0xff, 0xd0 + ((i / 2) % 8)], i);
    restarts.set([0xff, 0xd8]);
    expect(readJpegSize(restarts)).toBeNull();
  });

  test("a header claiming 30000x30000 reads as such, so callers can refuse it", () => {
    const jpeg = encode(16, 16);
    expect(readJpegSize(withSize(jpeg, 30000, 30000))).toEqual({ width: 30000, height: 30000 });
    expect(readJpegSize(withSize(jpeg, 0xffff, 0xffff))).toEqual({ width: 0xffff, height: 0xffff });
  });
});
