import { describe, expect, test } from "bun:test";
import { DEFAULT_AUDIO_FORMAT, type AudioFormat, type AudioPacket } from "../lib/wire/audio-packet.ts";
import { opusPacketSamples } from "../lib/wire/opus-toc.ts";
import { resolveFfmpeg, resolveFfprobe } from "../lib/media/ffmpeg.ts";
import { silentLogger } from "../lib/log/logger.ts";
import {
  AUDIO_TRACK_NUMBER,
  encodeAudioTrackEntry,
  encodeClusterStart,
  encodeSimpleBlockHeader,
  MkvEncodeError,
  MkvStream,
} from "../lib/mux/mkv-stream.ts";
import { encodeOggPage, OGG_BOS } from "../lib/mux/ogg.ts";
import { opusHead, opusTags } from "../lib/mux/ogg-opus.ts";
import { opusConcealment, opusSilence } from "../lib/mux/opus-silence.ts";
import { AUDIO_WAIT_MICROS, type AudioTarget, AudioRouter, MAX_HELD_AUDIO, PREROLL_MICROS } from "../lib/record/audio-router.ts";
import { RecorderSink, type Writer } from "../lib/record/recorder-sink.ts";
import {
  type AudioBlock, LOOKAHEAD_MICROS, MAX_CONCEALED_PACKETS, MAX_REPEATED_PACKETS, PREROLL_SAMPLES, SEGMENT_PRE_SKIP, SegmentAudio,
} from "../lib/record/segment-audio.ts";
import { segmentArgs } from "../lib/record/segment-process.ts";
import { SegmentWriter } from "../lib/record/segment-writer.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-rec-audio-units-");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").replace(/(..)(?!$)/g, "$1 ");

/** A made-up Opus packet: CELT FB 20 ms (TOC F8) and `n` bytes of payload. */
const pkt = (seq: number, capturedAt: number, n = 3): AudioPacket => ({ seq, capturedAt, samples: 960, data: Uint8Array.from([0xf8, ...new Array<number>(n).fill(seq & 0xff)]) });

