import { describe, expect, test } from "bun:test";
import {
  ByeReason,
  byeReasonText,
  decodeControl,
  encodeControl,
  FallbackReason,
  fallbackReasonText,
  MAX_DELIVERY_LAYERS,
  MAX_MESSAGE_SIZE,
  MessageType,
  peekMessageSize,
  PROTOCOL_VERSION,
  RefuseReason,
  refuseReasonText,
  TAGGED_BIT,
  WELCOME_ENCRYPTED,
  WELCOME_MULTICAST,
  WELCOME_SIGNED,
  WELCOME_TCP_DELIVERY,
  CAP_TCP_DELIVERY,
  DATAGRAM_MESSAGE_MAX,
  SwitchReason,
  TransportEvent,
  SourceState,
  CAP_SOURCE_STATUS,
  WELCOME_SOURCE_STATUS,
  CAP_AUDIO,
  WELCOME_AUDIO,
  type ControlMessage,
  type Welcome,
  type PathCounters,
  type Delivery,
  CAP_MULTICAST_LAYERS,
  WELCOME_MULTICAST_LAYERS,
  MAX_QUEUE_DELAY_MS,
} from "../lib/wire/control.ts";
import { MAX_LAYERS, MIN_LAYER_WIDTH } from "../lib/send/layer-ladder.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { prng } from "./helpers/prng.ts";


interface Golden {
  name: string;
  bytes: number[];
  msg: ControlMessage;
  /** Body lengths at which an optional tail begins (each a shorter valid message). */
  optionalFrom?: number | number[];
}

/** `n` bytes counting up from `from`: recognisable in a hex dump. */
function bytes(from: number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
}

/** A valid delivery message, for tests that change one field. */
const DELIVERY: Delivery = { type: "delivery", layer: 2, width: 320, height: 180, rateBytesPerS: 500_000, framesSkipped: 3, skippedThrough: 99 };

