// Plays recordings in the stream page's recordings player: a link with data-play (a VOD
// playlist URL) on the timeline, a thumbnail or the list plays there with hls.js, or the
// browser's own HLS (Safari). Without this script the links open the playlist.
(function () {
  'use strict';
  const video = document.getElementById('recording');
  if (!video) return;
  let hls = null;
  document.addEventListener('click', (e) => {
    const link = e.target.closest('a[data-play]');
    if (!link) return;
    e.preventDefault();
    if (hls) { hls.destroy(); hls = null; }
    video.hidden = false;
    const url = link.dataset.play;
    if (window.Hls && Hls.isSupported()) {
      hls = new Hls();
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      video.src = url;
    }
    video.play().catch(() => {});
    video.scrollIntoView({ block: 'nearest' });
  });
})();
