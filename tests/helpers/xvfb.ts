import { cv } from "../../lib/native/cv.ts";
import { spawnChild, type Child } from "./process.ts";

/** A private X server for window tests; DISPLAY is `display`. */
export interface Xvfb extends AsyncDisposable {
  display: string;
  child: Child;
}

/** Starts Xvfb on a free display number (it prints the number it chose). */
export async function startXvfb(width = 1024, height = 768): Promise<Xvfb> {
  const child = spawnChild(["Xvfb", "-displayfd", "1", "-screen", "0", `${width}x${height}x24`, "-nolisten", "tcp"]);
  const m = await child.waitFor(/^(\d+)\s*$/m, 10_000);
  return {
    display: `:${m[1]}`,
    child,
    async [Symbol.asyncDispose]() {
      await child[Symbol.asyncDispose]();
    },
  };
}

/** Standard deviation of the screen's grey levels (about 0 for a blank screen); saves the screenshot as JPEG. */
export async function screenVariation(display: string, saveAs: string): Promise<number> {
  const shot = Bun.spawn(["import", "-display", display, "-window", "root", "-quality", "90", saveAs], { stdout: "ignore", stderr: "pipe" });
  if ((await shot.exited) !== 0) throw new Error(`import failed: ${await new Response(shot.stderr).text()}`);
  const img = cv().decodeJpeg(new Uint8Array(await Bun.file(saveAs).arrayBuffer()));
  let sum = 0;
  let sq = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n * 3; i += 3) {
    const g = (img.bgr[i]! + img.bgr[i + 1]! + img.bgr[i + 2]!) / 3;
    sum += g;
    sq += g * g;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, sq / n - mean * mean));
}
