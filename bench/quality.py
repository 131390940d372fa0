#!/usr/bin/env python3
"""ABR picture quality: streambox's rungs against libx264 -preset veryfast at the same
bitrate and GOP, on the same pictures.

Two kinds of 1080p30 footage are made from ../shared/media/bigbuckbunny.mp4 with ffmpeg
(kept as near-lossless H.264, as a good encoder would send them):
- `animation`: the test clip, scaled to 1080p;
- `camera`: the same clip panned across (a moving 1080p crop of a 1440p picture) with
  temporal noise, as a camera's sensor gives it.

For each rung of the standard ladder (720p 2.8 Mbit/s, 480p 1 Mbit/s, 360p 0.6 Mbit/s;
2 s GOPs), the source's pictures, decoded by a separate ffmpeg whose CPU is not counted,
go to:
- streambox: the `rung_quality` example, the scaler and OpenH264 encoder of a rung with
  a tuning (`appliance/src/transcode/video.rs`, `Tuning`), CPU of its thread;
- ffmpeg: its scaler (bicubic, ffmpeg's default) and libx264 -preset veryfast with
  -b:v = -maxrate = the rung's bitrate, -bufsize one second of it, -g 60, -threads 1
  (one core, as a rung is), CPU of the process.

Each result is decoded and compared picture by picture with the source scaled with
Lanczos (ffmpeg's psnr and ssim filters, over Y, U and V). Prints Markdown tables: per
footage and rung, PSNR, SSIM, bitrate (average and the busiest second), CPU-seconds per
media-second, and the differences.

    bench/quality.sh [--seconds 20] [--tunings "balanced=complexity=1,filter=lanczos3;…"]
    bench/quality.sh --sweep          # each setting on its own, on the 720p and 360p rungs
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "..", "shared", "media", "bigbuckbunny.mp4")
FPS, GOP = 30, 60
W, H = 1920, 1080
# The standard ladder (transcode::ladder::DEFAULTS).
RUNGS = [("720p", 720, 2_800_000), ("480p", 480, 1_000_000), ("360p", 360, 600_000)]
FOOTAGE = {
    "animation": f"scale={W}:{H}:flags=lanczos,fps={FPS}",
    "camera": (f"scale=2560:1440:flags=lanczos,fps={FPS},"
               f"crop={W}:{H}:x='(iw-ow)/2*(1+sin(t*0.7))':y='(ih-oh)/2*(1+sin(t*0.45))',"
               "noise=c0s=10:c0f=t+u:c1s=5:c1f=t+u:c2s=5:c2f=t+u"),
}
# One setting at a time, over the current one (--sweep).
SWEEP = ["", "complexity=1", "complexity=2", "filter=catmull-rom", "filter=lanczos3",
         "filter=mitchell", "aq=off", "background=off", "scene=on", "rc=quality", "qp=10-42"]


def even(x):
    return int(round(x / 2)) * 2


def make_footage(work, kind, seconds):
    """The footage as near-lossless H.264 (libx264 -crf 12), `seconds` long."""
    path = os.path.join(work, f"{kind}.mkv")
    loops = int(seconds // 5.3) + 1
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", str(loops), "-i", SOURCE,
                    "-t", str(seconds), "-an", "-vf", FOOTAGE[kind], "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", "-preset", "fast", "-crf", "12", "-g", str(GOP), path],
                   check=True)
    return path


def decoder(source):
    """An ffmpeg writing the source's pictures as raw I420 to its standard output."""
    return subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", source, "-f", "rawvideo",
                             "-pix_fmt", "yuv420p", "-"], stdout=subprocess.PIPE)


def cpu_of(argv, stdin, stdout):
    """Runs argv; (its standard error, CPU seconds it used)."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return err.decode(errors="replace"), usage.ru_utime + usage.ru_stime


def streambox_rung(example, source, out, w, h, bitrate, tuning):
    """Makes the rung with the example; its JSON report."""
    dec = decoder(source)
    with open(out, "wb") as f:
        err, _ = cpu_of([example, str(W), str(H), str(FPS), str(w), str(h), str(bitrate), str(GOP),
                         tuning], dec.stdout, f)
    dec.wait()
    return json.loads(err.strip().splitlines()[-1])


def x264_rung(source, out, w, h, bitrate):
    """Makes the rung with ffmpeg's scaler and libx264 veryfast; (CPU seconds, bitrate)."""
    dec = decoder(source)
    _, cpu = cpu_of(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                     "-s", f"{W}x{H}", "-framerate", str(FPS), "-i", "-", "-vf", f"scale={w}:{h}",
                     "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-b:v", str(bitrate),
                     "-maxrate", str(bitrate), "-bufsize", str(bitrate), "-g", str(GOP),
                     "-keyint_min", str(GOP), "-sc_threshold", "0", "-f", "h264", out],
                    dec.stdout, subprocess.DEVNULL)
    dec.wait()
    return cpu


