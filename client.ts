#!/usr/bin/env bun
// lancam client: shows a lancam (or classroom) server's stream in a window and records it.
// This file only wires the parts in lib/ together.
import { writeFileSync } from "node:fs";
import { CLIENT_COMMAND, CLIENT_RECORD_CLI } from "./lib/app/client-flags.ts";
import { helpText, parseCommandLine } from "./lib/app/flags.ts";
import { configLoader } from "./lib/app/config-load.ts";
import { printConfig } from "./lib/app/print-config.ts";
import { FileSink } from "./lib/log/file-sink.ts";
import type { Sink } from "./lib/log/format.ts";
import { createLogger, stderrSink } from "./lib/log/logger.ts";
import { checkCanRecord } from "./lib/app/record-check.ts";
import { recordSettings } from "./lib/app/record-flags.ts";
import { runMain, StopSignal } from "./lib/app/run-main.ts";
import { versionReport } from "./lib/app/version.ts";
import { UsageError } from "./lib/app/cli.ts";
import { tokenSource } from "./lib/app/token-flags.ts";
import { setUpToken } from "./lib/app/token-setup.ts";
import { formatStatus, StatusLine } from "./lib/display/status-line.ts";
import { displayAvailable } from "./lib/display/viewer-window.ts";
import { PictureSaver } from "./lib/display/picture-file.ts";
import { WindowOverlay } from "./lib/display/window-overlay.ts";
import { WindowSink } from "./lib/display/window-sink.ts";
import { FrameCheck } from "./lib/receive/frame-check.ts";
import type { FrameSink } from "./lib/receive/viewer.ts";
import { createWatcher, type Watcher } from "./lib/receive/watcher.ts";
import { RecorderSink } from "./lib/record/recorder-sink.ts";
import { SegmentWriter } from "./lib/record/segment-writer.ts";
import { AudioPlayer } from "./lib/audio/audio-player.ts";
import { DisplayLog } from "./lib/display/display-log.ts";

