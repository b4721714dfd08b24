// The layering of lib/, checked by `depcruise` in the tests (tests/dependencies.test.ts).
// Layers point one way, from the top:
//
//   server.ts / client.ts      wire everything
//   lib/app                    flags, run-main, version, token set-up: only the entry scripts import it
//   lib/send   lib/receive     never import each other
//   lib/capture lib/display lib/record lib/http lib/publish
//   lib/net                    sockets both sides use
//   lib/native                 the OpenCV addon's one loader
//   lib/media                  finding ffmpeg and ffprobe, reading their output
//   lib/log                    log lines, loggers, the log file
//   lib/wire  lib/mux          pure codecs and muxers: import nothing of ours
//   lib/errors                 UserError and errorText: any layer but the pure codecs may import it;
//                              it imports nothing of ours
const STAGES = "net|native|capture|send|receive|display|record|http|publish|media|log|wire|mux|errors";
const PURE = "^lib/(wire|mux)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", comment: "an import cycle ties two files into one concept", from: {}, to: { circular: true } },
    { name: "not-unresolvable", severity: "error", comment: "an import that resolves to nothing", from: {}, to: { couldNotResolve: true } },
    { name: "send-not-receive", severity: "error", comment: "sending never depends on receiving", from: { path: "^lib/send/" }, to: { path: "^lib/receive/" } },
    { name: "receive-not-send", severity: "error", comment: "receiving never depends on sending", from: { path: "^lib/receive/" }, to: { path: "^lib/send/" } },
    { name: "wire-is-pure", severity: "error", comment: "codecs import nothing of ours outside lib/wire", from: { path: "^lib/wire/" }, to: { path: "^(lib/(?!wire/)|native/|server\\.ts|client\\.ts)" } },
    { name: "mux-is-pure", severity: "error", comment: "muxers import nothing of ours but codecs", from: { path: "^lib/mux/" }, to: { path: "^(lib/(?!wire/|mux/)|native/|server\\.ts|client\\.ts)" } },
    { name: "pure-no-runtime", severity: "error", comment: "codecs and muxers are pure: no sockets, files or processes", from: { path: PURE }, to: { dependencyTypes: ["core"] } },
    { name: "record-no-network-no-opencv", severity: "error", comment: "the recorder copies frames; it needs neither the network nor OpenCV", from: { path: "^lib/record/" }, to: { path: "^(lib/(net|send|receive|native|display|capture)/|native/)" } },
    { name: "capture-alone", severity: "error", comment: "capture knows nothing of the network, recording or display", from: { path: "^lib/capture/" }, to: { path: "^lib/(net|send|receive|record|display)/" } },
    { name: "display-alone", severity: "error", comment: "the window knows nothing of the network or recording", from: { path: "^lib/display/" }, to: { path: "^lib/(net|send|receive|record|capture)/" } },
    { name: "http-publish-not-network-internals", severity: "error", comment: "the browser view and the publisher are fed frames; they never reach into sending or receiving", from: { path: "^lib/(http|publish)/" }, to: { path: "^lib/(send|receive|display|capture)/" } },
    { name: "publish-not-record", severity: "error", comment: "publishing and recording share lib/media and lib/mux, never each other", from: { path: "^lib/publish/" }, to: { path: "^lib/record/" } },
    { name: "net-below-both", severity: "error", comment: "shared socket code sits below sending and receiving", from: { path: "^lib/net/" }, to: { path: "^lib/(?!net/|wire/|log/|errors/)" } },
    { name: "media-below-stages", severity: "error", comment: "finding and reading ffmpeg sits below the recorder and the publisher", from: { path: "^lib/media/" }, to: { path: "^lib/(?!media/|log/|errors/)" } },
    { name: "log-below-all", severity: "error", comment: "logging sits below every stage and imports none", from: { path: "^lib/log/" }, to: { path: "^lib/(?!log/|errors/)" } },
    { name: "errors-at-bottom", severity: "error", comment: "the user-error base and error text sit below every layer and import nothing of ours", from: { path: "^lib/errors/" }, to: { path: "^(lib/(?!errors/)|native/|server\\.ts|client\\.ts)" } },
    { name: "stages-not-app", severity: "error", comment: "flags, run-main and version belong to the entry scripts; no stage imports lib/app", from: { path: `^lib/(${STAGES})/` }, to: { path: "^lib/app/" } },
    { name: "lib-not-entry-or-tests", severity: "error", comment: "lib/ never reaches up into entry scripts, tests or benchmarks", from: { path: "^lib/" }, to: { path: "^(server\\.ts|client\\.ts|tests/|bench/|scripts/)" } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist|\\.cache)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
