import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLIENT_RECORD_CLI } from "../lib/app/client-flags.ts";
import { SERVER_RECORD_CLI } from "../lib/app/server-flags.ts";
import { errorText } from "../lib/errors/error-text.ts";
import { checkWritable } from "../lib/record/record-dir.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-errors-");

test("errorText: an Error's message, anything else as a string", () => {
  expect(errorText(new Error("disk full"))).toBe("disk full");
  expect(errorText(new RangeError("fps must be > 0"))).toBe("fps must be > 0");
  expect(errorText("plain words")).toBe("plain words");
  expect(errorText(42)).toBe("42");
  expect(errorText(undefined)).toBe("undefined");
  expect(errorText(null)).toBe("null");
});

test("recording advice is worded only in the flags the caller passes, and absent without them", () => {
  const blocker = join(tempDir(), "a-file");
  writeFileSync(blocker, "");
  const dir = join(blocker, "rec");
  const reason = `cannot record into ${dir}: a part of the path is a file, not a folder (ENOTDIR)`;
  expect(() => checkWritable(dir)).toThrow(new RegExp(`^${reason.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  expect(() => checkWritable(dir, CLIENT_RECORD_CLI)).toThrow(`${reason}; choose another --out or pass --no-record`);
  expect(() => checkWritable(dir, SERVER_RECORD_CLI)).toThrow(`${reason}; choose another --record or run without --record`);
});