/** The one table every control-message test runs over. */
const GOLDEN: Golden[] = [
  {
    name: "hello",
    bytes: [
      0x00, 0x10, //             length 16 = type + 12 fixed + 3 name bytes
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0xc3, 0x50, //             UDP port 50000
      0x00, 0x00, 0x00, 0x01, // capabilities: token auth
      0x03, //                   name length 3
      0x63, 0x61, 0x6d, //       name "cam"
    ],
    msg: { type: "hello", version: 1, udpPort: 50000, capabilities: 1, name: "cam" },
  },
  {
    name: "hello with an empty name",
    bytes: [
      0x00, 0x0d, //             length 13
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0x00, 0x01, //             UDP port 1
      0x00, 0x00, 0x00, 0x00, // capabilities: none
      0x00, //                   name length 0
    ],
    msg: { type: "hello", version: 1, udpPort: 1, capabilities: 0, name: "" },
  },
  {
    name: "hello with a multi-byte UTF-8 name",
    bytes: [
      0x00, 0x17, //             length 23 = 1 + 12 + 10
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0xff, 0xff, //             UDP port 65535
      0x00, 0x00, 0x00, 0x03, // capabilities: token auth, decrypt
      0x0a, //                   name length 10 bytes (7 characters)
      0x4b, //                   "K"
      0xc3, 0xbc, //             "ü"
      0x63, 0x68, 0x65, 0x20, // "che "
      0xe2, 0x98, 0x95, //       "☕" U+2615
    ],
    msg: { type: "hello", version: 1, udpPort: 65535, capabilities: 3, name: "Küche ☕" },
  },
  {
    name: "welcome",
    bytes: [
      0x00, 0x19, //             length 25 = type + 24
      0x02, //                   type welcome
      0xde, 0xad, 0xbe, 0xef, // session id 0xDEADBEEF
      0x05, 0x00, //             width 1280
      0x02, 0xd0, //             height 720
      0x00, 0x00, 0x75, 0x12, // fps 29.970 = 29970 mHz
      0x05, 0xa0, //             fragment size 1440
      0x9c, 0x40, //             UDP source port 40000
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x00, // server flags: none
    ],
    msg: {
      type: "welcome", sessionId: 0xdeadbeef, width: 1280, height: 720, fpsMillihertz: 29970, fragmentSize: 1440,
      udpSourcePort: 40000, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
    },
  },
  {
    name: "welcome at the lower limits",
    bytes: [
      0x00, 0x19, //             length 25
      0x02, //                   type welcome
      0x00, 0x00, 0x00, 0x00, // session id 0
      0x00, 0x01, //             width 1
      0x00, 0x01, //             height 1
      0x00, 0x00, 0x00, 0x01, // fps 0.001 = 1 mHz
      0x02, 0x20, //             fragment size 544 (mtu 576 - 32)
      0x00, 0x01, //             UDP source port 1
      0x00, 0x01, //             heartbeat every 1 ms
      0x00, 0x02, //             timeout 2 ms (must exceed the heartbeat)
      0x00, 0x00, 0x00, 0x00, // server flags
    ],
    msg: {
      type: "welcome", sessionId: 0, width: 1, height: 1, fpsMillihertz: 1, fragmentSize: 544,
      udpSourcePort: 1, heartbeatMs: 1, timeoutMs: 2, flags: 0,
    },
  },
  {
    name: "refuse with text",
    bytes: [
      0x00, 0x10, //             length 16 = type + 2 + 13
      0x03, //                   type refuse
      0x02, //                   reason 2: server full
      0x0d, //                   text length 13
      0x38, 0x20, 0x76, 0x69, 0x65, 0x77, 0x65, 0x72, 0x73, 0x20, 0x6d, 0x61, 0x78, // "8 viewers max"
    ],
    msg: { type: "refuse", reason: RefuseReason.ServerFull, text: "8 viewers max" },
  },
  {
    name: "refuse without text",
    bytes: [
      0x00, 0x03, //             length 3
      0x03, //                   type refuse
      0x01, //                   reason 1: version mismatch
      0x00, //                   text length 0
    ],
    msg: { type: "refuse", reason: RefuseReason.VersionMismatch, text: "" },
  },
  {
    name: "heartbeat",
    bytes: [
      0x00, 0x09, //             length 9
      0x04, //                   type heartbeat
      0x00, 0x06, 0x0a, 0x24, 0x18, 0x20, 0x22, 0x40, // sent at 1700000000123456 µs
    ],
    msg: { type: "heartbeat", sentAt: 1700000000123456 },
  },
  {
    name: "report",
    bytes: [
      0x00, 0x1d, //             length 29 = type + 28
      0x05, //                   type report
      0x00, 0x00, 0x03, 0xe8, // frames received 1000
      0x00, 0x00, 0x00, 0x02, // frames lost 2
      0x00, 0x00, 0x00, 0x01, // frames incomplete 1
      0x00, 0x00, 0x00, 0x05, // datagrams dropped 5
      0x00, 0x00, 0x2e, 0xe0, // latency p50 12000 µs
      0xff, 0xff, 0xff, 0xff, // latency p95 0xFFFFFFFF µs (clamped)
      0x00, 0x00, 0x75, 0x12, // fps 29970 mHz
    ],
    msg: {
      type: "report", framesReceived: 1000, framesLost: 2, framesIncomplete: 1, datagramsDropped: 5,
      latencyP50Us: 12000, latencyP95Us: 0xffffffff, fpsMillihertz: 29970,
    },
  },
  {
    name: "report with path counters",
    bytes: [
      0x00, 0x35, //             length 53 = type + 28 + 24
      0x05, //                   type report
      0x00, 0x00, 0x00, 0x1e, // frames received 30
      0x00, 0x00, 0x00, 0x00, // frames lost 0
      0x00, 0x00, 0x00, 0x01, // frames incomplete 1
      0x00, 0x00, 0x00, 0x00, // datagrams dropped 0
      0x00, 0x00, 0x27, 0x10, // latency p50 10000 µs
      0x00, 0x00, 0x4e, 0x20, // latency p95 20000 µs
      0x00, 0x00, 0x75, 0x30, // fps 30000 mHz
      0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // bytes received 2^32 (past u32)
      0x00, 0x00, 0x10, 0x68, // datagrams received 4200
      0x00, 0x00, 0x00, 0x07, // datagrams lost 7
      0xff, 0xff, 0xfc, 0x18, // delay trend -1000 µs/s (falling)
      0x00, 0x1d, //             trend fitted on 29 frames
      0x00, 0x7e, //             standing queue 126 = 12.5 ms (0.1 ms units, plus one)
    ],
    msg: {
      type: "report", framesReceived: 30, framesLost: 0, framesIncomplete: 1, datagramsDropped: 0,
      latencyP50Us: 10000, latencyP95Us: 20000, fpsMillihertz: 30000,
      path: { bytesReceived: 2 ** 32, datagramsReceived: 4200, datagramsLost: 7, delayTrendUsPerS: -1000, delaySamples: 29, queueDelayMs: 12.5 },
    },
    optionalFrom: 28,
  },
  {
    name: "report with path counters and repair counts",
    bytes: [
      0x00, 0x4d, //             length 77 = type + 28 + 24 + 24
      0x05, //                   type report
      0x00, 0x00, 0x00, 0x1e, // frames received 30
      0x00, 0x00, 0x00, 0x00, // frames lost 0
      0x00, 0x00, 0x00, 0x00, // frames incomplete 0
      0x00, 0x00, 0x00, 0x00, // datagrams dropped 0
      0x00, 0x00, 0x27, 0x10, // latency p50 10000 µs
      0x00, 0x00, 0x4e, 0x20, // latency p95 20000 µs
      0x00, 0x00, 0x75, 0x30, // fps 30000 mHz
      0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, // bytes received 1048576
      0x00, 0x00, 0x03, 0x00, // datagrams received 768
      0x00, 0x00, 0x00, 0x08, // datagrams lost 8
      0x00, 0x00, 0x00, 0x00, // delay trend 0
      0x00, 0x1e, //             trend fitted on 30 frames
      0x00, 0x01, //             standing queue 1 = 0 ms
      0x00, 0x00, 0x00, 0x05, // repaired by parity 5
      0x00, 0x00, 0x00, 0x03, // repaired by resend 3
      0x00, 0x00, 0x00, 0x00, // unrepaired 0
      0x00, 0x00, 0x00, 0x01, // frames recorded only 1
      0x00, 0x00, 0x03, 0xe8, // repair delay p50 1000 µs
      0x00, 0x00, 0x27, 0x10, // repair delay p99 10000 µs
    ],
    msg: {
      type: "report", framesReceived: 30, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0,
      latencyP50Us: 10000, latencyP95Us: 20000, fpsMillihertz: 30000,
      path: { bytesReceived: 1048576, datagramsReceived: 768, datagramsLost: 8, delayTrendUsPerS: 0, delaySamples: 30, queueDelayMs: 0 },
      repair: { datagramsRepairedByFec: 5, datagramsRepairedByNack: 3, datagramsUnrepaired: 0, framesRecordOnly: 1, repairDelayP50Us: 1000, repairDelayP99Us: 10000 },
    },
    optionalFrom: [28, 52],
  },
  {
    name: "report with path counters, standing queue not measured (as the first viewers with path counters sent it)",
    bytes: [
      0x00, 0x35, //             length 53 = type + 28 + 24
      0x05, //                   type report
      0x00, 0x00, 0x00, 0x1e, // frames received 30
      0x00, 0x00, 0x00, 0x00, // frames lost 0
      0x00, 0x00, 0x00, 0x00, // frames incomplete 0
      0x00, 0x00, 0x00, 0x00, // datagrams dropped 0
      0x00, 0x00, 0x27, 0x10, // latency p50 10000 µs
      0x00, 0x00, 0x4e, 0x20, // latency p95 20000 µs
      0x00, 0x00, 0x75, 0x30, // fps 30000 mHz
      0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // bytes received 65536
      0x00, 0x00, 0x00, 0x40, // datagrams received 64
      0x00, 0x00, 0x00, 0x00, // datagrams lost 0
      0x00, 0x00, 0x03, 0xe8, // delay trend +1000 µs/s (rising)
      0x00, 0x02, //             trend fitted on 2 frames
      0x00, 0x00, //             standing queue 0: not measured
    ],
    msg: {
      type: "report", framesReceived: 30, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0,
      latencyP50Us: 10000, latencyP95Us: 20000, fpsMillihertz: 30000,
      path: { bytesReceived: 65536, datagramsReceived: 64, datagramsLost: 0, delayTrendUsPerS: 1000, delaySamples: 2 },
    },
    optionalFrom: 28,
  },
  {
    name: "bye",
    bytes: [
      0x00, 0x02, //             length 2
      0x06, //                   type bye
      0x03, //                   reason 3: timeout
    ],
    msg: { type: "bye", reason: ByeReason.Timeout },
  },
  {
    name: "bye for another reason",
    bytes: [
      0x00, 0x02, //             length 2
      0x06, //                   type bye
      0xff, //                   reason 255: other
    ],
    msg: { type: "bye", reason: ByeReason.Other },
  },
  {
    name: "bye with a viewer's final totals",
    bytes: [
      0x00, 0x12, //             length 18
      0x06, //                   type bye
      0x01, //                   reason 1: user quit
      0x00, 0x00, 0x00, 0x95, // frames received 149
      0x00, 0x00, 0x00, 0x02, // frames lost 2
      0x00, 0x00, 0x00, 0x01, // frames incomplete 1
      0x00, 0x00, 0x00, 0x94, // frames recorded 148
    ],
    msg: { type: "bye", reason: ByeReason.UserQuit, totals: { framesReceived: 149, framesLost: 2, framesIncomplete: 1, framesRecorded: 148 } },
    // The totals are optional: a body cut after the reason is a plain bye, one cut inside them has a bad length.
    optionalFrom: 1,
  },
  {
    name: "hello of a reconnecting viewer, with its resume secret",
    bytes: [
      0x00, 0x1e, //             length 30 = type + 12 + 1 name byte + 16
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0x22, 0xb8, //             UDP port 8888
      0x00, 0x00, 0x00, 0x07, // capabilities: token auth, decrypt, resume
      0x01, //                   name length 1
      0x61, //                   name "a"
      0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, // resume secret
      0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    ],
    msg: { type: "hello", version: 1, udpPort: 8888, capabilities: 7, name: "a", resume: bytes(0xa0, 16) },
    // Without the secret it is a plain hello; part of one is a bad length.
    optionalFrom: 13,
  },
  {
    name: "welcome to an encrypted stream, with a resume secret, tagged",
    bytes: [
      0x00, 0x39, //             length 57 = type + 24 + 16 resume + 16 tag
      0x82, //                   type welcome, T set: a tag ends the message
      0x00, 0x00, 0x01, 0x00, // session id 0x100
      0x02, 0x80, //             width 640
      0x01, 0xe0, //             height 480
      0x00, 0x00, 0x75, 0x30, // fps 30 = 30000 mHz
      0x05, 0x48, //             fragment size 1352 (mtu 1400 - 32 header - 16 tag)
      0x9c, 0x41, //             UDP source port 40001
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x01, // server flags: frames encrypted
      0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, // resume secret
      0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, // tag
      0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    ],
    msg: {
      type: "welcome", sessionId: 0x100, width: 640, height: 480, fpsMillihertz: 30000, fragmentSize: 1352,
      udpSourcePort: 40001, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_ENCRYPTED, resume: bytes(0xb0, 16), tag: bytes(0xc0, 16),
    },
  },
  {
    name: "welcome to a multicast group, with a resume secret",
    bytes: [
      0x00, 0x35, //             length 53 = type + 24 + 12 multicast + 16 resume
      0x02, //                   type welcome
      0x12, 0x34, 0x56, 0x78, // session id 0x12345678: datagrams to this viewer's own port carry it
      0x05, 0x00, //             width 1280
      0x02, 0xd0, //             height 720
      0x00, 0x00, 0x75, 0x30, // fps 30 = 30000 mHz
      0x05, 0x58, //             fragment size 1368 (mtu 1400 - 32)
      0x9c, 0x42, //             UDP source port 40002
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x02, // server flags: multicast
      0xef, 0xff, 0x0a, 0x01, // group 239.255.10.1
      0x27, 0x0e, //             group port 9998
      0x00, 0x00, //             reserved
      0x9a, 0xbc, 0xde, 0xf0, // stream id 0x9ABCDEF0: datagrams to the group carry it
      0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, // resume secret
      0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    ],
    msg: {
      type: "welcome", sessionId: 0x12345678, width: 1280, height: 720, fpsMillihertz: 30000, fragmentSize: 1368,
      udpSourcePort: 40002, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_MULTICAST,
      multicast: { address: "239.255.10.1", port: 9998, streamId: 0x9abcdef0 }, resume: bytes(0xb0, 16),
    },
    // Without the secret it is a multicast welcome; part of one is a bad length.
    optionalFrom: 36,
  },
  {
    name: "welcome to an encrypted multicast stream, tagged",
    bytes: [
      0x00, 0x35, //             length 53 = type + 24 + 12 multicast + 16 tag
      0x82, //                   type welcome, T set
      0x00, 0x00, 0x00, 0x07, // session id 7
      0x02, 0x80, //             width 640
      0x01, 0xe0, //             height 480
      0x00, 0x00, 0x3a, 0x98, // fps 15 = 15000 mHz
      0x05, 0x48, //             fragment size 1352 (mtu 1400 - 32 header - 16 tag)
      0x00, 0x50, //             UDP source port 80
      0x01, 0xf4, //             heartbeat every 500 ms
      0x07, 0xd0, //             timeout 2000 ms
      0x00, 0x00, 0x00, 0x03, // server flags: frames encrypted, multicast
      0xe0, 0x00, 0x00, 0x00, // group 224.0.0.0, the lowest a decoder takes
      0xff, 0xff, //             group port 65535
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x00, // stream id 0
      0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, // tag
      0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    ],
    msg: {
      type: "welcome", sessionId: 7, width: 640, height: 480, fpsMillihertz: 15000, fragmentSize: 1352,
      udpSourcePort: 80, heartbeatMs: 500, timeoutMs: 2000, flags: WELCOME_ENCRYPTED | WELCOME_MULTICAST,
      multicast: { address: "224.0.0.0", port: 65535, streamId: 0 }, tag: bytes(0xd0, 16),
    },
  },
  {
    name: "welcome to a signed stream",
    bytes: [
      0x00, 0x3d, //             length 61 = type + 24 + 36 signing
      0x02, //                   type welcome
      0x00, 0x00, 0x00, 0x2a, // session id 42
      0x07, 0x80, //             width 1920
      0x04, 0x38, //             height 1080
      0x00, 0x00, 0x75, 0x30, // fps 30 = 30000 mHz
      0x05, 0x58, //             fragment size 1368 (mtu 1400 - 32)
      0x9c, 0x43, //             UDP source port 40003
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x04, // server flags: signed
      0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, // Ed25519 public key, 32 bytes
      0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
      0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
      0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
      0xca, 0xfe, 0xf0, 0x0d, // signing stream id 0xCAFEF00D: every frame signature covers it
    ],
    msg: {
      type: "welcome", sessionId: 42, width: 1920, height: 1080, fpsMillihertz: 30000, fragmentSize: 1368,
      udpSourcePort: 40003, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_SIGNED,
      signing: { publicKey: bytes(0x40, 32), streamId: 0xcafef00d },
    },
  },
  {
    name: "welcome to an encrypted, signed multicast stream, with a resume secret, tagged",
    bytes: [
      0x00, 0x69, //             length 105 = type + 24 + 12 multicast + 36 signing + 16 resume + 16 tag
      0x82, //                   type welcome, T set
      0x00, 0x00, 0x00, 0x09, // session id 9
      0x02, 0x80, //             width 640
      0x01, 0x68, //             height 360
      0x00, 0x00, 0x75, 0x30, // fps 30 = 30000 mHz
      0x05, 0x48, //             fragment size 1352 (mtu 1400 - 32 header - 16 tag)
      0x9c, 0x44, //             UDP source port 40004
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x07, // server flags: frames encrypted, multicast, signed
      0xef, 0xff, 0x0a, 0x02, // group 239.255.10.2
      0x27, 0x0f, //             group port 9999
      0x00, 0x00, //             reserved
      0x11, 0x22, 0x33, 0x44, // stream id 0x11223344: datagrams to the group carry it
      0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, // Ed25519 public key, 32 bytes
      0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
      0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
      0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f,
      0x11, 0x22, 0x33, 0x44, // signing stream id: the server uses its group's stream id
      0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, // resume secret
      0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
      0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, // tag
      0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
    ],
    msg: {
      type: "welcome", sessionId: 9, width: 640, height: 360, fpsMillihertz: 30000, fragmentSize: 1352,
      udpSourcePort: 40004, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_ENCRYPTED | WELCOME_MULTICAST | WELCOME_SIGNED,
      multicast: { address: "239.255.10.2", port: 9999, streamId: 0x11223344 },
      signing: { publicKey: bytes(0x60, 32), streamId: 0x11223344 }, resume: bytes(0xb0, 16), tag: bytes(0xe0, 16),
    },
  },
  {
    name: "fallback: nothing arrived from the group",
    bytes: [
      0x00, 0x02, //             length 2 = type + 1
      0x0a, //                   type fallback
      0x01, //                   reason 1: no multicast datagram arrived
    ],
    msg: { type: "fallback", reason: FallbackReason.Silent },
  },
  {
    name: "fallback: could not join, tagged",
    bytes: [
      0x00, 0x12, //             length 18 = type + 1 + 16 tag
      0x8a, //                   type fallback, T set
      0x02, //                   reason 2: could not join the group
      0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, // tag
      0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
    ],
    msg: { type: "fallback", reason: FallbackReason.JoinFailed, tag: bytes(0xf0, 16) },
  },
  {
    name: "delivery: half size, rate-limited, frames skipped",
    bytes: [
      0x00, 0x15, //             length 21 = type + 20
      0x0b, //                   type delivery
      0x01, //                   layer 1
      0x00, //                   reserved
      0x02, 0x80, //             width 640
      0x01, 0x68, //             height 360
      0x00, 0x00, //             reserved
      0x00, 0x0f, 0x42, 0x40, // rate estimate 1 000 000 bytes/s
      0x00, 0x00, 0x00, 0x2a, // 42 frames skipped so far
      0x00, 0x00, 0x12, 0x34, // ... counted up to frame 0x1234
    ],
    msg: { type: "delivery", layer: 1, width: 640, height: 360, rateBytesPerS: 1_000_000, framesSkipped: 42, skippedThrough: 0x1234 },
  },
  {
    name: "delivery: full layer, not limited, tagged",
    bytes: [
      0x00, 0x25, //             length 37 = type + 20 + 16 tag
      0x8b, //                   type delivery, T set
      0x00, //                   layer 0: the full picture
      0x00, //                   reserved
      0x05, 0x00, //             width 1280
      0x02, 0xd0, //             height 720
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x00, // rate 0: not limited
      0xff, 0xff, 0xff, 0xff, // frames skipped, stuck at the maximum
      0xff, 0xff, 0xff, 0xff, // ... up to frame 0xffffffff (numbers wrap)
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, // tag
      0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    ],
    msg: {
      type: "delivery", layer: 0, width: 1280, height: 720, rateBytesPerS: 0, framesSkipped: 0xffffffff, skippedThrough: 0xffffffff, tag: bytes(0xc0, 16),
    },
  },
  {
    name: "challenge",
    bytes: [
      0x00, 0x21, //             length 33 = type + 32
      0x07, //                   type challenge
      0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // server nonce, 32 bytes
      0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
      0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
      0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    ],
    msg: { type: "challenge", serverNonce: bytes(0x00, 32) },
  },
  {
    name: "response",
    bytes: [
      0x00, 0x41, //             length 65 = type + 32 + 32
      0x08, //                   type response
      0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, // client nonce, 32 bytes
      0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
      0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
      0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
      0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, // proof, 32 bytes
      0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
      0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
      0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
    ],
    msg: { type: "response", clientNonce: bytes(0x20, 32), proof: bytes(0x40, 32) },
  },
  {
    name: "key, tagged",
    bytes: [
      0x00, 0x51, //             length 81 = type + 64 + 16 tag
      0x89, //                   type key, T set
      0x12, 0x34, //             key id 0x1234
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // wrap nonce, 12 bytes
      0x00, 0x00, 0x00, 0x02,
      0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, // wrapped key: 32 bytes of ciphertext
      0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
      0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
      0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f,
      0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, // ... and its 16-byte GCM tag
      0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
      0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, // message tag
      0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    ],
    msg: {
      type: "key", keyId: 0x1234, nonce: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]), wrapped: bytes(0x60, 48), tag: bytes(0xd0, 16),
    },
  },
  {
    name: "heartbeat, tagged",
    bytes: [
      0x00, 0x19, //             length 25 = type + 8 + 16 tag
      0x84, //                   type heartbeat, T set
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // sent at 42 µs
      0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, // tag
      0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
    ],
    msg: { type: "heartbeat", sentAt: 42, tag: bytes(0xe0, 16) },
  },
  {
    name: "switch to tcp, nothing arrived",
    bytes: [
      0x00, 0x03, //             length 3 = type + 2
      0x0f, //                   type switch
      0x02, //                   transport tcp
      0x01, //                   reason: nothing arrived by udp
    ],
    msg: { type: "switch", transport: "tcp", reason: SwitchReason.Silent },
  },
  {
    name: "transport: switched to tcp",
    bytes: [
      0x00, 0x0a, //             length 10 = type + 9
      0x10, //                   type transport
      0x02, //                   transport tcp
      0x01, //                   event switched
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x01, 0x2c, // frames sent 300
      0x00, //                   text length 0
    ],
    msg: { type: "transport", transport: "tcp", event: TransportEvent.Switched, framesSent: 300, text: "" },
  },
  {
    name: "transport: udp silent",
    bytes: [
      0x00, 0x0a, //             length 10
      0x10, //                   type transport
      0x01, //                   transport udp
      0x02, //                   event silent
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x58, // frames sent 88
      0x00, //                   text length 0
    ],
    msg: { type: "transport", transport: "udp", event: TransportEvent.Silent, framesSent: 88, text: "" },
  },
  {
    name: "transport: tcp refused, with a reason",
    bytes: [
      0x00, 0x12, //             length 18 = type + 9 + 8 text bytes
      0x10, //                   type transport
      0x01, //                   transport udp (still)
      0x03, //                   event refused
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x05, // frames sent 5
      0x08, //                   text length 8
      0x75, 0x64, 0x70, 0x20, 0x6f, 0x6e, 0x6c, 0x79, // "udp only"
    ],
    msg: { type: "transport", transport: "udp", event: TransportEvent.Refused, framesSent: 5, text: "udp only" },
  },
  {
    name: "source: the camera is unavailable",
    bytes: [
      0x00, 0x03, //             length 3 = type + 2
      0x11, //                   type source
      0x01, //                   state unavailable
      0x00, //                   reserved
    ],
    msg: { type: "source", state: SourceState.Unavailable },
  },
  {
    name: "source: the camera is back, tagged",
    bytes: [
      0x00, 0x13, //             length 19 = type + 2 + tag 16
      0x91, //                   type source, T set
      0x02, //                   state available
      0x00, //                   reserved
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, // tag
      0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    ],
    msg: { type: "source", state: SourceState.Available, tag: bytes(0xc0, 16) },
  },
  {
    name: "hello for a camera by name, with a resume secret",
    bytes: [
      0x00, 0x24, //             length 36 = type + 12 + 1 name byte + 1 + 5 camera + 16
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0x22, 0xb8, //             UDP port 8888
      0x00, 0x00, 0x02, 0x04, // capabilities: resume, camera
      0x01, //                   name length 1
      0x61, //                   name "a"
      0x05, //                   camera length 5
      0x62, 0x6f, 0x61, 0x72, 0x64, // camera "board"
      0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, // resume secret
      0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    ],
    msg: { type: "hello", version: 1, udpPort: 8888, capabilities: 0x204, name: "a", camera: "board", resume: bytes(0xa0, 16) },
    optionalFrom: 19,
  },
  {
    name: "hello for camera 0 by default (an empty camera)",
    bytes: [
      0x00, 0x0e, //             length 14 = type + 12 + 1 empty camera
      0x01, //                   type hello
      0x4c, 0x43, 0x41, 0x4d, // magic "LCAM"
      0x01, //                   protocol version 1
      0x22, 0xb8, //             UDP port 8888
      0x00, 0x00, 0x02, 0x00, // capabilities: camera
      0x00, //                   name length 0
      0x00, //                   camera length 0: camera 0
    ],
    msg: { type: "hello", version: 1, udpPort: 8888, capabilities: 0x200, name: "", camera: "" },
  },
  {
    name: "welcome naming its camera",
    bytes: [
      0x00, 0x1f, //             length 31 = type + 24 + 3 + 3 name
      0x02, //                   type welcome
      0x00, 0x00, 0x00, 0x09, // session id 9
      0x02, 0x80, //             width 640
      0x01, 0xe0, //             height 480
      0x00, 0x00, 0x75, 0x30, // fps 30
      0x05, 0xa0, //             fragment size 1440
      0x9c, 0x40, //             UDP source port 40000
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x00, 0x80, // server flags: camera
      0x01, //                   camera number 1
      0x02, //                   of 2 cameras
      0x03, //                   name length 3
      0x64, 0x6f, 0x63, //       name "doc"
    ],
    msg: {
      type: "welcome", sessionId: 9, width: 640, height: 480, fpsMillihertz: 30000, fragmentSize: 1440,
      udpSourcePort: 40000, heartbeatMs: 1000, timeoutMs: 5000, flags: 0x80, camera: { index: 1, count: 2, name: "doc" },
    },
  },
  {
    name: "welcome to a multicast group with a group per layer",
    bytes: [
      0x00, 0x47, //             length 71 = type + 24 + 12 multicast + 2 + 2 x 16 layer groups
      0x02, //                   type welcome
      0x00, 0x00, 0x00, 0x07, // session id 7
      0x05, 0x00, //             width 1280
      0x02, 0xd0, //             height 720
      0x00, 0x00, 0x75, 0x30, // fps 30
      0x05, 0x58, //             fragment size 1368
      0x9c, 0x42, //             UDP source port 40002
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x01, 0x02, // server flags: multicast, multicast layers
      0xef, 0xff, 0x0a, 0x01, // group 239.255.10.1
      0x27, 0x0e, //             group port 9998: the full layer
      0x00, 0x00, //             reserved
      0x9a, 0xbc, 0xde, 0xf0, // stream id of the full layer's group
      0x02, //                   two layer groups
      0x00, //                   reserved
      0xef, 0xff, 0x0a, 0x02, // layer 1's group 239.255.10.2
      0x27, 0x0e, //             port 9998
      0x02, 0x80, //             640
      0x01, 0x68, //             x 360
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x11, // layer 1's stream id
      0xef, 0xff, 0x0a, 0x03, // layer 2's group 239.255.10.3
      0x27, 0x0e, //             port 9998
      0x01, 0x40, //             320
      0x00, 0xb4, //             x 180
      0x00, 0x00, //             reserved
      0x00, 0x00, 0x00, 0x22, // layer 2's stream id
    ],
    msg: {
      type: "welcome", sessionId: 7, width: 1280, height: 720, fpsMillihertz: 30000, fragmentSize: 1368,
      udpSourcePort: 40002, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_MULTICAST | WELCOME_MULTICAST_LAYERS,
      multicast: { address: "239.255.10.1", port: 9998, streamId: 0x9abcdef0 },
      layerGroups: [{ address: "239.255.10.2", port: 9998, width: 640, height: 360, streamId: 0x11 }, { address: "239.255.10.3", port: 9998, width: 320, height: 180, streamId: 0x22 }],
    },
  },
  {
    name: "layer: the viewer moved to layer 1's group",
    bytes: [
      0x00, 0x03, //             length 3 = type + 2
      0x12, //                   type layer
      0x01, //                   layer 1
      0x00, //                   reserved
    ],
    msg: { type: "layer", layer: 1 },
  },
  {
    name: "layer: back on the full layer's group, tagged",
    bytes: [
      0x00, 0x13, //             length 19 = type + 2 + tag 16
      0x92, //                   type layer, T set
      0x00, //                   layer 0
      0x00, //                   reserved
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, // tag
      0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    ],
    msg: { type: "layer", layer: 0, tag: bytes(0xc0, 16) },
  },
  {
    name: "welcome to a stream with audio",
    bytes: [
      0x00, 0x21, //             length 33 = type + 24 + 8
      0x02, //                   type welcome
      0x00, 0x00, 0x00, 0x09, // session id 9
      0x05, 0x00, //             width 1280
      0x02, 0xd0, //             height 720
      0x00, 0x00, 0x75, 0x30, // fps 30
      0x05, 0x58, //             fragment size 1368
      0x9c, 0x40, //             UDP source port 40000
      0x03, 0xe8, //             heartbeat every 1000 ms
      0x13, 0x88, //             timeout 5000 ms
      0x00, 0x00, 0x02, 0x00, // server flags: audio
      0x01, //                   codec 1 = Opus
      0x01, //                   1 channel
      0x14, //                   20 ms packets
      0x00, //                   reserved
      0x00, 0x00, 0xfa, 0x00, // 64000 bits per second
    ],
    msg: {
      type: "welcome", sessionId: 9, width: 1280, height: 720, fpsMillihertz: 30000, fragmentSize: 1368,
      udpSourcePort: 40000, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_AUDIO, audio: { codec: "opus", channels: 1, frameMs: 20, bitrate: 64000 },
    },
  },
  {
    name: "audio: the microphone is unavailable",
    bytes: [
      0x00, 0x03, //             length 3 = type + 2
      0x13, //                   type audio
      0x01, //                   unavailable
      0x00, //                   reserved
    ],
    msg: { type: "audio", state: 1 },
  },
  {
    name: "audio: the microphone is back, tagged",
    bytes: [
      0x00, 0x13, //             length 19 = type + 2 + tag 16
      0x93, //                   type audio, T set
      0x02, //                   available
      0x00, //                   reserved
      0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, // tag
      0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    ],
    msg: { type: "audio", state: 2, tag: bytes(0xc0, 16) },
  },
];

