import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { createLogger } from "../lib/log/logger.ts";
import { cv, type FitJpegResult } from "../lib/native/cv.ts";
import { ClassicClient, ClassicConnectError, RATE_WINDOW_MS } from "../lib/receive/classic-client.ts";
import { ClassicWatcher } from "../lib/receive/classic-watcher.ts";
import { ConnectError } from "../lib/receive/handshake.ts";
import { Viewer } from "../lib/receive/viewer.ts";
import { createWatcher } from "../lib/receive/watcher.ts";
import { Capacity } from "../lib/send/capacity.ts";
import { ClassicEncoder } from "../lib/send/classic-encoder.ts";
import { ClassicViewers, FIRST_SEND_DELAY_MS, normalizeAddress, type ClassicAction } from "../lib/send/classic-viewers.ts";
import {
  classifyFirstBytes,
  decodeClassicAnswer,
  encodeClassicAnswer,
  encodeClassicPort,
  MAX_CLASSIC_DATAGRAM,
  type FirstBytes,
} from "../lib/wire/classic.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { readJpegSize } from "../lib/wire/jpeg-header.ts";
import { prng } from "./helpers/prng.ts";
import { until } from "./helpers/process.ts";

const silent = createLogger("test", []);
const ascii = (s: string) => new TextEncoder().encode(s);

describe("classifyFirstBytes", () => {
  const CASES: { name: string; bytes: number[]; want: FirstBytes["kind"]; port?: number }[] = [
    { name: "nothing yet", bytes: [], want: "undecided" },
    { name: "the classroom viewer's port", bytes: [0x38, 0x38, 0x38, 0x38], want: "classic", port: 8888 }, // "8888"
    { name: "one digit", bytes: [0x37], want: "classic", port: 7 }, // "7"
    { name: "highest port", bytes: [0x36, 0x35, 0x35, 0x33, 0x35], want: "classic", port: 65535 }, // "65535"
    { name: "leading zero (Python's int() reads it)", bytes: [0x30, 0x38, 0x30], want: "classic", port: 80 }, // "080"
    { name: "typed into nc", bytes: [0x38, 0x38, 0x38, 0x38, 0x0a], want: "classic", port: 8888 }, // "8888\n"
    { name: "typed into telnet", bytes: [0x38, 0x30, 0x0d, 0x0a], want: "classic", port: 80 }, // "80\r\n"
    { name: "CR, LF still to come", bytes: [0x38, 0x30, 0x0d], want: "undecided" }, // "80\r"
    { name: "a lancam hello's first byte", bytes: [0x00], want: "lancam" }, // length high byte
    {
      name: "a whole lancam hello",
      bytes: [0x00, 0x0d, 0x01, 0x4c, 0x43, 0x41, 0x4d, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
      want: "lancam",
    },
    { name: "a lancam message up to the largest length", bytes: [0x04, 0x00, 0x01], want: "lancam" }, // length 1024
    { name: "above any lancam length, below the digits", bytes: [0x05], want: "invalid" },
    { name: "port 0", bytes: [0x30], want: "invalid" }, // "0"
    { name: "port 65536", bytes: [0x36, 0x35, 0x35, 0x33, 0x36], want: "invalid" }, // "65536"
    { name: "six digits", bytes: [0x31, 0x32, 0x33, 0x34, 0x35, 0x36], want: "invalid" }, // "123456"
    { name: "HTTP", bytes: [0x47, 0x45, 0x54, 0x20], want: "invalid" }, // "GET "
    { name: "TLS client hello", bytes: [0x16, 0x03, 0x01], want: "invalid" },
    { name: "a sign", bytes: [0x2b, 0x38], want: "invalid" }, // "+8"
    { name: "digits then junk", bytes: [0x38, 0x38, 0x78], want: "invalid" }, // "88x"
    { name: "digits, LF, more", bytes: [0x38, 0x0a, 0x38], want: "invalid" }, // "8\n8"
    { name: "a lone LF", bytes: [0x0a], want: "invalid" },
  ];
  for (const c of CASES) {
    test(c.name, () => {
      const got = classifyFirstBytes(new Uint8Array(c.bytes));
      expect(got.kind).toBe(c.want);
      if (got.kind === "classic") expect(got.port).toBe(c.port!);
      if (got.kind === "invalid") expect(got.reason).toMatch(/0x|port|digits/);
    });
  }

  test("digits decide at once: every prefix of a port is classic, none is undecided", () => {
    const bytes = ascii("54321");
    for (let n = 1; n <= bytes.length; n++) expect(classifyFirstBytes(bytes.subarray(0, n))).toEqual({ kind: "classic", port: Number("54321".slice(0, n)) });
  });

  test("hostile bytes never throw and only digits are ever classic", () => {
    const rand = prng(9);
    for (let i = 0; i < 5000; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(rand() * 8) }, () => (rand() < 0.5 ? 0x30 + Math.floor(rand() * 10) : Math.floor(rand() * 256)));
      const got = classifyFirstBytes(bytes);
      if (got.kind === "classic") expect(/^\d{1,5}(\r?\n)?$/.test(new TextDecoder().decode(bytes))).toBe(true);
      if (got.kind === "lancam") expect(bytes[0]).toBeLessThanOrEqual(4);
    }
  });

  test("the announced port round-trips", () => {
    for (const port of [1, 80, 8888, 65535]) expect(classifyFirstBytes(encodeClassicPort(port))).toEqual({ kind: "classic", port });
    expect(() => encodeClassicPort(0)).toThrow(RangeError);
    expect(() => encodeClassicPort(65536)).toThrow(RangeError);
  });
});

