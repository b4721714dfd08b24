// Frame signatures: what the server signs, what a viewer accepts, and how a forged
// frame is kept from the window and the recorder without disturbing the real stream.
import { describe, expect, test } from "bun:test";
import { keyFingerprint, SIGNATURE_SIZE, SigningKey, verifyingKey } from "../lib/net/frame-signature.ts";
import { FrameVerifier } from "../lib/receive/frame-verifier.ts";
import { Reassembler } from "../lib/receive/reassembler.ts";
import { FrameSigner } from "../lib/send/frame-signer.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { FrameOpener } from "../lib/receive/frame-opener.ts";
import { encodeDatagramHeader, HEADER_SIZE, PayloadType } from "../lib/wire/datagram.ts";
import { CAP_VERIFY, encodeControl, PROTOCOL_VERSION, type ControlMessage, type Welcome } from "../lib/wire/control.ts";
import { MessageReader } from "../lib/wire/message-reader.ts";
import { StreamServer } from "../lib/send/stream-server.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { until } from "./helpers/process.ts";
import { fakeServer, welcome } from "./helpers/fake-server.ts";
import { createLogger } from "../lib/log/logger.ts";
import { cv } from "../lib/native/cv.ts";
import { Viewer } from "../lib/receive/viewer.ts";
import { nowMicros } from "../lib/wire/frame.ts";

const STREAM = 0x51c0ffee;
const SESSION = 0x1234;

/** Recognisable JPEG-sized contents for frame `seq`. */
function picture(seq: number, length = 5000): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seq * 13 + i * 5) & 0xff;
  return out;
}

/** A signed frame's payload (picture and signature), copied out of the signer's reused buffer. */
function signed(signer: FrameSigner, seq: number, capturedAt = 1_000_000 + seq, jpeg = picture(seq)): Uint8Array {
  return signer.sign({ seq, capturedAt, jpeg }).jpeg.slice();
}

describe("signer and verifier", () => {
  const signer = new FrameSigner(STREAM);
  const verifier = new FrameVerifier(signer.signing);

  test("a frame the server signed verifies, and the viewer gets exactly the picture back", () => {
    const payload = signed(signer, 7);
    expect(payload.length).toBe(5000 + SIGNATURE_SIZE);
    const jpeg = verifier.verify(7, 1_000_007, payload);
    expect(jpeg && Buffer.from(jpeg).equals(picture(7))).toBe(true);
    expect(signer.framesSigned).toBeGreaterThan(0);
  });

  test("one flipped bit anywhere in the picture or the signature fails", () => {
    const payload = signed(signer, 8);
    for (const at of [0, 1234, 4999, 5000, 5000 + 31, payload.length - 1]) {
      const bad = payload.slice();
      bad[at]! ^= 0x01;
      expect({ at, ok: verifier.verify(8, 1_000_008, bad) !== null }).toEqual({ at, ok: false });
    }
  });

  test("another frame number, capture time or stream id fails: a real frame cannot be renumbered, retimed or replayed from another run", () => {
    const payload = signed(signer, 9);
    expect(verifier.verify(10, 1_000_009, payload)).toBeNull();
    expect(verifier.verify(9, 1_000_010, payload)).toBeNull();
    const otherRun = new FrameVerifier({ publicKey: signer.signing.publicKey, streamId: STREAM + 1 });
    expect(otherRun.verify(9, 1_000_009, payload)).toBeNull();
    expect(verifier.verify(9, 1_000_009, payload)).not.toBeNull();
  });

  test("a frame without a signature fails: a bare picture, or one too short to hold one", () => {
    expect(verifier.verify(11, 1_000_011, picture(11))).toBeNull();
    expect(verifier.verify(11, 1_000_011, new Uint8Array(SIGNATURE_SIZE))).toBeNull();
    expect(verifier.verify(11, 1_000_011, new Uint8Array(0))).toBeNull();
  });

  test("a frame signed with another key fails (a token holder's or a spoofer's own key)", () => {
    const forger = new FrameSigner(STREAM);
    expect(forger.fingerprint).not.toBe(signer.fingerprint);
    expect(verifier.verify(12, 1_000_012, signed(forger, 12))).toBeNull();
  });

  test("the fingerprint is what server and viewer both print: 8 groups of 4 hex digits", () => {
    expect(signer.fingerprint).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){7}$/);
    expect(verifier.fingerprint).toBe(signer.fingerprint);
    expect(keyFingerprint(signer.signing.publicKey)).toBe(signer.fingerprint);
  });

  test("a welcome key of the wrong size is refused up front", () => {
    expect(() => new FrameVerifier({ publicKey: new Uint8Array(31), streamId: 1 })).toThrow(RangeError);
    expect(() => verifyingKey(new Uint8Array(33))).toThrow(RangeError);
    expect(SigningKey.generate().publicKey.length).toBe(32);
  });
});

