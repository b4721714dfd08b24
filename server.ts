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
import { multicastSettings, publishTargets, SERVER_COMMAND, SERVER_RECORD_CLI } from "./lib/app/server-flags.ts";
import { cameraSettings } from "./lib/app/cameras.ts";
import { Publishers } from "./lib/publish/publishers.ts";
import { versionReport } from "./lib/app/version.ts";
import { openSource } from "./lib/capture/capture.ts";
import { listCameras } from "./lib/capture/camera-list.ts";
import { browserAdmission, serverState } from "./lib/app/browser-view.ts";
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
  // The first camera only, for now.
  const { spec, size, fps, quality, overlay } = cameraSettings(cli)[0]!;
  const record = cli.flags.record === null ? null : { dir: cli.flags.record, ...recordSettings(cli.flags) };
  const targets = publishTargets(cli.flags);
  const multicast = multicastSettings(cli.flags);
  const tokens = tokenSource(cli.flags, process.env);
  const security = securityLogSettings(cli.flags);
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
  // Said before the camera opens, not after old recordings were repaired.
  if (record) checkCanRecord(record.dir, SERVER_RECORD_CLI);
  let token;
  try {
    token = setUpToken(tokens, logPath);
  } catch (e) {
    if (e instanceof TokenError) throw new StartError(e.message);
    throw e;
  }
  // A weak token or a token file others can read is for whoever audits the security log too.
  for (const w of [...config.warnings, ...(token?.warnings ?? [])]) log.security(w);

  // The camera's outages reach the viewers through the server, started just below.
  let onAvailability: (available: boolean) => void = () => {};
  await using source = await openSource(spec, {
    size, fps, quality, loop, reencode: cli.flags.reencode, overlay: overlay ?? undefined, log: log.child("capture"), onAvailability: (a) => onAvailability(a),
  });
  // Bind before recovering old recordings (which can take a while): a taken port is said at once.
  await using server = await StreamServer.start({
    port, bind, mtu, maxClients, spread, log, stream: { width: source.width, height: source.height, fps: source.fps },
    maxPerHost: cli.flags.maxPerHost, token: token?.key ?? null, multicast, layers: cli.flags.layers, layerQuality: quality,
    repair: cli.flags.repair ? { fec: cli.flags.fec } : null, tcpDelivery: cli.flags.tcpDelivery,
  });
  onAvailability = (available) => server.sourceStatus(available);
  // Publishing never holds up the rest: frames for a server that is down or slow are dropped and counted.
  await using publishers = targets.length === 0
    ? null
    : new Publishers({ targets, codec: cli.flags.publishCodec, fps: source.fps, log: log.child("publish") });
  let framesCaptured = 0;
  const startedAt = Date.now();
  await using http = httpPort === null
    ? null
    : await HttpView.start({
        port: httpPort, bind: httpBind, log: log.child("http"), startedAt, logViewers: false, admission: browserAdmission(server), maxViewers: maxClients,
        auth: token ? tokenAuth(browserViewToken(token.token)) : null,
        state: serverState(server, () => [{ name: "0", description: source.description, width: source.width, height: source.height, fps: source.fps, available: true, framesCaptured }],
          () => publishers?.stats.map(({ url, codec, state, sent, dropped, reconnects, lastError }) => ({ url, codec, state, sent, dropped, reconnects, lastError })) ?? []),
      });
  await using writer = record
    ? await SegmentWriter.open({ ...record, fps: source.fps, log: log.child("recorder"), cliFlags: SERVER_RECORD_CLI })
    : null;
  // Nothing to do, nothing done: with no viewer of any kind, no recorder and no publishing
  // the source keeps its place (so the next viewer starts at once) but encodes nothing.
  source.pauseWhile(() => server.viewerCount === 0 && writer === null && publishers === null);
  log.info("started", { source: source.description, size: `${source.width}x${source.height}`, fps: source.fps, tcp: server.port, udp: server.udpPort, record: record?.dir });
  const group = server.multicastGroup;
  if (group) log.info("multicast: each datagram is sent once to the group; viewers it does not reach get unicast", { group: `${group.address}:${group.port}`, ttl: multicast!.ttl, interface: multicast!.interfaceAddress ?? "by route" });
  if (token) log.info("token required: viewers prove it, frames are encrypted", { tokenFile: token.file?.path });
  else log.warn("no token: anyone on the network can watch this stream; start with --token auto to require one");
  console.log(`lancam server listening tcp=${server.port} source=${source.description} size=${source.width}x${source.height} fps=${source.fps}${group ? ` multicast=${group.address}:${group.port}` : ""}`);
  // Viewers print the same fingerprint: a user who compares them knows the frames are this server's.
  console.log(`lancam server frame signing key fingerprint=${server.signingFingerprint} (new at each start)`);
  log.info("frames are signed", { fingerprint: server.signingFingerprint });
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

  let exitCode = 0;
  try {
    while (!signal.stopped) {
      const frame = await signal.race(source.next());
      if (!frame) {
        if (!signal.stopped) log.info("source ended", { source: source.description });
        break;
      }
      framesCaptured++;
      server.broadcast(frame);
      http?.push(frame);
      writer?.write(frame);
      publishers?.write(frame);
    }
  } catch (e) {
    log.error("capture failed", { source: source.description, error: (e as Error).message });
    exitCode = 1;
  }
  // Goodbyes first, so the last line sums up; the `using` declarations then close the
  // writer, server (already stopped), source, log and signal handlers in reverse order.
  await http?.stop();
  await server.stop();
  await publishers?.close();
  const published = publishers?.totals;
  log.info("stopped", {
    ...server.stats, ...source.stats,
    ...(published ? { publishTargets: published.targets, publishSent: published.sent, publishDropped: published.dropped, publishReconnects: published.reconnects } : {}),
  });
  return exitCode;
}

await runMain("lancam-server", "server.ts", main);
