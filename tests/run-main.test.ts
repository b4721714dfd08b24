import { describe, expect, test } from "bun:test";
import { UsageError } from "../lib/app/cli.ts";
import { reportFailure, StopSignal } from "../lib/app/run-main.ts";
import { CaptureError } from "../lib/capture/capture.ts";
import { UserError } from "../lib/errors/user-error.ts";
import { HttpStartError } from "../lib/http/http-view.ts";
import { ReadersFullError } from "../lib/http/mjpeg-readers.ts";
import { LogFileError } from "../lib/log/file-sink.ts";
import { FfmpegNotFoundError } from "../lib/media/ffmpeg.ts";
import { ProbeError } from "../lib/media/ffprobe.ts";
import { MkvEncodeError } from "../lib/mux/mkv-stream.ts";
import { TsSyncError } from "../lib/mux/mpegts.ts";
import { CvLoadError } from "../lib/native/cv.ts";
import { TokenError } from "../lib/net/token.ts";
import { PublishCodecError } from "../lib/publish/publish-process.ts";
import { PublishUrlError } from "../lib/publish/publish-url.ts";
import { ConnectError } from "../lib/receive/handshake.ts";
import { RecordError } from "../lib/record/record-dir.ts";
import { StartError } from "../lib/send/stream-server.ts";
import { DecodeError } from "../lib/wire/decode-error.ts";

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

describe("what main throws", () => {
  /** What reportFailure writes and returns for `thrown`. */
  function report(thrown: unknown): { code: number; text: string } {
    let text = "";
    const code = reportFailure("lancam-test", "test.ts", thrown, (t) => (text += t));
    return { code, text };
  }

  test("any UserError, even one no list has heard of, is one line and exit 1", () => {
    class NewKindOfProblem extends UserError {
      override name = "NewKindOfProblem";
    }
    expect(report(new NewKindOfProblem("the disk is full; free some space"))).toEqual({ code: 1, text: "lancam-test: error: the disk is full; free some space\n" });
  });

  test("a UsageError keeps its pointer to --help and exit 2", () => {
    expect(report(new UsageError("unknown option --x"))).toEqual({ code: 2, text: "lancam-test: unknown option --x\nRun `bun test.ts --help` for usage.\n" });
  });

  test("anything else is a bug: its stack is printed, exit 1", () => {
    const bug = report(new TypeError("cannot read properties of undefined"));
    expect(bug.code).toBe(1);
    expect(bug.text).toStartWith("lancam-test: unexpected error: TypeError: cannot read properties of undefined\n");
    expect(bug.text).toMatch(/\n\s+at /);
    // An error named like a user error is still a bug unless it is one.
    const named = Object.assign(new Error("looks familiar"), { name: "RecordError" });
    expect(report(named).text).toStartWith("lancam-test: unexpected error: RecordError: looks familiar\n");
    const thrownString = report("a string");
    expect(thrownString.code).toBe(1);
    expect(thrownString.text).toStartWith("lancam-test: unexpected error: Error: a string\n");
  });

  test("every error whose message is written for the user is a UserError", () => {
    const userErrors = [
      new UsageError("m"), new ConnectError("m"), new CaptureError("m"), new RecordError("m"), new CvLoadError("m"), new FfmpegNotFoundError("m"),
      new StartError("m"), new LogFileError("m"), new HttpStartError("m"), new TokenError("m"), new PublishUrlError("m"), new PublishCodecError("m"),
    ];
    for (const e of userErrors) expect([e.name, e instanceof UserError]).toEqual([e.name, true]);
    // Conditions the program handles itself, and bugs, are not.
    for (const e of [new DecodeError("bad-magic", "m"), new ReadersFullError("m"), new MkvEncodeError("m"), new TsSyncError("m"), new ProbeError("m")]) {
      expect([e.name, e instanceof UserError]).toEqual([e.name, false]);
    }
  });
});
