// Adaptive delivery, measured (root, for the namespaces): a server and unicast viewers,
// each in its own network namespace on one bridge, a camera-like 1280x720 MJPEG clip
// (~210 KB a frame, ~50 Mbit/s at 30 fps) sent as it is. Cases:
//  shared-N: N viewers sharing the server's link, limited to 100 Mbit/s (tbf);
//  liar+N: the same link shared by N viewers and one that lies in its path reports
//    (tests/helpers/lying-viewer.ts: never a loss, never a queue); run it beside
//    shared-(N+1), where all are honest, to see what the lie costs the honest ones;
//  slow+free: the server's link free, one viewer behind 10 Mbit/s (tbf on its bridge
//    port, towards it) and one viewer on a free link beside it;
//  mixed: the server's link free, four viewers each behind its own link towards it
//    (tbf on its bridge port): 100, 20, 10 and 5 Mbit/s;
//  drop: the server's link free, one viewer behind 100 Mbit/s that becomes 10 Mbit/s
//    5 s after its first frame and 100 again at 15 s (tc qdisc change), 30 s in all
//    whatever --seconds says; per second its fps and the layer the server's log says it
//    was on, how long it took to settle after each change, and a plot (--plot).
// Per viewer: median fps, frames started but never completed, whole-frame goodput, the
// Mbit/s that reached it and the picture size most of its frames had; per case, Jain's
// fairness index of the honest viewers' fps.
// Run it before and after a change to delivery, with the same --seconds, and put the
// two side by side; --server-arg passes a flag to the server (e.g. the one that turns
// adaptive delivery on), --label names the column.
//   bun bench/adaptive.ts [--cases shared-1,shared-2,shared-4,slow+free,liar+3,mixed,drop] [--seconds 10] [--label before]
//                         [--server-arg=--flag ...] [--plot docs/adaptive-drop.svg]
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { cameraClip } from "./camera-clip.ts";
import { bridgePort, ip, NetnsLan, netnsUnavailable, tc, type HostSpec } from "../tests/helpers/netns.ts";

const args = mri(process.argv.slice(2), { string: ["cases", "seconds", "label", "server-arg", "plot"] });
const cases = String(args.cases ?? "shared-1,shared-2,shared-4,slow+free").split(",");
const seconds = Number(args.seconds ?? 10);
const label = String(args.label ?? "before");
const serverArgs = ([] as string[]).concat(args["server-arg"] ?? []).map(String);
const plotPath = String(args.plot ?? "docs/adaptive-drop.svg");
const FPS = 30;
const PREFIX = "lcrate-";
const SERVER = "10.77.0.1";
/** IPv4 + UDP headers, and the Ethernet header a qdisc counts: what is not the datagram. */
const IP_UDP = 28;
const ETHERNET = 14;
/** mixed: each viewer's own link, Mbit/s. */
const MIXED_MBIT = [100, 20, 10, 5];
/** drop: the link before and after, during, when it changes and back (s after the first frame), and the run. */
const DROP = { fullMbit: 100, lowMbit: 10, at: 5, backAt: 15, seconds: 30 };
/** drop: what counts as settled on a smaller layer (the issue's floor where a layer fits). */
const SETTLED_FPS = 25;