describe("classic answers", () => {
  test("decode exactly what the classroom viewer sends", () => {
    expect(decodeClassicAnswer(ascii("continue"))).toBe("continue");
    expect(decodeClassicAnswer(ascii("end"))).toBe("end");
    expect(encodeClassicAnswer("continue")).toEqual(ascii("continue"));
    expect(encodeClassicAnswer("end")).toEqual(ascii("end"));
  });

  test("anything else is a DecodeError naming the bytes", () => {
    for (const s of ["", "con", "continu", "continue\n", "CONTINUE", "ends", "end\0", "x".repeat(2000)]) {
      expect(() => decodeClassicAnswer(ascii(s))).toThrow(DecodeError);
    }
    expect(() => decodeClassicAnswer(ascii("ENd"))).toThrow(/45 4e 64/);
    // The encoder hands out copies: a caller scribbling on one cannot change the next.
    encodeClassicAnswer("end")[0] = 0x78;
    expect(encodeClassicAnswer("end")).toEqual(ascii("end"));
  });
});

// --- the state machine -------------------------------------------------------------

const A = { address: "10.0.0.2", port: 8888 };
const B = { address: "10.0.0.3", port: 8888 };
/** Same host as A, another port: a second viewer on one machine. */
const A2 = { address: "10.0.0.2", port: 8889 };

function frame(seq: number, bytes = 100): Frame {
  return { seq, capturedAt: 0, width: 16, height: 16, jpeg: new Uint8Array(bytes) };
}

const sends = (actions: ClassicAction[]) => actions.filter((a) => a.type === "send");
const sentTo = (actions: ClassicAction[], who: { address: string; port: number }) =>
  sends(actions).filter((a) => a.address === who.address && a.port === who.port).map((a) => a.seq);
const answer = (who: { address: string; port: number }, text: string) => ({ type: "answer" as const, ...who, bytes: ascii(text) });

/** A machine with one viewer joined at t=0 and past its first-send delay. */
function withViewer(opts: ConstructorParameters<typeof ClassicViewers>[0] = {}) {
  const m = new ClassicViewers(opts);
  m.push({ type: "join", id: 1, ...A }, 0);
  return m;
}

