// The --overlay template: checked once, filled in per frame with the capture time.
import { describe, expect, test } from "bun:test";
import { formatOverlay, MAX_OVERLAY_CHARS, overlayTextProblem } from "../lib/capture/overlay-text.ts";
import { overlaySettings, parseOverlayFlag, parseOverlayPosFlag } from "../lib/app/server-flags.ts";

// 2026-01-02 03:04:05.678 local time, whatever TZ the machine has.
const AT = new Date(2026, 0, 2, 3, 4, 5, 678).getTime() * 1000 + 123;
const FIELDS = { camera: "board", frame: 42, host: "lab-pc" };

describe("formatOverlay", () => {
  test("time codes give the capture time's local date and time, to the second", () => {
    expect(formatOverlay("%Y-%m-%d %H:%M:%S", FIELDS, AT)).toBe("2026-01-02 03:04:05");
    expect(formatOverlay("%F %T", FIELDS, AT)).toBe("2026-01-02 03:04:05");
    // The second ticks over at the second, not earlier.
    expect(formatOverlay("%S", FIELDS, AT + 321_000)).toBe("05");
    expect(formatOverlay("%S", FIELDS, AT + 322_000)).toBe("06");
  });

  test("fields and %% are filled in; a % or brace inside a field stays as it is", () => {
    expect(formatOverlay("{camera} #{frame} on {host}: 100%%", FIELDS, AT)).toBe("board #42 on lab-pc: 100%");
    expect(formatOverlay("{host} {camera}", { camera: "{host}", frame: 0, host: "%Y" }, AT)).toBe("%Y {host}");
    expect(formatOverlay("%%Y", FIELDS, AT)).toBe("%Y");
  });

  test("a long field is cut, so the line stays bounded", () => {
    expect(formatOverlay("{host}", { ...FIELDS, host: "h".repeat(500) }, AT)).toBe("h".repeat(64));
  });
});

describe("overlayTextProblem", () => {
  test("accepts what it can fill in", () => {
    expect(overlayTextProblem("{camera} %F %T #{frame} {host} 100%%")).toBeNull();
    expect(overlayTextProblem("x".repeat(MAX_OVERLAY_CHARS))).toBeNull();
  });

  test("names what is wrong", () => {
    expect(overlayTextProblem("")).toBe("expected some text");
    expect(overlayTextProblem("x".repeat(201))).toBe("201 characters, expected at most 200");
    expect(overlayTextProblem("%q")).toBe("%q is not a time code it knows: %Y %m %d %H %M %S %F %T, or %% for a percent sign");
    expect(overlayTextProblem("50%")).toBe("a lone % at the end: write %% for a percent sign");
    expect(overlayTextProblem("{name}")).toBe("{name} is not a field it knows: {camera}, {frame} or {host}");
    expect(overlayTextProblem("a\nb")).toBe('character "\\n" at 2: expected printable ASCII (the font has nothing else)');
    expect(overlayTextProblem("Zürich")).toBe('character "ü" at 2: expected printable ASCII (the font has nothing else)');
  });
});

describe("--overlay and --overlay-pos", () => {
  test("exact errors; overlong text is not echoed back", () => {
    expect(() => parseOverlayPosFlag("middle")).toThrow("invalid --overlay-pos=middle: expected top-left, top-right, bottom-left or bottom-right");
    expect(() => parseOverlayFlag("x".repeat(250))).toThrow(/^invalid --overlay: 250 characters, expected at most 200$/);
    expect(() => parseOverlayFlag("%Q")).toThrow("invalid --overlay=%Q: %Q is not a time code it knows");
    expect(parseOverlayPosFlag("bottom-right")).toBe("bottom-right");
  });

  test("the capture gets the camera's name and the host name, or nothing without --overlay", () => {
    expect(overlaySettings({ overlay: null, overlayPos: "top-left" }, "0")).toBeUndefined();
    expect(overlaySettings({ overlay: "%T", overlayPos: "top-right" }, "board", "lab-pc")).toEqual({ template: "%T", position: "top-right", camera: "board", host: "lab-pc" });
  });
});
