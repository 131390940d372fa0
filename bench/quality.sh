#!/usr/bin/env bash
# ABR picture quality: streambox's rungs (scaler + OpenH264, with a tuning) against ffmpeg's
# scaler + libx264 -preset veryfast at the same bitrate and GOP, on two kinds of 1080p30
# footage; PSNR and SSIM against the source scaled with Lanczos, bitrate, CPU per media
# second. Prints Markdown tables (see bench/quality.py).
#   bench/quality.sh [--seconds 20] [--tunings "NAME=SETTINGS;…"] [--sweep]
set -euo pipefail
cd "$(dirname "$0")/.."
packages=()
command -v ffmpeg >/dev/null || packages+=(ffmpeg)
. tools/build-deps.sh
tools/install-missing.sh "${packages[@]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --release -p streambox --example rung_quality
exec python3 bench/quality.py --example "$CARGO_TARGET_DIR/release/examples/rung_quality" "$@"
