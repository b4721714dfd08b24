/**
 * Runs the classroom program itself (tests/fixtures/classroom, logic unchanged) through
 * its shim: a synthetic 30 fps camera, no window, files only in a temporary folder.
 * Tests and benches use it to check lancam against the real thing in both roles.
 */
import type { Socket } from "bun";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cv } from "../../lib/native/cv.ts";
import { ClassicEncoder } from "../../lib/send/classic-encoder.ts";
import { CLASSIC_TICK_MS, ClassicViewers, type ClassicAction } from "../../lib/send/classic-viewers.ts";
import { classifyFirstBytes, type FirstBytes } from "../../lib/wire/classic.ts";
import { nowMicros } from "../../lib/wire/frame.ts";
import { readJpegSize } from "../../lib/wire/jpeg-header.ts";
import { prng } from "./prng.ts";
import { ROOT, spawnChild, until, type Child } from "./process.ts";

const SHIM = join(ROOT, "tests/fixtures/classroom/classroom_shim.py");
/** Debian's python3-opencv installs for the system Python, which may not be first on PATH. */
const CANDIDATES = ["/usr/bin/python3", "python3"];

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
  return spawnChild([classroomPython(), SHIM, ...args], {
    CLASSROOM_DIR: dir, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8", PYTHONDONTWRITEBYTECODE: "1", ...env,
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

// --- A stand-in for lancam's server side --------------------------------------------
//
// The classic modules wired the way the server's admission will wire them: the first
// bytes of each TCP connection decide, classic viewers join the state machine, pictures
// leave fitted from one UDP socket, answers come back to it. Until the server does this
// itself, tests and benches run the classroom viewer against this.

/** What the stand-in did, for assertions. */
export interface ClassicFront extends AsyncDisposable {
  /** Its TCP port on 127.0.0.1. */
  port: number;
  machine: ClassicViewers;
  encoder: ClassicEncoder;
  /** Joins, leaves and refusals, in order. */
  events: ClassicAction[];
  /** Connections by what their first bytes were. */
  classified: Record<FirstBytes["kind"], number>;
  /** ICMP errors on the pictures' socket (a picture to a port not bound yet). */
  udpErrors: number;
}

/** Serves `jpegs` in turn at `fps` (as the camera would, numbered from 0) to classroom viewers. */
export async function startClassicFront(jpegs: Uint8Array[], fps = 30): Promise<ClassicFront> {
  const machine = new ClassicViewers();
  const encoder = new ClassicEncoder();
  const events: ClassicAction[] = [];
  const classified: ClassicFront["classified"] = { lancam: 0, classic: 0, undecided: 0, invalid: 0 };
  const conns = new Map<number, Socket<{ id: number; head: Uint8Array; decided: boolean }>>();
  let udpErrors = 0;
  let nextId = 1;
  const udp = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data: (_s, bytes, port, address) => apply(machine.push({ type: "answer", address, port, bytes }, performance.now())),
      error: () => {
        udpErrors++;
      },
    },
  });
  const apply = (actions: ClassicAction[]) => {
    for (const a of actions) {
      if (a.type === "send") {
        udp.send(a.jpeg, a.port, a.address);
        continue;
      }
      events.push(a);
      if (a.type === "refused") conns.get(a.id)?.end();
      if (a.type === "left") conns.get(a.viewer.id)?.end();
    }
  };
  const listener = Bun.listen<{ id: number; head: Uint8Array; decided: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        s.data = { id: nextId++, head: new Uint8Array(0), decided: false };
        conns.set(s.data.id, s);
      },
      data: (s, bytes) => {
        if (s.data.decided) return; // a classroom viewer sends nothing more; anything else is ignored
        const head = new Uint8Array(Math.min(16, s.data.head.length + bytes.length));
        head.set(s.data.head.subarray(0, head.length));
        head.set(bytes.subarray(0, head.length - s.data.head.length), s.data.head.length);
        s.data.head = head;
        const c = classifyFirstBytes(head);
        if (c.kind === "undecided") return;
        s.data.decided = true;
        classified[c.kind]++;
        if (c.kind === "classic") apply(machine.push({ type: "join", id: s.data.id, address: s.remoteAddress, port: c.port }, performance.now()));
        else s.end(); // the stand-in speaks no lancam
      },
      close: (s) => {
        conns.delete(s.data.id);
        apply(machine.push({ type: "closed", id: s.data.id }, performance.now()));
      },
    },
  });
  let seq = 0;
  const camera = setInterval(() => {
    const jpeg = jpegs[seq % jpegs.length]!;
    const size = readJpegSize(jpeg) ?? { width: 0, height: 0 };
    const frame = { seq, capturedAt: nowMicros(), ...size, jpeg };
    seq++;
    // Fitted only while someone watches, as the server will.
    if (machine.size === 0) return;
    void encoder.fit(frame).then((f) => {
      if (f) apply(machine.push({ type: "frame", frame: f }, performance.now()));
    });
  }, 1000 / fps);
  const ticker = setInterval(() => apply(machine.push({ type: "tick" }, performance.now())), CLASSIC_TICK_MS);
  return {
    port: listener.port,
    machine,
    encoder,
    events,
    classified,
    get udpErrors() {
      return udpErrors;
    },
    async [Symbol.asyncDispose]() {
      clearInterval(camera);
      clearInterval(ticker);
      apply(machine.push({ type: "shutdown" }, performance.now()));
      listener.stop(true);
      udp.close();
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
