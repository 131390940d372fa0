// Glass-to-player latency of a live stream in a real browser, read off the picture.
//   node bench/glass.mjs page URL SECONDS   (a page with a <video>: the portal's watch page)
//   node bench/glass.mjs hls URL SECONDS    (hls.js from tests/players, low-latency mode,
//                                            the portal's settings, on a blank page)
//   node bench/glass.mjs dash URL SECONDS   (dash.js from tests/players, as the portal
//                                            starts it, on a blank page)
// The publisher burns its wall clock into each frame as it takes it in (bench/
// side_by_side.py --latency): a strip of 41 blocks, 16x16 pixels each, along the top left
// of the picture, block k white when bit k of the Unix time in milliseconds is set. Each
// frame the browser presents (requestVideoFrameCallback) is drawn to a canvas and its
// strip read back: the latency is the presentation's wall-clock time minus the stamp
// (frames of the first 5 s of playback left out, while the player settles).
// Also counted: stalls (the video's `waiting` events once it played) and their time,
// and the player's own latency figure (window.player.latency) for comparison. Prints JSON.
import { launch } from '../tests/players/browser.mjs';
import { readFileSync } from 'node:fs';

const [kind, url, seconds] = process.argv.slice(2);
if (!['page', 'hls', 'dash'].includes(kind) || !url) {
  console.error('usage: node bench/glass.mjs page|hls|dash URL SECONDS');
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  if (kind === 'page') {
    await page.goto(url);
  } else if (kind === 'dash') {
    const lib = new URL('../tests/players/node_modules/dashjs/dist/modern/umd/dash.all.min.js',
      import.meta.url);
    await page.setContent('<video id="player" muted autoplay playsinline></video>');
    await page.addScriptTag({ content: readFileSync(lib, 'utf8') });
    await page.evaluate((src) => {
      const v = document.getElementById('player');
      // The portal's settings (web/assets/watch.js).
      const p = dashjs.MediaPlayer().create();
      p.initialize(v, src, true);
      window.player = { get latency() { return p.getCurrentLiveLatency(); } };
    }, url);
  } else {
    const lib = new URL('../tests/players/node_modules/hls.js/dist/hls.min.js', import.meta.url);
    await page.setContent('<video id="player" muted autoplay playsinline></video>');
    await page.addScriptTag({ content: readFileSync(lib, 'utf8') });
    await page.evaluate((src) => {
      const v = document.getElementById('player');
      // The portal's settings (web/assets/watch.js).
      const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
      hls.loadSource(src);
      hls.attachMedia(v);
      v.play().catch(() => {});
      window.player = { get latency() { return hls.latency; } };
    }, url);
  }
  await page.evaluate(() => {
    const v = document.querySelector('video');
    v.muted = true;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const s = { latencies: [], unreadable: 0, stalls: 0, stalledMs: 0, stallsAt: [], player: [], playedAt: 0 };
    window.glass = s;
    let waitingSince = 0;
    v.addEventListener('playing', () => {
      if (!s.playedAt) s.playedAt = Date.now();
      if (waitingSince) { s.stalledMs += Date.now() - waitingSince; waitingSince = 0; }
    });
    v.addEventListener('waiting', () => {
      if (s.playedAt && !waitingSince) {
        s.stalls += 1;
        waitingSince = Date.now();
        s.stallsAt.push((waitingSince - s.playedAt) / 1000);
      }
    });
    const read = (now, meta) => {
      if (v.videoWidth >= 656) {
        canvas.width = 656;
        canvas.height = 16;
        ctx.drawImage(v, 0, 0, 656, 16, 0, 0, 656, 16);
        const px = ctx.getImageData(0, 0, 656, 16).data;
        let stamp = 0;
        for (let k = 0; k < 41; k++) {
          const at = (8 * 656 + 16 * k + 8) * 4;
          if (px[at] >= 128) stamp += 2 ** k;
        }
        const shown = performance.timeOrigin + (meta ? meta.expectedDisplayTime : performance.now());
        const latency = shown - stamp;
        // A picture without the strip (or a mangled one) reads as nonsense.
        // The first 5 s of playback are the player settling on its target: left out.
        const settled = s.playedAt && Date.now() - s.playedAt > 5000;
        if (latency <= -1000 || latency >= 60000) s.unreadable += 1;
        else if (settled) s.latencies.push(latency);
        if (window.player && window.player.latency) s.player.push(window.player.latency * 1000);
      }
      if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(read);
    };
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(read);
    else setInterval(() => read(performance.now(), null), 40);
  });
  await page.waitForTimeout(Number(seconds || 30) * 1000);
  const s = await page.evaluate(() => window.glass);
  const sorted = (a) => [...a].sort((x, y) => x - y);
  const at = (a, q) => (a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))] : null);
  const l = sorted(s.latencies);
  const p = sorted(s.player);
  console.log(JSON.stringify({
    frames: l.length,
    unreadable: s.unreadable,
    median_ms: at(l, 0.5),
    p5_ms: at(l, 0.05),
    p95_ms: at(l, 0.95),
    max_ms: l.length ? l[l.length - 1] : null,
    stalls: s.stalls,
    stalled_ms: s.stalledMs,
    stalls_at_s: s.stallsAt,
    player_latency_median_ms: at(p, 0.5),
    played_s: s.playedAt ? (Date.now() - s.playedAt) / 1000 : 0,
    pageErrors,
  }));
} finally {
  await browser.close();
}
