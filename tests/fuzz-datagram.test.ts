// Datagram fuzzing of a real viewer (client.ts) while a real server (server.ts) streams
// to it on 127.0.0.1: 100 000 random and mutated datagrams per test, seeded, paced so
// the kernel keeps them all, and bounded in time. The viewer must not crash, must keep
// its memory, must keep showing the real stream, and must count every fuzzed datagram
// under the reason it was dropped for.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { StatsSummary } from "../lib/receive/receiver-stats.ts";
import {
  decodeDatagram, encodeDatagramHeader, fragmentCountFor, fragmentPayloadLength, HEADER_SIZE, MAX_DATAGRAM_SIZE, MAX_FRAGMENTS, MAX_FRAME_BYTES,
  type DatagramHeader,
} from "../lib/wire/datagram.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";
import { spawnBun, type Child, expectExit } from "./helpers/process.ts";
import { prng } from "./helpers/prng.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { rawUdpSender } from "./helpers/raw-udp.ts";

const tempDir = tempDirs("lancam-fuzz-datagram-");
const DATAGRAMS = 100_000;
const FPS = 20;
/** RSS the viewer may gain while fuzzed: garbage between collections, never a buffer per datagram. */
const RSS_GROWTH_LIMIT = 32 * 1024 * 1024;

/**
 * Why the viewer drops a datagram from the server's own address and port, as its --stats
 * names it; "encrypted" for one it cannot decrypt (counted under whichever reason the
 * receiver gives that).
 */
type Reason = "malformed" | "wrongSession" | "oversize" | "encrypted";

/**
 * The reason a datagram from the server's address and port is dropped before reassembly,
 * or null when it would reach the reassembler's per-frame state (not generated: a peer
 * that knows the session can always spoil frames until frames are authenticated).
 */
function reasonFor(bytes: Uint8Array, session: number): Reason | null {
  let h: DatagramHeader;
  try {
    h = decodeDatagram(bytes).header;
  } catch (e) {
    if (e instanceof DecodeError) return "malformed";
    throw e;
  }
  if (h.sessionId !== session) return "wrongSession";
  if (h.encrypted) return "encrypted";
  if (h.frameLength > MAX_FRAME_BYTES) return "oversize";
  return null;
}

/** A datagram as a sender would make it for `h`, payload filled from `rnd`. */
function datagram(h: DatagramHeader, rnd: () => number): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + fragmentPayloadLength(h));
  encodeDatagramHeader(bytes, 0, h);
  for (let i = HEADER_SIZE; i < bytes.length; i += 7) bytes[i] = rnd() * 256;
  return bytes;
}

/** A valid header of a frame of `frameLength` bytes cut into `fragmentSize` pieces, at a random fragment. */
function header(rnd: () => number, session: number, frameLength: number, fragmentSize: number, encrypted = false): DatagramHeader {
  const fragmentCount = fragmentCountFor(frameLength, fragmentSize);
  const h = {
    encrypted, payloadType: 0 as const, sessionId: session, frameNumber: Math.floor(rnd() * 2 ** 32), fragmentIndex: Math.floor(rnd() * fragmentCount),
    fragmentCount, frameLength, fragmentSize, capturedAt: Math.floor(rnd() * 2 ** 52),
  };
  // Key id 0: the one value valid with and without encryption.
  return Object.assign(h, { keyId: 0 }) as DatagramHeader;
}

/**
 * Seeded hostile datagrams for a viewer of `session`: noise of every length, things
 * that look like our header, mutations of valid datagrams, other sessions, encrypted
 * and oversize frames. None of them would be used by the reassembler.
 */
function* hostile(seed: number, session: number): Generator<Uint8Array> {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const noise = (n: number) => {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = rnd() * 256;
    return bytes;
  };
  for (;;) {
    const kind = rnd();
    let bytes: Uint8Array;
    if (kind < 0.2) bytes = noise(int(1400));
    else if (kind < 0.3) bytes = Uint8Array.of(0x4c, 0x43, 0x01, int(16), ...noise(HEADER_SIZE - 4 + int(64)));
    else if (kind < 0.55) {
      bytes = datagram(header(rnd, session, 1 + int(20_000), 1 + int(1368)), rnd);
      for (let k = 1 + int(4); k > 0; k--) bytes[int(rnd() < 0.8 ? HEADER_SIZE : bytes.length)] = int(256);
    } else if (kind < 0.7) bytes = datagram(header(rnd, (session + 1 + int(0xfffffffe)) >>> 0, 1 + int(20_000), 1 + int(1368)), rnd);
    else if (kind < 0.8) bytes = datagram(header(rnd, session, 1 + int(20_000), 1 + int(1368), true), rnd);
    else if (kind < 0.95) bytes = datagram(header(rnd, session, MAX_FRAME_BYTES + 1 + int(MAX_FRAGMENTS * 1368 - MAX_FRAME_BYTES), 1368), rnd);
    else if (kind < 0.995) bytes = noise(int(HEADER_SIZE + 1));
    else bytes = noise(MAX_DATAGRAM_SIZE - int(2));
    if (reasonFor(bytes, session) !== null) yield bytes;
  }
}

