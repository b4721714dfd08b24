import { hostname } from "node:os";
import { TEST_DEFAULT, type OverlayOptions } from "../capture/capture.ts";
import { MAX_OVERLAY_CHARS, OVERLAY_POSITIONS, overlayTextProblem, type OverlayPosition } from "../capture/overlay-text.ts";
import type { RecordCliFlags } from "../record/record-dir.ts";
import { DEFAULT_MAX_PER_HOST } from "../send/admission.ts";
import { DEFAULT_SPREAD } from "../send/stream-server.ts";
import { LayersError, MAX_LAYERS, MIN_LAYER_WIDTH, parseLayersFlag, type LayersFlag } from "../send/layer-ladder.ts";
import { DEFAULT_FEC, FecSpecError, parseFecSpec, type FecSpec } from "../send/fec-policy.ts";
import { parsePublishCodec, PublishCodecError, type PublishCodec } from "../publish/publish-process.ts";
import { parsePublishUrl, PublishUrlError, readPublishTokenFile, redactUrl, REDACTED as URL_REDACTED, type PublishTarget } from "../publish/publish-url.ts";
import { parsePublishTargets } from "../publish/publishers.ts";
import { DEFAULT_MTU, MAX_MTU, MIN_MTU } from "../wire/datagram.ts";
import { MAX_CAMERAS } from "../wire/camera-name.ts";
import { autoGroupAddress, DEFAULT_GROUP_PORT, DEFAULT_MULTICAST_TTL, isAdminScopedGroup, normaliseIPv4, type GroupConfig } from "../net/multicast.ts";
import { JPEG_QUALITY, parseInteger, parseNumber, parsePort, parseSize, UsageError } from "./cli.ts";
import { booleanFlag, defineCommand, flagSpelling, listFlag, valueFlag } from "./flags.ts";
import { LOG_MAX_FLAG, SECURITY_LOG_FLAG, SECURITY_LOG_MAX_FLAG } from "./log-flags.ts";
import { SERVER_TOKEN_FLAGS } from "./token-flags.ts";
import { RECORD_FLAGS } from "./record-flags.ts";
import { CONFIG_FLAGS } from "./config-flags.ts";
import { REDACTED } from "./config-file.ts";
import { cameraSourceSpelling, checkCameraSources, DEFAULT_CAMERA, parseCameraSource, type CameraSource } from "./source-flag.ts";
import { AUDIO_BITRATE, audioFilePath, audioSourceSpelling, AudioSpecError, formatAudioBitrate, parseAudioBitrate, parseAudioSource, type AudioSourceSpec } from "../audio/audio-source.ts";
import { DEFAULT_AUDIO_FORMAT, type AudioFormat } from "../wire/audio-packet.ts";

const text = (raw: string) => raw;

/** Parses `--overlay`: a template overlayTextProblem accepts (overlong text is not echoed back). */
export function parseOverlayFlag(raw: string, flag = "--overlay"): string {
  const problem = overlayTextProblem(raw);
  if (problem === null) return raw;
  throw new UsageError(raw.length > MAX_OVERLAY_CHARS ? `invalid ${flag}: ${problem}` : `invalid ${flag}=${raw}: ${problem}`);
}

/** Parses `--overlay-pos`: one of the four corners. */
export function parseOverlayPosFlag(raw: string, flag = "--overlay-pos"): OverlayPosition {
  if ((OVERLAY_POSITIONS as readonly string[]).includes(raw)) return raw as OverlayPosition;
  throw new UsageError(`invalid ${flag}=${raw}: expected ${OVERLAY_POSITIONS.slice(0, -1).join(", ")} or ${OVERLAY_POSITIONS.at(-1)}`);
}

/** What the capture needs to draw --overlay on camera `camera` (its name, or its number), or undefined without it. */
export function overlaySettings(flags: { overlay: string | null; overlayPos: OverlayPosition }, camera: string, host = hostname()): OverlayOptions | undefined {
  if (flags.overlay === null) return undefined;
  return { template: flags.overlay, position: flags.overlayPos, camera, host };
}

/** The TCP control port viewers connect to unless told otherwise. */
export const DEFAULT_PORT = 9999;
/** Viewers at once, unless --max-clients says otherwise. */
export const DEFAULT_MAX_CLIENTS = 32;
/** The most --max-clients and --max-per-host allow. */
export const MAX_VIEWERS = 1024;
/** JPEG quality of frames the server encodes, unless --quality says otherwise. */
export const DEFAULT_QUALITY = 80;

/** The largest IP time-to-live: an 8-bit field. */
const MAX_MULTICAST_TTL = 255;

/** Help's words for a flag that is off unless given. */
const off = () => "off";

/** A multicast group from `--multicast`: an address and a port. */
export interface GroupFlag {
  address: string;
  port: number;
}

