#!/usr/bin/env bun
// lancam server: captures one source, streams it to every viewer, optionally records it.
// This file only wires the parts in lib/ together.
import { helpText, parseCommandLine } from "./lib/app/flags.ts";
import { configLoader } from "./lib/app/config-load.ts";
import { printConfig } from "./lib/app/print-config.ts";
import { FileSink } from "./lib/log/file-sink.ts";
import { createLogger, stderrSink } from "./lib/log/logger.ts";
import { securityLogSettings } from "./lib/app/log-flags.ts";
import { checkCanRecord } from "./lib/app/record-check.ts";
import { recordSettings } from "./lib/app/record-flags.ts";
import { runMain, StopSignal } from "./lib/app/run-main.ts";
import { audioSettings, multicastSettings, publishTargets, SERVER_COMMAND, SERVER_RECORD_CLI } from "./lib/app/server-flags.ts";
import { openAudioCapture } from "./lib/audio/audio-capture.ts";
import { cameraSettings, type CameraSetting } from "./lib/app/cameras.ts";
import { cameraRecordDir, captureLoop } from "./lib/app/capture-loop.ts";
import { cameraLabel } from "./lib/wire/camera-name.ts";
import { Publishers, type PublishTotals } from "./lib/publish/publishers.ts";
import { withSubPath } from "./lib/publish/publish-url.ts";
import { versionReport } from "./lib/app/version.ts";
import { openSource, type CaptureSource } from "./lib/capture/capture.ts";
import { listCameras } from "./lib/capture/camera-list.ts";
import { browserAdmission, browserLayers, serverState } from "./lib/app/browser-view.ts";
import { HttpView } from "./lib/http/http-view.ts";
import { tokenAuth } from "./lib/http/token-auth.ts";
import { SegmentWriter } from "./lib/record/segment-writer.ts";
import { StartError, StreamServer } from "./lib/send/stream-server.ts";
import { tokenSource } from "./lib/app/token-flags.ts";
import { browserViewWarning, joinCommand, reachableAddress, setUpToken } from "./lib/app/token-setup.ts";
import { browserViewToken, TokenError } from "./lib/net/token.ts";

