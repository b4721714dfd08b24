// Random datagram loss at the viewer (root, for the namespaces): a server and one
// unicast viewer, each in its own network namespace on one bridge, the viewer's
// namespace dropping incoming UDP at random (iptables statistic; TCP is spared, as a
// loss-repair request would travel on it). For each clip and loss: frames per second,
// frames lost live, frames missing from the recording, latency and bytes per
// delivered frame. Needs iptables (Debian package `iptables`).
//   bun bench/loss.ts [--loss 0,0.1,0.5,1,2,5] [--clips camera,pattern] [--seconds 6] [--no-repair] [--fec off|auto|PERCENT]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { NetnsLan, netnsUnavailable } from "../tests/helpers/netns.ts";

const args = mri(process.argv.slice(2), { string: ["loss", "clips", "seconds", "fec"], boolean: ["no-repair"] });
/** Extra flags: the viewer's --no-repair, the server's --fec. */
const viewerFlags = args["no-repair"] ? ["--no-repair"] : [];
const serverFlags = args.fec === undefined ? [] : ["--fec", String(args.fec)];
const losses = String(args.loss ?? "0,0.1,0.5,1,2,5").split(",").map(Number);
const clips = String(args.clips ?? "camera,pattern").split(",");
const seconds = Number(args.seconds ?? 6);
const FPS = 30;
const PREFIX = "lcloss";

const work = mkdtempSync(join(tmpdir(), "lancam-bench-loss-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));


function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString().trim()}`);
}

/**
 * Drops incoming UDP in `ns` with probability `percent` / 100 (none at 0), then counts
 * what got through (a rule without a target only counts).
 */
function setLoss(ns: string, percent: number): void {
  run(["ip", "netns", "exec", ns, "iptables", "-F", "INPUT"]);
  if (percent > 0) {
    run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random", "--probability", String(percent / 100), "-j", "DROP"]);
  }
  run(["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "udp"]);
}

/** Since the last setLoss: UDP packets dropped on purpose, and UDP bytes (IP headers included) that got through. */
function counters(ns: string): { dropped: number; bytesIn: number } {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-x", "-n"], { stdout: "pipe" });
  const rules = r.stdout.toString().split("\n").filter((l) => /\s(udp|17)\s/.test(l)).map((l) => l.trim().split(/\s+/));
  const drop = rules.find((c) => c.includes("DROP"));
  const pass = rules.find((c) => !c.includes("DROP"));
  return { dropped: Number(drop?.[0] ?? 0), bytesIn: Number(pass?.[1] ?? NaN) };
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");

interface Row {
  clip: string;
  lossPercent: number;
  fps: number;
  liveLostPercent: number;
  /** Shown, but complete past the live wait (--max-delay). */
  shownLatePercent: number;
  repairedByNack: number;
  repairedByFec: number;
  recordLostPercent: number;
  p50: number | null;
  p99: number | null;
  bytesPerFrame: number;
  datagramsDropped: number;
}

async function runOnce(lan: NetnsLan, clip: string, source: string[], lossPercent: number): Promise<Row> {
  const dir = mkdtempSync(join(work, `${clip}-${lossPercent}-`));
  setLoss(lan.ns("v1"), lossPercent);
  const server = lan.bun("srv", ["server.ts", ...source, "--fps", String(FPS), "--port", "0", "--log", join(dir, "server.log"), ...serverFlags]);
  const port = (await server.waitFor(/tcp=(\d+)/))[1]!;
  const statsPath = join(dir, "v.json");
  const viewer = lan.bun("v1", ["client.ts", "10.77.0.1", port, "0", "--no-window", "--out", join(dir, "rec"), "--duration", String(seconds), "--stats", statsPath, ...viewerFlags]);
  const code = await viewer.exited;
  const { dropped, bytesIn } = counters(lan.ns("v1"));
  server.proc.kill("SIGTERM");
  await server.exited;
  if (code !== 0) throw new Error(`viewer exited ${code} (${clip}, ${lossPercent} %)`);
  const s = JSON.parse(readFileSync(statsPath, "utf8"));
  // Frames of the stream's span as the viewer saw it: those it completed and the gaps between.
  // Frames repaired too late for the live view are recorded in their place: part of the span too.
  const span = s.framesReceived + s.framesMissing + s.framesIncomplete + (s.repair?.framesRecordOnly ?? 0);
  const recorded = s.recording?.framesIn ?? NaN;
  return {
    clip, lossPercent,
    fps: median(s.fpsPerSecond.slice(1, -1)),
    // Recorded only (repaired after a newer frame was shown) is lost to the live view.
    liveLostPercent: (100 * (s.framesMissing + s.framesIncomplete + (s.repair?.framesRecordOnly ?? 0))) / span,
    shownLatePercent: (100 * (s.repair?.framesShownLate ?? 0)) / span,
    repairedByNack: s.repair?.datagramsRepairedByNack ?? 0,
    repairedByFec: s.repair?.datagramsRepairedByFec ?? 0,
    recordLostPercent: (100 * (span - recorded)) / span,
    p50: s.latencyMs.p50, p99: s.latencyMs.p99,
    bytesPerFrame: bytesIn / s.framesReceived,
    datagramsDropped: dropped,
  };
}

const why = netnsUnavailable();
if (why) throw new Error(`bench/loss.ts needs network namespaces: ${why}`);
if (!Bun.which("iptables")) throw new Error("bench/loss.ts needs iptables (apt-get install iptables)");
const sources: Record<string, string[]> = {
  camera: ["--source", cameraClip(work, FPS).path, "--loop"],
  pattern: ["--source", "test"],
};
console.log(`# loss at the viewer: unicast, ${FPS} fps, repair ${viewerFlags.length ? "off" : "on"}${serverFlags.length ? `, --fec ${args.fec}` : ""}, ${seconds} s per run, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}`);
await using lan = new NetnsLan(PREFIX, [{ name: "srv", address: "10.77.0.1" }, { name: "v1", address: "10.77.0.11" }]);
const rows: Row[] = [];
for (const clip of clips) {
  const source = sources[clip];
  if (!source) throw new Error(`unknown clip ${clip}: expected camera or pattern`);
  for (const loss of losses) {
    const r = await runOnce(lan, clip, source, loss);
    console.error(`${clip} ${loss} %: ${f(r.fps)} fps, live lost ${f(r.liveLostPercent, 2)} %, recording lost ${f(r.recordLostPercent, 2)} %`);
    rows.push(r);
  }
}
console.log("\n| clip | datagram loss % | fps (median second) | frames lost live % | frames shown past the live wait % | frames missing from the recording % | latency p50 / p99 ms | UDP bytes received per delivered frame | datagrams dropped | repaired by resend / parity |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(`| ${r.clip} | ${r.lossPercent} | ${f(r.fps)} | ${f(r.liveLostPercent, 2)} | ${f(r.shownLatePercent, 2)} | ${f(r.recordLostPercent, 2)} | ${f(r.p50 ?? NaN)} / ${f(r.p99 ?? NaN)} | ${f(r.bytesPerFrame, 0)} | ${r.datagramsDropped} | ${r.repairedByNack} / ${r.repairedByFec} |`);
}
