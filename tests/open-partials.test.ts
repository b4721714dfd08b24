import { expect, test } from "bun:test";
import { OpenPartials } from "../lib/record/open-partials.ts";

const entry = (time: string, startedAtMs: number) => ({
  partial: `/rec/2025-01-02/.${time}.avi.partial`,
  final: `/rec/2025-01-02/${time}.avi`,
  startedAtMs,
});

test("tracks the open segments: their partial and finished names are claimed until they are done", () => {
  const open = new OpenPartials();
  const a = entry("03-04-05", 1000);
  const b = entry("03-04-05-1", 1000);
  expect(open.size).toBe(0);
  open.add(a);
  open.add(b);
  expect(open.size).toBe(2);
  expect(open.has(a.partial)).toBe(true);
  expect(open.has(a.final)).toBe(false); // a finished name is not a partial
  expect([a.partial, a.final, b.partial, b.final].map((p) => open.claims(p))).toEqual([true, true, true, true]);
  expect(open.claims("/rec/2025-01-02/03-04-05-2.avi")).toBe(false);
  expect(open.delete(a.partial)).toBe(true);
  expect(open.delete(a.partial)).toBe(false);
  expect([open.claims(a.partial), open.claims(a.final), open.claims(b.final)]).toEqual([false, false, true]);
});

test("the oldest open start bounds retention; Infinity when nothing is open", () => {
  const open = new OpenPartials();
  expect(open.oldestStartMs()).toBe(Number.POSITIVE_INFINITY);
  open.add(entry("03-04-07", 3000));
  open.add(entry("03-04-05", 1000));
  open.add(entry("03-04-06", 2000));
  expect(open.oldestStartMs()).toBe(1000);
  open.delete(entry("03-04-05", 0).partial);
  expect(open.oldestStartMs()).toBe(2000);
});

test("an entry is kept as it was added, not as the caller later changes its object", () => {
  const open = new OpenPartials();
  const e = entry("03-04-05", 1000);
  open.add(e);
  e.startedAtMs = 9000;
  e.final = "/elsewhere.avi";
  expect(open.oldestStartMs()).toBe(1000);
  expect(open.claims("/rec/2025-01-02/03-04-05.avi")).toBe(true);
});