function decodeError(bytes: Uint8Array | number[]): DecodeError {
  try {
    decodeControl(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw e;
  }
  throw new Error(`decoded without error: ${Buffer.from(bytes).toString("hex")}`);
}

/** Bytes that fail to decode, or decode to a message that encodes back to exactly them. */
function expectErrorOrCanonical(bytes: number[]): void {
  let msg: ControlMessage;
  try {
    msg = decodeControl(Uint8Array.from(bytes));
  } catch (e) {
    expect(e).toBeInstanceOf(DecodeError);
    return;
  }
  expect([...encodeControl(msg)]).toEqual(bytes);
}

/** A framed message with this type and body, the length prefix made to match. */
function frame(type: number, body: number[]): number[] {
  const n = body.length + 1;
  return [n >> 8, n & 0xff, type, ...body];
}

describe("golden control messages", () => {
  test("the table covers every message type", () => {
    // repair and gone: tests/repair-wire.test.ts; datagram (a viewer's reader only): "datagram messages" below.
    expect(new Set(GOLDEN.map((g) => g.msg.type))).toEqual(new Set(["hello", "welcome", "refuse", "heartbeat", "report", "bye", "challenge", "response", "key", "fallback", "delivery", "switch", "transport", "source", "layer", "audio"]));
    expect(GOLDEN.filter((g) => g.msg.tag).length).toBeGreaterThan(1);
  });

  test("the signed flag follows the signing key: a welcome built without the bit (as admission builds it) encodes with it", () => {
    for (const g of GOLDEN.filter((x) => x.msg.type === "welcome" && x.msg.signing)) {
      const w = g.msg as Welcome;
      expect([...encodeControl({ ...w, flags: w.flags & ~WELCOME_SIGNED })]).toEqual(g.bytes);
    }
    expect(GOLDEN.filter((x) => x.msg.type === "welcome" && x.msg.signing).length).toBe(2);
  });

  for (const g of GOLDEN) {
    describe(g.name, () => {
      test("decodes", () => {
        expect(decodeControl(Uint8Array.from(g.bytes))).toEqual(g.msg);
      });

      test("encodes", () => {
        expect([...encodeControl(g.msg)]).toEqual(g.bytes);
      });

      test("round-trips", () => {
        expect(decodeControl(encodeControl(g.msg))).toEqual(g.msg);
      });

      test("decodes from a view at an odd offset of a shared buffer (pooled Buffer)", () => {
        const backing = new Uint8Array(g.bytes.length + 9).fill(0xa5);
        backing.set(g.bytes, 5);
        expect(decodeControl(Buffer.from(backing.buffer, 5, g.bytes.length))).toEqual(g.msg);
      });

      test("every truncated prefix is a DecodeError", () => {
        for (let n = 0; n < g.bytes.length; n++) expect(decodeError(g.bytes.slice(0, n)).code).toBe("truncated");
      });

      test("every truncated body is a DecodeError, even with a length prefix that matches", () => {
        const tagged = (g.bytes[2]! & TAGGED_BIT) !== 0;
        const body = g.bytes.slice(3);
        const optional = ([] as number[]).concat(g.optionalFrom ?? body.length);
        const optionalFrom = Math.min(...optional);
        for (let n = 0; n < body.length; n++) {
          const cut = frame(g.bytes[2]!, body.slice(0, n));
          // Cutting a tagged message moves the tag into the body: an error, or (where an optional
          // tail was) another message, which its tag would then fail; never a silent misread.
          if (tagged) expectErrorOrCanonical(cut);
          else if (optional.includes(n)) expect(decodeControl(Uint8Array.from(cut)).type).toBe(g.msg.type);
          else expect(decodeError(cut).code).toBe(n < optionalFrom ? "truncated" : "bad-length");
        }
      });

      test("the T bit is the only difference between the message with and without its tag", () => {
        const { tag, ...bare } = g.msg;
        const plain = encodeControl(bare as ControlMessage);
        const withTag = encodeControl({ ...bare, tag: tag ?? bytes(0xf0, 16) } as ControlMessage);
        expect(withTag.length).toBe(plain.length + 16);
        expect(withTag[2]).toBe(plain[2]! | TAGGED_BIT);
        expect([...withTag.subarray(3, plain.length)]).toEqual([...plain.subarray(3)]);
        expect(decodeControl(withTag).tag).toEqual(tag ?? bytes(0xf0, 16));
      });

      test("a trailing byte is a DecodeError, inside the frame or after it", () => {
        expect(decodeError([...g.bytes, 0]).code).toBe("bad-length");
        expect(decodeError(frame(g.bytes[2]!, [...g.bytes.slice(3), 0])).code).toBe("bad-length");
      });

      test("peekMessageSize sees the whole size from the first two bytes", () => {
        expect(peekMessageSize(Uint8Array.from(g.bytes.slice(0, 1)))).toBeNull();
        expect(peekMessageSize(Uint8Array.from(g.bytes.slice(0, 2)))).toBe(g.bytes.length);
        expect(peekMessageSize(Uint8Array.from(g.bytes))).toBe(g.bytes.length);
      });
    });
  }
});

describe("framing", () => {
  test("length 0 and lengths past MAX_MESSAGE_SIZE are bad-length", () => {
    expect(MAX_MESSAGE_SIZE).toBe(1024);
    expect(decodeError([0x00, 0x00]).code).toBe("bad-length");
    const e = decodeError([0x03, 0xff, 0x04]);
    expect(e.code).toBe("bad-length");
    expect(e.message).toContain("0x03ff");
    expect(() => peekMessageSize(Uint8Array.from([0xff, 0xff]))).toThrow(DecodeError);
    // 2 + 1022 = 1024 is the largest message: its size is accepted (this body is wrong, so it fails later).
    expect(peekMessageSize(Uint8Array.from([0x03, 0xfe, 0x05]))).toBe(1024);
  });

  test("every type byte but 1..13 and 15..19, with or without the T bit, is bad-type (14, datagram, to a server's reader too)", () => {
    for (let t = 0; t < 256; t++) {
      const type = t & 0x7f;
      // repair (12) and gone (13) are tested in tests/repair-wire.test.ts
      if (type >= 1 && type <= 19 && type !== 14) continue;
      const e = decodeError(frame(t, new Array(24).fill(0)));
      expect(e.code).toBe("bad-type");
      expect(e.message).toContain(`0x${t.toString(16).padStart(2, "0")}`);
      expect(() => peekMessageSize(Uint8Array.from(frame(t, [0])))).toThrow(DecodeError);
    }
    expect([MessageType.Challenge, MessageType.Response, MessageType.Key, MessageType.Fallback, MessageType.Delivery]).toEqual([7, 8, 9, 10, 11]);
    expect(TAGGED_BIT).toBe(0x80);
  });

  test("a tagged message too short to hold its tag is truncated", () => {
    expect(decodeError(frame(0x84, new Array(15).fill(0))).code).toBe("truncated");
  });

  test("a type bit flip of a golden message is a DecodeError, or (same-sized bodies) another message, canonical", () => {
    for (const g of GOLDEN) {
      // Bit 7 is T: it turns the last 16 body bytes into a tag, which can leave a valid shorter message;
      // response and key have bodies of the same size, 0x08 and 0x09 one bit apart.
      for (let bit = 0; bit < 8; bit++) {
        const b = [...g.bytes];
        b[2]! ^= 1 << bit;
        expectErrorOrCanonical(b);
      }
    }
  });

});

describe("hello checks magic and version before the rest", () => {
  const hello = GOLDEN[0]!.bytes;

  test("every bit flip in the magic is bad-magic", () => {
    for (let byte = 3; byte < 7; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Uint8Array.from(hello);
        b[byte]! ^= 1 << bit;
        expect(decodeError(b).code).toBe("bad-magic");
      }
    }
  });

  test("every bit flip in the version is bad-version, the version named in hex", () => {
    for (let bit = 0; bit < 8; bit++) {
      const b = Uint8Array.from(hello);
      b[7]! ^= 1 << bit;
      const e = decodeError(b);
      expect(e.code).toBe("bad-version");
      expect(e.message).toContain(`0x${(1 ^ (1 << bit)).toString(16).padStart(2, "0")}`);
    }
  });

  test("a hello from a newer client is bad-version even when its body is longer", () => {
    const b = [...hello.slice(3), 0xaa, 0xbb];
    b[4] = 2;
    expect(decodeError(frame(1, b)).code).toBe("bad-version");
    // A sender may encode another version (tests of the refusal path do).
    const bytes = encodeControl({ type: "hello", version: 2, udpPort: 5000, capabilities: 0, name: "" });
    expect(decodeError(bytes).code).toBe("bad-version");
    expect(PROTOCOL_VERSION).toBe(1);
  });
});

