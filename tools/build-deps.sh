# Sourced by the scripts that build streambox (serve.sh, tests/run.sh, image/test.sh,
# the bench scripts): appends to the array `packages` the Debian/Ubuntu packages the
# build needs and the machine lacks. A C compiler for the bundled SQLite, fdk-aac and
# OpenH264, and make for jemalloc; pkg-config and ALSA's headers for libasound (capture sources' sound); nasm
# for OpenH264's SIMD assembly (without it the build works, and encodes 2-4x slower).
# Rust itself comes from rustup: without cargo, the script stops here and says so.
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs), then rerun $0" >&2
  exit 1
fi
command -v cc >/dev/null && command -v make >/dev/null || packages+=(build-essential)
command -v pkg-config >/dev/null || packages+=(pkg-config)
pkg-config --exists alsa 2>/dev/null || packages+=(libasound2-dev)
command -v nasm >/dev/null || packages+=(nasm)
