// Child process for tests/window.test.ts. Window code runs here, not in the test
// runner, because a broken display can take the whole process down.
//
//   bun cv-window-child.ts show OUT_DIR   open a window, show frame FRAME_NUMBER,
//                                         screenshot the root window to OUT_DIR/shot.jpg
//   bun cv-window-child.ts probe          what happens on this DISPLAY without a server
//
// Prints one JSON line with what it saw.
import { join } from "node:path";
import { cv, renderTestFrame } from "../../lib/native/cv.ts";
import { ViewerWindow, displayAvailable } from "../../lib/display/viewer-window.ts";

export const FRAME_NUMBER = 4242;
export const FRAME_SIZE = { width: 640, height: 360 };
const POLL_MS = 50;
const MAX_ATTEMPTS = 60;

function variance(bgr: Uint8Array): number {
  let sum = 0;
  let sq = 0;
  for (const v of bgr) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / bgr.length;
  return sq / bgr.length - mean * mean;
}

async function show(outDir: string): Promise<void> {
  const shot = join(outDir, "shot.jpg");
  using win = new ViewerWindow().open("lancam window test");
  const jpeg = await renderTestFrame(FRAME_SIZE.width, FRAME_SIZE.height, FRAME_NUMBER, `#${FRAME_NUMBER}`, 90);
  const shown = await win.showAsync(jpeg);
  const badShown = await win.showAsync(new Uint8Array([1, 2, 3]));
  const t0 = performance.now();
  const key = win.pollKey(POLL_MS);
  const keyMs = performance.now() - t0;
  // Wait for the condition (the frame is on screen), not for a fixed time.
  let attempts = 0;
  let shotVariance = 0;
  while (attempts < MAX_ATTEMPTS) {
    attempts++;
    win.pollKey(POLL_MS);
    const p = Bun.spawnSync(["import", "-window", "root", "-quality", "90", shot]);
    if (p.exitCode !== 0) throw new Error(`import failed: ${p.stderr.toString()}`);
    shotVariance = variance(cv().decodeJpeg(await Bun.file(shot).bytes()).bgr);
    if (shotVariance > 100) break;
  }
  console.log(JSON.stringify({ available: displayAvailable(), shown, badShown, badFrames: win.badFrames, key, keyMs, attempts, shotVariance }));
}

function probe(): void {
  const available = displayAvailable();
  let openError = "";
  try {
    new ViewerWindow().open("lancam probe");
  } catch (err) {
    openError = (err as Error).message;
  }
  // Straight to the addon: it must refuse too, rather than let Qt abort().
  let showError = "";
  try {
    cv().showDecoded("lancam probe");
  } catch (err) {
    showError = (err as Error).message;
  }
  console.log(JSON.stringify({ available, openError, showError }));
}

if (import.meta.main) {
  const [mode, outDir] = process.argv.slice(2);
  if (mode === "show" && outDir) await show(outDir);
  else if (mode === "probe") probe();
  else throw new Error("usage: cv-window-child.ts show OUT_DIR | probe");
}