describe("out-of-range values are bad-value", () => {
  /** The golden body of `name` with bytes replaced at body offset `at`. */
  const body = (name: string, at: number, bytes: number[]) => {
    const g = GOLDEN.find((x) => x.name === name)!;
    const b = g.bytes.slice(3);
    b.splice(at, bytes.length, ...bytes);
    return frame(g.bytes[2]!, b);
  };
  const cases: [string, number[], string][] = [
    ["hello UDP port 0", body("hello", 5, [0, 0]), "bad-value"],
    ["hello name with invalid UTF-8", body("hello", 12, [0xff]), "bad-value"],
    ["hello name with a control character", body("hello", 12, [0x1b]), "bad-value"],
    ["hello name with DEL", body("hello", 13, [0x7f]), "bad-value"],
    ["hello name longer than 64 bytes", frame(1, [0x4c, 0x43, 0x41, 0x4d, 1, 0, 1, 0, 0, 0, 0, 65, ...new Array(65).fill(0x61)]), "bad-length"],
    ["welcome width 0", body("welcome", 4, [0, 0]), "bad-value"],
    ["welcome height 0", body("welcome", 6, [0, 0]), "bad-value"],
    ["welcome fps 0", body("welcome", 8, [0, 0, 0, 0]), "bad-value"],
    ["welcome fps above 1000", body("welcome", 8, [0x00, 0x0f, 0x42, 0x41]), "bad-value"],
    ["welcome fragment size below 528", body("welcome", 12, [0x02, 0x0f]), "bad-value"],
    ["welcome fragment size above 65475", body("welcome", 12, [0xff, 0xc4]), "bad-value"],
    ["welcome UDP source port 0", body("welcome", 14, [0, 0]), "bad-value"],
    ["welcome heartbeat 0", body("welcome", 16, [0, 0]), "bad-value"],
    ["welcome timeout equal to the heartbeat", body("welcome", 18, [0x03, 0xe8]), "bad-value"],
    ["welcome with an unknown server flag set", body("welcome", 20, [0, 0, 4, 0]), "bad-value"],
    ["welcome with the audio flag but no audio block", body("welcome", 20, [0, 0, 2, 0]), "truncated"],
    ["welcome with the camera flag but no camera", body("welcome", 20, [0, 0, 0, 128]), "truncated"],
    ["welcome naming camera 2 of 2", body("welcome naming its camera", 24, [2]), "bad-value"],
    ["welcome naming camera 0 of 0", body("welcome naming its camera", 24, [0, 0]), "bad-value"],
    ["welcome with an empty camera name", frame(2, [...GOLDEN.find((g) => g.name === "welcome naming its camera")!.bytes.slice(3, 3 + 26), 0]), "bad-value"],
    ["welcome camera name with a space", body("welcome naming its camera", 27, [0x20]), "bad-value"],
    ["hello camera of 33 bytes", frame(1, [...GOLDEN.find((g) => g.name.startsWith("hello for camera 0"))!.bytes.slice(3, 3 + 12), 33, ...new Array(33).fill(0x61)]), "bad-length"],
    ["welcome with the signed flag but no key", body("welcome", 20, [0, 0, 0, 4]), "truncated"],
    ["signed welcome with part of a resume secret", frame(2, [...GOLDEN.find((g) => g.name === "welcome to a signed stream")!.bytes.slice(3), 1, 2, 3]), "bad-length"],
    ["welcome with the multicast flag but no group", body("welcome", 20, [0, 0, 0, 2]), "truncated"],
    ["welcome to a group that is no multicast address", body("welcome to a multicast group, with a resume secret", 24, [0xdf, 0xff, 0xff, 0xff]), "bad-value"],
    ["welcome to a group above 239.255.255.255", body("welcome to a multicast group, with a resume secret", 24, [0xf0, 0, 0, 0]), "bad-value"],
    ["welcome to group port 0", body("welcome to a multicast group, with a resume secret", 28, [0, 0]), "bad-value"],
    ["welcome multicast with its reserved field set", body("welcome to a multicast group, with a resume secret", 31, [1]), "bad-value"],
    ["welcome multicast with part of a resume secret", frame(2, [...GOLDEN.find((g) => g.name.startsWith("welcome to a multicast"))!.bytes.slice(3, 3 + 36), 1, 2, 3]), "bad-length"],
    ["fallback reason 0", body("fallback: nothing arrived from the group", 0, [0]), "bad-value"],
    ["fallback reason 3", body("fallback: nothing arrived from the group", 0, [3]), "bad-value"],
    ["fallback with a trailing byte", frame(10, [1, 0]), "bad-length"],
    ["delivery layer 4 (past MAX_DELIVERY_LAYERS)", body("delivery: half size, rate-limited, frames skipped", 0, [4]), "bad-value"],
    ["delivery layer 255", body("delivery: half size, rate-limited, frames skipped", 0, [0xff]), "bad-value"],
    ["delivery with its first reserved byte set", body("delivery: half size, rate-limited, frames skipped", 1, [1]), "bad-value"],
    ["delivery with its second reserved field set", body("delivery: half size, rate-limited, frames skipped", 6, [0, 1]), "bad-value"],
    ["delivery width 0", body("delivery: half size, rate-limited, frames skipped", 2, [0, 0]), "bad-value"],
    ["delivery width 14 (below 16)", body("delivery: half size, rate-limited, frames skipped", 2, [0, 14]), "bad-value"],
    ["delivery odd width", body("delivery: half size, rate-limited, frames skipped", 2, [0x02, 0x81]), "bad-value"],
    ["delivery width 65535 (odd)", body("delivery: half size, rate-limited, frames skipped", 2, [0xff, 0xff]), "bad-value"],
    ["delivery height 0", body("delivery: half size, rate-limited, frames skipped", 4, [0, 0]), "bad-value"],
    ["delivery odd height", body("delivery: half size, rate-limited, frames skipped", 4, [0x01, 0x69]), "bad-value"],
    ["delivery with a trailing byte", frame(11, [...GOLDEN.find((g) => g.msg.type === "delivery")!.bytes.slice(3), 0]), "bad-length"],
    ["welcome with part of a resume secret", frame(2, [...GOLDEN[3]!.bytes.slice(3), 1, 2, 3]), "bad-length"],
    ["hello with part of a resume secret", frame(1, [...GOLDEN[0]!.bytes.slice(3), 1, 2, 3]), "bad-length"],
    ["key with its reserved field set", body("key, tagged", 3, [1]), "bad-value"],
    ["refuse with an unknown reason", body("refuse with text", 0, [7]), "bad-value"],
    ["refuse reason 0", body("refuse with text", 0, [0]), "bad-value"],
    ["refuse text with a newline", body("refuse with text", 3, [0x0a]), "bad-value"],
    ["refuse text longer than 200 bytes", frame(3, [1, 201, ...new Array(201).fill(0x61)]), "bad-length"],
    ["heartbeat beyond 2^53 - 1", body("heartbeat", 0, [0x00, 0x20, 0, 0, 0, 0, 0, 0]), "bad-value"],
    ["bye with an unknown reason", body("bye", 0, [5]), "bad-value"],
    ["bye reason 0", body("bye", 0, [0]), "bad-value"],
    ["bye with part of its totals", frame(6, [1, 0, 0, 0, 1]), "bad-length"],
  ];
  for (const [name, bytes, code] of cases) {
    test(name, () => {
      const e = decodeError(bytes);
      expect(e.code).toBe(code as DecodeError["code"]);
      expect(e.message).toMatch(/0x[0-9a-f]+/);
    });
  }

  test("every unknown reason code of refuse and bye", () => {
    const refuses = [1, 2, 3, 4, 5, 255];
    const byes = [1, 2, 3, 4, 255];
    for (let r = 0; r < 256; r++) {
      if (refuses.includes(r)) expect(decodeControl(Uint8Array.from(frame(3, [r, 0])))).toEqual({ type: "refuse", reason: r as RefuseReason, text: "" });
      else expect(decodeError(frame(3, [r, 0])).code).toBe("bad-value");
      if (byes.includes(r)) expect(decodeControl(Uint8Array.from(frame(6, [r])))).toEqual({ type: "bye", reason: r as ByeReason });
      else expect(decodeError(frame(6, [r])).code).toBe("bad-value");
    }
  });

  test("unknown capability bits are accepted (a newer client advertising more)", () => {
    const msg = decodeControl(Uint8Array.from(body("hello", 7, [0x80, 0, 0, 0x04])));
    expect(msg).toMatchObject({ type: "hello", capabilities: 0x80000004 });
  });
});

