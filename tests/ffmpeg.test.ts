import { describe, expect, test } from "bun:test";
import { FfmpegNotFoundError, resolveFfmpeg, type FfmpegProbe } from "../lib/ffmpeg.ts";

function probe(over: Partial<FfmpegProbe> & { executables?: string[] }): FfmpegProbe {
  const executables = new Set(over.executables ?? []);
  return {
    env: over.env ?? {},
    staticBinary: over.staticBinary ?? (() => null),
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
