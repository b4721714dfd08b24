#!/usr/bin/env bun
// Start-up time of the single-file executables against the scripts run by `bun`:
// `--help` (no OpenCV), `--version` (loads OpenCV, resolves ffmpeg) and the server's
// time to its ready line with the test source. Builds dist/ first when it is missing
// or older than the sources.
//   bun bench/startup.ts [--runs N] [--dist DIR]
import mri from "mri";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const args = mri(process.argv.slice(2), { string: ["runs", "dist"] });
const RUNS = Number(args.runs ?? 20);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 1000) throw new Error(`invalid --runs=${args.runs}: expected an integer 1..1000`);
const DIST = resolve(args.dist ?? join(ROOT, "dist"));
const EXE = process.platform === "win32" ? ".exe" : "";
const SERVER = join(DIST, `lancam-server${EXE}`);
const CLIENT = join(DIST, `lancam-client${EXE}`);
const BUN = process.execPath;

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function newestSource(): number {
  const lib = readdirSync(join(ROOT, "lib"), { recursive: true, encoding: "utf8" }).map((f) => join(ROOT, "lib", f));
  const files = [...lib, join(ROOT, "server.ts"), join(ROOT, "client.ts"), join(ROOT, "native/build/lancam.node"), join(ROOT, "scripts/build.ts")];
  return Math.max(...files.map(mtime));
}

function buildIfNeeded(): void {
  if (Math.min(mtime(SERVER), mtime(CLIENT)) > newestSource()) return;
  console.error(`bench: building ${DIST} ...`);
  const p = Bun.spawnSync([BUN, join(ROOT, "scripts/build.ts"), "--outdir", DIST], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`scripts/build.ts exited ${p.exitCode}`);
}

/** Wall time of `runs` runs of `cmd` in ms, after one warm-up run (page cache, extracted files). */
function timeRuns(cmd: string[], runs: number): number[] {
  const once = () => {
    const t0 = performance.now();
    const p = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
    const ms = performance.now() - t0;
    if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
    return ms;
  };
  once();
  return Array.from({ length: runs }, once);
}

/** Milliseconds from spawn to the server's "listening" line. */
async function timeReady(cmd: string[], log: string): Promise<number> {
  const t0 = performance.now();
  const proc = Bun.spawn([...cmd, "--source", "test", "--port", "0", "--size", "640x480", "--fps", "15", "--log", log], {
    cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "ignore",
  });
  try {
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("lancam server listening")) return performance.now() - t0;
    }
    throw new Error(`${cmd.join(" ")} exited ${await proc.exited} before its ready line`);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

function summary(ms: number[]): { median: number; min: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s.at(-1)! };
}

const row = (name: string, ms: number[]) => {
  const { median, min, max } = summary(ms);
  return `${name.padEnd(34)} ${median.toFixed(1).padStart(7)} ${min.toFixed(1).padStart(7)} ${max.toFixed(1).padStart(7)}`;
};

buildIfNeeded();
const scratch = mkdtempSync(join(tmpdir(), "lancam-bench-startup-"));
try {
  const readyRuns = Math.max(3, Math.min(RUNS, 10));
  const ready = async (cmd: string[]) => {
    const out: number[] = [];
    for (let i = 0; i <= readyRuns; i++) out.push(await timeReady(cmd, join(scratch, "server.log")));
    return out.slice(1); // the first run warms the page cache
  };
  const lines = [
    row("lancam-server --help", timeRuns([SERVER, "--help"], RUNS)),
    row("bun server.ts --help", timeRuns([BUN, "server.ts", "--help"], RUNS)),
    row("lancam-client --help", timeRuns([CLIENT, "--help"], RUNS)),
    row("bun client.ts --help", timeRuns([BUN, "client.ts", "--help"], RUNS)),
    row("lancam-server --version", timeRuns([SERVER, "--version"], RUNS)),
    row("bun server.ts --version", timeRuns([BUN, "server.ts", "--version"], RUNS)),
    row("lancam-server ready (test 640x480)", await ready([SERVER])),
    row("bun server.ts ready (test 640x480)", await ready([BUN, "server.ts"])),
  ];
  const size = (p: string) => `${(statSync(p).size / 1e6).toFixed(1)} MB`;
  console.log(`bun ${Bun.version}, ${process.platform}-${process.arch}, ${RUNS} runs (ready: ${readyRuns}), wall time in ms`);
  console.log(`sizes: lancam-server ${size(SERVER)}, lancam-client ${size(CLIENT)}`);
  console.log(`${"".padEnd(34)} ${"median".padStart(7)} ${"min".padStart(7)} ${"max".padStart(7)}`);
  for (const l of lines) console.log(l);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

// Measured on a 2-core machine of the CI kind (Debian 12, Bun 1.4.5, OpenCV 4.6, no ffmpeg embedded), 30 runs:
//   sizes: lancam-server 111.3 MB, lancam-client 111.3 MB (+ the embedded ffmpeg's size, if any)
//                                       median     min     max
//   lancam-server --help                   6.2     5.8     6.8
//   bun server.ts --help                  16.3    15.0    17.6
//   lancam-client --help                   5.9     5.5     6.7
//   bun client.ts --help                  16.7    15.0    18.3
//   lancam-server --version               87.9    85.7    92.1   (loading OpenCV is most of it)
//   bun server.ts --version               96.0    93.2   100.5
//   lancam-server ready (test 640x480)    86.9    84.9    88.3
//   bun server.ts ready (test 640x480)    98.5    96.8    99.3
// Without `bytecode: true` in scripts/build.ts, --help took ~13 ms. With a cold page cache
// (the first run after boot) --help took 76 ms and --version 360 ms.
