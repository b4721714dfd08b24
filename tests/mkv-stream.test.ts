import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg, resolveFfprobe } from "../lib/media/ffmpeg.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import {
  encodeClusterStart,
  encodeEbmlHeader,
  encodeInfo,
  encodeSegmentStart,
  encodeSimpleBlockHeader,
  encodeStreamHeader,
  encodeTracks,
  encodeVint,
  MkvEncodeError,
  MkvStream,
} from "../lib/mux/mkv-stream.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").replace(/(..)(?!$)/g, "$1 ");
/** Bytes from a spaced hex string; `"abc"` pieces in quotes are ASCII. */
const bytes = (...parts: string[]) =>
  Uint8Array.from(parts.flatMap((p) => (p.startsWith('"') ? [...new TextEncoder().encode(p.slice(1, -1))] : p.split(/\s+/).filter(Boolean).map((h) => parseInt(h, 16)))));

const TRACK = { width: 640, height: 480, frameIntervalMicros: 1_000_000 / 30 };

/** Golden encodings: {name, bytes, encode}, a comment per field. */
const GOLDEN: { name: string; bytes: Uint8Array; encode: () => Uint8Array }[] = [
  {
    name: "EBML header",
    encode: encodeEbmlHeader,
    bytes: bytes(
      "1a 45 df a3", "a3", // EBML, size 35
      "42 86 81 01", // EBMLVersion 1
      "42 f7 81 01", // EBMLReadVersion 1
      "42 f2 81 04", // EBMLMaxIDLength 4
      "42 f3 81 08", // EBMLMaxSizeLength 8
      "42 82 88", '"matroska"', // DocType
      "42 87 81 04", // DocTypeVersion 4
      "42 85 81 02", // DocTypeReadVersion 2
    ),
  },
  {
    name: "Segment start, unknown size",
    encode: encodeSegmentStart,
    bytes: bytes("18 53 80 67", "01 ff ff ff ff ff ff ff"),
  },
  {
    name: "Info without a date",
    encode: () => encodeInfo(),
    bytes: bytes(
      "15 49 a9 66", "99", // Info, size 25
      "2a d7 b1 83 0f 42 40", // TimecodeScale 1 000 000 ns
      "4d 80 86", '"lancam"', // MuxingApp
      "57 41 86", '"lancam"', // WritingApp
    ),
  },
  {
    name: "Info with DateUTC one second after the Matroska epoch",
    encode: () => encodeInfo(978_307_201_000_000),
    bytes: bytes(
      "15 49 a9 66", "a4", // Info, size 36
      "2a d7 b1 83 0f 42 40", // TimecodeScale
      "4d 80 86", '"lancam"', // MuxingApp
      "57 41 86", '"lancam"', // WritingApp
      "44 61 88 00 00 00 00 3b 9a ca 00", // DateUTC 1e9 ns
    ),
  },
  {
    name: "Tracks, 640x480 MJPEG at 30 fps",
    encode: () => encodeTracks(TRACK),
    bytes: bytes(
      "16 54 ae 6b", "aa", // Tracks, size 42
      "ae a8", // TrackEntry, size 40
      "d7 81 01", // TrackNumber 1
      "73 c5 81 01", // TrackUID 1
      "83 81 01", // TrackType video
      "9c 81 00", // FlagLacing off
      "86 87", '"V_MJPEG"', // CodecID
      "23 e3 83 84 01 fc a0 55", // DefaultDuration 33 333 333 ns
      "e0 88", // Video, size 8
      "b0 82 02 80", // PixelWidth 640
      "ba 82 01 e0", // PixelHeight 480
    ),
  },
  {
    name: "Cluster at 0 ms",
    encode: () => encodeClusterStart(0),
    bytes: bytes("1f 43 b6 75", "01 ff ff ff ff ff ff ff", "e7 81 00"), // Cluster (unknown size), Timecode 0
  },
  {
    name: "Cluster at 5000 ms",
    encode: () => encodeClusterStart(5000),
    bytes: bytes("1f 43 b6 75", "01 ff ff ff ff ff ff ff", "e7 82 13 88"), // Timecode 0x1388
  },
  {
    name: "SimpleBlock header, +258 ms, 100-byte payload",
    encode: () => encodeSimpleBlockHeader(258, 100),
    bytes: bytes("a3", "e8", "81", "01 02", "80"), // SimpleBlock, size 104, track 1, timecode, keyframe
  },
  {
    name: "SimpleBlock header, -1 ms, 200-byte payload (2-byte size)",
    encode: () => encodeSimpleBlockHeader(-1, 200),
    bytes: bytes("a3", "40 cc", "81", "ff ff", "80"), // size 204 as a 2-byte VINT
  },
];

