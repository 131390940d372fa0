#!/usr/bin/env python3
"""Side-by-side: streambox vs nginx-rtmp, fed by the same ffmpeg publishers; and with
--rtsp, streambox pulling K RTSP cameras and fanning one of them out to M RTSP players;
with --dvr, the cost of recording (with retention deleting all the while) over live
only, for the same streams; and with --protect, the cost of encrypting them (AES-128 HLS),
and of serving sealed segments and parts, against the same streams in the clear; with
--fanout and --latency, serving viewers against nginx and glass-to-player latency; with
--soak, an hour of four recorded streams and 200 simulated LL-HLS viewers.

Each of N ffmpeg processes loops a 720p25 clip (libx264, 2 s GOPs, stereo AAC; made from
../shared/media/bigbuckbunny.mp4) with -re and -c copy, and writes it through the tee
muxer to both servers at once, so both receive the same bytes at the same moment.

Measured after a warm-up:
- CPU seconds per stream-minute of each server (utime + stime of all its processes);
- peak resident memory (VmRSS summed over its processes);
- for stream 0, the delay from a segment's (and, for streambox, an LL-HLS part's) last
  frame to it being listed in the playlist. streambox measures this itself, from the
  frame's arrival to the listing (the streambox_{part,segment}_delay_seconds histograms).
  nginx-rtmp cannot, so its figure comes from a paced model: the frame at media time t
  is taken as sent at S + t (S = streambox's media time zero; -re pacing), each
  segment's first sighting is found by polling nginx's playlist every 20 ms, and the
  model is corrected by its offset from streambox's exact figure over the same segments
  (ffmpeg's -re releases packets a little early; one tee feeds both servers, so the
  offset is the same). nginx-rtmp's figure keeps up to 20 ms of polling delay.
"""
import argparse, datetime, json, os, re, shutil, signal, socket, statistics, subprocess, sys
import tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYERS = json.load(open(os.path.join(ROOT, "tests", "players", "package.json")))["dependencies"]
HLS_JS_VERSION, DASH_JS_VERSION = PLAYERS["hls.js"], PLAYERS["dashjs"]
SOURCE = os.path.join(ROOT, "..", "shared", "media", "bigbuckbunny.mp4")
FRAME = 0.04  # 25 fps
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except OSError as e:  # a refused connection or a 404 just means "not yet"
        return 0, str(e)


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def rss_mib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def stop_all(procs, work):
    """Stops every process (SIGTERM, then SIGKILL after 5 s) and removes the work folder."""
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_rlimit_nofile 8192;
events {{ worker_connections {connections}; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp};
    chunk_size 4096;
    application live {{
      live on;
      record off;
      hls on;
      hls_path {dir}/hls;
      hls_fragment 2s;
      hls_playlist_length 24s;
      dash on;
      dash_path {dir}/dash;
      dash_fragment 2s;
      dash_playlist_length 24s;
    }}
  }}
}}
http {{
  access_log off;
  {http_extra}
  server {{
    listen 127.0.0.1:{http};
    location /hls {{ root {dir}; add_header Cache-Control no-cache; add_header Access-Control-Allow-Origin *; }}
    location /dash {{ root {dir}; add_header Access-Control-Allow-Origin *; }}
  }}
}}
"""


def start_nginx(work, procs, connections=1024, http_extra="", cpu=None):
    """nginx with libnginx-mod-rtmp (NGINX_CONF) in `work`, appended to `procs`, pinned
    to `cpu` when given: (its process, its RTMP port, its HTTP port)."""
    os.makedirs(f"{work}/hls", exist_ok=True), os.makedirs(f"{work}/dash", exist_ok=True)
    rtmp, http = free_port(), free_port()
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(dir=work, rtmp=rtmp, http=http, connections=connections,
                                  http_extra=http_extra,
                                  user="user root root;" if os.getuid() == 0 else ""))
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    nginx = subprocess.Popen([*pin, "nginx", "-p", work, "-c", f"{work}/nginx.conf"])
    procs.append(nginx)
    return nginx, rtmp, http


def make_clip(dir):
    out = os.path.join(dir, "clip.flv")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", SOURCE, "-t", "4", "-c:v", "libx264",
         "-preset", "veryfast", "-bf", "3", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
         "-c:a", "aac", "-ac", "2", "-b:a", "128k", out],
        check=True)
    return out


def watch_streambox(base, until, parts, segments):
    """Blocking-reload loop over stream 0's video playlist; records first-seen times."""
    url = f"{base}/live/s0/video.m3u8"
    query = ""
    while time.time() < until:
        status, text = fetch(url + query, timeout=15)
        now = time.time()
        if status != 200:
            time.sleep(0.05)
            continue
        pdt, msn = None, int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1)) - 1
        offset = 0.0
        for line in text.splitlines():
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdt = datetime.datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
                msn += 1
                offset = 0.0
            elif line.startswith("#EXT-X-PART:") and pdt is not None:
                d = float(re.search(r"DURATION=([\d.]+)", line).group(1))
                offset += d
                m = re.search(r"part-(\d+)-(\d+)\.m4s", line)
                parts.setdefault((int(m.group(1)), int(m.group(2))), (now, pdt + offset))
            elif line.startswith("#EXTINF:") and pdt is not None:
                d = float(line[8:].rstrip(","))
                segments.setdefault(msn, (now, pdt + d))
        hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="video/part-(\d+)-(\d+)', text)
        query = f"?_HLS_msn={hint.group(1)}&_HLS_part={hint.group(2)}" if hint else ""


def watch_nginx(base, until, segments):
    """Polls nginx-rtmp's playlist of stream 0 every 20 ms; records when each segment was
    first seen and its end in media time (seconds from the stream's first frame)."""
    url = f"{base}/hls/s0.m3u8"
    ends = {}
    while time.time() < until:
        status, text = fetch(url, timeout=5)
        now = time.time()
        if status == 200 and "#EXT-X-MEDIA-SEQUENCE" in text:
            seq = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
            for i, d in enumerate(float(d) for d in re.findall(r"#EXTINF:([\d.]+)", text)):
                n = seq + i
                prev = 0.0 if n == 0 else ends.get(n - 1)
                if n in ends or prev is None:
                    continue
                ends[n] = prev + d
                segments[n] = (now, ends[n])
        time.sleep(0.02)