describe("ClassicViewers", () => {
  test("the first picture waits out the first-send delay, then one goes per answer, always the newest", () => {
    const m = withViewer();
    expect(m.push({ type: "frame", frame: frame(1) }, 10)).toEqual([]);
    expect(sends(m.push({ type: "tick" }, FIRST_SEND_DELAY_MS - 1))).toEqual([]);
    expect(sentTo(m.push({ type: "tick" }, FIRST_SEND_DELAY_MS), A)).toEqual([1]);
    // Waiting for its answer: newer frames are held, not queued.
    expect(m.push({ type: "frame", frame: frame(2) }, 60)).toEqual([]);
    expect(m.push({ type: "frame", frame: frame(3) }, 70)).toEqual([]);
    expect(sentTo(m.push(answer(A, "continue"), 100), A)).toEqual([3]);
    // Answered with nothing newer to give: the next frame goes at once.
    expect(sends(m.push(answer(A, "continue"), 150))).toEqual([]);
    expect(sentTo(m.push({ type: "frame", frame: frame(4) }, 160), A)).toEqual([4]);
    const v = m.viewers()[0]!;
    expect([v.framesSent, v.answers, v.resends]).toEqual([3, 2, 0]);
  });

  test("joined reports the viewer at the TCP peer's address (IPv4-mapped form normalised)", () => {
    const m = new ClassicViewers();
    const [joined] = m.push({ type: "join", id: 7, address: "::ffff:10.0.0.2", port: 8888 }, 0);
    expect(joined).toMatchObject({ type: "joined", viewer: { id: 7, address: "10.0.0.2", port: 8888 } });
    expect(normalizeAddress("::FFFF:192.168.1.5")).toBe("192.168.1.5");
    expect(normalizeAddress("fe80::1")).toBe("fe80::1");
  });

  test("no answer within resendMs: the newest picture is sent again", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(1) }, 0);
    expect(sentTo(m.push({ type: "tick" }, 50), A)).toEqual([1]);
    expect(sends(m.push({ type: "tick" }, 549))).toEqual([]);
    const resent = sends(m.push({ type: "tick" }, 550));
    expect(resent).toMatchObject([{ seq: 1, resend: true }]);
    m.push({ type: "frame", frame: frame(2) }, 600);
    expect(sends(m.push({ type: "tick" }, 1049))).toEqual([]);
    expect(sends(m.push({ type: "tick" }, 1050))).toMatchObject([{ seq: 2, resend: true }]);
    // The answer to the resent copy starts the stream again.
    m.push(answer(A, "continue"), 1100);
    m.push({ type: "frame", frame: frame(3) }, 1110);
    expect(sentTo(m.push({ type: "tick" }, 1400), A)).toEqual([3]);
    expect(m.viewers()[0]!.resends).toBe(2);
  });

  test("after a resend, answers to both copies release one picture, not two", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(1) }, 0);
    m.push({ type: "tick" }, 50); // sent
    m.push({ type: "tick" }, 550); // resent: the viewer was only slow, both copies arrive
    m.push({ type: "frame", frame: frame(2) }, 560);
    expect(sends(m.push(answer(A, "continue"), 600))).toEqual([]);
    expect(sends(m.push(answer(A, "continue"), 650))).toEqual([]); // the late one
    expect(sends(m.push({ type: "tick" }, 700))).toEqual([]); // still settling
    const after = sends(m.push({ type: "tick" }, 900));
    expect(after).toMatchObject([{ seq: 2, resend: false }]);
    // From here one picture is in flight: each answer releases exactly one.
    for (let i = 0, t = 950; i < 5; i++, t += 60) {
      m.push({ type: "frame", frame: frame(3 + 2 * i) }, t);
      m.push({ type: "frame", frame: frame(4 + 2 * i) }, t + 10);
      expect(sentTo(m.push(answer(A, "continue"), t + 50), A)).toEqual([4 + 2 * i]);
    }
    expect(m.viewers()[0]!.lateAnswers).toBe(1);
  });

  test("a first picture lost to a closed port costs one resend, then the stream flows", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(1) }, 0);
    m.push({ type: "tick" }, 50); // lost: the viewer had not bound yet
    m.push({ type: "tick" }, 550); // resent, arrives
    m.push({ type: "frame", frame: frame(2) }, 560);
    m.push(answer(A, "continue"), 610);
    // The answer might have been a late one for the first copy: a short quiet period
    // (twice the assumed 60 ms answer time) before the next picture.
    expect(sends(m.push({ type: "tick" }, 729))).toEqual([]);
    expect(sentTo(m.push({ type: "tick" }, 730), A)).toEqual([2]);
  });

  test("end is matched by source address and port: it ends that viewer only", () => {
    const m = new ClassicViewers();
    for (const [id, who] of [[1, A], [2, B], [3, A2]] as const) m.push({ type: "join", id, ...who }, 0);
    m.push({ type: "frame", frame: frame(1) }, 0);
    expect(sends(m.push({ type: "tick" }, 50))).toHaveLength(3);
    // Same address, other port; other address, same port; neither is A.
    expect(m.push(answer({ address: "10.0.0.2", port: 9999 }, "end"), 60)).toEqual([]);
    expect(m.push(answer({ address: "10.0.0.9", port: 8888 }, "end"), 60)).toEqual([]);
    expect(m.counters.foreign).toBe(2);
    const left = m.push(answer({ address: "::ffff:10.0.0.2", port: 8888 }, "end"), 70);
    expect(left).toMatchObject([{ type: "left", reason: "end", viewer: { id: 1, ...A } }]);
    expect(m.viewers().map((v) => v.id).sort()).toEqual([2, 3]);
    // The others go on; A's address is now foreign.
    m.push(answer(B, "continue"), 80);
    m.push(answer(A2, "continue"), 80);
    const next = m.push({ type: "frame", frame: frame(2) }, 90);
    expect(sentTo(next, B)).toEqual([2]);
    expect(sentTo(next, A2)).toEqual([2]);
    expect(sentTo(next, A)).toEqual([]);
    m.push(answer(A, "continue"), 95);
    expect(m.counters.foreign).toBe(3);
  });

  test("a viewer that stops answering is dropped after timeoutMs with reason timeout, resending meanwhile", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(1) }, 0);
    const all: ClassicAction[] = [];
    let leftAt = -1;
    for (let t = 0; t <= 6000; t += 50) {
      const out = m.push({ type: "tick" }, t);
      if (out.some((a) => a.type === "left")) leftAt = t;
      all.push(...out);
    }
    const left = all.filter((a) => a.type === "left");
    expect(left).toMatchObject([{ reason: "timeout", viewer: { id: 1 } }]);
    // First sent at 50: dropped 5 s later, at the first tick from then.
    expect(leftAt).toBe(5050);
    expect(sends(all).filter((a) => a.resend)).toHaveLength(9);
  });

  test("nothing to send is no reason to drop: a viewer is only timed out while pictures go unanswered", () => {
    const m = withViewer();
    for (let t = 0; t <= 20_000; t += 50) expect(m.push({ type: "tick" }, t)).toEqual([]);
    expect(m.size).toBe(1);
  });

  test("a slow or vanished viewer never holds up another", () => {
    const m = new ClassicViewers();
    m.push({ type: "join", id: 1, ...A }, 0);
    m.push({ type: "join", id: 2, ...B }, 0); // never answers
    const toA: number[] = [];
    let seq = 0;
    for (let t = 0; t < 4000; t += 10) {
      if (t % 30 === 0) toA.push(...sentTo(m.push({ type: "frame", frame: frame(++seq) }, t), A));
      if (t % 50 === 0) toA.push(...sentTo(m.push({ type: "tick" }, t), A));
      if (t % 30 === 20) m.push(answer(A, "continue"), t); // answers 20 ms after each frame
    }
    // A got every frame from the first send on, each exactly once, in order.
    expect(toA.length).toBeGreaterThan(seq - 3);
    expect(new Set(toA).size).toBe(toA.length);
    expect(toA).toEqual([...toA].sort((x, y) => x - y));
    const b = m.viewers().find((v) => v.id === 2)!;
    expect(b.framesSent).toBeLessThan(10); // the first and one resend per 500 ms
  });

  test("its TCP connection closing drops it with reason closed; an unknown id is ignored", () => {
    const m = withViewer();
    expect(m.push({ type: "closed", id: 1 }, 10)).toMatchObject([{ type: "left", reason: "closed", viewer: { id: 1 } }]);
    expect(m.push({ type: "closed", id: 1 }, 20)).toEqual([]);
    expect(m.size).toBe(0);
  });

  test("the same address and port joining again replaces the old viewer", () => {
    const m = withViewer();
    const out = m.push({ type: "join", id: 2, ...A }, 100);
    expect(out).toMatchObject([{ type: "left", reason: "replaced", viewer: { id: 1 } }, { type: "joined", viewer: { id: 2 } }]);
    // The old connection's close, arriving later, ends nothing.
    expect(m.push({ type: "closed", id: 1 }, 110)).toEqual([]);
    expect(m.viewers().map((v) => v.id)).toEqual([2]);
  });

  test("a viewer flooded with forged continue answers from its own address and port is not starved: answers beyond the copies sent are counted and release nothing", () => {
    /**
     * Pictures the viewer answered over 8 s of a 30 fps camera, its answers 60 ms after
     * each picture, its first picture lost (so it is resent at 550 ms); the forger starts
     * answering every 2 ms once the resend is out, when an answer starts a quiet period.
     */
    const run = (forged: boolean) => {
      const m = withViewer();
      const answerAt: number[] = [];
      let pictures = 0;
      let lost = true;
      const take = (out: ClassicAction[], t: number) => {
        for (const a of sends(out)) {
          if (lost) lost = false; // the first never arrives: a resend, and settling, follow
          else {
            pictures++;
            answerAt.push(t + 60);
          }
        }
      };
      for (let t = 0; t <= 8000; t++) {
        if (t % 33 === 0) take(m.push({ type: "frame", frame: frame(1 + t / 33) }, t), t);
        if (t % 50 === 0) take(m.push({ type: "tick" }, t), t);
        while (answerAt.length > 0 && answerAt[0]! <= t) {
          answerAt.shift();
          take(m.push(answer(A, "continue"), t), t);
        }
        if (forged && t > 560 && t % 2 === 0) take(m.push(answer(A, "continue"), t), t);
      }
      return { pictures, viewer: m.viewers()[0]!, counters: m.counters };
    };
    const plain = run(false);
    const flooded = run(true);
    expect(plain.pictures).toBeGreaterThan(100);
    expect(plain.viewer.extraAnswers).toBe(0);
    // Forged answers can release a picture early, never hold one up: at least as many arrive.
    expect(flooded.pictures).toBeGreaterThanOrEqual(plain.pictures);
    expect(flooded.viewer.extraAnswers).toBeGreaterThan(3000);
    expect(flooded.counters.extraAnswers).toBe(flooded.viewer.extraAnswers);
    // The late answer to the resent copy still counts as late, not extra.
    expect(plain.viewer.lateAnswers).toBeLessThanOrEqual(1);
  });

  test("one more than the shared capacity's maxClients is refused", () => {
    const m = new ClassicViewers({ capacity: new Capacity({ maxClients: 2 }) });
    m.push({ type: "join", id: 1, ...A }, 0);
    m.push({ type: "join", id: 2, ...B }, 0);
    expect(m.push({ type: "join", id: 3, ...A2 }, 0)).toEqual([
      { type: "refused", id: 3, ...A2, why: { reason: "full", max: 2, text: "server full: 2 viewers already connected" } },
    ]);
    expect(m.counters.refused).toBe(1);
    expect(m.size).toBe(2);
    expect(() => m.push({ type: "join", id: 1, ...A2 }, 0)).toThrow(/twice/);
  });

  test("a picture over maxBytes is never sent; an older one never replaces a newer", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(5, MAX_CLASSIC_DATAGRAM + 1) }, 0);
    expect(sends(m.push({ type: "tick" }, 100))).toEqual([]);
    expect(m.counters.oversizeFrames).toBe(1);
    expect(sentTo(m.push({ type: "frame", frame: frame(5, MAX_CLASSIC_DATAGRAM) }, 110), A)).toEqual([5]);
    m.push(answer(A, "continue"), 160);
    expect(m.push({ type: "frame", frame: frame(4) }, 170)).toEqual([]);
    expect(m.push({ type: "frame", frame: frame(5) }, 170)).toEqual([]);
    expect(m.counters.staleFrames).toBe(2);
  });

  test("frame numbers wrap", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(0xfffffffe) }, 0);
    expect(sentTo(m.push({ type: "tick" }, 50), A)).toEqual([0xfffffffe]);
    for (const [t, seq] of [[100, 0xffffffff], [150, 0], [200, 1]] as const) {
      m.push(answer(A, "continue"), t);
      expect(sentTo(m.push({ type: "frame", frame: frame(seq) }, t + 10), A)).toEqual([seq]);
    }
    expect(m.counters.staleFrames).toBe(0);
  });

  test("hostile datagrams are counted and change nothing", () => {
    const m = withViewer();
    m.push({ type: "frame", frame: frame(1) }, 0);
    m.push({ type: "tick" }, 50);
    const rand = prng(4);
    for (let i = 0; i < 2000; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(rand() * 12) }, () => Math.floor(rand() * 256));
      const from = rand() < 0.5 ? A : { address: `10.1.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`, port: 1 + Math.floor(rand() * 65535) };
      expect(sends(m.push({ type: "answer", ...from, bytes }, 60))).toEqual([]);
    }
    expect(m.counters.foreign + m.counters.invalid).toBe(2000);
    expect(m.viewers()).toMatchObject([{ id: 1, answers: 0 }]);
  });

  test("shutdown: everyone leaves and nothing is sent after", () => {
    const m = new ClassicViewers();
    m.push({ type: "join", id: 1, ...A }, 0);
    m.push({ type: "join", id: 2, ...B }, 0);
    const out = m.push({ type: "shutdown" }, 10);
    expect(out.map((a) => a.type === "left" && a.reason)).toEqual(["shutdown", "shutdown"]);
    expect(m.push({ type: "tick" }, 100)).toEqual([]);
  });

  test("bad timings are refused", () => {
    expect(() => new ClassicViewers({ resendMs: 0 })).toThrow(RangeError);
    expect(() => new ClassicViewers({ resendMs: 5000, timeoutMs: 5000 })).toThrow(RangeError);
  });
});