const work = mkdtempSync(join(tmpdir(), "lancam-bench-adaptive-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));


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

/**
 * A tbf towards a viewer at `mbit`: the burst of the existing cases (32 KB at 10 Mbit/s,
 * ~256 KB at 100), i.e. 20 ms of the rate, and never under 32 KB, which a 1400-byte
 * datagram train needs at low rates.
 */
function viewerTbf(mbit: number): string[] {
  const burst = Math.max(32 * 1024, Math.round((mbit * 1e6 * 0.02) / 8));
  return ["tbf", "rate", `${mbit}mbit`, "burst", String(burst), "latency", "50ms"];
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
  /** The server's layer moves for this viewer (its log), s after the viewers started, with the rate it was paced at. */
  moves: string[];
}

/** One second of the drop case, on the viewer's clock (second 0 starts at its first frame). */
interface DropSecond {
  second: number;
  fps: number;
  /** The layer the server's log had the viewer on at the end of this second, and its picture. */
  layer: number;
  picture: string;
  /** The link's Mbit/s at the end of this second. */
  linkMbit: number;
}

/** The drop case's timeline: per second, and the server's layer moves (s after the first frame). */
interface DropTimeline {
  seconds: DropSecond[];
  moves: { at: number; layer: number; picture: string }[];
  /** When the link changed, as the bench did it (s after the first frame). */
  droppedAt: number;
  restoredAt: number;
  /** From the drop to the start of the first whole second on a smaller layer at ≥ SETTLED_FPS. */
  settledAfterDrop: number | null;
  /** From the restore to the server's move back to layer 0. */
  fullAfterRestore: number | null;
  fullPicture: string;
}

interface CaseRow {
  name: string;
  viewers: ViewerRow[];
  timeline?: DropTimeline;
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

/**
 * The drop case per second: the viewer's fps, and its layer from the server's log (one
 * line per move, with the time; the viewer's own layer lines are throttled to one a
 * second, so they can miss moves). Before the first move it is on the welcome's layer 0,
 * whose picture its first frame had.
 */
function dropTimeline(fpsPerSecond: number[], serverLog: string, t: { firstAt: number; fullPicture: string; droppedAt: number; restoredAt: number }): DropTimeline {
  const moves = [...serverLog.matchAll(/^(\S+) INFO \[[^\]]*\] viewer layer .*\blayer=(\d+) picture=(\d+x\d+)/gm)]
    .map((m) => ({ at: (Date.parse(m[1]!) - t.firstAt) / 1000, layer: Number(m[2]), picture: m[3]! }));
  const layerAt = (s: number) => moves.filter((m) => m.at <= s).at(-1) ?? { layer: 0, picture: t.fullPicture };
  // Whole seconds only: the last one, cut short by --duration, would read as a fall in fps.
  const perSecond: DropSecond[] = fpsPerSecond.slice(0, -1).map((fps, second) => {
    const l = layerAt(second + 1);
    return { second, fps, layer: l.layer, picture: l.picture, linkMbit: second + 1 > t.droppedAt && second + 1 <= t.restoredAt ? DROP.lowMbit : DROP.fullMbit };
  });
  // Settled: a whole second after the drop on a smaller layer all through (no move back to 0 in it), at ≥ SETTLED_FPS.
  const settled = perSecond.find((s) => s.second >= t.droppedAt && s.second < t.restoredAt && s.fps >= SETTLED_FPS && layerAt(s.second).layer > 0 && s.layer > 0 &&
    !moves.some((m) => m.layer === 0 && m.at > s.second && m.at <= s.second + 1));
  const back = moves.find((m) => m.at >= t.restoredAt && m.layer === 0);
  return {
    seconds: perSecond, moves, droppedAt: t.droppedAt, restoredAt: t.restoredAt, fullPicture: t.fullPicture,
    settledAfterDrop: settled ? settled.second - t.droppedAt : null,
    fullAfterRestore: back ? back.at - t.restoredAt : null,
  };
}

/** The drop case's fps and layer against time (SVG, no tool needed), the link's changes marked. */
function plotDrop(tl: DropTimeline, path: string, note: string): void {
  const W = 760, H = 420, L = 60, R = 70, T = 40, B = 60;
  const span = Math.max(tl.seconds.length, 1);
  const maxLayer = Math.max(1, ...tl.moves.map((m) => m.layer));
  const x = (s: number) => L + (s / span) * (W - L - R);
  const yFps = (fps: number) => T + (1 - Math.min(35, Math.max(0, fps)) / 35) * (H - T - B);
  // Layer 0 (the full picture) at the top, the smallest at the bottom.
  const yLayer = (layer: number) => T + (layer / (maxLayer + 0.5)) * (H - T - B);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  out.push(`<text x="${L}" y="20" font-size="14">One viewer, its link ${DROP.fullMbit} → ${DROP.lowMbit} → ${DROP.fullMbit} Mbit/s: fps and layer per second</text>`);
  out.push(`<text x="${L}" y="${H - 8}" fill="#555">${note}</text>`);
  out.push(`<rect x="${x(tl.droppedAt)}" y="${T}" width="${x(tl.restoredAt) - x(tl.droppedAt)}" height="${H - T - B}" fill="#f4e4e4"/>`);
  out.push(`<text x="${x(tl.droppedAt) + 4}" y="${T + 14}" fill="#a33">link ${DROP.lowMbit} Mbit/s</text>`);
  for (const fps of [0, 10, 20, 25, 30]) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${yFps(fps)}" y2="${yFps(fps)}" stroke="${fps === SETTLED_FPS ? "#bbb" : "#e4e4e4"}"${fps === SETTLED_FPS ? ` stroke-dasharray="3 3"` : ""}/>`, `<text x="${L - 30}" y="${yFps(fps) + 4}" fill="#1f6fb2">${fps}</text>`);
  }
  out.push(`<text x="${L - 50}" y="${T - 8}" fill="#1f6fb2">fps</text>`);
  const pictures = new Map<number, string>([[0, tl.fullPicture], ...tl.moves.map((m) => [m.layer, m.picture] as [number, string])]);
  for (const [layer, picture] of pictures) out.push(`<text x="${W - R + 6}" y="${yLayer(layer) + 4}" fill="#c0392b">${layer} ${picture}</text>`);
  out.push(`<text x="${W - R + 6}" y="${T - 8}" fill="#c0392b">layer</text>`);
  for (let s = 0; s <= span; s += 5) out.push(`<text x="${x(s) - 6}" y="${H - B + 18}">${s}</text>`);
  out.push(`<text x="${(L + W - R) / 2 - 90}" y="${H - B + 36}">seconds after the viewer's first frame</text>`);
  // fps of each whole second, drawn at its middle.
  out.push(`<polyline fill="none" stroke="#1f6fb2" stroke-width="2" points="${tl.seconds.map((s) => `${x(s.second + 0.5)},${yFps(s.fps)}`).join(" ")}"/>`);
  // The layer as a step line through every move the server logged.
  const steps: string[] = [`${x(0)},${yLayer(0)}`];
  let layer = 0;
  for (const m of tl.moves) {
    steps.push(`${x(m.at)},${yLayer(layer)}`, `${x(m.at)},${yLayer(m.layer)}`);
    layer = m.layer;
  }
  steps.push(`${x(span)},${yLayer(layer)}`);
  out.push(`<polyline fill="none" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 3" points="${steps.join(" ")}"/>`);
  out.push("</svg>");
  writeFileSync(path, out.join("\n") + "\n");
  console.log(`\nplot: ${path}`);
}

/** One case in a fresh LAN: the server, the viewers for `seconds`, then the counters. */
async function runCase(name: string, clip: string): Promise<CaseRow> {
  const honest = /^shared-(\d+)$/.exec(name);
  const lying = /^liar\+(\d+)$/.exec(name);
  const shared = honest ?? lying;
  if (!shared && !["slow+free", "mixed", "drop"].includes(name)) throw new Error(`unknown case ${name}: expected shared-N, liar+N, slow+free, mixed or drop`);
  // Each viewer's own link towards it, Mbit/s (null: free); the shared cases limit the server's instead.
  const links: (number | null)[] = name === "mixed" ? MIXED_MBIT : name === "drop" ? [DROP.fullMbit] : name === "slow+free" ? [10, null] : [];
  const drop = name === "drop";
  const runSeconds = drop ? DROP.seconds : seconds;
  // liar+N: the liar is the last viewer, after the N honest ones.
  const n = honest ? Number(honest[1]) : lying ? Number(lying[1]) + 1 : links.length;
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
    const mbit = links[i - 1] ?? null;
    if (mbit !== null) tc(lan.ns("br"), "qdisc", "add", "dev", port, "root", ...viewerTbf(mbit));
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
      : ["client.ts", SERVER, port, "0", "--no-window", "--no-record", "--duration", String(runSeconds), "--stats", stats];
    return { v, stats, child: lan.bun(v, command) };
  });
  await Promise.all(viewers.map((x) => x.child.waitFor(/receiving udp=(\d+)/, 60_000)));
  const m0 = machineJiffies();
  const t0 = performance.now();
  // drop: the link changes at set times after the viewer's first frame, which its log
  // line stamps (second 0 of its fpsPerSecond starts there).
  let changes: Promise<{ firstAt: number; fullPicture: string; droppedAt: number; restoredAt: number }> | null = null;
  if (drop) {
    const first = await viewers[0]!.child.waitFor(/^(\S+) INFO .*first frame size=(\d+x\d+)/m, 60_000, "stderr");
    const firstAt = Date.parse(first[1]!);
    const change = async (atS: number, mbit: number) => {
      await Bun.sleep(Math.max(0, firstAt + atS * 1000 - Date.now()));
      tc(lan.ns("br"), "qdisc", "change", "dev", paths.get("v1")!, "root", ...viewerTbf(mbit));
      return (Date.now() - firstAt) / 1000;
    };
    changes = (async () => {
      const droppedAt = await change(DROP.at, DROP.lowMbit);
      const restoredAt = await change(DROP.backAt, DROP.fullMbit);
      return { firstAt, fullPicture: first[2]!, droppedAt, restoredAt };
    })();
  }
  await Promise.all(viewers.map((x) => x.child.exited));
  const timed = changes ? await changes : null;
  const wall = (performance.now() - t0) / 1000;
  const m1 = machineJiffies();
  server.proc.kill("SIGTERM");
  await server.exited;
  const serverOffered = offeredDatagramBytes(qdiscStats(lan.ns("srv"), "eth0"));
  const startedAt = Date.now() - (performance.now() - t0);
  const serverLog = readFileSync(log, "utf8");
  const movesOf = (address: string) => [...serverLog.matchAll(/^(\S+) INFO \[[^\]]*\] viewer layer client=([\d.]+):\d+ .*\blayer=(\d+) picture=(\d+x\d+)(?: rateKbps=(\d+))?/gm)]
    .filter((m) => m[2] === address)
    .map((m) => `${f((Date.parse(m[1]!) - startedAt) / 1000, 1)} s → ${m[4]}${m[5] ? ` (${f(Number(m[5]) / 1000, 1)} Mbit/s)` : ""}`);
  const rows: ViewerRow[] = viewers.map(({ v, stats }) => {
    const s = JSON.parse(readFileSync(stats, "utf8"));
    const arrived = receivedDatagramBytes(lan.ns(v));
    const mbit = links[Number(v.slice(1)) - 1] ?? null;
    // What the server sent towards this viewer: its own bridge port saw all of it when the
    // server's link is free; on a shared link only with one viewer (whose drops on the
    // shared link cannot be told from another's otherwise).
    const offered = !shared ? offeredDatagramBytes(qdiscStats(lan.ns("br"), paths.get(v)!)) : n === 1 ? serverOffered : null;
    const started = s.framesReceived + s.framesIncomplete;
    const sizes = Object.entries(s.framesBySize as Record<string, number>).sort((a, b) => b[1] - a[1]);
    return {
      name: v, liar: v === liar, moves: movesOf(hosts.find((h) => h.name === v)!.address), arrivedMbps: (arrived * 8) / runSeconds / 1e6, picture: sizes[0]?.[0] ?? "-",
      path: shared ? `shared 100 Mbit/s` : drop ? `${DROP.fullMbit} → ${DROP.lowMbit} → ${DROP.fullMbit} Mbit/s` : mbit !== null ? `${mbit} Mbit/s` : "free",
      fps: s.framesReceived === 0 ? 0 : median(s.fpsPerSecond.slice(1, -1)), framesReceived: s.framesReceived, framesIncomplete: s.framesIncomplete,
      incompletePct: started ? (100 * s.framesIncomplete) / started : NaN,
      goodputOfArrived: arrived > 0 ? s.bytes / arrived : NaN,
      goodputOfSent: offered ? s.bytes / offered : null,
      latencyP50Ms: s.latencyMs.p50,
    };
  });
  const completed = viewers.reduce((a, { stats }) => a + JSON.parse(readFileSync(stats, "utf8")).bytes, 0);
  return {
    name, viewers: rows, timeline: timed ? dropTimeline(JSON.parse(readFileSync(viewers[0]!.stats, "utf8")).fpsPerSecond, readFileSync(log, "utf8"), timed) : undefined,
    goodputOfSent: serverOffered > 0 ? completed / serverOffered : NaN,
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
// Where a viewer sat behind its own link, how it got there.
for (const r of results.filter((r) => r.name === "mixed" || r.name === "slow+free")) {
  console.log(`\n${r.name}, the server's layer moves (s after the viewers started, the rate it then paced at):`);
  for (const v of r.viewers) console.log(`- ${v.name} (${v.path}): ${v.moves.join(", ") || "none"}`);
}
for (const r of results) {
  const tl = r.timeline;
  if (!tl) continue;
  console.log(`\n${r.name}: the link ${DROP.fullMbit} → ${DROP.lowMbit} Mbit/s at ${f(tl.droppedAt, 2)} s, back to ${DROP.fullMbit} at ${f(tl.restoredAt, 2)} s (after the viewer's first frame)`);
  console.log(`on a smaller layer at ≥ ${SETTLED_FPS} fps (a whole second) ${tl.settledAfterDrop === null ? "never" : `from ${f(tl.settledAfterDrop, 1)} s`} after the drop; ` +
    `${tl.fullPicture} back ${tl.fullAfterRestore === null ? "never" : `${f(tl.fullAfterRestore, 1)} s`} after the link came back`);
  console.log(`server's layer moves: ${tl.moves.map((m) => `${f(m.at, 2)} s → ${m.layer} (${m.picture})`).join(", ") || "none"}`);
  console.log(`\n| second | link Mbit/s | fps | layer (end of second) | picture |`);
  console.log("|---|---|---|---|---|");
  for (const s of tl.seconds) console.log(`| ${s.second} | ${s.linkMbit} | ${s.fps} | ${s.layer} | ${s.picture} |`);
  plotDrop(tl, plotPath, `${cpus().length} cores; fps: frames completed in each second (solid); layer: the server's log (dashed); shaded: link at ${DROP.lowMbit} Mbit/s`);
}
console.error(`rows: ${JSON.stringify(results)}`);
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