describe("garbage", () => {
  test("random bodies never throw anything but DecodeError, and what decodes is canonical", () => {
    const rnd = prng(0xc0ffee);
    const decoded = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const type = rnd() < 0.9 ? 1 + Math.floor(rnd() * 11) : Math.floor(rnd() * 256);
      // Half the time the body has the type's own size, so decoders get past the length checks.
      const natural = [0, 12 + Math.floor(rnd() * 8), rnd() < 0.5 ? 24 : 36, 2 + Math.floor(rnd() * 8), 8, 28, 1, 32, 64, 64, 1, 20][type];
      const length = natural !== undefined && rnd() < 0.5 ? natural : Math.floor(rnd() * 40);
      const body = Array.from({ length }, () => Math.floor(rnd() * 256));
      // And half the time the fields that random bytes rarely get right are fixed up, so later checks run too.
      if (rnd() < 0.5) {
        const fix = (at: number, bytes: number[]) => at + bytes.length <= body.length && body.splice(at, bytes.length, ...bytes);
        const reason = [1, 2, 3, 4, 255][Math.floor(rnd() * 5)]!;
        if (type === 1) fix(0, [0x4c, 0x43, 0x41, 0x4d, 1]) && fix(11, [body.length - 12]);
        if (type === 2) {
          const multicast = body.length === 36;
          fix(8, [0, Math.floor(rnd() * 16)]) && fix(16, [0]) && fix(18, [0xff]) && fix(20, [0, 0, 0, multicast ? 2 : 0]);
          if (multicast) fix(24, [0xe0 | Math.floor(rnd() * 16)]) && fix(30, [0, 0]);
        }
        if (type === 3) fix(0, [reason]) && fix(1, [body.length - 2]);
        if (type === 4) fix(0, [0, Math.floor(rnd() * 0x20)]);
        if (type === 6) fix(0, [reason]);
        if (type === 9) fix(2, [0, 0]);
        if (type === 10) fix(0, [1 + Math.floor(rnd() * 2)]);
        if (type === 11) fix(0, [Math.floor(rnd() * 4), 0]) && fix(3, [Math.floor(rnd() * 256) & 0xfe]) && fix(4, [1 + Math.floor(rnd() * 8)]) && fix(5, [Math.floor(rnd() * 256) & 0xfe, 0, 0]);
      }
      const bytes = Uint8Array.from(rnd() < 0.1 ? body : frame(type, body));
      let msg: ControlMessage;
      try {
        msg = decodeControl(bytes);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        continue;
      }
      decoded.set(msg.type, (decoded.get(msg.type) ?? 0) + 1);
      expect([...encodeControl(msg)]).toEqual([...bytes]);
    }
    // The generator is only useful if it reaches every decoder past its checks.
    expect([...decoded.keys()].sort()).toEqual(["bye", "challenge", "delivery", "fallback", "heartbeat", "hello", "key", "refuse", "report", "response", "welcome"]);
  });

  test("bit-flipped golden messages never throw anything but DecodeError", () => {
    const rnd = prng(99);
    for (let i = 0; i < 4000; i++) {
      const g = GOLDEN[i % GOLDEN.length]!;
      const bytes = Uint8Array.from(g.bytes);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rnd() * bytes.length)]! ^= 1 << Math.floor(rnd() * 8);
      try {
        expect([...encodeControl(decodeControl(bytes))]).toEqual([...bytes]);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    }
  });
});