/** The viewer's UDP socket as the kernel sees it: bytes queued and datagrams it dropped. */
function udpSocketState(port: number): { queued: number; drops: number } {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/udp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hexPort}`)) return { queued: parseInt(f[4]!.split(":")[1]!, 16), drops: Number(f.at(-1)) };
  }
  throw new Error(`no UDP socket on port ${port}`);
}

/** Resident memory of a process, bytes. */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

/** Sends with `send`, pausing while the viewer's socket holds more than a few datagrams' worth. */
async function paced(datagrams: Iterable<Uint8Array>, viewerPort: number, send: (bytes: Uint8Array) => void): Promise<number> {
  let n = 0;
  for (const bytes of datagrams) {
    send(bytes);
    if (++n % 64 === 0) {
      while (udpSocketState(viewerPort).queued > 96 * 1024) await Bun.sleep(1);
      await Bun.sleep(0);
    }
  }
  return n;
}

function* take<T>(n: number, from: Iterator<T>): Generator<T> {
  for (let i = 0; i < n; i++) yield from.next().value as T;
}

interface Stream {
  server: Child;
  viewer: Child;
  serverUdp: number;
  viewerUdp: number;
  session: number;
  stats: string;
}

/** A real server on the test pattern and one real viewer of it, running until finish(). */
async function stream(): Promise<Stream> {
  const dir = tempDir();
  const server = spawnBun(["server.ts", "--source", "test", "--size", "160x120", "--fps", String(FPS), "--port", "0", "--log", join(dir, "server.log")]);
  const started = await server.waitFor(/INFO \[server\] started .*tcp=(\d+) udp=(\d+)/, 15_000, "stderr").catch(async (e) => {
    await server[Symbol.asyncDispose]();
    throw e;
  });
  const stats = join(dir, "viewer.json");
  // No --duration: it must outlast the fuzz, however long a busy machine takes for that.
  // No repair: the counts below are the hostile datagrams' alone, and a repairing viewer
  // adds late and duplicate datagrams of its own (resends of what hostile numbers made it
  // ask for); repair under hostile datagrams is tests/forgery-e2e.test.ts's.
  const viewer = spawnBun(["client.ts", "127.0.0.1", started[1]!, "0", "--no-window", "--no-record", "--stats", stats, "--no-repair"]);
  try {
    const viewerUdp = Number((await viewer.waitFor(/lancam client receiving udp=(\d+)/))[1]);
    const session = parseInt((await viewer.waitFor(/INFO \[client\] connected .*session=([0-9a-f]{8})/, 10_000, "stderr"))[1]!, 16);
    return { server, viewer, serverUdp: Number(started[2]), viewerUdp, session, stats };
  } catch (e) {
    await viewer[Symbol.asyncDispose]();
    await server[Symbol.asyncDispose]();
    throw e;
  }
}

/** Ends the stream and checks what every fuzz test needs: clean exits, frames throughout, bounded memory. */
async function finish(s: Stream, rssBefore: number, rssAfter: number): Promise<StatsSummary> {
  s.viewer.proc.kill("SIGTERM");
  await expectExit(s.viewer, 0);
  s.server.proc.kill("SIGTERM");
  await expectExit(s.server, 0);
  for (const p of [s.server, s.viewer]) expect(p.stderr()).not.toMatch(/unexpected error|^\s+at /m);
  expect(s.viewer.stderr()).not.toContain("server went away");
  const summary: StatsSummary = JSON.parse(readFileSync(s.stats, "utf8"));
  // Frames in every whole second of the run (the first and last may be partial), in order.
  // (These once had to be 60% of the rate: a busy machine alone can take that, fuzz or not;
  // rates are for bench/ to measure.)
  expect(summary.fpsPerSecond.slice(1, -1).filter((n) => n === 0)).toEqual([]);
  expect(summary.framesReceived).toBeGreaterThan(0);
  expect(summary.framesOutOfOrder).toBe(0);
  expect(summary.framesRejected).toBe(0);
  expect(rssAfter - rssBefore).toBeLessThan(RSS_GROWTH_LIMIT);
  console.log(`viewer RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB; fps ${summary.fpsPerSecond.join(" ")}; drops ${JSON.stringify(summary.datagramsDropped)}`);
  return summary;
}

describe("a viewer fuzzed with 100 000 datagrams while a real stream runs", () => {
  test("from other addresses and from the server's address on other ports: all counted foreignAddress, the stream unharmed", async () => {
    const s = await stream();
    await using _server = s.server;
    await using _viewer = s.viewer;
    const otherHost = await Bun.udpSocket({ hostname: "127.0.0.2", port: 0 });
    const serverHost = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const before = rss(s.viewer.proc.pid);
      const dropsBefore = udpSocketState(s.viewerUdp).drops;
      const fuzzStart = performance.now();
      const sent = await paced(take(DATAGRAMS, hostile(0xf022, s.session)), s.viewerUdp, (bytes) => {
        const from = bytes[bytes.length >> 1]! & 1 ? otherHost : serverHost;
        from.send(bytes, s.viewerUdp, "127.0.0.1");
      });
      const kernelDrops = udpSocketState(s.viewerUdp).drops - dropsBefore;
      console.log(`${sent} datagrams in ${((performance.now() - fuzzStart) / 1000).toFixed(1)} s, ${kernelDrops} dropped by the kernel`);
      const after = rss(s.viewer.proc.pid);
      const summary = await finish(s, before, after);
      expect(sent).toBe(DATAGRAMS);
      const counted = summary.datagramsDropped.foreignAddress!;
      // What the kernel kept, the viewer counted; pacing keeps what the kernel drops small.
      expect(counted).toBeLessThanOrEqual(sent);
      expect(sent - counted).toBeLessThanOrEqual(kernelDrops);
      expect(kernelDrops).toBeLessThan(sent / 100);
      for (const [reason, n] of Object.entries(summary.datagramsDropped)) if (reason !== "foreignAddress") expect({ reason, n }).toEqual({ reason, n: 0 });
    } finally {
      otherHost.close();
      serverHost.close();
    }
  }, 60_000);

  test.skipIf(process.getuid?.() !== 0)("from the server's own address and port (spoofed): each counted under its reason, the stream unharmed", async () => {
    const s = await stream();
    await using _server = s.server;
    await using _viewer = s.viewer;
    // From the server's own address and port: a raw socket writes the UDP header itself.
    const raw = rawUdpSender(s.serverUdp);
    try {
      const before = rss(s.viewer.proc.pid);
      const dropsBefore = udpSocketState(s.viewerUdp).drops;
      const expected: Record<Reason, number> = { malformed: 0, wrongSession: 0, oversize: 0, encrypted: 0 };
      const fuzzStart = performance.now();
      const sent = await paced(take(DATAGRAMS, hostile(0x5b00f, s.session)), s.viewerUdp, (bytes) => {
        expected[reasonFor(bytes, s.session)!]++;
        raw.send(bytes, "127.0.0.1", s.viewerUdp);
      });
      const kernelDrops = udpSocketState(s.viewerUdp).drops - dropsBefore;
      console.log(`${sent} datagrams in ${((performance.now() - fuzzStart) / 1000).toFixed(1)} s, ${kernelDrops} dropped by the kernel`);
      const after = rss(s.viewer.proc.pid);
      const summary = await finish(s, before, after);
      expect(sent).toBe(DATAGRAMS);
      // Every reason is exercised, and each count is what was sent for it, less what the
      // kernel dropped; what cannot be decrypted is counted under the receiver's other reasons.
      const drops = summary.datagramsDropped;
      let shortfall = 0;
      for (const reason of ["malformed", "wrongSession", "oversize"] as const) {
        expect(expected[reason]).toBeGreaterThan(DATAGRAMS / 20);
        expect(drops[reason]).toBeLessThanOrEqual(expected[reason]);
        shortfall += expected[reason] - drops[reason]!;
      }
      const others = Object.entries(drops).filter(([r]) => !["malformed", "wrongSession", "oversize", "foreignAddress", "notReady"].includes(r));
      const undecryptable = others.reduce((n, [, v]) => n + v, 0);
      expect(undecryptable).toBeLessThanOrEqual(expected.encrypted);
      shortfall += expected.encrypted - undecryptable;
      expect(shortfall).toBeLessThanOrEqual(kernelDrops);
      expect(kernelDrops).toBeLessThan(sent / 100);
      expect(summary.datagramsDropped.foreignAddress).toBe(0);
    } finally {
      raw.close();
    }
  }, 60_000);
});
