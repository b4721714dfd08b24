import { expect, test } from "bun:test";
import { formatPicture, formatStatus, StatusLine } from "../lib/display/status-line.ts";

test("the status line shows fps, Mbit/s, loss and latency; a dash before any latency", () => {
  expect(formatStatus({ fps: 29.96, mbps: 10.24, lossPercent: 0.5, latencyP50Ms: 11.46 }, { size: "1280x720", recording: "3 segs" }))
    .toBe("1280x720  30.0 fps  10.2 Mbit/s  loss 0.5%  latency p50 11.5 ms  rec 3 segs");
  expect(formatStatus({ fps: 0, mbps: 0, lossPercent: 0, latencyP50Ms: null })).toBe("0.0 fps  0.0 Mbit/s  loss 0.0%  latency p50 -");
});

test("the status line says how frames come: via udp, or via tcp when UDP did not get through", () => {
  expect(formatStatus({ fps: 30, mbps: 10, lossPercent: 0, latencyP50Ms: 9 }, { transport: "tcp" })).toBe("30.0 fps  10.0 Mbit/s  loss 0.0%  latency p50 9.0 ms  via tcp");
  expect(formatStatus({ fps: 30, mbps: 10, lossPercent: 0, latencyP50Ms: 9 }, { transport: "udp", recording: "1 segs" })).toBe("30.0 fps  10.0 Mbit/s  loss 0.0%  latency p50 9.0 ms  via udp  rec 1 segs");
});

test("it rewrites one terminal line in place, and writes nothing when stderr is not a terminal", () => {
  const written: string[] = [];
  const fake = (isTTY: boolean) => ({ isTTY, columns: 20, write: (s: string) => written.push(s) }) as unknown as NodeJS.WriteStream;
  const tty = new StatusLine(fake(true));
  tty.show("a very long status line that does not fit");
  tty.clear();
  expect(written).toEqual(["\r\x1b[2Ka very long status ", "\r\x1b[2K"]);
  written.length = 0;
  const pipe = new StatusLine(fake(false));
  pipe.show("x");
  pipe.clear();
  expect(written).toEqual([]);
});

test("disposing it moves off a shown status line, so the shell prompt starts on a clean line", () => {
  const written: string[] = [];
  const fake = { isTTY: true, columns: 80, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
  {
    using status = new StatusLine(fake);
    status.show("30.0 fps");
  }
  expect(written).toEqual(["\r\x1b[2K30.0 fps", "\r\x1b[2K"]);
});

test("the picture names the layer and the server's rate once the server said it, the stream's size before", () => {
  const full = { width: 1280, height: 720 };
  expect(formatPicture(full, null)).toBe("1280x720");
  expect(formatPicture(full, { layer: 1, width: 640, height: 360, rateBytesPerS: 1_012_500 })).toBe("640x360 (layer 1, 8.1 Mbit/s)");
  expect(formatPicture(full, { layer: 0, width: 1280, height: 720, rateBytesPerS: 0 })).toBe("1280x720 (layer 0, not limited)");
});
