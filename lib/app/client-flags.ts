import { DEFAULT_RECEIVE_BUFFER, MAX_SOCKET_BUFFER } from "../net/udp-buffer.ts";
import type { RecordCliFlags } from "../record/record-dir.ts";
import { nameProblem } from "../wire/control.ts";
import { cameraNameProblem, MAX_CAMERAS } from "../wire/camera-name.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "../receive/handshake.ts";
import { DEFAULT_MAX_DELAY_MS, DEFAULT_RECORD_DELAY_MS } from "../receive/repair.ts";
import { TRANSPORT_MODES, type TransportMode } from "../receive/transport-choice.ts";
import { formatByteSize, parseByteSize, parseInteger, parseNumber, parsePort, UsageError } from "./cli.ts";
import { booleanFlag, defineCommand, flagSpelling, operand, valueFlag } from "./flags.ts";
import { LOG_MAX_FLAG } from "./log-flags.ts";
import { CLIENT_TOKEN_FLAGS } from "./token-flags.ts";
import { CONTAINERS, RECORD_FLAGS } from "./record-flags.ts";
import { windowKeysHelp } from "../display/window-keys.ts";
import { CONFIG_FLAGS } from "./config-flags.ts";
import { AUDIO_OUT_FORMS, audioOutText, parseAudioOut, type AudioOutSpec } from "../audio/audio-output.ts";

const text = (raw: string) => raw;

/**
 * Parses `--camera`: a camera's number, 0 to MAX_CAMERAS-1, or a name by the camera name
 * rule; which cameras the server has, only it knows. A number is written without leading
 * zeros, and camera 0 as "", as when none is given: a server with one camera is asked
 * the same either way.
 */
export function parseCameraFlag(raw: string, flag = "--camera"): string {
  if (/^[0-9]+$/.test(raw)) {
    const n = Number(raw);
    if (n < MAX_CAMERAS) return n === 0 ? "" : String(n);
    throw new UsageError(`invalid ${flag}=${raw}: a server has at most ${MAX_CAMERAS} cameras, numbered 0..${MAX_CAMERAS - 1}`);
  }
  const problem = cameraNameProblem(raw);
  if (problem !== null) throw new UsageError(`invalid ${flag}=${raw}: ${problem}`);
  return raw;
}

/** Help's words for --frames and --duration, whose 0 means no limit. */
const untilStopped = () => "none: run until stopped";

