// Soak: one server with a token and N recording viewers for a long run, sampling the
// resident memory (VmRSS) of the server and of every viewer at a fixed interval, to show
// that nothing grows with time. Writes a CSV, an SVG plot and its PNG, and prints a
// Markdown summary.
//   bun bench/soak.ts [--viewers 8] [--seconds 600] [--interval 10] [--size 1280x720] [--fps 30]
//                     [--source test|noise] [--max-size 300M] [--csv FILE] [--png docs/soak-rss.png]
// Viewers record (--segment 60) into a temporary folder, each kept under --max-size by
// its own retention, so a long run does not fill the disk.
import mri from "mri";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { spawnBun, type Child } from "../tests/helpers/process.ts";

const args = mri(process.argv.slice(2), { string: ["viewers", "seconds", "interval", "size", "fps", "source", "max-size", "csv", "png"] });
const viewers = Number(args.viewers ?? 8);
const seconds = Number(args.seconds ?? 600);
const interval = Number(args.interval ?? 10);
const size = String(args.size ?? "1280x720");
const fps = Number(args.fps ?? 30);
const sourceKind = String(args.source ?? "test");
const maxSize = String(args["max-size"] ?? "300M");
const dir = mkdtempSync(join(tmpdir(), "lancam-soak-"));
const csvPath = String(args.csv ?? join(dir, "soak-rss.csv"));
const pngPath = String(args.png ?? join(dir, "soak-rss.png"));
const svgPath = join(dir, "soak-rss.svg");
/** Memory taken while the JIT, the heap and the recorder warm up is not growth; the slope starts after it. */
const WARMUP_S = 60;

/** The noise clip of bench/fanout.ts: camera-sized JPEGs (~210 KB) instead of the test pattern's ~45 KB. */
function sourceArgs(): string[] {
  if (sourceKind === "test") return ["--source", "test", "--size", size, "--fps", String(fps)];
  if (sourceKind !== "noise") throw new Error(`--source must be test or noise, got ${sourceKind}`);
  const clip = join(dir, "noise.avi");
  const ff = Bun.spawnSync([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
    `testsrc2=size=${size}:rate=${fps},noise=alls=12:allf=t`, "-t", "4", "-c:v", "mjpeg", "-q:v", "4", clip]);
  if (ff.exitCode !== 0) throw new Error(`ffmpeg could not make the noise clip: ${ff.stderr.toString()}`);
  return ["--source", clip, "--loop", "--fps", String(fps)];
}

/** Resident memory of a process in KiB, or NaN once it is gone. */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

interface Sample {
  t: number;
  server: number;
  viewers: number[];
}

