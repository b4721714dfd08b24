import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { errorText } from "../errors/error-text.ts";
import type { Logger } from "../log/format.ts";
import { readJpegSize } from "../wire/jpeg-header.ts";

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/**
 * The file name a saved picture gets: its capture time (local, like the recordings) and
 * frame number, `YYYY-MM-DD_HH-MM-SS_frameN.jpg`.
 */
export function pictureFileName(capturedAtMicros: number, frameNumber: number): string {
  const d = new Date(Math.floor(capturedAtMicros / 1000));
  const date = `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`;
  return `${date}_${time}_frame${frameNumber >>> 0}.jpg`;
}

/**
 * Writes `jpeg` into `dir` (made when missing) under pictureFileName, whole or not at all
 * (written beside it, then renamed); resolves to its path.
 */
export async function savePicture(dir: string, jpeg: Uint8Array, capturedAtMicros: number, frameNumber: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = pictureFileName(capturedAtMicros, frameNumber);
  const path = join(dir, name);
  const partial = join(dir, `.${name}.partial`);
  await writeFile(partial, jpeg);
  await rename(partial, path);
  return path;
}

/**
 * Saves the window's pictures one at a time: a key held down asks many times a second,
 * and a slow disk must not gather writes, so a request while one is being written is
 * dropped (and said). `log` gets where each went, or why not.
 */
export class PictureSaver {
  #busy = false;
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Saves `picture` (null: nothing shown yet); resolves once written or refused, never rejects. */
  async save(picture: { jpeg: Uint8Array; seq: number; capturedAt: number } | null): Promise<void> {
    if (!picture) {
      this.log.info("no picture to save yet");
      return;
    }
    if (this.#busy) {
      this.log.info("still saving the previous picture; this one is not saved", { frame: picture.seq });
      return;
    }
    this.#busy = true;
    try {
      const path = await savePicture(this.dir, picture.jpeg, picture.capturedAt, picture.seq);
      const size = readJpegSize(picture.jpeg);
      this.log.info("picture saved", { path, size: size ? `${size.width}x${size.height}` : undefined, frame: picture.seq });
    } catch (e) {
      this.log.error("cannot save the picture", { dir: this.dir, error: errorText(e) });
    } finally {
      this.#busy = false;
    }
  }
}
