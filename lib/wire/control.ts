import { MAX_DATAGRAM_SIZE, MAX_FRAGMENT_SIZE, MIN_MTU, HEADER_SIZE as DATAGRAM_HEADER_SIZE, TAG_SIZE as DATAGRAM_TAG_SIZE } from "./datagram.ts";
import { DecodeError, hex } from "./decode-error.ts";
import { decodeGoneBody, decodeRepairBody, encodeGoneBody, encodeRepairBody, type GoneBody, type RepairBody } from "./repair.ts";

/*
 * Control messages on the TCP connection. All fields big-endian.
 *
 * Framing (every message):
 *  0                   1                   2
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
 * +-------------------------------+-+-------------+- - - - - - -+- - - - - - - - - -+
 * |  length (u16) = 1 + body      |T|    type     |  body ...   | tag, 16 bytes if T |
 * |                 (+ 16 if T)   | |             |             |                    |
 * +-------------------------------+-+-------------+- - - - - - -+- - - - - - - - - -+
 * A whole message (prefix + type + body + tag) is at most MAX_MESSAGE_SIZE bytes.
 * T (bit 7 of the type byte): a 16-byte message authentication tag ends the message.
 * The codec only carries it; lib/net/control-mac.ts computes and checks it over the
 * framed bytes before the tag (with T set), so a decoded message re-encodes to the
 * exact bytes the tag covers.
 *
 * Bodies (offset 0 = byte 3 of the framed message):
 *
 * hello (1, client to server)
 * +---------------------------------------------------------------+
 * |                    magic "LCAM" 0x4C43414D                    |   0
 * +---------------+-------------------------------+---------------+
 * |    version    |        client UDP port        | capabilities  |   4
 * +---------------+-------------------------------+               +
 * |                  ... capabilities             |  name length  |   8
 * +-----------------------------------------------+---------------+
 * |                 name, UTF-8, 0..64 bytes ...                  |  12
 * +---------------+- - - - - - - - - - - - - - - - - - - - - - - -+
 * | camera length | camera: a number or a name, ASCII, 0..32 bytes|  12 + name
 * +---------------+- - - - - - - - - - - - - - - - - - - - - - - -+  (only with CAP_CAMERA)
 * |   resume secret from the last welcome (optional, 16 bytes)    |  after those
 *
 * welcome (2, server to client)
 * +---------------------------------------------------------------+
 * |                          session id                           |   0
 * +-------------------------------+-------------------------------+
 * |             width             |            height             |   4
 * +-------------------------------+-------------------------------+
 * |              frames per second x 1000 (millihertz)            |   8
 * +-------------------------------+-------------------------------+
 * |         fragment size         |        UDP source port        |  12
 * +-------------------------------+-------------------------------+
 * |      heartbeat interval ms    |           timeout ms          |  16
 * +-------------------------------+-------------------------------+
 * | server flags (bit 0: encrypted, bit 1: multicast, 2: signed)  |  20
 * +---------------------------------------------------------------+
 * |     multicast group address (IPv4, only with flag bit 1)      |  24
 * +-------------------------------+-------------------------------+
 * |     multicast group port      |         reserved (0)          |  28
 * +-------------------------------+-------------------------------+
 * |  stream id: the session id of every datagram sent to the group|  32
 * +---------------------------------------------------------------+
 * |  frame signing key, Ed25519 public key, 32 bytes (only with   |  24 or 36
 * |  flag bit 2)                                                  |
 * +---------------------------------------------------------------+
 * |  signing stream id: the stream id every frame signature       |  56 or 68
 * |  covers (flag bit 2)                                          |
 * +---------------+---------------+---------------+- - - - - - - -+
 * | camera number | cameras served|  name length  | name, ASCII,  |  (flag bit 7: only
 * +---------------+---------------+---------------+ 1..32 bytes ..|   for a CAP_CAMERA hello)
 * +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+
 * | layer groups (flag bit 8, docs/protocol.md 8.1) ...            |
 * +---------------+---------------+---------------+---------------+
 * | codec (1=Opus)|   channels    | packet ms     | reserved (0)  |  (flag bit 9: only
 * +---------------+---------------+---------------+---------------+   for a CAP_AUDIO
 * |             audio bit rate, bits per second (u32)             |   hello to a server
 * +---------------------------------------------------------------+   with audio)
 * |   resume secret (optional, 16 bytes; for a CAP_RESUME hello)  |  after those
 * +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+
 * Flag bit 2 is not set by hand: the encoder sets it exactly when the welcome has
 * `signing` (lib/net/frame-signature.ts says what is signed); a decoded welcome has it.
 *
 * refuse (3, server to client)
 * +---------------+---------------+-------------------------------+
 * |  reason code  |  text length  |  text, UTF-8, 0..200 bytes ...|   0
 * +---------------+---------------+- - - - - - - - - - - - - - - -+
 *
 * heartbeat (4, both ways)
 * +---------------------------------------------------------------+
 * |          sent at, µs since the Unix epoch (u64) ...           |   0
 * |                          ... sent at                          |   4
 * +---------------------------------------------------------------+   8
 *
 * report (5, client to server): cumulative counters
 * +---------------------------------------------------------------+
 * |                        frames received                        |   0
 * |                frames lost (never seen at all)                |   4
 * |             frames incomplete (started, given up)             |   8
 * |                       datagrams dropped                       |  12
 * |                        latency p50, µs                        |  16
 * |                        latency p95, µs                        |  20
 * |                   receive rate, millihertz                    |  24
 * +---------------------------------------------------------------+  28
 * | path counters (optional, only to a WELCOME_PATH_REPORTS server): |
 * |         bytes received, whole datagrams (u64) ...             |  28
 * |                       ... bytes received                      |  32
 * |                      datagrams received                       |  36
 * |        datagrams lost (gaps inside frames it saw)             |  40
 * |     one-way delay trend, µs per second (i32, signed)          |  44
 * +-------------------------------+-------------------------------+
 * | frames the trend is fitted on | standing queue, 0.1 ms + 1    |  48
 * +-------------------------------+-------------------------------+  52
 * | repair counts (optional, after the path counters, only to a WELCOME_REPAIR server): |
 * |   datagrams repaired by parity, by resend, unrepaired;        |  52
 * |   frames recorded only; repair delay p50, p99 (µs); u32 each  |  ..76
 *
 * bye (6, both ways); a viewer's bye may carry its final totals (body 17 bytes),
 * so the server's leave line agrees exactly with the viewer's own count
 * +---------------+
 * |  reason code  |   0
 * +---------------+-----------------------------------------------+
 * |                 frames received (optional)                    |   1
 * |                 frames lost                                   |   5
 * |                 frames incomplete                             |   9
 * |                 frames recorded                               |  13
 * +---------------------------------------------------------------+  17
 *
 * challenge (7, server to client): answers a CAP_TOKEN_AUTH hello when a token is set
 * +---------------------------------------------------------------+
 * |                  server nonce, 32 random bytes                |   0
 * +---------------------------------------------------------------+  32
 *
 * response (8, client to server)
 * +---------------------------------------------------------------+
 * |                  client nonce, 32 random bytes                |   0
 * +---------------------------------------------------------------+
 * |      client proof, HMAC-SHA-256 over the handshake (32)       |  32
 * +---------------------------------------------------------------+  64
 *
 * key (9, server to client, always tagged): a stream key wrapped for this session
 * +-------------------------------+-------------------------------+
 * |            key id             |        reserved (0)           |   0
 * +-------------------------------+-------------------------------+
 * |                  wrap nonce, 12 bytes                         |   4
 * +---------------------------------------------------------------+
 * |     wrapped key: 32 bytes AES-256-GCM ciphertext + 16 tag     |  16
 * +---------------------------------------------------------------+  64
 *
 * fallback (10, client to server): the multicast group does not reach this viewer;
 * send its datagrams to its own UDP port instead
 * +---------------+
 * |  reason code  |   0
 * +---------------+   1
 *
 * delivery (11, server to client, only to a viewer whose welcome set
 * WELCOME_PATH_REPORTS): what the server sends this viewer now. Sent when its layer
 * changes, and about once a second while frames are skipped for it.
 * +---------------+---------------+-------------------------------+
 * |  layer index  |  reserved (0) |  layer width (even, >= 16)    |   0
 * +---------------+---------------+-------------------------------+
 * |  layer height (even, >= 16)   |         reserved (0)          |   4
 * +-------------------------------+-------------------------------+
 * |     rate estimate, bytes per second (0 = not limited)         |   8
 * +---------------------------------------------------------------+
 * |     frames skipped for this viewer (cumulative)               |  12
 * +---------------------------------------------------------------+
 * |     frame number the skipped count covers up to (inclusive)   |  16
 * +---------------------------------------------------------------+  20
 * Layer 0 is the full picture (the welcome's size); a layer is never larger. Skipped
 * frames are whole frames the server chose not to send (pacing), not losses.
 * repair (12, client to server) and gone (13, server to client): loss repair; their
 * bodies are diagrammed in repair.ts.
 *
 * datagram (14, server to client, only to a viewer whose welcome set
 * WELCOME_TCP_DELIVERY and that asked for TCP): one datagram, the exact bytes the UDP
 * path would have sent (sealed and signed as there). Never tagged: the datagram carries
 * its own seal and the frame its signature. The only message that may exceed
 * MAX_MESSAGE_SIZE (up to DATAGRAM_MESSAGE_MAX), and only a reader made for it takes it.
 * +---------------------------------------------------------------+
 * |          datagram, lib/wire/datagram.ts, 1..65507 bytes ...   |   0
 * +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+
 *
 * switch (15, client to server, to a WELCOME_TCP_DELIVERY server): send this viewer's
 * datagrams this way from now on
 * +---------------+---------------+
 * |   transport   |    reason     |   0   transport: 1 udp, 2 tcp
 * +---------------+---------------+   2
 *
 * transport (16, server to client, to a CAP_TCP_DELIVERY viewer): how the server sends
 * to this viewer now, and why it says so
 * +---------------+---------------+-------------------------------+
 * |   transport   |     event     |        reserved (0)           |   0
 * +---------------+---------------+-------------------------------+
 * |     frames sent to it this session (cumulative)               |   4
 * +---------------+-----------------------------------------------+
 * |  text length  |  text, UTF-8, 0..200 bytes (why refused) ...  |   8
 * +---------------+- - - - - - - - - - - - - - - - - - - - - - - -+
 * event: 1 switched (the answer to a switch), 2 silent (frames went by UDP, yet the
 * viewer's reports say none arrived), 3 refused (the switch is not done; text says why).
 *
 * source (17, server to client, to a CAP_SOURCE_STATUS viewer): the camera's state
 * changed; sent when it does, and after the welcome while it is unavailable
 * +---------------+---------------+
 * |     state     | reserved (0)  |   0   state: 1 unavailable (failed, being retried), 2 available
 * +---------------+---------------+   2
 *
 * audio (19, server to client, to a WELCOME_AUDIO viewer): the microphone's state
 * changed (the same body as source); the picture goes on either way
 * +---------------+---------------+
 * |     state     | reserved (0)  |   0   state: 1 unavailable (failed, being retried), 2 available
 * +---------------+---------------+   2
 */