/** Decodes Opus packets, each on its own Ogg page, with ffmpeg: the s16 samples it plays. */
async function decodeWithFfmpeg(packets: Uint8Array[], channels: 1 | 2): Promise<Int16Array> {
  const pages = [
    encodeOggPage({ headerType: OGG_BOS, granule: 0n, serial: 1, pageSeq: 0, packets: [opusHead({ channels }, 0)] }),
    encodeOggPage({ headerType: 0, granule: 0n, serial: 1, pageSeq: 1, packets: [opusTags()] }),
  ];
  let granule = 0n;
  packets.forEach((p, i) => {
    granule += BigInt(opusPacketSamples(p));
    pages.push(encodeOggPage({ headerType: 0, granule, serial: 1, pageSeq: 2 + i, packets: [p] }));
  });
  const proc = Bun.spawn([resolveFfmpeg().path, "-v", "error", "-f", "ogg", "-i", "pipe:0", "-f", "s16le", "pipe:1"], { stdin: new Blob(pages), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  expect(`${code} ${err}`).toBe("0 ");
  return new Int16Array(out.buffer, out.byteOffset, out.byteLength >> 1);
}

describe("opus-silence", () => {
  test("golden: 20 ms silence packets, then one code 3 packet of 2.5 ms frames for the rest", () => {
    expect(opusSilence(960 * 2 + 360, 1).map((p) => `${p.samples}: ${hex(p.data)}`)).toEqual([
      "960: f8 ff fe", // CELT FB 20 ms, mono, one frame: silence flag set
      "960: f8 ff fe",
      "360: e3 03 ff fe ff fe ff fe", // CELT FB 2.5 ms, code 3, 3 frames of equal size, each silent
    ]);
    expect(opusSilence(960 + 120, 2).map((p) => `${p.samples}: ${hex(p.data)}`)).toEqual(["960: fc ff fe", "120: e7 01 ff fe"]); // stereo bit set
    expect(opusSilence(119, 1)).toEqual([]); // below the 2.5 ms grid
    for (const p of opusSilence(960 * 3 + 840, 1)) expect(opusPacketSamples(p.data)).toBe(p.samples);
  });

  test("golden: concealment is the lost packets' configuration with no frame data, code 0", () => {
    // Previous packet: SILK WB 20 ms (config 9), stereo, code 1 (two frames): a lost 40 ms is two empty 20 ms frames.
    const toc = (9 << 3) | 0x04 | 0x01;
    expect(opusConcealment(toc, 1920, 2).map((p) => `${p.samples}: ${hex(p.data)}`)).toEqual(["960: 4c", "960: 4c"]);
    // What a frame cannot cover becomes silence.
    expect(opusConcealment(0xf8, 960 + 240, 1).map((p) => `${p.samples}: ${hex(p.data)}`)).toEqual(["960: f8", "240: e3 02 ff fe ff fe"]);
  });

  test("ffmpeg decodes silence and concealment to exactly their length, all zero", async () => {
    for (const channels of [1, 2] as const) {
      const packets = [...opusSilence(960 * 2 + 600, channels), ...opusConcealment(channels === 1 ? 0xf8 : 0xfc, 960 * 3, channels)].map((p) => p.data);
      const pcm = await decodeWithFfmpeg(packets, channels);
      expect(pcm.length).toBe((960 * 5 + 600) * channels);
      expect(pcm.every((s) => s === 0)).toBe(true);
    }
  }, 20_000);
});

describe("mkv-stream audio track", () => {
  test("golden: the A_OPUS track entry", () => {
    const head = opusHead({ channels: 1 }, SEGMENT_PRE_SKIP);
    expect(hex(encodeAudioTrackEntry({ channels: 1, opusHead: head }))).toBe(hex(Uint8Array.from([
      0xae, 0xc1, // TrackEntry, size 65
      0xd7, 0x81, 0x02, // TrackNumber 2
      0x73, 0xc5, 0x81, 0x02, // TrackUID 2
      0x83, 0x81, 0x02, // TrackType audio
      0x9c, 0x81, 0x00, // FlagLacing off
      0x86, 0x86, ...new TextEncoder().encode("A_OPUS"), // CodecID
      0x63, 0xa2, 0x93, ...head, // CodecPrivate: the 19-byte OpusHead
      0x56, 0xbb, 0x84, 0x04, 0xc4, 0xb4, 0x00, // SeekPreRoll 80 000 000 ns
      0xe1, 0x8d, // Audio, size 13
      0xb5, 0x88, 0x40, 0xe7, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, // SamplingFrequency 48000.0 (float64)
      0x9f, 0x81, 0x01, // Channels 1
    ])));
    // The OpusHead's pre-skip, little-endian at byte 10: the encoder's 312 and the 3840 of pre-roll.
    expect([head[10]! | (head[11]! << 8), SEGMENT_PRE_SKIP]).toEqual([4152, 312 + PREROLL_SAMPLES]);
    expect(() => encodeAudioTrackEntry({ channels: 3 as 1, opusHead: head })).toThrow(MkvEncodeError);
    expect(() => encodeAudioTrackEntry({ channels: 1, opusHead: head.subarray(0, 18) })).toThrow(MkvEncodeError);
  });

  test("audio blocks go on track 2; a block earlier than its cluster starts a new one; audio never goes back", () => {
    const s = new MkvStream({ width: 64, height: 48, frameIntervalMicros: 33_333 }, { channels: 1, opusHead: opusHead({ channels: 1 }) });
    const jpeg = Uint8Array.of(0xff, 0xd8, 0xff, 0xd9);
    const opus = Uint8Array.of(0xf8, 0xff, 0xfe);
    expect(s.frame(100, jpeg).chunks.map(hex)).toEqual([hex(encodeClusterStart(100)), hex(encodeSimpleBlockHeader(0, 4)), hex(jpeg)]);
    const late = s.audio(40, opus); // audio that lags the video
    expect(late.chunks.map(hex)).toEqual([hex(encodeClusterStart(40)), hex(encodeSimpleBlockHeader(0, 3, AUDIO_TRACK_NUMBER)), hex(opus)]);
    expect(late.chunks[1]![2]).toBe(0x82);
    expect(s.audio(59.6, opus).chunks.map(hex)).toEqual([hex(encodeSimpleBlockHeader(20, 3, AUDIO_TRACK_NUMBER)), hex(opus)]);
    expect(s.audio(50, opus).timeMs).toBe(60); // not before the previous audio block
    expect(s.frame(133.3, jpeg).chunks.map(hex)).toEqual([hex(encodeSimpleBlockHeader(93, 4)), hex(jpeg)]); // in the cluster at 40
    expect(() => new MkvStream({ width: 64, height: 48, frameIntervalMicros: 33_333 }).audio(0, opus)).toThrow(MkvEncodeError);
    expect(() => encodeSimpleBlockHeader(0, 1, 127)).toThrow(MkvEncodeError);
  });

  test("ffprobe reads both tracks of a stream", async () => {
    const s = new MkvStream({ width: 64, height: 48, frameIntervalMicros: 40_000 }, { channels: 1, opusHead: opusHead({ channels: 1 }) });
    const jpeg = await new Response(Bun.spawn([resolveFfmpeg().path, "-v", "error", "-f", "lavfi", "-i", "color=gray:s=64x48", "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"], { stdout: "pipe" }).stdout).bytes();
    const parts = [s.header()];
    for (let i = 0; i < 10; i++) {
      parts.push(...s.frame(i * 40, jpeg).chunks);
      opusSilence(1920, 1).forEach((p, k) => parts.push(...s.audio(i * 40 + k * 20, p.data).chunks));
    }
    const path = `${tempDir()}/both.mkv`;
    await Bun.write(path, new Blob(parts));
    const probe = Bun.spawnSync([resolveFfprobe(), "-v", "error", "-show_entries", "stream=codec_type,codec_name,channels,sample_rate", "-of", "csv=p=0", path]);
    expect(probe.stderr.toString()).toBe("");
    expect(probe.stdout.toString().trim().split("\n")).toEqual(["mjpeg,video", "opus,audio,48000,1"]);
  });
});

describe("SegmentAudio", () => {
  const S = 1_000_000_000_000;
  const fmt = DEFAULT_AUDIO_FORMAT;
  const at = (blocks: AudioBlock[]) => blocks.map((b) => `${b.kind}@${b.at}+${b.samples}`);

  test("the first packet is placed at its capture time after silence; the next ones follow on", () => {
    const a = new SegmentAudio(S, fmt);
    // 7 ms after the start: 336 samples, to the nearest 2.5 ms of silence (360).
    expect(at(a.push(pkt(10, S + 7_000), 960))).toEqual([
      "silence@0+960", "silence@960+960", "silence@1920+960", "silence@2880+960", // the pre-roll, silent: nothing came before
      "silence@3840+360", // 7 ms to the nearest 2.5 ms
      "audio@4200+960",
    ]);
    // Jitter of a few ms does not move a packet that follows on.
    expect(at(a.push(pkt(11, S + 29_000), 960))).toEqual(["audio@5160+960"]);
    expect(a.counts).toEqual({ packets: 2, preroll: 0, late: 0, concealed: 0, silenceSamples: 360, resyncs: 0 });
    expect(a.endAt).toBe(S + ((6120 - PREROLL_SAMPLES) * 1e6) / 48_000);
  });

  test("lost packets (a gap in numbers that the capture times agree with) are concealed", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0, S), 960);
    const out = a.push(pkt(3, S + 60_000), 960);
    expect(at(out)).toEqual(["concealment@4800+960", "concealment@5760+960", "audio@6720+960"]);
    // Stand-ins: the packet before, and the one after (its CELT frame continues the sound).
    expect(out.map((b) => hex(b.data))).toEqual(["f8 00 00 00", "f8 03 03 03", "f8 03 03 03"]);
    expect(a.counts.concealed).toBe(2);
    // A gap too long to conceal is placed by capture time, with silence.
    const b = new SegmentAudio(S, fmt);
    b.push(pkt(0, S), 960);
    const far = b.push(pkt(MAX_CONCEALED_PACKETS + 2, S + (MAX_CONCEALED_PACKETS + 2) * 20_000), 960);
    expect(far.filter((x) => x.kind === "concealment")).toEqual([]);
    expect(far.at(-1)!.at).toBe(b.positionOf(S + (MAX_CONCEALED_PACKETS + 2) * 20_000));
    expect([b.counts.resyncs, b.counts.concealed]).toEqual([1, 0]);
  });

  test("stand-ins: the packet after when it continues the sound, else the one before; a long run is left to the decoder in the middle", () => {
    /** CELT frames: 00 continues the sound (inter), 7e starts a new one (transient, intra). */
    const inter = (seq: number, t: number): AudioPacket => ({ seq, capturedAt: t, samples: 960, data: Uint8Array.of(0xf8, 0x00, 0, 0, seq & 0xff) });
    const intra = (seq: number, t: number): AudioPacket => ({ seq, capturedAt: t, samples: 960, data: Uint8Array.of(0xf8, 0x7e, 0, 0, seq & 0xff) });
    const run = (next: (seq: number, t: number) => AudioPacket, lost: number) => {
      const a = new SegmentAudio(S, fmt);
      a.push(inter(0, S), 960);
      const out = a.push(next(lost + 1, S + (lost + 1) * 20_000), 960);
      expect(a.counts.concealed).toBe(lost);
      return out.filter((b) => b.kind === "concealment").map((b) => hex(b.data));
    };
    expect(run(inter, 1)).toEqual(["f8 00 00 00 02"]); // the packet after: the decoder reaches the state it expects
    expect(run(intra, 1)).toEqual(["f8 00 00 00 00"]); // a new sound is not played a packet early
    expect(run(inter, 2)).toEqual(["f8 00 00 00 00", "f8 00 00 00 03"]);
    expect(run(intra, 2)).toEqual(["f8 00 00 00 00", "f8 00 00 00 00"]);
    expect(run(inter, 4)).toEqual(["f8 00 00 00 00", "f8 00 00 00 00", "f8", "f8 00 00 00 05"]); // at most two repeats, then a 0-byte frame
    expect(MAX_REPEATED_PACKETS).toBe(2);
  });

  test("concealBefore: packets lost just before the end, told by the next segment's first packet, get stand-ins up to the end's sound", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0, S), 960);
    a.push(pkt(1, S + 20_000), 960);
    const end = S + 70_000; // packets 2 and 3 (40 and 60 ms) are this segment's, 4 (80 ms) is not
    expect(at(a.concealBefore(pkt(5, S + 100_000), 960, end))).toEqual(["concealment@5760+960", "concealment@6720+960"]);
    expect(a.counts.concealed).toBe(2);
    expect(a.concealBefore(pkt(6, S + 120_000), 960, end)).toEqual([]); // once
    // Sound captured up to the end is in the track (its look-ahead too): nothing to fill.
    expect(a.fillTo(end, false)).toEqual([]);
    const b = new SegmentAudio(S, fmt);
    b.push(pkt(0, S), 960);
    // The next one came after a gap its capture time does not agree with: not a loss.
    expect(b.concealBefore(pkt(3, S + 200_000), 960, S + 100_000)).toEqual([]);
  });

  test("a tail packet (the next segment's, its sound beginning before the end) is placed but not counted", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0, S), 960);
    expect(at(a.push(pkt(1, S + 20_000), 960, "tail"))).toEqual(["audio@4800+960"]);
    expect(a.push(pkt(1, S + 20_000), 960, "tail")).toEqual([]);
    expect([a.counts.packets, a.counts.late]).toEqual([1, 0]);
  });

  test("numbers wrap at 2^32", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0xffffffff, S), 960);
    expect(at(a.push(pkt(1, S + 40_000), 960))).toEqual(["concealment@4800+960", "audio@5760+960"]);
  });

  test("duplicates, older packets and packets behind the track are dropped as late", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(5, S), 960);
    a.push(pkt(6, S + 20_000), 960);
    expect(a.push(pkt(6, S + 20_000), 960)).toEqual([]);
    expect(a.push(pkt(4, S - 20_000), 960)).toEqual([]);
    // A new number, but captured where the track already is (a clock step back by 60 ms).
    expect(a.push(pkt(7, S - 20_000), 960)).toEqual([]);
    expect(a.counts.late).toBe(3);
    // The next one follows it: no loss is taken for one.
    expect(at(a.push(pkt(8, S + 40_000), 960))).toEqual(["audio@5760+960"]);
  });

  test("capture times that drift by more than a packet put the track right with silence", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0, S), 960);
    expect(at(a.push(pkt(1, S + 20_000 + 50_000), 960))).toEqual(["silence@4800+960", "silence@5760+960", "silence@6720+480", "audio@7200+960"]);
    expect(a.counts.resyncs).toBe(1);
  });

  test("fillTo writes silence up to a capture time (whole packets for an outage); the next packet goes by its capture time", () => {
    const a = new SegmentAudio(S, fmt);
    a.push(pkt(0, S), 960);
    expect(at(a.fillTo(S + 75_000, true))).toEqual(["silence@4800+960", "silence@5760+960"]);
    expect(a.fillTo(S + 75_000, true)).toEqual([]);
    // 15 ms, and the look-ahead (312 samples) the sound captured before 75 ms reaches beyond it, to the nearest 2.5 ms.
    expect(at(a.fillTo(S + 75_000, false))).toEqual(["silence@6720+960", "silence@7680+120"]);
    expect(a.counts.silenceSamples).toBe(3000);
    const next = a.push(pkt(9, S + 180_000), 960);
    expect(at(next).slice(-2)).toEqual(["silence@11640+840", `audio@${PREROLL_SAMPLES + 180 * 48}+960`]);
    expect(next.reduce((n, b) => n + (b.kind === "silence" ? b.samples : 0), 0)).toBe(PREROLL_SAMPLES + 180 * 48 - 7800);
  });

  test("pre-roll: packets of the 80 ms before the start go before it, uncounted; only before the segment's own", () => {
    const a = new SegmentAudio(S, fmt);
    expect(a.preroll(pkt(0, S - 93_000), 960)).toEqual([]); // would start before the track
    expect(at(a.preroll(pkt(1, S - 73_000), 960))).toEqual(["silence@0+360", "preroll@360+960"]);
    a.preroll(pkt(2, S - 53_000), 960);
    a.preroll(pkt(3, S - 33_000), 960);
    expect(at(a.preroll(pkt(4, S - 13_000), 960))).toEqual(["preroll@3240+960"]); // spans the start
    expect(a.preroll(pkt(5, S + 7_000), 960)).toEqual([]); // the segment's own: not pre-roll
    expect(at(a.push(pkt(5, S + 7_000), 960))).toEqual(["audio@4200+960"]);
    expect(a.preroll(pkt(4, S - 13_000), 960)).toEqual([]);
    expect(a.counts).toEqual({ packets: 1, preroll: 4, late: 0, concealed: 0, silenceSamples: 0, resyncs: 0 });
  });
});