/**
 * Parses `--multicast`: GROUP[:PORT] with GROUP an administratively scoped IPv4 group
 * (239.0.0.0/8, which routers do not forward beyond the site), or `auto` for a random
 * one in 239.255.0.0/16. The port defaults to DEFAULT_GROUP_PORT.
 */
export function parseMulticastFlag(raw: string, flag = "--multicast", random: () => number = Math.random): GroupFlag {
  const expected = `expected auto, or GROUP[:PORT] with GROUP in 239.0.0.0-239.255.255.255 (administratively scoped), e.g. 239.255.10.1:${DEFAULT_GROUP_PORT}`;
  if (raw === "auto") return { address: autoGroupAddress(random), port: DEFAULT_GROUP_PORT };
  const m = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(raw);
  const address = m ? normaliseIPv4(m[1]!) : null;
  if (!m || address === null || !isAdminScopedGroup(address)) throw new UsageError(`invalid ${flag}=${raw}: ${expected}`);
  const port = m[2] === undefined ? DEFAULT_GROUP_PORT : Number(m[2]);
  if (port < 1 || port > 65535) throw new UsageError(`invalid ${flag}=${raw}: port ${port} outside 1..65535`);
  return { address, port };
}

/** Parses an IPv4 address literal (an interface's address). */
export function parseIPv4Flag(raw: string, flag: string): string {
  const address = normaliseIPv4(raw);
  if (address === null) throw new UsageError(`invalid ${flag}=${raw}: expected an IPv4 address of this machine, e.g. 192.168.1.5`);
  return address;
}

/** Runs a parser of another layer, turning its own error type into a usage error (exit 2). */
function usage<T>(parse: () => T, errorType: new (...args: never[]) => Error): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof errorType) throw new UsageError(e.message);
    throw e;
  }
}

/** How --fec names `spec`, for help's default. */
function fecSpelling(spec: FecSpec): string {
  return spec.kind === "percent" ? String(spec.percent) : spec.kind;
}

/** A --publish URL as --print-config writes it: user, password and query values hidden. */
function redactPublishUrl(url: string): string {
  const hidden = redactUrl(url);
  return hidden === url ? url : hidden.replaceAll(URL_REDACTED, REDACTED);
}