describe("encoding", () => {
  test("a standing queue is carried to 0.1 ms, sticks at its maximum, and a negative or non-finite one is not sent", () => {
    const report = (queueDelayMs: number) => encodeControl({
      type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
      path: { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0, queueDelayMs },
    });
    expect(decodeControl(report(0))).toMatchObject({ path: { queueDelayMs: 0 } });
    expect(decodeControl(report(3.14))).toMatchObject({ path: { queueDelayMs: 3.1 } });
    expect(decodeControl(report(1e9))).toMatchObject({ path: { queueDelayMs: MAX_QUEUE_DELAY_MS } });
    expect(() => report(-1)).toThrow("queueDelayMs -1");
    expect(() => report(Number.NaN)).toThrow("queueDelayMs NaN");
  });

  test("repair counts without the path counters before them are not encoded", () => {
    expect(() => encodeControl({
      type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
      repair: { datagramsRepairedByFec: 0, datagramsRepairedByNack: 0, datagramsUnrepaired: 0, framesRecordOnly: 0, repairDelayP50Us: 0, repairDelayP99Us: 0 },
    })).toThrow("need the path counters");
  });

  test("path counters stick at their maximum rather than wrap", () => {
    const bytes = encodeControl({
      type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
      path: { bytesReceived: 2 ** 60, datagramsReceived: 2 ** 33, datagramsLost: 2 ** 32, delayTrendUsPerS: -(2 ** 31), delaySamples: 70_000 },
    });
    expect(bytes.length).toBe(3 + 52);
    expect(decodeControl(bytes)).toMatchObject({
      path: { bytesReceived: Number.MAX_SAFE_INTEGER, datagramsReceived: 0xffffffff, datagramsLost: 0xffffffff, delayTrendUsPerS: -(2 ** 31), delaySamples: 0xffff },
    });
  });

  test("a path byte count past 2^53-1 does not decode", () => {
    const good = encodeControl({
      type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
      path: { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0 },
    });
    const huge = Uint8Array.from(good);
    huge[3 + 28] = 0x00;
    huge[3 + 29] = 0x20;
    expect(decodeError(huge).code).toBe("bad-value");
    expect(decodeError(frame(0x05, [...good.slice(3), 0, 0, 0, 0])).code).toBe("bad-length");
  });

  test("report counters past u32 stick at 0xFFFFFFFF", () => {
    const bytes = encodeControl({
      type: "report", framesReceived: 2 ** 40, framesLost: 0xffffffff + 1, framesIncomplete: 0, datagramsDropped: 0,
      latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
    });
    expect(decodeControl(bytes)).toMatchObject({ framesReceived: 0xffffffff, framesLost: 0xffffffff, framesIncomplete: 0 });
  });

  test("the longest messages stay under MAX_MESSAGE_SIZE", () => {
    const hello = encodeControl({ type: "hello", version: 1, udpPort: 1, capabilities: 0, name: "é".repeat(32) });
    expect(hello.length).toBe(3 + 12 + 64);
    const refuse = encodeControl({ type: "refuse", reason: RefuseReason.Other, text: "x".repeat(200) });
    expect(refuse.length).toBe(3 + 2 + 200);
    expect(decodeControl(refuse)).toEqual({ type: "refuse", reason: 255, text: "x".repeat(200) });
  });

  /** A report whose path counters are all 0 but `over`. */
  const pathReport = (over: Partial<PathCounters>): ControlMessage => ({
    type: "report", framesReceived: 0, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0,
    path: { bytesReceived: 0, datagramsReceived: 0, datagramsLost: 0, delayTrendUsPerS: 0, delaySamples: 0, ...over },
  });
  const bad: [string, ControlMessage][] = [
    ["path delay trend past i32", pathReport({ delayTrendUsPerS: 2 ** 31 })],
    ["fractional path delay trend", pathReport({ delayTrendUsPerS: 0.5 })],
    ["negative path byte count", pathReport({ bytesReceived: -1 })],
    ["negative report counter", { type: "report", framesReceived: -1, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }],
    ["NaN report counter", { type: "report", framesReceived: 0, framesLost: NaN, framesIncomplete: 0, datagramsDropped: 0, latencyP50Us: 0, latencyP95Us: 0, fpsMillihertz: 0 }],
    ["name of 65 bytes", { type: "hello", version: 1, udpPort: 1, capabilities: 0, name: "a".repeat(65) }],
    ["name with a newline", { type: "hello", version: 1, udpPort: 1, capabilities: 0, name: "a\nb" }],
    ["UDP port 0", { type: "hello", version: 1, udpPort: 0, capabilities: 0, name: "" }],
    ["refuse text of 201 bytes", { type: "refuse", reason: RefuseReason.Other, text: "x".repeat(201) }],
    ["unknown refuse reason", { type: "refuse", reason: 9 as RefuseReason, text: "" }],
    ["unknown bye reason", { type: "bye", reason: 0 as ByeReason }],
    ["heartbeat in the future of 2^53", { type: "heartbeat", sentAt: 2 ** 53 }],
    [
      "welcome timeout not above the heartbeat",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 1000, flags: 0 },
    ],
    [
      "welcome fragment size from an mtu below 576",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 527, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 0 },
    ],
    ["unknown type", { type: "hug" } as unknown as ControlMessage],
    ["challenge without its nonce", { type: "challenge" } as unknown as ControlMessage],
    ["response with a short proof", { type: "response", clientNonce: new Uint8Array(32), proof: new Uint8Array(31) }],
    ["key id above u16", { type: "key", keyId: 0x10000, nonce: new Uint8Array(12), wrapped: new Uint8Array(48) }],
    ["tag of 15 bytes", { type: "heartbeat", sentAt: 1, tag: new Uint8Array(15) }],
    ["resume secret of 8 bytes", { type: "hello", version: 1, udpPort: 1, capabilities: 4, name: "", resume: new Uint8Array(8) }],
    [
      "welcome with an unknown flag",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 256 },
    ],
    [
      "welcome with the camera flag and no camera",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 128 },
    ],
    [
      "welcome with the signed flag and no key",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_SIGNED },
    ],
    [
      "welcome signing key of 31 bytes",
      {
        type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
        signing: { publicKey: new Uint8Array(31), streamId: 1 },
      },
    ],
    [
      "welcome with the multicast flag and no group",
      { type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_MULTICAST },
    ],
    [
      "welcome with a group and no multicast flag",
      {
        type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
        multicast: { address: "239.1.1.1", port: 1, streamId: 1 },
      },
    ],
    ...(["10.0.0.1", "240.0.0.1", "239.1.1", "239.01.1.1", "239.256.1.1", "group"].map((address): [string, ControlMessage] => [
      `welcome to group ${JSON.stringify(address)}`,
      {
        type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000,
        flags: WELCOME_MULTICAST, multicast: { address, port: 1, streamId: 1 },
      },
    ])),
    [
      "welcome to group port 0",
      {
        type: "welcome", sessionId: 1, width: 2, height: 2, fpsMillihertz: 30000, fragmentSize: 1440, udpSourcePort: 1, heartbeatMs: 1000, timeoutMs: 5000,
        flags: WELCOME_MULTICAST, multicast: { address: "239.1.1.1", port: 0, streamId: 1 },
      },
    ],
    ["unknown fallback reason", { type: "fallback", reason: 3 as FallbackReason }],
    ["delivery layer past the last", { ...DELIVERY, layer: MAX_DELIVERY_LAYERS }],
    ["delivery odd width", { ...DELIVERY, width: 641 }],
    ["delivery height below 16", { ...DELIVERY, height: 14 }],
    ["delivery width past u16", { ...DELIVERY, width: 0x10000 }],
    ["negative delivery rate", { ...DELIVERY, rateBytesPerS: -1 }],
    ["fractional delivery skipped count", { ...DELIVERY, framesSkipped: 1.5 }],
    ["delivery skipped-through past u32", { ...DELIVERY, skippedThrough: 2 ** 32 }],
  ];
  for (const [name, msg] of bad) {
    test(`rejects ${name} with a RangeError`, () => {
      expect(() => encodeControl(msg)).toThrow(RangeError);
    });
  }
});