/** A segment that notes what the router gives it. */
class FakeSegment implements AudioTarget {
  readonly got: string[] = [];
  constructor(readonly startedAt: number) {}
  writeAudio(p: AudioPacket): void {
    this.got.push(`a${p.seq}`);
  }
  prerollAudio(p: AudioPacket): void {
    this.got.push(`p${p.seq}`);
  }
  fillAudio(t: number, whole: boolean): void {
    this.got.push(`${whole ? "fill" : "end"}@${t}`);
  }
}

describe("AudioRouter", () => {
  const S = 1_000_000_000_000;
  const router = () => new AudioRouter<FakeSegment, string>();
  const ev = (s: FakeSegment) => s.got.filter((g) => !g.startsWith("fill"));

  test("packets ahead of the video wait for a frame at or past them; packets before the first frame are dropped (some as pre-roll)", () => {
    const r = router();
    for (let i = 0; i < 6; i++) r.audio(pkt(i, S - 100_000 + i * 20_000)); // S-100 ms .. S
    expect(r.held).toBe(6);
    const seg = new FakeSegment(S);
    r.begin(seg);
    r.video(S);
    expect(ev(seg)).toEqual(["p1", "p2", "p3", "p4"]); // S-80 .. S-20 ms: pre-roll; S itself waits for a later frame
    expect([r.held, r.dropped]).toEqual([1, 5]);
    r.video(S + 33_333);
    expect(ev(seg).at(-1)).toBe("a5");
    r.audio(pkt(6, S + 20_000)); // behind the video: at once
    expect(ev(seg).at(-1)).toBe("a6");
  });

  test("at a boundary each packet goes to one segment by capture time; the old one takes late audio until it is complete", () => {
    const r = router();
    const a = new FakeSegment(S);
    r.begin(a);
    r.video(S + 1_966_667);
    const B = S + 2_000_000;
    expect(r.endSegment(B, "length")).toEqual([]);
    const b = new FakeSegment(B);
    r.begin(b);
    expect(r.video(B)).toEqual([]);
    expect(r.ending).toBe(a);
    // Late audio: the packets before the boundary arrive after it.
    expect(r.audio(pkt(1, B - 27_000))).toEqual([]);
    expect(r.audio(pkt(2, B - 7_000))).toEqual([]);
    const done = r.audio(pkt(3, B + 13_000)); // the first at or after the end: the old segment is complete
    expect(done.map((d) => [d.seg === a, d.end, d.reason])).toEqual([[true, B, "length"]]);
    expect(ev(a)).toEqual(["a1", "a2", `end@${B}`]);
    expect(r.ending).toBe(null);
    // The packet that spans the boundary is the old segment's, and the new one's pre-roll too.
    r.video(B + 33_333);
    expect(ev(b)).toEqual(["p1", "p2", "a3"]);
  });

  test("a segment whose audio never comes is done once the video is AUDIO_WAIT past its end; the open one is filled as the video goes", () => {
    const r = router();
    const a = new FakeSegment(S);
    r.begin(a);
    r.video(S + 1_000_000);
    expect(a.got).toEqual([`fill@${S + 1_000_000 - AUDIO_WAIT_MICROS}`]);
    r.endSegment(S + 1_033_333, "length");
    const b = new FakeSegment(S + 1_033_333);
    r.begin(b);
    expect(r.video(S + 1_033_333 + AUDIO_WAIT_MICROS - 1)).toEqual([]);
    expect(r.video(S + 1_033_333 + AUDIO_WAIT_MICROS).map((d) => d.seg)).toEqual([a]);
    expect(a.got.at(-1)).toBe(`end@${S + 1_033_333}`);
    // A second boundary while one still waits finishes the waiting one at once.
    const c = new FakeSegment(S + 3_000_000);
    r.endSegment(S + 3_000_000, "length");
    r.begin(c);
    const d = new FakeSegment(S + 5_000_000);
    expect(r.endSegment(S + 5_000_000, "length").map((x) => x.seg)).toEqual([b]);
    r.begin(d);
    expect(r.ending).toBe(c);
  });

  test("holding is bounded, and close fills and returns the segments, oldest first, dropping what is past the video", () => {
    const r = router();
    const a = new FakeSegment(S);
    r.begin(a);
    r.video(S);
    for (let i = 0; i < MAX_HELD_AUDIO + 5; i++) r.audio(pkt(i, S + i * 20_000));
    expect([r.held, r.dropped]).toEqual([MAX_HELD_AUDIO, 5]);
    const done = r.close(S + 1_000_000, "close");
    expect(done.map((d) => [d.seg === a, d.end])).toEqual([[true, S + 1_000_000]]);
    expect(ev(a).length).toBe(50 - 5 + 1); // the packets before 1 s, less the 5 dropped, then the end fill
    expect(r.dropped).toBe(MAX_HELD_AUDIO + 5 - 45);
    expect(r.held).toBe(0);
  });

  test("a packet whose sound begins before a segment's end goes to its tail too; packets lost before the end are concealed there; held packets go in capture order", () => {
    class TailSegment extends FakeSegment {
      tailAudio(p: AudioPacket): void {
        this.got.push(`t${p.seq}`);
      }
      concealBefore(p: AudioPacket, end: number): void {
        this.got.push(`c${p.seq}@${end}`);
      }
    }
    const r = new AudioRouter<TailSegment, string>();
    const a = new TailSegment(S);
    r.begin(a);
    r.video(S + 1_960_000);
    const B = S + 2_000_000;
    // Audio ahead of the video: held; 3 and 4 arrive the wrong way round; 2 is lost.
    for (const [seq, t] of [[1, B - 37_000], [4, B + 23_000], [3, B + 3_000], [5, B + 43_000]] as const) r.audio(pkt(seq, t));
    r.endSegment(B, "length");
    const b = new TailSegment(B);
    r.begin(b);
    // The old one is complete (audio came past its end and look-ahead): 3 starts 3 ms after the end, within the look-ahead.
    expect(r.video(B).map((d) => d.seg)).toEqual([a]);
    expect(3_000).toBeLessThan(LOOKAHEAD_MICROS);
    expect(ev(a)).toEqual(["a1", "t3", `c3@${B}`, `end@${B}`]);
    r.video(B + 60_000);
    expect(ev(b)).toEqual(["p1", "a3", "a4", "a5"]);
  });

  test("a forgotten segment (its ffmpeg died) gets nothing more", () => {
    const r = router();
    const a = new FakeSegment(S);
    r.begin(a);
    r.video(S + 100_000);
    r.forget(a);
    r.audio(pkt(1, S + 20_000));
    expect(ev(a)).toEqual([]);
    expect(r.dropped).toBe(1);
    expect(PREROLL_MICROS).toBe((PREROLL_SAMPLES * 1e6) / 48_000);
  });
});

