import { resolveFfmpeg } from "../../lib/media/ffmpeg.ts";

/**
 * Generates `count` distinct JPEG frames at `width`x`height` with ffmpeg's test source, so tests
 * need nothing but ffmpeg. Frames differ (the pattern moves and a counter ticks).
 */
export async function jpegFrames(count: number, width: number, height: number, rate = 30): Promise<Uint8Array[]> {
  const ffmpeg = resolveFfmpeg().path;
  const proc = Bun.spawn(
    [
      ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
      "-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=${rate}`,
      "-frames:v", String(count), "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "5", "pipe:1",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [bytes, stderr, code] = await Promise.all([
    new Response(proc.stdout).bytes(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`ffmpeg could not generate test frames (exit ${code}): ${stderr.trim()}`);
  const frames = splitJpegs(bytes);
  if (frames.length !== count) throw new Error(`expected ${count} JPEG frames from ffmpeg, got ${frames.length}`);
  return frames;
}

/**
 * Splits concatenated baseline JPEGs at SOI (FF D8) / EOI (FF D9). Inside entropy-coded data a
 * 0xFF byte is always followed by 00 or a restart marker, so FF D9 only occurs as a real EOI.
 * Marker segments (which may hold any bytes) are skipped by their length.
 */
export function splitJpegs(bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let i = 0;
  while (i + 1 < bytes.length) {
    if (bytes[i] !== 0xff || bytes[i + 1] !== 0xd8) throw new Error(`no JPEG start (FF D8) at byte ${i}`);
    const start = i;
    i += 2;
    // Header: marker segments up to and including SOS.
    for (;;) {
      if (i + 4 > bytes.length || bytes[i] !== 0xff) throw new Error(`bad JPEG marker at byte ${i}`);
      const marker = bytes[i + 1]!;
      const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
      i += 2 + length;
      if (marker === 0xda) break;
    }
    // Entropy-coded data until EOI.
    while (i + 1 < bytes.length && !(bytes[i] === 0xff && bytes[i + 1] === 0xd9)) i++;
    if (i + 1 >= bytes.length) throw new Error(`JPEG starting at byte ${start} has no end (FF D9)`);
    i += 2;
    frames.push(bytes.slice(start, i));
  }
  return frames;
}