describe("delivery", () => {
  test("a rate or skipped count past u32 sticks at 0xFFFFFFFF rather than wrap", () => {
    const msg = decodeControl(encodeControl({ ...DELIVERY, rateBytesPerS: 2 ** 40, framesSkipped: 2 ** 32 }));
    expect(msg).toMatchObject({ rateBytesPerS: 0xffffffff, framesSkipped: 0xffffffff });
  });

  test("the server's ladder never names a layer the message cannot carry", () => {
    expect(MAX_LAYERS).toBeLessThanOrEqual(MAX_DELIVERY_LAYERS);
    expect(MIN_LAYER_WIDTH).toBeGreaterThanOrEqual(16);
  });
});

describe("reason texts", () => {
  test("known codes read as words, unknown ones name the code in hex", () => {
    expect(refuseReasonText(RefuseReason.VersionMismatch)).toBe("protocol version mismatch");
    expect(refuseReasonText(RefuseReason.ServerFull)).toBe("server full");
    expect(refuseReasonText(RefuseReason.BadHello)).toBe("bad hello");
    expect(refuseReasonText(RefuseReason.AuthRequired)).toBe("authentication required");
    expect(refuseReasonText(RefuseReason.Other)).toBe("other reason");
    expect(refuseReasonText(7)).toBe("unknown refuse reason 0x07");
    expect(byeReasonText(ByeReason.UserQuit)).toBe("user quit");
    expect(byeReasonText(ByeReason.Shutdown)).toBe("server shutting down");
    expect(byeReasonText(ByeReason.Timeout)).toBe("timeout");
    expect(byeReasonText(ByeReason.ProtocolError)).toBe("protocol error");
    expect(byeReasonText(ByeReason.Other)).toBe("other reason");
    expect(byeReasonText(0)).toBe("unknown bye reason 0x00");
    expect(fallbackReasonText(FallbackReason.Silent)).toBe("no multicast datagram arrived");
    expect(fallbackReasonText(FallbackReason.JoinFailed)).toBe("could not join the multicast group");
    expect(fallbackReasonText(9)).toBe("unknown fallback reason 0x09");
  });
});

