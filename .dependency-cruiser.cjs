// The layering of lib/, checked by `depcruise` in the tests (tests/dependencies.test.ts).
// Stages of the pipeline sit in their own folders; what both sides share sits below both.
//
//   server.ts / client.ts      wire everything
//   lib/app                    flags, logging, run-main, version
//   lib/send   lib/receive     never import each other
//   lib/capture lib/display lib/record lib/http lib/publish
//   lib/net                    sockets both sides use
//   lib/native                 the OpenCV addon's one loader
//   lib/wire                   pure codecs: imports nothing of ours
const STAGES = "wire|net|native|capture|send|receive|display|record|http|publish";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", comment: "an import cycle ties two files into one concept", from: {}, to: { circular: true } },
    { name: "not-unresolvable", severity: "error", comment: "an import that resolves to nothing", from: {}, to: { couldNotResolve: true } },
    { name: "send-not-receive", severity: "error", comment: "sending never depends on receiving", from: { path: "^lib/send/" }, to: { path: "^lib/receive/" } },
    { name: "receive-not-send", severity: "error", comment: "receiving never depends on sending", from: { path: "^lib/receive/" }, to: { path: "^lib/send/" } },
    { name: "wire-is-pure", severity: "error", comment: "codecs import nothing of ours outside lib/wire", from: { path: "^lib/wire/" }, to: { path: "^(lib/(?!wire/)|native/|server\\.ts|client\\.ts)" } },
    { name: "wire-no-runtime", severity: "error", comment: "codecs are pure: no sockets, files or processes", from: { path: "^lib/wire/" }, to: { dependencyTypes: ["core"] } },
    { name: "record-no-network-no-opencv", severity: "error", comment: "the recorder copies frames; it needs neither the network nor OpenCV", from: { path: "^lib/record/" }, to: { path: "^(lib/(net|send|receive|native|display|capture)/|native/)" } },
    { name: "capture-alone", severity: "error", comment: "capture knows nothing of the network, recording or display", from: { path: "^lib/capture/" }, to: { path: "^lib/(net|send|receive|record|display)/" } },
    { name: "display-alone", severity: "error", comment: "the window knows nothing of the network or recording", from: { path: "^lib/display/" }, to: { path: "^lib/(net|send|receive|record|capture)/" } },
    { name: "http-publish-not-network-internals", severity: "error", comment: "the browser view and the publisher are fed frames; they never reach into sending or receiving", from: { path: "^lib/(http|publish)/" }, to: { path: "^lib/(send|receive|display|capture)/" } },
    { name: "net-below-both", severity: "error", comment: "shared socket code sits below sending and receiving", from: { path: "^lib/net/" }, to: { path: `^lib/(?!net/|wire/|app/log\\.ts$)` } },
    { name: "stages-log-only-from-app", severity: "error", comment: "flags, run-main and version belong to the entry scripts; stages parse no flags", from: { path: `^lib/(${STAGES})/` }, to: { path: "^lib/app/(?!log\\.ts$)" } },
    { name: "lib-not-entry-or-tests", severity: "error", comment: "lib/ never reaches up into entry scripts, tests or benchmarks", from: { path: "^lib/" }, to: { path: "^(server\\.ts|client\\.ts|tests/|bench/|scripts/)" } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist|\\.cache)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
