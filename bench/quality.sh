#!/usr/bin/env bash
# ABR picture quality: streambox's rungs (scaler + OpenH264, with a tuning) against ffmpeg's
# scaler + libx264 -preset veryfast at the same bitrate and GOP, on two kinds of 1080p30
# footage; PSNR and SSIM against the source scaled with Lanczos, bitrate, CPU per media
# second. Prints Markdown tables (see bench/quality.py).
#   bench/quality.sh [--seconds 20] [--tunings "NAME=SETTINGS;…"] [--sweep]
exec "$(dirname "$0")/run-example.sh" rung_quality bench/quality.py "$@"
