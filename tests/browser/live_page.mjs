// Drives a real browser (Debian's Chromium, headless, through playwright-core) against the live
// page: the market's row appears, the stream connects, and a position opened through the API shows
// in the row's volumes within 2 s, with no Content Security Policy violation.
//
//   node live_page.mjs <base-url> <market-id>      (the bearer token in LIVE_TOKEN)
//   LIVE_BASE_URL=... LIVE_MARKET=... LIVE_TOKEN=... node live_page.mjs
//
// Optional: LIVE_AMOUNT (default 42.00), CHROMIUM_PATH (default /usr/bin/chromium),
// LIVE_SCREENSHOT (a PNG path written at the end). Exits 0 when every check passed, 1 with a line
// saying which did not, 2 on bad usage.
import { chromium } from "playwright-core";

const base = (process.argv[2] || process.env.LIVE_BASE_URL || "").replace(/\/$/, "");
const market = process.argv[3] || process.env.LIVE_MARKET || "";
const token = process.argv[4] || process.env.LIVE_TOKEN || "";
const amount = process.env.LIVE_AMOUNT || "42.00";
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const LIVE_WITHIN_MS = 2000;

if (!base || !market || !token) {
  console.error("usage: node live_page.mjs <base-url> <market-id> (token in LIVE_TOKEN)");
  process.exit(2);
}

function cents(text) {
  const match = /^(\d+)\.(\d{2})$/.exec(String(text));
  if (!match) throw new Error(`not an amount: ${JSON.stringify(text)}`);
  return Number(match[1]) * 100 + Number(match[2]);
}

function amountText(value) {
  return `${Math.floor(value / 100)}.${String(value % 100).padStart(2, "0")}`;
}

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in CI containers: Chromium's sandbox needs user namespaces that may be missing.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = null;
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (message) => logs.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
    });
  });

  const response = await page.goto(`${base}/live`, { waitUntil: "domcontentloaded" });
  check(response && response.status() === 200, `GET /live answered ${response && response.status()}`);
  const headers = response.headers();
  check(
    (headers["content-security-policy"] || "").includes("default-src 'none'; script-src 'self'"),
    `no strict Content-Security-Policy on /live: ${headers["content-security-policy"]}`,
  );
  check(headers["cache-control"] === "no-cache", `Cache-Control is ${headers["cache-control"]}`);

  const row = `tr[data-market-id="${market}"]`;
  try {
    await page.waitForSelector(row, { timeout: 10000 });
  } catch {
    throw new Failure(`the row of market ${market} did not appear within 10 s`);
  }
  try {
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 10000 });
  } catch {
    const state = await page.textContent("#connection");
    throw new Failure(`the stream did not connect within 10 s (state: ${state})`);
  }
  const before = {
    yes: cents(await page.textContent(`${row} .yes-volume`)),
    no: cents(await page.textContent(`${row} .no-volume`)),
    volume: cents(await page.textContent(`${row} .volume`)),
  };

  const opened = await fetch(`${base}/api/v1/markets/${market}/positions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ side: "yes", amount }),
  });
  check(opened.status === 201, `opening a position answered ${opened.status}: ${await opened.text()}`);
  const started = Date.now();
  const expected = {
    yes: amountText(before.yes + cents(amount)),
    volume: amountText(before.volume + cents(amount)),
  };
  try {
    await page.waitForFunction(
      ([selector, want]) => {
        const tr = document.querySelector(selector);
        return (
          tr &&
          tr.querySelector(".yes-volume").textContent === want.yes &&
          tr.querySelector(".volume").textContent === want.volume
        );
      },
      [row, expected],
      { timeout: LIVE_WITHIN_MS, polling: 20 },
    );
  } catch {
    const shown = await page.textContent(`${row} .volume`);
    throw new Failure(
      `the row's volume did not become ${expected.volume} within ${LIVE_WITHIN_MS} ms (shows ${shown})`,
    );
  }
  const latency = Date.now() - started;
  check(
    (await page.textContent(`${row} .no-volume`)) === amountText(before.no),
    "the no volume changed although the position was on yes",
  );
  const violations = await page.evaluate(() => window.__cspViolations);
  check(violations.length === 0, `Content Security Policy violations: ${violations.join("; ")}`);
  if (process.env.LIVE_SCREENSHOT) {
    await page.screenshot({ path: process.env.LIVE_SCREENSHOT, fullPage: true });
  }
  console.log(`live page: ok (volume ${expected.volume} shown ${latency} ms after the position)`);
} catch (error) {
  failed = error instanceof Failure ? error.message : `unexpected: ${error.stack || error}`;
} finally {
  await browser.close();
}
if (failed !== null) {
  console.error(`live page FAILED: ${failed}`);
  if (logs.length) console.error(`browser log:\n  ${logs.join("\n  ")}`);
  process.exit(1);
}
