// Adaptive delivery, measured (root, for the namespaces): a server and unicast viewers,
// each in its own network namespace on one bridge, a camera-like 1280x720 MJPEG clip
// (~210 KB a frame, ~50 Mbit/s at 30 fps) sent as it is. Cases:
//  shared-N: N viewers sharing the server's link, limited to 100 Mbit/s (tbf);
//  liar+N: the same link shared by N viewers and one that lies in its path reports
//    (tests/helpers/lying-viewer.ts: never a loss, never a queue); run it beside
//    shared-(N+1), where all are honest, to see what the lie costs the honest ones;
//  slow+free: the server's link free, one viewer behind 10 Mbit/s (tbf on its bridge
//    port, towards it) and one viewer on a free link beside it.
// Per viewer: median fps, frames started but never completed, whole-frame goodput, the
// Mbit/s that reached it and the picture size most of its frames had; per case, Jain's
// fairness index of the honest viewers' fps.
// Run it before and after a change to delivery, with the same --seconds, and put the
// two side by side; --server-arg passes a flag to the server (e.g. the one that turns
// adaptive delivery on), --label names the column.
//   bun bench/adaptive.ts [--cases shared-1,shared-2,shared-4,slow+free,liar+3] [--seconds 10] [--label before] [--server-arg=--flag ...]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { ip, NetnsLan, netnsUnavailable, type HostSpec } from "../tests/helpers/netns.ts";

const args = mri(process.argv.slice(2), { string: ["cases", "seconds", "label", "server-arg"] });
const cases = String(args.cases ?? "shared-1,shared-2,shared-4,slow+free").split(",");
const seconds = Number(args.seconds ?? 10);
const label = String(args.label ?? "before");
const serverArgs = ([] as string[]).concat(args["server-arg"] ?? []).map(String);
const FPS = 30;
const PREFIX = "lcrate-";
const SERVER = "10.77.0.1";
/** IPv4 + UDP headers, and the Ethernet header a qdisc counts: what is not the datagram. */
const IP_UDP = 28;
const ETHERNET = 14;