def histogram(metrics, name):
    """(mean seconds, text) of a streambox histogram for s0/video."""
    labels = 'stream="s0",track="video"'
    total = float(re.search(rf'{name}_sum{{{labels}}} (\S+)', metrics).group(1))
    count = float(re.search(rf'{name}_count{{{labels}}} (\S+)', metrics).group(1))
    if not count:
        return None, "n/a"
    bound = "inf"
    for le, c in re.findall(rf'{name}_bucket{{{labels},le="([^"]+)"}} (\S+)', metrics):
        if float(c) >= 0.95 * count:
            bound = f"{float(le) * 1000:.0f} ms"
            break
    return total / count, f"mean {total / count * 1000:.0f} ms, p95 ≤ {bound} (n={count:.0f})"


def summary(delays):
    if not delays:
        return "n/a"
    delays = sorted(delays)
    p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))]
    return f"median {statistics.median(delays) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (n={len(delays)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streambox", required=True)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=None,
                    help="how long each phase is measured: 60 s by default (--fanout: 8 s "
                         "per row; --latency: 120 s per player)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rtsp", action="store_true",
                    help="RTSP: pull --cameras cameras, then fan camera 0 out to --players players")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--players", type=int, default=16)
    ap.add_argument("--dvr", action="store_true",
                    help="recording: live only, then recording with retention, same streams")
    ap.add_argument("--keep-bytes", default="4MB",
                    help="--dvr: per-stream size limit, small so retention deletes throughout")
    ap.add_argument("--abr", action="store_true",
                    help="ABR: one 1080p30 stream with a 720p/480p/360p ladder; CPU per rung, "
                         "against ffmpeg -c:v libx264 -preset veryfast making the same ladder")
    ap.add_argument("--quality", default="balanced", choices=["efficient", "balanced", "best"],
                    help="with --abr: the rungs' quality preset")
    ap.add_argument("--protect", action="store_true",
                    help="encrypted streams: the same streams in the clear, then encrypted "
                         "(AES-128 HLS); CPU per stream-minute and wrk's requests/s for a "
                         "segment and a part in each phase")
    ap.add_argument("--fanout", action="store_true",
                    help="HTTP fan-out: streambox and nginx each on CPU 0, wrk on CPU 1; "
                         "requests/s, throughput, latency and server CPU for a media playlist, "
                         "a segment and a part with 10, 100 and 1000 keep-alive connections")
    ap.add_argument("--latency", action="store_true",
                    help="glass-to-player latency: a publisher burning its wall clock into the "
                         "picture, played by the portal's watch page (hls.js) from streambox "
                         "and by hls.js from nginx-rtmp, with 2 s and 5.3 s GOPs")
    ap.add_argument("--soak", action="store_true",
                    help="soak: 2 RTMP publishers, 1 RTSP publisher and 1 RTSP camera that drops "
                         "every --drop-every seconds, all recorded, watched by --viewers "
                         "simulated LL-HLS viewers for --minutes; RSS, log, continuity, metrics")
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--viewers", type=int, default=200)
    ap.add_argument("--drop-every", type=int, default=300)
    args = ap.parse_args()
    if args.soak:
        return main_soak(args)
    if args.seconds is None:
        args.seconds = 8 if args.fanout else 120 if args.latency else 60
    if args.latency:
        return main_latency(args)
    if args.fanout:
        return main_fanout(args)
    if args.protect:
        return main_protect(args)
    if args.abr:
        return main_abr(args)
    if args.rtsp:
        return main_rtsp(args)
    if args.dvr:
        return main_dvr(args)
    work = tempfile.mkdtemp(prefix="sbx-bench-")
    procs = []
    try:
        clip = make_clip(work)
        nginx, n_rtmp, n_http = start_nginx(work, procs)
        sb, cli, s_rtmp, s_http = start_streambox(args.streambox, work, procs)
        keys = [re.search(r"Stream Key: (\S+)", cli("stream", "add", f"s{i}")).group(1)
                for i in range(args.streams)]
        for i, key in enumerate(keys):
            tee = (f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{s_rtmp}/live/s{i}?key={key}|"
                   f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{n_rtmp}/live/s{i}")
            procs.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
                 "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "tee", tee]))
        sb_base, ng_base = f"http://127.0.0.1:{s_http}", f"http://127.0.0.1:{n_http}"
        until = time.time() + args.warmup + args.seconds
        parts, sb_segs, ng_segs = {}, {}, {}
        threads = [threading.Thread(target=watch_streambox, args=(sb_base, until, parts, sb_segs)),
                   threading.Thread(target=watch_nginx, args=(ng_base, until, ng_segs))]
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        # nginx-rtmp's media times count from the first frame; both servers got it at once.
        s_wall = stream_start(sb_base)
        cpu0 = {"streambox": cpu_seconds(sb.pid), "nginx-rtmp": cpu_seconds(nginx.pid)}
        rss0 = {"streambox": rss_mib(sb.pid), "nginx-rtmp": rss_mib(nginx.pid)}
        peak = dict(rss0)
        end = time.time() + args.seconds
        while time.time() < end:
            peak["streambox"] = max(peak["streambox"], rss_mib(sb.pid))
            peak["nginx-rtmp"] = max(peak["nginx-rtmp"], rss_mib(nginx.pid))
            time.sleep(0.5)
        cpu1 = {"streambox": cpu_seconds(sb.pid), "nginx-rtmp": cpu_seconds(nginx.pid)}
        for t in threads:
            t.join()
        part_delays = [seen - (end_wall - FRAME) for (seen, end_wall) in parts.values()]
        seg_delays = [seen - (end_wall - FRAME) for (seen, end_wall) in sb_segs.values()]
        _, metrics = fetch(sb.metrics_url)
        ng_delays = [seen - (s_wall + end_media - FRAME) for (seen, end_media) in ng_segs.values()]
        minutes = args.seconds / 60
        print(f"\n{args.streams} streams, {args.seconds} s measured after {args.warmup} s warm-up, "
              f"720p25 H.264 (2 s GOP, B-frames) + stereo AAC, ~1.7 Mbit/s each\n")
        part_mean, part_text = histogram(metrics, "streambox_part_delay_seconds")
        seg_mean, seg_text = histogram(metrics, "streambox_segment_delay_seconds")
        # The paced model is off by ffmpeg's -re release timing, equally for both servers
        # (one tee). streambox's own exact figure for the same segments gives the offset.
        offset = seg_mean - statistics.mean(seg_delays) if seg_mean is not None and seg_delays else 0.0
        ng_text = summary([d + offset for d in ng_delays])
        print("| server | CPU s per stream-minute | RSS after warm-up → peak (MiB) | segment listed after its last frame | part listed after its last frame |")
        print("| --- | --- | --- | --- | --- |")
        for name, seg, prt in (("streambox", seg_text, part_text), ("nginx-rtmp", ng_text, "no LL-HLS")):
            cpu = (cpu1[name] - cpu0[name]) / (args.streams * minutes)
            print(f"| {name} | {cpu:.3f} | {rss0[name]:.1f} → {peak[name]:.1f} | {seg} | {prt} |")
        print(f"\npaced-model offset applied to nginx-rtmp: {offset * 1000:+.0f} ms; "
              f"streambox parts seen by a blocking-reload client, paced model + offset: "
              f"{summary([d + offset for d in part_delays])}")
    finally:
        stop_all(procs, work)


CAMERA = os.path.join(ROOT, "appliance", "tests", "support", "camera.py")


def measure(pid, seconds):
    """(CPU seconds used, RSS at start, peak RSS) of pid's tree over `seconds`."""
    cpu0, rss0 = cpu_seconds(pid), rss_mib(pid)
    peak, end = rss0, time.time() + seconds
    while time.time() < end:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.5)
    return cpu_seconds(pid) - cpu0, rss0, peak


