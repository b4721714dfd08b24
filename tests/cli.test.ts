import { describe, expect, test } from "bun:test";
import { flagLabel, formatByteSize, parseByteSize, parseChoice, parseInteger, parsePort, parseSize, UsageError } from "../lib/app/cli.ts";

describe("command-line values", () => {
  test("ports: in range, 0 only where allowed, exact message otherwise", () => {
    expect(parsePort("--port", "9999")).toBe(9999);
    expect(parsePort("--port", "0")).toBe(0);
    expect(() => parsePort("--port", "70000")).toThrow("invalid --port=70000: expected a port 0..65535");
    expect(() => parsePort("PORT", "0", false)).toThrow("invalid PORT=0: expected a port 1..65535");
    expect(() => parsePort("--port", "12ab")).toThrow(UsageError);
    expect(() => parsePort("--port", true)).toThrow("--port needs a value");
  });

  test("integers and repeated flags", () => {
    expect(parseInteger("quality", "80", 1, 100)).toBe(80);
    expect(() => parseInteger("quality", "0", 1, 100)).toThrow("invalid --quality=0: expected an integer 1..100");
    expect(() => parseInteger("quality", "8.5", 1, 100)).toThrow(UsageError);
    expect(() => parseInteger("fps", ["10", "20"], 1, 120)).toThrow("--fps given more than once");
  });

  test("sizes", () => {
    expect(parseSize("size", "1280x720")).toEqual({ width: 1280, height: 720 });
    for (const bad of ["1280", "1281x720", "0x0", "99999x10", "axb", "-2x4"]) {
      expect(() => parseSize("size", bad)).toThrow(`invalid --size=${bad}`);
    }
  });

  test("byte sizes", () => {
    expect(parseByteSize("max-size", "20G")).toBe(20 * 1024 ** 3);
    expect(parseByteSize("min-free", "500M")).toBe(500 * 1024 ** 2);
    expect(parseByteSize("min-free", "1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(() => parseByteSize("max-size", "lots")).toThrow("invalid --max-size=lots: expected a size such as 500M, 20G or 1T");
    expect(() => parseByteSize("max-size", "0")).toThrow(UsageError);
  });

  test("byte sizes are shown in the units they are read in", () => {
    expect(formatByteSize(4 << 20)).toBe("4M");
    expect(formatByteSize(10 * 1024 ** 2)).toBe("10M");
    expect(formatByteSize(4096)).toBe("4K");
    expect(formatByteSize(1024 ** 4)).toBe("1T");
    expect(formatByteSize(1536)).toBe("1536");
    expect(formatByteSize(1000)).toBe("1000");
    for (const n of [1, 1000, 1536, 4096, 4 << 20, 3 * 1024 ** 3, 1 << 30, 5 * 1024 ** 4]) expect(parseByteSize("max-size", formatByteSize(n))).toBe(n);
    expect(() => parseByteSize("recv-buffer", "2G", 1 << 30)).toThrow("invalid --recv-buffer=2G: at most 1G");
  });

  test("choices", () => {
    expect(parseChoice("container", "mkv", ["avi", "mkv"] as const)).toBe("mkv");
    expect(() => parseChoice("container", "mp4", ["avi", "mkv"] as const)).toThrow("invalid --container=mp4: expected one of avi, mkv");
  });

  test("a flag is named the same however the caller spells it; an operand keeps its capitals", () => {
    expect(flagLabel("quality")).toBe("--quality");
    expect(flagLabel("--quality")).toBe("--quality");
    expect(flagLabel("PORT")).toBe("PORT");
    expect(() => parseInteger("--quality", "0", 1, 100)).toThrow("invalid --quality=0: expected an integer 1..100");
    expect(() => parsePort("port", "x")).toThrow("invalid --port=x: expected a port 0..65535");
    expect(() => parseSize("--size", true)).toThrow("--size needs a value");
  });
});