describe("RecorderSink with audio", () => {
  const frame = (seq: number): Frame => ({ seq, capturedAt: seq * 40_000, width: 64, height: 48, jpeg: Uint8Array.of(seq) });
  function fake(fps: number, withAudio = true) {
    const got: string[] = [];
    const stats = {
      framesIn: 0, framesWritten: 0, repeats: 0, dropped: 0, rejected: 0, segmentsClosed: 0, ffmpegFailures: 0, bytesWritten: 0,
      audioIn: 0, audioWritten: 0, audioDropped: 0, audioRejected: 0, audioConcealed: 0, audioSilenceMs: 0,
    };
    const w: Writer = {
      fps, stats,
      write: (f) => void got.push(`f${f.seq}`),
      whenWritable: () => Bun.sleep(1),
      close: async () => null,
      ...(withAudio ? { writeAudio: (p: AudioPacket) => void got.push(`a${p.seq}@${p.data[1]}`) } : {}),
    };
    return { w, got };
  }

  test("audio held before the writer opens is handed over among the held frames in capture order (copied), then live", async () => {
    const opened: [number, AudioFormat | null][] = [];
    const writers: ReturnType<typeof fake>[] = [];
    const sink = new RecorderSink({ log: silentLogger, open: async (fps, audio) => (opened.push([fps, audio]), writers.push(fake(fps)), writers.at(-1)!.w) });
    const buf = Uint8Array.of(0xf8, 0);
    for (let i = 0; i < 4; i++) {
      sink.write(frame(i));
      buf[1] = i; // the caller reuses its buffer
      sink.writeAudio({ seq: i, capturedAt: i * 40_000 + 10_000, samples: 960, data: buf });
    }
    await sink.onStreamRate(25, DEFAULT_AUDIO_FORMAT);
    sink.writeAudio({ seq: 4, capturedAt: 170_000, samples: 960, data: Uint8Array.of(0xf8, 4) });
    await sink.close();
    expect(opened).toEqual([[25, DEFAULT_AUDIO_FORMAT]]);
    expect(writers[0]!.got).toEqual(["f0", "a0@0", "f1", "a1@1", "f2", "a2@2", "f3", "a3@3", "a4@4"]);
    expect(sink.stats.audioNotRecorded).toBe(0);
  });

  test("another audio format starts a new recording; a writer without audio counts the packets as not recorded", async () => {
    const opened: (AudioFormat | null)[] = [];
    const sink = new RecorderSink({ log: silentLogger, open: async (fps, audio) => (opened.push(audio), fake(fps, audio !== null).w) });
    await sink.onStreamRate(30, null);
    sink.writeAudio({ seq: 0, capturedAt: 0, samples: 960, data: Uint8Array.of(0xf8) });
    await sink.onStreamRate(30, null); // the same: nothing happens
    await sink.onStreamRate(30, { ...DEFAULT_AUDIO_FORMAT, channels: 2 });
    await sink.onStreamRate(30, { ...DEFAULT_AUDIO_FORMAT, channels: 2 });
    await sink.close();
    expect(opened).toEqual([null, { ...DEFAULT_AUDIO_FORMAT, channels: 2 }]);
    expect(sink.stats.audioNotRecorded).toBe(1);
    sink.writeAudio({ seq: 1, capturedAt: 0, samples: 960, data: Uint8Array.of(0xf8) });
    expect(sink.stats.audioNotRecorded).toBe(2);
  });
});

