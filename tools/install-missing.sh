#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages named (those a script found missing), through
# sudo when not root; nothing when none are named.
#   tools/install-missing.sh PACKAGE...
set -euo pipefail
(($#)) || exit 0
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
