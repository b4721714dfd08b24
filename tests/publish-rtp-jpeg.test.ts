import { beforeAll, describe, expect, test } from "bun:test";
import { renderTestFrame } from "../lib/native/cv.ts";
import { rtpJpegProblem } from "../lib/mux/rtp-jpeg.ts";
import { withSize } from "./helpers/jpeg-bytes.ts";

const SOI = [0xff, 0xd8];

/** Marker segments of a JPEG header, in order, up to and including SOS. */
function segments(jpeg: Uint8Array): { code: number; start: number; end: number }[] {
  const out: { code: number; start: number; end: number }[] = [];
  let at = 2;
  for (;;) {
    const code = jpeg[at + 1]!;
    const end = at + 2 + ((jpeg[at + 2]! << 8) | jpeg[at + 3]!);
    out.push({ code, start: at, end });
    if (code === 0xda) return out;
    at = end;
  }
}

/** `jpeg` without the segments `drop` picks, and with `insert` before the frame header. */
function edit(jpeg: Uint8Array, drop: (code: number, index: number) => boolean, insert: number[] = []): Uint8Array {
  const parts: number[] = [...SOI];
  const segs = segments(jpeg);
  segs.forEach((s, i) => {
    if (s.code === 0xc0) parts.push(...insert);
    if (!drop(s.code, i)) parts.push(...jpeg.subarray(s.start, s.end));
  });
  return Uint8Array.from([...parts, ...jpeg.subarray(segs.at(-1)!.end)]);
}

/** A copy with one byte changed at `offset` from the start of the first segment with `code`. */
function patch(jpeg: Uint8Array, code: number, offset: number, value: number): Uint8Array {
  const out = jpeg.slice();
  out[segments(jpeg).find((s) => s.code === code)!.start + offset] = value;
  return out;
}

// OpenCV's imencode (libjpeg): what the server's capture sends.
let opencv: Uint8Array;
beforeAll(async () => {
  opencv = new Uint8Array(await renderTestFrame(640, 360, 7, "rtp", 80));
});

