import { expect, test } from "bun:test";
import { deliveryProblem, FrameSizes } from "../lib/receive/frame-sizes.ts";
import { WELCOME_PATH_REPORTS } from "../lib/wire/control.ts";

const layered = { width: 1280, height: 720, flags: WELCOME_PATH_REPORTS };
const plain = { width: 1280, height: 720, flags: 0 };

test("without path reports only the welcome's size is a frame's size, as before", () => {
  const s = new FrameSizes(plain);
  expect(s.accepts(1280, 720)).toBe(true);
  expect(s.accepts(640, 360)).toBe(false);
});

test("a layered session takes the automatic layers before their delivery message arrives, and nothing larger or of another shape", () => {
  const s = new FrameSizes(layered);
  expect(s.accepts(640, 360)).toBe(true);
  expect(s.accepts(320, 180)).toBe(true);
  expect(s.accepts(1920, 1080)).toBe(false);
  expect(s.accepts(640, 480)).toBe(false);
  expect(s.accepts(641, 360)).toBe(false); // odd side
  expect(s.accepts(14, 8)).toBe(false); // below 16
  // Odd ratios round each side down to even: 1366x768 gives 682x384 and 340x192.
  const odd = new FrameSizes({ width: 1366, height: 768, flags: WELCOME_PATH_REPORTS });
  expect(odd.accepts(682, 384)).toBe(true);
  expect(odd.accepts(340, 192)).toBe(true);
  expect(odd.accepts(682, 400)).toBe(false);
});

test("a layer of another ratio is taken once announced, and only in its session", () => {
  const s = new FrameSizes(layered);
  expect(s.accepts(640, 480)).toBe(false);
  s.announce({ width: 640, height: 480 });
  expect(s.accepts(640, 480)).toBe(true);
  expect(new FrameSizes(layered).accepts(640, 480)).toBe(false);
});

test("announced sizes are bounded: a server naming many keeps only the latest few", () => {
  const s = new FrameSizes(layered);
  for (let w = 100; w < 200; w += 2) s.announce({ width: w, height: 600 });
  expect(s.accepts(198, 600)).toBe(true);
  expect(s.accepts(100, 600)).toBe(false);
});

test("a delivery message is a protocol error without path reports, larger than the stream, or a layer 0 that is not the stream", () => {
  expect(deliveryProblem(plain, { layer: 1, width: 640, height: 360 })).toContain("did not announce path reports");
  expect(deliveryProblem(layered, { layer: 1, width: 1920, height: 360 })).toContain("larger than the stream's 1280x720");
  expect(deliveryProblem(layered, { layer: 0, width: 640, height: 360 })).toContain("layer 0 of 640x360 is not the stream's");
  expect(deliveryProblem(layered, { layer: 1, width: 640, height: 360 })).toBeNull();
  expect(deliveryProblem(layered, { layer: 0, width: 1280, height: 720 })).toBeNull();
});

test("the layer groups a welcome lists are sizes of the session, also without path reports; other sizes still are not", () => {
  const s = new FrameSizes({ ...plain, layerGroups: [{ address: "239.255.10.2", port: 9998, width: 640, height: 360, streamId: 2 }, { address: "239.255.10.3", port: 9998, width: 320, height: 200, streamId: 3 }] });
  expect(s.accepts(1280, 720)).toBe(true);
  expect(s.accepts(640, 360)).toBe(true);
  expect(s.accepts(320, 200)).toBe(true);
  expect(s.accepts(320, 180)).toBe(false);
});