const mib = (kib: number) => kib / 1024;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Least-squares slope of `ys` over `xs` (per unit of x). */
function slope(xs: number[], ys: number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** A line chart of the series (MiB over seconds), as SVG: simple enough for any renderer. */
function svgPlot(title: string, series: { name: string; color: string; points: [number, number][] }[]): string {
  const W = 900, H = 420, L = 70, R = 200, T = 40, B = 50;
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(...all.map((p) => p[0]));
  const yMaxRaw = Math.max(...all.map((p) => p[1]));
  const yStep = yMaxRaw > 200 ? 50 : yMaxRaw > 80 ? 20 : 10;
  const yMax = Math.ceil((yMaxRaw * 1.1) / yStep) * yStep;
  const xStep = xMax > 300 ? 60 : xMax > 60 ? 30 : 10;
  const x = (v: number) => L + ((W - L - R) * v) / Math.max(xMax, 1);
  const y = (v: number) => H - B - ((H - T - B) * v) / yMax;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="24" font-size="15">${title}</text>`,
  ];
  for (let v = 0; v <= yMax; v += yStep) {
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  for (let v = 0; v <= xMax; v += xStep) {
    out.push(`<line x1="${x(v)}" y1="${H - B}" x2="${x(v)}" y2="${H - B + 5}" stroke="black"/>`);
    out.push(`<text x="${x(v)}" y="${H - B + 20}" text-anchor="middle">${v}</text>`);
  }
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`);
  out.push(`<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">seconds</text>`);
  out.push(`<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})">RSS MiB</text>`);
  for (const [i, s] of series.entries()) {
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ")}"/>`);
    const ly = T + 20 + i * 22;
    out.push(`<line x1="${W - R + 20}" y1="${ly - 4}" x2="${W - R + 45}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 52}" y="${ly}">${s.name}</text>`);
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/**
 * SVG to PNG: ImageMagick's convert where it can read SVG (it needs an SVG delegate),
 * else ffmpeg, whose librsvg decoder reads it. Returns the tool that did it.
 */
function rasterize(svg: string, png: string): string {
  const im = Bun.spawnSync(["convert", "-density", "96", svg, png], { stderr: "pipe" });
  if (im.exitCode === 0) return "convert";
  const ff = Bun.spawnSync(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", svg, "-frames:v", "1", png], { stderr: "pipe" });
  if (ff.exitCode === 0) return "ffmpeg (librsvg)";
  throw new Error(`cannot turn ${svg} into a PNG: convert said ${im.stderr.toString().trim()}; ffmpeg said ${ff.stderr.toString().trim()}`);
}

const log = join(dir, "server.log");
const load0 = loadavg();
const server = spawnBun(["server.ts", ...sourceArgs(), "--port", "0", "--bind", "127.0.0.1", "--log", log, "--token", "auto"], { LANCAM_TOKEN: undefined });
const port = (await server.waitFor(/lancam server listening tcp=(\d+)/))[1]!;
await server.waitFor(/join with: /);
// --token auto keeps the token next to the log; viewers read it from there, out of the process list.
const tokenFile = join(dir, "lancam-token");
const clients: { child: Child; stats: string }[] = [];
try {
  for (let i = 0; i < viewers; i++) {
    const stats = join(dir, `viewer-${i}.json`);
    const child = spawnBun([
      "client.ts", "127.0.0.1", port, "0", "--no-window", "--token-file", tokenFile, "--name", `soak-${i}`, "--stats", stats,
      "--out", join(dir, `rec-${i}`), "--segment", "60", "--max-size", maxSize,
    ], { LANCAM_TOKEN: undefined });
    clients.push({ child, stats });
  }
  for (const c of clients) await c.child.waitFor(/INFO \[client\] connected .*encrypted=yes/, 20_000, "stderr");

  const samples: Sample[] = [];
  const t0 = performance.now();
  const take = () => {
    const t = Math.round((performance.now() - t0) / 1000);
    const s = { t, server: rssKiB(server.proc.pid), viewers: clients.map((c) => rssKiB(c.child.proc.pid)) };
    samples.push(s);
    const dead = clients.findIndex((c) => c.child.proc.exitCode !== null);
    if (server.proc.exitCode !== null || dead >= 0) {
      throw new Error(`${dead >= 0 ? `viewer ${dead}` : "the server"} exited during the soak\n${dead >= 0 ? clients[dead]!.child.stderr() : server.stderr()}`);
    }
    console.error(`t=${t}s server=${mib(s.server).toFixed(1)} MiB viewers=${s.viewers.map((v) => mib(v).toFixed(1)).join(",")} MiB`);
  };
  take();
  for (let k = 1; k * interval <= seconds; k++) {
    await Bun.sleep(Math.max(0, t0 + k * interval * 1000 - performance.now()));
    take();
  }

  for (const c of clients) c.child.proc.kill("SIGTERM");
  const codes = await Promise.all(clients.map((c) => c.child.exited));
  server.proc.kill("SIGTERM");
  const serverCode = await server.exited;
  if (codes.some((c) => c !== 0) || serverCode !== 0) throw new Error(`exit codes: viewers ${codes.join(",")}, server ${serverCode}`);
  const load1 = loadavg();

  writeFileSync(csvPath, [
    ["t_s", "server_kib", ...clients.map((_, i) => `viewer${i}_kib`)].join(","),
    ...samples.map((s) => [s.t, s.server, ...s.viewers].join(",")),
  ].join("\n") + "\n");
  const meanViewer = samples.map((s) => mean(s.viewers));
  const maxViewer = samples.map((s) => Math.max(...s.viewers));
  writeFileSync(svgPath, svgPlot(`RSS over ${seconds} s: server and ${viewers} recording viewers with a token, ${size} at ${fps} fps`, [
    { name: "server", color: "#c0392b", points: samples.map((s) => [s.t, mib(s.server)]) },
    { name: "viewer (mean)", color: "#2471a3", points: samples.map((s, i) => [s.t, mib(meanViewer[i]!)]) },
    { name: "viewer (max)", color: "#7fb3d5", points: samples.map((s, i) => [s.t, mib(maxViewer[i]!)]) },
  ]));
  const rasterizedBy = rasterize(svgPath, pngPath);

  const stats: StatsSummary[] = clients.map((c) => JSON.parse(readFileSync(c.stats, "utf8")));
  const leaves = readFileSync(log, "utf8").split("\n").filter((l) => l.includes("client left"));
  const sent = leaves.map((l) => Number(/framesSent=(\d+)/.exec(l)?.[1] ?? NaN));
  const received = stats.map((s) => s.framesReceived);
  const minFps = Math.min(...stats.map((s) => Math.min(...s.fpsPerSecond.slice(1, -1))));
  const written = stats.map((s) => (s as StatsSummary & { recording: { framesWritten: number } | null }).recording?.framesWritten ?? 0);

  const late = samples.filter((s) => s.t >= WARMUP_S);
  const row = (name: string, ys: number[]) => {
    const lateYs = ys.slice(samples.length - late.length);
    const perMin = slope(late.map((s) => s.t / 60), lateYs.map(mib));
    return `| ${name} | ${mib(ys[0]!).toFixed(1)} | ${mib(lateYs[0]!).toFixed(1)} | ${mib(ys.at(-1)!).toFixed(1)} | ${mib(Math.max(...ys)).toFixed(1)} | ${perMin >= 0 ? "+" : ""}${perMin.toFixed(3)} |`;
  };
  console.log(`# soak: ${viewers} recording viewers with a token, ${size} at ${fps} fps, ${sourceKind} source, ${seconds} s, RSS every ${interval} s; ${cpus().length} cores (${cpus()[0]?.model}), Bun ${Bun.version}, load average ${load0[0]!.toFixed(2)} at start, ${load1[0]!.toFixed(2)} at end`);
  console.log("");
  console.log(`| process | RSS at start MiB | at ${WARMUP_S} s | at end | max | slope after ${WARMUP_S} s, MiB/min |`);
  console.log("|---|---|---|---|---|---|");
  console.log(row("server", samples.map((s) => s.server)));
  console.log(row("viewer (mean of all)", meanViewer));
  console.log(row("viewer (largest)", maxViewer));
  for (let i = 0; i < viewers; i++) console.log(row(`viewer ${i}`, samples.map((s) => s.viewers[i]!)));
  console.log("");
  console.log(`frames received per viewer: min ${Math.min(...received)}, max ${Math.max(...received)} of ${Math.min(...sent)}-${Math.max(...sent)} sent; lowest full second ${minFps} fps; recorded per viewer: min ${Math.min(...written)}`);
  console.log(`csv: ${csvPath}`);
  console.log(`plot: ${pngPath} (svg: ${svgPath}, rasterized by ${rasterizedBy})`);
} finally {
  for (const c of clients) await c.child[Symbol.asyncDispose]();
  await server[Symbol.asyncDispose]();
  // The recordings are only there to load the viewers; the CSV and plot may live in `dir` too.
  for (let i = 0; i < viewers; i++) rmSync(join(dir, `rec-${i}`), { recursive: true, force: true });
}