/** The server's command line. */
export const SERVER_COMMAND = defineCommand({
  role: "server",
  script: "server.ts",
  about: `Captures a camera (or file, pipeline, test pattern) once and streams it to every
lancam viewer that connects. Prints "lancam server listening tcp=PORT ..." when ready.`,
  operands: {},
  flags: {
    port: valueFlag("port", "N", DEFAULT_PORT, (raw, flag) => parsePort(flag, raw), "TCP control port; 0 picks a free port"),
    bind: valueFlag("bind", "ADDR", "0.0.0.0", text, "address to listen on"),
    source: listFlag<CameraSource>("source", "[NAME=]SRC", parseCameraSource,
      `camera:N, test, gst:PIPELINE, or a video file. Repeatable: one
camera each, at most ${MAX_CAMERAS}, numbered from 0; NAME= names one (text
before the first = is a name unless it holds : or /, so write a
file whose name has = as ./PATH or file:PATH). On the command
line --size, --fps, --quality and --overlay are for every camera,
in a config file's [[source]] tables for one`,
      { default: [DEFAULT_CAMERA], format: cameraSourceSpelling, check: checkCameraSources }),
    listCameras: booleanFlag("list-cameras", "print each camera (/dev/video*) with its formats, sizes and frame\nrates, and the --source that picks it, and exit", { cliOnly: true }),
    loop: booleanFlag("loop", "replay a video file from the start when it ends"),
    size: valueFlag<{ width: number; height: number } | undefined>("size", "WxH", undefined, (raw, flag) => parseSize(flag, raw),
      `capture size (camera, test; ${TEST_DEFAULT.width}x${TEST_DEFAULT.height} for test unless given)`, undefined, { format: (v) => `${v.width}x${v.height}` }),
    fps: valueFlag<number | undefined>("fps", "N", undefined, (raw, flag) => parseNumber(flag, raw, 0.1, 240),
      "frames per second (camera, test; overrides a file's rate)"),
    quality: valueFlag("quality", "Q", DEFAULT_QUALITY, (raw, flag) => parseInteger(flag, raw, JPEG_QUALITY.min, JPEG_QUALITY.max),
      `JPEG quality ${JPEG_QUALITY.min}-${JPEG_QUALITY.max}`),
    reencode: booleanFlag("reencode", "encode every frame at --quality even where the source already\ndelivers JPEG (default: send a camera's or MJPEG file's JPEG as it is)"),
    overlay: valueFlag<string | null>("overlay", "TEXT", null, (raw, flag) => parseOverlayFlag(raw, flag),
      `draw TEXT on every picture, on a translucent box: time codes
%Y %m %d %H %M %S %F %T %% (the frame's capture time, local), and
{camera}, {frame}, {host}; at most ${MAX_OVERLAY_CHARS} characters. A source's own
JPEG is then decoded and encoded again`, off),
    overlayPos: valueFlag<OverlayPosition>("overlay-pos", "CORNER", "top-left", (raw, flag) => parseOverlayPosFlag(raw, flag),
      OVERLAY_POSITIONS.join(", ")),
    audio: valueFlag<AudioSourceSpec | null>("audio", "SRC", null, (raw, flag) => usage(() => parseAudioSource(raw, flag), AudioSpecError),
      `also capture sound, sent as Opus: default (PulseAudio's default input,
else ALSA's), pulse:NAME, alsa:DEVICE, file (the sound of the --source
video file) or test (a 1 kHz beep at each whole second; the test
pattern then flashes white at each whole second too)`, off, { format: audioSourceSpelling }),
    audioBitrate: valueFlag<number | null>("audio-bitrate", "RATE", null, (raw, flag) => usage(() => parseAudioBitrate(raw, flag), AudioSpecError),
      `Opus bit rate, ${formatAudioBitrate(AUDIO_BITRATE.min)}-${formatAudioBitrate(AUDIO_BITRATE.max)} bit/s, as 64k or 64000`, () => formatAudioBitrate(DEFAULT_AUDIO_FORMAT.bitrate),
      { format: formatAudioBitrate }),
    log: valueFlag("log", "FILE", "lancam-server.log", text, "append joins and leaves here"),
    logMax: LOG_MAX_FLAG,
    securityLog: SECURITY_LOG_FLAG,
    securityLogMax: SECURITY_LOG_MAX_FLAG,
    maxClients: valueFlag("max-clients", "N", DEFAULT_MAX_CLIENTS, (raw, flag) => parseInteger(flag, raw, 1, MAX_VIEWERS), `viewers at once, 1-${MAX_VIEWERS}`),
    maxPerHost: valueFlag("max-per-host", "N", DEFAULT_MAX_PER_HOST, (raw, flag) => parseInteger(flag, raw, 1, MAX_VIEWERS),
      `viewers at once from one address, 1-${MAX_VIEWERS}`),
    ...SERVER_TOKEN_FLAGS,
    mtu: valueFlag("mtu", "BYTES", DEFAULT_MTU, (raw, flag) => parseInteger(flag, raw, MIN_MTU, MAX_MTU),
      `largest datagram, ${MIN_MTU}-${MAX_MTU}`),
    spread: valueFlag("spread", "F", DEFAULT_SPREAD, (raw, flag) => parseNumber(flag, raw, 0, 1),
      `spread each frame's datagrams over this fraction of the frame
interval, 0-1; 0 sends each frame in one burst (lowest latency,
but viewers with small UDP buffers lose frames)`),
    layers: valueFlag<LayersFlag>("layers", "L", { kind: "auto" }, (raw, flag) => usage(() => parseLayersFlag(raw, flag), LayersError),
      `smaller copies for viewers whose path cannot carry the full picture:
auto (half and quarter size, none under ${MIN_LAYER_WIDTH} wide), off (full size
only; slow viewers still get whole frames, fewer of them), or up to
${MAX_LAYERS - 1} sizes WxH,... with even sides; encrypted streams have full size only`,
      (v) => (v.kind === "sizes" ? v.sizes.map((s) => `${s.width}x${s.height}`).join(",") : v.kind)),
    multicast: valueFlag<GroupFlag | null>("multicast", "GROUP[:PORT]", null, (raw, flag) => parseMulticastFlag(raw, flag),
      `send every datagram once to this multicast group, 239.x.y.z[:PORT]
(port ${DEFAULT_GROUP_PORT} by default), or auto for a random 239.255.x.y, instead
of once per viewer; viewers it does not reach get unicast`, off, { format: (v) => `${v.address}:${v.port}` }),
    multicastTtl: valueFlag<number | null>("multicast-ttl", "N", null, (raw, flag) => parseInteger(flag, raw, 1, MAX_MULTICAST_TTL),
      `hops multicast datagrams may take, 1-${MAX_MULTICAST_TTL}`, () => `${DEFAULT_MULTICAST_TTL}: this link only`),
    multicastIf: valueFlag<string | null>("multicast-if", "ADDR", null, (raw, flag) => parseIPv4Flag(raw, flag),
      "send multicast by the interface with this address (default: --bind\nwhen it is one address, else the route for the group)"),
    repair: booleanFlag("repair", "do not resend datagrams viewers ask for, nor send parity\n(loss repair is offered only to viewers that ask for it)", { default: true }),
    tcpDelivery: booleanFlag("tcp-delivery", "refuse to send frames over a viewer's TCP connection when UDP does\nnot reach it (UDP only; such a viewer then sees nothing)", { default: true }),
    fec: valueFlag<FecSpec>("fec", "MODE", DEFAULT_FEC, (raw, flag) => usage(() => parseFecSpec(raw), FecSpecError),
      "parity datagrams for repairing viewers: off, auto (only where\nviewers report loss) or PERCENT of each frame's datagrams", fecSpelling),
    http: valueFlag<number | null>("http", "PORT", null, (raw, flag) => parsePort(flag, raw),
      "also serve a browser view on this port: live page, MJPEG, snapshot,\n/state and /metrics; 0 picks a free port", off),
    httpBind: valueFlag("http-bind", "ADDR", "0.0.0.0", text, "address the browser view listens on"),
    publish: listFlag<string>("publish", "URL", (raw, flag) => usage(() => (parsePublishUrl(raw, flag), raw), PublishUrlError),
      "also push the stream to an RTSP server (MediaMTX and the like),\nrtsp:// or rtsps://; repeatable for several targets", { redact: redactPublishUrl }),
    publishCodec: valueFlag<PublishCodec>("publish-codec", "C", "copy", (raw, flag) => usage(() => parsePublishCodec(raw, flag), PublishCodecError),
      "copy (the JPEG frames as RTP/JPEG) or h264 (encoded once,\nfor servers that offer WebRTC or HLS)"),
    publishTokenFile: valueFlag<string | null>("publish-token-file", "FILE", null, text, "USER:PASSWORD for --publish URLs without credentials of their own"),
    record: valueFlag<string | null>("record", "DIR", null, text, "also record the source into DIR (no network loss)"),
    ...RECORD_FLAGS,
    ...CONFIG_FLAGS,
  },
});