async function main(): Promise<number> {
  const config = configLoader(SERVER_COMMAND);
  const cli = parseCommandLine(SERVER_COMMAND, process.argv.slice(2), config);
  if (cli.action === "help") {
    process.stdout.write(helpText(SERVER_COMMAND));
    return 0;
  }
  if (cli.action === "version") {
    console.log(await versionReport("lancam-server"));
    return 0;
  }
  // Before anything opens: the point is to learn which camera to open.
  if (cli.flags.listCameras) {
    process.stdout.write(listCameras());
    return 0;
  }
  const { port, bind, loop, log: logPath, maxClients, mtu, spread, http: httpPort, httpBind } = cli.flags;
  const cameras = cameraSettings(cli);
  const several = cameras.length > 1;
  const record = cli.flags.record === null ? null : { dir: cli.flags.record, ...recordSettings(cli.flags) };
  const targets = publishTargets(cli.flags);
  const multicast = multicastSettings(cli.flags);
  const tokens = tokenSource(cli.flags, process.env);
  const security = securityLogSettings(cli.flags);
  // One microphone, camera 0's (a file's own audio track with `--audio file`).
  const audio = audioSettings(cli.flags, [{ name: null, spec: cameras[0]!.spec }]);
  // After the checks across flags, so what is printed passes every check made before a start opens anything.
  if (cli.flags.printConfig) {
    process.stdout.write(printConfig(SERVER_COMMAND, cli));
    return 0;
  }

  // Declared first, so disposed last: a second Ctrl-C during teardown still exits 130.
  using signal = new StopSignal();
  using logFile = new FileSink(logPath, { maxBytes: cli.flags.logMax });
  using securityFile = security.path === null ? null : new FileSink(security.path, { maxBytes: security.maxBytes, securityOnly: true, flag: "--security-log" });
  const log = createLogger("server", securityFile ? [stderrSink, logFile.sink, securityFile.sink] : [stderrSink, logFile.sink]);
  signal.onStop((sig) => log.info("stopping", { signal: sig }));
  // Each camera's lines say which camera they are about where there are several.
  const part = (name: string, c: CameraSetting) => (several ? `${name} ${c.name}` : name);
  const recordDir = (c: CameraSetting) => cameraRecordDir(record!.dir, c.name, several);
  // Said before the camera opens, not after old recordings were repaired.
  if (record) for (const c of cameras) checkCanRecord(recordDir(c), SERVER_RECORD_CLI);
  let token;
  try {
    token = setUpToken(tokens, logPath);
  } catch (e) {
    if (e instanceof TokenError) throw new StartError(e.message);
    throw e;
  }
  // A weak token or a token file others can read is for whoever audits the security log too.
  for (const w of [...config.warnings, ...(token?.warnings ?? [])]) log.security(w);

  // A camera's outages reach its viewers through the server, started just below.
  const onAvailability = cameras.map(() => (_available: boolean) => {});
  await using opened = new AsyncDisposableStack();
  const sources: CaptureSource[] = [];
  for (const c of cameras) {
    sources.push(opened.use(await openSource(c.spec, {
      size: c.size, fps: c.fps, quality: c.quality, loop, reencode: cli.flags.reencode, overlay: c.overlay ?? undefined, log: log.child(part("capture", c)),
      onAvailability: (a) => onAvailability[c.index]!(a),
      // The test pattern flashes white at each whole second that the test audio beeps at.
      flashEachSecond: c.index === 0 && audio?.flashEachSecond,
    })));
  }
  const first = sources[0]!;
  // Bind before recovering old recordings (which can take a while): a taken port is said at once.
  await using server = await StreamServer.start({
    port, bind, mtu, maxClients, spread, log, stream: { width: first.width, height: first.height, fps: first.fps },
    cameras: sources.map((s, i) => ({ name: cameras[i]!.name, width: s.width, height: s.height, fps: s.fps, layerQuality: cameras[i]!.quality, audio: i === 0 ? audio?.format : null })),
    maxPerHost: cli.flags.maxPerHost, token: token?.key ?? null, multicast, layers: cli.flags.layers, layerQuality: cameras[0]!.quality,
    repair: cli.flags.repair ? { fec: cli.flags.fec } : null, tcpDelivery: cli.flags.tcpDelivery,
  });
  for (const c of cameras) onAvailability[c.index] = (available) => server.sourceStatus(available, c.index);
  // Publishing never holds up the rest: frames for a server that is down or slow are dropped and counted.
  // Each of several cameras goes one level below the URL given (rtsp://host/classroom/board).
  await using publishing = new AsyncDisposableStack();
  const publishers = cameras.map((c, i) => targets.length === 0
    ? null
    : publishing.use(new Publishers({ targets: several ? targets.map((t) => withSubPath(t, c.name)) : targets, codec: cli.flags.publishCodec, fps: sources[i]!.fps, audio: i === 0 ? audio?.format : null, log: log.child(part("publish", c)) })));
  const framesCaptured = cameras.map(() => 0);
  const startedAt = Date.now();
  await using http = httpPort === null
    ? null
    : await HttpView.start({
        port: httpPort, bind: httpBind, log: log.child("http"), startedAt, logViewers: false, admission: browserAdmission(server), maxViewers: maxClients,
        // Camera 0's sound, as /audio.ogg and the page's speaker button.
        audio: cameras.map((c) => (c.index === 0 ? (audio?.format ?? null) : null)),
        auth: token ? tokenAuth(browserViewToken(token.token)) : null,
        // A browser reader that falls behind gets the next size down of the --layers ladder.
        layers: browserLayers(cli.flags.layers, sources.map((s, i) => ({ width: s.width, height: s.height, quality: cameras[i]!.quality }))),
        state: serverState(server, () => {
          const live = server.cameras;
          return sources.map((s, i) => ({ name: cameras[i]!.name, description: s.description, width: s.width, height: s.height, fps: s.fps, available: live[i]!.available, framesCaptured: framesCaptured[i]! }));
        }, () => publishers.flatMap((p) => p?.stats.map(({ url, codec, state, sent, dropped, reconnects, lastError }) => ({ url, codec, state, sent, dropped, reconnects, lastError })) ?? [])),
      });
  await using recording = new AsyncDisposableStack();
  const writers: (SegmentWriter | null)[] = [];
  for (const [i, c] of cameras.entries()) {
    writers.push(record ? recording.use(await SegmentWriter.open({ ...record, dir: recordDir(c), fps: sources[i]!.fps, audio: i === 0 ? audio?.format : null, log: log.child(part("recorder", c)), cliFlags: SERVER_RECORD_CLI })) : null);
  }
  // The microphone, opened last, so each packet has everywhere to go from the first one on.
  // A device that cannot be opened ends the start here (exit 2), before the ready line.
  await using sound = audio === null
    ? null
    : await openAudioCapture(audio.spec, {
        format: audio.format, videoSource: cameras[0]!.spec, loop, log,
        onPacket: (p) => {
          server.broadcastAudio(p, 0);
          http?.pushAudio(p, 0);
          writers[0]?.writeAudio(p);
          publishers[0]?.writeAudio(p);
        },
        onAvailability: (available) => server.audioStatus(available, 0),
      });
  // Nothing to do, nothing done: a camera with no viewer of any kind, no recorder and no
  // publishing keeps its place (so its next viewer starts at once) but encodes nothing.
  for (const [i, source] of sources.entries()) source.pauseWhile(() => server.viewerCountOf(i) === 0 && writers[i] === null && publishers[i] === null);
  const group = server.multicastGroup;
  if (several) {
    log.info("started", { cameras: cameras.length, tcp: server.port, udp: server.udpPort, record: record?.dir });
    for (const [i, s] of sources.entries()) log.info("camera", { camera: cameraLabel(i, cameras[i]!.name), source: s.description, size: `${s.width}x${s.height}`, fps: s.fps, record: record ? recordDir(cameras[i]!) : undefined });
  } else {
    log.info("started", { source: first.description, size: `${first.width}x${first.height}`, fps: first.fps, tcp: server.port, udp: server.udpPort, record: record?.dir, audio: sound?.description });
  }
  // Each smaller layer in a group of its own, by address: viewers pick theirs by their loss (docs/protocol.md 8.1).
  const layerGroups = server.layerGroups.map((g) => `${g.width}x${g.height}=${g.address}`).join(",");
  if (group) log.info("multicast: each datagram is sent once to the group; viewers it does not reach get unicast", { group: `${group.address}:${group.port}`, ttl: multicast!.ttl, interface: multicast!.interfaceAddress ?? "by route", cameras: several ? `port + camera number (${group.port}..${group.port + cameras.length - 1})` : undefined, layerGroups: layerGroups || undefined });
  if (token) log.info("token required: viewers prove it, frames are encrypted", { tokenFile: token.file?.path });
  else log.warn("no token: anyone on the network can watch this stream; start with --token auto to require one");
  if (several) {
    console.log(`lancam server listening tcp=${server.port} cameras=${cameras.length}`);
    for (const [i, cam] of server.cameras.entries()) {
      const s = sources[i]!;
      console.log(`lancam server camera ${cameraLabel(i, cam.name)} source=${s.description} size=${s.width}x${s.height} fps=${s.fps}${cam.group ? ` multicast=${cam.group.address}:${cam.group.port}` : ""}`);
      // Each camera signs with its own key: a viewer of one prints its own camera's.
      console.log(`lancam server camera ${cameraLabel(i, cam.name)} frame signing key fingerprint=${cam.fingerprint} (new at each start)`);
      log.info("frames are signed", { camera: `${cameraLabel(i, cam.name)}`, fingerprint: cam.fingerprint });
    }
  } else {
    console.log(`lancam server listening tcp=${server.port} source=${first.description} size=${first.width}x${first.height} fps=${first.fps}${group ? ` multicast=${group.address}:${group.port}` : ""}`);
    // Viewers print the same fingerprint: a user who compares them knows the frames are this server's.
    console.log(`lancam server frame signing key fingerprint=${server.signingFingerprint} (new at each start)`);
    log.info("frames are signed", { fingerprint: server.signingFingerprint });
  }
  // The token goes to the terminal only, never to the log.
  if (token?.file) {
    console.log(`lancam server token file=${token.file.path} (${token.file.created ? "new" : "kept from an earlier start"})`);
    console.log(`join with: ${joinCommand(reachableAddress(bind), server.port, token.token)}`);
  }
  if (http) {
    console.log(`lancam http listening url=${http.url}`);
    if (token) {
      const warning = browserViewWarning(httpBind);
      if (warning) log.warn(warning);
      // Like the token, the link goes to the terminal only, never to the log.
      console.log(`browser link: ${new URL(`/?token=${browserViewToken(token.token)}`, http.url.replace("//0.0.0.0:", `//${reachableAddress(httpBind)}:`)).href}`);
    }
  }

  // One loop per camera. With one camera the server ends with it; with several, a camera
  // whose source ended or failed is unavailable to its viewers, and the others go on.
  let running = sources.length;
  const ends = await Promise.all(sources.map(async (source, i) => {
    const end = await captureLoop(source, signal, (frame) => {
      framesCaptured[i]!++;
      server.broadcast(frame, i);
      http?.push(frame, i);
      writers[i]?.write(frame);
      publishers[i]?.write(frame);
    }, log.child(part("capture", cameras[i]!)));
    running--;
    if (end !== "stopped" && several) {
      server.sourceStatus(false, i);
      if (running > 0) log.warn("camera stopped; its viewers are told it is unavailable and stay connected, the other cameras go on", { camera: cameraLabel(i, cameras[i]!.name), why: end === "ended" ? "its source ended (no --loop)" : "capture failed" });
    }
    return end;
  }));
  const exitCode = ends.includes("failed") ? 1 : 0;
  // Goodbyes first, so the last line sums up; the `using` declarations then close the
  // writers, server (already stopped), sources, log and signal handlers in reverse order.
  await http?.stop();
  await server.stop();
  for (const p of publishers) await p?.close();
  const published = publishers.reduce<PublishTotals | null>((sum, p) => {
    const t = p?.totals;
    if (!t) return sum;
    return sum ? { targets: sum.targets + t.targets, publishing: sum.publishing + t.publishing, sent: sum.sent + t.sent, dropped: sum.dropped + t.dropped, reconnects: sum.reconnects + t.reconnects } : t;
  }, null);
  if (several) for (const [i, s] of sources.entries()) log.info("camera stopped", { camera: cameraLabel(i, cameras[i]!.name), framesCaptured: framesCaptured[i], ...s.stats });
  log.info("stopped", {
    ...server.stats, framesCaptured: framesCaptured.reduce((a, b) => a + b, 0), ...(several ? {} : first.stats),
    ...(sound ? { audioPackets: sound.stats.packets, audioRestarts: sound.stats.restarts, audioOutages: sound.stats.outages } : {}),
    ...(published ? { publishTargets: published.targets, publishSent: published.sent, publishDropped: published.dropped, publishReconnects: published.reconnects } : {}),
  });
  return exitCode;
}

await runMain("lancam-server", "server.ts", main);