async function main(): Promise<number> {
  const config = configLoader(CLIENT_COMMAND);
  const cli = parseCommandLine(CLIENT_COMMAND, process.argv.slice(2), config);
  if (cli.action === "help") {
    process.stdout.write(helpText(CLIENT_COMMAND));
    return 0;
  }
  if (cli.action === "version") {
    console.log(await versionReport("lancam-client"));
    return 0;
  }
  const { host, port, udpPort } = cli.operands;
  const { frames: maxFrames, duration: maxSeconds, recvBuffer: receiveBufferBytes, name, stats: statsPath } = cli.flags;
  const record = cli.flags.record ? { dir: cli.flags.out, ...recordSettings(cli.flags) } : null;
  const tokens = tokenSource(cli.flags, process.env);
  if (tokens.kind === "auto") throw new UsageError("LANCAM_TOKEN=auto is for the server; give the viewer the token the server printed");
  if (tokens.kind !== "none" && cli.flags.classic) throw new UsageError("--classic: the classroom program has no token; run without one");
  if (cli.flags.fullscreen && !cli.flags.window) throw new UsageError("--fullscreen: there is no window with --no-window; leave one of them out");
  // After the checks across flags, so what is printed passes every check made before a start opens anything.
  if (cli.flags.printConfig) {
    process.stdout.write(printConfig(CLIENT_COMMAND, cli));
    return 0;
  }

  // Declared first, so disposed last: a second Ctrl-C during teardown still exits 130.
  using signal = new StopSignal();
  using status = new StatusLine();
  // Log lines and the status line share stderr: clear the status first.
  const toStderr: Sink = (line, level) => {
    status.clear();
    stderrSink(line, level);
  };
  using logFile = cli.flags.log === null ? null : new FileSink(cli.flags.log, { maxBytes: cli.flags.logMax });
  const log = createLogger("client", logFile ? [toStderr, logFile.sink] : [toStderr]);
  // Both are needed to record; say so now rather than after connecting.
  if (record) checkCanRecord(record.dir, CLIENT_RECORD_CLI);
  const token = setUpToken(tokens, null);
  for (const w of [...config.warnings, ...(token?.warnings ?? [])]) log.warn(w);

  // Sound is offered to the server when it is heard or recorded; without either, none is sent.
  const audioOut = cli.flags.audioOut;
  const wantsAudio = !cli.flags.classic && (audioOut.kind !== "none" || record !== null);
  // Opened at the first welcome that announces audio (its format comes with it).
  let player = null as AudioPlayer | null;
  using displayLog = cli.flags.displayLog === null ? null : new DisplayLog(cli.flags.displayLog, log);

  const windowed = cli.flags.window && displayAvailable();
  if (cli.flags.window && !windowed) log.warn("no display available; running without a window (pass --no-window to say so)");
  // The window says on the picture when it is not live; `s` saves the picture beside the recordings.
  const overlay = windowed ? new WindowOverlay() : null;
  const saver = new PictureSaver(cli.flags.out, log);
  const display = windowed
    ? WindowSink.open(`lancam ${host}:${port}`, (reason) => {
        if (reason === "closed") log.info("window closed");
        viewer.stop();
      }, {
        fullScreen: cli.flags.fullscreen, overlay: overlay!, onSave: (picture) => void saver.save(picture),
        // With sound, each picture is shown when its sound is heard (lip sync); `m` mutes.
        playoutTimeOf: (capturedAt) => player?.playoutTimeOf(capturedAt) ?? null,
        onMute: () => player?.toggleMute(),
        onShown: displayLog ? (picture, shownAt) => displayLog.shown(picture.capturedAt, shownAt) : undefined,
      })
    : null;
  const recorder = record
    ? new RecorderSink({ log, open: (fps, audio) => SegmentWriter.open({ ...record, fps, audio, log: log.child("recorder"), cliFlags: CLIENT_RECORD_CLI }) })
    : null;
  const verify = cli.flags.verify ? new FrameCheck() : null;
  const sinks: FrameSink[] = [];
  if (display) {
    sinks.push((frame) => {
      overlay?.status.picture(performance.now());
      display.push(frame.jpeg, frame);
    });
  }
  // The recorder also takes frames repaired too late for the window, in their place.
  const recordSinks: FrameSink[] = recorder ? [recorder.write] : [];
  if (verify) sinks.push((frame) => verify.check(frame.jpeg, frame.width, frame.height));

  const viewer: Watcher = createWatcher({
    protocol: cli.flags.classic ? "classic" : "lancam",
    host, port, udpPort, log, sinks, recordSinks, maxFrames,
    repair: cli.flags.repair ? { maxDelayMs: cli.flags.maxDelay, recordDelayMs: recorder ? cli.flags.recordDelay : 0 } : null, maxSeconds, receiveBufferBytes, name, camera: cli.flags.camera, token: token?.key ?? null,
    connectTimeoutMs: cli.flags.connectTimeout * 1000, transport: cli.flags.transport,
    // Not a flag: tests shorten the wait before UDP is tried again (default one minute).
    retryUdpMs: Number(process.env.LANCAM_UDP_RETRY_MS) > 0 ? Number(process.env.LANCAM_UDP_RETRY_MS) : undefined,
    recordedFrames: () => recorder?.framesAccepted ?? 0,
    onBound: (bound) => console.log(`lancam client receiving udp=${bound} from ${host}:${port}`),
    onStreamRate: async (fps, audio) => {
      overlay?.status.frameRate(fps);
      if (audio && audioOut.kind !== "none" && (!player || player.format.channels !== audio.channels)) {
        await player?.[Symbol.asyncDispose]();
        player = await AudioPlayer.open({ format: audio, output: audioOut, log: log.child("audio") });
        overlay?.sound(player);
      }
      return recorder?.onStreamRate(fps, audio);
    },
    audio: wantsAudio
      ? {
          onPacket: (packet, arrivedAt) => {
            player?.push(packet, arrivedAt);
            recorder?.writeAudio(packet);
          },
          onStatus: (available) => {
            if (!available) player?.unavailable();
          },
        }
      : undefined,
    onLink: overlay ? (state) => overlay.status.link(state, performance.now()) : undefined,
    onDatagram: overlay ? () => overlay.status.datagram(performance.now()) : undefined,
    onSource: overlay ? (available) => overlay.status.camera(available ? "available" : "unavailable") : undefined,
    onSecond: (stats, size) => {
      const snap = stats.snapshot(performance.now());
      const line = formatStatus(snap, { size: size ?? undefined, recording: recorder ? `${recorder.stats.segmentsClosed} segs` : undefined, transport: cli.flags.classic ? undefined : stats.transport });
      status.show(line);
      overlay?.figures(line);
    },
  });
  signal.onStop((sig) => {
    log.info("stopping", { signal: sig });
    viewer.stop();
  });

  let code = 0;
  try {
    // Closed in reverse order when the run ends: the viewer says goodbye, the window
    // closes, the recorder finishes its segment. The summary below needs all three done.
    await using _recorder = recorder, _display = display, _viewer = viewer;
    try {
      await viewer.run();
    } finally {
      await player?.[Symbol.asyncDispose]();
    }
    // A run that ends without a single frame is a failure the user must hear about, with the likeliest cause.
    const noFrame = viewer.noFrameReason?.() ?? null;
    if (noFrame) {
      log.error(noFrame);
      code = 1;
    }
  } finally {
    const summary = { ...viewer.stats.summary(viewer.datagramDrops()), repair: viewer.repairSummary?.() ?? null, recording: recorder?.stats ?? null, verify: verify?.counts ?? null, window: display ? { shown: display.shown, skipped: display.skipped, sync: display.sync } : null,
      audio: wantsAudio ? { datagrams: viewer.audioCounters?.() ?? null, player: player?.stats ?? null } : null };
    if (statsPath !== null) {
      try {
        writeFileSync(statsPath, JSON.stringify(summary, null, 2) + "\n");
      } catch (e) {
        log.error("cannot write --stats file", { path: statsPath, error: (e as Error).message });
        code = 1;
      }
    }
    log.info("stopped", {
      frames: summary.framesReceived, dropped: summary.framesDropped, latencyP50Ms: summary.latencyMs.p50?.toFixed(1), transport: cli.flags.classic ? undefined : summary.transport.transport,
      recorded: recorder?.stats.framesWritten,
    });
  }
  return code;
}

await runMain("lancam-client", "client.ts", main);
