// A lancam viewer that lies in its path reports, to measure what a viewer cheating on
// rate control costs honest ones sharing its link (bench/adaptive.ts, case liar+N):
//   bun tests/helpers/lying-viewer.ts HOST PORT [--seconds S] [--stats FILE]
// It receives the stream as the real viewer does (a StreamClient, its path measured by
// a PathMeter, loss repair offered with the client's default waits), but every report
// claims a clear path: no datagram lost, no frame lost or incomplete, a flat delay and
// a standing queue of 0 ms (measured, and none). The bytes and datagrams it received
// are reported as they are: more than the server sent is refused outright
// (lib/send/rate-control.ts), so that lie would leave the estimate where it is rather
// than raise it. Prints "receiving udp=PORT" once bound, like client.ts, and with
// --stats writes client.ts's stats JSON (lib/receive/receiver-stats.ts).
import mri from "mri";
import { writeFileSync } from "node:fs";
import { nowMicros } from "../../lib/wire/frame.ts";
import { readJpegSize } from "../../lib/wire/jpeg-header.ts";
import { WELCOME_PATH_REPORTS, type Report, type Welcome } from "../../lib/wire/control.ts";
import { PathMeter } from "../../lib/receive/path-meter.ts";
import { ReceiverStats } from "../../lib/receive/receiver-stats.ts";
import { DEFAULT_MAX_DELAY_MS } from "../../lib/receive/repair.ts";
import { StreamClient } from "../../lib/receive/stream-client.ts";

const args = mri(process.argv.slice(2), { string: ["seconds", "stats"] });
const [host, port] = args._.map(String);
if (!host || !port) throw new Error("usage: bun tests/helpers/lying-viewer.ts HOST PORT [--seconds S] [--stats FILE]");
const seconds = Number(args.seconds ?? 10);
const statsPath = args.stats === undefined ? null : String(args.stats);

const stats = new ReceiverStats();
const meter = new PathMeter();
let welcome: Welcome | null = null;
/** Frames received before this session's welcome: a report speaks for its session, which is what the server checks it against. */
let base = 0;

/** The lie: the honest meter's received counts, and a path that never loses or queues. */
function report(): Report {
  const r: Report = {
    type: "report", framesReceived: stats.framesReceived - base, framesLost: 0, framesIncomplete: 0, datagramsDropped: 0,
    latencyP50Us: Math.round((stats.latency.percentile(50) ?? 0) * 1000), latencyP95Us: Math.round((stats.latency.percentile(95) ?? 0) * 1000),
    fpsMillihertz: stats.lastSecondFps(performance.now()) * 1000,
  };
  // Only a server that asked for path counters reads them (as the real viewer does).
  if (((welcome?.flags ?? 0) & WELCOME_PATH_REPORTS) !== 0) {
    const honest = meter.report();
    r.path = { ...honest, datagramsLost: 0, delayTrendUsPerS: 0, queueDelayMs: 0 };
  }
  return r;
}

const client = await StreamClient.open({
  host, port: Number(port), udpPort: 0, name: "liar",
  repair: { maxDelayMs: DEFAULT_MAX_DELAY_MS, recordDelayMs: 0 },
  onFrame: (f, nowMs, use) => {
    // No recorder: a frame repaired too late for the live view is not shown either.
    if (use !== "live") return;
    const size = readJpegSize(f.jpeg);
    stats.frame(f.jpeg.length, (nowMicros() - f.capturedAt) / 1000, nowMs, size ? `${size.width}x${size.height}` : undefined);
  },
  onAccepted: (h, bytes, nowMs, how) => meter.datagram(h, bytes, nowMs, how),
  onParity: (bytes) => meter.arrived(bytes),
  onRedundant: (bytes) => meter.arrived(bytes),
  onDatagram: () => stats.datagramsByOwnPort++,
  onWelcome: (w) => {
    welcome = w;
    // The server's counts start over with the session; a report speaks for it alone.
    meter.reset();
    if (stats.framesReceived > 0) stats.reconnects++;
    base = stats.framesReceived;
  },
  report,
  totals: () => ({ framesReceived: stats.framesReceived - base, framesLost: 0, framesIncomplete: 0, framesRecorded: 0 }),
});
console.log(`lancam lying viewer receiving udp=${client.udpPort} from ${host}:${port}`);
const limit = setTimeout(() => client.stop(), seconds * 1000);
try {
  await client.run();
} finally {
  clearTimeout(limit);
  await client.close();
  const r = client.reassembly;
  // The counts this viewer keeps to itself: what it really lost, for the stats file
  // (missing frames include those the server said it skipped; the bench reads neither).
  stats.framesMissing = r.framesMissing;
  stats.framesIncomplete = r.incomplete.lostFragment + r.incomplete.timeout + r.incomplete.evicted;
  if (statsPath !== null) writeFileSync(statsPath, JSON.stringify(stats.summary({ ...r.dropped }), null, 2) + "\n");
}