/** Control protocol version carried in hello. */
export const PROTOCOL_VERSION = 1;
/** Largest framed message, prefix included. */
export const MAX_MESSAGE_SIZE = 1024;
/** Bytes of the length prefix. */
export const LENGTH_SIZE = 2;
/** Length prefix plus type byte. */
export const FRAME_HEADER_SIZE = LENGTH_SIZE + 1;
/** "LCAM" as a big-endian u32, first bytes of a hello body. */
export const HELLO_MAGIC = 0x4c43414d;
/** Longest client name, UTF-8 bytes. */
export const MAX_NAME_BYTES = 64;
/** Longest refuse text, UTF-8 bytes. */
export const MAX_REFUSE_TEXT_BYTES = 200;
/** Highest frame rate a welcome may announce, in millihertz (1000 fps). */
export const MAX_FPS_MILLIHERTZ = 1_000_000;

/** Message type numbers on the wire (bits 0-6 of the type byte). */
export const MessageType = {
  Hello: 1,
  Welcome: 2,
  Refuse: 3,
  Heartbeat: 4,
  Report: 5,
  Bye: 6,
  /** The server's nonce for token authentication. */
  Challenge: 7,
  /** The client's nonce and its proof of the token. */
  Response: 8,
  /** A stream key, wrapped for one session. */
  Key: 9,
  /** The viewer gets no multicast: unicast instead. */
  Fallback: 10,
  /** The layer, rate and skipped frames the server sends this viewer now. */
  Delivery: 11,
  /** The viewer asks for the datagrams of a frame it missed. */
  Repair: 12,
  /** The server will not repair these frames. */
  Gone: 13,
  /** One datagram over the control connection (TCP delivery). */
  Datagram: 14,
  /** The viewer asks for its datagrams by UDP or by TCP. */
  Switch: 15,
  /** How the server sends to the viewer now, and why it says so. */
  Transport: 16,
  /** The camera failed and is retried, or is back. */
  Source: 17,
  /** The viewer moved to another layer's multicast group. */
  Layer: 18,
  /** The microphone failed and is retried, or is back. */
  Audio: 19,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Type byte bit 7: a 16-byte authentication tag ends the message. */
export const TAGGED_BIT = 0x80;
/** Bytes of a control message's authentication tag. */
export const CONTROL_TAG_SIZE = 16;
/** Bytes of each side's handshake nonce. */
export const NONCE_SIZE = 32;
/** Bytes of the client's proof (an HMAC-SHA-256). */
export const PROOF_SIZE = 32;
/** Bytes of the resume secret a welcome gives and a reconnecting hello returns. */
export const RESUME_SECRET_SIZE = 16;
/** Bytes of a key message's wrap nonce (AES-GCM's 96 bits). */
export const WRAP_NONCE_SIZE = 12;
/** Bytes of a wrapped stream key: the 32-byte key and its 16-byte GCM tag. */
export const WRAPPED_KEY_SIZE = 48;

/** hello capability bit 0: the client can answer a token challenge. */
export const CAP_TOKEN_AUTH = 0x1;
/** hello capability bit 1: the client can decrypt frames. */
export const CAP_DECRYPT = 0x2;
/** hello capability bit 2: the client keeps a welcome's resume secret and presents it when it reconnects. */
export const CAP_RESUME = 0x4;
/** hello capability bit 3: the client can join a multicast group and ask for unicast when nothing arrives. */
export const CAP_MULTICAST = 0x8;
/** hello capability bit 4: the client checks every frame's signature against the welcome's signing key. */
export const CAP_VERIFY = 0x10;
/** hello capability bit 5: the client understands WELCOME_PATH_REPORTS and then adds path counters to its reports. */
export const CAP_PATH_REPORTS = 0x20;
/** hello capability bit 6: the client asks for lost datagrams (repair, gone) and takes parity datagrams. */
export const CAP_REPAIR = 0x40;
/** hello capability bit 7: the client takes datagram messages and speaks switch and transport (TCP delivery). */
export const CAP_TCP_DELIVERY = 0x80;
/** hello capability bit 8: the client understands WELCOME_SOURCE_STATUS and source messages. */
export const CAP_SOURCE_STATUS = 0x100;
/**
 * hello capability bit 9: the hello names the camera it wants after its name (empty: camera
 * 0) and the client understands WELCOME_CAMERA. Derived from `Hello.camera` by the encoder.
 */
export const CAP_CAMERA = 0x200;
/**
 * hello capability bit 10: the client understands WELCOME_MULTICAST_LAYERS, picks its
 * own layer's group by its loss and says which with layer messages.
 */
export const CAP_MULTICAST_LAYERS = 0x400;
/**
 * hello capability bit 11: the client plays audio datagrams (payload type 2) and
 * understands WELCOME_AUDIO and audio messages. A server sends audio only to such a viewer.
 */
export const CAP_AUDIO = 0x800;

/** welcome server flag bit 0: frames are encrypted; a key message follows the welcome. */
export const WELCOME_ENCRYPTED = 0x1;
/** welcome server flag bit 1: datagrams go to a multicast group, named in the welcome. */
export const WELCOME_MULTICAST = 0x2;
/**
 * welcome server flag bit 2: every frame ends with the server's signature; the welcome
 * carries the key. Derived from `Welcome.signing` by the encoder.
 */
export const WELCOME_SIGNED = 0x4;
/** welcome server flag bit 3: the server paces to the viewer's path; reports may carry path counters. */
export const WELCOME_PATH_REPORTS = 0x8;
/** welcome server flag bit 4: the server answers repair messages and may send parity datagrams; set only for a CAP_REPAIR hello. */
export const WELCOME_REPAIR = 0x10;
/** welcome server flag bit 5: the server understands switch messages (it may still refuse TCP); set only for a CAP_TCP_DELIVERY hello. */
export const WELCOME_TCP_DELIVERY = 0x20;
/** welcome server flag bit 6: the server tells this viewer when its camera fails and when it is back (source messages). */
export const WELCOME_SOURCE_STATUS = 0x40;
/** welcome server flag bit 7: the welcome names the camera it serves (only for a CAP_CAMERA hello). Derived from `Welcome.camera` by the encoder. */
export const WELCOME_CAMERA = 0x80;
/**
 * welcome server flag bit 8: each smaller layer has its own multicast group, listed in
 * the welcome (only for a CAP_MULTICAST_LAYERS hello welcomed to a group). Derived from
 * `Welcome.layerGroups` by the encoder.
 */
export const WELCOME_MULTICAST_LAYERS = 0x100;
/**
 * welcome server flag bit 9: the stream has audio, sent to this viewer as audio datagrams;
 * the welcome's audio block says its format (only for a CAP_AUDIO hello). Derived from
 * `Welcome.audio` by the encoder.
 */
export const WELCOME_AUDIO = 0x200;
const WELCOME_KNOWN_FLAGS = WELCOME_ENCRYPTED | WELCOME_MULTICAST | WELCOME_SIGNED | WELCOME_PATH_REPORTS | WELCOME_REPAIR | WELCOME_TCP_DELIVERY | WELCOME_SOURCE_STATUS | WELCOME_CAMERA | WELCOME_MULTICAST_LAYERS | WELCOME_AUDIO;
/** Bytes of the welcome's audio block. */
export const WELCOME_AUDIO_SIZE = 8;
/** The audio codec numbers of the welcome's audio block. */
export const AudioCodec = { Opus: 1 } as const;
/** Packet durations a welcome may announce, ms (Opus's). */
export const AUDIO_FRAME_MS = [10, 20, 40, 60] as const;
/** The audio bit rates a welcome may announce, bits per second (libopus's range). */
export const AUDIO_BITRATE_RANGE = { min: 6_000, max: 510_000 } as const;
/** Bytes of one entry of a welcome's layer groups block: address, port, width, height, reserved, stream id. */
export const WELCOME_LAYER_GROUP_SIZE = 16;
/** Longest camera selector or name on the wire (lib/wire/camera-name.ts MAX_CAMERA_NAME). */
export const MAX_CAMERA_BYTES = 32;
/** Cameras a welcome may say the server has. */
export const MAX_WELCOME_CAMERAS = 8;
/** Bytes of a welcome's multicast block: group address, port, reserved, stream id. */
export const WELCOME_MULTICAST_SIZE = 12;
/** Bytes of an Ed25519 public key. */
export const SIGNING_KEY_SIZE = 32;
/** Bytes of a welcome's signing block: the public key and the signing stream id. */
export const WELCOME_SIGNING_SIZE = SIGNING_KEY_SIZE + 4;

/** Layers a delivery message may name (indices 0..MAX_DELIVERY_LAYERS-1); lib/send/layer-ladder.ts MAX_LAYERS must not exceed it. */
export const MAX_DELIVERY_LAYERS = 4;
/** Smallest side of a layer a delivery message may announce. */
export const MIN_LAYER_SIDE = 16;

/** Why a server refuses a hello. */
export const RefuseReason = { VersionMismatch: 1, ServerFull: 2, BadHello: 3, AuthRequired: 4, NoSuchCamera: 5, Other: 255 } as const;
export type RefuseReason = (typeof RefuseReason)[keyof typeof RefuseReason];

/** Why a viewer asks for unicast instead of the multicast group. */
export const FallbackReason = {
  /** No datagram from the group arrived within the deadline after the welcome (a switch, Wi-Fi or router that blocks it). */
  Silent: 1,
  /** The viewer could not join the group (no such interface, the port taken). */
  JoinFailed: 2,
} as const;
export type FallbackReason = (typeof FallbackReason)[keyof typeof FallbackReason];

/** Why either side ends a session. */
export const ByeReason = { UserQuit: 1, Shutdown: 2, Timeout: 3, ProtocolError: 4, Other: 255 } as const;
export type ByeReason = (typeof ByeReason)[keyof typeof ByeReason];

const REFUSE_TEXT: Record<number, string> = {
  [RefuseReason.VersionMismatch]: "protocol version mismatch",
  [RefuseReason.ServerFull]: "server full",
  [RefuseReason.BadHello]: "bad hello",
  [RefuseReason.AuthRequired]: "authentication required",
  [RefuseReason.NoSuchCamera]: "no such camera",
  [RefuseReason.Other]: "other reason",
};

/** How a viewer's datagrams travel. */
export const TransportCode = { Udp: 1, Tcp: 2 } as const;
/** A transport's name, as logs and status pages say it. */
export type TransportName = "udp" | "tcp";
const TRANSPORT_NAME: Record<number, TransportName> = { [TransportCode.Udp]: "udp", [TransportCode.Tcp]: "tcp" };
const TRANSPORT_CODE: Record<TransportName, number> = { udp: TransportCode.Udp, tcp: TransportCode.Tcp };

/** Why a viewer asks to switch. */
export const SwitchReason = {
  /** Frames were sent by UDP and none arrived (a firewall). */
  Silent: 1,
  /** The user asked for it (`--transport tcp`). */
  Asked: 2,
  /** Trying UDP again after a while on TCP. */
  Retry: 3,
} as const;
export type SwitchReason = (typeof SwitchReason)[keyof typeof SwitchReason];
const SWITCH_TEXT: Record<number, string> = { [SwitchReason.Silent]: "nothing arrived", [SwitchReason.Asked]: "asked by the user", [SwitchReason.Retry]: "trying udp again" };

/** What a transport message says. */
export const TransportEvent = { Switched: 1, Silent: 2, Refused: 3 } as const;
export type TransportEvent = (typeof TransportEvent)[keyof typeof TransportEvent];
const TRANSPORT_EVENTS = new Set<number>(Object.values(TransportEvent));

/** Human text for a switch reason code. */
export function switchReasonText(code: number): string {
  return SWITCH_TEXT[code] ?? `unknown switch reason ${hex(code)}`;
}

const BYE_TEXT: Record<number, string> = {
  [ByeReason.UserQuit]: "user quit",
  [ByeReason.Shutdown]: "server shutting down",
  [ByeReason.Timeout]: "timeout",
  [ByeReason.ProtocolError]: "protocol error",
  [ByeReason.Other]: "other reason",
};

const FALLBACK_TEXT: Record<number, string> = {
  [FallbackReason.Silent]: "no multicast datagram arrived",
  [FallbackReason.JoinFailed]: "could not join the multicast group",
};

/** Human text for a fallback reason code (unknown codes say so, with the code in hex). */
export function fallbackReasonText(code: number): string {
  return FALLBACK_TEXT[code] ?? `unknown fallback reason ${hex(code)}`;
}

/** Human text for a refuse reason code (unknown codes say so, with the code in hex). */
export function refuseReasonText(code: number): string {
  return REFUSE_TEXT[code] ?? `unknown refuse reason ${hex(code)}`;
}

/** Human text for a bye reason code (unknown codes say so, with the code in hex). */
export function byeReasonText(code: number): string {
  return BYE_TEXT[code] ?? `unknown bye reason ${hex(code)}`;
}

/**
 * Every message may end with an authentication tag (after the handshake, every one
 * does). The codec carries it; lib/net/control-mac.ts makes and checks it.
 */
interface Taggable {
  /** CONTROL_TAG_SIZE bytes; present when the type byte's T bit is set. */
  tag?: Uint8Array;
}

/** Client to server, first message: who I am and where to send frames. */
export interface Hello extends Taggable {
  type: "hello";
  /** PROTOCOL_VERSION when sending; a decoded hello always has it (others are a bad-version error). */
  version: number;
  /** UDP port the client receives frames on, 1..65535. */
  udpPort: number;
  /** Bitfield, CAP_*; unknown bits are ignored by the server. */
  capabilities: number;
  /** Free text for logs, at most MAX_NAME_BYTES of UTF-8, no control characters. */
  name: string;
  /**
   * The camera wanted: its number ("1") or name ("board"), "" for camera 0; at most
   * MAX_CAMERA_BYTES of printable ASCII. The encoder sets CAP_CAMERA exactly when present.
   */
  camera?: string;
  /** RESUME_SECRET_SIZE bytes from the previous session's welcome, when reconnecting. */
  resume?: Uint8Array;
}

/** Server to client: the session and what the stream looks like. */
export interface Welcome extends Taggable {
  type: "welcome";
  sessionId: number;
  width: number;
  height: number;
  /** Frames per second times 1000. */
  fpsMillihertz: number;
  /** Payload bytes per datagram (all but a frame's last). */
  fragmentSize: number;
  /** The port datagrams come from: the client drops datagrams from any other. */
  udpSourcePort: number;
  /** How often each side sends a heartbeat. */
  heartbeatMs: number;
  /** Silence after which either side ends the session; more than heartbeatMs. */
  timeoutMs: number;
  /** Server flags: WELCOME_ENCRYPTED, WELCOME_MULTICAST, WELCOME_SIGNED (set on the wire from `signing`), any or 0. */
  flags: number;
  /** Where the datagrams go: present exactly when flags has WELCOME_MULTICAST. */
  multicast?: MulticastGroup;
  /** Every frame is signed with this key: the encoder sets WELCOME_SIGNED exactly when it is present. */
  signing?: FrameSigning;
  /** The camera this session shows, of `count` the server has; the encoder sets WELCOME_CAMERA exactly when present. */
  camera?: WelcomeCamera;
  /**
   * The smaller layers' groups (layer 1, 2, ...), at the multicast group's address; the
   * encoder sets WELCOME_MULTICAST_LAYERS exactly when present (and non-empty).
   */
  layerGroups?: LayerGroup[];
  /** The stream's audio; the encoder sets WELCOME_AUDIO exactly when present. */
  audio?: WelcomeAudio;
  /** RESUME_SECRET_SIZE bytes the viewer presents when it reconnects; only for a CAP_RESUME hello. */
  resume?: Uint8Array;
}

/** The audio a welcome announces: Opus at 48 kHz. */
export interface WelcomeAudio {
  codec: "opus";
  channels: 1 | 2;
  /** Duration of one packet, one of AUDIO_FRAME_MS. */
  frameMs: number;
  /** The encoder's target, bits per second. */
  bitrate: number;
}

/** Which camera a welcome's session shows. */
export interface WelcomeCamera {
  /** Its number, 0..count-1. */
  index: number;
  /** Cameras the server has, 1..MAX_WELCOME_CAMERAS. */
  count: number;
  /** Its name (its number as text when it has none), 1..MAX_CAMERA_BYTES of printable ASCII. */
  name: string;
}

/**
 * One smaller layer's multicast group: an address of its own (IGMP joins and leaves
 * addresses, not ports, so only a group of its own stops reaching a viewer that leaves
 * it), its port and its stream id.
 */
export interface LayerGroup {
  /** IPv4 dotted quad in 224.0.0.0/4. */
  address: string;
  /** UDP port, 1..65535. */
  port: number;
  /** The layer's picture size: even sides, at least MIN_LAYER_SIDE. */
  width: number;
  height: number;
  /** The session id of every datagram sent to this layer's group. */
  streamId: number;
}

/** A multicast group the stream is sent to, once for every viewer in it. */
export interface MulticastGroup {
  /** IPv4 dotted quad in 224.0.0.0/4. */
  address: string;
  /** UDP port, 1..65535. */
  port: number;
  /** The session id every datagram sent to the group carries (per-viewer ids would mean a copy per viewer). */
  streamId: number;
}

/** What a viewer needs to check every frame's signature. */
export interface FrameSigning {
  /** SIGNING_KEY_SIZE bytes: the server's Ed25519 public key. */
  publicKey: Uint8Array;
  /** u32 the signatures cover, new at every server start, so a frame of one run is no frame of another. */
  streamId: number;
}

/** Server to client instead of welcome; the server closes after it. */
export interface Refuse extends Taggable {
  type: "refuse";
  reason: RefuseReason;
  /** Details for the user, at most MAX_REFUSE_TEXT_BYTES of UTF-8, may be empty. */
  text: string;
}

/** Both ways, every heartbeatMs: any message proves liveness, this one carries a clock. */
export interface Heartbeat extends Taggable {
  type: "heartbeat";
  /** Sender's wall clock, µs since the Unix epoch. */
  sentAt: number;
}

/** Client to server once a second; cumulative counters, clamped to 0xFFFFFFFF on encode. */
export interface Report extends Taggable {
  type: "report";
  framesReceived: number;
  framesLost: number;
  framesIncomplete: number;
  datagramsDropped: number;
  latencyP50Us: number;
  latencyP95Us: number;
  fpsMillihertz: number;
  /** What the viewer measured of its path, for the server's rate estimate; only to a WELCOME_PATH_REPORTS server. */
  path?: PathCounters;
  /** What its loss repair did, for the server's status pages; only to a WELCOME_REPAIR server, and only after `path`. */
  repair?: RepairCounts;
}

/** A repairing viewer's counts since it started (across reconnects), cumulative; each clamped to 0xFFFFFFFF. */
export interface RepairCounts {
  datagramsRepairedByFec: number;
  datagramsRepairedByNack: number;
  /** Datagrams of frames given up for good. */
  datagramsUnrepaired: number;
  /** Frames complete too late for the live view, in time for the recorder. */
  framesRecordOnly: number;
  /** The repair's added delay over the session's repaired frames, µs; 0 while none. */
  repairDelayP50Us: number;
  repairDelayP99Us: number;
}

/** A viewer's measure of its path, cumulative for the session except the delay trend (last interval). */
export interface PathCounters {
  /** Bytes of the datagrams that arrived (header and tag included), clamped to 2^53-1. */
  bytesReceived: number;
  /** Datagrams that arrived, clamped to 0xFFFFFFFF. */
  datagramsReceived: number;
  /** Datagrams missing inside the frames it saw, clamped to 0xFFFFFFFF. */
  datagramsLost: number;
  /** Slope of (arrival − capture time) over the last interval's frames, µs per second, -2^31..2^31-1. */
  delayTrendUsPerS: number;
  /** Frames that slope was fitted on, clamped to 0xFFFF. */
  delaySamples: number;
  /**
   * The standing queue on the path, ms: the interval's smallest one-way delay above the
   * smallest of the last seconds (lib/receive/path-meter.ts). Sent in 0.1 ms units plus
   * one, so 0 on the wire (what the first viewers with path counters sent) is "not
   * measured"; clamped to 6553.4 ms.
   */
  queueDelayMs?: number;
}

/** The largest standing queue a report can carry, ms. */
export const MAX_QUEUE_DELAY_MS = 6553.4;

/** A viewer's final counts, sent with its bye (cumulative, clamped to 0xFFFFFFFF on encode). */
export interface ByeTotals {
  framesReceived: number;
  framesLost: number;
  framesIncomplete: number;
  framesRecorded: number;
}

/** Both ways: the session ends. A viewer's bye may carry its final totals. */
export interface Bye extends Taggable {
  type: "bye";
  reason: ByeReason;
  totals?: ByeTotals;
}

/** Server to client after a CAP_TOKEN_AUTH hello when the server has a token. */
export interface Challenge extends Taggable {
  type: "challenge";
  /** NONCE_SIZE random bytes. */
  serverNonce: Uint8Array;
}

/** Client to server: its nonce and the proof that it holds the token. */
export interface Response extends Taggable {
  type: "response";
  /** NONCE_SIZE random bytes. */
  clientNonce: Uint8Array;
  /** PROOF_SIZE bytes: HMAC-SHA-256 over the handshake (lib/net/session-keys.ts). */
  proof: Uint8Array;
}

/** Server to client: a stream key, wrapped under this session's key-wrap key. */
export interface Key extends Taggable {
  type: "key";
  /** Names the key in the datagram header of every frame it encrypts. */
  keyId: number;
  /** WRAP_NONCE_SIZE bytes, never repeated for one session's wrap key. */
  nonce: Uint8Array;
  /** WRAPPED_KEY_SIZE bytes: AES-256-GCM ciphertext of the key, then its tag. */
  wrapped: Uint8Array;
}

/** Client to server: the multicast group does not reach this viewer; send it unicast. */
export interface Fallback extends Taggable {
  type: "fallback";
  reason: FallbackReason;
}

/**
 * Server to a WELCOME_PATH_REPORTS viewer: the layer it is sent now, the server's rate
 * estimate, and how many frames it skipped for the viewer (so they are not counted lost).
 */
export interface Delivery extends Taggable {
  type: "delivery";
  /** 0 = the full picture, 1.. ever smaller; below MAX_DELIVERY_LAYERS. */
  layer: number;
  /** The layer's picture size: even sides, at least MIN_LAYER_SIDE, within the welcome's size (the viewer checks that). */
  width: number;
  height: number;
  /** The server's estimate of this viewer's path, bytes per second; 0 = not limited. Clamped to 0xFFFFFFFF on encode. */
  rateBytesPerS: number;
  /** Whole frames the server skipped for this viewer this session, cumulative; clamped to 0xFFFFFFFF on encode. */
  framesSkipped: number;
  /** The frame number up to which (inclusive) framesSkipped counts: a gap after it may still be a skip or a loss. */
  skippedThrough: number;
}

/** Client to server: resend these fragments of these frames (lib/wire/repair.ts). */
export interface Repair extends Taggable, RepairBody {
  type: "repair";
}

/** Server to client: these frames will not be resent. */
export interface Gone extends Taggable, GoneBody {
  type: "gone";
}

/** Server to a viewer on TCP delivery: one datagram, exactly as UDP would carry it. */
export interface DatagramMessage extends Taggable {
  type: "datagram";
  /** 1..MAX_DATAGRAM_SIZE bytes. */
  bytes: Uint8Array;
}

/** Client to server: send this viewer's datagrams by `transport` from now on. */
export interface Switch extends Taggable {
  type: "switch";
  transport: TransportName;
  reason: SwitchReason;
}

/** Server to client: how it sends now; `event` says why it tells. */
export interface Transport extends Taggable {
  type: "transport";
  transport: TransportName;
  event: TransportEvent;
  /** Frames sent to the viewer this session, cumulative; clamped to 0xFFFFFFFF on encode. */
  framesSent: number;
  /** Why a switch was refused (at most MAX_REFUSE_TEXT_BYTES of UTF-8); may be empty. */
  text: string;
}

/** The camera's state in a source message. */
export const SourceState = {
  /** It failed (unplugged, gone quiet, the file ended) and is being retried; viewers stay connected. */
  Unavailable: 1,
  /** It delivers again. */
  Available: 2,
} as const;
export type SourceState = (typeof SourceState)[keyof typeof SourceState];

/** Server to client: the camera failed and is retried, or is back. */
export interface SourceStatus extends Taggable {
  type: "source";
  state: SourceState;
}

/** Server to client: the microphone failed and is retried, or is back. */
export interface AudioStatus extends Taggable {
  type: "audio";
  state: SourceState;
}

/**
 * Client to server, in a WELCOME_MULTICAST_LAYERS session: the viewer is now in layer
 * `layer`'s group (0: the full layer's, the welcome's multicast block), and left the one before.
 */
export interface LayerMessage extends Taggable {
  type: "layer";
  /** 0..MAX_DELIVERY_LAYERS-1; the server ends a session naming a layer it does not have. */
  layer: number;
}

/** Any control message. */
export type ControlMessage = Hello | Welcome | Refuse | Heartbeat | Report | Bye | Challenge | Response | Key | Fallback | Delivery | Repair | Gone | DatagramMessage | Switch | Transport | SourceStatus | LayerMessage | AudioStatus;

const TYPE_OF: Record<ControlMessage["type"], MessageType> = {
  hello: MessageType.Hello,
  welcome: MessageType.Welcome,
  refuse: MessageType.Refuse,
  heartbeat: MessageType.Heartbeat,
  report: MessageType.Report,
  bye: MessageType.Bye,
  challenge: MessageType.Challenge,
  response: MessageType.Response,
  key: MessageType.Key,
  fallback: MessageType.Fallback,
  delivery: MessageType.Delivery,
  repair: MessageType.Repair,
  gone: MessageType.Gone,
  datagram: MessageType.Datagram,
  switch: MessageType.Switch,
  transport: MessageType.Transport,
  source: MessageType.Source,
  layer: MessageType.Layer,
  audio: MessageType.Audio,
};
/** Largest framed datagram message: prefix, type and a datagram of MAX_DATAGRAM_SIZE. */
export const DATAGRAM_MESSAGE_MAX = FRAME_HEADER_SIZE + MAX_DATAGRAM_SIZE;

const HELLO_FIXED = 12;
const WELCOME_SIZE = 24;
const REFUSE_FIXED = 2;
const HEARTBEAT_SIZE = 8;
const SOURCE_SIZE = 2;
const LAYER_SIZE = 2;
const REPORT_SIZE = 28;
const REPORT_PATH_SIZE = 24;
const REPORT_REPAIR_SIZE = 24;
const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;
const BYE_SIZE = 1;
const BYE_TOTALS_SIZE = 16;
const CHALLENGE_SIZE = NONCE_SIZE;
const RESPONSE_SIZE = NONCE_SIZE + PROOF_SIZE;
const KEY_SIZE = 4 + WRAP_NONCE_SIZE + WRAPPED_KEY_SIZE;
const FALLBACK_SIZE = 1;
const DELIVERY_SIZE = 20;
const SWITCH_SIZE = 2;
const TRANSPORT_FIXED = 9;
/** An encrypted datagram's payload also carries a GCM tag, so its fragments are that much smaller. */
const MIN_FRAGMENT_SIZE = MIN_MTU - DATAGRAM_HEADER_SIZE - DATAGRAM_TAG_SIZE;
const U32_MAX = 0xffffffff;
// Control characters would let a peer forge log lines or terminal escapes.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /\p{Cs}/u;

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: keep a leading U+FEFF so bytes round-trip.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------- encoding

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${what}=${v}: expected an integer ${min}..${max}`);
}

function checkText(what: string, s: string, maxBytes: number): Uint8Array {
  if (CONTROL_CHARS.test(s)) throw new RangeError(`${what} ${JSON.stringify(s)} contains control characters`);
  // UTF-8 cannot carry half a surrogate pair: TextEncoder would send U+FFFD instead, another text.
  if (LONE_SURROGATE.test(s)) throw new RangeError(`${what} ${JSON.stringify(s)} is not well-formed Unicode (a lone surrogate)`);
  const bytes = utf8Encoder.encode(s);
  if (bytes.length > maxBytes) throw new RangeError(`${what} is ${bytes.length} bytes of UTF-8, at most ${maxBytes} allowed`);
  return bytes;
}

/** Printable ASCII: a camera's number or name (lib/wire/camera-name.ts is stricter about names). */
const CAMERA_TEXT = /^[\x21-\x7e]*$/;
const ascii = new TextEncoder();

function checkCamera(what: string, s: string, minBytes: number): void {
  if (!CAMERA_TEXT.test(s)) throw new RangeError(`${what} ${JSON.stringify(s)}: only printable ASCII without spaces`);
  if (s.length < minBytes || s.length > MAX_CAMERA_BYTES) throw new RangeError(`${what} is ${s.length} bytes, ${minBytes}..${MAX_CAMERA_BYTES} allowed`);
}

/** Why `name` cannot be a viewer name (control characters, too long), or null when it can. */
export function nameProblem(name: string): string | null {
  try {
    checkText("name", name, MAX_NAME_BYTES);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Counters are cumulative: past u32 they stick at the maximum rather than wrap. */
/** A standing queue in ms as the report's u16: 0.1 ms units plus one, 0 when not measured. */
function encodeQueueDelay(ms: number | undefined): number {
  if (ms === undefined) return 0;
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`path queueDelayMs ${ms}: expected a finite number >= 0`);
  return Math.min(0xffff, Math.round(ms * 10) + 1);
}

function clampU32(what: string, v: number): number {
  if (!(v >= 0) || !Number.isFinite(v) || !Number.isInteger(v)) throw new RangeError(`report ${what}=${v}: expected a non-negative integer`);
  return Math.min(v, U32_MAX);
}

/** As clampU32, with the field's own name in the error. */
function clampCount(what: string, v: number): number {
  if (!(v >= 0) || !Number.isFinite(v) || !Number.isInteger(v)) throw new RangeError(`${what}=${v}: expected a non-negative integer`);
  return Math.min(v, U32_MAX);
}

/** A layer side: even (JPEG chroma subsampling), MIN_LAYER_SIDE..65534. */
function checkSide(what: string, v: number): void {
  checkInt(what, v, MIN_LAYER_SIDE, 0xfffe);
  if (v % 2 !== 0) throw new RangeError(`${what}=${v}: expected an even number`);
}

/** As clampU32, for a counter carried in a u64 but read back as a JavaScript number. */
function clampU53(what: string, v: number): number {
  if (!(v >= 0) || !Number.isFinite(v) || !Number.isInteger(v)) throw new RangeError(`report ${what}=${v}: expected a non-negative integer`);
  return Math.min(v, Number.MAX_SAFE_INTEGER);
}

/** A dotted-quad IPv4 multicast address (224.0.0.0/4) as its u32; RangeError otherwise. */
function checkGroupAddress(what: string, address: string): number {
  const v = parseIPv4(address);
  if (v === null || !isMulticastIPv4(v)) throw new RangeError(`${what}=${JSON.stringify(address)}: expected an IPv4 multicast address 224.0.0.0-239.255.255.255`);
  return v;
}

/** A dotted-quad IPv4 address (four decimal parts 0..255, no leading zeros) as its u32, or null. */
export function parseIPv4(s: string): number | null {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
  if (!m) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) return null;
    v = v * 256 + part;
  }
  return v;
}

/** The dotted quad of a u32. */
export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** Whether a u32 IPv4 address is a multicast group (224.0.0.0/4). */
export function isMulticastIPv4(v: number): boolean {
  return v >>> 28 === 0xe;
}

function checkBytes(what: string, b: Uint8Array | undefined, size: number): Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== size) throw new RangeError(`${what} must be ${size} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
  return b;
}

