#!/usr/bin/env python3
"""What a capture source costs: streambox's capture pipeline (conversion, Motion-JPEG
decoding, OpenH264 encoding, as `ingest::capture::pipeline` runs them on the source's
thread) against ffmpeg making the same H.264 from the same frames (its decoder and
swscale, libx264 -preset veryfast at the same bitrate and 2 s GOPs). The frames are the
test clip at each size, as a camera delivers them (raw YUYV 4:2:2, or Motion-JPEG),
made by a separate ffmpeg whose CPU is not counted. Prints a Markdown table.

    bench/capture_cost.sh [--seconds S]
"""
import argparse
import json
import os
import subprocess
import sys

CLIP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "media",
                    "bigbuckbunny.mp4")
# (format, width, height, fps, bitrate): the ABR ladder's default bitrates at 720p and 1080p.
CASES = [("YUYV", 1280, 720, 30, 2_800_000), ("MJPG", 1280, 720, 30, 2_800_000),
         ("YUYV", 1920, 1080, 30, 5_000_000), ("MJPG", 1920, 1080, 30, 5_000_000)]


def frames(fmt, w, h, fps, seconds):
    """An ffmpeg making the camera's frames on its standard output."""
    out = (["-f", "rawvideo", "-pix_fmt", "yuyv422"] if fmt == "YUYV"
           else ["-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj422p", "-f", "mjpeg"])
    return subprocess.Popen(["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", CLIP, "-t", str(seconds),
                             "-an", "-vf", f"scale={w}:{h},fps={fps}", *out, "-"],
                            stdout=subprocess.PIPE)


def cpu_of(argv, stdin):
    """Runs argv on stdin; (its output, CPU seconds it used)."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed")
    return out, usage.ru_utime + usage.ru_stime


def sound(example, seconds):
    """A sound card's 48 kHz stereo, encoded to AAC-LC by streambox (fdk-aac, 128 kbit/s)
    and by ffmpeg's own AAC encoder at the same bitrate; printed before the table."""
    def pcm():
        return subprocess.Popen(["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", CLIP, "-t", str(seconds),
                                 "-vn", "-ac", "2", "-ar", "48000", "-f", "s16le", "-"], stdout=subprocess.PIPE)
    gen = pcm()
    out, _ = cpu_of([example, "PCM", "48000", "2"], gen.stdout)
    gen.wait()
    ours = json.loads(out)
    gen = pcm()
    _, theirs = cpu_of(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "-",
                        "-c:a", "aac", "-b:a", "128k", "-f", "null", "-"], gen.stdout)
    gen.wait()
    per = ours["cpu_s"] / ours["media_s"]
    print(f"Sound, 48 kHz stereo to AAC-LC ({ours['bitrate'] / 1e3:.0f} kbit/s made): streambox "
          f"{per:.4f} CPU-s per media-s (slowest 20 ms read {ours['slowest_frame_ms']:.2f} ms), "
          f"ffmpeg's aac encoder {theirs / ours['media_s']:.4f}.\n", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--example", required=True, help="the built capture_cost example")
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    print("| frames from the camera | streambox: CPU-s per media-s | real-time factor (one core) "
          "| slowest frame | ffmpeg + libx264 veryfast: CPU-s per media-s | streambox / ffmpeg |")
    print("| --- | --- | --- | --- | --- | --- |")
    sound(a.example, a.seconds)
    for fmt, w, h, fps, bitrate in CASES:
        gen = frames(fmt, w, h, fps, a.seconds)
        out, _ = cpu_of([a.example, fmt, str(w), str(h), str(fps), str(bitrate)], gen.stdout)
        gen.wait()
        ours = json.loads(out)
        per = ours["cpu_s"] / ours["media_s"]
        gen = frames(fmt, w, h, fps, a.seconds)
        demux = (["-f", "rawvideo", "-pix_fmt", "yuyv422", "-s", f"{w}x{h}", "-framerate", str(fps)]
                 if fmt == "YUYV" else ["-f", "mjpeg", "-framerate", str(fps)])
        _, theirs = cpu_of(["ffmpeg", "-v", "error", *demux, "-i", "-", "-c:v", "libx264",
                            "-preset", "veryfast", "-b:v", str(bitrate), "-maxrate", str(bitrate),
                            "-bufsize", str(bitrate), "-g", str(2 * fps), "-pix_fmt", "yuv420p",
                            "-f", "null", "-"], gen.stdout)
        gen.wait()
        theirs /= ours["media_s"]
        print(f"| {fmt} {w}x{h} at {fps} fps, encoded at {bitrate / 1e6:.1f} Mbit/s "
              f"({ours['bitrate'] / 1e6:.2f} made) | {per:.3f} | {1 / per:.1f}x "
              f"| {ours['slowest_frame_ms']:.0f} ms | {theirs:.3f} | {per / theirs:.2f} |", flush=True)


main()
