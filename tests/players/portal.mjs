// Drives the viewer portal in a real browser and prints what happened as JSON.
//   node portal.mjs BASE_URL STREAM SECONDS SHOTS_DIR
// Opens BASE_URL/ (the list of live streams), waits for STREAM's card and its thumbnail,
// then opens its watch page and samples the player every half second for SECONDS: media
// time, picture size, the page's live/offline line and hls.js's live latency. Saves a
// screenshot of each page visited into SHOTS_DIR. Debian's Chromium, driven by
// playwright-core.
import { launch } from './browser.mjs';
import { mkdirSync } from 'node:fs';

const [base, stream, seconds, shots] = process.argv.slice(2);
if (!base || !stream || !shots) {
  console.error('usage: node portal.mjs BASE_URL STREAM SECONDS SHOTS_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  await page.goto(`${base}/`);
  const card = page.locator(`a[href="/watch/${stream}"] img`);
  await card.waitFor({ timeout: 15000 });
  await page.waitForFunction((sel) => {
    const img = document.querySelector(sel);
    return img && img.complete && img.naturalWidth > 0;
  }, `a[href="/watch/${stream}"] img`, { timeout: 15000 });
  const cards = await page.$$eval('.card .name', (els) => els.map((e) => e.textContent));
  const thumbWidth = await card.evaluate((img) => img.naturalWidth);
  await page.screenshot({ path: `${shots}/portal.png` });

  await page.goto(`${base}/watch/${stream}`);
  const samples = [];
  const deadline = Date.now() + Number(seconds || 20) * 1000;
  let shot = false;
  while (Date.now() < deadline) {
    await page.waitForTimeout(500);
    const s = await page.evaluate(() => {
      const v = document.getElementById('player');
      return {
        at: Date.now(), t: v.currentTime, width: v.videoWidth, height: v.videoHeight,
        state: document.getElementById('state').textContent,
        latency: window.player ? window.player.latency : null,
        error: v.error && v.error.message,
      };
    });
    samples.push(s);
    if (!shot && s.t > 2) {
      await page.screenshot({ path: `${shots}/watch.png` });
      shot = true;
    }
  }
  await page.screenshot({ path: `${shots}/watch-end.png` });
  console.log(JSON.stringify({ cards, thumbWidth, samples, pageErrors }));
} finally {
  await browser.close();
}
