#!/usr/bin/env bun
// lancam server: captures one source, streams it to every viewer, optionally records it.
// This file only wires the parts in lib/ together.
import mri from "mri";
import { parseInteger, parseNumber, parsePort, parseSize, rejectUnknown, UsageError } from "./lib/app/cli.ts";
import { openSource, parseSourceSpec } from "./lib/capture/capture.ts";
import { createLogger, FileSink, stderrSink } from "./lib/app/log.ts";
import { parseRecordFlags, RECORD_FLAGS, RECORD_HELP } from "./lib/app/record-flags.ts";
import { invocation, runMain, StopSignal } from "./lib/app/run-main.ts";
import { SegmentWriter } from "./lib/record/segment-writer.ts";
import { DEFAULT_MTU, MAX_MTU, MIN_MTU } from "./lib/wire/datagram.ts";
import { DEFAULT_SPREAD, StreamServer } from "./lib/send/stream-server.ts";
import { versionReport } from "./lib/app/version.ts";

const HELP = `Usage: ${invocation("server.ts")} [options]

Captures a camera (or file, pipeline, test pattern) once and streams it to every
lancam viewer that connects. Prints "lancam server listening tcp=PORT ..." when ready.

Options:
  --port N             TCP control port (default 9999; 0 picks a free port)
  --bind ADDR          address to listen on (default 0.0.0.0)
  --source SRC         camera:N (default camera:0), test, gst:PIPELINE, or a video file
  --loop               replay a video file from the start when it ends
  --size WxH           capture size (camera, test; default 1280x720 for test)
  --fps N              frames per second (camera, test; overrides a file's rate)
  --quality Q          JPEG quality 1-100 (default 80)
  --log FILE           append joins and leaves here (default lancam-server.log)
  --max-clients N      viewers at once, 1-1024 (default 32)
  --mtu BYTES          largest datagram, ${MIN_MTU}-${MAX_MTU} (default ${DEFAULT_MTU})
  --spread F           spread each frame's datagrams over this fraction of the frame
                       interval, 0-1 (default 0.25); 0 sends each frame in one burst
                       (lowest latency, but viewers with small UDP buffers lose frames)
  --record DIR         also record the source into DIR (no network loss)
${RECORD_HELP}
  --version            print versions of lancam, Bun, OpenCV and the ffmpeg used
  -h, --help           print this help
`;

const STRING_FLAGS = ["port", "bind", "source", "size", "fps", "quality", "log", "max-clients", "mtu", "spread", "record", ...RECORD_FLAGS];

async function main(): Promise<number> {
  const args = mri(process.argv.slice(2), { string: STRING_FLAGS, boolean: ["help", "version", "loop"], alias: { h: "help" } });
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.version) {
    console.log(await versionReport("lancam-server"));
    return 0;
  }
  rejectUnknown(args, [...STRING_FLAGS, "help", "version", "loop", "h"]);
  if (args._.length > 0) throw new UsageError(`unexpected argument ${args._[0]}: the server takes only options`);
  const port = args.port === undefined ? 9999 : parsePort("--port", args.port);
  const bind = args.bind ?? "0.0.0.0";
  const spec = parseSourceSpec(args.source ?? "camera:0");
  const size = args.size === undefined ? undefined : parseSize("size", args.size);
  const fps = args.fps === undefined ? undefined : parseNumber("fps", args.fps, 0.1, 240);
  const quality = args.quality === undefined ? 80 : parseInteger("quality", args.quality, 1, 100);
  const maxClients = args["max-clients"] === undefined ? 32 : parseInteger("max-clients", args["max-clients"], 1, 1024);
  const mtu = args.mtu === undefined ? DEFAULT_MTU : parseInteger("mtu", args.mtu, MIN_MTU, MAX_MTU);
  const spread = args.spread === undefined ? DEFAULT_SPREAD : parseNumber("spread", args.spread, 0, 1);
  const record = args.record === undefined ? null : { dir: String(args.record), ...parseRecordFlags(args) };
  if (record && !record.dir) throw new UsageError("--record needs a folder");

  // Declared first, so disposed last: a second Ctrl-C during teardown still exits 130.
  using signal = new StopSignal();
  using logFile = new FileSink(args.log ?? "lancam-server.log");
  const log = createLogger("server", [stderrSink, logFile.sink]);
  signal.onStop((sig) => log.info("stopping", { signal: sig }));

  await using source = await openSource(spec, { size, fps, quality, loop: Boolean(args.loop), log: log.child("capture") });
  // Bind before recovering old recordings (which can take a while): a taken port is said at once.
  await using server = await StreamServer.start({
    port, bind, mtu, maxClients, spread, log, stream: { width: source.width, height: source.height, fps: source.fps },
  });
  await using writer = record
    ? await SegmentWriter.open({ ...record, fps: source.fps, log: log.child("recorder") })
    : null;
  log.info("started", { source: source.description, size: `${source.width}x${source.height}`, fps: source.fps, tcp: server.port, udp: server.udpPort, record: record?.dir });
  console.log(`lancam server listening tcp=${server.port} source=${source.description} size=${source.width}x${source.height} fps=${source.fps}`);

  let exitCode = 0;
  try {
    while (!signal.stopped) {
      const frame = await signal.race(source.next());
      if (!frame) {
        if (!signal.stopped) log.info("source ended", { source: source.description });
        break;
      }
      server.broadcast(frame);
      writer?.write(frame);
    }
  } catch (e) {
    log.error("capture failed", { source: source.description, error: (e as Error).message });
    exitCode = 1;
  }
  // Goodbyes first, so the last line sums up; the `using` declarations then close the
  // writer, server (already stopped), source, log and signal handlers in reverse order.
  await server.stop();
  log.info("stopped", { ...server.stats });
  return exitCode;
}

await runMain("lancam-server", "server.ts", main);
