#!/usr/bin/env bun
// lancam client: shows a lancam server's stream in a window and records it.
// This file only wires the parts in lib/ together.
import mri from "mri";
import { writeFileSync } from "node:fs";
import { parseByteSize, parseInteger, parseNumber, parsePort, rejectUnknown, UsageError } from "./lib/app/cli.ts";
import { nameProblem } from "./lib/wire/control.ts";
import { resolveFfmpeg } from "./lib/record/ffmpeg.ts";
import { createLogger, FileSink, stderrSink, type Sink } from "./lib/app/log.ts";
import { parseRecordFlags, RECORD_FLAGS, RECORD_HELP } from "./lib/app/record-flags.ts";
import { invocation, runMain, StopSignal } from "./lib/app/run-main.ts";
import { checkWritable } from "./lib/record/record-dir.ts";
import { RecorderSink } from "./lib/record/recorder-sink.ts";
import { SegmentWriter } from "./lib/record/segment-writer.ts";
import { FrameCheck } from "./lib/receive/frame-check.ts";
import { MAX_SOCKET_BUFFER } from "./lib/net/udp-buffer.ts";
import { formatStatus, StatusLine } from "./lib/display/status-line.ts";
import { versionReport } from "./lib/app/version.ts";
import { Viewer, type FrameSink } from "./lib/receive/viewer.ts";
import { displayAvailable, ViewerWindow } from "./lib/display/viewer-window.ts";
import { WindowSink } from "./lib/display/window-sink.ts";

const HELP = `Usage: ${invocation("client.ts")} HOST PORT UDPPORT [options]

Connects to a lancam server at HOST:PORT (TCP), receives its stream on UDPPORT
(0 picks a free port), shows it in a window and records it into rolling segments.
ESC or q in the window, closing the window, or Ctrl-C says goodbye and exits.

Options:
  --no-window          do not open a window (also automatic where there is no display)
  --frames N           exit 0 after N frames
  --duration S         exit 0 after S seconds
  --stats FILE         write a JSON summary here at exit (frames, loss, latency, fps)
  --verify             decode every frame and count the ones that fail (diagnostics)
  --out DIR            where recordings go (default recordings)
  --no-record          do not record
${RECORD_HELP}
  --recv-buffer SIZE   UDP receive buffer to ask the kernel for (default 4M)
  --log FILE           also append log lines to FILE
  --name NAME          a name for this viewer in the server's log
  --version            print versions of lancam, Bun, OpenCV and the ffmpeg used
  -h, --help           print this help

Recordings: OUT/YYYY-MM-DD/HH-MM-SS.avi (local time of the segment's first frame).
`;

const STRING_FLAGS = ["frames", "duration", "stats", "out", "log", "name", "recv-buffer", ...RECORD_FLAGS];
const BOOLEAN_FLAGS = ["help", "version", "window", "record", "verify"];
const ESC = 27;
const KEY_Q = "q".charCodeAt(0);

