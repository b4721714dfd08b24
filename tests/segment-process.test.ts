import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { OpenSegment } from "../lib/record/open-segment.ts";
import { segmentPaths } from "../lib/record/segment-naming.ts";
import { segmentArgs, SegmentProcess } from "../lib/record/segment-process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-segproc-");

/** 2025-01-02 03:04:05.250 UTC, in µs. */
const T0 = Date.UTC(2025, 0, 2, 3, 4, 5, 250) * 1000;
const INTERVAL = 1_000_000 / 30;

/** The session id of a process (field 6 of /proc/<pid>/stat). */
function sessionOf(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

const quiet = { maxQueuedBytes: 1 << 20, onDrain: () => {}, onBroken: () => {} };

describe("segmentArgs", () => {
  test("AVI: MJPEG from stdin at the nominal rate, stream copy, the same rate out, flushed per frame", () => {
    const args = segmentArgs({ ffmpeg: "/bin/ffmpeg", container: "avi", fps: 12.5, startedAtMicros: T0, output: "/rec/.x.avi.partial" });
    expect(args.join(" ")).toBe(
      "/bin/ffmpeg -hide_banner -nostdin -nostats -loglevel warning -f mjpeg -framerate 12.5 -i pipe:0 -map 0:v:0 -c copy -r 12.5 " +
        "-metadata creation_time=2025-01-02T03:04:05.250Z -flush_packets 1 -f avi -y /rec/.x.avi.partial",
    );
  });

  test("Matroska: the stream arrives already timed, so no rate is forced", () => {
    const args = segmentArgs({ ffmpeg: "ffmpeg", container: "mkv", fps: 30, startedAtMicros: T0, output: "/rec/.x.mkv.partial" });
    expect(args.slice(6, 10)).toEqual(["-f", "matroska", "-i", "pipe:0"]);
    expect(args).not.toContain("-r");
    expect(args.slice(-4)).toEqual(["-f", "matroska", "-y", "/rec/.x.mkv.partial"]);
  });
});

describe("SegmentProcess", () => {
  test("runs in its own session, so a Ctrl-C at the terminal does not reach it", async () => {
    const p = new SegmentProcess(["sleep", "30"], quiet);
    try {
      // The new session begins in the child, between fork and exec.
      await waitFor(() => sessionOf(p.pid) === p.pid, 10_000, "ffmpeg to lead its own session");
      expect(sessionOf(p.pid)).not.toBe(sessionOf("self"));
    } finally {
      p.kill();
    }
    expect(await p.exited).not.toBe(0);
    expect([p.exitCode, p.signalCode]).toEqual([-1, "SIGKILL"]);
  });

  test("keeps the tail of stderr and the exit code", async () => {
    const p = new SegmentProcess(["sh", "-c", "for i in $(seq 1 30); do echo line $i >&2; done; exit 3"], quiet);
    expect(await p.exited).toBe(3);
    await p.stderrDone;
    expect(p.exitCode).toBe(3);
    expect(p.signalCode).toBeNull();
    expect(p.stderrTail()).toBe("line 26 | line 27 | line 28 | line 29 | line 30");
    expect(p.stderrTail(1)).toBe("line 30");
  });

  test("a command that cannot be started throws at once", () => {
    expect(() => new SegmentProcess([join(tempDir(), "no-such-ffmpeg")], quiet)).toThrow();
  });

  test("backpressure: no room once the budget waits behind a full pipe; drained when the reader catches up", async () => {
    const dir = tempDir();
    let drains = 0;
    const budget = 256 * 1024;
    const p = new SegmentProcess(["sh", "-c", `exec cat > ${join(dir, "out")}`], { maxQueuedBytes: budget, onDrain: () => drains++, onBroken: () => {} });
    process.kill(p.pid, "SIGSTOP");
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let sent = 0;
    try {
      while (p.hasRoom && sent < 1000) {
        p.send(chunk);
        sent++;
      }
      expect(p.hasRoom).toBe(false);
      expect(p.pending).toBe(true);
      expect(sent).toBeLessThan(200); // a pipe's worth, plus the budget; not everything offered
    } finally {
      process.kill(p.pid, "SIGCONT");
    }
    await waitFor(() => drains > 0, 10_000, "the pipe to drain");
    expect([p.pending, p.hasRoom]).toEqual([false, true]);
    p.endInput();
    expect(await p.exited).toBe(0);
    expect(readFileSync(join(dir, "out")).length).toBe(sent * chunk.length);
  });
});

/** A stand-in JPEG of `size` bytes whose every byte is `id`. */
const pic = (id: number, size = 4096) => new Uint8Array(size).fill(id);

describe("OpenSegment", () => {
  function open(container: "avi" | "mkv", maxQueuedBytes = 1 << 20) {
    const dir = tempDir();
    const paths = segmentPaths(dir, T0, container);
    const out = join(dir, "written");
    const seg = new OpenSegment({
      paths, container, startedAt: T0, width: 64, height: 48, intervalMicros: INTERVAL, maxQueuedBytes,
      args: ["sh", "-c", `exec cat > ${out}`], // stands in for ffmpeg: keeps exactly what it is given
    });
    return { seg, out };
  }

  test("AVI: lost slots reach the pipe as repeats of the previous frame; counts and duration follow", async () => {
    const { seg, out } = open("avi");
    seg.write(pic(1), { slot: 0, gap: 0, offsetMicros: 0 });
    seg.write(pic(2), { slot: 1, gap: 0, offsetMicros: INTERVAL });
    seg.write(pic(3), { slot: 4, gap: 2, offsetMicros: 4 * INTERVAL });
    expect(seg.writable).toBe(true);
    seg.endInput();
    expect(seg.inputEnded).toBe(true);
    expect(await seg.exited).toBe(0);
    const file = readFileSync(out);
    expect([...file].filter((_, i) => i % 4096 === 0)).toEqual([1, 2, 2, 2, 3]);
    expect([seg.frames, seg.repeats, seg.bytes]).toEqual([3, 2, 5 * 4096]);
    expect(seg.durationSec).toBeCloseTo((5 * INTERVAL) / 1e6, 9);
  });

  test("Matroska: the stream header first, then one block per frame; nothing repeated", async () => {
    const { seg, out } = open("mkv");
    seg.write(pic(1, 100), { slot: 0, gap: 0, offsetMicros: 0 });
    seg.write(pic(2, 100), { slot: 4, gap: 2, offsetMicros: 4 * INTERVAL });
    seg.endInput();
    expect(await seg.exited).toBe(0);
    const file = readFileSync(out);
    expect([...file.subarray(0, 4)]).toEqual([0x1a, 0x45, 0xdf, 0xa3]); // EBML magic
    expect(file.length).toBe(seg.bytes);
    expect([seg.frames, seg.repeats]).toEqual([2, 0]);
    expect(seg.durationSec).toBeCloseTo(0.133 + INTERVAL / 1e6, 9); // the last block at 133 ms, plus one frame
  });

  test("AVI: a pipe that stops taking leaves repeats and the frame waiting; stop() forgets them and says a frame was lost", async () => {
    const { seg, out } = open("avi", 1);
    process.kill(seg.pid, "SIGSTOP");
    let stopped: boolean;
    try {
      seg.write(pic(1), { slot: 0, gap: 0, offsetMicros: 0 });
      expect(seg.writable).toBe(true); // one small frame fits in the pipe
      seg.write(pic(2), { slot: 1001, gap: 1000, offsetMicros: 1001 * INTERVAL }); // far more than a pipe holds
      expect(seg.writable).toBe(false);
      expect(seg.repeats).toBeLessThan(1000);
      let woken = false;
      void seg.whenWritable().then(() => (woken = true));
      await Bun.sleep(10);
      expect(woken).toBe(false);
      stopped = seg.stop();
      await Bun.sleep(0);
      expect(woken).toBe(true); // a stopped segment releases its waiters
    } finally {
      process.kill(seg.pid, "SIGCONT");
    }
    expect(stopped).toBe(true);
    expect(await seg.flush(Bun.sleep(15_000))).toBe(true); // what was handed over still reaches the file
    seg.endInput();
    expect(await seg.exited).toBe(0);
    expect(seg.frames).toBe(1); // frame 2 never went out
    expect(readFileSync(out).length).toBe(seg.bytes);
    expect(seg.bytes).toBe((1 + seg.repeats) * 4096);
  });
});
