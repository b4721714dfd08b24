import { describe, expect, test } from "bun:test";
import { FrameOpener } from "../lib/receive/frame-opener.ts";
import { AudioReceiver } from "../lib/receive/audio-receiver.ts";
import { FrameVerifier } from "../lib/receive/frame-verifier.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { FrameSigner } from "../lib/send/frame-signer.ts";
import { AUDIO_SIGNATURE_SIZE, decodeAudioDatagram, encodeAudioDatagram, MAX_AUDIO_PAYLOAD } from "../lib/wire/audio-datagram.ts";
import { SIGNATURE_SIZE } from "../lib/net/frame-signature.ts";
import { decodeDatagram, HEADER_SIZE } from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

/** A 20 ms CELT fullband mono packet: TOC config 31, code 0, then a few bytes. */
const OPUS = Uint8Array.from([0xf8, 0x01, 0x02, 0x03, 0x04]);

const GOLDEN = {
  name: "an unsigned, unencrypted audio datagram",
  bytes: [
    0x4c, 0x43, //             magic "LC"
    0x01, //                   version 1
    0x04, //                   flags: type 2 (Opus), not encrypted
    0x00, 0x00, 0x00, 0x2a, // session id 42
    0x00, 0x00, 0x00, 0x07, // audio packet 7
    0x00, 0x00, //             fragment index 0
    0x00, 0x01, //             fragment count 1
    0x00, 0x00, 0x00, 0x05, // 5 payload bytes
    0x00, 0x05, //             fragment size 5
    0x00, 0x00, //             key id: none
    0x00, 0x06, 0x0a, 0x24, 0x18, 0x1e, 0x40, 0x00, // capture time 1700000000000000 µs
    0xf8, 0x01, 0x02, 0x03, 0x04, // the Opus packet
  ],
};

describe("audio datagram codec", () => {
  test("golden bytes encode, decode and round-trip; every truncation throws", () => {
    const bytes = encodeAudioDatagram({ sessionId: 42, seq: 7, capturedAt: 1_700_000_000_000_000 }, OPUS);
    expect([...bytes]).toEqual(GOLDEN.bytes);
    const d = decodeAudioDatagram(Uint8Array.from(GOLDEN.bytes));
    expect(d.header).toMatchObject({ sessionId: 42, frameNumber: 7, capturedAt: 1_700_000_000_000_000, frameLength: 5, encrypted: false, payloadType: 2 });
    expect([...d.payload]).toEqual([...OPUS]);
    for (let n = 0; n < GOLDEN.bytes.length; n++) expect(() => decodeAudioDatagram(Uint8Array.from(GOLDEN.bytes.slice(0, n)))).toThrow(DecodeError);
  });

  test("a frame decoder refuses it and an audio decoder refuses a frame: each is bad-type", () => {
    const audio = Uint8Array.from(GOLDEN.bytes);
    expect(() => decodeDatagram(audio)).toThrow(/payload type 0x02/);
    const frame = audio.slice();
    frame[3] = 0x00;
    expect(() => decodeAudioDatagram(frame)).toThrow(/payload type 0x00/);
  });

  test("more than one fragment or more payload than the largest Opus packet is refused", () => {
    expect(AUDIO_SIGNATURE_SIZE).toBe(SIGNATURE_SIZE);
    const big = new Uint8Array(MAX_AUDIO_PAYLOAD + 1);
    expect(() => encodeAudioDatagram({ sessionId: 1, seq: 1, capturedAt: 1 }, big)).toThrow(RangeError);
    const two = Uint8Array.from(GOLDEN.bytes);
    two[15] = 2; // count 2
    two[21] = 3; // fragment size 3
    expect(() => decodeAudioDatagram(two.subarray(0, HEADER_SIZE + 3))).toThrow(/one datagram/);
  });
});

describe("audio receiver", () => {
  const signer = new FrameSigner(99);
  const sealer = new FrameSealer();
  const opener = new FrameOpener();
  opener.addKey(sealer.current.id, sealer.current.key, 0);

  function sealed(seq: number, session = 5): Uint8Array {
    const d = sealer.sealAudio(seq, 1000 + seq * 20_000, signer.signAudio({ seq, capturedAt: 1000 + seq * 20_000, data: OPUS })).datagram;
    new DataView(d.buffer).setUint32(4, session);
    return d;
  }

  test("counts losses, late arrivals, duplicates, foreign, forged and altered packets by reason", () => {
    const r = new AudioReceiver();
    r.reset(5, null, opener, new FrameVerifier(signer.signing));
    // Sealed in order (a number that goes back would start a new key), arriving out of it.
    const made = [0, 1, 2, 3, 4].map((s) => sealed(s));
    const got = [0, 1, 3, 4, 2, 2].map((s) => r.push(made[s]!, 0));
    expect(got.map((p) => p?.seq ?? null)).toEqual([0, 1, 3, 4, 2, null]);
    expect(got[2]!.capturedAt).toBe(1000 + 3 * 20_000);
    expect([...got[2]!.data]).toEqual([...OPUS]);
    expect(r.counters).toMatchObject({ received: 5, lost: 0, reordered: 1, duplicate: 1 });
    r.push(sealed(10), 0);
    expect(r.counters.lost).toBe(5); // 5..9
    expect(r.push(sealed(11, 6), 0)).toBeNull();
    expect(r.counters.foreign).toBe(1);
    const other = new FrameSigner(99);
    const forged = sealer.sealAudio(12, 1, other.signAudio({ seq: 12, capturedAt: 1, data: OPUS })).datagram;
    new DataView(forged.buffer).setUint32(4, 5);
    expect(r.push(forged, 0)).toBeNull();
    expect(r.counters.forged).toBe(1);
    const flipped = sealed(13);
    flipped[flipped.length - 1]! ^= 1;
    expect(r.push(flipped, 0)).toBeNull();
    expect(r.counters.auth).toBe(1);
    expect(r.push(new Uint8Array(10), 0)).toBeNull();
    expect(r.counters.malformed).toBe(1);
  });

  test("a frame's signature does not pass for an audio packet's", () => {
    const frame = signer.sign({ seq: 3, capturedAt: 1000 + 3 * 20_000, jpeg: OPUS });
    const v = new FrameVerifier(signer.signing);
    expect(v.verifyAudio(3, 1000 + 3 * 20_000, frame.jpeg.slice())).toBeNull();
    expect(v.verify(3, 1000 + 3 * 20_000, frame.jpeg.slice())).not.toBeNull();
  });

  test("an audio packet never reuses a frame's nonce: the same number under one key gives other ciphertext", () => {
    const s = new FrameSealer({ randomKey: () => new Uint8Array(32).fill(7) });
    const audio = s.sealAudio(0, 1, OPUS).datagram.subarray(HEADER_SIZE);
    const frame = s.seal({ seq: 0, capturedAt: 1, jpeg: OPUS }, 1000).sealed.payloads.subarray(0, OPUS.length + 16);
    expect(Buffer.from(audio).equals(Buffer.from(frame))).toBe(false);
    // A number that goes back starts a new key, as for frames.
    expect(s.sealAudio(0, 1, OPUS).rotated).toBe(true);
  });
});