async function main(): Promise<number> {
  const args = mri(process.argv.slice(2), {
    string: STRING_FLAGS, boolean: BOOLEAN_FLAGS, alias: { h: "help" }, default: { window: true, record: true },
  });
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.version) {
    console.log(await versionReport("lancam-client"));
    return 0;
  }
  rejectUnknown(args, [...STRING_FLAGS, ...BOOLEAN_FLAGS, "h"]);
  if (args._.length !== 3) {
    throw new UsageError(`expected HOST PORT UDPPORT, got ${args._.length} argument${args._.length === 1 ? "" : "s"}`);
  }
  const host = String(args._[0]);
  const port = parsePort("PORT", String(args._[1]), false);
  const udpPort = parsePort("UDPPORT", String(args._[2]));
  const maxFrames = args.frames === undefined ? 0 : parseInteger("frames", args.frames, 1, 2 ** 31);
  const maxSeconds = args.duration === undefined ? 0 : parseNumber("duration", args.duration, 0.1, 10 * 365 * 86400);
  const record = args.record === false ? null : { dir: String(args.out ?? "recordings"), ...parseRecordFlags(args) };
  const receiveBufferBytes = args["recv-buffer"] === undefined ? 4 << 20 : parseByteSize("recv-buffer", args["recv-buffer"], MAX_SOCKET_BUFFER);
  const name = args.name === undefined ? "" : String(args.name);
  const bad = nameProblem(name);
  if (bad) throw new UsageError(`invalid --name: ${bad}`);

  // Declared first, so disposed last: a second Ctrl-C during teardown still exits 130.
  using signal = new StopSignal();
  const status = new StatusLine();
  // Log lines and the status line share stderr: clear the status first.
  const toStderr: Sink = (line, level) => {
    status.clear();
    stderrSink(line, level);
  };
  using logFile = args.log ? new FileSink(String(args.log)) : null;
  const log = createLogger("client", logFile ? [toStderr, logFile.sink] : [toStderr]);
  if (record) {
    // Both are needed to record; say so now rather than after connecting.
    checkWritable(record.dir);
    resolveFfmpeg();
  }

  let window: ViewerWindow | null = null;
  if (args.window !== false) {
    if (displayAvailable()) window = new ViewerWindow().open(`lancam ${host}:${port}`);
    else log.warn("no display available; running without a window (pass --no-window to say so)");
  }

  const recorder = record ? new RecorderSink() : null;
  const sinks: FrameSink[] = [];
  const onKey = (key: number) => {
    if (key === ESC || key === KEY_Q) viewer.stop();
  };
  const display = window ? new WindowSink(window, onKey) : null;
  if (display) sinks.push((frame) => display.push(frame.jpeg));
  if (recorder) sinks.push(recorder.write);
  const verify = args.verify ? new FrameCheck() : null;
  if (verify) sinks.push((frame) => verify.check(frame.jpeg, frame.width, frame.height));

  const viewer: Viewer = new Viewer({
    host, port, udpPort, log, sinks, maxFrames, maxSeconds, receiveBufferBytes, name,
    onBound: (bound) => console.log(`lancam client receiving udp=${bound} from ${host}:${port}`),
    onWelcome: async (welcome) => {
      if (!record || !recorder) return;
      const fps = welcome.fpsMillihertz / 1000;
      if (recorder.fps === fps) return;
      if (recorder.fps !== null) {
        // A server restarted at another rate: AVI timing needs a writer at the new one.
        log.info("stream rate changed; starting a new recording", { from: recorder.fps, to: fps });
        await recorder.detach();
      }
      try {
        recorder.attach(await SegmentWriter.open({ ...record, fps, log: log.child("recorder") }));
      } catch (e) {
        // The live view goes on; frames are counted as not recorded until a later welcome retries.
        log.error("cannot start recording; viewing only", { error: (e as Error).message });
      }
    },
    onSecond: (stats, welcome) => {
      const snap = stats.snapshot(performance.now());
      status.show(formatStatus(snap, { size: welcome ? `${welcome.width}x${welcome.height}` : undefined, recording: recorder ? `${recorder.stats.segmentsClosed} segs` : undefined }));
    },
  });
  signal.onStop((sig) => {
    log.info("stopping", { signal: sig });
    viewer.stop();
  });
  // Keys must be polled even when no frame arrives, or the window freezes and ESC goes unseen.
  const keys = window
    ? setInterval(() => {
        onKey(window!.pollKey(1));
        if (!window!.visible) {
          log.info("window closed");
          viewer.stop();
        }
      }, 50)
    : null;

  let code = 0;
  try {
    await viewer.run();
  } finally {
    if (keys) clearInterval(keys);
    status.clear();
    await display?.close();
    window?.close();
    await recorder?.close();
    const summary = { ...viewer.stats.summary(viewer.datagramDrops()), recording: recorder?.stats ?? null, verify: verify?.counts ?? null, window: display ? { shown: display.shown, skipped: display.skipped } : null };
    if (args.stats) {
      try {
        writeFileSync(String(args.stats), JSON.stringify(summary, null, 2) + "\n");
      } catch (e) {
        log.error("cannot write --stats file", { path: String(args.stats), error: (e as Error).message });
        code = 1;
      }
    }
    log.info("stopped", {
      frames: summary.framesReceived, dropped: summary.framesDropped, latencyP50Ms: summary.latencyMs.p50?.toFixed(1),
      recorded: recorder?.stats.framesWritten,
    });
  }
  return code;
}

await runMain("lancam-client", "client.ts", main);