/** Plain datagrams of one frame's payload, `size` bytes a fragment. */
function datagrams(seq: number, payload: Uint8Array, capturedAt: number, size = 1000, session = SESSION): Uint8Array[] {
  const count = Math.ceil(payload.length / size);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const piece = payload.subarray(i * size, Math.min(payload.length, (i + 1) * size));
    const d = new Uint8Array(HEADER_SIZE + piece.length);
    encodeDatagramHeader(d, 0, {
      encrypted: false, payloadType: PayloadType.Jpeg, sessionId: session, frameNumber: seq, fragmentIndex: i, fragmentCount: count,
      frameLength: payload.length, fragmentSize: size, capturedAt,
    });
    d.set(piece, HEADER_SIZE);
    out.push(d);
  }
  return out;
}

function feed(r: Reassembler, list: Uint8Array[], now = 0): number[] {
  const out: number[] = [];
  for (const d of list) {
    const f = r.push(d, now);
    if (f) out.push(f.frameNumber);
  }
  return out;
}

describe("a signed session's reassembler", () => {
  const server = new FrameSigner(STREAM);
  const forger = new FrameSigner(STREAM);
  const signedSession = () => {
    const r = new Reassembler({ sessionId: SESSION });
    r.reset(SESSION, null, null, new FrameVerifier(server.signing));
    return r;
  };

  test("delivers the server's frames without their signature", () => {
    const r = signedSession();
    let got: Uint8Array | null = null;
    for (const d of datagrams(1, signed(server, 1), 1_000_001)) got = r.push(d, 0)?.jpeg.slice() ?? got;
    expect(got && Buffer.from(got).equals(picture(1))).toBe(true);
    expect(r.stats.framesForged).toBe(0);
  });

  test("a forged frame numbered just ahead is dropped and counted; the real frame of that number still arrives, nothing counted lost", () => {
    const r = signedSession();
    expect(feed(r, datagrams(1, signed(server, 1), 1_000_001))).toEqual([1]);
    // The attack as found: a picture of the forger's own, numbered ahead of the live stream.
    expect(feed(r, datagrams(3, signed(forger, 3, 1_000_003, picture(99)), 1_000_003))).toEqual([]);
    expect(r.stats.framesForged).toBe(1);
    expect(feed(r, datagrams(2, signed(server, 2), 1_000_002))).toEqual([2]);
    expect(feed(r, datagrams(3, signed(server, 3), 1_000_003))).toEqual([3]);
    expect({ missing: r.stats.framesMissing, ...r.stats.incomplete }).toEqual({ missing: 0, lostFragment: 0, timeout: 0, evicted: 0 });
  });

  test("an unsigned frame (the picture alone) is dropped as forged once the welcome said frames are signed", () => {
    const r = signedSession();
    expect(feed(r, datagrams(1, picture(1), 1_000_001))).toEqual([]);
    expect(r.stats.framesForged).toBe(1);
  });

  test("a one-datagram forged frame ahead does not cost the real frame still being reassembled", () => {
    const r = signedSession();
    const real = datagrams(5, signed(server, 5), 1_000_005);
    expect(feed(r, real.slice(0, 2))).toEqual([]);
    expect(feed(r, datagrams(6, signed(forger, 6, 1_000_006, picture(6, 200)), 1_000_006))).toEqual([]);
    expect(feed(r, real.slice(2))).toEqual([5]);
    expect(r.stats.framesForged).toBe(1);
    expect(r.stats.incomplete.lostFragment).toBe(0);
  });

  test("encrypted and signed: the token holder's frame sealed under the real stream key still fails the signature", () => {
    const sealer = new FrameSealer();
    const fragmenter = new Fragmenter(1400);
    const opener = new FrameOpener();
    opener.addKey(sealer.current.id, sealer.current.key, 0);
    const r = new Reassembler({ sessionId: SESSION });
    r.reset(SESSION, opener, null, new FrameVerifier(server.signing));
    // The token holder has the stream key (id 0 too) and seals with it on its own.
    const forgerSealer = new FrameSealer({ randomKey: () => sealer.current.key });
    /** Signed by `by`, sealed under the stream key by its own sealer. */
    const seal = (by: FrameSigner, seq: number, jpeg: Uint8Array) => {
      const sealed = (by === server ? sealer : forgerSealer).seal(by.sign({ seq, capturedAt: 1_000_000 + seq, jpeg }), fragmenter.sealedFragmentSize).sealed;
      return fragmenter.fragmentSealed(sealed, SESSION).map((d) => d.slice());
    };
    expect(feed(r, seal(server, 1, picture(1)))).toEqual([1]);
    expect(feed(r, seal(forger, 2, picture(77)))).toEqual([]);
    expect(r.stats.framesForged).toBe(1);
    expect(opener.counters.auth).toBe(0);
    expect(feed(r, seal(server, 2, picture(2)))).toEqual([2]);
  });

  test("without a verifier (a server that does not sign) frames pass as before", () => {
    const r = new Reassembler({ sessionId: SESSION });
    expect(feed(r, datagrams(1, picture(1), 1_000_001))).toEqual([1]);
    expect(r.stats.framesForged).toBe(0);
  });
});