def main_rtsp(args):
    """K GStreamer RTSP cameras (720p25 H.264 + AAC, the same clip as the RTMP run) pulled
    by streambox over TCP; then M ffmpeg RTSP players (TCP, -c copy) on camera 0. Reports
    streambox's CPU per camera-minute, the extra CPU per player-minute, and memory."""
    work = tempfile.mkdtemp(prefix="sbx-rtsp-bench-")
    procs = []
    try:
        clip = make_clip(work)
        # The camera serves a file once: make it outlast the run.
        loops = (2 * args.warmup + 2 * args.seconds) // 4 + 4
        long_clip = os.path.join(work, "camera.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", str(loops), "-i", clip,
                        "-c", "copy", long_clip], check=True)
        ports = []
        for _ in range(args.cameras):
            cam = subprocess.Popen(["/usr/bin/python3", CAMERA, long_clip, "aac", "0"],
                                   stdout=subprocess.PIPE, text=True)
            procs.append(cam)
            ports.append(int(cam.stdout.readline().split()[-1]))
        s_http, s_rtsp = free_port(), free_port()
        env = dict(os.environ, STREAMBOX_LOG="warn")
        sb = subprocess.Popen([args.streambox, "--data-dir", f"{work}/sb", "serve",
                               "--rtmp-listen", "127.0.0.1:0", "--http-listen", f"127.0.0.1:{s_http}",
                               "--rtsp-listen", f"127.0.0.1:{s_rtsp}"], env=env, stdout=subprocess.DEVNULL)
        procs.append(sb)
        time.sleep(1)
        for i, port in enumerate(ports):
            subprocess.run([args.streambox, "--data-dir", f"{work}/sb", "source", "add", f"cam{i}",
                            f"rtsp://127.0.0.1:{port}/stream1"], check=True, capture_output=True, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if all(fetch(f"http://127.0.0.1:{s_http}/live/cam{i}/video.m3u8")[0] == 200
                   for i in range(args.cameras)):
                break
            time.sleep(0.5)
        else:
            sys.exit("the cameras did not go live")
        time.sleep(args.warmup)
        pull_cpu, pull_rss0, pull_peak = measure(sb.pid, args.seconds)
        players = []
        for _ in range(args.players):
            p = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i",
                                  f"rtsp://127.0.0.1:{s_rtsp}/live/cam0", "-c", "copy", "-f", "null", "-"])
            players.append(p)
            procs.append(p)
        time.sleep(args.warmup)
        fan_cpu, fan_rss0, fan_peak = measure(sb.pid, args.seconds)
        alive = sum(p.poll() is None for p in players)
        minutes = args.seconds / 60
        per_camera = pull_cpu / (args.cameras * minutes)
        per_player = (fan_cpu - pull_cpu) / (args.players * minutes)
        print(f"\n{args.cameras} GStreamer RTSP cameras pulled over TCP (720p25 H.264 with B-frames + "
              f"stereo AAC, ~1.7 Mbit/s each); then {args.players} ffmpeg RTSP players (TCP) on camera 0; "
              f"{args.seconds} s measured after {args.warmup} s warm-up each\n")
        print("| phase | streambox CPU s per minute | per camera-minute | per player-minute | RSS start → peak (MiB) |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| {args.cameras} camera pulls | {pull_cpu / minutes:.3f} | {per_camera:.3f} | – | "
              f"{pull_rss0:.1f} → {pull_peak:.1f} |")
        print(f"| + {args.players} RTSP players ({alive} still playing at the end) | {fan_cpu / minutes:.3f} | – | "
              f"{per_player:.3f} | {fan_rss0:.1f} → {fan_peak:.1f} |")
    finally:
        stop_all(procs, work)


