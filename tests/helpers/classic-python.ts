/**
 * Runs the classroom program itself (its one copy, ../shared/seed beside the repository,
 * logic unchanged) through tests/helpers/classroom_shim.py: a synthetic 30 fps camera,
 * no window, files only in a temporary folder. Tests and benches use it to check lancam
 * against the real thing in both roles.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { memoryLogger } from "./memory-logger.ts";
import { cv } from "../../lib/native/cv.ts";
import { StreamServer } from "../../lib/send/stream-server.ts";
import { nowMicros } from "../../lib/wire/frame.ts";
import { readJpegSize } from "../../lib/wire/jpeg-header.ts";
import { prng } from "./prng.ts";
import { ROOT, spawnChild, until, type Child } from "./process.ts";

const SHIM = join(ROOT, "tests/helpers/classroom_shim.py");
/** Where the classroom program lives, relative to a checkout. */
const SEED = join("..", "shared", "seed");
const PROGRAM_FILES = ["week13_server.py", "week13_client.py"];
/** Debian's python3-opencv installs for the system Python, which may not be first on PATH. */
const CANDIDATES = ["/usr/bin/python3", "python3"];

/**
 * The checkouts ../shared may sit beside: this one and, in a linked git worktree, the
 * main checkout of the same repository.
 */
function checkouts(): string[] {
  const roots = [ROOT];
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
    const main = git.exitCode === 0 ? dirname(git.stdout.toString().trim()) : null;
    if (main && resolve(main) !== resolve(ROOT)) roots.push(main);
  } catch {
    // No git: a plain copy of the tree, which has ../shared beside it or not at all.
  }
  return roots;
}

let program: string | null | undefined;

/** The folder holding the classroom program (../shared/seed beside the checkout); null where it is absent. */
export function classroomProgram(): string | null {
  if (program === undefined) {
    program = checkouts().map((root) => resolve(root, SEED)).find((dir) => PROGRAM_FILES.every((f) => existsSync(join(dir, f)))) ?? null;
  }
  return program;
}

let skipSaid = false;

/** Why the classroom tests are skipped here (said once on stderr), or null when the program is there. */
export function classroomSkipReason(): string | null {
  if (classroomProgram()) return null;
  const reason = `classroom program absent (${SEED}/week13_*.py beside the checkout): its tests are skipped`;
  if (!skipSaid) console.warn(reason);
  skipSaid = true;
  return reason;
}

let found: string | undefined;

/** A Python 3 that imports cv2 and numpy; throws naming the packages to install. */
export function classroomPython(): string {
  if (found) return found;
  for (const python of CANDIDATES) {
    if (python.startsWith("/") && !existsSync(python)) continue;
    const p = Bun.spawnSync([python, "-c", "import cv2, numpy"], { stdout: "ignore", stderr: "ignore" });
    if (p.exitCode === 0) return (found = python);
  }
  throw new Error("no Python with OpenCV: sudo apt-get install python3-opencv python3-numpy (bash scripts/setup.sh --test does)");
}

function spawnShim(args: string[], dir: string, env: Record<string, string> = {}): Child {
  const source = classroomProgram();
  if (!source) throw new Error(`the classroom program is not at ${SEED} beside the checkout (${ROOT})`);
  return spawnChild([classroomPython(), SHIM, ...args], {
    CLASSROOM_DIR: dir, CLASSROOM_PROGRAM: source, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8", PYTHONDONTWRITEBYTECODE: "1", ...env,
  });
}

/** The classroom server, listening on 127.0.0.1. */
export interface PythonServer extends AsyncDisposable {
  child: Child;
  port: number;
  /** Its log (joins "接入" and leaves "退出"), "" before the first line. */
  log(): string;
  /** Pictures its camera has made so far (counted every 30th). */
  cameraFrames(): number;
}

/** Starts the classroom server with its camera at `fps`; resolves once it listens. */
export async function startPythonServer(dir: string, opts: { fps?: number } = {}): Promise<PythonServer> {
  const child = spawnShim(["server"], dir, { CLASSROOM_FPS: String(opts.fps ?? 30) });
  try {
    const m = await child.waitFor(/classroom-server listening port=(\d+)/);
    const logPath = join(dir, "ServerLog.txt");
    return {
      child,
      port: Number(m[1]),
      log: () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : ""),
      cameraFrames: () => Math.max(0, ...[...child.stdout().matchAll(/classroom-camera frames=(\d+)/g)].map((x) => Number(x[1]))),
      [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
    };
  } catch (e) {
    await child[Symbol.asyncDispose]();
    throw e;
  }
}

