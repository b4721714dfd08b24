import { expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { memoryLogger } from "./helpers/memory-logger.ts";
import { HttpView } from "../lib/http/http-view.ts";
import { tokenAuth } from "../lib/http/token-auth.ts";
import { nowMicros } from "../lib/wire/frame.ts";
import { jpegFrames } from "./helpers/jpeg-frames.ts";
import { ROOT, until } from "./helpers/process.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";
import { fakeCamerasState, fakeServerState } from "./helpers/fake-view-state.ts";

// Debian's chromium (scripts/setup.sh --test installs it); playwright-core only drives it.
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const W = 640;
const H = 360;
const FPS = 30;
const tempDir = tempDirs("lancam-browser-");

const fakeServer = () => fakeServerState({ width: W, height: H, fps: FPS, latencyP50Ms: 11.6 });

async function launch(viewport: { width: number; height: number }): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run bash scripts/setup.sh --test (it installs Debian's chromium)`);
  // A fresh profile each time: nothing cached from an earlier run.
  return await chromium.launchPersistentContext(tempDir(), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport });
}

test("the page shows the moving picture and lists the UDP viewer and the browser itself, on a desktop and a phone", async () => {
  const frames = await jpegFrames(30, W, H);
  const log = memoryLogger("http");
  // With a token: the page must carry it from its own address to every request it makes.
  await using view = await HttpView.start({ port: 0, bind: "127.0.0.1", log, state: fakeServer(), auth: tokenAuth("s3cret") });
  let seq = 0;
  const feeder = setInterval(() => {
    view.push({ seq, capturedAt: nowMicros(), width: W, height: H, jpeg: frames[seq % frames.length]! });
    seq++;
  }, 1000 / FPS);
  const errors: string[] = [];
  const context = await launch({ width: 1280, height: 720 });
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${view.port}/?token=s3cret`);

    const img = page.locator("#live");
    // Browser-side code goes as text: these files are type-checked without the DOM library.
    await page.waitForFunction("document.getElementById('live').naturalWidth > 0", null, { timeout: 15_000 });
    expect(await page.evaluate("[document.getElementById('live').naturalWidth, document.getElementById('live').naturalHeight]")).toEqual([W, H]);
    const first = await img.screenshot();
    // The picture moves: a live stream, not one frame.
    await until(async () => !(await img.screenshot()).equals(first), 15_000, "the picture on the page to change");

    const rows = page.locator("#viewers tbody tr");
    await page.waitForFunction("document.querySelectorAll('#viewers tbody tr').length === 2", null, { timeout: 10_000 });
    const udp = (await rows.filter({ hasText: "UDP" }).allInnerTexts()).join("");
    expect(udp).toContain("10.77.0.5:8888");
    expect(udp).toContain("lab-3");
    expect(udp).toContain("12 ms");
    expect(udp).toContain("%");
    const me = (await rows.filter({ hasText: "browser" }).allInnerTexts()).join("");
    expect(me).toMatch(/^127\.0\.0\.1:\d+\s+Chrome \d+\s+browser/);
    // The page's own stream is counted by the view as it serves it.
    // Its fps column: a second of a busy machine may show 0 (the test's feeder or the page
    // starved), so wait for a count, rather than read the column once a digit is there.
    await page.waitForFunction("Number(document.querySelector('#viewers tr[data-kind=browser] td:nth-child(4)').textContent) > 0", null, { timeout: 15_000 });
    expect(await page.locator("#size").innerText()).toBe(`${W}×${H}`);
    expect(await page.locator("#bitrate").innerText()).toMatch(/^\d+\.\d Mbit\/s$/);
    await page.waitForSelector("#chart canvas");
    expect(log.lines.some((l) => / client joined .*kind=browser .*name="Chrome \d+"/.test(l))).toBe(true);
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-results", "browser-view.png") });

    // A phone: everything fits the width, nothing to scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction("window.innerWidth === 390", null, { timeout: 15_000 });
    // The chart is redrawn to the new width by a resize observer, which a busy machine runs
    // late: wait for the page to settle into the width instead of measuring it once.
    await page.waitForFunction("document.documentElement.scrollWidth <= document.documentElement.clientWidth", null, { timeout: 15_000 }).catch(() => {});
    const [scrollWidth, clientWidth] = (await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")) as [number, number];
    expect(scrollWidth).toBeLessThanOrEqual(clientWidth);
    const box = (await img.boundingBox())!;
    expect(box.width).toBeLessThanOrEqual(390);
    expect(box.width).toBeGreaterThan(300);
    await page.screenshot({ path: join(ROOT, "test-results", "browser-view-phone.png"), fullPage: true });
    expect(errors).toEqual([]);
    expect(log.lines.filter((l) => l.includes("unauthorized"))).toEqual([]);
  } finally {
    await context.close();
    clearInterval(feeder);
  }
  // Closing the browser ends its stream like any reader.
  const left = () => log.lines.some((l) => / client left .*kind=browser .*reason="connection closed"/.test(l));
  await until(left, 10_000, "the browser's leave line");
}, 60_000);

test("the viewers table shows a hostile name spelled out, never reversed or split, a classroom viewer as one, and a viewer UDP does not reach", async () => {
  const frames = await jpegFrames(2, W, H);
  const base = fakeServer();
  const hostile = "lab\u202e3gpj.exe\u2028next\u200b";
  await using view = await HttpView.start({
    port: 0, bind: "127.0.0.1", log: memoryLogger("http"),
    state: () => {
      const s = base();
      const udp = s.viewers[0]!;
      return {
        ...s, viewers: [
          { ...udp, name: hostile }, { ...udp, id: "classic-1", kind: "classic", port: 8890, name: "" },
          // TCP delivery: one moved to TCP after UDP did not reach it, one still waiting on UDP (--transport udp).
          { ...udp, id: "0badf00e", port: 8891, name: "on-tcp", transport: "tcp", noDatagrams: true },
          { ...udp, id: "0badf00f", port: 8892, name: "blocked", transport: "udp", noDatagrams: true },
        ],
      };
    },
  });
  // The page's picture loads (and with it the page) once frames come.
  let seq = 0;
  const feeder = setInterval(() => view.push({ seq: seq++, capturedAt: nowMicros(), width: W, height: H, jpeg: frames[seq % 2]! }), 1000 / FPS);
  const context = await launch({ width: 1280, height: 720 });
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${view.port}/`);
    await page.waitForFunction("document.querySelectorAll('#viewers tbody tr').length === 5", null, { timeout: 10_000 });
    const names = (await page.locator("#viewers tbody td.name").evaluateAll((tds) => tds.map((td) => [td.textContent, td.getAttribute("title")]))) as [string, string][];
    expect(names[0]).toEqual(["lab\\u{202e}3gpj.exe\\u{2028}next\\u{200b}", "lab\\u{202e}3gpj.exe\\u{2028}next\\u{200b}"]);
    for (const [text, title] of names) expect(`${text}${title}`).not.toMatch(/[\u202e\u2028\u200b]/);
    expect(await page.locator("#viewers tr[data-kind=classic] .kind").innerText()).toBe("classroom");
    const kinds = (await page.locator("#viewers tbody tr[data-kind=udp] td:nth-child(3)").evaluateAll((tds) => tds.map((td) => [td.textContent, td.getAttribute("title")]))) as [string, string | null][];
    expect(kinds.map(([text]) => text)).toEqual(["UDP", "TCP", "UDP · none arrives"]);
    expect(kinds[2]![1]).toContain("firewall");
  } finally {
    await context.close();
    clearInterval(feeder);
  }
}, 60_000);

