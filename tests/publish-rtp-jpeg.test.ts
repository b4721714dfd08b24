import { beforeAll, describe, expect, test } from "bun:test";
import { renderTestFrame } from "../lib/native/cv.ts";
import { rtpJpegProblem } from "../lib/publish/rtp-jpeg.ts";
import { resolveFfmpeg } from "../lib/record/ffmpeg.ts";
import { withSize } from "./helpers/jpeg-bytes.ts";
import { splitJpegs } from "./helpers/jpeg-frames.ts";

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

/** JPEGs from ffmpeg's own encoder, which optimizes Huffman tables unless told not to. */
function ffmpegJpeg(pixFmt: string, huffman: "default" | "optimal"): Uint8Array {
  const p = Bun.spawnSync([
    resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
    "-frames:v", "3", "-pix_fmt", pixFmt, "-c:v", "mjpeg", "-huffman", huffman, "-f", "image2pipe", "pipe:1",
  ]);
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return splitJpegs(new Uint8Array(p.stdout))[0]!;
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

/**
 * Sends one JPEG through ffmpeg's RTP muxer to a local UDP port; how many datagrams arrived
 * and what ffmpeg said. A frame it cannot carry makes an error line and no datagram.
 */
async function throughFfmpegRtp(jpeg: Uint8Array): Promise<{ datagrams: number; stderr: string }> {
  let datagrams = 0;
  const sock = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: () => void datagrams++ } });
  try {
    const proc = Bun.spawn([
      resolveFfmpeg().path, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "mjpeg", "-i", "pipe:0",
      "-c", "copy", "-f", "rtp", `rtp://127.0.0.1:${sock.port}`,
    ], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
    proc.stdin.write(jpeg);
    proc.stdin.write(jpeg);
    await proc.stdin.end();
    const [stderr] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    await Bun.sleep(100); // loopback datagrams are in flight for microseconds
    return { datagrams, stderr };
  } finally {
    sock.close();
  }
}

test("the check agrees with ffmpeg's RTP/JPEG packetizer on OpenCV's and on ffmpeg's own encodings", async () => {
  const samples: { name: string; jpeg: Uint8Array; problem: string | null }[] = [
    { name: "OpenCV 4:2:0", jpeg: opencv, problem: null },
    // ffmpeg writes 4:2:2 as Y 2x2 with chroma 1x2, which its own packetizer refuses.
    { name: "ffmpeg 4:2:2, standard tables", jpeg: ffmpegJpeg("yuvj422p", "default"), problem: "chroma subsampling 4:2:2 (Y 2x2, Cb 1x2, Cr 1x2); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only" },
    { name: "ffmpeg 4:2:0, standard tables", jpeg: ffmpegJpeg("yuvj420p", "default"), problem: null },
    { name: "ffmpeg 4:2:0, optimized tables (its default)", jpeg: ffmpegJpeg("yuvj420p", "optimal"), problem: "optimized (non-standard) Huffman tables; RTP/JPEG needs the standard ones" },
    { name: "ffmpeg 4:4:4", jpeg: ffmpegJpeg("yuvj444p", "default"), problem: "chroma subsampling 4:4:4 (Y 1x2, Cb 1x2, Cr 1x2); RTP/JPEG carries 4:2:0 or 4:2:2 with Y 2x2 or 2x1 and Cb, Cr 1x1 only" },
  ];
  for (const s of samples) {
    expect({ name: s.name, problem: rtpJpegProblem(s.jpeg) }).toEqual({ name: s.name, problem: s.problem });
    const { datagrams, stderr } = await throughFfmpegRtp(s.jpeg);
    if (s.problem === null) {
      expect({ name: s.name, stderr, sent: datagrams > 0 }).toEqual({ name: s.name, stderr: "", sent: true });
    } else {
      expect({ name: s.name, sent: datagrams > 0 }).toEqual({ name: s.name, sent: false });
      expect(stderr).toMatch(/Unsupported pixel format|standard Huffman tables|chroma blocks/);
    }
  }
}, 30_000);
