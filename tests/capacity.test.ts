import { expect, test } from "bun:test";
import { Capacity } from "../lib/send/capacity.ts";

test("one count of viewers of every kind: per address, then in all; a replacement takes the place it frees", () => {
  const c = new Capacity({ maxClients: 3, maxPerHost: 2 });
  c.add("udp:1", "10.0.0.1");
  c.add("classic:2", "10.0.0.1");
  expect(c.check("10.0.0.1")).toEqual({ reason: "per-host", max: 2, text: "too many viewers from 10.0.0.1: at most 2 per address" });
  // Replacing one of its own viewers needs no new place.
  expect(c.check("10.0.0.1", "classic:2")).toBeNull();
  // Replacing another address's viewer frees a place in all, not at this address.
  expect(c.check("10.0.0.1", "other:9")).not.toBeNull();
  c.add("other:3", "10.0.0.2");
  expect(c.check("10.0.0.3")).toEqual({ reason: "full", max: 3, text: "server full: 3 viewers already connected" });
  expect(c.check("10.0.0.3", "other:3")).toBeNull();
  expect(() => c.add("udp:1", "10.0.0.4")).toThrow(/twice/);
  c.remove("udp:1");
  c.remove("udp:1");
  expect([c.size, c.at("10.0.0.1"), c.at("10.0.0.2")]).toEqual([2, 1, 1]);
  expect(c.check("10.0.0.1")).toBeNull();
});