describe("SegmentWriter audio options", () => {
  test("segmentArgs: one Matroska input with both tracks; Opus copied into mkv, PCM into AVI", () => {
    const base = { ffmpeg: "ffmpeg", fps: 30, startedAtMicros: Date.UTC(2025, 0, 2) * 1000, audio: DEFAULT_AUDIO_FORMAT };
    const mkv = segmentArgs({ ...base, container: "mkv", output: "o.mkv" }).join(" ");
    expect(mkv).toContain("-f matroska -i pipe:0 -map 0:v:0 -map 0:a:0 -c:v copy -c:a copy -metadata");
    const avi = segmentArgs({ ...base, container: "avi", output: "o.avi" }).join(" ");
    expect(avi).toContain("-f matroska -i pipe:0 -map 0:v:0 -map 0:a:0 -c:v copy -c:a pcm_s16le -r 30 -metadata");
  });

  test("a bad audio format is refused at open; without one, packets are counted as dropped; bad packets as rejected", async () => {
    const dir = tempDir();
    for (const audio of [{ ...DEFAULT_AUDIO_FORMAT, sampleRate: 44100 }, { ...DEFAULT_AUDIO_FORMAT, channels: 3 }, { ...DEFAULT_AUDIO_FORMAT, frameMs: 7 }]) {
      await expect(SegmentWriter.open({ dir, segmentSeconds: 2, container: "mkv", fps: 30, log: silentLogger, audio: audio as AudioFormat })).rejects.toThrow(RangeError);
    }
    const plain = await SegmentWriter.open({ dir, segmentSeconds: 2, container: "mkv", fps: 30, log: silentLogger });
    plain.writeAudio(pkt(0, 1));
    await plain.close();
    expect([plain.stats.audioIn, plain.stats.audioDropped, plain.audio]).toEqual([1, 1, null]);
    const w = await SegmentWriter.open({ dir: tempDir(), segmentSeconds: 2, container: "mkv", fps: 30, log: silentLogger, audio: DEFAULT_AUDIO_FORMAT });
    w.writeAudio({ seq: 0, capturedAt: 1, samples: 960, data: new Uint8Array(0) });
    w.writeAudio({ seq: 1, capturedAt: 1, samples: 960, data: new Uint8Array(5000) });
    w.writeAudio({ seq: 2, capturedAt: Number.NaN, samples: 960, data: Uint8Array.of(0xf8) });
    await w.close();
    expect([w.stats.audioIn, w.stats.audioRejected, w.stats.audioDropped]).toEqual([3, 3, 0]);
  });
});
