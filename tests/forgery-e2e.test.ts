// The forgery a red team found, against real server and viewer processes on 127.0.0.1:
// a second viewer (with the token, so it holds the stream key; or without one) makes
// pictures of its own, seals them as the server would, numbers them just ahead of the
// live stream and sends them to the victim from the server's own address and port
// (a raw socket writes the UDP header itself: needs root). Over multicast it sends
// them to the group with the stream id. The victim must neither show nor record one,
// must count them as forged, and must say so once as a security event.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { cv } from "../lib/native/cv.ts";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import { Fragmenter } from "../lib/send/fragmenter.ts";
import { FrameSealer } from "../lib/send/frame-sealer.ts";
import { FrameSigner } from "../lib/send/frame-signer.ts";
import { decodeDatagram, DEFAULT_MTU } from "../lib/wire/datagram.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { seqAdd, seqDiff } from "../lib/wire/seq.ts";
import { jpegFrames, splitJpegs } from "./helpers/jpeg-frames.ts";
import { spawnBun, until, expectExit } from "./helpers/process.ts";
import { listFiles, tempDirs } from "./helpers/temp-dirs.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";
import { rawUdpSender } from "./helpers/raw-udp.ts";
import { CoViewer } from "./helpers/co-viewer.ts";

const WIDTH = 640;
const HEIGHT = 360;
const TOKEN = "forgery-test-token-long-enough-0123";
/** Forged frames sent per run. */
const FORGED = 12;
const tempDir = tempDirs("lancam-forgery-");

/** A group and port of our own, so runs beside each other do not share one. */
function group(): string {
  const r = crypto.getRandomValues(new Uint16Array(2));
  return `239.254.${(r[0]! % 200) + 20}.${(r[1]! % 250) + 1}:${20_000 + (r[0]! % 20_000)}`;
}

/**
 * The datagrams of one forged frame: `jpeg` (a picture of the forger's own, 640x360 so
 * the size check passes), signed with the forger's own key or not at all, and with the
 * token sealed under the real stream key, stamped with `sessionId`.
 */
function forge(seq: number, jpeg: Uint8Array, sessionId: number, signer: FrameSigner | null, key: { id: number; key: Uint8Array } | null): Uint8Array[] {
  const fragmenter = new Fragmenter(DEFAULT_MTU);
  let frame = { seq, capturedAt: nowMicros(), jpeg };
  if (signer) frame = signer.sign(frame);
  if (!key) return fragmenter.fragment(frame, sessionId).map((d) => d.slice());
  const sealer = new FrameSealer({ randomKey: () => key.key });
  while (sealer.current.id !== key.id) sealer.rotate();
  return fragmenter.fragmentSealed(sealer.seal(frame, fragmenter.sealedFragmentSize).sealed, sessionId).map((d) => d.slice());
}

/** Every frame of every segment in `dir`, as the frame number its barcode says (null: no barcode, not the server's picture). */
async function recordedFrameNumbers(dir: string): Promise<(number | null)[]> {
  const out: (number | null)[] = [];
  // Segments sit in a folder per day, in time order by name.
  for (const name of listFiles(dir).filter((n) => /\.(mkv|avi|mp4|mov)$/.test(n))) {
    const proc = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", join(dir, name), "-c:v", "copy", "-f", "image2pipe", "pipe:1"], { stdout: "pipe", stderr: "pipe" });
    const bytes = await new Response(proc.stdout).bytes();
    await proc.exited;
    for (const jpeg of splitJpegs(bytes)) {
      const img = cv().decodeJpeg(jpeg);
      out.push(readFrameNumber(img.bgr, img.width, img.height));
    }
  }
  return out;
}

const SECURITY_LINE = "frames not signed by the server are arriving";