describe("mkv-stream encoders", () => {
  for (const g of GOLDEN) {
    test(`golden: ${g.name}`, () => {
      expect(hex(g.encode())).toBe(hex(g.bytes));
    });
  }

  test("stream header is EBML header + Segment start + Info + Tracks", () => {
    const h = encodeStreamHeader(TRACK);
    expect(hex(h)).toBe(hex(Uint8Array.from([...encodeEbmlHeader(), ...encodeSegmentStart(), ...encodeInfo(), ...encodeTracks(TRACK)])));
  });

  test("VINT sizes use the shortest form and skip the all-ones (unknown) value", () => {
    const table: [number, string][] = [
      [0, "80"],
      [1, "81"],
      [126, "fe"],
      [127, "40 7f"], // 0xff would mean "unknown" in one byte
      [16382, "7f fe"],
      [16383, "20 3f ff"],
      [2 ** 21 - 2, "3f ff fe"],
      [2 ** 21 - 1, "10 1f ff ff"],
    ];
    for (const [n, h] of table) expect(`${n}: ${hex(encodeVint(n))}`).toBe(`${n}: ${h}`);
    expect(() => encodeVint(-1)).toThrow(MkvEncodeError);
    expect(() => encodeVint(1.5)).toThrow(MkvEncodeError);
  });

  test("block timecodes outside int16 and bad track values throw", () => {
    expect(() => encodeSimpleBlockHeader(32768, 1)).toThrow(MkvEncodeError);
    expect(() => encodeSimpleBlockHeader(-32769, 1)).toThrow(MkvEncodeError);
    expect(() => encodeTracks({ ...TRACK, width: 0 })).toThrow(MkvEncodeError);
    expect(() => encodeTracks({ ...TRACK, frameIntervalMicros: 0 })).toThrow(MkvEncodeError);
  });
});

describe("MkvStream", () => {
  test("starts a cluster first and then every 5 s, keeps timestamps increasing, and passes the JPEG through", () => {
    const s = new MkvStream(TRACK);
    const jpeg = Uint8Array.of(0xff, 0xd8, 0xff, 0xd9);
    const a = s.frame(0, jpeg);
    expect(a.chunks.map(hex)).toEqual([hex(encodeClusterStart(0)), hex(encodeSimpleBlockHeader(0, 4)), hex(jpeg)]);
    expect(a.chunks[2]).toBe(jpeg); // not copied
    const b = s.frame(4999.4, jpeg);
    expect(b.timeMs).toBe(4999);
    expect(b.chunks.map(hex)).toEqual([hex(encodeSimpleBlockHeader(4999, 4)), hex(jpeg)]);
    expect(s.frame(4999, jpeg).timeMs).toBe(5000); // same time again: moved 1 ms on, so a new cluster
    const c = s.frame(4000, jpeg); // back in time: after the previous
    expect(c.timeMs).toBe(5001);
    expect(c.chunks.map(hex)).toEqual([hex(encodeSimpleBlockHeader(1, 4)), hex(jpeg)]);
    const d = s.frame(20_000, jpeg);
    expect(d.chunks.map(hex)).toEqual([hex(encodeClusterStart(20_000)), hex(encodeSimpleBlockHeader(0, 4)), hex(jpeg)]);
  });
});

describe("MkvStream read by ffprobe and ffmpeg", () => {
  let dir = "";
  let frames: Uint8Array[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "lancam-mkv-"));
    frames = await jpegFrames(40, 320, 240);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // 20 frames at 30 fps, a 0.5 s hole, 10 more, then a 7 s hole (a new cluster), 10 more.
  const timesMs = () => {
    const out: number[] = [];
    for (let i = 0; i < 40; i++) out.push(((i + (i >= 20 ? 15 : 0) + (i >= 30 ? 210 : 0)) * 1000) / 30);
    return out;
  };

  function writeStream(): Uint8Array {
    const s = new MkvStream({ width: 320, height: 240, frameIntervalMicros: 1_000_000 / 30, startedAtMicros: Date.UTC(2025, 0, 2, 3, 4, 5) * 1000 });
    const parts: Uint8Array[] = [s.header()];
    timesMs().forEach((t, i) => parts.push(...s.frame(t, frames[i]!).chunks));
    return Uint8Array.from(parts.flatMap((p) => [...p]));
  }

  test("ffprobe reads every frame of the raw stream at its timestamp", async () => {
    const path = join(dir, "raw.mkv");
    await Bun.write(path, writeStream());
    const proc = Bun.spawnSync([resolveFfprobe(), "-v", "error", "-show_entries", "packet=pts_time,size", "-of", "csv=p=0", path]);
    expect(proc.stderr.toString()).toBe("");
    expect(proc.exitCode).toBe(0);
    const packets = proc.stdout.toString().trim().split("\n").map((l) => l.split(","));
    expect(packets.map((p) => Number(p[0]))).toEqual(timesMs().map((t) => Math.round(t) / 1000));
    expect(packets.map((p) => Number(p[1]))).toEqual(frames.map((f) => f.length));
    const probe = await probeVideo(path);
    expect([probe.codec, probe.width, probe.height, probe.frames]).toEqual(["mjpeg", 320, 240, 40]);
    expect(probe.format).toContain("matroska");
    const date = Bun.spawnSync([resolveFfprobe(), "-v", "error", "-show_entries", "format_tags=creation_time", "-of", "csv=p=0", path]);
    expect(date.stdout.toString().trim()).toBe("2025-01-02T03:04:05.000000Z"); // DateUTC
  });

  test("piped through ffmpeg -c copy it becomes a file with the true duration", async () => {
    const out = join(dir, "copied.mkv");
    const ffmpeg = Bun.spawn([resolveFfmpeg().path, "-v", "error", "-f", "matroska", "-i", "pipe:0", "-c", "copy", "-f", "matroska", "-y", out], {
      stdin: "pipe",
      stderr: "pipe",
    });
    ffmpeg.stdin.write(writeStream());
    await ffmpeg.stdin.end();
    expect(await ffmpeg.exited).toBe(0);
    expect(await new Response(ffmpeg.stderr).text()).toBe("");
    const probe = await probeVideo(out);
    const t = timesMs();
    const covered = (t.at(-1)! - t[0]! + 1000 / 30) / 1000;
    expect(probe.frames).toBe(40);
    expect(Math.abs(probe.durationSec! - covered)).toBeLessThanOrEqual(1 / 30);
  });
});