def metric(metrics, name, labels=""):
    """Sum of a metric's samples whose labels contain `labels`."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def phase_delays(base, seconds):
    """Stream 0's parts seen by a blocking-reload client over `seconds`: delay of each
    from its last frame (paced model: PROGRAM-DATE-TIME + offset) to its first sighting."""
    parts, segs = {}, {}
    watch_streambox(base, time.time() + seconds, parts, segs)
    # Parts already listed at the first request were not seen arrive.
    first = min((seen for seen, _ in parts.values()), default=0)
    return sorted(seen - (end_wall - FRAME) for (seen, end_wall) in parts.values() if seen > first)


def delay_text(d):
    if not d:
        return "n/a"
    p99 = d[min(len(d) - 1, int(len(d) * 0.99))]
    return (f"median {statistics.median(d) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"worst {d[-1] * 1000:.0f} ms (n={len(d)})")


def start_streambox(binary, work, procs, cpu=None, **env_extra):
    """streambox serving from `work`/sb on free ports (RTSP on an ephemeral one), with
    STREAMBOX_LOG=warn and `env_extra` in its environment, appended to `procs`, pinned
    to `cpu` when given: (its process, a function running its CLI on the same data,
    its RTMP port, its HTTP port). The process's `metrics_url` is /metrics on a listener
    of its own (on the main one it needs an administrator)."""
    s_rtmp, s_http, s_metrics = free_port(), free_port(), free_port()
    env = dict(os.environ, STREAMBOX_LOG="warn",
               STREAMBOX_METRICS__LISTEN=f"127.0.0.1:{s_metrics}", **env_extra)
    data = f"{work}/sb"

    def cli(*a):
        return subprocess.run([binary, "--data-dir", data, *a], check=True,
                              capture_output=True, text=True, env=env).stdout

    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    sb = subprocess.Popen([*pin, binary, "--data-dir", data, "serve", "--rtmp-listen",
                           f"127.0.0.1:{s_rtmp}", "--http-listen", f"127.0.0.1:{s_http}",
                           "--rtsp-listen", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL)
    sb.metrics_url = f"http://127.0.0.1:{s_metrics}/metrics"
    procs.append(sb)
    time.sleep(1)
    return sb, cli, s_rtmp, s_http


def streambox_alone(args, work, procs):
    """streambox serving --streams streams s0… in `work`, each fed by an ffmpeg looping
    the bench clip over RTMP (all appended to `procs`): the server's process, a function
    running its CLI on the same data, and its HTTP base URL."""
    clip = make_clip(work)
    sb, cli, s_rtmp, s_http = start_streambox(args.streambox, work, procs)
    keys = [re.search(r"Stream Key: (\S+)", cli("stream", "add", f"s{i}")).group(1)
            for i in range(args.streams)]
    for i, key in enumerate(keys):
        procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
             "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "flv",
             f"rtmp://127.0.0.1:{s_rtmp}/live/s{i}?key={key}"]))
    return sb, cli, f"http://127.0.0.1:{s_http}"


def main_dvr(args):
    """N streams as in the RTMP run, on streambox alone: live only for --seconds, then
    with recording on and a small --keep-bytes, so retention deletes files throughout,
    for --seconds more. Reports CPU per stream-minute of each phase, the write
    throughput and per-batch write time (fsyncs included), the segments deleted, and
    the delay of stream 0's LL-HLS parts in each phase: a stall anywhere between ingest
    and the playlist while files are written or deleted shows up as its worst case."""
    work = tempfile.mkdtemp(prefix="sbx-dvr-bench-")
    procs = []
    try:
        sb, cli, base = streambox_alone(args, work, procs)
        time.sleep(args.warmup)
        results = []
        for phase in ("live only", "recording + retention"):
            if phase != "live only":
                for i in range(args.streams):
                    cli("stream", "set", f"s{i}", "--record", "on", "--keep-bytes", args.keep_bytes)
                time.sleep(args.warmup)
            _, m0 = fetch(sb.metrics_url)
            cpu0, rss0 = cpu_seconds(sb.pid), rss_mib(sb.pid)
            delays = phase_delays(base, args.seconds)
            cpu1, rss1 = cpu_seconds(sb.pid), rss_mib(sb.pid)
            _, m1 = fetch(sb.metrics_url)
            d = {n: metric(m1, n) - metric(m0, n) for n in (
                "streambox_dvr_written_bytes_total", "streambox_dvr_deleted_segments_total",
                "streambox_dvr_write_seconds_sum", "streambox_dvr_write_seconds_count",
                "streambox_frames_total")}
            results.append((phase, (cpu1 - cpu0) / (args.streams * args.seconds / 60), rss0, rss1, d, delays))
        print(f"\n{args.streams} streams, 720p25 H.264 (2 s GOP, B-frames) + stereo AAC, ~1.7 Mbit/s "
              f"each; each phase {args.seconds} s after {args.warmup} s warm-up; retention limit "
              f"{args.keep_bytes} per stream\n")
        print("| phase | CPU s per stream-minute | RSS (MiB) | written | write time per batch | "
              "segments deleted | stream 0 LL-HLS part listed after its last frame |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for phase, cpu, rss0, rss1, d, delays in results:
            rate = d["streambox_dvr_written_bytes_total"] / args.seconds
            batches = d["streambox_dvr_write_seconds_count"]
            per = (d["streambox_dvr_write_seconds_sum"] / batches * 1000) if batches else 0
            written = f"{rate / 1e6:.2f} MB/s" if rate else "–"
            wt = f"mean {per:.1f} ms (n={batches:.0f})" if batches else "–"
            print(f"| {phase} | {cpu:.3f} | {rss0:.1f} → {rss1:.1f} | {written} | {wt} | "
                  f"{d['streambox_dvr_deleted_segments_total']:.0f} | {delay_text(delays)} |")
        live, rec = results[0][1], results[1][1]
        print(f"\nrecording adds {100 * (rec - live) / live:+.1f} % CPU over live only")
        files = sum(len(f) for _, _, f in os.walk(f"{work}/sb/recordings"))
        print(f"files on disk at the end: {files}")
    finally:
        stop_all(procs, work)


def main_protect(args):
    """N streams on streambox alone, as in the RTMP run: in the clear for --seconds, then
    encrypted (`stream set --encrypt on`) for --seconds more, then in the clear again
    (the machine's drift between the two clear phases says what a difference means). Reports CPU per
    stream-minute of each phase (the sealing is done once per part and segment, in the
    packager), and in each phase wrk's requests/s and the server's CPU for one complete
    segment and one part of stream 0 with 64 keep-alive connections: serving sealed
    bytes should cost what serving clear ones does."""
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    work = tempfile.mkdtemp(prefix="sbx-protect-bench-")
    procs = []
    try:
        sb, cli, base = streambox_alone(args, work, procs)
        time.sleep(args.warmup)
        results = []
        # Clear again at the end: the two clear phases show how much the machine drifts.
        for phase in ("clear", "encrypted", "clear again"):
            if phase != "clear":
                on = "on" if phase == "encrypted" else "off"
                for i in range(args.streams):
                    cli("stream", "set", f"s{i}", "--encrypt", on, "--rotate", "10m")
                time.sleep(args.warmup)
            cpu0 = cpu_seconds(sb.pid)
            time.sleep(args.seconds)
            cpu = (cpu_seconds(sb.pid) - cpu0) / (args.streams * args.seconds / 60)
            _, playlist = fetch(f"{base}/live/s0/video.m3u8")
            if phase == "encrypted" and "METHOD=AES-128" not in playlist:
                sys.exit(f"stream 0 is not encrypted:\n{playlist}")
            segment = [l for l in playlist.splitlines() if l.startswith("video/seg-")][-1]
            part = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', playlist)[-1]
            served = {}
            for what, uri in (("segment", segment), ("part", part)):
                status, _ = fetch(f"{base}/live/s0/{uri}")
                if status != 200:
                    sys.exit(f"{uri}: {status}")
                with urllib.request.urlopen(f"{base}/live/s0/{uri}") as r:
                    size = len(r.read())
                r = wrk_run(f"{base}/live/s0/{uri}", 10, 64, sb.pid)
                served[what] = (size, (r["rps"], r["mibs"], r["cores"]))
            results.append((phase, cpu, served))
        print(f"\n{args.streams} streams, 720p25 H.264 (2 s GOP, B-frames) + stereo AAC, ~1.7 Mbit/s "
              f"each; each phase {args.seconds} s after {args.warmup} s warm-up; wrk -t1 -c64 "
              f"for 10 s on stream 0's newest complete segment and part\n")
        print("| phase | CPU s per stream-minute | segment: size, requests/s, MiB/s, server cores | "
              "part: size, requests/s, MiB/s, server cores |")
        print("| --- | --- | --- | --- |")
        for phase, cpu, served in results:
            cells = [f"{size / 1024:.0f} KiB, {rps:,.0f}/s, {mbs:,.0f}, {cores:.2f}"
                     for size, (rps, mbs, cores) in (served["segment"], served["part"])]
            print(f"| {phase} | {cpu:.3f} | {cells[0]} | {cells[1]} |")
        clear, sealed = (results[0][1] + results[2][1]) / 2, results[1][1]
        print(f"\nencryption adds {100 * (sealed - clear) / clear:+.1f} % CPU per stream over "
              f"the mean of the clear phases (which differ by "
              f"{100 * abs(results[0][1] - results[2][1]) / clear:.1f} %)")
    finally:
        stop_all(procs, work)


def wrk_run(url, seconds, connections, pid, cpu=None):
    """wrk (one thread, pinned to `cpu` when given) with `connections` keep-alive
    connections on `url` for `seconds`: a dict of requests/s, MiB/s, latency p50 and p99
    (ms), responses that were not 2xx/3xx and socket errors, and the CPU seconds per
    second of server `pid`."""
    cpu0 = cpu_seconds(pid)
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    out = subprocess.run([*pin, "wrk", "-t1", f"-c{connections}",
                          f"-d{seconds}s", "--latency", "--timeout", "5s", url],
                         check=True, capture_output=True, text=True).stdout
    cpu = (cpu_seconds(pid) - cpu0) / seconds

    def ms(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)  # binary units
    scale = {"B": 2**-20, "KB": 2**-10, "MB": 1.0, "GB": 2**10}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "mibs": float(m.group(1)) * scale,
        "p50": ms("50"),
        "p99": ms("99"),
        "bad": int(bad.group(1)) if bad else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "cores": cpu,
    }


def main_fanout(args):
    """One stream (the RTMP run's clip) published to streambox and nginx-rtmp at once,
    each server pinned to CPU 0 (streambox then runs one worker thread), wrk and the
    publisher on CPU 1. For each server, wrk fetches the media playlist, the newest
    complete segment (CMAF for streambox, MPEG-TS for nginx-rtmp) and, for streambox,
    the newest complete LL-HLS part, with 10, 100 and 1000 keep-alive connections for
    --seconds each (8 by default). nginx serves nginx-rtmp's files from disk as a
    careful admin would set it up: sendfile and tcp_nopush on, one worker, connections
    kept alive for any number of requests."""
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    seconds = args.seconds
    work = tempfile.mkdtemp(prefix="sbx-fanout-bench-")
    procs = []
    try:
        clip = make_clip(work)
        nginx, n_rtmp, n_http = start_nginx(
            work, procs, connections=4096,
            http_extra="sendfile on; tcp_nopush on; keepalive_requests 10000000;", cpu=0)
        sb, cli, s_rtmp, s_http = start_streambox(
            args.streambox, work, procs, cpu=0, STREAMBOX_HTTP__MAX_CONNECTIONS_PER_CLIENT="4096")
        key = re.search(r"Stream Key: (\S+)", cli("stream", "add", "s0")).group(1)
        tee = (f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{s_rtmp}/live/s0?key={key}|"
               f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{n_rtmp}/live/s0")
        procs.append(subprocess.Popen(
            ["taskset", "-c", "1", "ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1",
             "-i", clip, "-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "tee", tee]))
        time.sleep(args.warmup)
        sb_base, ng_base = f"http://127.0.0.1:{s_http}", f"http://127.0.0.1:{n_http}"

        def newest(server, what):
            """(URL, size in bytes) of the server's media playlist or its newest complete
            segment or part."""
            if server == "streambox":
                playlist_url = f"{sb_base}/live/s0/video.m3u8"
                _, playlist = fetch(playlist_url)
                uris = {"playlist": None,
                        "segment": [l for l in playlist.splitlines() if l.startswith("video/seg-")],
                        "part": re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', playlist)}[what]
                url = playlist_url if uris is None else f"{sb_base}/live/s0/{uris[-1]}"
            else:
                playlist_url = f"{ng_base}/hls/s0.m3u8"
                _, playlist = fetch(playlist_url)
                uris = None if what == "playlist" else [
                    l for l in playlist.splitlines() if l.endswith(".ts")]
                url = playlist_url if uris is None else f"{ng_base}/hls/{uris[-1]}"
            with urllib.request.urlopen(url, timeout=10) as r:
                return url, len(r.read())

        rows = []
        for what in ("playlist", "segment", "part"):
            for server, pid in (("streambox", sb.pid), ("nginx", nginx.pid)):
                if what == "part" and server == "nginx":
                    continue
                for connections in (10, 100, 1000):
                    url, size = newest(server, what)
                    r = wrk_run(url, seconds, connections, pid, cpu=1)
                    rows.append((what, server, size, connections, r))
                    print(f"{what} {server} {connections}: {r}", file=sys.stderr)
        print(f"\nOne 720p25 stream (2 s GOP, ~1.7 Mbit/s); each server on CPU 0, wrk -t1 on CPU 1, "
              f"{seconds} s per row\n")
        print("| what | server | size | connections | requests/s | MiB/s | latency p50 / p99 | "
              "server CPU | requests/s per core | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for what, server, size, connections, r in rows:
            per_core = r["rps"] / max(r["cores"], 0.01)
            print(f"| {what} | {server} | {size / 1024:.1f} KiB | {connections} | {r['rps']:,.0f} | "
                  f"{r['mibs']:,.0f} | {r['p50']:.2f} / {r['p99']:.2f} ms | {100 * r['cores']:.0f} % | "
                  f"{per_core:,.0f} | {r['bad'] + r['errors']} |")
        best = max((r["mibs"] * 8 * 2**20 / max(r["cores"], 0.01), c)
                   for w, s, _, c, r in rows if w == "segment" and s == "streambox")
        print(f"\nstreambox serves segments at {best[0] / 1e9:.1f} Gbit/s per core "
              f"(with {best[1]} connections): {best[0] / 4e6:,.0f} viewers of a 4 Mbit/s stream "
              f"per core; a 1 GbE port carries {1e9 / 4e6:.0f}.")
    finally:
        stop_all(procs, work)


# The publisher's clock in the picture: the frame's wall-clock time (RTCTIME, taken as
# the frame enters the filters, paced by -re) in ms, bit k as a 16x16 block at x = 16k of
# a strip along the top left; then the frame is renumbered at a constant rate for the
# encoder. bench/glass.mjs reads it back.
STAMP = ("[0:v]setpts='RTCTIME/(1000000*TB)',split[a][b];"
         "[b]crop=656:16:0:0,format=gray,"
         "geq=lum='255*mod(floor(T*1000/pow(2,floor(X/16))),2)'[s];"
         "[a][s]overlay=0:0,setpts='N/(25*TB)'[v]")


def glass(kind, url, seconds):
    """bench/glass.mjs's reading of the stream at `url` (a watch page or an HLS playlist)."""
    out = subprocess.run(["node", os.path.join(ROOT, "bench", "glass.mjs"), kind, url, str(seconds)],
                         check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    return json.loads(out.strip().splitlines()[-1])


def main_latency(args):
    """Glass-to-player latency, read off the picture (bench/glass.mjs): one publisher
    (ffmpeg, the bench clip re-encoded by libx264 veryfast with -tune zerolatency at
    2.5 Mbit/s, its wall clock burned into every frame) feeds streambox and nginx-rtmp
    at once; streambox is played by its own portal watch page (hls.js in low-latency
    mode, as viewers get it) and by dash.js on its low-latency MPD, nginx-rtmp's HLS by
    the same hls.js with the same settings and its DASH by the same dash.js. Once with
    2 s GOPs and once with the test clip's 5.3 s, each player for --seconds (120 by
    default) after a warm-up."""
    seconds = args.seconds
    work = tempfile.mkdtemp(prefix="sbx-latency-bench-")
    procs = []
    rows = []
    try:
        clip = make_clip(work)
        _, n_rtmp, n_http = start_nginx(work, procs)
        _, cli, s_rtmp, s_http = start_streambox(args.streambox, work, procs)
        for gop in (2.0, 5.32):
            name = f"g{int(gop * 100)}"
            key = re.search(r"Stream Key: (\S+)", cli("stream", "add", name)).group(1)
            tee = (f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{s_rtmp}/live/{name}?key={key}|"
                   f"[f=flv:onfail=ignore]rtmp://127.0.0.1:{n_rtmp}/live/{name}")
            publisher = subprocess.Popen(
                ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
                 "-filter_complex", STAMP, "-map", "[v]", "-map", "0:a",
                 "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                 "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k",
                 "-g", str(round(gop * 25)), "-keyint_min", str(round(gop * 25)),
                 "-sc_threshold", "0", "-flags:v", "+global_header", "-c:a", "copy",
                 "-f", "tee", tee])
            procs.append(publisher)
            time.sleep(args.warmup)
            for server, kind, url in (
                    ("streambox, portal page (hls.js)", "page",
                     f"http://127.0.0.1:{s_http}/watch/{name}"),
                    ("streambox, dash.js (low-latency MPD)", "dash",
                     f"http://127.0.0.1:{s_http}/live/{name}/low-latency.mpd"),
                    ("nginx-rtmp, hls.js", "hls", f"http://127.0.0.1:{n_http}/hls/{name}.m3u8"),
                    ("nginx-rtmp, dash.js", "dash", f"http://127.0.0.1:{n_http}/dash/{name}.mpd")):
                r = glass(kind, url, seconds)
                print(f"{gop} s GOP, {server}: {r}", file=sys.stderr)
                rows.append((gop, server, r))
            publisher.terminate()
            publisher.wait(timeout=10)
        print(f"\n720p25 (libx264 veryfast zerolatency, 2.5 Mbit/s, the publisher's wall clock "
              f"in the picture), hls.js {HLS_JS_VERSION} low-latency mode and dash.js "
              f"{DASH_JS_VERSION} in Chromium; {seconds} s per row after 5 s of playback\n")
        print("| GOP | server and player | glass-to-player median (p5 / p95) | "
              "the player's own latency, median | stalls (time stalled) | frames read |")
        print("| --- | --- | --- | --- | --- | --- |")
        for gop, server, r in rows:
            def ms(v):
                return "n/a" if v is None else f"{v / 1000:.2f} s"
            print(f"| {gop:g} s | {server} | {ms(r['median_ms'])} ({ms(r['p5_ms'])} / "
                  f"{ms(r['p95_ms'])}) | {ms(r['player_latency_median_ms'])} | {r['stalls']} "
                  f"({r['stalled_ms'] / 1000:.1f} s) | {r['frames']} ({r['unreadable']} unreadable) |")
    finally:
        stop_all(procs, work)


def thread_cpu(pid):
    """CPU seconds per thread name of process `pid` (threads of one name summed)."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return out


def hist_mean(metrics, name, stream):
    labels = f'stream="{stream}",track="video"'
    total = re.search(rf'{name}_sum{{{labels}}} (\S+)', metrics)
    count = re.search(rf'{name}_count{{{labels}}} (\S+)', metrics)
    if not total or not count or float(count.group(1)) == 0:
        return None
    return float(total.group(1)) / float(count.group(1))


RUNGS = [("720p", 1280, 720, "2800k"), ("480p", 854, 480, "1000k"), ("360p", 640, 360, "600k")]


def main_abr(args):
    """One 1080p30 libx264 stream (2 s GOPs, B-frames) published with -re and a
    720p/480p/360p ladder: streambox's CPU per stage (its threads are named abr-decoder,
    rung-720p, …) over --seconds of media, as CPU-seconds per media second; then the
    same ladder from the same file by ffmpeg (-c:v libx264 -preset veryfast, one
    decode, split and scaled, as users would otherwise run it) as fast as it goes; and
    the delay from a frame's arrival to its segment being listed, source against rungs."""
    work = tempfile.mkdtemp(prefix="sbx-abr-bench-")
    procs = []
    try:
        clip = os.path.join(work, "1080p30.flv")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", SOURCE, "-vf", "scale=1920:1080,fps=30",
             "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "60", "-keyint_min", "60",
             "-sc_threshold", "0", "-b:v", "4500k", "-c:a", "aac", "-ac", "2", "-b:a", "128k", clip],
            check=True)
        s_rtmp, s_http, s_metrics = free_port(), free_port(), free_port()
        env = dict(os.environ, STREAMBOX_LOG="warn",
                   STREAMBOX_METRICS__LISTEN=f"127.0.0.1:{s_metrics}")
        data = f"{work}/sb"
        out = subprocess.run([args.streambox, "--data-dir", data, "stream", "add", "lobby"], check=True,
                             capture_output=True, text=True, env=env).stdout
        key = re.search(r"Stream Key: (\S+)", out).group(1)
        subprocess.run([args.streambox, "--data-dir", data, "stream", "set", "lobby", "--ladder",
                        "720p,480p,360p", "--quality", args.quality], check=True, capture_output=True,
                       env=env)
        sb = subprocess.Popen([args.streambox, "--data-dir", data, "serve", "--rtmp-listen",
                               f"127.0.0.1:{s_rtmp}", "--http-listen", f"127.0.0.1:{s_http}",
                               "--rtsp-listen", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL)
        procs.append(sb)
        time.sleep(4)  # calibration (each quality preset)
        procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy",
             "-f", "flv", f"rtmp://127.0.0.1:{s_rtmp}/live/lobby?key={key}"]))
        base = f"http://127.0.0.1:{s_http}"
        time.sleep(args.warmup)
        c0, t0 = thread_cpu(sb.pid), time.time()
        time.sleep(args.seconds)
        c1, media = thread_cpu(sb.pid), time.time() - t0
        _, metrics = fetch(f"http://127.0.0.1:{s_metrics}/metrics")
        _, mv = fetch(f"{base}/live/lobby/index.m3u8")
        running = {r for r, *_ in RUNGS if f"{r}.m3u8" in mv}
        # streambox stops before ffmpeg runs, so neither takes the other's cores.
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        # ffmpeg: the same ladder from the same file, as fast as it can, one decode.
        loops = max(1, round(args.seconds / 5.3))
        split = "".join(f"[v{i}]" for i in range(len(RUNGS)))
        graph = f"[0:v]split={len(RUNGS)}{split};" + ";".join(
            f"[v{i}]scale={w}:{h}[o{i}]" for i, (_, w, h, _) in enumerate(RUNGS))
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-stream_loop", str(loops - 1), "-i", clip,
               "-filter_complex", graph]
        for i, (_, _, _, rate) in enumerate(RUNGS):
            cmd += ["-map", f"[o{i}]", "-c:v", "libx264", "-preset", "veryfast", "-b:v", rate,
                    "-g", "60", "-f", "null", "-"]
        before = os.times()
        t = time.time()
        subprocess.run(cmd, check=True)
        wall = time.time() - t
        after = os.times()
        ff_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        ff_media = loops * 5.3
        print(f"\n1080p30 source (libx264, 2 s GOP, B-frames, 4.5 Mbit/s); ladder 720p/480p/360p; "
              f"{args.seconds} s measured after {args.warmup} s warm-up; {os.cpu_count()} cores\n")
        print("| stage | streambox CPU-s per media-s | real-time factor (one core) | listed after arrival (segment, mean) |")
        print("| --- | --- | --- | --- |")
        src = hist_mean(metrics, "streambox_segment_delay_seconds", "lobby")
        print(f"| source (passthrough) | – | – | {src * 1000:.0f} ms |" if src is not None else "| source | – | – | n/a |")
        dec = c1.get("abr-decoder", 0) - c0.get("abr-decoder", 0)
        print(f"| decode 1080p30 (OpenH264) | {dec / media:.3f} | {media / dec if dec else float('inf'):.1f}x | – |")
        total = dec
        for name, *_ in RUNGS:
            c = c1.get(f"rung-{name}", 0) - c0.get(f"rung-{name}", 0)
            total += c
            delay = hist_mean(metrics, "streambox_segment_delay_seconds", f"lobby/{name}")
            d = f"{delay * 1000:.0f} ms" if delay is not None else "n/a"
            state = "" if name in running else " (not running)"
            print(f"| {name}{state}: scale + encode (OpenH264) | {c / media:.3f} | "
                  f"{media / c if c else float('inf'):.1f}x | {d} |")
        print(f"| whole ladder, streambox | {total / media:.3f} | {media / total if total else 0:.1f}x | – |")
        print(f"| whole ladder, ffmpeg libx264 veryfast (decode, scale, 3 encodes) | {ff_cpu / ff_media:.3f} | "
              f"{ff_media / ff_cpu:.1f}x ({ff_media / wall:.1f}x wall on all cores) | – |")
    finally:
        stop_all(procs, work)


