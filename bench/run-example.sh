#!/usr/bin/env bash
# Builds one of streambox's examples (release) and runs a bench script with it:
#   bench/run-example.sh EXAMPLE SCRIPT [ARGS…]
# runs `python3 SCRIPT --example PATH-OF-EXAMPLE ARGS…`, after installing ffmpeg and the
# build's own packages when they are missing. bench/capture_cost.sh and
# bench/quality.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."
example="$1" script="$2"
shift 2
packages=()
command -v ffmpeg >/dev/null || packages+=(ffmpeg)
. tools/build-deps.sh
tools/install-missing.sh "${packages[@]}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --release -p streambox --example "$example"
exec python3 "$script" --example "$CARGO_TARGET_DIR/release/examples/$example" "$@"