describe("datagram messages (TCP delivery)", () => {
  const golden = [0x00, 0x04, 0x0e, 0xaa, 0xbb, 0xcc]; // length 4, type 14, a 3-byte datagram

  test("a viewer's reader decodes one to exactly the datagram's bytes, and it encodes back", () => {
    expect(decodeControl(Uint8Array.from(golden), true)).toEqual({ type: "datagram", bytes: Uint8Array.from([0xaa, 0xbb, 0xcc]) });
    expect([...encodeControl({ type: "datagram", bytes: Uint8Array.from([0xaa, 0xbb, 0xcc]) })]).toEqual(golden);
  });

  test("a server's reader refuses one: datagrams go only from server to viewer", () => {
    const e = decodeError(golden);
    expect(e.code).toBe("bad-type");
    expect(e.message).toContain("datagram");
  });

  test("a tagged one is bad-type, also to a viewer's reader; an empty one is bad-length", () => {
    expect(() => decodeControl(Uint8Array.from([0x00, 0x04, 0x8e, 1, 2, 3]), true)).toThrow(/never tagged/);
    expect(() => decodeControl(Uint8Array.from([0x00, 0x01, 0x0e]), true)).toThrow(DecodeError);
    expect(() => encodeControl({ type: "datagram", bytes: new Uint8Array(0) })).toThrow(RangeError);
    expect(() => encodeControl({ type: "datagram", bytes: new Uint8Array(3), tag: bytes(0, 16) })).toThrow(RangeError);
  });

  test("one longer than MAX_MESSAGE_SIZE (a 1400-byte datagram) passes a viewer's reader only, and only as a datagram", () => {
    const d = bytes(7, 1400);
    const framed = encodeControl({ type: "datagram", bytes: d });
    expect(framed.length).toBe(1403);
    // Two bytes cannot say yet: the type byte decides.
    expect(peekMessageSize(framed.subarray(0, 2), true)).toBeNull();
    expect(peekMessageSize(framed.subarray(0, 3), true)).toBe(1403);
    expect(decodeControl(framed, true)).toEqual({ type: "datagram", bytes: d });
    expect(decodeError(framed).code).toBe("bad-length");
    // The same length with another type is as bad as ever.
    const report = Uint8Array.from(framed);
    report[2] = MessageType.Report;
    expect(() => peekMessageSize(report, true)).toThrow(/outside 1\.\.1022/);
    expect(() => peekMessageSize(Uint8Array.from([0xff, 0xff]), true)).toThrow(DecodeError);
    expect(DATAGRAM_MESSAGE_MAX).toBe(3 + 65507);
  });

  test("the capability and the welcome flag take the next free bits", () => {
    expect(CAP_TCP_DELIVERY).toBe(0x80);
    expect(WELCOME_TCP_DELIVERY).toBe(0x20);
    expect([MessageType.Datagram, MessageType.Switch, MessageType.Transport]).toEqual([14, 15, 16]);
    const w: Welcome = {
      type: "welcome", sessionId: 1, width: 640, height: 480, fpsMillihertz: 30000, fragmentSize: 1368, udpSourcePort: 5000, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_TCP_DELIVERY,
    };
    expect(decodeControl(encodeControl(w))).toEqual(w);
    expect(decodeError([...encodeControl(w)].map((b, i) => (i === 3 + 20 + 2 ? 0x04 : b))).message).toContain("5 (tcp delivery), 6 (source status), 7 (camera), 8 (multicast layers) and 9 (audio)");
  });

  test("the camera's status takes the next free bits and type; a state or reserved byte it does not know is bad-value", () => {
    expect(CAP_SOURCE_STATUS).toBe(0x100);
    expect(WELCOME_SOURCE_STATUS).toBe(0x40);
    expect(MessageType.Source).toBe(17);
    expect(decodeError(frame(17, [3, 0])).code).toBe("bad-value");
    expect(decodeError(frame(17, [0, 0])).code).toBe("bad-value");
    expect(decodeError(frame(17, [1, 1])).code).toBe("bad-value");
    expect(decodeError(frame(17, [1])).code).toBe("truncated");
    expect(() => encodeControl({ type: "source", state: 5 as SourceState })).toThrow(RangeError);
  });

  test("audio takes the next free bits and type; a codec, channel count, packet length, bit rate or reserved byte it does not know is bad-value", () => {
    expect(CAP_AUDIO).toBe(0x800);
    expect(WELCOME_AUDIO).toBe(0x200);
    expect(MessageType.Audio).toBe(19);
    expect(decodeError(frame(19, [3, 0])).code).toBe("bad-value");
    expect(decodeError(frame(19, [1, 1])).code).toBe("bad-value");
    expect(decodeError(frame(19, [1])).code).toBe("truncated");
    expect(() => encodeControl({ type: "audio", state: 0 as SourceState })).toThrow(RangeError);
    const w: Welcome = {
      type: "welcome", sessionId: 7, width: 640, height: 480, fpsMillihertz: 30000, fragmentSize: 1368, udpSourcePort: 40002, heartbeatMs: 1000, timeoutMs: 5000, flags: 0,
      audio: { codec: "opus", channels: 2, frameMs: 20, bitrate: 128000 },
    };
    // The encoder sets the flag from the block, as it does the camera flag.
    expect(decodeControl(encodeControl(w))).toEqual({ ...w, flags: WELCOME_AUDIO });
    const good = [...encodeControl(w)];
    const at = 3 + 24;
    expect(decodeError(good.map((b, i) => (i === at ? 2 : b))).code).toBe("bad-value"); // codec
    expect(decodeError(good.map((b, i) => (i === at + 1 ? 3 : b))).code).toBe("bad-value"); // channels
    expect(decodeError(good.map((b, i) => (i === at + 2 ? 25 : b))).code).toBe("bad-value"); // packet ms
    expect(decodeError(good.map((b, i) => (i === at + 3 ? 1 : b))).code).toBe("bad-value"); // reserved
    expect(decodeError(good.map((b, i) => (i === at + 4 ? 0x7f : b))).code).toBe("bad-value"); // bit rate far above 510k
    expect(decodeError(good.slice(0, -1).map((b, i) => (i === 1 ? b - 1 : b))).code).toBe("truncated");
    expect(() => encodeControl({ ...w, audio: { ...w.audio!, frameMs: 30 } })).toThrow(RangeError);
    expect(() => encodeControl({ ...w, flags: WELCOME_AUDIO, audio: undefined })).toThrow(RangeError);
  });

  test("multicast layers take the next free bits and type; a layer past MAX_DELIVERY_LAYERS, odd sizes and reserved bits are refused", () => {
    expect(CAP_MULTICAST_LAYERS).toBe(0x400);
    expect(WELCOME_MULTICAST_LAYERS).toBe(0x100);
    expect(MessageType.Layer).toBe(18);
    expect(decodeError(frame(18, [MAX_DELIVERY_LAYERS, 0])).code).toBe("bad-value");
    expect(decodeError(frame(18, [1, 1])).code).toBe("bad-value");
    expect(decodeError(frame(18, [1])).code).toBe("truncated");
    expect(() => encodeControl({ type: "layer", layer: MAX_DELIVERY_LAYERS })).toThrow(RangeError);
    const w: Welcome = {
      type: "welcome", sessionId: 7, width: 1280, height: 720, fpsMillihertz: 30000, fragmentSize: 1368, udpSourcePort: 40002, heartbeatMs: 1000, timeoutMs: 5000, flags: WELCOME_MULTICAST,
      multicast: { address: "239.255.10.1", port: 9998, streamId: 1 }, layerGroups: [{ address: "239.255.10.2", port: 9998, width: 640, height: 360, streamId: 2 }],
    };
    // The encoder sets the flag from the groups, as it does the signed and camera flags.
    expect(decodeControl(encodeControl(w))).toEqual({ ...w, flags: WELCOME_MULTICAST | WELCOME_MULTICAST_LAYERS });
    const good = [...encodeControl(w)];
    const at = 3 + 24 + 12;
    expect(decodeError(good.map((b, i) => (i === at ? 0 : b))).code).toBe("bad-value"); // no groups
    expect(decodeError(good.map((b, i) => (i === at ? MAX_DELIVERY_LAYERS : b))).code).toBe("bad-value"); // more than the layers there can be
    expect(decodeError(good.map((b, i) => (i === at + 1 ? 1 : b))).code).toBe("bad-value"); // reserved
    expect(decodeError(good.map((b, i) => (i === at + 2 ? 0x0a : b))).code).toBe("bad-value"); // not a multicast address
    expect(decodeError(good.map((b, i) => (i === at + 2 + 7 ? 0x81 : b))).code).toBe("bad-value"); // odd width
    expect(decodeError(good.map((b, i) => (i === at + 2 + 11 ? 1 : b))).code).toBe("bad-value"); // reserved
    expect(() => encodeControl({ ...w, layerGroups: [{ ...w.layerGroups![0]!, address: "10.0.0.1" }] })).toThrow(RangeError);
    // Layer groups without the multicast group they sit beside.
    const noGroup = good.filter((_, i) => i < 3 + 24 || i >= at).map((b, i) => (i === 3 + 23 ? 0x00 : b));
    noGroup[0] = 0;
    noGroup[1] = noGroup.length - 2;
    expect(decodeError(noGroup).code).toBe("bad-value");
    expect(() => encodeControl({ ...w, multicast: undefined, flags: 0 })).toThrow(RangeError);
    expect(() => encodeControl({ ...w, layerGroups: [] })).toThrow(RangeError);
    expect(() => encodeControl({ ...w, layerGroups: undefined, flags: WELCOME_MULTICAST | WELCOME_MULTICAST_LAYERS })).toThrow(RangeError);
  });

  test("switch and transport refuse unknown codes", () => {
    expect(decodeError(frame(15, [3, 1])).code).toBe("bad-value");
    expect(decodeError(frame(15, [2, 9])).code).toBe("bad-value");
    expect(decodeError(frame(16, [2, 4, 0, 0, 0, 0, 0, 0, 0])).code).toBe("bad-value");
    expect(decodeError(frame(16, [2, 1, 0, 1, 0, 0, 0, 0, 0])).code).toBe("bad-value");
    expect(() => encodeControl({ type: "switch", transport: "sctp" as "tcp", reason: SwitchReason.Asked })).toThrow(RangeError);
  });
});
