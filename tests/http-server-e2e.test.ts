// The browser view on a real server process: a real lancam viewer and a real browser
// (Debian's chromium driven by playwright-core) watching at once, sharing --max-clients.
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT, spawnBun, until, expectExit } from "./helpers/process.ts";
import { PROMTOOL, promtoolCheck, promtoolSkipReason } from "./helpers/promtool.ts";
import { tempDirs } from "./helpers/temp-dirs.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const tempDir = tempDirs("lancam-http-e2e-");
promtoolSkipReason();

test("server --http: the page shows the live picture and lists a lancam viewer and the browser; browsers share --max-clients and are logged", async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run bash scripts/setup.sh --test (it installs Debian's chromium)`);
  const dir = tempDir();
  const log = join(dir, "server.log");
  await using server = spawnBun([
    "server.ts", "--source", "test", "--size", "640x360", "--fps", "30", "--port", "0", "--http", "0", "--http-bind", "127.0.0.1",
    "--max-clients", "2", "--log", log,
  ]);
  const tcp = Number((await server.waitFor(/lancam server listening tcp=(\d+)/))[1]);
  const url = (await server.waitFor(/lancam http listening url=(\S+)/))[1]!;

  // No --duration: it must still hold its place when the refusal below comes, however slowly.
  await using viewer = spawnBun(["client.ts", "127.0.0.1", String(tcp), "0", "--no-window", "--no-record", "--name", "lab-viewer"]);
  const state = async () => (await (await fetch(`${url}state`)).json()) as { viewers: { kind: string; name: string; framesReceived: number | null }[]; history: { t: number[] } };
  await until(async () => (await state()).viewers.some((v) => v.kind === "udp" && v.name === "lab-viewer" && (v.framesReceived ?? 0) > 0), 10_000, "the lancam viewer in /state with its report");

  const context = await chromium.launchPersistentContext(tempDir(), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction("document.getElementById('live').naturalWidth > 0", null, { timeout: 15_000 });
    const img = page.locator("#live");
    const first = await img.screenshot();
    await until(async () => !(await img.screenshot()).equals(first), 15_000, "the picture on the page to change");

    await page.waitForFunction("document.querySelectorAll('#viewers tbody tr').length === 2", null, { timeout: 10_000 });
    const rows = page.locator("#viewers tbody tr");
    expect((await rows.filter({ hasText: "UDP" }).allInnerTexts()).join("")).toContain("lab-viewer");
    expect((await rows.filter({ hasText: "browser" }).allInnerTexts()).join("")).toMatch(/127\.0\.0\.1:\d+\s+Chrome \d+\s+browser/);
    // Its picture's size: the source's, or a size of the --layers ladder were it to fall behind.
    await until(async () => /\b(640×360|320×180|160×90)\b/.test((await rows.filter({ hasText: "browser" }).allInnerTexts()).join("")), 10_000, "the browser's picture size in the table");
    await page.waitForSelector("#chart canvas");
    await until(async () => (await state()).history.t.length >= 3, 15_000, "a few points on the chart for the picture below");
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-results", "browser-view-server.png") });

    // The lancam viewer and this browser fill --max-clients 2: the next reader is refused.
    const refused = await fetch(`${url}stream.mjpg`);
    expect(refused.status).toBe(503);
    expect(await refused.text()).toContain("server full");

    // Per-viewer series are numbered by slot under --max-clients: two viewers, slots 0 and 1, no session ids.
    const metrics = await (await fetch(`${url}metrics`)).text();
    expect([...metrics.matchAll(/^lancam_viewer_fps\{viewer="(\d+)",kind="(\w+)",camera="0"\}/gm)].map((m) => `${m[1]} ${m[2]}`).sort()).toEqual(["0 udp", "1 browser"]);
    if (PROMTOOL) expect(await promtoolCheck(metrics)).toEqual({ code: 0, output: "" });
  } finally {
    await context.close();
  }
  await until(() => / client left client=127\.0\.0\.1 kind=browser .*reason="connection closed"/.test(readFileSync(log, "utf8")), 10_000, "the browser's leave line");
  const lines = readFileSync(log, "utf8");
  expect(lines).toMatch(/ client joined client=127\.0\.0\.1 kind=browser name="Chrome \d+" clients=2/);
  expect(lines).toMatch(/ client refused client=127\.0\.0\.1 kind=browser .*reason="server full"/);
  expect(lines).toMatch(/ client joined client=127\.0\.0\.1:\d+ .*name=lab-viewer/);
}, 60_000);

test("server --http with a token: every route needs the browser link's key, derived from the token; neither is logged", async () => {
  const dir = tempDir();
  const log = join(dir, "server.log");
  const token = "classroom-4b-token-of-some-length";
  await using server = spawnBun([
    "server.ts", "--source", "test", "--size", "320x240", "--fps", "15", "--port", "0", "--http", "0", "--http-bind", "127.0.0.1",
    "--token", token, "--log", log,
  ]);
  const url = (await server.waitFor(/lancam http listening url=(\S+)/))[1]!;
  const link = (await server.waitFor(/browser link: (\S+)/))[1]!;
  const key = new URL(link).searchParams.get("token")!;
  expect(key).not.toBe(token);
  expect(new URL(link).origin).toBe(new URL(url).origin);
  for (const path of ["", "state", "metrics", "snapshot.jpg", "stream.mjpg"]) {
    expect((await fetch(`${url}${path}`)).status).toBe(401);
    // The viewers' token itself opens nothing: it never has to cross the network in the clear.
    expect((await fetch(`${url}${path}?token=${token}`)).status).toBe(401);
  }
  const state = await fetch(`${url}state?token=${key}`);
  expect(state.status).toBe(200);
  expect(((await state.json()) as { source: unknown }).source).toMatchObject({ width: 320, height: 240 });
  await until(() => / unauthorized request /.test(readFileSync(log, "utf8")), 10_000, "the 401 log line");
  server.proc.kill("SIGTERM");
  await expectExit(server, 0);
  const lines = readFileSync(log, "utf8");
  expect(lines).not.toContain(token);
  expect(lines).not.toContain(key);
}, 30_000);
