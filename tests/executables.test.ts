// The single-file executables as a lab machine gets them: built by scripts/build.ts with
// an embedded ffmpeg, copied into a fresh folder outside the repo, run from there with
// no ffmpeg on PATH. Start-up times and sizes are measured in bench/startup.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { describeLoadFailure } from "../lib/native/cv.ts";
import { probeVideo } from "../lib/media/ffprobe.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { ROOT, until } from "./helpers/process.ts";
import { filesUnder } from "./helpers/files.ts";

const BUILD_TIMEOUT_MS = 180_000;
const SYSTEM_FFMPEG = Bun.which("ffmpeg");
const SYSTEM_FFPROBE = Bun.which("ffprobe");

let work: string; // build/ holds the build output, run/ the copies that run
let run: string;
let buildLog = "";

/** The environment of a lab machine: no ffmpeg on PATH, nothing inherited from this shell. */
function labEnv(): { HOME: string; PATH: string; XDG_CACHE_HOME: string; TMPDIR: string } {
  return { HOME: join(work, "home"), PATH: join(work, "empty-bin"), XDG_CACHE_HOME: join(work, "cache"), TMPDIR: join(work, "tmp") };
}

const exe = (name: string) => join(run, name);

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end from the run folder (or `cwd`), with the lab environment. */
async function runIn(cmd: string[], cwd = run, env = labEnv()): Promise<Finished> {
  const proc = Bun.spawn(cmd, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** A long-running child whose output is collected; SIGKILLed on dispose if still running. */
function startIn(cmd: string[]) {
  const proc = Bun.spawn(cmd, { cwd: run, env: labEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const out = { stdout: "", stderr: "" };
  const collect = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) out[key] += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([collect(proc.stdout, "stdout"), collect(proc.stderr, "stderr")]);
  return {
    proc,
    out,
    exited: drained.then(() => proc.exited),
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

beforeAll(async () => {
  expect(SYSTEM_FFMPEG).not.toBeNull();
  work = mkdtempSync(join(tmpdir(), "lancam-exe-"));
  for (const d of ["home", "empty-bin", "cache", "tmp"]) mkdirSync(join(work, d));
  // ffmpeg-static cannot be installed offline: embed the system ffmpeg the same way.
  const build = Bun.spawn([process.execPath, join(ROOT, "scripts/build.ts"), "--outdir", join(work, "build")], {
    cwd: ROOT,
    env: { ...process.env, LANCAM_EMBED_FFMPEG: SYSTEM_FFMPEG! },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text(), build.exited]);
  buildLog = out + err;
  expect({ code, buildLog }).toEqual({ code: 0, buildLog: expect.stringContaining(`embedding ffmpeg ${SYSTEM_FFMPEG}`) });
  run = join(work, "run");
  mkdirSync(run);
  for (const name of ["lancam-server", "lancam-client"]) {
    copyFileSync(join(work, "build", name), exe(name));
    chmodSync(exe(name), 0o755);
  }
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the built executables, copied to a folder of their own", () => {
  test("the run folder is outside the repository with no node_modules above it, and PATH has no ffmpeg", () => {
    expect(relative(ROOT, run).startsWith("..")).toBe(true);
    for (let d = run; ; d = dirname(d)) {
      expect(existsSync(join(d, "node_modules"))).toBe(false);
      if (dirname(d) === d) break;
    }
    expect(Bun.which("ffmpeg", { PATH: labEnv().PATH })).toBeNull();
    const sizes = ["lancam-server", "lancam-client"].map((n) => `${n} ${(statSync(exe(n)).size / 1e6).toFixed(1)} MB`);
    // Not an assertion: a note in the CI log (bench/startup.ts measures start-up).
    console.log(`executables: ${sizes.join(", ")}`);
    for (const n of ["lancam-server", "lancam-client"]) expect(statSync(exe(n)).size).toBeGreaterThan(10e6);
  });

  test("--help prints usage on stdout and exits 0", async () => {
    for (const name of ["lancam-server", "lancam-client"]) {
      const r = await runIn([exe(name), "--help"]);
      expect(r).toEqual({ code: 0, stdout: expect.stringMatching(/^Usage: .*\n[\s\S]*--version[\s\S]*--help/), stderr: "" });
    }
  });

  test("the server reads the sample config (scripts/server.toml) and prints the same settings as bun server.ts", async () => {
    // The sample's token file is the lab's; one in the run folder stands in for it.
    const tokenFile = join(run, "token");
    writeFileSync(tokenFile, "3f0c1d2e4b5a69788796a5b4c3d2e1f0\n", { mode: 0o600 });
    const config = join(run, "server.toml");
    writeFileSync(config, readFileSync(join(ROOT, "scripts/server.toml"), "utf8").replace('"/etc/lancam/token"', JSON.stringify(tokenFile)));
    const built = await runIn([exe("lancam-server"), "--config", config, "--print-config"]);
    const script = await runIn([process.execPath, join(ROOT, "server.ts"), "--config", config, "--print-config"], run, { ...labEnv(), PATH: process.env.PATH! });
    expect({ code: built.code, stderr: built.stderr }).toEqual({ code: 0, stderr: "" });
    // Only the first line, naming the program that wrote it, differs.
    expect(built.stdout.split("\n")[0]).toBe("# lancam server settings, written by `lancam-server --print-config`.");
    expect(built.stdout.split("\n").slice(1)).toEqual(script.stdout.split("\n").slice(1));
    expect(Bun.TOML.parse(built.stdout)).toMatchObject({ source: [{ src: "camera:0", size: "1280x720" }], "token-file": tokenFile });
  });

  test("--version names lancam, Bun, OpenCV and the embedded ffmpeg, extracted into the user's cache", async () => {
    const cache = join(labEnv().XDG_CACHE_HOME, "lancam");
    for (const name of ["lancam-server", "lancam-client"]) {
      const r = await runIn([exe(name), "--version"]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines).toHaveLength(4);
      expect(lines.slice(0, 3)).toEqual([`${name} ${pkg.version}`, `bun ${Bun.version}`, expect.stringMatching(/^opencv 4\.\d+\.\d+$/)]);
      const ffmpeg = /^ffmpeg (\S+) \(from embedded\)$/.exec(lines[3]!)?.[1];
      expect(ffmpeg).toMatch(new RegExp(`^${cache.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/ffmpeg-[0-9a-f]{12}/ffmpeg$`));
      expect(statSync(ffmpeg!).size).toBe(statSync(SYSTEM_FFMPEG!).size);
      accessSync(ffmpeg!, constants.X_OK);
    }
    // Both runs share one extracted copy, and no temporary file is left beside it.
    expect(filesUnder(cache)).toEqual([expect.stringMatching(/^ffmpeg-[0-9a-f]{12}\/ffmpeg$/)]);
  });

  test("the server streams the test source; the client receives it and records a playable segment", async () => {
    const serverLog = join(work, "server.log");
    const rec = join(work, "rec");
    const statsFile = join(work, "stats.json");
    await using server = startIn([exe("lancam-server"), "--source", "test", "--port", "0", "--size", "640x480", "--fps", "15", "--log", serverLog]);
    await until(() => /listening tcp=\d+/.test(server.out.stdout) || server.proc.exitCode !== null, 30_000, "the server's ready line");
    expect(server.out.stdout).toMatch(/^lancam server listening tcp=(\d+) source=test size=640x480 fps=15$/m);
    const port = /tcp=(\d+)/.exec(server.out.stdout)![1]!;

    const client = await runIn([exe("lancam-client"), "127.0.0.1", port, "0", "--no-window", "--duration", "4", "--out", rec, "--stats", statsFile]);
    // The one warning expected: a server without a token is open to anyone on the network.
    const warnings = client.stderr.split("\n").filter((l) => / (ERROR|WARN) /.test(l) && !/ WARN \[client\] this server has no token: anyone on the network can watch/.test(l));
    expect({ code: client.code, warnings }).toEqual({ code: 0, warnings: [] });
    expect(client.stdout).toMatch(new RegExp(`^lancam client receiving udp=\\d+ from 127\\.0\\.0\\.1:${port}$`, "m"));
    // The recorder ran the ffmpeg extracted from the executable.
    expect(client.stderr).toContain(`ffmpeg=${join(labEnv().XDG_CACHE_HOME, "lancam", "ffmpeg-")}`);

    const stats = JSON.parse(readFileSync(statsFile, "utf8")) as StatsSummary & { recording: { framesWritten: number } | null };
    expect(stats.framesReceived).toBeGreaterThan(0);
    expect(stats.recording?.framesWritten).toBeGreaterThan(0);

    const segments = filesUnder(rec);
    expect(segments).toEqual([expect.stringMatching(/^\d{4}-\d{2}-\d{2}\/\d{2}-\d{2}-\d{2}\.avi$/)]);
    const probe = await probeVideo(join(rec, segments[0]!), { ffprobePath: SYSTEM_FFPROBE! });
    expect(probe).toMatchObject({ format: "avi", codec: "mjpeg", width: 640, height: 480 });
    expect(probe.frames).toBeGreaterThan(0);

    // The goodbye reaches the server's log a moment after the client exits.
    await until(() => existsSync(serverLog) && readFileSync(serverLog, "utf8").includes("client left"), 10_000, "the leave in the server log");
    const log = readFileSync(serverLog, "utf8");
    const joined = /INFO \[server\] client joined client=(127\.0\.0\.1:\d+) /.exec(log);
    expect(joined).not.toBeNull();
    expect(log).toMatch(new RegExp(`INFO \\[server\\] client left client=${joined![1]!.replace(/\./g, "\\.")} .*reason=goodbye`));

    server.proc.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  }, 60_000);
});

// A root holding only what the executable itself links (libc and friends): the
// machine-without-OpenCV case, run for real. Needs root and mount namespaces.
const CAN_ISOLATE =
  process.platform === "linux" &&
  process.getuid?.() === 0 &&
  Bun.which("unshare") !== null &&
  Bun.which("ldd") !== null &&
  Bun.spawnSync(["unshare", "-m", "true"]).exitCode === 0;

describe("on a machine without OpenCV", () => {
  test.skipIf(!CAN_ISOLATE)("the server executable prints one line naming the package to install and exits 1", () => {
    const root = join(work, "bare-root");
    for (const d of ["proc", "dev", "tmp", "home", "cache"]) mkdirSync(join(root, d), { recursive: true });
    const ldd = Bun.spawnSync(["ldd", exe("lancam-server")]).stdout.toString();
    for (const lib of ldd.match(/\/\S+/g) ?? []) {
      mkdirSync(join(root, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(root, lib));
    }
    copyFileSync(exe("lancam-server"), join(root, "lancam-server"));
    chmodSync(join(root, "lancam-server"), 0o755);
    // Bun reads /proc/self/exe to find its embedded files; /dev for /dev/null and random.
    const script = `mount --bind /proc "$1/proc" && mount --bind /dev "$1/dev" && shift && exec chroot "$@"`;
    const inRoot = (...args: string[]): Finished => {
      const p = Bun.spawnSync(["unshare", "-m", "sh", "-c", script, "sh", root, root, "/lancam-server", ...args], {
        // PATH finds mount and chroot out here; inside the root those folders do not exist.
        env: { HOME: "/home", PATH: "/usr/sbin:/usr/bin:/sbin:/bin", TMPDIR: "/tmp", XDG_CACHE_HOME: "/cache" },
      });
      return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
    };

    expect(inRoot("--help")).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: /), stderr: "" });
    const r = inRoot("--source", "test", "--port", "0");
    expect({ code: r.code, stdout: r.stdout, lines: r.stderr.trimEnd().split("\n").length }).toEqual({ code: 1, stdout: "", lines: 1 });
    expect(r.stderr).toMatch(
      /^lancam-server: error: OpenCV library libopencv_\w+\.so\.\d+ is missing: sudo apt-get install libopencv-\w+\d+ \(or libopencv-dev\); all that lancam needs: sudo apt-get install libopencv-\{core,imgproc,imgcodecs,videoio,highgui\}\d+; this executable needs OpenCV 4\.\d+/,
    );
  });

  test("the message names the package of each platform, and never the repo's build script", () => {
    const linux = Object.assign(new Error("libopencv_core.so.406: cannot open shared object file: No such file or directory"), { code: "ERR_DLOPEN_FAILED" });
    expect(describeLoadFailure(linux, { platform: "linux", standalone: true })).toBe(
      "OpenCV library libopencv_core.so.406 is missing: sudo apt-get install libopencv-core406 (or libopencv-dev); " +
        "all that lancam needs: sudo apt-get install libopencv-{core,imgproc,imgcodecs,videoio,highgui}406; " +
        "this executable needs OpenCV 4.6: where another version is installed, build lancam on that machine (bun run build)",
    );
    // Ubuntu 22.04 names sonames and packages after 4.5d.
    const jammy = new Error("libopencv_videoio.so.4.5d: cannot open shared object file: No such file or directory");
    expect(describeLoadFailure(jammy, { platform: "linux", standalone: true })).toStartWith(
      "OpenCV library libopencv_videoio.so.4.5d is missing: sudo apt-get install libopencv-videoio4.5d (or libopencv-dev);",
    );
    const mac = new Error(
      "dlopen(/private/var/folders/x/T/.bun-501-ab.node, 0x0001): Library not loaded: /opt/homebrew/opt/opencv/lib/libopencv_core.410.dylib\n  Referenced from: <UUID> /private/var/folders/x/T/.bun-501-ab.node\n  Reason: tried: '/opt/homebrew/opt/opencv/lib/libopencv_core.410.dylib' (no such file)",
    );
    expect(describeLoadFailure(mac, { platform: "darwin", standalone: true })).toStartWith(
      "OpenCV library libopencv_core.410.dylib is missing: brew install opencv; this executable needs",
    );
    const win = Object.assign(new Error("The specified module could not be found.\r\n\\\\?\\C:\\Users\\lab\\AppData\\Local\\Temp\\.bun-ab.node"), { code: "ERR_DLOPEN_FAILED" });
    expect(describeLoadFailure(win, { platform: "win32", standalone: true })).toStartWith(
      "the OpenCV DLLs are not on PATH: add the bin folder of the OpenCV release the addon was built with",
    );
    const tmpNotWritable = new Error("/$bunfs/root/lancam-prrbwyvk.node: cannot open shared object file: No such file or directory");
    expect(describeLoadFailure(tmpNotWritable, { platform: "linux", standalone: true })).toStartWith("cannot unpack the OpenCV addon into the temporary folder ");
    const noexec = new Error("/tmp/.bun-1000-f26066e958f85277.node: failed to map segment from shared object");
    expect(describeLoadFailure(noexec, { platform: "linux", standalone: true })).toMatch(/does not allow loading code \(mounted noexec\?\): set TMPDIR to another folder/);
    const cases: [Error, NodeJS.Platform][] = [[linux, "linux"], [jammy, "linux"], [mac, "darwin"], [win, "win32"], [tmpNotWritable, "linux"], [noexec, "linux"]];
    for (const [err, platform] of cases) {
      const text = describeLoadFailure(err, { platform, standalone: true });
      expect(text).not.toContain("native/build.sh");
      expect(text).not.toContain("\n");
    }
  });
});
