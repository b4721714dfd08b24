// The page plays the camera's sound in Chromium: the speaker button appears for a camera
// with audio, a click starts the <audio> element on /audio.ogg, its time advances, and it
// stays near live. HttpView is driven directly: a picture that flashes white at each whole
// second of capture time and real Opus packets that beep then, both paced in real time, so
// the page's sound can be measured against its picture.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { DEFAULT_AUDIO_FORMAT } from "../lib/wire/audio-packet.ts";
import { HttpView } from "../lib/http/http-view.ts";
import { tokenAuth } from "../lib/http/token-auth.ts";
import { resolveFfmpeg } from "../lib/media/ffmpeg.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { fakeServerState } from "./helpers/fake-view-state.ts";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { opusPackets } from "./helpers/opus-packets.ts";
import { until } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  // The test clicks the button as a user would; this only spares the measuring AudioContext a gesture of its own.
  "--autoplay-policy=no-user-gesture-required",
];
const W = 320;
const H = 240;
const FPS = 30;
const SECONDS = 40;
const tempDir = tempDirs("lancam-audio-browser-");

/** One JPEG of a plain colour. */
async function plainJpeg(colour: string): Promise<Uint8Array> {
  const p = Bun.spawn([resolveFfmpeg().path, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", `color=c=${colour}:s=${W}x${H}`, "-frames:v", "1", "-f", "mjpeg", "pipe:1"], { stdout: "pipe", stderr: "pipe" });
  const bytes = new Uint8Array(await new Response(p.stdout).arrayBuffer());
  if ((await p.exited) !== 0) throw new Error(await new Response(p.stderr).text());
  return bytes;
}

// In the page: when the picture turns white and when the sound gets loud, on the wall clock
// (the page and this test share the machine's clock). The sound is taken where the <audio>
// element hands it on (an AnalyserNode), plus the output's own latency as the browser states it.
const MEASURE = `(() => {
  const audio = document.getElementById("audio");
  const img = document.getElementById("live");
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 256;
  ctx.createMediaElementSource(audio).connect(analyser);
  analyser.connect(ctx.destination);
  const samples = new Float32Array(analyser.fftSize);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 8;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const m = window.__measure = { flashes: [], beeps: [], leads: [], outputLatencyMs: 0 };
  let loud = false, quietSince = 0, white = false;
  const wall = () => performance.timeOrigin + performance.now();
  setInterval(() => {
    const now = wall();
    m.outputLatencyMs = ((ctx.baseLatency || 0) + (ctx.outputLatency || 0)) * 1000;
    analyser.getFloatTimeDomainData(samples);
    let sq = 0;
    for (const s of samples) sq += s * s;
    const isLoud = Math.sqrt(sq / samples.length) > 0.05;
    if (isLoud && !loud && now - quietSince > 300) m.beeps.push(now + m.outputLatencyMs);
    if (!isLoud && loud) quietSince = now;
    loud = isLoud;
    if (img.naturalWidth > 0) {
      g.drawImage(img, 0, 0, 8, 8);
      const d = g.getImageData(0, 0, 8, 8).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += d[i];
      const isWhite = sum / (d.length / 4) > 200;
      if (isWhite && !white) m.flashes.push(now);
      white = isWhite;
    }
    const b = audio.buffered;
    if (b.length) m.leads.push(b.end(b.length - 1) - audio.currentTime);
  }, 4);
})()`;

interface Measure { flashes: number[]; beeps: number[]; leads: number[]; outputLatencyMs: number }

/** Each event's delay after the whole second of capture time it marks, ms (delays under a second). */
function delaysMs(wallMs: number[], offsetMs = 0): number[] {
  return wallMs.map((t) => ((t - offsetMs) % 1000 + 1000) % 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

test("the speaker button plays the camera's sound near live, and the page's sound keeps to its picture", async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run bash scripts/setup.sh --test (it installs Debian's chromium)`);
  const [dark, white] = [await plainJpeg("0x202020"), await plainJpeg("white")];
  // The sound's capture clock starts at a whole second, so its beeps fall on whole seconds.
  const start = (Math.floor(nowMicros() / 1e6) + 2) * 1e6;
  const packets = await opusPackets({ seconds: SECONDS, startMicros: start });
  const log = memoryLogger("http");
  await using view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log, auth: tokenAuth("s3cret"),
    state: fakeServerState({ width: W, height: H, fps: FPS, latencyP50Ms: 10 }), audio: [DEFAULT_AUDIO_FORMAT],
  });
  // Fed as a camera and a microphone would: each frame when taken, each packet once its 20 ms are over.
  let seq = 0;
  let lastSecond = -1;
  const flashes: number[] = [];
  const video = setInterval(() => {
    const capturedAt = nowMicros();
    const second = Math.floor(capturedAt / 1e6);
    const flash = second !== lastSecond && lastSecond !== -1;
    lastSecond = second;
    if (flash) flashes.push(capturedAt);
    view.push({ seq: seq++, capturedAt, width: W, height: H, jpeg: flash ? white : dark });
  }, 1000 / FPS);
  let next = 0;
  const audio = setInterval(() => {
    const now = nowMicros();
    while (next < packets.length && packets[next]!.capturedAt + 20_000 <= now) view.pushAudio(packets[next++]!, 0);
  }, 5);
  const context = await chromium.launchPersistentContext(tempDir(), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1024, height: 700 } });
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${view.port}/?token=s3cret`);
    await page.waitForFunction("document.getElementById('live').naturalWidth > 0", null, { timeout: 15_000 });
    // The button shows once /state says the camera has sound.
    await page.locator("#speaker").waitFor({ state: "visible", timeout: 15_000 });
    expect(await page.evaluate("document.getElementById('audio').paused")).toBe(true);
    await page.click("#speaker");
    expect(await page.getAttribute("#speaker", "aria-pressed")).toBe("true");
    await page.waitForFunction("document.getElementById('audio').currentTime > 0.5", null, { timeout: 20_000 }).catch(async (e) => {
      const a = await page.evaluate("(() => { const a = document.getElementById('audio'); return { t: a.currentTime, rs: a.readyState, ns: a.networkState, err: a.error && a.error.message, paused: a.paused, status: document.getElementById('sound-status').textContent, src: a.src }; })()");
      throw new Error(`${(e as Error).message}: ${JSON.stringify(a)} ${JSON.stringify(view.state().counters.audio)}`);
    });
    await page.evaluate(MEASURE);
    const t1 = (await page.evaluate("document.getElementById('audio').currentTime")) as number;
    await until(async () => ((await page.evaluate("document.getElementById('audio').currentTime")) as number) > t1 + 1, 15_000, "the sound to play on");
    expect(await page.evaluate("document.getElementById('audio').paused")).toBe(false);
    expect(view.state().counters.audio!.listeners).toBe(1);
    // The page catches up with the live edge after the start (Chromium fills a buffer before it plays).
    await until(async () => {
      const m = (await page.evaluate("window.__measure")) as Measure;
      return m.leads.length > 500 && Math.max(...m.leads.slice(-500)) < 0.7;
    }, 30_000, "the sound to come near live");
    await page.evaluate("(() => { const m = window.__measure; m.beeps = []; m.flashes = []; m.leads = []; })()");
    // Long enough for several beeps and flashes.
    await until(async () => {
      const m = (await page.evaluate("window.__measure")) as Measure;
      return m.beeps.length >= 6 && m.flashes.length >= 6;
    }, 30_000, "six beeps and six flashes on the page");
    const m = (await page.evaluate("window.__measure")) as Measure;
    // The delays are measured, not asserted (how far ahead Chromium buffers moves with the
    // machine's load: docs/benchmarks.md). Each beep is paired with the whole second just
    // before it, which holds only while the sound heard is less than a second old.
    const leadMs = Math.max(...m.leads) * 1000;
    if (leadMs < 1000) {
      const audioMs = median(delaysMs(m.beeps));
      const flashOffsetMs = median(flashes.map((f) => (f % 1e6) / 1000));
      const pictureMs = median(delaysMs(m.flashes, flashOffsetMs));
      console.log(`page delays from capture: sound ${audioMs.toFixed(0)} ms (output latency ${m.outputLatencyMs.toFixed(0)} ms included), picture ${pictureMs.toFixed(0)} ms; sound after picture ${(audioMs - pictureMs).toFixed(0)} ms; <audio> held ahead at most ${leadMs.toFixed(0)} ms`);
    } else {
      console.log(`page delays not measured this run: <audio> held ahead up to ${leadMs.toFixed(0)} ms, so a beep cannot be told from the one a second before`);
    }
    // A second click stops the sound and lets its connection go.
    await page.click("#speaker");
    expect(await page.evaluate("document.getElementById('audio').paused")).toBe(true);
    await until(() => view.state().counters.audio!.listeners === 0, 10_000, "the page's listener to leave");
    expect(errors).toEqual([]);
  } finally {
    await context.close();
    clearInterval(video);
    clearInterval(audio);
  }
}, 120_000);

test("no speaker button for a camera without sound", async () => {
  await using view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log: memoryLogger("http"), state: fakeServerState({ width: W, height: H, fps: FPS, latencyP50Ms: 10 }),
  });
  const context = await chromium.launchPersistentContext(tempDir(), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await context.newPage();
    // No frames come: the picture's stream never "loads", the page's DOM does.
    await page.goto(`http://127.0.0.1:${view.port}/`, { waitUntil: "domcontentloaded" });
    // Once the figures are in, the page has decided.
    await page.waitForFunction("document.getElementById('uptime').textContent !== '…'", null, { timeout: 15_000 });
    expect(await page.locator("#speaker").isHidden()).toBe(true);
  } finally {
    await context.close();
  }
}, 60_000);