/** How recording errors tell the server's user to fix or avoid them. */
export const SERVER_RECORD_CLI: RecordCliFlags = {
  dir: flagSpelling(SERVER_COMMAND.flags.record),
  off: `run without ${flagSpelling(SERVER_COMMAND.flags.record)}`,
};

/**
 * Where and how multicast datagrams go, or null without --multicast. They leave by
 * --multicast-if's interface, else by --bind's when it names one address.
 */
export function multicastSettings(flags: { multicast: GroupFlag | null; multicastTtl: number | null; multicastIf: string | null; bind: string }): GroupConfig | null {
  if (!flags.multicast) {
    if (flags.multicastTtl !== null) throw new UsageError("--multicast-ttl needs --multicast");
    if (flags.multicastIf !== null) throw new UsageError("--multicast-if needs --multicast");
    return null;
  }
  const bind = normaliseIPv4(flags.bind);
  const interfaceAddress = flags.multicastIf ?? (bind !== null && bind !== "0.0.0.0" ? bind : null);
  return { ...flags.multicast, ttl: flags.multicastTtl ?? DEFAULT_MULTICAST_TTL, interfaceAddress };
}

/** The RTSP targets of --publish with --publish-token-file's credentials; UsageError when they do not fit together. */
export function publishTargets(flags: { publish: string[]; publishTokenFile: string | null }): PublishTarget[] {
  if (flags.publishTokenFile !== null && flags.publish.length === 0) throw new UsageError("--publish-token-file needs at least one --publish URL");
  return usage(() => parsePublishTargets(flags.publish, flags.publishTokenFile === null ? undefined : readPublishTokenFile(flags.publishTokenFile)), PublishUrlError);
}

/** What --audio asks the server to capture, or null without it. */
export interface AudioSettings {
  readonly spec: AudioSourceSpec;
  readonly format: AudioFormat;
  /** The video file `--audio file` reads (camera 0's --source), null for other sources. */
  readonly file: string | null;
  /** The test pattern flashes white at each whole second, matching the test tone's beeps. */
  readonly flashEachSecond: boolean;
}

/**
 * The audio the flags ask for (mono, 48 kHz, 20 ms Opus at --audio-bitrate), or null
 * without --audio; UsageError for --audio-bitrate alone, or --audio file when camera 0
 * is not a video file.
 */
export function audioSettings(flags: { audio: AudioSourceSpec | null; audioBitrate: number | null }, cameras: readonly CameraSource[]): AudioSettings | null {
  if (flags.audio === null) {
    if (flags.audioBitrate !== null) throw new UsageError("--audio-bitrate needs --audio");
    return null;
  }
  const first = cameras[0]?.spec;
  const file = usage(() => audioFilePath(flags.audio!, first), AudioSpecError);
  return {
    spec: flags.audio,
    format: { ...DEFAULT_AUDIO_FORMAT, bitrate: flags.audioBitrate ?? DEFAULT_AUDIO_FORMAT.bitrate },
    file,
    flashEachSecond: flags.audio.kind === "test",
  };
}
