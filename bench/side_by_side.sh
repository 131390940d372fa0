#!/usr/bin/env bash
# Side-by-side run: streambox against nginx with libnginx-mod-rtmp (HLS and DASH on),
# both fed by the same N ffmpeg publishers. Prints a Markdown table.
#   bench/side_by_side.sh [--streams N] [--seconds S]
# With --rtsp: streambox pulls K GStreamer RTSP cameras, then fans one out to M RTSP
# players; prints CPU per camera and per player, and memory.
#   bench/side_by_side.sh --rtsp [--cameras K] [--players M] [--seconds S]
# With --dvr: the same N streams on streambox alone, live only and then recording with a
# small retention limit; prints the CPU added, write throughput, deletes and part delays.
#   bench/side_by_side.sh --dvr [--streams N] [--seconds S] [--keep-bytes 4MB]
# With --abr: one 1080p30 stream with a 720p/480p/360p ladder; CPU per rung against
# ffmpeg libx264 -preset veryfast making the same ladder, and the rungs' added delay.
#   bench/side_by_side.sh --abr [--seconds S] [--quality efficient|balanced|best]
# With --protect: the same N streams on streambox alone, in the clear and then encrypted
# (AES-128 HLS); prints the CPU encryption adds and wrk's requests/s for a segment and a
# part in each phase.
#   bench/side_by_side.sh --protect [--streams N] [--seconds S]
# With --fanout: one stream on streambox and nginx-rtmp, each server pinned to CPU 0 and
# wrk to CPU 1; requests/s, MiB/s, latency and server CPU for the media playlist, a
# segment and a part with 10, 100 and 1000 keep-alive connections.
#   bench/side_by_side.sh --fanout [--seconds S per row, 8 by default]
# With --latency: glass-to-player latency read off the picture in Chromium (the portal's
# watch page for streambox, hls.js for nginx-rtmp), with 2 s and 5.3 s GOPs.
#   bench/side_by_side.sh --latency [--seconds S per player, 120 by default]
# With --soak: an hour of 4 recorded streams (2 RTMP, 1 RTSP publish, 1 RTSP camera that
# drops every 5 minutes) watched by 200 simulated LL-HLS viewers (bench/viewers.mjs);
# RSS, the log, every viewer's continuity and the server's counters; exits 1 on a fault.
#   bench/side_by_side.sh --soak [--minutes 60] [--viewers 200] [--drop-every 300]
set -euo pipefail
cd "$(dirname "$0")/.."
packages=()
command -v ffmpeg >/dev/null || packages+=(ffmpeg)
. tools/build-deps.sh
command -v nginx >/dev/null || packages+=(nginx-light)
command -v wrk >/dev/null || packages+=(wrk)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || packages+=(libnginx-mod-rtmp)
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
  packages+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
if [[ " $* " == *" --latency "* ]]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v npm >/dev/null || packages+=(nodejs npm)
fi
if [[ " $* " == *" --soak "* ]]; then
  command -v node >/dev/null || packages+=(nodejs)
fi
tools/install-missing.sh "${packages[@]}"
if [[ " $* " == *" --latency "* ]] && ! (cd tests/players && npm ls --silent >/dev/null 2>&1); then
  (cd tests/players && npm ci --no-audit --no-fund)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --release -p streambox
exec python3 bench/side_by_side.py --streambox "$CARGO_TARGET_DIR/release/streambox" "$@"
