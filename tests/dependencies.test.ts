import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-deps-");
const DEPCRUISE = join(ROOT, "node_modules/.bin/depcruise");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");

/** Runs the layering check over `targets` in `cwd`; returns its exit code and report. */
function cruise(cwd: string, targets: string[]): { code: number; out: string } {
  const p = Bun.spawnSync([DEPCRUISE, "--config", CONFIG, "--output-type", "err", ...targets], { cwd });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

describe("layering of lib/", () => {
  test("the project keeps every dependency rule", () => {
    const { code, out } = cruise(ROOT, ["server.ts", "client.ts", "lib"]);
    expect(out).not.toContain("error");
    expect(code).toBe(0);
  }, 60_000);

  test("each rule catches the import it forbids", () => {
    const dir = tempDir();
    copyFileSync(join(ROOT, "tsconfig.json"), join(dir, "tsconfig.json"));
    const files: Record<string, string> = {
      "lib/send/server.ts": `import { x } from "../receive/client.ts";\nimport { y } from "../app/cli.ts";\nexport const s = x + y;\n`,
      "lib/receive/client.ts": `import { s } from "../send/server.ts";\nexport const x = 1 + s;\n`,
      "lib/wire/codec.ts": `import { readFileSync } from "node:fs";\nimport { l } from "../log/logger.ts";\nexport const c = readFileSync + l;\n`,
      "lib/mux/muxer.ts": `import { w } from "../record/writer.ts";\nexport const m = w;\n`,
      "lib/record/writer.ts": `import { n } from "../native/cv.ts";\nexport const w = n;\n`,
      "lib/native/cv.ts": `export const n = 1;\n`,
      "lib/capture/source.ts": `import { y } from "../app/cli.ts";\nimport { l } from "../log/logger.ts";\nexport const src = y + l;\n`,
      "lib/publish/out.ts": `import { w } from "../record/writer.ts";\nexport const o = w;\n`,
      "lib/media/tool.ts": `import { w } from "../record/writer.ts";\nimport { l } from "../log/logger.ts";\nimport { e } from "../errors/user-error.ts";\nexport const t = w + l + e;\n`,
      "lib/log/logger.ts": `import { y } from "../app/cli.ts";\nimport { e } from "../errors/user-error.ts";\nexport const l = y + e;\n`,
      "lib/net/socket.ts": `import { e } from "../errors/user-error.ts";\nexport const k = e;\n`,
      "lib/errors/user-error.ts": `import { n } from "../native/cv.ts";\nexport const e = n;\n`,
      "lib/app/cli.ts": `export const y = 1;\n`,
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, dirname(path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const { code, out } = cruise(dir, ["lib"]);
    expect(code).not.toBe(0);
    const broken = new Set([...out.matchAll(/error ([a-z-]+): (\S+) → (\S+)/g)].map((m) => `${m[1]} ${m[2]} ${m[3]}`));
    for (const line of [
      "send-not-receive lib/send/server.ts lib/receive/client.ts",
      "receive-not-send lib/receive/client.ts lib/send/server.ts",
      "stages-not-app lib/send/server.ts lib/app/cli.ts",
      "stages-not-app lib/capture/source.ts lib/app/cli.ts",
      "stages-not-app lib/log/logger.ts lib/app/cli.ts",
      "log-below-all lib/log/logger.ts lib/app/cli.ts",
      "wire-is-pure lib/wire/codec.ts lib/log/logger.ts",
      "pure-no-runtime lib/wire/codec.ts fs",
      "mux-is-pure lib/mux/muxer.ts lib/record/writer.ts",
      "record-no-network-no-opencv lib/record/writer.ts lib/native/cv.ts",
      "publish-not-record lib/publish/out.ts lib/record/writer.ts",
      "media-below-stages lib/media/tool.ts lib/record/writer.ts",
      "errors-at-bottom lib/errors/user-error.ts lib/native/cv.ts",
    ]) {
      expect(broken).toContain(line);
    }
    // Logging is allowed from every stage but the pure codecs.
    expect([...broken].filter((b) => b.endsWith("lib/log/logger.ts") && !b.startsWith("wire-is-pure"))).toEqual([]);
    // So are user errors, from the layers below the stages too (logging, sockets, media tools).
    expect([...broken].filter((b) => b.endsWith("lib/errors/user-error.ts"))).toEqual([]);
    expect(out).toMatch(/error no-cycles: lib\/(send|receive)\//);
  }, 60_000);
});
