import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, FileSink, formatLine, throttled } from "../lib/app/log.ts";

test("a log line reads `time LEVEL [part] message key=value` and quotes awkward values", () => {
  const at = new Date("2026-11-24T10:00:00.000Z");
  expect(formatLine(at, "INFO", "server", "client joined", { addr: "127.0.0.1", udp: 8888, why: "said goodbye", skip: undefined }))
    .toBe('2026-11-24T10:00:00.000Z INFO [server] client joined addr=127.0.0.1 udp=8888 why="said goodbye"');
});

test("a file sink appends and keeps earlier lines", () => {
  const dir = mkdtempSync(join(tmpdir(), "lancam-log-"));
  try {
    const path = join(dir, "sub", "server.log");
    for (const word of ["first", "second"]) {
      using file = new FileSink(path);
      createLogger("server", [file.sink]).info(word);
    }
    const lines = readFileSync(path, "utf8").trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO \[server\] first$/);
    expect(lines[1]).toEndWith("INFO [server] second");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("levels below the minimum are dropped", () => {
  const lines: string[] = [];
  const log = createLogger("x", [(l) => lines.push(l)], "WARN");
  log.info("quiet");
  log.child("y").warn("loud");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("WARN [y] loud");
});

test("a throttled warning runs at most once per interval and then says how many it held back", () => {
  let t = 0;
  const seen: [string, number][] = [];
  const warn = throttled(1000, (d, n) => seen.push([d, n]), () => t);
  warn("a");
  t = 10;
  warn("b");
  warn("c");
  t = 1000;
  warn("d");
  expect(seen).toEqual([["a", 0], ["d", 2]]);
});
