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
import { fakeServerState } from "./helpers/fake-view-state.ts";

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