// --- the encoder -------------------------------------------------------------------

/** A 1280x720 picture of gradient plus strong noise: its JPEG is far over one datagram. */
function noisyJpeg(seed: number, width = 1280, height = 720): Buffer {
  const rand = prng(seed);
  const bgr = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      bgr[i] = (x * 255) / width;
      bgr[i + 1] = (y * 255) / height;
      bgr[i + 2] = Math.floor(rand() * 256);
    }
  }
  return cv().encodeJpeg(bgr, width, height, 80);
}

/** A fit function whose calls finish when the test says. */
function controlledFit() {
  const calls: { jpeg: Uint8Array; finish: (r: FitJpegResult) => void }[] = [];
  const fit = (jpeg: Uint8Array) => new Promise<FitJpegResult>((finish) => calls.push({ jpeg, finish }));
  const ok = (n: number): FitJpegResult => ({ jpeg: Buffer.alloc(n, 1), width: 8, height: 8, quality: 50 });
  return { calls, fit, ok };
}

describe("ClassicEncoder", () => {
  test("a noisy 1280x720 frame over 65 507 bytes comes out within it, decodable, same shape", async () => {
    const jpeg = noisyJpeg(1);
    expect(jpeg.length).toBeGreaterThan(MAX_CLASSIC_DATAGRAM);
    const enc = new ClassicEncoder();
    const out = await enc.fit({ seq: 3, capturedAt: 42, width: 1280, height: 720, jpeg });
    expect(out).not.toBeNull();
    expect(out!.jpeg.length).toBeLessThanOrEqual(MAX_CLASSIC_DATAGRAM);
    expect(cv().jpegInfo(out!.jpeg)).toEqual({ width: out!.width, height: out!.height });
    expect(readJpegSize(out!.jpeg)).toEqual({ width: out!.width, height: out!.height });
    expect(Math.abs(out!.width / out!.height - 16 / 9)).toBeLessThan(0.02);
    expect(out!.width).toBeGreaterThanOrEqual(160); // shrunk, not crushed
    expect([out!.seq, out!.capturedAt]).toEqual([3, 42]);
    expect(enc.stats).toMatchObject({ refitted: 1, failed: 0 });
  });

  test("fitJpeg: fits any budget it can, passes through what fits, reports what it cannot", async () => {
    const jpeg = noisyJpeg(2, 640, 360);
    for (const max of [60_000, 20_000, 5_000]) {
      const r = await cv().fitJpeg(jpeg, max, 80);
      if (!r.jpeg) throw new Error(r.reason);
      expect(r.jpeg.length).toBeLessThanOrEqual(max);
      expect(cv().jpegInfo(r.jpeg)).toEqual({ width: r.width, height: r.height });
    }
    const same = await cv().fitJpeg(jpeg, jpeg.length, 80);
    expect(same).toMatchObject({ width: 640, height: 360, quality: 0 });
    expect(Buffer.compare(same.jpeg!, jpeg)).toBe(0);
    expect(await cv().fitJpeg(jpeg, 100, 80)).toMatchObject({ jpeg: null, reason: expect.stringMatching(/more than the 100 allowed/) });
    expect(await cv().fitJpeg(ascii("not a jpeg at all"), 10, 80)).toMatchObject({ jpeg: null, reason: expect.stringMatching(/not a decodable image/) });
    // A header claiming more than the decode limit is refused before any allocation.
    const huge = Buffer.from(jpeg);
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0]));
    huge.writeUInt16BE(30000, sof + 5);
    huge.writeUInt16BE(30000, sof + 7);
    expect(await cv().fitJpeg(huge, 1000, 80)).toMatchObject({ jpeg: null, reason: expect.stringMatching(/exceeds/) });
    expect(() => cv().fitJpeg(jpeg, 0, 80)).toThrow(RangeError);
    expect(() => cv().fitJpeg(jpeg, 1000, 101)).toThrow(RangeError);
  });

  test("once per frame: the same seq asked twice is one fit and one promise; small frames pass as they are", async () => {
    const c = controlledFit();
    const enc = new ClassicEncoder({ maxBytes: 100, fit: c.fit });
    const big = frame(1, 500);
    const p1 = enc.fit(big);
    expect(enc.fit(big)).toBe(p1);
    expect(c.calls).toHaveLength(1);
    c.calls[0]!.finish(c.ok(90));
    expect((await p1)!.jpeg.length).toBe(90);
    expect(enc.fit(big)).toBe(p1);
    const small = frame(2, 100);
    expect(await enc.fit(small)).toBe(small);
    expect(c.calls).toHaveLength(1);
    expect(enc.stats).toMatchObject({ passed: 1, refitted: 1 });
  });

  test("one fit at a time and only the newest waits: frames in between resolve null", async () => {
    const c = controlledFit();
    const enc = new ClassicEncoder({ maxBytes: 100, fit: c.fit });
    const p1 = enc.fit(frame(1, 500));
    const p2 = enc.fit(frame(2, 500));
    const p3 = enc.fit(frame(3, 500));
    expect(enc.fit(frame(3, 500))).toBe(p3);
    expect(await p2).toBeNull();
    expect(c.calls).toHaveLength(1);
    c.calls[0]!.finish(c.ok(80));
    expect((await p1)!.seq).toBe(1);
    await until(() => c.calls.length === 2, 10_000, "the waiting frame's fit");
    c.calls[1]!.finish(c.ok(70));
    expect(await p3).toMatchObject({ seq: 3, jpeg: expect.any(Buffer) });
    expect(enc.stats.superseded).toBe(1);
  });

  test("a failed, throwing or oversized fit is null with the reason kept", async () => {
    const results: (() => Promise<FitJpegResult>)[] = [
      async () => ({ jpeg: null, reason: "does not fit" }),
      async () => {
        throw new Error("addon exploded");
      },
      async () => ({ jpeg: Buffer.alloc(101), width: 8, height: 8, quality: 10 }),
    ];
    const enc = new ClassicEncoder({ maxBytes: 100, fit: () => results.shift()!() });
    expect(await enc.fit(frame(1, 500))).toBeNull();
    expect(enc.stats.lastFailure).toBe("does not fit");
    expect(await enc.fit(frame(2, 500))).toBeNull();
    expect(enc.stats.lastFailure).toBe("addon exploded");
    expect(await enc.fit(frame(3, 500))).toBeNull();
    expect(enc.stats.lastFailure).toMatch(/101 bytes exceeds 100/);
    expect(enc.stats.failed).toBe(3);
  });
});