def compare(source, rung, w, h):
    """(PSNR dB, SSIM, pictures) of `rung` (raw H.264) against the source scaled to
    w×h with Lanczos, picture by picture."""
    graph = (f"[0:v]settb=1/{FPS},setpts=N,format=yuv420p,split[d0][d1];"
             f"[1:v]settb=1/{FPS},setpts=N,scale={w}:{h}:flags=lanczos+accurate_rnd+full_chroma_int,"
             f"format=yuv420p,split[r0][r1];[d0][r0]psnr;[d1][r1]ssim")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "info", "-framerate", str(FPS), "-i", rung,
                        "-i", source, "-lavfi", graph, "-f", "null", "-"],
                       capture_output=True, text=True)
    psnr = re.search(r"PSNR .*average:([\d.]+|inf)", r.stderr)
    ssim = re.search(r"SSIM .*All:([\d.]+)", r.stderr)
    frames = re.findall(r"frame=\s*(\d+)", r.stderr)
    if r.returncode != 0 or not psnr or not ssim:
        sys.exit(f"comparing {rung} failed:\n{r.stderr[-2000:]}")
    return float(psnr.group(1)), float(ssim.group(1)), int(frames[-1]) if frames else 0


def pictures_in(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                        "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--example", required=True, help="the built rung_quality example")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--footage", default="animation,camera")
    ap.add_argument("--tunings",
                    default="efficient=preset=efficient;balanced=preset=balanced;best=preset=best",
                    help="NAME=SETTINGS;… streambox tunings to compare (settings as in "
                         "Tuning::with: complexity=2,filter=lanczos3,…)")
    ap.add_argument("--sweep", action="store_true",
                    help="each setting on its own over the current tuning, 720p and 360p")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sbx-quality-")
    tunings = [t.split("=", 1) for t in a.tunings.split(";") if t]
    rungs = RUNGS
    if a.sweep:
        tunings = [[s or "current", s] for s in SWEEP]
        rungs = [r for r in RUNGS if r[0] in ("720p", "360p")]
    print(f"{a.seconds} s of 1080p{FPS} footage per kind, {GOP}-picture GOPs; PSNR and SSIM "
          f"against the source scaled with Lanczos; CPU-s per media-s on one core\n")
    print("| footage | rung | encoder | PSNR (dB) | SSIM | bitrate avg / busiest second (kbit/s) "
          "| CPU-s per media-s | vs x264: PSNR, CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in a.footage.split(","):
        source = make_footage(work, kind, a.seconds)
        total = pictures_in(source)
        media = total / FPS
        for name, height, bitrate in rungs:
            w, h = even(height * W / H), height
            theirs = os.path.join(work, f"{kind}-{name}-x264.h264")
            x_cpu = x264_rung(source, theirs, w, h, bitrate)
            x_psnr, x_ssim, x_n = compare(source, theirs, w, h)
            if x_n != total:
                sys.exit(f"{theirs}: {x_n} pictures compared, {total} in the source")
            x_rate = os.path.getsize(theirs) * 8 / media
            print(f"| {kind} | {name} ({w}x{h}) | libx264 veryfast | {x_psnr:.2f} | {x_ssim:.4f} | "
                  f"{x_rate / 1000:.0f} / – | {x_cpu / media:.3f} | – |", flush=True)
            for tname, settings in tunings:
                out = os.path.join(work, f"{kind}-{name}-{tname}.h264")
                rep = streambox_rung(a.example, source, out, w, h, bitrate, settings)
                psnr, ssim, n = compare(source, out, w, h)
                if n != total or rep["pictures"] != total:
                    sys.exit(f"{out}: {n} pictures compared, {rep['pictures']} encoded, "
                             f"{total} in the source")
                cpu = (rep["scale_cpu_s"] + rep["encode_cpu_s"]) / rep["media_s"]
                print(f"| {kind} | {name} | streambox {tname}" + (f" ({settings})" if settings else "") +
                      f" | {psnr:.2f} | {ssim:.4f} | {rep['bitrate'] / 1000:.0f} / "
                      f"{rep['peak_second_bitrate'] / 1000:.0f} | {cpu:.3f} "
                      f"(scale {rep['scale_cpu_s'] / rep['media_s']:.3f}) | "
                      f"{psnr - x_psnr:+.2f} dB, {cpu / (x_cpu / media):.2f}× |", flush=True)
                os.remove(out)
            os.remove(theirs)
        os.remove(source)
    os.rmdir(work)


if __name__ == "__main__":
    main()
