#!/usr/bin/env bash
# Runs the service on its embedded defaults (`streambox serve`, built by cargo), after
# installing the system packages the build needs when they are missing
# (tools/build-deps.sh). Arguments go to `streambox serve`; started again when it asks
# (after a restore).
set -euo pipefail
cd "$(dirname "$0")"
packages=()
. tools/build-deps.sh
tools/install-missing.sh "${packages[@]}"
# Exit status 75 asks to be started again (a restored configuration takes its place at
# the start), as systemd's Restart=on-failure does on the appliance.
while :; do
    status=0
    cargo run --release -p streambox -- serve "$@" || status=$?
    [ "$status" = 75 ] || exit "$status"
    echo "serve.sh: starting streambox again"
done