// --- the client, against a hand-made classroom server -------------------------------

/** A classroom server in a few lines: sends `pictures` in turn, one per "continue", at most every `intervalMs`. */
async function fakeClassroomServer(pictures: Uint8Array[], intervalMs = 20) {
  const heard: string[] = [];
  const state = { viewerPort: 0, closed: false, next: 0, ignoreAnswers: 0, lastSentAt: 0, disposed: false, icmpErrors: 0, silent: false };
  let tcp: Socket<undefined> | null = null;
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data: (_s, buf) => {
        heard.push(buf.toString());
        if (state.ignoreAnswers > 0) {
          state.ignoreAnswers--;
          return;
        }
        if (buf.toString() === "continue") sendNext();
      },
      // A viewer gone leaves an ICMP port-unreachable behind.
      error: () => {
        state.icmpErrors++;
      },
    },
  });
  const sendNext = () => {
    const wait = Math.max(0, state.lastSentAt + intervalMs - performance.now());
    setTimeout(() => {
      if (state.disposed || state.silent) return;
      state.lastSentAt = performance.now();
      udp.send(pictures[state.next++ % pictures.length]!, state.viewerPort, "127.0.0.1");
    }, wait);
  };
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        tcp = s;
      },
      // Sent at once, as the classroom server does: the client must already be bound.
      data: (_s, bytes) => {
        state.viewerPort = Number(bytes.toString());
        state.lastSentAt = performance.now();
        udp.send(pictures[state.next++ % pictures.length]!, state.viewerPort, "127.0.0.1");
      },
      close: () => {
        state.closed = true;
      },
    },
  });
  return {
    port: listener.port,
    udp,
    heard,
    state,
    hangUp: () => tcp?.end(),
    [Symbol.dispose]() {
      state.disposed = true;
      listener.stop(true);
      udp.close();
    },
  };
}

