// Plays one live stream: hls.js in low-latency mode, or the browser's own HLS (Safari);
// or dash.js, where the page offers a choice (a <select id="player-kind"> and the
// video's data-dash URL). It asks the appliance whether the stream is live (data-state,
// JSON {"live": bool}) before playing and while it is offline, so a stream that stops
// shows "Offline" and plays again by itself when it comes back. window.player.latency
// is the player's live latency in seconds.
(function () {
  'use strict';
  const video = document.getElementById('player');
  const state = document.getElementById('state');
  const src = video.dataset.src;
  const picker = document.getElementById('player-kind');
  let hls = null;
  let dash = null;
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
    if (dash) { dash.destroy(); dash = null; }
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
    if (picker && picker.value === 'dash' && window.dashjs && video.dataset.dash) {
      dash = dashjs.MediaPlayer().create();
      dash.on(dashjs.MediaPlayer.events.ERROR, () => offline());
      dash.initialize(video, video.dataset.dash, true);
      const d = dash;
      window.player = { kind: 'dash', get latency() { return d.getCurrentLiveLatency(); } };
    } else if (window.Hls && Hls.isSupported()) {
      // Low-latency mode holds PART-HOLD-BACK behind the newest part; up to 1.5x
      // playback speed lets it get back there after a start or a stall instead of
      // staying behind for good.
      hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) offline(); });
      hls.loadSource(src);
      hls.attachMedia(video);
      const h = hls;
      window.player = { kind: 'hls', get latency() { return h.latency; } };
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src;
    } else {
      show('This browser cannot play HLS', 'offline');
      return;
    }
    video.play().catch(() => {});
  };

  video.addEventListener('playing', () => show('Live', 'live'));
  if (picker) picker.addEventListener('change', () => { if (playing) { stop(); play(); } });
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
