#!/usr/bin/env bash
# Refreshes web/assets/vendor/ from the npm registry at the versions pinned in
# web/package.json (and its package-lock.json): each player's minified build and its
# license file. The files are committed, so building streambox needs no npm; run this
# after changing a version, and commit what it changes.
set -euo pipefail
cd "$(dirname "$0")"
npm install --package-lock-only --no-audit --no-fund --ignore-scripts >/dev/null
npm ci --no-audit --no-fund --ignore-scripts
mkdir -p assets/vendor
cp node_modules/hls.js/dist/hls.min.js assets/vendor/hls.min.js
cp node_modules/hls.js/LICENSE assets/vendor/hls.js.LICENSE
cp node_modules/dashjs/dist/modern/umd/dash.all.min.js assets/vendor/dash.all.min.js
cp node_modules/dashjs/LICENSE.md assets/vendor/dash.js.LICENSE
# The licenses of what dash.js bundles into its build.
cp node_modules/dashjs/dist/modern/umd/dash.all.min.js.LICENSE.txt assets/vendor/dash.all.min.js.LICENSE.txt
{
  echo "hls.js $(node -p 'require("./node_modules/hls.js/package.json").version')"
  echo "dash.js $(node -p 'require("./node_modules/dashjs/package.json").version')"
} > assets/vendor/VERSIONS
rm -rf node_modules
echo "vendored: $(tr '\n' ' ' < assets/vendor/VERSIONS)"
