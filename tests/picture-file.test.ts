import { expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PictureSaver, pictureFileName } from "../lib/display/picture-file.ts";
import { cv } from "../lib/native/cv.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const tempDir = tempDirs("lancam-picture-");

test("a saved picture goes into the folder (made when missing) whole, and the log says where and its size", async () => {
  const out = join(tempDir(), "recordings");
  const log = memoryLogger();
  const jpeg = cv().encodeJpeg(new Uint8Array(64 * 48 * 3).fill(90), 64, 48, 80);
  const at = Date.UTC(2026, 11, 7, 9, 0, 0) * 1000;
  await new PictureSaver(out, log).save({ jpeg, seq: 12, capturedAt: at });
  const path = join(out, pictureFileName(at, 12));
  expect(readdirSync(out)).toEqual([pictureFileName(at, 12)]); // no partial file left beside it
  expect(new Uint8Array(readFileSync(path))).toEqual(new Uint8Array(jpeg));
  expect(log.lines).toEqual([expect.stringContaining(`INFO [test] picture saved path=${path} size=64x48 frame=12`)]);
});

test("s before any picture, s again while one is being written, and a folder that cannot be made: one line each, nothing thrown", async () => {
  const dir = tempDir();
  const log = memoryLogger();
  const saver = new PictureSaver(join(dir, "out"), log);
  await saver.save(null);
  const picture = { jpeg: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), seq: 1, capturedAt: 0 };
  const first = saver.save(picture);
  await saver.save({ ...picture, seq: 2 });
  await first;
  const blocked = join(dir, "file");
  writeFileSync(blocked, "not a folder");
  await new PictureSaver(join(blocked, "out"), log).save(picture);
  expect(log.lines.map((l) => l.replace(/^\S+ /, "").replace(/ path=\S+/, " path=P").replace(/ error=.*/, " error=E"))).toEqual([
    "INFO [test] no picture to save yet",
    "INFO [test] still saving the previous picture; this one is not saved frame=2",
    "INFO [test] picture saved path=P frame=1",
    `ERROR [test] cannot save the picture dir=${join(blocked, "out")} error=E`,
  ]);
});