/** A hand-made viewer on 127.0.0.1: says hello with `capabilities`, keeps the messages, reassembles what comes to its UDP port. */
async function rawViewer(port: number, capabilities: number) {
  const reader = new MessageReader();
  const messages: ControlMessage[] = [];
  const frames: { seq: number; jpeg: Uint8Array }[] = [];
  const r = new Reassembler({ sessionId: 0 });
  let welcomed = false;
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1", port: 0,
    socket: {
      data: (_s, buf) => {
        const f = welcomed ? r.push(buf, performance.now()) : null;
        if (f) frames.push({ seq: f.frameNumber, jpeg: f.jpeg.slice() });
      },
    },
  });
  const tcp = await Bun.connect({
    hostname: "127.0.0.1", port,
    socket: {
      data: (_s, chunk) => {
        for (const m of reader.push(chunk)) {
          messages.push(m);
          if (m.type !== "welcome") continue;
          r.reset(m.sessionId, null, null, m.signing ? new FrameVerifier(m.signing) : null);
          welcomed = true;
        }
      },
    },
  });
  tcp.write(encodeControl({ type: "hello", version: PROTOCOL_VERSION, udpPort: udp.port, capabilities, name: "raw" }));
  return {
    messages, frames, reassembler: r,
    welcome: () => messages.find((m): m is Welcome => m.type === "welcome") ?? null,
    close: () => (tcp.end(), udp.close()),
  };
}