describe.skipIf(process.getuid?.() !== 0)("a co-viewer forging frames into another viewer's stream", () => {
  for (const multicast of [false, true]) {
    for (const token of [TOKEN, null]) {
      const how = `${multicast ? "multicast" : "unicast"}, ${token ? "with a token (the forger holds it)" : "without a token (a spoofer)"}`;
      test(`${how}: the victim shows and records none of them, counts each as forged, and warns once`, async () => {
        const dir = tempDir();
        const env = token ? { LANCAM_TOKEN: token } : {};
        const serverArgs = ["server.ts", "--source", "test", "--size", `${WIDTH}x${HEIGHT}`, "--fps", "30", "--port", "0", "--bind", "127.0.0.1", "--log", join(dir, "server.log")];
        await using server = spawnBun(multicast ? [...serverArgs, "--multicast", group()] : serverArgs, env);
        const port = Number((await server.waitFor(/listening tcp=(\d+)/))[1]);
        const serverUdp = Number((await server.waitFor(/ started .* udp=(\d+)/, 15_000, "stderr"))[1]);
        const fingerprint = (await server.waitFor(/fingerprint=([0-9a-f:]+)/))[1]!;
        const out = join(dir, "rec");
        const statsPath = join(dir, "victim.json");
        await using victim = spawnBun(["client.ts", "127.0.0.1", String(port), "0", "--no-window", "--duration", "60", "--out", out, "--stats", statsPath, "--name", "victim"], env);
        const victimUdp = Number((await victim.waitFor(/receiving udp=(\d+)/))[1]);
        const session = parseInt((await victim.waitFor(/ connected .*session=([0-9a-f]{8})/, 15_000, "stderr"))[1]!, 16);
        // The victim shows the server's fingerprint, the one the server printed.
        await victim.waitFor(new RegExp(`frames are signed by the server fingerprint=${fingerprint}`), 15_000, "stderr");
        if (multicast) await victim.waitFor(/multicast group joined group=([\d.]+):(\d+)/, 15_000, "stderr");
        const groupTarget = multicast ? /group=([\d.]+):(\d+)/.exec(victim.stderr())! : null;

        await using forger = await CoViewer.join(port, token);
        await until(() => forger.welcome !== null && forger.liveFrame !== null && (!token || forger.key !== null), 10_000, "the co-viewer is welcomed and receiving");
        const streamId = forger.welcome!.signing!.streamId;
        const firstLive = forger.liveFrame!;
        const picture = (await jpegFrames(1, WIDTH, HEIGHT))[0]!;
        const ownKey = new FrameSigner(streamId);
        const raw = rawUdpSender(serverUdp);
        let sent = 0;
        try {
          let last: number | null = null;
          while (sent < FORGED && victim.proc.exitCode === null) {
            await until(() => forger.liveFrame !== last, 5_000, "a new live frame");
            last = forger.liveFrame!;
            if (last % 3 !== 0) continue;
            // Numbered just ahead of the live stream, so it completes before the real frame of that number.
            const target = multicast ? { address: groupTarget![1]!, port: Number(groupTarget![2]), id: streamId } : { address: "127.0.0.1", port: victimUdp, id: session };
            const datagrams = forge(seqAdd(last, 3), picture, target.id, sent % 2 === 0 ? ownKey : null, token ? forger.key : null);
            for (const d of datagrams) raw.send(d, target.address, target.port);
            sent++;
          }
        } finally {
          raw.close();
        }
        // Stopped once every forged frame went out and the real stream ran on for 90 frames
        // (3 s) from the forger's start, however long a busy machine took for either.
        await until(() => seqDiff(forger.liveFrame!, firstLive) >= 90, 30_000, "90 live frames since the forger joined");
        victim.proc.kill("SIGINT");
        await expectExit(victim, 0);
        const stats: StatsSummary & { recording: { framesWritten: number } } = JSON.parse(readFileSync(statsPath, "utf8"));
        expect(sent).toBe(FORGED);
        // Each forged frame that completed was refused; one whose datagrams met the real
        // frame's half-way (its number came early) was dropped as inconsistent instead.
        expect(stats.framesForged).toBeGreaterThanOrEqual(FORGED / 2);
        expect(stats.framesForged).toBeLessThanOrEqual(FORGED);
        expect(stats.framesRejected).toBe(0);
        expect(stats.framesReceived).toBeGreaterThan(60);
        // The real stream went on: the forged frames cost it little (a loaded machine loses a
        // few frames of its own, so the bound is a tenth, not the handful of an idle one).
        expect(stats.framesMissing + stats.framesIncomplete).toBeLessThanOrEqual(Math.ceil(stats.framesReceived / 10));
        // Recorded: only the server's pictures, each with its frame-number barcode.
        const recorded = await recordedFrameNumbers(out);
        // (The container may repeat a frame to keep its timing, so the counts need not be equal.)
        expect(stats.recording.framesWritten).toBeGreaterThan(60);
        expect(recorded.length).toBeGreaterThanOrEqual(stats.recording.framesWritten - 2);
        expect(recorded.filter((n) => n === null).length).toBe(0);
        // Said once, as a security event, however many came.
        const warnings = victim.stderr().split("\n").filter((l) => l.includes(SECURITY_LINE));
        expect(warnings.length).toBe(1);
        expect(warnings[0]).toMatch(/^\S+ WARN \[client\] /);
      }, 60_000);
    }
  }
});
