#!/usr/bin/env bash
# Runs the whole test suite: installs the system packages the tests need when they are
# missing (ffmpeg/ffprobe from the distribution, a C compiler for the bundled SQLite),
# builds once, then runs unit and end-to-end tests in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs), then rerun $0" >&2
  exit 1
fi

packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || packages+=(ffmpeg)
command -v cc >/dev/null || packages+=(build-essential)
if ((${#packages[@]})); then
  echo "installing: ${packages[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# A target directory outside the checkout survives between runs on the same machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streambox/target}"
cargo build --locked --workspace --all-targets
# The end-to-end tests mostly wait on real-time publishers, so run more than one per core.
cargo test --locked --workspace -- --test-threads "${STREAMBOX_TEST_THREADS:-4}"
