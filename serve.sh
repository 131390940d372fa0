#!/usr/bin/env bash
# Runs the service on its embedded defaults (`streambox serve`, built by cargo), after
# installing the system packages the build needs when they are missing
# (tools/build-deps.sh). Arguments go to `streambox serve`.
set -euo pipefail
cd "$(dirname "$0")"
packages=()
. tools/build-deps.sh
tools/install-missing.sh "${packages[@]}"
exec cargo run --release -p streambox -- serve "$@"
