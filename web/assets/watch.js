// Plays one live stream: hls.js in low-latency mode, or the browser's own HLS (Safari).
// It asks the appliance whether the stream is live (data-state, JSON {"live": bool})
// before playing and while it is offline, so a stream that stops shows "Offline" and
// plays again by itself when it comes back.
(function () {
  'use strict';
  const video = document.getElementById('player');
  const state = document.getElementById('state');
  const src = video.dataset.src;
  let hls = null;
  let playing = false;
  const show = (text, cls) => { state.textContent = text; state.className = 'state ' + cls; };

  const isLive = async () => {
    try {
      const r = await fetch(video.dataset.state, { cache: 'no-store' });
      return r.ok && (await r.json()).live === true;
    } catch (e) {
      return false;
    }
  };

  const stop = () => {
    playing = false;
    if (hls) { hls.destroy(); hls = null; }
    video.removeAttribute('src');
    video.load();
  };

  const offline = () => {
    if (!playing && state.classList.contains('offline')) return;
    stop();
    show('Offline — it plays again when the stream comes back', 'offline');
  };

  const play = () => {
    playing = true;
    show('Connecting…', 'connecting');
    if (window.Hls && Hls.isSupported()) {
      hls = new Hls({ lowLatencyMode: true });
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) offline(); });
      hls.loadSource(src);
      hls.attachMedia(video);
      window.player = hls;
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src;
    } else {
      show('This browser cannot play HLS', 'offline');
      return;
    }
    video.play().catch(() => {});
  };

  video.addEventListener('playing', () => show('Live', 'live'));
  // The publisher left: the playlist ended and the player ran out.
  video.addEventListener('ended', offline);
  video.addEventListener('error', offline);

  // Every two seconds: start when the stream is live, stop when it no longer is.
  const check = async () => {
    const live = await isLive();
    if (live && !playing) play();
    else if (!live && playing) offline();
    else if (!live && !state.classList.contains('offline')) offline();
  };
  check();
  setInterval(check, 2000);
})();
