import pkg from "../../package.json" with { type: "json" };

/** lancam's own version, from package.json (embedded by `bun build --compile`). */
export const LANCAM_VERSION: string = pkg.version;

/** The lines `--version` prints: lancam, Bun, OpenCV and the ffmpeg that would be used. */
export async function versionReport(program: string): Promise<string> {
  const lines = [`${program} ${LANCAM_VERSION}`, `bun ${Bun.version}`];
  try {
    const { cv } = await import("../native/cv.ts");
    lines.push(`opencv ${cv().opencvVersion}`);
  } catch (e) {
    lines.push(`opencv not loadable: ${(e as Error).message}`);
  }
  try {
    const { resolveFfmpeg } = await import("../media/ffmpeg.ts");
    const ff = resolveFfmpeg();
    lines.push(`ffmpeg ${ff.path} (from ${ff.origin})`);
  } catch (e) {
    lines.push((e as Error).message);
  }
  return lines.join("\n");
}