function smallJpegs(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => cv().encodeJpeg(new Uint8Array(160 * 90 * 3).fill(i * 20), 160, 90, 80));
}

describe("ClassicClient", () => {
  test("frames flow one per answer to the sinks, the rate is measured, and stop says end exactly once", async () => {
    using server = await fakeClassroomServer(smallJpegs(5), 20);
    const got: Frame[] = [];
    const streams: unknown[] = [];
    const c = await ClassicClient.open({
      host: "127.0.0.1", port: server.port, udpPort: 0, log: silent,
      sinks: [(f) => got.push({ ...f, jpeg: f.jpeg.slice() })], onStream: (s) => streams.push(s),
    });
    await until(() => c.stream !== null, 10_000, "the rate measured");
    expect(streams).toHaveLength(1);
    expect(c.stream!.width).toBe(160);
    expect(c.stream!.height).toBe(90);
    // One picture per 20 ms at most: the measured rate is positive and never above 50 fps, give or take the timers.
    expect(c.stream!.fpsMillihertz).toBeGreaterThan(0);
    expect(c.stream!.fpsMillihertz).toBeLessThan(55_000);
    expect(got.length).toBeGreaterThanOrEqual(2);
    expect(got.map((f) => f.seq)).toEqual(got.map((_, i) => i));
    expect(got.every((f, i) => i === 0 || f.capturedAt >= got[i - 1]!.capturedAt)).toBe(true);
    expect(Math.abs(got.at(-1)!.capturedAt / 1000 - Date.now())).toBeLessThan(10_000);
    expect(c.stats.framesReceived).toBe(got.length);
    c.stop();
    expect(await c.ended).toEqual({ reason: "stopped" });
    await until(() => server.state.closed && server.heard.includes("end"), 10_000, "end and the TCP close");
    await Bun.sleep(100);
    expect(server.heard.filter((h) => h === "end")).toHaveLength(1);
    expect(server.heard.filter((h) => h !== "end" && h !== "continue")).toEqual([]);
    expect(server.heard.filter((h) => h === "continue").length).toBeGreaterThanOrEqual(got.length);
  });

  test("datagrams from elsewhere are dropped unanswered; bad ones from the server are answered and not shown", async () => {
    const pictures: Uint8Array[] = smallJpegs(2);
    pictures.push(ascii("garbage"), cv().encodeJpeg(new Uint8Array(80 * 60 * 3), 80, 60, 80));
    using server = await fakeClassroomServer(pictures, 30);
    const got: Frame[] = [];
    await using c = await ClassicClient.open({ host: "127.0.0.1", port: server.port, udpPort: 0, log: silent, sinks: [(f) => got.push(f)] });
    const stranger = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    await until(() => got.length >= 1, 10_000, "a first picture");
    for (let i = 0; i < 5; i++) stranger.send(pictures[0]!, c.udpPort, "127.0.0.1");
    await until(() => c.drops.foreign === 5 && c.drops.notJpeg >= 1 && c.drops.wrongSize >= 1 && got.length >= 6, 10_000, "drops counted while the stream goes on");
    stranger.close();
    expect(c.stats.framesRejected).toBe(c.drops.notJpeg + c.drops.wrongSize);
    expect(got.every((f) => f.width === 160 && f.height === 90)).toBe(true);
  });

  test("a lost answer stalls the classroom server: the client nudges it with another continue", async () => {
    using server = await fakeClassroomServer(smallJpegs(3), 10);
    server.state.ignoreAnswers = 1; // the first "continue" is lost on the way
    const got: Frame[] = [];
    await using c = await ClassicClient.open({ host: "127.0.0.1", port: server.port, udpPort: 0, log: silent, sinks: [(f) => got.push(f)], stallMs: 200 });
    await until(() => got.length >= 5, 10_000, "the stream going again");
    expect(c.nudges).toBe(1);
  });

  test("the server hanging up TCP ends nothing (the classroom server does so when the next viewer connects); silence ends the session", async () => {
    using server = await fakeClassroomServer(smallJpegs(2));
    await using c = await ClassicClient.open({ host: "127.0.0.1", port: server.port, udpPort: 0, log: silent, sinks: [], stallMs: 100, silenceMs: 600 });
    await until(() => c.stats.framesReceived > 2, 10_000, "pictures");
    server.hangUp();
    await until(() => c.tcpClosed, 10_000, "the close noticed");
    const before = c.stats.framesReceived;
    await until(() => c.stats.framesReceived > before + 5, 10_000, "pictures after the close");
    server.state.silent = true;
    const silentFrom = performance.now();
    const end = await c.ended;
    expect(end.reason).toBe("silent");
    if (end.reason === "silent") expect(end.silentMs).toBeGreaterThanOrEqual(600);
    expect(performance.now() - silentFrom).toBeLessThan(10_000);
    // Nudged while silent, in case only an answer was lost.
    expect(c.nudges).toBeGreaterThan(0);
  });

  test("a 65 507-byte picture arrives whole", async () => {
    const max = noisyJpeg(3, 320, 240);
    const fitted = await cv().fitJpeg(max, MAX_CLASSIC_DATAGRAM, 95);
    const padded = Buffer.alloc(MAX_CLASSIC_DATAGRAM);
    // Trailing bytes after EOI are legal padding: the datagram is exactly the limit.
    fitted.jpeg!.copy(padded);
    using server = await fakeClassroomServer([padded]);
    const sizes: number[] = [];
    await using c = await ClassicClient.open({ host: "127.0.0.1", port: server.port, udpPort: 0, log: silent, sinks: [(f) => sizes.push(f.jpeg.length)] });
    await until(() => sizes.length >= 2, 10_000, "pictures");
    expect(sizes[0]).toBe(MAX_CLASSIC_DATAGRAM);
    expect(c.drops.notJpeg).toBe(0);
  });

  test("nobody listening, or the UDP port taken, is one ClassicConnectError naming the problem", async () => {
    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = closed.port;
    closed.stop(true);
    const refused = ClassicClient.open({ host: "127.0.0.1", port, udpPort: 0, log: silent, sinks: [] });
    await expect(refused).rejects.toThrow(ClassicConnectError);
    await expect(refused).rejects.toThrow(`cannot connect to 127.0.0.1:${port}`);
    const taken = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0 });
    try {
      const busy = ClassicClient.open({ host: "127.0.0.1", port, udpPort: taken.port, log: silent, sinks: [] });
      await expect(busy).rejects.toThrow(`cannot receive on UDP port ${taken.port}: it is in use`);
    } finally {
      taken.close();
    }
  });
});

