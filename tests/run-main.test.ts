import { expect, test } from "bun:test";
import { StopSignal } from "../lib/app/run-main.ts";

test("a stop signal wakes a pending race with null, leaves a won race alone, and runs late listeners at once", async () => {
  using signal = new StopSignal();
  expect(await signal.race(Promise.resolve(5))).toBe(5);
  const never = new Promise<number>(() => {});
  const pending = signal.race(never);
  const heard: string[] = [];
  signal.onStop((r) => heard.push(`early ${r}`));
  signal.stop("SIGTERM");
  expect(await pending).toBeNull();
  signal.onStop((r) => heard.push(`late ${r}`));
  expect(heard).toEqual(["early SIGTERM", "late SIGTERM"]);
  expect(await signal.race(Promise.resolve(1))).toBeNull();
});