/**
 * The framed bytes (length prefix, type, body, and the tag when `msg.tag` is set) of
 * one message. Throws RangeError for values the format cannot carry (a bug in the sender).
 */
export function encodeControl(msg: ControlMessage): Uint8Array {
  let bodySize: number;
  let text: Uint8Array | null = null;
  let groupAddress = 0;
  // Repair and gone bodies are encoded (and checked) by repair.ts, then copied in.
  let repairBody: Uint8Array = new Uint8Array(0);
  switch (msg.type) {
    case "hello":
      checkInt("hello version", msg.version, 0, 0xff);
      checkInt("hello udpPort", msg.udpPort, 1, 0xffff);
      checkInt("hello capabilities", msg.capabilities, 0, U32_MAX);
      text = checkText("hello name", msg.name, MAX_NAME_BYTES);
      if (msg.camera !== undefined) checkCamera("hello camera", msg.camera, 0);
      if (msg.capabilities & CAP_CAMERA && msg.camera === undefined) throw new RangeError("hello capabilities: CAP_CAMERA without a camera");
      if (msg.resume !== undefined) checkBytes("hello resume", msg.resume, RESUME_SECRET_SIZE);
      bodySize = HELLO_FIXED + text.length + (msg.camera !== undefined ? 1 + msg.camera.length : 0) + (msg.resume ? RESUME_SECRET_SIZE : 0);
      break;
    case "welcome":
      checkInt("welcome sessionId", msg.sessionId, 0, U32_MAX);
      checkInt("welcome width", msg.width, 1, 0xffff);
      checkInt("welcome height", msg.height, 1, 0xffff);
      checkInt("welcome fpsMillihertz", msg.fpsMillihertz, 1, MAX_FPS_MILLIHERTZ);
      checkInt("welcome fragmentSize", msg.fragmentSize, MIN_FRAGMENT_SIZE, MAX_FRAGMENT_SIZE);
      checkInt("welcome udpSourcePort", msg.udpSourcePort, 1, 0xffff);
      checkInt("welcome heartbeatMs", msg.heartbeatMs, 1, 0xfffe);
      checkInt("welcome timeoutMs", msg.timeoutMs, msg.heartbeatMs + 1, 0xffff);
      checkInt("welcome flags", msg.flags, 0, U32_MAX);
      if (msg.flags & ~WELCOME_KNOWN_FLAGS) throw new RangeError(`welcome flags=${msg.flags}: only WELCOME_ENCRYPTED, WELCOME_MULTICAST, WELCOME_SIGNED, WELCOME_PATH_REPORTS, WELCOME_REPAIR, WELCOME_TCP_DELIVERY, WELCOME_SOURCE_STATUS, WELCOME_CAMERA and WELCOME_MULTICAST_LAYERS are defined`);
      if (msg.flags & WELCOME_SIGNED && !msg.signing) throw new RangeError("welcome flags: WELCOME_SIGNED without a signing key");
      if (!!(msg.flags & WELCOME_MULTICAST) !== (msg.multicast !== undefined)) throw new RangeError("welcome multicast: the group must be given exactly when WELCOME_MULTICAST is set");
      if (msg.multicast) {
        groupAddress = checkGroupAddress("welcome multicast address", msg.multicast.address);
        checkInt("welcome multicast port", msg.multicast.port, 1, 0xffff);
        checkInt("welcome multicast streamId", msg.multicast.streamId, 0, U32_MAX);
      }
      if (msg.signing !== undefined) {
        checkBytes("welcome signing publicKey", msg.signing.publicKey, SIGNING_KEY_SIZE);
        checkInt("welcome signing streamId", msg.signing.streamId, 0, U32_MAX);
      }
      if (msg.flags & WELCOME_CAMERA && !msg.camera) throw new RangeError("welcome flags: WELCOME_CAMERA without a camera");
      if (msg.camera !== undefined) {
        checkInt("welcome camera count", msg.camera.count, 1, MAX_WELCOME_CAMERAS);
        checkInt("welcome camera index", msg.camera.index, 0, msg.camera.count - 1);
        checkCamera("welcome camera name", msg.camera.name, 1);
      }
      if (msg.flags & WELCOME_MULTICAST_LAYERS && !msg.layerGroups) throw new RangeError("welcome flags: WELCOME_MULTICAST_LAYERS without layer groups");
      if (msg.layerGroups !== undefined) {
        if (!msg.multicast) throw new RangeError("welcome layerGroups: only with a multicast group");
        checkInt("welcome layerGroups count", msg.layerGroups.length, 1, MAX_DELIVERY_LAYERS - 1);
        for (const g of msg.layerGroups) {
          checkGroupAddress("welcome layer group address", g.address);
          checkInt("welcome layer group port", g.port, 1, 0xffff);
          checkSide("welcome layer group width", g.width);
          checkSide("welcome layer group height", g.height);
          checkInt("welcome layer group streamId", g.streamId, 0, U32_MAX);
        }
      }
      if (msg.flags & WELCOME_AUDIO && !msg.audio) throw new RangeError("welcome flags: WELCOME_AUDIO without an audio block");
      if (msg.audio !== undefined) {
        if (msg.audio.codec !== "opus") throw new RangeError(`welcome audio codec=${JSON.stringify(msg.audio.codec)}: expected opus`);
        checkInt("welcome audio channels", msg.audio.channels, 1, 2);
        if (!(AUDIO_FRAME_MS as readonly number[]).includes(msg.audio.frameMs)) throw new RangeError(`welcome audio frameMs=${msg.audio.frameMs}: expected one of ${AUDIO_FRAME_MS.join(", ")}`);
        checkInt("welcome audio bitrate", msg.audio.bitrate, AUDIO_BITRATE_RANGE.min, AUDIO_BITRATE_RANGE.max);
      }
      if (msg.resume !== undefined) checkBytes("welcome resume", msg.resume, RESUME_SECRET_SIZE);
      bodySize = WELCOME_SIZE + (msg.multicast ? WELCOME_MULTICAST_SIZE : 0) + (msg.signing ? WELCOME_SIGNING_SIZE : 0) + (msg.camera ? 3 + msg.camera.name.length : 0) + (msg.layerGroups ? 2 + WELCOME_LAYER_GROUP_SIZE * msg.layerGroups.length : 0) + (msg.audio ? WELCOME_AUDIO_SIZE : 0) + (msg.resume ? RESUME_SECRET_SIZE : 0);
      break;
    case "refuse":
      if (!Object.hasOwn(REFUSE_TEXT, msg.reason)) throw new RangeError(`refuse reason=${msg.reason} is not a known reason code`);
      text = checkText("refuse text", msg.text, MAX_REFUSE_TEXT_BYTES);
      bodySize = REFUSE_FIXED + text.length;
      break;
    case "heartbeat":
      checkInt("heartbeat sentAt", msg.sentAt, 0, Number.MAX_SAFE_INTEGER);
      bodySize = HEARTBEAT_SIZE;
      break;
    case "report":
      if (msg.path) checkInt("report path delayTrendUsPerS", msg.path.delayTrendUsPerS, I32_MIN, I32_MAX);
      if (msg.repair && !msg.path) throw new RangeError("report repair counts need the path counters before them");
      bodySize = REPORT_SIZE + (msg.path ? REPORT_PATH_SIZE : 0) + (msg.repair ? REPORT_REPAIR_SIZE : 0);
      break;
    case "bye":
      if (!Object.hasOwn(BYE_TEXT, msg.reason)) throw new RangeError(`bye reason=${msg.reason} is not a known reason code`);
      bodySize = BYE_SIZE + (msg.totals ? BYE_TOTALS_SIZE : 0);
      break;
    case "challenge":
      checkBytes("challenge serverNonce", msg.serverNonce, NONCE_SIZE);
      bodySize = CHALLENGE_SIZE;
      break;
    case "response":
      checkBytes("response clientNonce", msg.clientNonce, NONCE_SIZE);
      checkBytes("response proof", msg.proof, PROOF_SIZE);
      bodySize = RESPONSE_SIZE;
      break;
    case "key":
      checkInt("key keyId", msg.keyId, 0, 0xffff);
      checkBytes("key nonce", msg.nonce, WRAP_NONCE_SIZE);
      checkBytes("key wrapped", msg.wrapped, WRAPPED_KEY_SIZE);
      bodySize = KEY_SIZE;
      break;
    case "fallback":
      if (!Object.hasOwn(FALLBACK_TEXT, msg.reason)) throw new RangeError(`fallback reason=${msg.reason} is not a known reason code`);
      bodySize = FALLBACK_SIZE;
      break;
    case "delivery":
      checkInt("delivery layer", msg.layer, 0, MAX_DELIVERY_LAYERS - 1);
      checkSide("delivery width", msg.width);
      checkSide("delivery height", msg.height);
      clampCount("delivery rateBytesPerS", msg.rateBytesPerS);
      clampCount("delivery framesSkipped", msg.framesSkipped);
      checkInt("delivery skippedThrough", msg.skippedThrough, 0, U32_MAX);
      bodySize = DELIVERY_SIZE;
      break;
    case "repair":
      repairBody = encodeRepairBody(msg);
      bodySize = repairBody.length;
      break;
    case "gone":
      repairBody = encodeGoneBody(msg);
      bodySize = repairBody.length;
      break;
    case "datagram":
      if (!(msg.bytes instanceof Uint8Array) || msg.bytes.length < 1 || msg.bytes.length > MAX_DATAGRAM_SIZE) {
        throw new RangeError(`datagram of ${msg.bytes?.length} bytes: expected 1..${MAX_DATAGRAM_SIZE}`);
      }
      if (msg.tag) throw new RangeError("a datagram message is never tagged");
      bodySize = msg.bytes.length;
      break;
    case "switch":
      if (!Object.hasOwn(TRANSPORT_CODE, msg.transport)) throw new RangeError(`switch transport=${msg.transport}: expected udp or tcp`);
      if (!Object.hasOwn(SWITCH_TEXT, msg.reason)) throw new RangeError(`switch reason=${msg.reason} is not a known reason code`);
      bodySize = SWITCH_SIZE;
      break;
    case "transport":
      if (!Object.hasOwn(TRANSPORT_CODE, msg.transport)) throw new RangeError(`transport transport=${msg.transport}: expected udp or tcp`);
      if (!TRANSPORT_EVENTS.has(msg.event)) throw new RangeError(`transport event=${msg.event} is not a known event`);
      clampCount("transport framesSent", msg.framesSent);
      text = checkText("transport text", msg.text, MAX_REFUSE_TEXT_BYTES);
      bodySize = TRANSPORT_FIXED + text.length;
      break;
    case "source":
      if (msg.state !== SourceState.Unavailable && msg.state !== SourceState.Available) throw new RangeError(`source state=${msg.state}: expected 1 (unavailable) or 2 (available)`);
      bodySize = SOURCE_SIZE;
      break;
    case "layer":
      checkInt("layer layer", msg.layer, 0, MAX_DELIVERY_LAYERS - 1);
      bodySize = LAYER_SIZE;
      break;
    case "audio":
      if (msg.state !== SourceState.Unavailable && msg.state !== SourceState.Available) throw new RangeError(`audio state=${msg.state}: expected 1 (unavailable) or 2 (available)`);
      bodySize = SOURCE_SIZE;
      break;
    default:
      throw new RangeError(`unknown control message type ${JSON.stringify((msg as { type: unknown }).type)}`);
  }
  if (msg.tag !== undefined) checkBytes(`${msg.type} tag`, msg.tag, CONTROL_TAG_SIZE);
  const tagSize = msg.tag ? CONTROL_TAG_SIZE : 0;
  const w = new Writer(new Uint8Array(FRAME_HEADER_SIZE + bodySize + tagSize));
  w.u16(1 + bodySize + tagSize);
  w.u8(TYPE_OF[msg.type] | (msg.tag ? TAGGED_BIT : 0));
  // Fields in diagram order.
  switch (msg.type) {
    case "hello":
      w.u32(HELLO_MAGIC).u8(msg.version).u16(msg.udpPort).u32((msg.capabilities | (msg.camera !== undefined ? CAP_CAMERA : 0)) >>> 0).u8(text!.length).bytes(text!);
      if (msg.camera !== undefined) w.u8(msg.camera.length).bytes(ascii.encode(msg.camera));
      if (msg.resume) w.bytes(msg.resume);
      break;
    case "welcome":
      w.u32(msg.sessionId).u16(msg.width).u16(msg.height).u32(msg.fpsMillihertz);
      w.u16(msg.fragmentSize).u16(msg.udpSourcePort).u16(msg.heartbeatMs).u16(msg.timeoutMs).u32((msg.flags | (msg.signing ? WELCOME_SIGNED : 0) | (msg.camera ? WELCOME_CAMERA : 0) | (msg.layerGroups ? WELCOME_MULTICAST_LAYERS : 0) | (msg.audio ? WELCOME_AUDIO : 0)) >>> 0);
      if (msg.multicast) w.u32(groupAddress).u16(msg.multicast.port).u16(0).u32(msg.multicast.streamId);
      if (msg.signing) w.bytes(msg.signing.publicKey).u32(msg.signing.streamId);
      if (msg.camera) w.u8(msg.camera.index).u8(msg.camera.count).u8(msg.camera.name.length).bytes(ascii.encode(msg.camera.name));
      if (msg.layerGroups) {
        w.u8(msg.layerGroups.length).u8(0);
        for (const g of msg.layerGroups) w.u32(parseIPv4(g.address)!).u16(g.port).u16(g.width).u16(g.height).u16(0).u32(g.streamId);
      }
      if (msg.audio) w.u8(AudioCodec.Opus).u8(msg.audio.channels).u8(msg.audio.frameMs).u8(0).u32(msg.audio.bitrate);
      if (msg.resume) w.bytes(msg.resume);
      break;
    case "refuse":
      w.u8(msg.reason).u8(text!.length).bytes(text!);
      break;
    case "heartbeat":
      w.u64(msg.sentAt);
      break;
    case "report":
      w.u32(clampU32("framesReceived", msg.framesReceived));
      w.u32(clampU32("framesLost", msg.framesLost));
      w.u32(clampU32("framesIncomplete", msg.framesIncomplete));
      w.u32(clampU32("datagramsDropped", msg.datagramsDropped));
      w.u32(clampU32("latencyP50Us", msg.latencyP50Us));
      w.u32(clampU32("latencyP95Us", msg.latencyP95Us));
      w.u32(clampU32("fpsMillihertz", msg.fpsMillihertz));
      if (msg.path) {
        w.u64(clampU53("path bytesReceived", msg.path.bytesReceived));
        w.u32(clampU32("path datagramsReceived", msg.path.datagramsReceived));
        w.u32(clampU32("path datagramsLost", msg.path.datagramsLost));
        w.u32(msg.path.delayTrendUsPerS >>> 0);
        w.u16(Math.min(clampU32("path delaySamples", msg.path.delaySamples), 0xffff)).u16(encodeQueueDelay(msg.path.queueDelayMs));
      }
      if (msg.repair) {
        const c = msg.repair;
        w.u32(clampU32("repair datagramsRepairedByFec", c.datagramsRepairedByFec)).u32(clampU32("repair datagramsRepairedByNack", c.datagramsRepairedByNack));
        w.u32(clampU32("repair datagramsUnrepaired", c.datagramsUnrepaired)).u32(clampU32("repair framesRecordOnly", c.framesRecordOnly));
        w.u32(clampU32("repair repairDelayP50Us", c.repairDelayP50Us)).u32(clampU32("repair repairDelayP99Us", c.repairDelayP99Us));
      }
      break;
    case "bye":
      w.u8(msg.reason);
      if (msg.totals) {
        w.u32(clampU32("framesReceived", msg.totals.framesReceived));
        w.u32(clampU32("framesLost", msg.totals.framesLost));
        w.u32(clampU32("framesIncomplete", msg.totals.framesIncomplete));
        w.u32(clampU32("framesRecorded", msg.totals.framesRecorded));
      }
      break;
    case "challenge":
      w.bytes(msg.serverNonce);
      break;
    case "response":
      w.bytes(msg.clientNonce).bytes(msg.proof);
      break;
    case "key":
      w.u16(msg.keyId).u16(0).bytes(msg.nonce).bytes(msg.wrapped);
      break;
    case "fallback":
      w.u8(msg.reason);
      break;
    case "delivery":
      w.u8(msg.layer).u8(0).u16(msg.width).u16(msg.height).u16(0);
      w.u32(clampCount("delivery rateBytesPerS", msg.rateBytesPerS)).u32(clampCount("delivery framesSkipped", msg.framesSkipped)).u32(msg.skippedThrough);
      break;
    case "repair":
    case "gone":
      w.bytes(repairBody);
      break;
    case "datagram":
      w.bytes(msg.bytes);
      break;
    case "switch":
      w.u8(TRANSPORT_CODE[msg.transport]).u8(msg.reason);
      break;
    case "transport":
      w.u8(TRANSPORT_CODE[msg.transport]).u8(msg.event).u16(0).u32(clampCount("transport framesSent", msg.framesSent)).u8(text!.length).bytes(text!);
      break;
    case "source":
      w.u8(msg.state).u8(0);
      break;
    case "layer":
      w.u8(msg.layer).u8(0);
      break;
    case "audio":
      w.u8(msg.state).u8(0);
      break;
  }
  if (msg.tag) w.bytes(msg.tag);
  return w.done();
}

