// Plays a live stream in a real browser player and prints what happened as JSON.
//   node play.mjs hls|dash URL SECONDS [same-origin]
// hls.js (low-latency mode) or dash.js runs in Debian's Chromium (/usr/bin/chromium),
// driven by playwright-core. The page has an opaque origin, so every request is a
// cross-origin one and exercises the server's CORS headers; with `same-origin` it is
// on the stream's own origin instead (a secure context on 127.0.0.1, which Encrypted
// Media Extensions need: ClearKey for encrypted DASH). For ABR tests the result
// also says when the picture's height changed (`shown`) and, for hls.js, when it switched
// levels (`switches`), in milliseconds of the Unix epoch.
import { launch } from './browser.mjs';
import { readFileSync } from 'node:fs';

const [kind, url, seconds, where] = process.argv.slice(2);
if (!['hls', 'dash'].includes(kind) || !url) {
  console.error('usage: node play.mjs hls|dash URL SECONDS');
  process.exit(2);
}
const lib = kind === 'hls'
  ? 'node_modules/hls.js/dist/hls.min.js'
  : 'node_modules/dashjs/dist/modern/umd/dash.all.min.js';
const script = readFileSync(new URL(lib, import.meta.url), 'utf8');

const browser = await launch();
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  if (where === 'same-origin') await page.goto(new URL('/time', url).href);
  await page.setContent('<video id="v" muted autoplay playsinline></video>');
  await page.addScriptTag({ content: script });
  await page.evaluate(([kind, url]) => {
    const v = document.getElementById('v');
    window.fatal = [];
    // Stalls: the video waiting for data once it has played.
    window.stalls = 0;
    let played = false;
    v.addEventListener('playing', () => { played = true; });
    v.addEventListener('waiting', () => { if (played) window.stalls += 1; });
    window.canPlay = MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f"');
    if (kind === 'hls') {
      const hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) window.fatal.push(`${d.type}: ${d.details}`); });
      hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
      window.switches = [];
      hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => window.switches.push(
        { at: Date.now(), height: hls.levels[d.level]?.height ?? 0 }));
      hls.loadSource(url);
      hls.attachMedia(v);
      window.player = hls;
    } else {
      const p = dashjs.MediaPlayer().create();
      p.on(dashjs.MediaPlayer.events.ERROR, (e) => window.fatal.push(JSON.stringify(e.error)));
      p.initialize(v, url, true);
      window.player = p;
    }
  }, [kind, url]);

  const sample = () => page.evaluate((kind) => {
    const v = document.getElementById('v');
    const q = v.getVideoPlaybackQuality();
    const out = {
      currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight,
      decodedFrames: q.totalVideoFrames, droppedFrames: q.droppedVideoFrames,
      fatal: window.fatal, canPlayAvc: window.canPlay, mediaError: v.error && v.error.message,
      stalls: window.stalls,
    };
    if (kind === 'hls') {
      const details = window.player.levels?.[0]?.details;
      out.latency = window.player.latency;
      out.partsInPlaylist = details?.partList?.length ?? 0;
      out.canBlockReload = details?.canBlockReload ?? false;
      out.audioTracks = window.player.audioTracks.length;
      out.switches = window.switches;
      out.levels = window.player.levels.map((l) => l.height);
      out.bandwidthEstimate = window.player.bandwidthEstimate;
    } else {
      out.latency = window.player.getCurrentLiveLatency();
      out.isDynamic = window.player.isDynamic();
      out.audioTracks = window.player.getTracksFor('audio').length;
    }
    return out;
  }, kind);

  const deadline = Date.now() + Number(seconds || 20) * 1000;
  let first = null;
  let last = await sample();
  const shown = [];
  while (Date.now() < deadline && last.fatal.length === 0) {
    await page.waitForTimeout(500);
    last = await sample();
    if (last.height && last.height !== shown[shown.length - 1]?.height) {
      shown.push({ at: Date.now(), height: last.height });
    }
    if (first === null && last.currentTime > 0) first = { wall: Date.now(), media: last.currentTime };
  }
  const played = first ? last.currentTime - first.media : 0;
  const wall = first ? (Date.now() - first.wall) / 1000 : 0;
  console.log(JSON.stringify({ ...last, played, wall, shown, pageErrors: consoleErrors }));
} finally {
  await browser.close();
}
