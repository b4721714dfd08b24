// With --audio test the test pattern flashes white at each whole second of capture time,
// where the test tone beeps: the first frame at or after the second, and only it.
import { describe, expect, test } from "bun:test";
import { openSource } from "../lib/capture/capture.ts";
import { firstOfSecond, whitenBelow } from "../lib/capture/second-flash.ts";
import { cv } from "../lib/native/cv.ts";
import { readFrameNumber } from "./helpers/test-pattern.ts";
import type { Frame } from "../lib/wire/frame.ts";

describe("firstOfSecond", () => {
  test("the first frame at or after each whole second", () => {
    expect(firstOfSecond(999_999, 1_000_000)).toBe(true);
    expect(firstOfSecond(1_000_000, 1_033_000)).toBe(false);
    expect(firstOfSecond(1_966_000, 2_010_000)).toBe(true);
    expect(firstOfSecond(1_966_000, 3_500_000)).toBe(true);
    // The very first frame only when it falls on the second.
    expect(firstOfSecond(null, 5_000_000)).toBe(true);
    expect(firstOfSecond(null, 5_000_001)).toBe(false);
  });

  test("whitenBelow keeps the first rows", () => {
    const bgr = new Uint8Array(4 * 3 * 3);
    whitenBelow(bgr, 4, 3, 1);
    expect([...bgr.subarray(0, 12)].every((v) => v === 0)).toBe(true);
    expect([...bgr.subarray(12)].every((v) => v === 255)).toBe(true);
  });
});

/** Mean grey level, 0..255, of a JPEG. */
function brightness(jpeg: Uint8Array): number {
  const t = cv().jpegThumbnail(jpeg, 8)!;
  let sum = 0;
  for (const v of t.grey) sum += v;
  return sum / t.grey.length;
}

describe("--source test with flashEachSecond", () => {
  test("white frames exactly at the first frame of each whole second; the frame number still reads", async () => {
    const frames: Frame[] = [];
    {
      await using source = await openSource({ kind: "test" }, { quality: 80, size: { width: 320, height: 240 }, fps: 20, flashEachSecond: true });
      while (frames.length < 2 || frames.at(-1)!.capturedAt - frames[0]!.capturedAt < 2.2e6) {
        const f = await source.next();
        if (!f) throw new Error("the test pattern ended");
        frames.push(f);
      }
    }
    let flashes = 0;
    for (const [i, f] of frames.entries()) {
      const white = brightness(f.jpeg) > 200;
      const due = firstOfSecond(i === 0 ? null : frames[i - 1]!.capturedAt, f.capturedAt);
      expect({ i, white }).toEqual({ i, white: due });
      if (white) flashes++;
      const picture = cv().decodeJpeg(f.jpeg);
      expect(readFrameNumber(picture.bgr, picture.width, picture.height)).toBe(f.seq);
    }
    expect(flashes).toBeGreaterThanOrEqual(2);
  }, 60_000);

  test("without it, no frame is white", async () => {
    await using source = await openSource({ kind: "test" }, { quality: 80, size: { width: 320, height: 240 }, fps: 20 });
    const first = (await source.next())!;
    let last = first;
    while (last.capturedAt - first.capturedAt < 1.2e6) {
      last = (await source.next())!;
      expect(brightness(last.jpeg)).toBeLessThan(200);
    }
  }, 60_000);
});
