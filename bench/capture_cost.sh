#!/usr/bin/env bash
# What a capture source costs per stream: streambox's capture pipeline (YUYV and
# Motion-JPEG at 720p30 and 1080p30, converted and encoded with OpenH264) against ffmpeg
# with libx264 -preset veryfast doing the same. Prints a Markdown table.
#   bench/capture_cost.sh [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
packages=()
command -v ffmpeg >/dev/null || packages+=(ffmpeg)
. tools/build-deps.sh
tools/install-missing.sh "${packages[@]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --release -p streambox --example capture_cost
exec python3 bench/capture_cost.py --example "$CARGO_TARGET_DIR/release/examples/capture_cost" "$@"