describe("rtpJpegProblem", () => {
  test("accepts OpenCV's baseline 4:2:0 with standard tables, and the same without tables (camera MJPEG)", () => {
    expect(segments(opencv).map((s) => s.code.toString(16))).toEqual(["e0", "db", "db", "c0", "c4", "c4", "c4", "c4", "da"]);
    expect(rtpJpegProblem(opencv)).toBeNull();
    expect(rtpJpegProblem(edit(opencv, (c) => c === 0xc4))).toBeNull();
    // 4:2:2 (Y 2x1) is RFC 2435 type 0.
    expect(rtpJpegProblem(patch(opencv, 0xc0, 11, 0x21))).toBeNull();
    // A restart interval of 0 means no restart markers.
    expect(rtpJpegProblem(edit(opencv, () => false, [0xff, 0xdd, 0x00, 0x04, 0x00, 0x00]))).toBeNull();
  });

  // Offsets in SOF0 from its marker: FF C0, length (2), P, height (2), width (2), Nf, then
  // per component: id, H/V, table. Y's H/V is at 11, Cb's at 14, Cr's at 17.
  const CASES: { name: string; jpeg: () => Uint8Array; problem: string }[] = [
    { name: "4:4:4", jpeg: () => patch(opencv, 0xc0, 11, 0x11), problem: "chroma subsampling 4:4:4 (Y 1x1, Cb 1x1, Cr 1x1); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only" },
    { name: "4:4:0", jpeg: () => patch(opencv, 0xc0, 11, 0x12), problem: "chroma subsampling 4:4:0 (Y 1x2, Cb 1x1, Cr 1x1); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only" },
    { name: "subsampled Cb", jpeg: () => patch(opencv, 0xc0, 14, 0x21), problem: "chroma subsampling (Y 2x2, Cb 2x1, Cr 1x1); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only" },
    { name: "grayscale", jpeg: () => patch(opencv, 0xc0, 9, 1), problem: "grayscale JPEG; RTP/JPEG carries YCbCr (3 components) only" },
    { name: "CMYK", jpeg: () => patch(opencv, 0xc0, 9, 4), problem: "4-component JPEG; RTP/JPEG carries YCbCr (3 components) only" },
    { name: "12-bit samples", jpeg: () => patch(opencv, 0xc0, 4, 12), problem: "12-bit samples; RTP/JPEG carries 8-bit only" },
    { name: "progressive", jpeg: () => patch(opencv, 0xc0, 1, 0xc2), problem: "progressive JPEG; RTP/JPEG carries baseline (SOF0) only" },
    { name: "extended sequential", jpeg: () => patch(opencv, 0xc0, 1, 0xc1), problem: "extended sequential JPEG; RTP/JPEG carries baseline (SOF0) only" },
    { name: "arithmetic", jpeg: () => patch(opencv, 0xc0, 1, 0xc9), problem: "arithmetic-coded JPEG; RTP/JPEG carries baseline (SOF0) only" },
    { name: "one value of a table changed", jpeg: () => patch(opencv, 0xc4, 4 + 17 + 3, 0x04), problem: "optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones" },
    { name: "a table under another id", jpeg: () => patch(opencv, 0xc4, 4, 0x02), problem: "optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones" },
    { name: "a table missing", jpeg: () => edit(opencv, (c, i) => c === 0xc4 && i === 7), problem: "incomplete Huffman tables; RTP/JPEG needs the four standard tables (or none)" },
    { name: "one quantization table", jpeg: () => edit(opencv, (c, i) => c === 0xdb && i === 2), problem: "1 quantization table; RTP/JPEG carries exactly two, 0 (luma) then 1 (chroma)" },
    { name: "two tables with one id", jpeg: () => { const j = edit(opencv, () => false); j[segments(j)[2]!.start + 4] = 0x00; return j; }, problem: "quantization tables 0, 0; RTP/JPEG carries exactly two, 0 (luma) then 1 (chroma)" },
    { name: "chroma quantized with the luma table", jpeg: () => patch(opencv, 0xc0, 15, 0), problem: "quantization tables used Y 0, Cb 0, Cr 1; RTP/JPEG rebuilds Y 0, Cb 1, Cr 1" },
    // SOS from its marker: FF DA, length (2), Ns, then per component: id, DC/AC tables.
    { name: "chroma coded with the luma Huffman tables", jpeg: () => patch(opencv, 0xda, 10, 0x00), problem: "Huffman tables used Y 0/0, Cb 1/1, Cr 0/0 (DC/AC); RTP/JPEG rebuilds Y 0/0, Cb 1/1, Cr 1/1" },
    { name: "a scan of one component", jpeg: () => patch(opencv, 0xda, 4, 1), problem: "a scan of 1 component; RTP/JPEG carries one scan of Y, Cb and Cr" },
    { name: "16-bit quantization table", jpeg: () => patch(opencv, 0xdb, 4, 0x10), problem: "16-bit quantization tables; RTP/JPEG carries 8-bit tables only" },
    { name: "restart markers", jpeg: () => edit(opencv, () => false, [0xff, 0xdd, 0x00, 0x04, 0x00, 0x10]), problem: "restart markers (DRI); ffmpeg's RTP/JPEG does not carry them" },
    { name: "no frame header", jpeg: () => edit(opencv, (c) => c === 0xc0), problem: "no baseline frame header (SOF0) before the scan" },
    { name: "wider than 2040", jpeg: () => withSize(opencv, 2048, 1080), problem: "2048x1080 is larger than RTP/JPEG's 2040x2040" },
    { name: "not a multiple of 8", jpeg: () => withSize(opencv, 642, 360), problem: "642x360 is not a multiple of 8 pixels; RTP/JPEG would show it padded" },
    { name: "not a JPEG", jpeg: () => new TextEncoder().encode("GIF89a....."), problem: "not a JPEG (no FF D8 at the start)" },
    { name: "garbage after SOI", jpeg: () => Uint8Array.of(0xff, 0xd8, 0x00, 0x01, 0x02, 0x03), problem: "malformed JPEG header" },
  ];
  for (const c of CASES) {
    test(`refuses ${c.name}`, () => {
      expect(rtpJpegProblem(c.jpeg())).toBe(c.problem);
    });
  }

  test("every truncated header is refused, never thrown on", () => {
    const headerEnd = segments(opencv).at(-1)!.end;
    for (let n = 0; n < headerEnd; n++) {
      expect(rtpJpegProblem(opencv.subarray(0, n))).not.toBeNull();
    }
  });

  test("1920x1080 and 2040x2040 fit", () => {
    expect(rtpJpegProblem(withSize(opencv, 1920, 1080))).toBeNull();
    expect(rtpJpegProblem(withSize(opencv, 2040, 2040))).toBeNull();
  });
});
