import { describe, expect, test } from "bun:test";
import { formatAge, MIN_STALE_MS, StreamStatus } from "../lib/display/stream-status.ts";
import { WindowOverlay } from "../lib/display/window-overlay.ts";
import { keyAction, windowKeysHelp } from "../lib/display/window-keys.ts";
import { pictureFileName } from "../lib/display/picture-file.ts";

describe("StreamStatus", () => {
  test("nothing is drawn while pictures come, nor before the first picture", () => {
    const s = new StreamStatus();
    expect(s.text(0)).toBe("");
    s.link("connected", 0);
    expect(s.text(5000)).toBe(""); // nothing shown yet: nothing to draw on
    for (let t = 5000; t <= 8000; t += 33) {
      s.picture(t);
      expect(s.text(t + 20)).toBe("");
    }
  });

  test("connected, nothing arriving: after the stale time the picture's age and 'no datagrams arriving'", () => {
    const s = new StreamStatus();
    s.link("connected", 0);
    s.picture(100);
    expect(s.text(100 + MIN_STALE_MS)).toBe("");
    expect(s.text(100 + MIN_STALE_MS + 1)).toBe("no datagrams arriving, picture 1.0 s old");
    expect(s.text(4300)).toBe("no datagrams arriving, picture 4.2 s old");
    // Datagrams again but no whole picture yet (a frame being repaired): the age alone.
    s.datagram(4400);
    expect(s.text(4500)).toBe("picture 4.4 s old");
    s.picture(4600);
    expect(s.text(4650)).toBe("");
  });

  test("reconnecting is said at once, with the age; after the welcome, silence counts from the welcome", () => {
    const s = new StreamStatus();
    s.link("connected", 0);
    s.picture(1000);
    s.link("reconnecting", 1200);
    expect(s.text(1300)).toBe("reconnecting, picture 0.3 s old");
    expect(s.text(65_000)).toBe("reconnecting, picture 1 min 4 s old");
    s.link("connected", 70_000);
    // Frames not here yet: the picture is old, but the link has not been silent for long.
    expect(s.text(70_500)).toBe("picture 1 min 9 s old");
    expect(s.text(71_001)).toBe("no datagrams arriving, picture 1 min 10 s old");
    s.picture(71_100);
    expect(s.text(71_100)).toBe("");
  });

  test("the camera's state, fed by one call, shows until the server says it is back", () => {
    const s = new StreamStatus();
    s.link("connected", 0);
    s.picture(0);
    s.camera("unavailable");
    expect(s.text(10)).toBe("camera unavailable, picture 0.0 s old");
    // Reconnecting says more than the camera does: the server may not even be there.
    s.link("reconnecting", 20);
    expect(s.problem(30)).toBe("reconnecting");
    s.link("connected", 40);
    expect(s.text(2500)).toBe("camera unavailable, picture 2.5 s old");
    s.camera("available");
    s.picture(2600);
    expect(s.text(2600)).toBe("");
  });

  test("a slow stream's picture is called old only after three of its intervals; nonsense rates are ignored", () => {
    const s = new StreamStatus();
    s.frameRate(0.5);
    expect(s.staleAfterMs).toBe(6000);
    s.frameRate(30);
    expect(s.staleAfterMs).toBe(MIN_STALE_MS);
    s.frameRate(0.001);
    expect(s.staleAfterMs).toBe(60_000);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      s.frameRate(bad);
      expect(s.staleAfterMs).toBe(60_000);
    }
    s.frameRate(1);
    s.link("connected", 0);
    s.picture(0);
    expect(s.text(2900)).toBe("");
    expect(s.text(3100)).toBe("no datagrams arriving, picture 3.1 s old");
  });

  test("ages read as seconds, minutes, hours", () => {
    expect([formatAge(0), formatAge(4249), formatAge(59_940), formatAge(60_000), formatAge(3_599_000), formatAge(7_500_000), formatAge(-5)]).toEqual([
      "0.0 s", "4.2 s", "59.9 s", "1 min 0 s", "59 min 59 s", "2 h 5 min", "0.0 s",
    ]);
  });
});

describe("WindowOverlay", () => {
  test("the info line shows only when toggled on, with the latest figures", () => {
    const o = new WindowOverlay();
    expect(o.text(0)).toEqual({ top: "", bottom: "" });
    o.toggleInfo();
    expect(o.text(0).bottom).toBe("waiting for the first second's figures");
    o.figures("640x360  15.0 fps");
    expect(o.text(0)).toEqual({ top: "", bottom: "640x360  15.0 fps" });
    o.toggleInfo();
    expect(o.text(0)).toEqual({ top: "", bottom: "" });
  });
});

describe("window keys", () => {
  test("f, i, s, q and ESC in either case; other keys do nothing", () => {
    const k = (c: string) => keyAction(c.charCodeAt(0));
    expect([k("f"), k("F"), k("i"), k("s"), k("S"), k("q"), k("Q"), keyAction(27)]).toEqual(["fullscreen", "fullscreen", "info", "save", "save", "quit", "quit", "quit"]);
    expect([k(" "), k("x"), keyAction(-1), keyAction(0x10ffff), keyAction(65361)]).toEqual([null, null, null, null, null]);
  });

  test("--help lists every key", () => {
    const help = windowKeysHelp();
    for (const row of ["  f       full screen", "  i       show or hide", "  s       save", "  q, ESC  say goodbye"]) expect(help).toContain(row);
  });
});

test("a saved picture is named by its capture time (local) and frame number", () => {
  const at = new Date(2026, 11, 7, 9, 5, 3, 250).getTime() * 1000;
  expect(pictureFileName(at, 1234)).toBe("2026-12-07_09-05-03_frame1234.jpg");
  expect(pictureFileName(at, -1)).toBe("2026-12-07_09-05-03_frame4294967295.jpg");
});