describe("ClassicWatcher (client.ts --classic)", () => {
  const options = (port: number) => ({ host: "127.0.0.1", port, udpPort: 0, log: silent, sinks: [] });

  test("--frames: exactly that many frames reach the sinks and the stats, then end is said once", async () => {
    using server = await fakeClassroomServer(smallJpegs(3), 10);
    const got: number[] = [];
    await using w = new ClassicWatcher({ ...options(server.port), sinks: [(f) => got.push(f.seq)], maxFrames: 12 });
    await w.run();
    expect(got).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(w.stats.framesReceived).toBe(12);
    await until(() => server.heard.includes("end"), 10_000, "end");
    await Bun.sleep(100);
    expect(server.heard.filter((h) => h === "end")).toHaveLength(1);
  });

  test("--duration ends with end; the bound port, the measured rate and the size once a second reach the owner", async () => {
    using server = await fakeClassroomServer(smallJpegs(3), 20);
    const bound: number[] = [];
    const rates: number[] = [];
    const sizes: (string | null)[] = [];
    await using w = new ClassicWatcher({
      ...options(server.port), maxSeconds: 2.2,
      onBound: (p) => bound.push(p), onStreamRate: (fps) => void rates.push(fps), onSecond: (_stats, size) => sizes.push(size),
    });
    const started = performance.now();
    await w.run();
    expect(performance.now() - started).toBeGreaterThanOrEqual(2150);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(bound).toEqual([server.state.viewerPort]);
    expect(rates).toHaveLength(1);
    // Measured from what arrived: a busy machine delivers fewer, never more than the server sends.
    expect(rates[0]!).toBeGreaterThan(0);
    expect(rates[0]!).toBeLessThan(55);
    expect(sizes.at(-1)).toBe("160x90");
    await until(() => server.heard.includes("end"), 10_000, "end");
    expect(w.datagramDrops()).toEqual({ foreignAddress: 0, notJpeg: 0, wrongSize: 0 });
  });

  test("stop() (ESC, a closed window, Ctrl-C) says end; run() resolves", async () => {
    using server = await fakeClassroomServer(smallJpegs(3), 10);
    const w = new ClassicWatcher(options(server.port));
    const running = w.run();
    await until(() => w.stats.framesReceived >= 3, 10_000, "pictures");
    w.stop();
    await running;
    await until(() => server.heard.includes("end") && server.state.closed, 10_000, "end and the TCP close");
  });

  test("a server that falls silent, or is not there, is a ConnectError naming it; a failing recorder set-up stops the run with its error", async () => {
    using server = await fakeClassroomServer(smallJpegs(2), 10);
    const w = new ClassicWatcher({ ...options(server.port), silenceMs: 400 });
    const running = w.run();
    await until(() => w.stats.framesReceived >= 3, 10_000, "pictures");
    server.state.silent = true;
    await expect(running).rejects.toThrow(`no pictures from the classroom server at 127.0.0.1:${server.port}`);
    await expect(running).rejects.toBeInstanceOf(ConnectError);

    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const nobody = closed.port;
    closed.stop(true);
    const refused = new ClassicWatcher(options(nobody)).run();
    await expect(refused).rejects.toBeInstanceOf(ConnectError);
    // Named so the entry script prints it as one line rather than a stack.
    await expect(refused).rejects.toMatchObject({ name: "ConnectError" });

    using other = await fakeClassroomServer(smallJpegs(2), 10);
    const failing = new ClassicWatcher({ ...options(other.port), onStreamRate: async () => { throw new Error("disk gone"); } });
    await expect(failing.run()).rejects.toThrow("disk gone");
    await until(() => other.heard.includes("end"), 10_000, "end after the failure");
  });

  test("createWatcher picks the watcher for the protocol", async () => {
    await using classic = createWatcher({ protocol: "classic", ...options(1) });
    await using lancam = createWatcher({ protocol: "lancam", ...options(1) });
    expect(classic).toBeInstanceOf(ClassicWatcher);
    expect(lancam).toBeInstanceOf(Viewer);
  });
});