test("with two cameras the page shows both pictures, named and sized, each a link (token kept) to a page of its own; a failed camera is marked", async () => {
  const cameras = [{ name: "board", width: W, height: H }, { name: "desk", width: 320, height: 180 }];
  const frames = await Promise.all(cameras.map((c) => jpegFrames(4, c.width, c.height)));
  const server = fakeCamerasState(cameras, FPS);
  await using view = await HttpView.start({ port: 0, bind: "127.0.0.1", log: memoryLogger("http"), state: server.state, auth: tokenAuth("s3cret") });
  let seq = 0;
  const feeder = setInterval(() => {
    cameras.forEach((c, i) => view.push({ seq, capturedAt: nowMicros(), width: c.width, height: c.height, jpeg: frames[i]![seq % 4]! }, i));
    seq++;
  }, 1000 / FPS);
  const errors: string[] = [];
  const context = await launch({ width: 1280, height: 720 });
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${view.port}/?token=s3cret`);
    // Every camera's live picture, at its own size; the single picture is not shown.
    const sizes = "[...document.querySelectorAll('#cameras .camera img')].map((i) => [i.naturalWidth, i.naturalHeight])";
    await page.waitForFunction(`${sizes}.every(([w]) => w > 0)`, null, { timeout: 15_000 });
    expect(await page.evaluate(sizes)).toEqual([[W, H], [320, 180]]);
    expect(await page.locator("#live").isVisible()).toBe(false);
    await page.waitForFunction("document.querySelector('#cameras .camera[data-camera=\"1\"] .size').textContent.includes('×')", null, { timeout: 10_000 });
    const captions = await page.locator("#cameras figcaption").allInnerTexts();
    expect(captions[0]).toMatch(new RegExp(`^board\\s+${W}×${H} · [\\d.]+ fps\\s+live$`));
    expect(captions[1]).toMatch(/^desk\s+320×180 · [\d.]+ fps\s+live$/);
    // The links keep the token: without it the camera's own page would be refused.
    expect(await page.locator("#cameras .camera-name").evaluateAll((as) => as.map((a) => a.getAttribute("href")))).toEqual(["/?token=s3cret&camera=0", "/?token=s3cret&camera=1"]);

    // The viewers table names each viewer's camera: the UDP viewer's and this page's two pictures.
    await page.waitForFunction("document.querySelectorAll('#viewers tbody tr').length === 3", null, { timeout: 10_000 });
    expect(await page.locator("#viewers thead th").first().innerText()).toBe("camera");
    const byCamera = (await page.locator("#viewers tbody tr").evaluateAll((trs) => trs.map((tr) => `${tr.children[0]!.textContent} ${tr.getAttribute("data-kind")}`))) as string[];
    expect(byCamera.sort()).toEqual(["board browser", "board udp", "desk browser"]);

    // The desk camera fails: its picture is marked, the board's is not.
    server.setAvailable(1, false);
    await page.locator('#cameras .camera[data-camera="1"] .badge.unavailable').waitFor({ state: "visible", timeout: 10_000 });
    expect(await page.locator('#cameras .camera[data-camera="0"] .badge.unavailable').isVisible()).toBe(false);
    expect(await page.locator("#source").innerText()).toBe("2 (1 unavailable)");
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-results", "browser-view-cameras.png") });

    // A phone: the pictures one under the other, nothing to scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction("window.innerWidth === 390", null, { timeout: 15_000 });
    await page.waitForFunction("document.documentElement.scrollWidth <= document.documentElement.clientWidth", null, { timeout: 15_000 }).catch(() => {});
    const [scrollWidth, clientWidth] = (await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")) as [number, number];
    expect(scrollWidth).toBeLessThanOrEqual(clientWidth);
    const boxes = await Promise.all([0, 1].map(async (i) => (await page.locator(`#cameras .camera[data-camera="${i}"] img`).boundingBox())!));
    expect(boxes[1]!.y).toBeGreaterThan(boxes[0]!.y + boxes[0]!.height - 1);
    for (const b of boxes) expect(b.width).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 720 });

    // The desk's own page: its picture alone, as the page of a single camera, marked unavailable, with a way back.
    await page.locator("#cameras .camera-name", { hasText: "desk" }).click();
    await page.waitForURL(/\/\?token=s3cret&camera=1$/, { timeout: 10_000 });
    await page.waitForFunction("document.getElementById('live').naturalWidth > 0", null, { timeout: 15_000 });
    expect(await page.evaluate("[document.getElementById('live').naturalWidth, document.getElementById('live').naturalHeight]")).toEqual([320, 180]);
    expect(await page.locator("#camera").innerText()).toBe("desk");
    await page.waitForFunction("document.getElementById('size').textContent === '320×180'", null, { timeout: 10_000 });
    await page.locator("#unavailable").waitFor({ state: "visible", timeout: 10_000 });
    expect(await page.locator("#all-cameras").getAttribute("href")).toBe("/?token=s3cret");
    expect(await page.locator("#cameras").isVisible()).toBe(false);
    // Its table lists the desk's viewers only.
    await page.waitForFunction("[...document.querySelectorAll('#viewers tbody tr')].length >= 1", null, { timeout: 10_000 });
    const cameraCells = (await page.locator("#viewers tbody tr").evaluateAll((trs) => trs.map((tr) => tr.children[0]!.textContent))) as string[];
    expect(new Set(cameraCells)).toEqual(new Set(["desk"]));
    await page.screenshot({ path: join(ROOT, "test-results", "browser-view-camera.png") });
    expect(errors).toEqual([]);
  } finally {
    await context.close();
    clearInterval(feeder);
  }
}, 60_000);
