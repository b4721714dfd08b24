import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheRoot, embeddedFfmpeg, embeddedFfmpegInfo, extractBinary, type EmbeddedBinary } from "../lib/media/embedded-ffmpeg.ts";
import { FfmpegNotFoundError, resolveFfmpeg, type FfmpegProbe } from "../lib/media/ffmpeg.ts";
import { forEachLine } from "../lib/media/line-reader.ts";

function probe(over: Partial<FfmpegProbe> & { executables?: string[] }): FfmpegProbe {
  const executables = new Set(over.executables ?? []);
  return {
    env: over.env ?? {},
    staticBinary: over.staticBinary ?? (() => null),
    embeddedBinary: over.embeddedBinary,
    which: over.which ?? (() => null),
    isExecutable: (p) => executables.has(p),
  };
}

describe("resolveFfmpeg", () => {
  test("FFMPEG_BIN wins over ffmpeg-static and PATH", () => {
    const r = resolveFfmpeg(probe({
      env: { FFMPEG_BIN: "/opt/ff/ffmpeg" },
      staticBinary: () => "/nm/ffmpeg-static/ffmpeg",
      which: () => "/usr/bin/ffmpeg",
      executables: ["/opt/ff/ffmpeg", "/nm/ffmpeg-static/ffmpeg"],
    }));
    expect(r).toEqual({ path: "/opt/ff/ffmpeg", origin: "FFMPEG_BIN" });
  });

  test("a FFMPEG_BIN that is not executable is an error, not a silent fallback", () => {
    expect(() => resolveFfmpeg(probe({ env: { FFMPEG_BIN: "/nope" }, which: () => "/usr/bin/ffmpeg" })))
      .toThrow("FFMPEG_BIN=/nope is not an executable file");
  });

  test("ffmpeg-static's binary comes before PATH when it exists", () => {
    const r = resolveFfmpeg(probe({
      staticBinary: () => "/nm/ffmpeg-static/ffmpeg",
      which: () => "/usr/bin/ffmpeg",
      executables: ["/nm/ffmpeg-static/ffmpeg"],
    }));
    expect(r.origin).toBe("ffmpeg-static");
  });

  test("an installed ffmpeg-static without its downloaded binary falls through to PATH", () => {
    const r = resolveFfmpeg(probe({ staticBinary: () => "/nm/ffmpeg-static/ffmpeg", which: () => "/usr/bin/ffmpeg" }));
    expect(r).toEqual({ path: "/usr/bin/ffmpeg", origin: "PATH" });
  });

  test("none found: the error names all three places and how to install", () => {
    let err: unknown;
    try {
      resolveFfmpeg(probe({}));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FfmpegNotFoundError);
    const msg = (err as Error).message;
    expect(msg).toContain("FFMPEG_BIN");
    expect(msg).toContain("ffmpeg-static");
    expect(msg).toContain("PATH");
    expect(msg).toContain("apt-get install ffmpeg");
  });

  test("on this machine the real probe finds a runnable ffmpeg", async () => {
    const { path } = resolveFfmpeg();
    const proc = Bun.spawn([path, "-hide_banner", "-version"], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    expect(out).toStartWith("ffmpeg version");
  });
});

describe("resolveFfmpeg in a compiled executable (embedded ffmpeg)", () => {
  test("the embedded binary takes ffmpeg-static's place: after FFMPEG_BIN, before PATH", () => {
    const embedded = "/home/u/.cache/lancam/ffmpeg-0123456789ab/ffmpeg";
    const base = { embeddedBinary: () => embedded, which: () => "/usr/bin/ffmpeg", executables: [embedded, "/opt/ff/ffmpeg"] };
    expect(resolveFfmpeg(probe(base))).toEqual({ path: embedded, origin: "embedded" });
    expect(resolveFfmpeg(probe({ ...base, env: { FFMPEG_BIN: "/opt/ff/ffmpeg" } })).origin).toBe("FFMPEG_BIN");
  });

  test("an executable without an embedded ffmpeg uses PATH, and says so when there is none", () => {
    expect(resolveFfmpeg(probe({ embeddedBinary: () => null, which: () => "/usr/bin/ffmpeg" }))).toEqual({ path: "/usr/bin/ffmpeg", origin: "PATH" });
    expect(() => resolveFfmpeg(probe({ embeddedBinary: () => null }))).toThrow(
      "ffmpeg not found: FFMPEG_BIN is not set, this executable embeds no ffmpeg, and there is no ffmpeg on PATH",
    );
  });

  test("a failed extraction falls back to PATH, and is the reason given when PATH has none", () => {
    const failing = () => {
      throw new Error("cannot extract the embedded ffmpeg to /ro/lancam/ffmpeg-x/ffmpeg (EROFS)");
    };
    expect(resolveFfmpeg(probe({ embeddedBinary: failing, which: () => "/usr/bin/ffmpeg" })).origin).toBe("PATH");
    expect(() => resolveFfmpeg(probe({ embeddedBinary: failing }))).toThrow(/FFMPEG_BIN is not set, cannot extract the embedded ffmpeg to \/ro\/.*EROFS/);
  });
});

describe("embedded ffmpeg extraction", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "lancam-extract-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function source(bytes: string): EmbeddedBinary {
    const path = join(dir, "embedded-src");
    writeFileSync(path, bytes);
    return { path, size: bytes.length, hash: "0123456789ab" };
  }

  test("running from source nothing is embedded", () => {
    expect(embeddedFfmpegInfo()).toBeNull();
    expect(embeddedFfmpeg()).toBeNull();
  });

  test("extracts once as an executable file, reuses a copy of the right size, rewrites a wrong one", () => {
    const bin = source("#!/bin/sh\necho embedded\n");
    const cache = join(dir, "cache", "lancam", "ffmpeg-0123456789ab");
    const path = extractBinary(bin, cache, "ffmpeg");
    expect(path).toBe(join(cache, "ffmpeg"));
    expect(readFileSync(path, "utf8")).toBe("#!/bin/sh\necho embedded\n");
    expect(statSync(path).mode & 0o777).toBe(0o755);
    expect(Bun.spawnSync([path]).stdout.toString()).toBe("embedded\n");
    expect(readdirSync(cache)).toEqual(["ffmpeg"]); // no temporary file left

    const before = statSync(path).mtimeMs;
    Bun.sleepSync(20);
    expect(extractBinary(bin, cache, "ffmpeg")).toBe(path);
    expect(statSync(path).mtimeMs).toBe(before);

    writeFileSync(path, "truncated");
    extractBinary(bin, cache, "ffmpeg");
    expect(readFileSync(path, "utf8")).toBe("#!/bin/sh\necho embedded\n");
  });

  test("a folder that cannot be written is one clear error naming the way out", () => {
    const bin = source("x");
    writeFileSync(join(dir, "file"), "");
    expect(() => extractBinary(bin, join(dir, "file", "sub"), "ffmpeg")).toThrow(
      /^cannot extract the embedded ffmpeg to .*file\/sub\/ffmpeg \(.*\); set XDG_CACHE_HOME to a writable folder, or FFMPEG_BIN=\/path\/to\/ffmpeg$/,
    );
  });

  test("the cache folder is per user and per platform", () => {
    expect(cacheRoot({ XDG_CACHE_HOME: "/x/cache" }, "linux", "/home/u")).toBe("/x/cache/lancam");
    expect(cacheRoot({}, "linux", "/home/u")).toBe("/home/u/.cache/lancam");
    expect(cacheRoot({}, "darwin", "/Users/u")).toBe("/Users/u/Library/Caches/lancam");
    expect(cacheRoot({ LOCALAPPDATA: "/c/Users/u/AppData/Local" }, "win32", "/c/Users/u")).toBe(join("/c/Users/u/AppData/Local", "lancam"));
  });
});

describe("forEachLine", () => {
  test("every line of a child's output, split anywhere across chunks, the last one without its newline included", async () => {
    const chunks = ["frame=  1 fps", "=0.0\nerror: bro", "ken pipe\n\nlast words"].map((t) => new TextEncoder().encode(t));
    const stream = new ReadableStream<Uint8Array>({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
    const lines: string[] = [];
    await forEachLine(stream, (l) => lines.push(l));
    expect(lines).toEqual(["frame=  1 fps=0.0", "error: broken pipe", "", "last words"]);
  });

  test("a stream that breaks ends the loop with what was read, without throwing", async () => {
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent) return c.error(new Error("EPIPE"));
        sent = true;
        c.enqueue(new TextEncoder().encode("one\ntwo"));
      },
    });
    const lines: string[] = [];
    await forEachLine(stream, (l) => lines.push(l));
    expect(lines).toEqual(["one", "two"]);
  });
});