describe("the server signs", () => {
  test("each frame once, whatever the number of viewers; a viewer that offers CAP_VERIFY gets the key and frames that verify, one that does not gets no signing block", async () => {
    const log = memoryLogger("server");
    await using server = await StreamServer.start({ port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 8, log, stream: { width: 320, height: 240, fps: 30 } });
    const viewers = await Promise.all([CAP_VERIFY, CAP_VERIFY, CAP_VERIFY, 0].map((caps) => rawViewer(server.port, caps)));
    try {
      await until(() => viewers.every((v) => v.welcome() !== null), 5000, "every viewer welcomed");
      const key = viewers[0]!.welcome()!.signing;
      expect(key && keyFingerprint(key.publicKey)).toBe(server.signingFingerprint);
      for (const v of viewers.slice(0, 3)) expect(v.welcome()!.signing).toEqual(key!);
      expect(viewers[3]!.welcome()!.signing).toBeUndefined();
      let seq = 0;
      while (viewers.some((v) => v.frames.length < 5)) {
        if (seq > 100) throw new Error("frames did not arrive");
        server.broadcast({ seq, capturedAt: 1_700_000_000_000_000 + seq, width: 320, height: 240, jpeg: picture(seq, 3000) });
        seq++;
        await Bun.sleep(15);
      }
      // Verified, and the picture comes back without its signature.
      for (const v of viewers.slice(0, 3)) {
        expect(v.reassembler.stats.framesForged).toBe(0);
        for (const f of v.frames) expect(Buffer.from(f.jpeg).equals(picture(f.seq, 3000))).toBe(true);
      }
      // The viewer that cannot check gets the same bytes: the picture, then the signature.
      for (const f of viewers[3]!.frames) expect(f.jpeg.length).toBe(3000 + SIGNATURE_SIZE);
      expect(server.stats.framesSigned).toBe(seq);
      expect(server.stats.framesBroadcast).toBe(seq);
    } finally {
      for (const v of viewers) v.close();
    }
  });
});

describe("a viewer", () => {
  const W = 64;
  const H = 48;
  const jpegOf = (n: number) => cv().encodeJpeg(new Uint8Array(W * H * 3).map((_, i) => (i * 7 + n * 31) & 0xff), W, H, 90);

  test("forged frames never reach a sink, are counted, and are said once as a security event; another key at a reconnect is one too", async () => {
    const [first, second, forger] = [new FrameSigner(1), new FrameSigner(2), new FrameSigner(1)];
    const sender = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    let viewerUdp = 0;
    let connection: { end(): void } | null = null;
    let hellos = 0;
    using server = fakeServer((hello, socket) => {
      viewerUdp = hello.udpPort;
      connection = socket;
      hellos++;
      const signing = (hellos === 1 ? first : second).signing;
      return encodeControl(welcome({ sessionId: SESSION, width: W, height: H, fragmentSize: 1368, udpSourcePort: sender.port, signing }));
    });
    const lines: { line: string; security: boolean }[] = [];
    const log = createLogger("client", [(line, _level, security) => void lines.push({ line, security: security === true })]);
    const said = (text: string) => lines.filter((l) => l.line.includes(text));
    const seen: number[] = [];
    const viewer = new Viewer({ host: "127.0.0.1", port: server.port, udpPort: 0, log, sinks: [(f) => void seen.push(f.seq)] });
    const frag = new Fragmenter(1400);
    const send = (by: FrameSigner, seq: number) => {
      for (const d of frag.fragment(by.sign({ seq, capturedAt: nowMicros(), jpeg: jpegOf(seq) }), SESSION)) sender.send(d, viewerUdp, "127.0.0.1");
    };
    try {
      const running = viewer.run();
      await until(() => said("frames are signed by the server").length === 1, 5000, "the first welcome");
      expect(said(`fingerprint=${first.fingerprint}`).length).toBe(1);
      send(first, 0);
      await until(() => seen.length === 1, 3000, "the server's first frame");
      for (const seq of [1, 2, 3]) send(forger, seq);
      await until(() => viewer.stats.framesForged === 3, 3000, "three forged frames counted");
      send(first, 1);
      await until(() => seen.length === 2, 3000, "the server's next frame");
      expect(seen).toEqual([0, 1]);
      const warned = said("frames not signed by the server are arriving");
      expect(warned.map((l) => l.security)).toEqual([true]);
      // The server goes away; whoever answers the reconnect has another key.
      connection!.end();
      await until(() => said("the server's frame signing key changed").length === 1, 5000, "the reconnect's welcome");
      expect(said("the server's frame signing key changed")[0]!).toEqual({ line: expect.stringContaining(`now=${second.fingerprint}`), security: true });
      viewer.stop();
      await running;
      expect(viewer.stats.summary({}).framesForged).toBe(3);
    } finally {
      viewer.stop();
      sender.close();
    }
  });
});
