import { expect, test } from "bun:test";
import { DEFAULT_TIMINGS, PublishLink } from "../lib/publish/publish-link.ts";

const FREE = null; // ffmpeg's input pipe has room

/** A link that has just started ffmpeg at `now`. */
function connecting(now = 0): PublishLink {
  const link = new PublishLink({}, now);
  expect(link.offer(now, FREE)).toEqual({ do: "start" });
  link.started(now);
  return link;
}

test("the first frame starts ffmpeg; frames go to it while its pipe has room, and are dropped as slow while it is full", () => {
  const link = new PublishLink({}, 0);
  expect(link.state).toBe("idle");
  expect(link.offer(0, FREE)).toEqual({ do: "start" });
  link.started(0);
  expect(link.state).toBe("connecting");
  expect(link.offer(33, FREE)).toEqual({ do: "send" });
  expect(link.offer(66, 40)).toEqual({ do: "drop", why: "slow" });
  expect(link.publishing(100)).toBe(true);
  expect(link.publishing(150)).toBe(false); // already known
  expect(link.state).toBe("publishing");
  expect(link.since).toBe(100);
  expect(link.offer(133, FREE)).toEqual({ do: "send" });
  expect(link.offer(166, 150)).toEqual({ do: "drop", why: "slow" });
  expect([link.starts, link.reconnects, link.failures]).toEqual([1, 0, 0]);
});

test("failures in a row wait 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s; frames meanwhile are dropped as offline", () => {
  const link = connecting(0);
  let now = 0;
  const waits: number[] = [];
  for (let i = 0; i < 7; i++) {
    now += 100; // refused quickly, never published
    const ended = link.ended(now);
    expect(ended.failure).toBe(true);
    expect(ended.was).toBe("connecting");
    expect(link.state).toBe("backoff");
    expect(link.retryIn(now)).toBe(ended.retryInMs);
    waits.push(ended.retryInMs);
    expect(link.offer(now + ended.retryInMs - 1, FREE)).toEqual({ do: "drop", why: "offline" });
    expect(link.retryIn(now + ended.retryInMs - 1)).toBe(1);
    now += ended.retryInMs;
    expect(link.offer(now, FREE)).toEqual({ do: "start" });
    link.started(now);
  }
  expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  expect([link.starts, link.reconnects, link.failures]).toEqual([8, 7, 7]);
  expect(link.retryIn(now)).toBeNull();
});

test("a connection that published for stableMs starts the waits again from 0.5 s; a short one does not", () => {
  const link = connecting(0);
  expect(link.ended(10).retryInMs).toBe(500);
  link.offer(510, FREE);
  link.started(510);
  expect(link.ended(520).retryInMs).toBe(1000);
  link.offer(1520, FREE);
  link.started(1520);
  link.publishing(1600);
  // Published, but only briefly: the server may be dropping every connection at once.
  expect(link.ended(1600 + DEFAULT_TIMINGS.stableMs - 1)).toEqual({ failure: true, retryInMs: 2000, was: "publishing" });
  let now = 1600 + DEFAULT_TIMINGS.stableMs - 1 + 2000;
  link.offer(now, FREE);
  link.started(now);
  link.publishing(now);
  now += DEFAULT_TIMINGS.stableMs;
  expect(link.ended(now)).toEqual({ failure: true, retryInMs: 500, was: "publishing" });
});

test("an attempt that neither publishes nor fails within connectTimeoutMs is stopped once, then counted as a failure", () => {
  const link = connecting(1000);
  const limit = 1000 + DEFAULT_TIMINGS.connectTimeoutMs;
  expect(link.offer(limit - 1, 1500)).toEqual({ do: "drop", why: "slow" });
  expect(link.offer(limit, 1500)).toEqual({ do: "stop", why: "connect timeout" });
  expect(link.ending).toBe(true);
  // Until ffmpeg has exited: nothing more is asked of it, and no late "publishing" counts.
  expect(link.offer(limit + 10, FREE)).toEqual({ do: "drop", why: "offline" });
  expect(link.publishing(limit + 20)).toBe(false);
  expect(link.ended(limit + 30)).toEqual({ failure: true, retryInMs: 500, was: "connecting" });
  expect(link.ending).toBe(false);
  expect(link.failures).toBe(1);
});

test("a publishing ffmpeg whose pipe stays full for stallMs is stopped as stalled", () => {
  const link = connecting(0);
  link.publishing(200);
  expect(link.offer(5000, 1000)).toEqual({ do: "drop", why: "slow" });
  expect(link.offer(1000 + DEFAULT_TIMINGS.stallMs - 1, 1000)).toEqual({ do: "drop", why: "slow" });
  expect(link.offer(1000 + DEFAULT_TIMINGS.stallMs, 1000)).toEqual({ do: "stop", why: "stalled" });
  expect(link.offer(1000 + DEFAULT_TIMINGS.stallMs + 1, 1000)).toEqual({ do: "drop", why: "offline" });
  expect(link.ended(7000)).toEqual({ failure: true, retryInMs: 500, was: "publishing" });
});

test("a restart (new frame size) is no failure: the next frame starts ffmpeg again at once", () => {
  const link = connecting(0);
  link.publishing(100);
  expect(link.restart()).toBe(true);
  expect(link.offer(133, FREE)).toEqual({ do: "drop", why: "offline" });
  expect(link.ended(140)).toEqual({ failure: false, retryInMs: 0, was: "publishing" });
  expect(link.state).toBe("idle");
  expect(link.offer(166, FREE)).toEqual({ do: "start" });
  link.started(166);
  expect([link.failures, link.reconnects]).toEqual([0, 1]);
  // Nothing to restart while nothing runs.
  link.ended(200);
  expect(link.state).toBe("backoff");
  expect(link.restart()).toBe(false);
});

test("after close every frame is dropped and an exit changes nothing", () => {
  const link = connecting(0);
  link.close(50);
  expect(link.state).toBe("closed");
  expect(link.offer(60, FREE)).toEqual({ do: "drop", why: "offline" });
  expect(link.ended(70)).toEqual({ failure: false, retryInMs: 0, was: "closed" });
  link.started(80);
  expect(link.state).toBe("closed");
});

test("timings are checked", () => {
  expect(() => new PublishLink({ firstRetryMs: 0 })).toThrow(RangeError);
  expect(() => new PublishLink({ firstRetryMs: 2000, maxRetryMs: 1000 })).toThrow("0 < firstRetryMs <= maxRetryMs");
  expect(() => new PublishLink({ stallMs: 0 })).toThrow(RangeError);
  expect(new PublishLink({ firstRetryMs: 100, maxRetryMs: 300 }).timings.connectTimeoutMs).toBe(DEFAULT_TIMINGS.connectTimeoutMs);
});