/** The client's command line. */
export const CLIENT_COMMAND = defineCommand({
  role: "client",
  script: "client.ts",
  about: `Connects to a lancam server at HOST:PORT (TCP), receives its stream on UDPPORT
(0 picks a free port), shows it in a window and records it into rolling segments.
With --classic the server is the classroom program instead.
ESC or q in the window, closing the window, or Ctrl-C says goodbye and exits.`,
  operands: {
    host: operand("HOST", text),
    port: operand("PORT", (raw, name) => parsePort(name, raw, false)),
    udpPort: operand("UDPPORT", (raw, name) => parsePort(name, raw)),
  },
  flags: {
    classic: booleanFlag("classic", "the server is the classroom program (one JPEG per UDP datagram, answered continue or end)"),
    window: booleanFlag("window", "do not open a window (also automatic where there is no display)", { default: true }),
    fullscreen: booleanFlag("fullscreen", "start the window full screen, the picture's shape kept (f toggles it)"),
    frames: valueFlag("frames", "N", 0, (raw, flag) => parseInteger(flag, raw, 1, 2 ** 31), "exit 0 after N frames", untilStopped),
    duration: valueFlag("duration", "S", 0, (raw, flag) => parseNumber(flag, raw, 0.1, 10 * 365 * 86400), "exit 0 after S seconds", untilStopped),
    stats: valueFlag<string | null>("stats", "FILE", null, text, "write a JSON summary here at exit (frames, loss, latency, fps)"),
    verify: booleanFlag("verify", "decode every frame and count the ones that fail (diagnostics)"),
    out: valueFlag("out", "DIR", "recordings", text, "where recordings go"),
    record: booleanFlag("record", "do not record", { default: true }),
    ...RECORD_FLAGS,
    repair: booleanFlag("repair", "do not ask the server to repair lost datagrams (resends, parity)", { default: true }),
    maxDelay: valueFlag("max-delay", "MS", DEFAULT_MAX_DELAY_MS, (raw, flag) => parseNumber(flag, raw, 0, 1000),
      "how long the live view waits for a lost datagram's repair, 0-1000 ms"),
    recordDelay: valueFlag("record-delay", "MS", DEFAULT_RECORD_DELAY_MS, (raw, flag) => parseNumber(flag, raw, 0, 5000),
      "how long the recorder waits for a lost datagram's repair, 0-5000 ms\n(not waited with --no-record)"),
    transport: valueFlag<TransportMode>("transport", "MODE", "auto", (raw, flag) => {
      if (!(TRANSPORT_MODES as readonly string[]).includes(raw)) throw new UsageError(`invalid ${flag}=${raw}: expected auto, udp or tcp`);
      return raw as TransportMode;
    }, "how frames come: auto (UDP; over the TCP connection when no UDP\ndatagram gets through, trying UDP again every minute), udp or tcp"),
    recvBuffer: valueFlag("recv-buffer", "SIZE", DEFAULT_RECEIVE_BUFFER, (raw, flag) => parseByteSize(flag, raw, MAX_SOCKET_BUFFER),
      "UDP receive buffer to ask the kernel for", formatByteSize),
    connectTimeout: valueFlag("connect-timeout", "S", DEFAULT_CONNECT_TIMEOUT_MS / 1000, (raw, flag) => parseNumber(flag, raw, 0.1, 24 * 3600),
      "give up connecting after S seconds; a server that is full or busy is\nasked again until then"),
    audioOut: valueFlag<AudioOutSpec>("audio-out", "OUT", { kind: "default" }, (raw, flag) => {
      const spec = parseAudioOut(raw);
      if ("problem" in spec) throw new UsageError(`invalid ${flag}=${raw}: ${spec.problem}`);
      return spec;
    }, `where the server's sound plays: ${AUDIO_OUT_FORMS}.\ndefault: PulseAudio when a server answers, else ALSA's default device;\nwav:FILE: what would be heard, its comment says when sample 0 was`, audioOutText, { format: audioOutText }),
    displayLog: valueFlag<string | null>("display-log", "FILE", null, text,
      "write a line per frame drawn in the window: its capture time and when it\nwas shown (microseconds since the epoch), to measure latency and lip sync"),
    log: valueFlag<string | null>("log", "FILE", null, text, "also append log lines to FILE"),
    logMax: LOG_MAX_FLAG,
    ...CLIENT_TOKEN_FLAGS,
    name: valueFlag("name", "NAME", "", (raw, flag) => {
      const bad = nameProblem(raw);
      if (bad) throw new UsageError(`invalid ${flag}: ${bad}`);
      return raw;
    }, "a name for this viewer in the server's log"),
    // "" is camera 0, which every server has.
    camera: valueFlag("camera", "N|NAME", "", (raw, flag) => parseCameraFlag(raw, flag),
      "which of the server's cameras to watch: its number (from 0) or its name", () => "0", { format: (v) => v }),
    ...CONFIG_FLAGS,
  },
  footer: `Keys in the window:
${windowKeysHelp()}

When the picture is not live, it says so on the picture: how old it is, and why
(reconnecting, camera unavailable, no datagrams arriving).

Recordings: OUT/YYYY-MM-DD/HH-MM-SS.EXT (local time of the segment's first frame),
EXT being the --container: ${CONTAINERS.join(" or ")}.`,
});

/** How recording errors tell the client's user to fix or avoid them. */
export const CLIENT_RECORD_CLI: RecordCliFlags = {
  dir: flagSpelling(CLIENT_COMMAND.flags.out),
  off: `pass ${flagSpelling(CLIENT_COMMAND.flags.record)}`,
};
