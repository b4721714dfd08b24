import { MAX_OPUS_PACKET } from "./audio-packet.ts";
import { DecodeError, hex } from "./decode-error.ts";
import { decodeDatagram, encodeDatagramHeader, HEADER_SIZE, PayloadType, TAG_SIZE, type Datagram } from "./datagram.ts";

/*
 * One audio packet, one datagram: the frame datagram's 32-byte header (lib/wire/datagram.ts)
 * with payload type 2 and a single fragment, then the packet.
 *
 *  header:  type 2 (flags 0x04, or 0x05 encrypted), session id as for frames,
 *           frame number = audio packet number (its own count, +1 per packet),
 *           fragment index 0, fragment count 1, frame length = fragment size = payload
 *           bytes (plaintext), key id as for frames, capture time of the packet's first
 *           sample (µs, the frames' clock)
 *  payload: the Opus packet, then its 64-byte Ed25519 signature in a signed stream
 *           (lib/net/frame-signature.ts, context "lancam audio v1"); encrypted, that is
 *           AES-256-GCM ciphertext and the 16-byte tag, nonce (packet number, 0, type 2)
 *           (lib/net/frame-cipher.ts).
 */

/** Bytes of the Ed25519 signature a signed stream appends to each packet (lib/net/frame-signature.ts). */
export const AUDIO_SIGNATURE_SIZE = 64;
/** Most plaintext payload bytes of one audio datagram: the largest Opus packet and a signature. */
export const MAX_AUDIO_PAYLOAD = MAX_OPUS_PACKET + AUDIO_SIGNATURE_SIZE;

/** What names an audio datagram, besides its payload. */
export interface AudioDatagramFields {
  sessionId: number;
  /** Audio packet number. */
  seq: number;
  capturedAt: number;
  /** Present exactly when the payload is sealed: the stream key's id. */
  keyId?: number;
}

/**
 * Writes the header of an audio datagram whose plaintext payload is `length` bytes into
 * `into` (HEADER_SIZE bytes). Throws RangeError for what the format cannot carry.
 */
export function encodeAudioHeader(into: Uint8Array, f: AudioDatagramFields, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > MAX_AUDIO_PAYLOAD) throw new RangeError(`audio datagram payload of ${length} bytes: expected 1..${MAX_AUDIO_PAYLOAD}`);
  encodeDatagramHeader(into, 0, {
    encrypted: f.keyId !== undefined, keyId: f.keyId, payloadType: PayloadType.Opus, sessionId: f.sessionId, frameNumber: f.seq,
    fragmentIndex: 0, fragmentCount: 1, frameLength: length, fragmentSize: length, capturedAt: f.capturedAt,
  });
  return into;
}

/** An unencrypted audio datagram carrying `payload` (the Opus packet, and its signature in a signed stream). */
export function encodeAudioDatagram(f: Omit<AudioDatagramFields, "keyId">, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  encodeAudioHeader(out, f, payload.length);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Decodes an audio datagram (payload type 2); throws DecodeError for anything else. */
export function decodeAudioDatagram(bytes: Uint8Array): Datagram {
  const d = decodeDatagram(bytes, PayloadType.Opus);
  const h = d.header;
  if (h.fragmentCount !== 1) throw new DecodeError("bad-value", `audio datagram in ${hex(h.fragmentCount, 2)} fragments: an audio packet is one datagram`);
  if (h.frameLength > MAX_AUDIO_PAYLOAD) throw new DecodeError("bad-length", `audio datagram of ${hex(h.frameLength, 4)} payload bytes: at most ${MAX_AUDIO_PAYLOAD}`);
  return d;
}

/** Bytes of a sealed audio datagram with `length` plaintext payload bytes. */
export function sealedAudioSize(length: number): number {
  return HEADER_SIZE + length + TAG_SIZE;
}