def stream_start(sb_base):
    """Wall time of stream 0's first frame: the PROGRAM-DATE-TIME of its first segment,
    while the live window still lists it (media sequence 0). Not the MPD's
    availabilityStartTime: stream time zero is when the stream was opened, and the
    publisher starts later. Exits when segment 0 is no longer listed."""
    _, text = fetch(f"{sb_base}/live/s0/video.m3u8")
    m = re.search(r"#EXT-X-MEDIA-SEQUENCE:0\b.*?#EXT-X-PROGRAM-DATE-TIME:(\S+)", text, re.S)
    if not m:
        sys.exit("stream 0's first segment is no longer listed; shorten --warmup")
    return datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()




def start_camera(clip, port, procs):
    """The test camera (GStreamer's RTSP server) serving `clip` on `port`, appended to
    `procs`; returns once it listens."""
    cam = subprocess.Popen(["/usr/bin/python3", CAMERA, clip, "aac", str(port)],
                           stdout=subprocess.PIPE, text=True)
    procs.append(cam)
    cam.stdout.readline()
    return cam


def main_soak(args):
    """An hour (--minutes) of a box's ordinary life, at a load: streams s0 and s1
    published over RTMP, s2 over RTSP, and camera cam0 pulled over RTSP from the test
    camera, which is stopped and started again every --drop-every seconds; all four
    recorded (with a retention limit, so deletes run too); --viewers simulated LL-HLS
    viewers (bench/viewers.mjs: blocking reloads, every part fetched, continuity checked)
    spread over the four. Samples streambox's RSS and CPU every 10 s. Prints the RSS
    series per tenth of the run, the log's warnings and errors, what the viewers saw,
    and whether the server's request counters agree with what the clients sent; exits 1
    when RSS in the last tenth is over 10 % above the first half's peak, a viewer saw a
    gap or an error, the log has an error, or the counters disagree."""
    work = tempfile.mkdtemp(prefix="sbx-soak-")
    procs = []
    seconds = int(args.minutes * 60)
    failures = []
    try:
        clip = make_clip(work)
        loops = int(args.drop_every // 4) + 8
        long_clip = os.path.join(work, "camera.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", str(loops),
                        "-i", clip, "-c", "copy", long_clip], check=True)
        cam_port = free_port()
        start_camera(long_clip, cam_port, procs)
        s_rtmp, s_http, s_rtsp, s_metrics = free_port(), free_port(), free_port(), free_port()
        # A metrics listener of its own: /metrics on the main one needs an administrator.
        env = dict(os.environ, STREAMBOX_LOG="warn",
                   STREAMBOX_METRICS__LISTEN=f"127.0.0.1:{s_metrics}")
        data = f"{work}/sb"
        log = open(f"{work}/streambox.log", "w")

        def cli(*a):
            return subprocess.run([args.streambox, "--data-dir", data, *a], check=True,
                                  capture_output=True, text=True, env=env).stdout
        sb = subprocess.Popen([args.streambox, "--data-dir", data, "serve",
                               "--rtmp-listen", f"127.0.0.1:{s_rtmp}",
                               "--http-listen", f"127.0.0.1:{s_http}",
                               "--rtsp-listen", f"127.0.0.1:{s_rtsp}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(sb)
        time.sleep(1)
        keys = {n: re.search(r"Stream Key: (\S+)", cli("stream", "add", n)).group(1)
                for n in ("s0", "s1", "s2")}
        cli("source", "add", "cam0", f"rtsp://127.0.0.1:{cam_port}/stream1")
        for n in ("s0", "s1", "s2", "cam0"):
            cli("stream", "set", n, "--record", "on", "--keep-bytes", "200MB")
        feed = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip,
                "-map", "0:v", "-map", "0:a", "-c", "copy"]
        for n in ("s0", "s1"):
            procs.append(subprocess.Popen(
                [*feed, "-f", "flv", f"rtmp://127.0.0.1:{s_rtmp}/live/{n}?key={keys[n]}"]))
        procs.append(subprocess.Popen(
            [*feed, "-f", "rtsp", "-rtsp_transport", "tcp",
             f"rtsp://s2:{keys['s2']}@127.0.0.1:{s_rtsp}/live/s2"]))
        base = f"http://127.0.0.1:{s_http}"
        deadline = time.time() + 30
        while time.time() < deadline:
            if all(fetch(f"{base}/live/{n}/video.m3u8")[0] == 200
                   for n in ("s0", "s1", "s2", "cam0")):
                break
            time.sleep(0.5)
        else:
            sys.exit("the streams did not go live")
        _, m0 = fetch(f"http://127.0.0.1:{s_metrics}/metrics")
        urls = [f"{base}/live/{n}/video.m3u8" for n in ("s0", "s1", "s2", "cam0")]
        viewers = subprocess.Popen(["node", os.path.join(ROOT, "bench", "viewers.mjs"),
                                    str(seconds), *urls],
                                   env=dict(os.environ, VIEWERS=str(args.viewers)),
                                   stdout=subprocess.PIPE, text=True)
        procs.append(viewers)
        t0 = time.time()
        samples = []  # (seconds, RSS MiB, CPU s)
        drops = 0
        next_drop = t0 + args.drop_every
        while viewers.poll() is None:
            time.sleep(10)
            now = time.time()
            samples.append((now - t0, rss_mib(sb.pid), cpu_seconds(sb.pid)))
            if now >= next_drop and now - t0 < seconds - 30:
                # The camera drops: its process ends, and a new one starts on the port.
                cam = [p for p in procs if p.args[:2] == ["/usr/bin/python3", CAMERA]][-1]
                cam.terminate()
                cam.wait(timeout=10)
                time.sleep(2)
                start_camera(long_clip, cam_port, procs)
                drops += 1
                next_drop += args.drop_every
        out = json.loads(viewers.stdout.read().strip().splitlines()[-1])
        _, m1 = fetch(f"http://127.0.0.1:{s_metrics}/metrics")
        log.flush()
        lines = open(f"{work}/streambox.log").read().splitlines()
        errors = [l for l in lines if " ERROR " in l]
        warnings = [l for l in lines if " WARN " in l]

        print(f"\nsoak: {args.minutes:g} min, {args.viewers} simulated LL-HLS viewers over 4 "
              f"streams (2 RTMP, 1 RTSP publish, 1 RTSP camera dropped every "
              f"{args.drop_every} s: {drops} drops), all recorded (200 MB retention each)\n")
        tenth = max(1, len(samples) // 10)
        print("| at | streambox RSS (MiB) | CPU (cores, over the tenth) |")
        print("| --- | --- | --- |")
        before = (0.0, 0.0, samples[0][2])
        for i in range(0, len(samples), tenth):
            chunk = samples[i:i + tenth]
            cores = (chunk[-1][2] - before[2]) / max(1e-9, chunk[-1][0] - before[0])
            before = chunk[-1]
            print(f"| {chunk[-1][0] / 60:.1f} min | {max(c[1] for c in chunk):.1f} | {cores:.2f} |")
        # Flat: threads, buffers and the allocator's arenas settle in the first minutes
        # (and the time-shift list grows with the recording): the second half must not
        # grow over the first.
        settled = max(c[1] for c in samples[:max(1, len(samples) // 2)])
        final = max(c[1] for c in samples[-tenth:])
        print(f"\nRSS at most {settled:.1f} MiB in the first half, {final:.1f} MiB in the last "
              f"tenth ({100 * (final - settled) / settled:+.1f} %)")
        a = out["all"]
        print(f"viewers: {a['reloads']} reloads, {a['parts']} parts and {a['segments']} whole "
              f"segments ({a['bytes'] / 1e9:.2f} GB), gaps {a['gaps']}, errors {a['errors']}, lag behind "
              f"the wall clock p50 {a['lag_p50_s']} s, p95 {a['lag_p95_s']} s, "
              f"max {a['lag_max_s']} s")
        for st in out["streams"]:
            print(f"  {st['url'].rsplit('/', 2)[-2]}: {st['viewers']} viewers, {st['parts']} "
                  f"parts, {st['segments']} segments, gaps {st['gaps']}, errors {st['errors']}, discontinuities "
                  f"{st['discontinuities']}, lag p95 {st['lag_p95_s']} s")
        print(f"log: {len(errors)} errors, {len(warnings)} warnings")
        for l in (errors + warnings)[:20]:
            print(f"  {l[:200]}")
        served = {k: sum(metric(m1, f"streambox_{k}_total", f'{{stream="{n}"}}') -
                         metric(m0, f"streambox_{k}_total", f'{{stream="{n}"}}')
                         for n in ("s0", "s1", "s2", "cam0"))
                  for k in ("playlist_requests", "segment_requests")}
        media_errors = sum(v for k, v in a["errors"].items()
                           if k.startswith("part") or k.startswith("segment"))
        fetched = a["parts"] + a["segments"]
        print(f"metrics: {served['playlist_requests']:.0f} playlist requests counted against "
              f"{a['reloads']} reloads answered; {served['segment_requests']:.0f} media "
              f"requests against {fetched} parts and segments fetched ({media_errors} failed)")
        if final > settled * 1.10:
            failures.append("RSS grew")
        if a["gaps"] or a["errors"]:
            failures.append("a viewer saw a gap or an error")
        if errors:
            failures.append("the log has errors")
        if served["playlist_requests"] < a["reloads"] or \
                served["segment_requests"] != fetched + media_errors:
            failures.append("the counters disagree with the clients")
    finally:
        stop_all(procs, work)
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("passed")


if __name__ == "__main__":
    main()
