// Random datagram loss at the viewers (root, for the namespaces): a server and its
// viewers, each in its own network namespace on one bridge, each viewer's namespace
// dropping incoming UDP at random on its own (iptables statistic; TCP is spared, as a
// loss-repair request would travel on it). In one run, for each clip, delivery and loss:
// repair off (the viewers do not offer it: "before") and on ("after"). For each: frames
// per second, frames lost live, frames missing from the recording, latency and bytes
// per delivered frame. Unicast has one viewer; multicast three, each with its own loss.
// Needs iptables (Debian package `iptables`). Writes a plot of frames lost live against
// datagram loss (SVG).
//   bun bench/loss.ts [--loss 0,0.1,0.5,1,2,5] [--clips camera,pattern] [--delivery unicast,multicast]
//                     [--modes off,on] [--seconds 6] [--fec off|auto|PERCENT] [--plot docs/loss-repair.svg]
import mri from "mri";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { NetnsLan, netnsUnavailable, type HostSpec } from "../tests/helpers/netns.ts";

const USAGE = "usage: bun bench/loss.ts [--loss 0,0.1,0.5,1,2,5] [--clips camera,pattern] [--delivery unicast,multicast] [--modes off,on] [--seconds 6] [--fec off|auto|PERCENT] [--plot FILE.svg]";
const args = mri(process.argv.slice(2), { string: ["loss", "clips", "seconds", "fec", "delivery", "modes", "plot"], boolean: ["help"], alias: { h: "help" } });
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const list = (v: unknown, fallback: string) => String(v ?? fallback).split(",").filter(Boolean);
const losses = list(args.loss, "0,0.1,0.5,1,2,5").map(Number);
const clips = list(args.clips, "camera,pattern");
const deliveries = list(args.delivery, "unicast,multicast");
const modes = list(args.modes, "off,on");
const seconds = Number(args.seconds ?? 6);
const plotPath = String(args.plot ?? "docs/loss-repair.svg");
/** The server's --fec for repair runs; the server's own default when not given. */
const fecFlags = args.fec === undefined ? [] : ["--fec", String(args.fec)];
for (const [what, bad] of [
  ["--loss", losses.find((l) => !(l >= 0 && l < 100))],
  ["--delivery", deliveries.find((d) => d !== "unicast" && d !== "multicast")],
  ["--modes", modes.find((m) => m !== "off" && m !== "on")],
  ["--clips", clips.find((c) => c !== "camera" && c !== "pattern")],
] as const) {
  if (bad !== undefined) {
    console.error(`invalid ${what} value ${bad}\n${USAGE}`);
    process.exit(2);
  }
}
if (!(seconds >= 2 && seconds <= 600)) {
  console.error(`invalid --seconds=${args.seconds}: expected 2..600\n${USAGE}`);
  process.exit(2);
}
const FPS = 30;
const PREFIX = "lcloss";
const SERVER = "10.77.0.1";
const GROUP = "239.255.77.9:9996";
const MULTICAST_VIEWERS = 3;

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
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");

/** One viewer's figures in one run. */
interface ViewerRow {
  fps: number;
  liveLostPercent: number;
  /** Shown, but complete past the live wait (--max-delay). */
  shownLatePercent: number;
  recordLostPercent: number;
  p50: number | null;
  p99: number | null;
  bytesPerFrame: number;
  datagramsDropped: number;
  repairedByNack: number;
  repairedByFec: number;
}

/** One run: its viewers' figures summed up (the worst viewer's fps, the mean of the rest). */
interface Row {
  clip: string;
  delivery: string;
  mode: string;
  lossPercent: number;
  viewers: ViewerRow[];
}

