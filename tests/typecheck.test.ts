// The whole project type-checks under the strict tsconfig (bun itself only strips types).
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "./helpers/process.ts";

test("tsc --noEmit reports no type errors", async () => {
  const tsc = Bun.spawn([process.execPath, join(ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", ROOT], {
    cwd: ROOT, stdout: "pipe", stderr: "pipe",
  });
  const out = await new Response(tsc.stdout).text();
  expect(out).toBe("");
  expect(await tsc.exited).toBe(0);
}, 120_000);