const work = mkdtempSync(join(tmpdir(), "lancam-bench-adaptive-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));


function tc(ns: string, ...a: string[]): string {
  const r = Bun.spawnSync(["ip", "netns", "exec", ns, "tc", ...a], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tc ${a.join(" ")} in ${ns} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** A qdisc's counters: bytes and packets it sent on, packets it dropped. */
function qdiscStats(ns: string, dev: string): { bytes: number; packets: number; drops: number } {
  const root = (JSON.parse(tc(ns, "-s", "-j", "qdisc", "show", "dev", dev)) as { root?: boolean; bytes: number; packets: number; drops: number }[]).find((q) => q.root);
  if (!root) throw new Error(`no root qdisc on ${dev} in ${ns}`);
  return { bytes: root.bytes, packets: root.packets, drops: root.drops };
}

/** Datagram bytes (UDP payload: lancam header and fragment) a qdisc was given, dropped ones included. */
function offeredDatagramBytes(s: { bytes: number; packets: number; drops: number }): number {
  if (s.packets === 0) return 0;
  const perPacket = s.bytes / s.packets;
  return (s.packets + s.drops) * (perPacket - ETHERNET - IP_UDP);
}

/** Bytes of UDP payload that reached a host's eth0, from its receive counters. */
function receivedDatagramBytes(ns: string): number {
  const [link] = JSON.parse(ip("-n", ns, "-s", "-j", "link", "show", "dev", "eth0")) as { stats64: { rx: { bytes: number; packets: number } } }[];
  const rx = link!.stats64.rx;
  return rx.bytes - rx.packets * (ETHERNET + IP_UDP);
}

/** The bridge port that leads to a host: the peer of its eth0 (veth), by interface index. */
function bridgePort(lan: NetnsLan, host: string): string {
  const [mine] = JSON.parse(ip("-n", lan.ns(host), "-j", "link", "show", "dev", "eth0")) as { link_index: number }[];
  const ports = JSON.parse(ip("-n", lan.ns("br"), "-j", "link", "show")) as { ifindex: number; ifname: string }[];
  const port = ports.find((p) => p.ifindex === mine!.link_index);
  if (!port) throw new Error(`no bridge port for ${host}`);
  return port.ifname;
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

interface ViewerRow {
  name: string;
  path: string;
  /** The viewer that lies in its reports (liar+N). */
  liar: boolean;
  fps: number;
  framesReceived: number;
  framesIncomplete: number;
  incompletePct: number;
  /** Completed frames' bytes over the datagram bytes that reached this viewer's link. */
  goodputOfArrived: number;
  /** Completed frames' bytes over the datagram bytes the server sent towards this viewer, where the network can tell. */
  goodputOfSent: number | null;
  latencyP50Ms: number | null;
  /** Datagram bytes that reached this viewer's link, Mbit/s over the run. */
  arrivedMbps: number;
  /** The picture size most of its completed frames had. */
  picture: string;
}

interface CaseRow {
  name: string;
  viewers: ViewerRow[];
  /** Every viewer's completed bytes over every datagram byte the server's link was offered. */
  goodputOfSent: number;
  serverMbps: number;
  busyPct: number;
  /** Jain's fairness index of the honest viewers' median fps (1: all equal). */
  jainHonest: number;
}

/** Jain's fairness index: (Σx)² / (n·Σx²), 1 when all are equal, 1/n when one has everything. */
function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares > 0 ? (sum * sum) / (xs.length * squares) : NaN;
}

/** Busy and total jiffies of the whole machine. */
function machineJiffies(): { busy: number; total: number } {
  const parts = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = parts.reduce((a, b) => a + b, 0);
  return { busy: total - parts[3]! - (parts[4] ?? 0), total };
}

/** One case in a fresh LAN: the server, the viewers for `seconds`, then the counters. */
async function runCase(name: string, clip: string): Promise<CaseRow> {
  const honest = /^shared-(\d+)$/.exec(name);
  const lying = /^liar\+(\d+)$/.exec(name);
  const shared = honest ?? lying;
  if (!shared && name !== "slow+free") throw new Error(`unknown case ${name}: expected shared-N, liar+N or slow+free`);
  // liar+N: the liar is the last viewer, after the N honest ones.
  const n = honest ? Number(honest[1]) : lying ? Number(lying[1]) + 1 : 2;
  const liar = lying ? `v${n}` : null;
  const hosts: HostSpec[] = [{ name: "srv", address: SERVER, rate: shared ? "100mbit" : undefined }];
  for (let i = 1; i <= n; i++) hosts.push({ name: `v${i}`, address: `10.77.0.${10 + i}` });
  await using lan = new NetnsLan(PREFIX, hosts);
  // Counters for every byte the server offers: the shared link's tbf has them; a free
  // link gets a queue long enough never to drop, only to count.
  if (!shared) tc(lan.ns("srv"), "qdisc", "add", "dev", "eth0", "root", "pfifo", "limit", "100000");
  const paths = new Map<string, string>();
  for (let i = 1; i <= n; i++) {
    const port = bridgePort(lan, `v${i}`);
    const slow = !shared && i === 1;
    if (slow) tc(lan.ns("br"), "qdisc", "add", "dev", port, "root", "tbf", "rate", "10mbit", "burst", "32kb", "latency", "50ms");
    else tc(lan.ns("br"), "qdisc", "add", "dev", port, "root", "pfifo", "limit", "100000");
    paths.set(`v${i}`, port);
  }
  const dir = mkdtempSync(join(work, `${name}-`));
  const log = join(dir, "server.log");
  const server = lan.bun("srv", ["server.ts", "--source", clip, "--loop", "--fps", String(FPS), "--port", "0", "--log", log, "--max-clients", "64", "--max-per-host", "64", ...serverArgs]);
  const port = (await server.waitFor(/tcp=(\d+)/, 60_000))[1]!;
  const viewers = Array.from({ length: n }, (_, k) => {
    const v = `v${k + 1}`;
    const stats = join(dir, `${v}.json`);
    const command = v === liar
      ? ["tests/helpers/lying-viewer.ts", SERVER, port, "--seconds", String(seconds), "--stats", stats]
      : ["client.ts", SERVER, port, "0", "--no-window", "--no-record", "--duration", String(seconds), "--stats", stats];
    return { v, stats, child: lan.bun(v, command) };
  });
  await Promise.all(viewers.map((x) => x.child.waitFor(/receiving udp=(\d+)/, 60_000)));
  const m0 = machineJiffies();
  const t0 = performance.now();
  await Promise.all(viewers.map((x) => x.child.exited));
  const wall = (performance.now() - t0) / 1000;
  const m1 = machineJiffies();
  server.proc.kill("SIGTERM");
  await server.exited;
  const serverOffered = offeredDatagramBytes(qdiscStats(lan.ns("srv"), "eth0"));
  const rows: ViewerRow[] = viewers.map(({ v, stats }) => {
    const s = JSON.parse(readFileSync(stats, "utf8"));
    const arrived = receivedDatagramBytes(lan.ns(v));
    const slow = !shared && v === "v1";
    // What the server sent towards this viewer: its own bridge port saw all of it when the
    // server's link is free; on a shared link only with one viewer (whose drops on the
    // shared link cannot be told from another's otherwise).
    const offered = !shared ? offeredDatagramBytes(qdiscStats(lan.ns("br"), paths.get(v)!)) : n === 1 ? serverOffered : null;
    const started = s.framesReceived + s.framesIncomplete;
    const sizes = Object.entries(s.framesBySize as Record<string, number>).sort((a, b) => b[1] - a[1]);
    return {
      name: v, liar: v === liar, arrivedMbps: (arrived * 8) / seconds / 1e6, picture: sizes[0]?.[0] ?? "-", path: shared ? `shared 100 Mbit/s` : slow ? "10 Mbit/s" : "free",
      fps: s.framesReceived === 0 ? 0 : median(s.fpsPerSecond.slice(1, -1)), framesReceived: s.framesReceived, framesIncomplete: s.framesIncomplete,
      incompletePct: started ? (100 * s.framesIncomplete) / started : NaN,
      goodputOfArrived: arrived > 0 ? s.bytes / arrived : NaN,
      goodputOfSent: offered ? s.bytes / offered : null,
      latencyP50Ms: s.latencyMs.p50,
    };
  });
  const completed = viewers.reduce((a, { stats }) => a + JSON.parse(readFileSync(stats, "utf8")).bytes, 0);
  return {
    name, viewers: rows, goodputOfSent: serverOffered > 0 ? completed / serverOffered : NaN,
    serverMbps: (serverOffered * 8) / wall / 1e6, busyPct: (100 * (m1.busy - m0.busy)) / (m1.total - m0.total),
    jainHonest: jain(rows.filter((v) => !v.liar).map((v) => (Number.isFinite(v.fps) ? v.fps : 0))),
  };
}

const f = (x: number | null, d = 1) => (x !== null && Number.isFinite(x) ? x.toFixed(d) : "-");
const pct = (x: number | null) => (x !== null && Number.isFinite(x) ? `${(100 * x).toFixed(0)} %` : "-");

const why = netnsUnavailable();
if (why) throw new Error(`this benchmark needs network namespaces: ${why}`);
const clip = cameraClip(work, FPS);
console.log(`# adaptive delivery (${label}): 1280x720 at ${FPS} fps, camera-like clip ~${clip.kbPerFrame.toFixed(0)} KB/frame, ${seconds} s per case, ` +
  `${cpus().length} cores (${cpus()[0]?.model}), load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at start, Bun ${Bun.version}` +
  (serverArgs.length ? `, server ${serverArgs.join(" ")}` : ""));
const results: CaseRow[] = [];
for (const c of cases) {
  const r = await runCase(c, clip.path);
  console.error(`${c}: ${r.viewers.map((v) => `${v.name}${v.liar ? " (liar)" : ""} ${f(v.fps)} fps ${f(v.incompletePct)} % incomplete`).join(", ")}`);
  results.push(r);
}
console.log(`\n| case | viewer | path | fps (median) | frames completed | started, never completed | whole-frame goodput (of bytes arrived / sent) | latency p50 ms | Mbit/s arrived | picture (most frames) |`);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  for (const v of r.viewers) {
    console.log(`| ${r.name} | ${v.name}${v.liar ? " (liar)" : ""} | ${v.path} | ${f(v.fps)} | ${v.framesReceived} | ${v.framesIncomplete} (${f(v.incompletePct)} %) | ${pct(v.goodputOfArrived)} / ${pct(v.goodputOfSent)} | ${f(v.latencyP50Ms)} | ${f(v.arrivedMbps)} | ${v.picture} |`);
  }
}
console.log(`\n| case | whole-frame goodput, all viewers (completed bytes / bytes the server sent) | server Mbit/s sent | machine CPU busy % | Jain's fairness, honest viewers' fps |`);
console.log("|---|---|---|---|---|");
for (const r of results) console.log(`| ${r.name} | ${pct(r.goodputOfSent)} | ${f(r.serverMbps, 0)} | ${f(r.busyPct, 0)} | ${f(r.jainHonest, 3)} |`);
// What the liar cost the honest viewers: each liar+N beside shared-(N+1) of the same run.
const pairs = results.flatMap((r) => {
  const m = /^liar\+(\d+)$/.exec(r.name);
  const all = m ? results.find((x) => x.name === `shared-${Number(m[1]) + 1}`) : undefined;
  return all ? [{ lying: r, all }] : [];
});
if (pairs.length) {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const honestOf = (r: CaseRow) => r.viewers.filter((v) => !v.liar);
  const line = (label: string, vs: ViewerRow[]) =>
    `${label} | ${f(mean(vs.map((v) => v.fps)))} | ${f(mean(vs.map((v) => v.incompletePct)))} % | ${f(mean(vs.map((v) => v.latencyP50Ms ?? NaN)))} | ${f(mean(vs.map((v) => v.arrivedMbps)))} |`;
  console.log(`\n| run | viewers | fps (mean of medians) | started, never completed (mean) | latency p50 ms (mean) | Mbit/s arrived (mean) |`);
  console.log("|---|---|---|---|---|---|");
  for (const { lying, all } of pairs) {
    console.log(`| ${all.name} | ${line("all honest", honestOf(all))}`);
    console.log(`| ${lying.name} | ${line("the honest", honestOf(lying))}`);
    console.log(`| ${lying.name} | ${line("the liar", lying.viewers.filter((v) => v.liar))}`);
  }
}
console.error(`rows: ${JSON.stringify(results)}`);
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