function viewerRow(s: any, bytesIn: number, dropped: number): ViewerRow {
  // Frames of the stream's span as the viewer saw it: those it completed and the gaps between.
  // Frames repaired too late for the live view are recorded in their place: part of the span too.
  const span = s.framesReceived + s.framesMissing + s.framesIncomplete + (s.repair?.framesRecordOnly ?? 0);
  const recorded = s.recording?.framesIn ?? NaN;
  return {
    fps: median(s.fpsPerSecond.slice(1, -1)),
    // Recorded only (repaired after a newer frame was shown) is lost to the live view.
    liveLostPercent: (100 * (s.framesMissing + s.framesIncomplete + (s.repair?.framesRecordOnly ?? 0))) / span,
    shownLatePercent: (100 * (s.repair?.framesShownLate ?? 0)) / span,
    recordLostPercent: (100 * (span - recorded)) / span,
    p50: s.latencyMs.p50, p99: s.latencyMs.p99,
    bytesPerFrame: bytesIn / s.framesReceived,
    datagramsDropped: dropped,
    repairedByNack: s.repair?.datagramsRepairedByNack ?? 0,
    repairedByFec: s.repair?.datagramsRepairedByFec ?? 0,
  };
}

async function runOnce(lan: NetnsLan, clip: string, source: string[], delivery: string, mode: string, lossPercent: number, viewers: string[]): Promise<Row> {
  const dir = mkdtempSync(join(work, `${clip}-${delivery}-${mode}-${lossPercent}-`));
  for (const v of viewers) setLoss(lan.ns(v), lossPercent);
  const serverArgs = [...source, "--fps", String(FPS), "--port", "0", "--log", join(dir, "server.log"), ...(mode === "on" ? fecFlags : [])];
  if (delivery === "multicast") serverArgs.push("--multicast", GROUP);
  const server = lan.bun("srv", ["server.ts", ...serverArgs]);
  const port = (await server.waitFor(/tcp=(\d+)/, 60_000))[1]!;
  const procs = viewers.map((v) =>
    lan.bun(v, ["client.ts", SERVER, port, "0", "--no-window", "--out", join(dir, `${v}-rec`), "--duration", String(seconds), "--stats", join(dir, `${v}.json`), ...(mode === "off" ? ["--no-repair"] : [])]));
  const codes = await Promise.all(procs.map((p) => p.exited));
  const wire = viewers.map((v) => counters(lan.ns(v)));
  server.proc.kill("SIGTERM");
  await server.exited;
  // Exit 1 with its stats written is a viewer that got no frame at all (every one lost): a result, not a failure.
  const bad = codes.findIndex((c, i) => c !== 0 && !(c === 1 && existsSync(join(dir, `${viewers[i]}.json`))));
  if (bad >= 0) throw new Error(`viewer ${viewers[bad]} exited ${codes[bad]} (${clip}, ${delivery}, repair ${mode}, ${lossPercent} %)`);
  return {
    clip, delivery, mode, lossPercent,
    viewers: viewers.map((v, i) => viewerRow(JSON.parse(readFileSync(join(dir, `${v}.json`), "utf8")), wire[i]!.bytesIn, wire[i]!.dropped)),
  };
}

/** Frames lost live against datagram loss, one line per clip, delivery and mode (SVG, no tool needed). */
function plot(rows: Row[], path: string, note: string): void {
  const W = 760, H = 440, L = 60, R = 220, T = 40, B = 60;
  const xs = [...new Set(rows.map((r) => r.lossPercent))].sort((a, b) => a - b);
  const x = (loss: number) => L + (xs.length > 1 ? (xs.indexOf(loss) / (xs.length - 1)) * (W - L - R) : 0);
  const y = (pct: number) => T + (1 - Math.min(100, Math.max(0, pct)) / 100) * (H - T - B);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  out.push(`<text x="${L}" y="20" font-size="14">Frames lost live against random datagram loss</text>`);
  out.push(`<text x="${L}" y="${H - 8}" fill="#555">${note}</text>`);
  for (const pct of [0, 25, 50, 75, 100]) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(pct)}" y2="${y(pct)}" stroke="#ddd"/>`, `<text x="${L - 34}" y="${y(pct) + 4}">${pct} %</text>`);
  }
  for (const loss of xs) out.push(`<text x="${x(loss) - 8}" y="${H - B + 18}">${loss} %</text>`);
  out.push(`<text x="${(L + W - R) / 2 - 50}" y="${H - B + 36}">datagram loss</text>`);
  const colors = ["#c0392b", "#1f6fb2", "#e67e22", "#16a085", "#8e44ad", "#7f8c8d", "#d35400", "#2c3e50"];
  const keys = [...new Set(rows.map((r) => `${r.clip} ${r.delivery}, repair ${r.mode}`))];
  keys.forEach((key, k) => {
    const pts = rows.filter((r) => `${r.clip} ${r.delivery}, repair ${r.mode}` === key).sort((a, b) => a.lossPercent - b.lossPercent);
    const color = colors[k % colors.length]!;
    const dash = key.endsWith("off") ? ` stroke-dasharray="5 4"` : "";
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.map((r) => `${x(r.lossPercent)},${y(mean(r.viewers.map((v) => v.liveLostPercent)))}`).join(" ")}"/>`);
    out.push(`<line x1="${W - R + 12}" x2="${W - R + 36}" y1="${T + 10 + k * 20}" y2="${T + 10 + k * 20}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - R + 42}" y="${T + 14 + k * 20}">${key}</text>`);
  });
  out.push("</svg>");
  writeFileSync(path, out.join("\n") + "\n");
  console.log(`\nplot: ${path}`);
}

