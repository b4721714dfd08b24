import { expect, test } from "bun:test";
import { renderTestFrame } from "../lib/native/cv.ts";
import { FrameStream } from "../lib/publish/frame-stream.ts";
import { TS_PACKET, type TsPiece, TsSplitter, TsSyncError } from "../lib/mux/mpegts.ts";
import { encoderArgs } from "../lib/publish/publish-process.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";

/** One TS packet: header, optional adaptation field (random access flag), payload padded with 0xFF. */
function packet(pid: number, opts: { pusi?: boolean; rai?: boolean; payload?: number[] } = {}): Uint8Array {
  const p = new Uint8Array(TS_PACKET).fill(0xff);
  p[0] = 0x47; // sync
  p[1] = (opts.pusi ? 0x40 : 0) | (pid >> 8); // PUSI, PID high bits
  p[2] = pid & 0xff; // PID low bits
  let at = 4;
  if (opts.rai) {
    p[3] = 0x30; // adaptation field and payload
    p[4] = 1; // adaptation field length
    p[5] = 0x40; // random access indicator
    at = 6;
  } else {
    p[3] = 0x10; // payload only
  }
  p.set(opts.payload ?? [], at);
  return p;
}

const PAT = packet(0x0000, { pusi: true, payload: [0x00, 0x00, 0xb0] }); // pointer field, table 0 (PAT)
const PMT = packet(0x1000, { pusi: true, payload: [0x00, 0x02, 0xb0] }); // pointer field, table 2 (PMT)
const SDT = packet(0x0011, { pusi: true, payload: [0x00, 0x42, 0xf0] }); // pointer field, table 0x42 (SDT)
const KEY = packet(0x0100, { pusi: true, rai: true, payload: [0x00, 0x00, 0x01, 0xe0] }); // PES start, keyframe
const PES = packet(0x0100, { pusi: true, payload: [0x00, 0x00, 0x01, 0xe0] }); // PES start
const DATA = (n: number) => packet(0x0100, { payload: [n] }); // PES continuation
const NULL = packet(0x1fff); // stuffing

const join = (...ps: Uint8Array[]) => {
  const out = new Uint8Array(ps.length * TS_PACKET);
  ps.forEach((p, i) => out.set(p, i * TS_PACKET));
  return out;
};

/** Frames as the splitter reports them: their bytes (pieces joined) and whether each is a keyframe. */
function frames(pieces: TsPiece[]): { key: boolean; bytes: Uint8Array }[] {
  const out: { key: boolean; parts: Uint8Array[] }[] = [];
  for (const p of pieces) {
    if (p.start) out.push({ key: p.key, parts: [p.bytes] });
    else out.at(-1)!.parts.push(p.bytes);
  }
  return out.map((f) => ({ key: f.key, bytes: Buffer.concat(f.parts) }));
}

const STREAM = join(SDT, PAT, PMT, KEY, DATA(1), DATA(2), PAT, PMT, PES, DATA(3), NULL, PAT, PMT, PES, DATA(4), PAT, PMT, KEY);

test("a frame begins at the tables before its PES; the PES start says whether it is a keyframe", () => {
  const pieces = new TsSplitter().push(STREAM);
  expect(pieces.map((p) => [p.start, p.key, p.bytes.length / TS_PACKET])).toEqual([
    [true, true, 4], // SDT PAT PMT PES(key)
    [false, false, 2], // two continuation packets, in one piece
    [true, false, 3], // PAT PMT PES
    [false, false, 2], // continuation, stuffing
    [true, false, 3],
    [false, false, 1],
    [true, true, 3],
  ]);
  expect(Buffer.concat(pieces.map((p) => p.bytes))).toEqual(Buffer.from(STREAM));
});

test("chunks of any size give the same frames", () => {
  const whole = frames(new TsSplitter().push(STREAM));
  for (const size of [1, 7, 187, 188, 189, 376, 1000]) {
    const s = new TsSplitter();
    const pieces: TsPiece[] = [];
    for (let at = 0; at < STREAM.length; at += size) pieces.push(...s.push(STREAM.subarray(at, at + size)));
    expect({ size, frames: frames(pieces) }).toEqual({ size, frames: whole });
  }
});

test("a stream that begins mid-frame is read from the next frame's tables", () => {
  const pieces = new TsSplitter().push(join(DATA(9), DATA(9), PAT, PMT, KEY, DATA(1)));
  expect(frames(pieces).map((f) => [f.key, f.bytes.length / TS_PACKET])).toEqual([[true, 4]]);
});

test("a stream out of sync is an error naming the byte, never a silent guess", () => {
  const bad = join(PAT, PMT, KEY);
  bad[TS_PACKET] = 0x48;
  expect(() => new TsSplitter().push(bad)).toThrow(new TsSyncError("expected a TS packet (0x47), found 0x48"));
  expect(() => new TsSplitter().push(Uint8Array.of(0x47, 0, 0, 0x10, ...new Uint8Array(184), 0x12, 0x34)))
    .toThrow(new TsSyncError("expected a TS packet (0x47) at stream byte 188, found 0x12"));
});

test("the encoder's real output: one frame per input frame, a keyframe every fps frames, every byte kept", async () => {
  const fps = 10;
  const count = 25;
  const proc = Bun.spawn(encoderArgs(resolveFfmpeg().path, fps, 320, 240), { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const jpegs = await Promise.all(Array.from({ length: count }, (_, n) => renderTestFrame(320, 240, n, `${n}`, 80)));
  const first = { seq: 0, capturedAt: 1_000_000, width: 320, height: 240, jpeg: new Uint8Array(jpegs[0]!) };
  const stream = new FrameStream(first, fps);
  proc.stdin.write(stream.header());
  jpegs.forEach((jpeg, n) => {
    for (const c of stream.chunks({ ...first, seq: n, capturedAt: 1_000_000 + n * 100_000, jpeg: new Uint8Array(jpeg) })) proc.stdin.write(c);
  });
  await proc.stdin.end();
  const [ts, err, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  const s = new TsSplitter();
  const pieces: TsPiece[] = [];
  // Arbitrary chunks, as a pipe delivers them.
  for (let at = 0; at < ts.length; at += 4093) pieces.push(...s.push(ts.subarray(at, at + 4093)));
  const got = frames(pieces);
  expect(got).toHaveLength(count);
  expect(got.flatMap((f, i) => (f.key ? [i] : []))).toEqual([0, 10, 20]);
  expect(got.reduce((a, f) => a + f.bytes.length, 0)).toBe(ts.length);
}, 20_000);
