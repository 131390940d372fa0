#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need when it is missing (ffmpeg,
# GStreamer with its RTSP server, Chromium, Node.js, netplan from the distribution; what the
# build needs, tools/build-deps.sh; hls.js, dash.js and playwright-core from npm),
# builds once, then runs unit and end-to-end tests in parallel, then a five-minute soak,
# then builds the appliance image and boots it under QEMU (image/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || packages+=(ffmpeg)
# What the build needs: a C compiler, pkg-config and ALSA's headers, nasm.
. tools/build-deps.sh
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
# Time zones for the setup wizard (a unit test checks one).
[ -f /usr/share/zoneinfo/zone1970.tab ] || packages+=(tzdata)
command -v npm >/dev/null || packages+=(nodejs npm)
# iproute2's view of the addresses is what the network page's is checked against.
command -v ip >/dev/null || packages+=(iproute2)
# netplan itself checks the network settings' YAML (generate and set on a scratch root).
command -v netplan >/dev/null || packages+=(netplan.io)
# GStreamer plays our RTSP output: rtspsrc and the depayloaders, parsers and decoders.
if ! gst-inspect-1.0 rtspsrc rtph264depay h264parse avdec_h264 rtpmp4gdepay aacparse avdec_aac \
  >/dev/null 2>&1; then
  packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-libav)
fi
# The test camera: GStreamer's RTSP server, driven from the distribution's python3.
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' \
  >/dev/null 2>&1 || ! gst-inspect-1.0 qtdemux rtph264pay rtpmp4gpay alawenc rtppcmapay >/dev/null 2>&1; then
  packages+=(python3 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)
fi
if ((${#packages[@]})); then
  echo "installing: ${packages[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# Browser players (hls.js, dash.js) and the driver for Chromium, pinned by the lock file.
if ! (cd tests/players && npm ls --silent >/dev/null 2>&1); then
  (cd tests/players && npm ci --no-audit --no-fund)
fi

# A target directory outside the checkout survives between runs on the same machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --workspace --all-targets
# The end-to-end tests mostly wait on real-time publishers, so run more than one per core.
cargo test --locked --workspace -- --test-threads "${STREAMBOX_TEST_THREADS:-4}"
# Five minutes of the hour's soak (bench/side_by_side.sh --soak): four recorded streams,
# a camera that drops every two minutes, simulated LL-HLS viewers; fails on RSS growth, a
# gap in any viewer's media, an error in the log or counters that disagree with the clients.
python3 bench/side_by_side.py --streambox "$CARGO_TARGET_DIR/debug/streambox" \
  --soak --minutes 5 --viewers 100 --drop-every 120
# The appliance image: build it from Debian's packages (downloads cached under
# ~/.cache/streambox) and boot it under QEMU, checked from the host and from inside.
image/test.sh