/** Sequential big-endian writes into a buffer sized up front. */
class Writer {
  readonly #out: Uint8Array;
  readonly #dv: DataView;
  #pos = 0;
  constructor(out: Uint8Array) {
    this.#out = out;
    this.#dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  }
  u8(v: number): this {
    this.#dv.setUint8(this.#pos, v);
    this.#pos += 1;
    return this;
  }
  u16(v: number): this {
    this.#dv.setUint16(this.#pos, v);
    this.#pos += 2;
    return this;
  }
  u32(v: number): this {
    this.#dv.setUint32(this.#pos, v);
    this.#pos += 4;
    return this;
  }
  u64(v: number): this {
    this.#dv.setBigUint64(this.#pos, BigInt(v));
    this.#pos += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.#out.set(b, this.#pos);
    this.#pos += b.length;
    return this;
  }
  /** The buffer, after checking the computed size was filled exactly. */
  done(): Uint8Array {
    if (this.#pos !== this.#out.length) throw new Error(`control encoder wrote ${this.#pos} of ${this.#out.length} bytes`);
    return this.#out;
  }
}

// ---------------------------------------------------------------- decoding

/** Sequential big-endian reads over one message body; every read checks the length first. */
class BodyReader {
  readonly #dv: DataView;
  readonly #bytes: Uint8Array;
  #pos = 0;
  constructor(
    readonly what: string,
    body: Uint8Array,
  ) {
    this.#bytes = body;
    this.#dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }
  #need(n: number, field: string): number {
    const at = this.#pos;
    if (at + n > this.#bytes.length) {
      throw new DecodeError("truncated", `${this.what} body of ${hex(this.#bytes.length)} bytes ends inside ${field} (needs ${at + n})`);
    }
    this.#pos = at + n;
    return at;
  }
  /** Bytes not yet read. */
  get remaining(): number {
    return this.#bytes.length - this.#pos;
  }
  u8(field: string): number {
    return this.#dv.getUint8(this.#need(1, field));
  }
  u16(field: string): number {
    return this.#dv.getUint16(this.#need(2, field));
  }
  u32(field: string): number {
    return this.#dv.getUint32(this.#need(4, field));
  }
  u64(field: string): bigint {
    return this.#dv.getBigUint64(this.#need(8, field));
  }
  /** `n` bytes, copied: a decoded message must not alias the reader's reused buffer. */
  bytes(n: number, field: string): Uint8Array {
    const at = this.#need(n, field);
    return this.#bytes.slice(at, at + n);
  }
  /** A u8 length followed by that many bytes of UTF-8 without control characters. */
  text(field: string, maxBytes: number): string {
    const n = this.u8(`${field} length`);
    if (n > maxBytes) throw new DecodeError("bad-length", `${this.what} ${field} length ${hex(n)} exceeds ${maxBytes}`);
    const at = this.#need(n, field);
    let s: string;
    try {
      s = utf8Decoder.decode(this.#bytes.subarray(at, at + n));
    } catch {
      throw new DecodeError("bad-value", `${this.what} ${field} is not valid UTF-8 (first byte ${hex(this.#bytes[at] ?? 0)})`);
    }
    const bad = CONTROL_CHARS.exec(s);
    if (bad) throw new DecodeError("bad-value", `${this.what} ${field} contains control character ${hex(bad[0].charCodeAt(0), 2)}`);
    return s;
  }
  /** Called after the last field: bytes left over are an error. */
  end(): void {
    const left = this.#bytes.length - this.#pos;
    if (left !== 0) throw new DecodeError("bad-length", `${this.what} body has ${hex(left)} trailing bytes`);
  }
}

/** A u8 length and that many bytes of printable ASCII: a camera's number or name. */
function readCamera(r: BodyReader, what: string, minBytes: number): string {
  const s = r.text(what.replace(/^\w+ /, ""), MAX_CAMERA_BYTES);
  if (s.length < minBytes || !CAMERA_TEXT.test(s)) throw new DecodeError("bad-value", `${what} of ${hex(s.length)} bytes ${JSON.stringify(s)}: expected ${minBytes}..${MAX_CAMERA_BYTES} printable ASCII characters`);
  return s;
}

function range(what: string, v: number, min: number, max: number): number {
  if (v < min || v > max) throw new DecodeError("bad-value", `${what} ${hex(v, v > 0xffff ? 4 : 2)} outside ${min}..${max}`);
  return v;
}

function decodeHello(r: BodyReader): Hello {
  const magic = r.u32("magic");
  if (magic !== HELLO_MAGIC) throw new DecodeError("bad-magic", `hello magic ${hex(magic, 4)}, expected ${hex(HELLO_MAGIC, 4)} ("LCAM")`);
  const version = r.u8("version");
  if (version !== PROTOCOL_VERSION) {
    throw new DecodeError("bad-version", `hello protocol version ${hex(version)}, this build speaks ${hex(PROTOCOL_VERSION)}`);
  }
  const udpPort = range("hello udp port", r.u16("udp port"), 1, 0xffff);
  const capabilities = r.u32("capabilities");
  const name = r.text("name", MAX_NAME_BYTES);
  const msg: Hello = { type: "hello", version, udpPort, capabilities, name };
  if (capabilities & CAP_CAMERA) msg.camera = readCamera(r, "hello camera", 0);
  if (r.remaining === 0) return msg;
  if (r.remaining !== RESUME_SECRET_SIZE) {
    throw new DecodeError("bad-length", `hello has ${hex(r.remaining)} bytes after its name${msg.camera !== undefined ? " and camera" : ""}: expected none or a ${RESUME_SECRET_SIZE}-byte resume secret`);
  }
  msg.resume = r.bytes(RESUME_SECRET_SIZE, "resume secret");
  r.end();
  return msg;
}

function decodeWelcome(r: BodyReader): Welcome {
  const sessionId = r.u32("session id");
  const width = range("welcome width", r.u16("width"), 1, 0xffff);
  const height = range("welcome height", r.u16("height"), 1, 0xffff);
  const fpsMillihertz = range("welcome fps millihertz", r.u32("fps"), 1, MAX_FPS_MILLIHERTZ);
  const fragmentSize = range("welcome fragment size", r.u16("fragment size"), MIN_FRAGMENT_SIZE, MAX_FRAGMENT_SIZE);
  const udpSourcePort = range("welcome udp source port", r.u16("udp source port"), 1, 0xffff);
  const heartbeatMs = range("welcome heartbeat interval", r.u16("heartbeat interval"), 1, 0xfffe);
  const timeoutMs = range("welcome timeout", r.u16("timeout"), heartbeatMs + 1, 0xffff);
  const flags = r.u32("flags");
  if (flags & ~WELCOME_KNOWN_FLAGS) throw new DecodeError("bad-value", `welcome server flags ${hex(flags, 4)}: only bits 0 (frames encrypted), 1 (multicast), 2 (signed), 3 (path reports), 4 (repair), 5 (tcp delivery), 6 (source status), 7 (camera), 8 (multicast layers) and 9 (audio) are defined`);
  const msg: Welcome = { type: "welcome", sessionId, width, height, fpsMillihertz, fragmentSize, udpSourcePort, heartbeatMs, timeoutMs, flags };
  let fixed = WELCOME_SIZE;
  if (flags & WELCOME_MULTICAST) {
    const group = r.u32("multicast group address");
    if (!isMulticastIPv4(group)) throw new DecodeError("bad-value", `welcome multicast group address ${hex(group, 4)} is not in 224.0.0.0/4`);
    const port = range("welcome multicast group port", r.u16("multicast group port"), 1, 0xffff);
    const reserved = r.u16("multicast reserved");
    if (reserved !== 0) throw new DecodeError("bad-value", `welcome multicast reserved field ${hex(reserved, 2)}, expected 0`);
    msg.multicast = { address: formatIPv4(group), port, streamId: r.u32("stream id") };
    fixed += WELCOME_MULTICAST_SIZE;
  }
  if (flags & WELCOME_SIGNED) {
    msg.signing = { publicKey: r.bytes(SIGNING_KEY_SIZE, "signing key"), streamId: r.u32("signing stream id") };
    fixed += WELCOME_SIGNING_SIZE;
  }
  if (flags & WELCOME_CAMERA) {
    const index = r.u8("camera number");
    const count = range("welcome cameras served", r.u8("cameras served"), 1, MAX_WELCOME_CAMERAS);
    if (index >= count) throw new DecodeError("bad-value", `welcome camera number ${hex(index)} of ${count} cameras`);
    msg.camera = { index, count, name: readCamera(r, "welcome camera name", 1) };
    fixed += 3 + msg.camera.name.length;
  }
  if (flags & WELCOME_MULTICAST_LAYERS) {
    if (!msg.multicast) throw new DecodeError("bad-value", "welcome multicast layers flag without the multicast flag");
    const count = range("welcome layer groups count", r.u8("layer groups count"), 1, MAX_DELIVERY_LAYERS - 1);
    const reserved = r.u8("layer groups reserved");
    if (reserved !== 0) throw new DecodeError("bad-value", `welcome layer groups reserved byte ${hex(reserved)}, expected 0`);
    msg.layerGroups = [];
    for (let i = 0; i < count; i++) {
      const address = r.u32("layer group address");
      if (!isMulticastIPv4(address)) throw new DecodeError("bad-value", `welcome layer group address ${hex(address, 4)} is not in 224.0.0.0/4`);
      const port = range("welcome layer group port", r.u16("layer group port"), 1, 0xffff);
      const width = decodeSide(r, "width", "welcome layer group");
      const height = decodeSide(r, "height", "welcome layer group");
      const pad = r.u16("layer group reserved");
      if (pad !== 0) throw new DecodeError("bad-value", `welcome layer group reserved field ${hex(pad, 2)}, expected 0`);
      msg.layerGroups.push({ address: formatIPv4(address), port, width, height, streamId: r.u32("layer group stream id") });
    }
    fixed += 2 + WELCOME_LAYER_GROUP_SIZE * count;
  }
  if (flags & WELCOME_AUDIO) {
    const codec = r.u8("audio codec");
    if (codec !== AudioCodec.Opus) throw new DecodeError("bad-value", `welcome audio codec ${hex(codec)}: expected ${hex(AudioCodec.Opus)} (Opus)`);
    const channels = range("welcome audio channels", r.u8("audio channels"), 1, 2) as 1 | 2;
    const frameMs = r.u8("audio packet ms");
    if (!(AUDIO_FRAME_MS as readonly number[]).includes(frameMs)) throw new DecodeError("bad-value", `welcome audio packet duration ${hex(frameMs)} ms: expected one of ${AUDIO_FRAME_MS.join(", ")}`);
    const reserved = r.u8("audio reserved");
    if (reserved !== 0) throw new DecodeError("bad-value", `welcome audio reserved byte ${hex(reserved)}, expected 0`);
    const bitrate = range("welcome audio bit rate", r.u32("audio bit rate"), AUDIO_BITRATE_RANGE.min, AUDIO_BITRATE_RANGE.max);
    msg.audio = { codec: "opus", channels, frameMs, bitrate };
    fixed += WELCOME_AUDIO_SIZE;
  }
  if (r.remaining === 0) return msg;
  if (r.remaining !== RESUME_SECRET_SIZE) {
    throw new DecodeError("bad-length", `welcome body of ${hex(fixed + r.remaining)} bytes: expected ${fixed} or ${fixed + RESUME_SECRET_SIZE}`);
  }
  msg.resume = r.bytes(RESUME_SECRET_SIZE, "resume secret");
  r.end();
  return msg;
}

function decodeRefuse(r: BodyReader): Refuse {
  const reason = r.u8("reason");
  if (!Object.hasOwn(REFUSE_TEXT, reason)) throw new DecodeError("bad-value", `refuse reason ${hex(reason)} is unknown`);
  const text = r.text("text", MAX_REFUSE_TEXT_BYTES);
  r.end();
  return { type: "refuse", reason: reason as RefuseReason, text };
}

function decodeHeartbeat(r: BodyReader): Heartbeat {
  const sentAt = r.u64("sent at");
  if (sentAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError("bad-value", `heartbeat sent-at ${hex(sentAt, 8)} exceeds 2^53-1 µs`);
  r.end();
  return { type: "heartbeat", sentAt: Number(sentAt) };
}

function decodeReport(r: BodyReader): Report {
  const msg: Report = {
    type: "report",
    framesReceived: r.u32("frames received"),
    framesLost: r.u32("frames lost"),
    framesIncomplete: r.u32("frames incomplete"),
    datagramsDropped: r.u32("datagrams dropped"),
    latencyP50Us: r.u32("latency p50"),
    latencyP95Us: r.u32("latency p95"),
    fpsMillihertz: r.u32("fps"),
  };
  if (r.remaining === 0) return msg;
  if (r.remaining !== REPORT_PATH_SIZE && r.remaining !== REPORT_PATH_SIZE + REPORT_REPAIR_SIZE) {
    throw new DecodeError("bad-length", `report body of ${hex(REPORT_SIZE + r.remaining)} bytes: expected ${REPORT_SIZE}, ${REPORT_SIZE + REPORT_PATH_SIZE} or ${REPORT_SIZE + REPORT_PATH_SIZE + REPORT_REPAIR_SIZE}`);
  }
  const bytesReceived = r.u64("bytes received");
  if (bytesReceived > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError("bad-value", `report bytes received ${hex(bytesReceived, 8)} exceeds 2^53-1`);
  const datagramsReceived = r.u32("datagrams received");
  const datagramsLost = r.u32("datagrams lost");
  const delayTrendUsPerS = r.u32("delay trend") | 0;
  const delaySamples = r.u16("delay samples");
  const queue = r.u16("standing queue");
  msg.path = { bytesReceived: Number(bytesReceived), datagramsReceived, datagramsLost, delayTrendUsPerS, delaySamples };
  if (queue !== 0) msg.path.queueDelayMs = (queue - 1) / 10;
  if (r.remaining === REPORT_REPAIR_SIZE) {
    msg.repair = {
      datagramsRepairedByFec: r.u32("repaired by parity"), datagramsRepairedByNack: r.u32("repaired by resend"),
      datagramsUnrepaired: r.u32("unrepaired"), framesRecordOnly: r.u32("frames recorded only"),
      repairDelayP50Us: r.u32("repair delay p50"), repairDelayP99Us: r.u32("repair delay p99"),
    };
  }
  r.end();
  return msg;
}

function decodeBye(r: BodyReader): Bye {
  const reason = r.u8("reason");
  if (!Object.hasOwn(BYE_TEXT, reason)) throw new DecodeError("bad-value", `bye reason ${hex(reason)} is unknown`);
  if (r.remaining === 0) return { type: "bye", reason: reason as ByeReason };
  if (r.remaining !== BYE_TOTALS_SIZE) {
    throw new DecodeError("bad-length", `bye body of ${hex(BYE_SIZE + r.remaining)} bytes: expected ${BYE_SIZE} or ${BYE_SIZE + BYE_TOTALS_SIZE}`);
  }
  const totals: ByeTotals = {
    framesReceived: r.u32("frames received"),
    framesLost: r.u32("frames lost"),
    framesIncomplete: r.u32("frames incomplete"),
    framesRecorded: r.u32("frames recorded"),
  };
  r.end();
  return { type: "bye", reason: reason as ByeReason, totals };
}

function decodeChallenge(r: BodyReader): Challenge {
  const msg: Challenge = { type: "challenge", serverNonce: r.bytes(NONCE_SIZE, "server nonce") };
  r.end();
  return msg;
}

function decodeResponse(r: BodyReader): Response {
  const msg: Response = { type: "response", clientNonce: r.bytes(NONCE_SIZE, "client nonce"), proof: r.bytes(PROOF_SIZE, "proof") };
  r.end();
  return msg;
}

function decodeKey(r: BodyReader): Key {
  const keyId = r.u16("key id");
  const reserved = r.u16("reserved");
  if (reserved !== 0) throw new DecodeError("bad-value", `key reserved field ${hex(reserved, 2)}, expected 0`);
  const msg: Key = { type: "key", keyId, nonce: r.bytes(WRAP_NONCE_SIZE, "wrap nonce"), wrapped: r.bytes(WRAPPED_KEY_SIZE, "wrapped key") };
  r.end();
  return msg;
}

function decodeFallback(r: BodyReader): Fallback {
  const reason = r.u8("reason");
  if (!Object.hasOwn(FALLBACK_TEXT, reason)) throw new DecodeError("bad-value", `fallback reason ${hex(reason)} is unknown`);
  r.end();
  return { type: "fallback", reason: reason as FallbackReason };
}

function decodeDelivery(r: BodyReader): Delivery {
  const layer = range("delivery layer", r.u8("layer"), 0, MAX_DELIVERY_LAYERS - 1);
  const reserved1 = r.u8("reserved");
  if (reserved1 !== 0) throw new DecodeError("bad-value", `delivery reserved byte ${hex(reserved1)}, expected 0`);
  const width = decodeSide(r, "width");
  const height = decodeSide(r, "height");
  const reserved2 = r.u16("reserved");
  if (reserved2 !== 0) throw new DecodeError("bad-value", `delivery reserved field ${hex(reserved2, 2)}, expected 0`);
  const msg: Delivery = {
    type: "delivery",
    layer,
    width,
    height,
    rateBytesPerS: r.u32("rate"),
    framesSkipped: r.u32("frames skipped"),
    skippedThrough: r.u32("skipped through"),
  };
  r.end();
  return msg;
}

function decodeTransportName(r: BodyReader, what: string): TransportName {
  const code = r.u8("transport");
  const name = TRANSPORT_NAME[code];
  if (!name) throw new DecodeError("bad-value", `${what} transport ${hex(code)}: expected 1 (udp) or 2 (tcp)`);
  return name;
}

function decodeSource(r: BodyReader): SourceStatus {
  const state = r.u8("state");
  if (state !== SourceState.Unavailable && state !== SourceState.Available) throw new DecodeError("bad-value", `source state ${hex(state)} is unknown`);
  const reserved = r.u8("reserved");
  if (reserved !== 0) throw new DecodeError("bad-value", `source reserved byte ${hex(reserved)}, expected 0`);
  r.end();
  return { type: "source", state: state as SourceState };
}

function decodeAudioStatus(r: BodyReader): AudioStatus {
  const state = r.u8("state");
  if (state !== SourceState.Unavailable && state !== SourceState.Available) throw new DecodeError("bad-value", `audio state ${hex(state)} is unknown`);
  const reserved = r.u8("reserved");
  if (reserved !== 0) throw new DecodeError("bad-value", `audio reserved byte ${hex(reserved)}, expected 0`);
  r.end();
  return { type: "audio", state: state as SourceState };
}

function decodeLayer(r: BodyReader): LayerMessage {
  const layer = range("layer layer", r.u8("layer"), 0, MAX_DELIVERY_LAYERS - 1);
  const reserved = r.u8("reserved");
  if (reserved !== 0) throw new DecodeError("bad-value", `layer reserved byte ${hex(reserved)}, expected 0`);
  r.end();
  return { type: "layer", layer };
}

function decodeSwitch(r: BodyReader): Switch {
  const transport = decodeTransportName(r, "switch");
  const reason = r.u8("reason");
  if (!Object.hasOwn(SWITCH_TEXT, reason)) throw new DecodeError("bad-value", `switch reason ${hex(reason)} is unknown`);
  r.end();
  return { type: "switch", transport, reason: reason as SwitchReason };
}

function decodeTransport(r: BodyReader): Transport {
  const transport = decodeTransportName(r, "transport");
  const event = r.u8("event");
  if (!TRANSPORT_EVENTS.has(event)) throw new DecodeError("bad-value", `transport event ${hex(event)} is unknown`);
  const reserved = r.u16("reserved");
  if (reserved !== 0) throw new DecodeError("bad-value", `transport reserved field ${hex(reserved, 2)}, expected 0`);
  const framesSent = r.u32("frames sent");
  const text = r.text("text", MAX_REFUSE_TEXT_BYTES);
  r.end();
  return { type: "transport", transport, event: event as TransportEvent, framesSent, text };
}

function decodeSide(r: BodyReader, field: "width" | "height", message = "delivery"): number {
  const v = range(`${message} ${field}`, r.u16(field), MIN_LAYER_SIDE, 0xfffe);
  if (v % 2 !== 0) throw new DecodeError("bad-value", `${message} ${field} ${hex(v, 2)} is odd`);
  return v;
}

/** The type byte, T bit included: anything but 1..18 with or without T is an error; so is a datagram (14) tagged, or to a reader not made for them. */
function checkType(typeByte: number, datagrams: boolean): void {
  const type = typeByte & ~TAGGED_BIT;
  if (type === MessageType.Datagram) {
    if (!datagrams) throw new DecodeError("bad-type", `control type ${hex(typeByte)} (datagram) goes only from server to viewer`);
    if (typeByte & TAGGED_BIT) throw new DecodeError("bad-type", `control type ${hex(typeByte)}: a datagram message is never tagged`);
    return;
  }
  if (type >= MessageType.Hello && type <= MessageType.Audio) return;
  throw new DecodeError("bad-type", `control type ${hex(typeByte)} is unknown`);
}

/**
 * Size of the framed message at the start of `bytes` (prefix included), or null
 * while its length prefix has not fully arrived. Rejects a bad length, and a bad
 * type once its byte is there, before the body arrives. Throws DecodeError.
 * `datagrams`: a viewer's reader, which also takes datagram messages up to
 * DATAGRAM_MESSAGE_MAX (a longer length waits for the type byte to say it is one).
 */
export function peekMessageSize(bytes: Uint8Array, datagrams = false): number | null {
  if (bytes.length < LENGTH_SIZE) return null;
  const length = (bytes[0]! << 8) | bytes[1]!;
  const size = LENGTH_SIZE + length;
  if (!datagrams || size <= MAX_MESSAGE_SIZE) {
    if (length < 1 || size > MAX_MESSAGE_SIZE) {
      throw new DecodeError("bad-length", `control length ${hex(length, 2)} outside 1..${MAX_MESSAGE_SIZE - LENGTH_SIZE}`);
    }
    if (bytes.length > LENGTH_SIZE) checkType(bytes[LENGTH_SIZE]!, datagrams);
    if (length < 2 && bytes[LENGTH_SIZE] === MessageType.Datagram) throw new DecodeError("bad-length", "datagram message without a datagram");
    return size;
  }
  if (size > DATAGRAM_MESSAGE_MAX) {
    throw new DecodeError("bad-length", `control length ${hex(length, 2)} outside 1..${DATAGRAM_MESSAGE_MAX - LENGTH_SIZE} (a datagram's most)`);
  }
  if (bytes.length === LENGTH_SIZE) return null;
  checkType(bytes[LENGTH_SIZE]!, datagrams);
  if (bytes[LENGTH_SIZE] !== MessageType.Datagram) {
    throw new DecodeError("bad-length", `control length ${hex(length, 2)} outside 1..${MAX_MESSAGE_SIZE - LENGTH_SIZE}`);
  }
  return size;
}

/** Decodes exactly one framed message; missing or extra bytes are an error. Throws DecodeError. `datagrams`: as in peekMessageSize. */
export function decodeControl(bytes: Uint8Array, datagrams = false): ControlMessage {
  const size = peekMessageSize(bytes, datagrams);
  if (size === null || bytes.length < FRAME_HEADER_SIZE || bytes.length < size) {
    throw new DecodeError("truncated", `control message of ${hex(bytes.length, 2)} bytes, length prefix announces ${size === null ? "?" : hex(size, 2)}`);
  }
  if (bytes.length > size) throw new DecodeError("bad-length", `control message has ${hex(bytes.length - size, 2)} trailing bytes after ${hex(size, 2)}`);
  const typeByte = bytes[LENGTH_SIZE]!;
  const tagged = (typeByte & TAGGED_BIT) !== 0;
  let bodyEnd = size;
  if (tagged) {
    bodyEnd -= CONTROL_TAG_SIZE;
    if (bodyEnd < FRAME_HEADER_SIZE) {
      throw new DecodeError("truncated", `tagged control message of ${hex(size, 2)} bytes is too short for its ${CONTROL_TAG_SIZE}-byte tag`);
    }
  }
  const msg = decodeBody(typeByte & ~TAGGED_BIT, bytes.subarray(FRAME_HEADER_SIZE, bodyEnd));
  if (tagged) msg.tag = bytes.slice(bodyEnd, size);
  return msg;
}

function decodeBody(type: number, body: Uint8Array): ControlMessage {
  switch (type) {
    case MessageType.Hello:
      return decodeHello(new BodyReader("hello", body));
    case MessageType.Welcome:
      return decodeWelcome(new BodyReader("welcome", body));
    case MessageType.Refuse:
      return decodeRefuse(new BodyReader("refuse", body));
    case MessageType.Heartbeat:
      return decodeHeartbeat(new BodyReader("heartbeat", body));
    case MessageType.Report:
      return decodeReport(new BodyReader("report", body));
    case MessageType.Bye:
      return decodeBye(new BodyReader("bye", body));
    case MessageType.Challenge:
      return decodeChallenge(new BodyReader("challenge", body));
    case MessageType.Response:
      return decodeResponse(new BodyReader("response", body));
    case MessageType.Key:
      return decodeKey(new BodyReader("key", body));
    case MessageType.Fallback:
      return decodeFallback(new BodyReader("fallback", body));
    case MessageType.Delivery:
      return decodeDelivery(new BodyReader("delivery", body));
    case MessageType.Repair:
      return { type: "repair", ...decodeRepairBody(body) };
    case MessageType.Gone:
      return { type: "gone", ...decodeGoneBody(body) };
    case MessageType.Datagram:
      // peekMessageSize already refused an empty one; a copy, as the reader reuses its buffer.
      return { type: "datagram", bytes: body.slice() };
    case MessageType.Switch:
      return decodeSwitch(new BodyReader("switch", body));
    case MessageType.Transport:
      return decodeTransport(new BodyReader("transport", body));
    case MessageType.Source:
      return decodeSource(new BodyReader("source", body));
    case MessageType.Layer:
      return decodeLayer(new BodyReader("layer", body));
    case MessageType.Audio:
      return decodeAudioStatus(new BodyReader("audio", body));
    default:
      // peekMessageSize already rejected it; kept so a new type cannot slip through.
      throw new DecodeError("bad-type", `control type ${hex(type)} is unknown`);
  }
}