/** A classroom viewer, receiving on `udpPort`. */
export interface PythonViewer extends AsyncDisposable {
  child: Child;
  udpPort: number;
  /** Pictures decoded and shown so far. */
  decoded(): number;
  /** The size of the last picture shown, e.g. "160x90"; null before the first. */
  lastSize(): string | null;
  /** Datagrams that did not decode (the real viewer dies on the first one). */
  undecodable(): number;
  /** "Presses" ESC: the viewer answers "end" after its current picture and exits. */
  pressEsc(): void;
}

/**
 * Starts the classroom viewer against HOST PORT UDPPORT. It binds UDPPORT after
 * announcing it, as the original does, so the caller picks a free one (freeUdpPort).
 */
export function startPythonViewer(dir: string, host: string, port: number, udpPort: number): PythonViewer {
  const child = spawnShim(["client", host, String(port), String(udpPort)], dir);
  const decodedLines = () => [...child.stdout().matchAll(/classroom-viewer decoded=(\d+) size=(\d+x\d+)/g)];
  return {
    child,
    udpPort,
    decoded: () => decodedLines().length,
    lastSize: () => decodedLines().at(-1)?.[2] ?? null,
    undecodable: () => child.stdout().split("classroom-viewer undecodable").length - 1,
    pressEsc: () => child.proc.kill("SIGUSR1"),
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}

/** A UDP port free right now on 0.0.0.0 (the classroom viewer cannot be given 0). */
export async function freeUdpPort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

/** Waits until every viewer has shown at least `n` pictures. */
export function untilDecoded(viewers: PythonViewer[], n: number, timeoutMs = 15_000): Promise<void> {
  return until(() => viewers.every((v) => v.decoded() >= n), timeoutMs, `every classroom viewer showing ${n} pictures`).catch((e: Error) => {
    throw new Error(`${e.message}; shown: ${viewers.map((v) => v.decoded()).join(", ")}`);
  });
}

// --- A lancam server in this process, for the classroom viewer ----------------------

/** A lancam server whose camera is a list of pictures. */
export interface ClassicFront extends AsyncDisposable {
  /** Its TCP port on 127.0.0.1. */
  port: number;
  server: StreamServer;
  /** Its log lines (joins, leaves, refusals), as they were written. */
  log: string[];
}

/** Starts a lancam server on 127.0.0.1 that broadcasts `jpegs` in turn at `fps` (numbered from 0). */
export async function startClassicFront(jpegs: Uint8Array[], fps = 30): Promise<ClassicFront> {
  const size = readJpegSize(jpegs[0]!);
  if (!size) throw new Error("the first picture is not a JPEG");
  const log = memoryLogger("server");
  const server = await StreamServer.start({ port: 0, bind: "127.0.0.1", mtu: 1400, maxClients: 32, log, stream: { ...size, fps } });
  let seq = 0;
  const camera = setInterval(() => {
    server.broadcast({ seq, capturedAt: nowMicros(), ...size, jpeg: jpegs[seq % jpegs.length]! });
    seq++;
  }, 1000 / fps);
  return {
    port: server.port,
    server,
    log: log.lines,
    async [Symbol.asyncDispose]() {
      clearInterval(camera);
      await server.stop();
    },
  };
}

/** `n` distinct 1280x720 pictures with sensor-like noise: about 100 KB each at quality 80, over one datagram. */
export function noisyCameraJpegs(n: number, width = 1280, height = 720): Buffer[] {
  const rand = prng(n);
  return Array.from({ length: n }, (_, k) => {
    const bgr = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 3;
        const base = ((x + 8 * k) * 255) / width;
        bgr[i] = base;
        bgr[i + 1] = (y * 255) / height;
        bgr[i + 2] = Math.min(255, 96 + rand() * 48);
      }
    }
    return cv().encodeJpeg(bgr, width, height, 80);
  });
}
