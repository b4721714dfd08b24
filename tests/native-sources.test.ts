// The addon's comments point readers at TypeScript files; a moved file must not leave them pointing nowhere.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers/process.ts";

test("every lib/ or tests/ file the native sources name exists", () => {
  const named: string[] = [];
  for (const file of readdirSync(join(ROOT, "native")).filter((f) => /\.(cc|h|sh)$/.test(f))) {
    const text = readFileSync(join(ROOT, "native", file), "utf8");
    for (const m of text.matchAll(/\b(?:lib|tests)\/[\w./-]+\.ts\b/g)) named.push(`${file}: ${m[0]}`);
  }
  expect(named.length).toBeGreaterThan(0);
  expect(named.filter((n) => !existsSync(join(ROOT, n.split(": ")[1]!)))).toEqual([]);
});
