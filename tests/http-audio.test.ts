// /audio.ogg of the browser view: a live Ogg Opus stream per camera with audio, behind the
// view's token, bounded per listener and in number. HttpView is driven directly with real
// Opus packets paced in real time (tests/helpers/opus-packets.ts).
import { beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { DEFAULT_AUDIO_FORMAT, MAX_OPUS_PACKET, type AudioPacket } from "../lib/wire/audio-packet.ts";
import { AudioReaders } from "../lib/http/audio-readers.ts";
import { AUDIO_CONTENT_TYPE, HttpView, type HttpViewOptions } from "../lib/http/http-view.ts";
import { tokenAuth } from "../lib/http/token-auth.ts";
import type { ViewState } from "../lib/http/view-state.ts";
import { decodeOpusHead, OggOpusWriter } from "../lib/mux/ogg-opus.ts";
import { padOpusPacket } from "../lib/http/opus-padding.ts";
import { OggReader } from "../lib/mux/ogg.ts";
import { resolveFfprobe } from "../lib/media/ffmpeg.ts";
import { decodeMono, findBeeps } from "./helpers/beep-onsets.ts";
import { fakeCamerasState } from "./helpers/fake-view-state.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { until } from "./helpers/process.ts";

let packets: AudioPacket[] = [];
beforeAll(async () => {
  packets = await opusPackets({ seconds: 6 });
});

/** Two cameras, "front" with sound and "back" without; packets of "front" paced in real time while fed. */
async function startView(opts: Partial<HttpViewOptions> = {}) {
  const log = memoryLogger("http");
  const { state } = fakeCamerasState([{ name: "front", width: 320, height: 240 }, { name: "back", width: 320, height: 240 }], 30);
  const view = await HttpView.start({ port: 0, bind: "127.0.0.1", log, state, audio: [DEFAULT_AUDIO_FORMAT, null], ...opts });
  let timer: Timer | null = null;
  let pushed = 0;
  return {
    view, log, base: `http://127.0.0.1:${view.port}`,
    pushed: () => pushed,
    /** Packets go in as a microphone gives them: each once its 20 ms have passed, in a loop. */
    feed() {
      const t0 = performance.now();
      timer = setInterval(() => {
        const due = Math.floor((performance.now() - t0) / 20);
        for (; pushed < due; pushed++) {
          const p = packets[pushed % packets.length]!;
          view.pushAudio({ ...p, seq: pushed, capturedAt: p.capturedAt + Math.floor(pushed / packets.length) * packets.length * 20_000 }, 0);
        }
      }, 10);
    },
    async [Symbol.asyncDispose]() {
      if (timer) clearInterval(timer);
      await view.stop();
    },
  };
}

/** Reads a response body until `enough(bytes so far)`, then lets the connection go. */
async function readUntil(res: Response, enough: (bytes: Uint8Array) => boolean, ms = 20_000): Promise<Uint8Array> {
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  const deadline = performance.now() + ms;
  try {
    while (performance.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      total += value.length;
      // A plain copy: OggReader slices what it is given, and a Buffer's slice is a view.
      const all = new Uint8Array(Buffer.concat(parts, total));
      if (enough(all)) return all;
    }
    throw new Error(`the stream ended or timed out after ${total} bytes`);
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** Ogg packets in `bytes` (OpusHead and OpusTags included). */
function oggPackets(bytes: Uint8Array) {
  return new OggReader().push(bytes);
}

describe("/audio.ogg", () => {
  test("serves a live Ogg Opus stream that ffmpeg decodes, with the beep once a second", async () => {
    await using v = await startView({ auth: tokenAuth("s3cret") });
    v.feed();
    const res = await fetch(`${v.base}/audio.ogg?camera=front&token=s3cret`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(AUDIO_CONTENT_TYPE);
    // 3.5 s of sound: 2 header packets and 175 of 20 ms.
    const bytes = await readUntil(res, (b) => oggPackets(b).length >= 2 + 175);
    const ogg = oggPackets(bytes);
    expect(decodeOpusHead(ogg[0]!.data)).toEqual({ channels: 1, preSkip: 312 });
    expect(new TextDecoder().decode(ogg[1]!.data.subarray(0, 8))).toBe("OpusTags");

    const probe = Bun.spawnSync([resolveFfprobe(), "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels", "-of", "json", "-i", "pipe:0"], { stdin: bytes });
    expect(JSON.parse(probe.stdout.toString()).streams).toEqual([{ codec_name: "opus", sample_rate: "48000", channels: 1 }]);
    const beeps = findBeeps(await decodeMono(bytes));
    // 3.5 s hold three or four beeps, one a second, each 100 ms.
    expect(beeps.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < beeps.length; i++) expect(Math.abs(beeps[i]!.at - beeps[i - 1]!.at - 1)).toBeLessThan(0.03);
    for (const b of beeps.slice(0, -1)) expect(Math.abs(b.seconds - 0.1)).toBeLessThan(0.03);

    await until(async () => {
      const s = (await (await fetch(`${v.base}/state?token=s3cret`)).json()) as ViewState;
      return s.counters.audio!.listeners === 0;
    }, 10_000, "the listener's leave");
    const s = (await (await fetch(`${v.base}/state?token=s3cret`)).json()) as ViewState;
    expect(s.sources.map((c) => c.audio)).toEqual([DEFAULT_AUDIO_FORMAT, null]);
    expect(s.counters.audio!.packetsSent).toBeGreaterThanOrEqual(175);
    expect(s.counters.audio!.packetsIn).toBeGreaterThanOrEqual(s.counters.audio!.packetsSent);
    const metrics = await (await fetch(`${v.base}/metrics?token=s3cret`)).text();
    expect(metrics).toContain('lancam_camera_audio{camera="front"} 1');
    expect(metrics).toContain('lancam_camera_audio{camera="back"} 0');
    expect(metrics).toMatch(/^lancam_audio_packets_sent_total (\d+)$/m);
    expect(Number(/^lancam_audio_packets_sent_total (\d+)$/m.exec(metrics)![1])).toBeGreaterThanOrEqual(175);
    expect(v.log.lines.some((l) => / INFO \[http\] audio listener joined client=127\.0\.0\.1:\d+ session=audio-\d+ camera=front listeners=1$/.test(l))).toBe(true);
    expect(v.log.lines.some((l) => / INFO \[http\] audio listener left .*reason="connection closed"/.test(l))).toBe(true);
  }, 60_000);

  test("the token is enforced as on every other route", async () => {
    await using v = await startView({ auth: tokenAuth("s3cret") });
    for (const q of ["", "&token=wrong"]) {
      const res = await fetch(`${v.base}/audio.ogg?camera=0${q}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toStartWith("Basic");
      await res.body?.cancel();
    }
    const basic = await fetch(`${v.base}/audio.ogg`, { method: "HEAD", headers: { authorization: `Basic ${btoa("any:s3cret")}` } });
    expect(basic.status).toBe(200);
    expect(basic.headers.get("content-type")).toBe(AUDIO_CONTENT_TYPE);
  });

  test("a camera without audio, or none at all, is a 404 that says so", async () => {
    await using v = await startView();
    const back = await fetch(`${v.base}/audio.ogg?camera=back`);
    expect(back.status).toBe(404);
    expect(await back.text()).toBe("camera back has no audio\n");
    const none = await fetch(`${v.base}/audio.ogg?camera=7`);
    expect(none.status).toBe(404);
    expect(await none.text()).toContain("7");
    // Packets for a camera without audio are dropped and counted, never served.
    v.view.pushAudio(packets[0]!, 1);
    v.view.pushAudio(packets[0]!, 5);
    expect(v.view.state().counters.audio!.packetsIgnored).toBe(2);
  });

  test("listeners are bounded: one past the limit is refused with 503 and counted", async () => {
    await using v = await startView({ maxAudioReaders: 1 });
    v.feed();
    const first = await fetch(`${v.base}/audio.ogg`);
    expect(first.status).toBe(200);
    await readUntil(first, (b) => oggPackets(b).length >= 3).catch(() => {});
    // The first was let go; a new one holds the only place.
    await until(() => v.view.state().counters.audio!.listeners === 0, 10_000, "the first listener's leave");
    const holder = await fetch(`${v.base}/audio.ogg`);
    expect(holder.status).toBe(200);
    const refused = await fetch(`${v.base}/audio.ogg`);
    expect(refused.status).toBe(503);
    expect(await refused.text()).toBe("refused: 1 audio listeners already listening\n");
    expect(v.view.state().counters.audio!.readersRefused).toBe(1);
    await holder.body!.cancel();
    expect(v.log.lines.some((l) => / WARN \[http\] audio listener refused client=127\.0\.0\.1:\d+ camera=front reason="1 audio listeners already listening"$/.test(l))).toBe(true);
  });

  test("a listener that stops reading is cut after the stall time", async () => {
    await using v = await startView({ stallMs: 1000 });
    // A connection that sends its request and then never reads.
    const sock = net.connect(v.view.port, "127.0.0.1");
    sock.pause();
    sock.write("GET /audio.ogg HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => v.view.state().counters.audio!.listeners === 1, 10_000, "the raw listener's join");
    // Packets as large as Opus allows, fast, so the kernel's buffers fill within seconds, not minutes.
    const big: AudioPacket = { ...packets[0]!, data: new Uint8Array(MAX_OPUS_PACKET).fill(0x55) };
    let seq = 0;
    const flood = setInterval(() => {
      for (let i = 0; i < 50; i++) v.view.pushAudio({ ...big, seq: seq++ }, 0);
    }, 5);
    try {
      await until(() => v.view.state().counters.audio!.readersStalled === 1, 60_000, "the stalled listener to be cut");
    } finally {
      clearInterval(flood);
      sock.destroy();
    }
    const s = v.view.state().counters.audio!;
    expect(s.listeners).toBe(0);
    // It skipped rather than queued: what it missed is counted.
    expect(s.packetsSkipped).toBeGreaterThan(0);
    expect(v.log.lines.some((l) => / WARN \[http\] audio listener left .*reason=stalled .*stalledSec=1$/.test(l))).toBe(true);
  }, 90_000);
});

describe("AudioReaders", () => {
  const fmt = DEFAULT_AUDIO_FORMAT;
  const peer = { id: "a", address: "127.0.0.1", port: 1, camera: 0 };

  test("a listener behind by more than its queue skips the oldest packets, and its granule keeps time over them", () => {
    const r = new AudioReaders({ maxReaders: 2, stallMs: 1000, maxQueued: 5 });
    const header = r.add(peer, fmt, 0);
    expect(oggPackets(header).map((p) => p.granule)).toEqual([0n, 0n]);
    expect(r.take("a", 0)).toBeNull();
    const woke = packets.slice(0, 12).map((p) => r.push(p, 0));
    expect(woke[0]).toEqual(["a"]);
    expect(woke.slice(1).every((w) => w.length === 0)).toBe(true);
    // Another camera's packets are not this listener's.
    r.push(packets[12]!, 1);
    const got = oggPackets(new Uint8Array([...header, ...r.take("a", 10)!]));
    expect(got.length).toBe(2 + 5);
    // Packets 7..11 of 0..11: the first page starts the count, as a listener joining then would.
    expect(got.slice(2).map((p) => p.granule)).toEqual([1, 2, 3, 4, 5].map((n) => BigInt(312 + 960 * n)));
    expect(r.get("a")).toMatchObject({ packetsSent: 5, packetsSkipped: 7 });
    expect(r.totals).toMatchObject({ packetsSent: 5, packetsSkipped: 7 });
    // Nothing waiting: not stalled however long it is silent.
    expect(r.stalled(100_000)).toEqual([]);
    r.push(packets[13]!, 0);
    expect(r.stalled(1010)).toEqual([]);
    expect(r.stalled(1011).map((x) => x.id)).toEqual(["a"]);
    expect(r.remove("a")?.id).toBe("a");
    expect(r.size).toBe(0);
  });

  test("a gap after the first page moves the granule over the lost packets", () => {
    const r = new AudioReaders({ maxReaders: 1, stallMs: 1000, maxQueued: 3 });
    r.add(peer, fmt, 0);
    r.push(packets[0]!, 0);
    expect(oggPackets(r.take("a", 0)!).map((p) => p.granule)).toEqual([BigInt(312 + 960)]);
    for (const p of packets.slice(1, 10)) r.push(p, 0);
    // Packets 1..6 were skipped: the next page says 7 packets' time has passed, then 8, 9.
    expect(oggPackets(r.take("a", 0)!).map((p) => p.granule)).toEqual([8, 9, 10].map((n) => BigInt(312 + 960 * n)));
  });

  test("limits: readers and options", () => {
    const r = new AudioReaders({ maxReaders: 1, stallMs: 1000 });
    r.add(peer, fmt, 0);
    expect(r.full).toBe(true);
    expect(() => r.add({ ...peer, id: "b" }, fmt, 0)).toThrow("1 audio readers already listening");
    expect(() => new AudioReaders({ maxReaders: 0, stallMs: 1 })).toThrow(RangeError);
    expect(() => new AudioReaders({ maxReaders: 1, stallMs: 1, maxQueued: 0 })).toThrow(RangeError);
  });
});

describe("padOpusPacket", () => {
  test("pads a one-frame packet to the size asked, as RFC 6716 code 3 with padding, and decoders hear the same sound", async () => {
    const p = packets[5]!.data;
    expect(p[0]! & 3).toBe(0);
    for (const size of [p.length + 3, p.length + 254 + 3, 1000, 3000]) {
      const padded = padOpusPacket(p, size);
      expect(padded.length).toBe(size);
      expect(padded[0]).toBe(p[0]! | 3);
      expect(padded[1]).toBe(0x41);
    }
    // Too small to pad, or not one frame: left as it is.
    expect(padOpusPacket(p, p.length)).toBe(p);
    const twoFrames = new Uint8Array([p[0]! | 1, 1, 2]);
    expect(padOpusPacket(twoFrames, 500)).toBe(twoFrames);
    expect(() => padOpusPacket(new Uint8Array(0), 10)).toThrow("TOC");
    const ogg = (pad: number) => {
      const w = new OggOpusWriter(DEFAULT_AUDIO_FORMAT);
      return new Uint8Array(Buffer.concat([w.header(), ...packets.slice(0, 150).map((x) => w.page({ ...x, data: pad ? padOpusPacket(x.data, pad) : x.data }))]));
    };
    const plain = await decodeMono(ogg(0));
    const padded = await decodeMono(ogg(1000));
    expect(padded.length).toBe(plain.length);
    expect(findBeeps(padded)).toEqual(findBeeps(plain));
    expect(findBeeps(plain).length).toBe(3);
  });
});
