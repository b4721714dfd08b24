import type { SourceSpec } from "../capture/capture.ts";
import type { RecordCliFlags } from "../record/record-dir.ts";
import { DEFAULT_MAX_PER_HOST } from "../send/admission.ts";
import { DEFAULT_SPREAD } from "../send/stream-server.ts";
import { parsePublishCodec, PublishCodecError, type PublishCodec } from "../publish/publish-process.ts";
import { parsePublishUrl, PublishUrlError, readPublishTokenFile, type PublishTarget } from "../publish/publish-url.ts";
import { parsePublishTargets } from "../publish/publishers.ts";
import { DEFAULT_MTU, MAX_MTU, MIN_MTU } from "../wire/datagram.ts";
import { parseInteger, parseNumber, parsePort, parseSize, UsageError } from "./cli.ts";
import { booleanFlag, defineCommand, flagSpelling, listFlag, valueFlag } from "./flags.ts";
import { LOG_MAX_FLAG } from "./log-flags.ts";
import { SERVER_TOKEN_FLAGS } from "./token-flags.ts";
import { RECORD_FLAGS } from "./record-flags.ts";

/** Parses `--source`: "camera:N", "test", "gst:PIPELINE", "file:PATH" or a file path. */
export function parseSourceFlag(s: string, flag = "--source"): SourceSpec {
  if (s === "") throw new UsageError(`invalid ${flag}=: expected camera:N, test, gst:PIPELINE or a video file path`);
  if (s === "test") return { kind: "test" };
  if (s.startsWith("camera:")) {
    const n = s.slice("camera:".length);
    if (!/^\d{1,4}$/.test(n)) throw new UsageError(`invalid ${flag}=${s}: expected camera:N with N a camera index 0..9999`);
    return { kind: "camera", index: Number(n) };
  }
  if (s.startsWith("gst:")) {
    const pipeline = s.slice("gst:".length).trim();
    if (!pipeline) throw new UsageError(`invalid ${flag}=${s}: expected gst:PIPELINE ending in appsink`);
    return { kind: "gst", pipeline };
  }
  if (s.startsWith("file:")) {
    const path = s.slice("file:".length);
    if (!path) throw new UsageError(`invalid ${flag}=${s}: expected file:PATH`);
    return { kind: "file", path };
  }
  return { kind: "file", path: s };
}

const text = (raw: string) => raw;

/** Runs a parser of another layer, turning its own error type into a usage error (exit 2). */
function usage<T>(parse: () => T, errorType: new (...args: never[]) => Error): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof errorType) throw new UsageError(e.message);
    throw e;
  }
}

/** The server's command line. */
export const SERVER_COMMAND = defineCommand({
  role: "server",
  script: "server.ts",
  about: `Captures a camera (or file, pipeline, test pattern) once and streams it to every
lancam viewer that connects. Prints "lancam server listening tcp=PORT ..." when ready.`,
  operands: {},
  flags: {
    port: valueFlag("port", "N", 9999, (raw, flag) => parsePort(flag, raw), "TCP control port (default 9999; 0 picks a free port)"),
    bind: valueFlag("bind", "ADDR", "0.0.0.0", text, "address to listen on (default 0.0.0.0)"),
    source: valueFlag<SourceSpec>("source", "SRC", { kind: "camera", index: 0 }, parseSourceFlag,
      "camera:N (default camera:0), test, gst:PIPELINE, or a video file"),
    loop: booleanFlag("loop", "replay a video file from the start when it ends"),
    size: valueFlag<{ width: number; height: number } | undefined>("size", "WxH", undefined, (raw, flag) => parseSize(flag, raw),
      "capture size (camera, test; default 1280x720 for test)"),
    fps: valueFlag<number | undefined>("fps", "N", undefined, (raw, flag) => parseNumber(flag, raw, 0.1, 240),
      "frames per second (camera, test; overrides a file's rate)"),
    quality: valueFlag("quality", "Q", 80, (raw, flag) => parseInteger(flag, raw, 1, 100), "JPEG quality 1-100 (default 80)"),
    reencode: booleanFlag("reencode", "encode every frame at --quality even where the source already\ndelivers JPEG (default: send a camera's or MJPEG file's JPEG as it is)"),
    log: valueFlag("log", "FILE", "lancam-server.log", text, "append joins and leaves here (default lancam-server.log)"),
    logMax: LOG_MAX_FLAG,
    maxClients: valueFlag("max-clients", "N", 32, (raw, flag) => parseInteger(flag, raw, 1, 1024), "viewers at once, 1-1024 (default 32)"),
    maxPerHost: valueFlag("max-per-host", "N", DEFAULT_MAX_PER_HOST, (raw, flag) => parseInteger(flag, raw, 1, 1024),
      `viewers at once from one address, 1-1024 (default ${DEFAULT_MAX_PER_HOST})`),
    ...SERVER_TOKEN_FLAGS,
    mtu: valueFlag("mtu", "BYTES", DEFAULT_MTU, (raw, flag) => parseInteger(flag, raw, MIN_MTU, MAX_MTU),
      `largest datagram, ${MIN_MTU}-${MAX_MTU} (default ${DEFAULT_MTU})`),
    spread: valueFlag("spread", "F", DEFAULT_SPREAD, (raw, flag) => parseNumber(flag, raw, 0, 1),
      `spread each frame's datagrams over this fraction of the frame
interval, 0-1 (default ${DEFAULT_SPREAD}); 0 sends each frame in one burst
(lowest latency, but viewers with small UDP buffers lose frames)`),
    http: valueFlag<number | null>("http", "PORT", null, (raw, flag) => parsePort(flag, raw),
      "also serve a browser view on this port: live page, MJPEG, snapshot,\n/state and /metrics (default off; 0 picks a free port)"),
    httpBind: valueFlag("http-bind", "ADDR", "0.0.0.0", text, "address the browser view listens on (default 0.0.0.0)"),
    publish: listFlag<string>("publish", "URL", (raw, flag) => usage(() => (parsePublishUrl(raw, flag), raw), PublishUrlError),
      "also push the stream to an RTSP server (MediaMTX and the like),\nrtsp:// or rtsps://; repeatable for several targets"),
    publishCodec: valueFlag<PublishCodec>("publish-codec", "C", "copy", (raw, flag) => usage(() => parsePublishCodec(raw, flag), PublishCodecError),
      "copy (the JPEG frames as RTP/JPEG, default) or h264 (encoded once,\nfor servers that offer WebRTC or HLS)"),
    publishTokenFile: valueFlag<string | null>("publish-token-file", "FILE", null, text, "USER:PASSWORD for --publish URLs without credentials of their own"),
    record: valueFlag<string | null>("record", "DIR", null, text, "also record the source into DIR (no network loss)"),
    ...RECORD_FLAGS,
  },
});

/** How recording errors tell the server's user to fix or avoid them. */
export const SERVER_RECORD_CLI: RecordCliFlags = {
  dir: flagSpelling(SERVER_COMMAND.flags.record),
  off: `run without ${flagSpelling(SERVER_COMMAND.flags.record)}`,
};

/** The RTSP targets of --publish with --publish-token-file's credentials; UsageError when they do not fit together. */
export function publishTargets(flags: { publish: string[]; publishTokenFile: string | null }): PublishTarget[] {
  if (flags.publishTokenFile !== null && flags.publish.length === 0) throw new UsageError("--publish-token-file needs at least one --publish URL");
  return usage(() => parsePublishTargets(flags.publish, flags.publishTokenFile === null ? undefined : readPublishTokenFile(flags.publishTokenFile)), PublishUrlError);
}
