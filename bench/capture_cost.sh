#!/usr/bin/env bash
# What a capture source costs per stream: streambox's capture pipeline (YUYV and
# Motion-JPEG at 720p30 and 1080p30, converted and encoded with OpenH264) against ffmpeg
# with libx264 -preset veryfast doing the same. Prints a Markdown table.
#   bench/capture_cost.sh [--seconds S]
exec "$(dirname "$0")/run-example.sh" capture_cost bench/capture_cost.py "$@"