const why = netnsUnavailable();
if (why) throw new Error(`bench/loss.ts needs network namespaces: ${why}`);
if (!Bun.which("iptables")) throw new Error("bench/loss.ts needs iptables (apt-get install iptables)");
const sources: Record<string, string[]> = {
  camera: ["--source", cameraClip(work, FPS).path, "--loop"],
  pattern: ["--source", "test"],
};
console.log(`# loss at the viewers: ${FPS} fps, repair ${modes.join(" and ")}${fecFlags.length ? ` (--fec ${args.fec})` : ""}, ${seconds} s per run, ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(1)} at start`);
const hosts: HostSpec[] = [{ name: "srv", address: SERVER, multicastRoute: true }];
for (let i = 1; i <= MULTICAST_VIEWERS; i++) hosts.push({ name: `v${i}`, address: `10.77.0.${10 + i}`, multicastRoute: true });
await using lan = new NetnsLan(PREFIX, hosts);
const rows: Row[] = [];
for (const clip of clips) {
  for (const delivery of deliveries) {
    const viewers = delivery === "multicast" ? hosts.slice(1).map((h) => h.name) : ["v1"];
    for (const loss of losses) {
      for (const mode of modes) {
        const r = await runOnce(lan, clip, sources[clip]!, delivery, mode, loss, viewers);
        console.error(`${clip} ${delivery} ${loss} % repair ${mode}: ${r.viewers.map((v) => `${f(v.fps)} fps, live lost ${f(v.liveLostPercent, 2)} %, recording lost ${f(v.recordLostPercent, 2)} %`).join("; ")}`);
        rows.push(r);
      }
    }
  }
}
console.log("\n| clip | delivery (viewers) | datagram loss % | repair | fps (median second; worst viewer) | frames lost live % | frames shown past the live wait % | frames missing from the recording % | latency p50 / p99 ms | UDP bytes received per delivered frame | datagrams dropped | repaired by resend / parity |");
console.log("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const v = r.viewers;
  const avg = (k: keyof ViewerRow) => mean(v.map((x) => Number(x[k])));
  const sum = (k: keyof ViewerRow) => v.reduce((n, x) => n + Number(x[k]), 0);
  console.log(`| ${r.clip} | ${r.delivery} (${v.length}) | ${r.lossPercent} | ${r.mode} | ${f(Math.min(...v.map((x) => x.fps)))} | ${f(avg("liveLostPercent"), 2)} | ${f(avg("shownLatePercent"), 2)} | ${f(avg("recordLostPercent"), 2)} | ${f(avg("p50"))} / ${f(avg("p99"))} | ${f(avg("bytesPerFrame"), 0)} | ${sum("datagramsDropped")} | ${sum("repairedByNack")} / ${sum("repairedByFec")} |`);
}
plot(rows, plotPath, `${cpus().length} cores, ${seconds} s per run; multicast: mean of ${MULTICAST_VIEWERS} viewers, each with its own loss; dashed: repair off`);
