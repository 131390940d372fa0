//! Harness for the end-to-end tests: the real `streambox` binary on ephemeral ports, and
//! real ffmpeg/ffprobe processes as publishers and players. A missing tool fails the test
//! loudly; `tests/run.sh` installs them.
#![allow(dead_code)]

pub mod camera;
pub mod rtmp;
pub mod throttle;
pub mod web;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a required external tool, or a panic that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is required by this test but is not on PATH; run tests/run.sh, which installs it"
    );
}

/// ../shared/media/bigbuckbunny.mp4: 1280x720 25 fps H.264 Main (one keyframe per 5.3 s
/// loop), AAC-LC 5.1 48 kHz.
pub fn bbb() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/bigbuckbunny.mp4");
    assert!(p.is_file(), "test media missing: {}", p.display());
    p
}

/// A clip made from bigbuckbunny with ffmpeg `args` (output options, ending with `-f
/// FORMAT`), named `name`. Made once and kept in Cargo's test temp directory; it is
/// written under a temporary name and renamed, so an interrupted encode is never reused.
/// Change `name` when changing `args`.
pub fn derived_clip(name: &str, args: &[&str]) -> PathBuf {
    derived_clip_with(name, &[], args)
}

/// [`derived_clip`] with input options (`-stream_loop N`, say) before bigbuckbunny.
pub fn derived_clip_with(name: &str, input_args: &[&str], args: &[&str]) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if out.is_file() {
        return out;
    }
    let tmp = out.with_extension(format!("part-{}", std::process::id()));
    let st = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-y"])
        .args(input_args)
        .arg("-i")
        .arg(bbb())
        .args(args)
        .arg(&tmp)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "making test clip {name} failed");
    std::fs::rename(&tmp, &out).expect("rename test clip");
    out
}

/// The first 4 s of bigbuckbunny re-encoded with libx264 (3 B-frames, 2 s GOPs, no scene
/// cuts, so looping keeps every GOP 2 s long) and stereo AAC, at `size` (`WxH`), as an
/// `ext` file (`mp4` or `flv`).
pub fn bbb_bframes_as(size: &str, ext: &str) -> PathBuf {
    let mut args = vec!["-t", "4", "-s", size];
    args.extend(x264_2s_gops("3", "128k"));
    args.extend(["-f", ext]);
    derived_clip(&format!("bbb-bframes-v1-{size}.{ext}"), &args)
}

/// Output options for libx264 (veryfast) with `bframes` B-frames and a keyframe every
/// 2 s at 25 fps and nowhere else (no scene cuts).
pub fn x264_2s_video(bframes: &'static str) -> [&'static str; 12] {
    [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-bf",
        bframes,
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
    ]
}

/// [`x264_2s_video`], and stereo AAC at `audio_bitrate`.
pub fn x264_2s_gops(bframes: &'static str, audio_bitrate: &'static str) -> Vec<&'static str> {
    let mut args = x264_2s_video(bframes).to_vec();
    args.extend(["-c:a", "aac", "-ac", "2", "-b:a", audio_bitrate]);
    args
}

/// [`bbb_bframes_as`] at the source's 1280x720, as MP4.
pub fn bbb_bframes() -> PathBuf {
    bbb_bframes_as("1280x720", "mp4")
}

/// A running `streambox serve`, killed on drop.
pub struct Server {
    child: Child,
    /// The data directory (database, logs).
    pub dir: tempfile::TempDir,
    /// Bound RTMP address.
    pub rtmp: SocketAddr,
    /// Bound HTTP address.
    pub http: SocketAddr,
    /// Bound RTSP address.
    pub rtsp: SocketAddr,
    /// The metrics listener (`metrics.listen`, on loopback): `/metrics` without credentials.
    pub metrics: SocketAddr,
    /// The HTTPS listener and its certificate's SHA-256 fingerprint as the server
    /// printed them, when `STREAMBOX_HTTP__TLS_LISTEN` is in the settings' `env`.
    pub https: Option<(SocketAddr, String)>,
    /// What the server was started with; [`Server::kill_and_restart`] uses it again.
    pub settings: Settings,
}

/// Settings passed to the server through `STREAMBOX_*` variables.
#[derive(Clone)]
pub struct Settings {
    pub segment_target: f64,
    pub part_target: f64,
    pub window: f64,
    pub end_grace: f64,
    /// `sources.retry_max`: the longest wait between camera reconnections, seconds.
    pub retry_max: f64,
    /// `dvr.min_free_bytes`: low, so a nearly full CI disk does not pause recording.
    pub min_free_bytes: u64,
    /// `abr.max_cpu`: cores for transcoding (the machine's 85 % when `None`).
    pub abr_max_cpu: Option<f64>,
    /// `abr.retry_dropped_after`, seconds (the default when `None`).
    pub abr_retry_dropped_after: Option<f64>,
    /// More `STREAMBOX_*` variables (`("STREAMBOX_HTTP__HEADER_TIMEOUT", "2")`).
    pub env: Vec<(&'static str, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            segment_target: 2.0,
            part_target: 0.333,
            window: 120.0,
            end_grace: 1.0,
            retry_max: 30.0,
            min_free_bytes: 1 << 20,
            abr_max_cpu: None,
            abr_retry_dropped_after: None,
            env: Vec::new(),
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_streambox")
}

impl Server {
    pub fn start() -> Server {
        Server::with(Settings::default())
    }

    pub fn with(s: Settings) -> Server {
        Server::in_dir(tempfile::tempdir().expect("tempdir"), s)
    }

    /// Starts the server on a data directory the test has prepared.
    pub fn in_dir(dir: tempfile::TempDir, s: Settings) -> Server {
        let (child, [rtmp, http, rtsp, metrics], https) = launch(dir.path(), &s);
        Server {
            child,
            dir,
            rtmp,
            http,
            rtsp,
            metrics,
            https,
            settings: s,
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up), and starts it again on the
    /// same data directory; its log goes on in the same file.
    pub fn kill_and_restart(&mut self) {
        self.stop();
        self.restart();
    }

    /// Kills the server with SIGKILL and waits for it to end.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the server to exit by itself; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server again on the same data directory (after [`Server::stop`]).
    pub fn restart(&mut self) {
        let (child, [rtmp, http, rtsp, metrics], https) = launch(self.dir.path(), &self.settings);
        self.child = child;
        (self.rtmp, self.http, self.rtsp, self.metrics) = (rtmp, http, rtsp, metrics);
        self.https = https;
    }
}

/// Starts `streambox serve` on `dir` with `s`, appending to `dir/server.log`; returns the
/// process, its RTMP, HTTP, RTSP and metrics addresses, and its HTTPS address and
/// certificate fingerprint when it has an HTTPS listener.
type Launched = (Child, [SocketAddr; 4], Option<(SocketAddr, String)>);

fn launch(dir: &Path, s: &Settings) -> Launched {
    {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        let mut command = Command::new(bin());
        if let Some(cores) = s.abr_max_cpu {
            command.env("STREAMBOX_ABR__MAX_CPU", cores.to_string());
        }
        if let Some(seconds) = s.abr_retry_dropped_after {
            command.env("STREAMBOX_ABR__RETRY_DROPPED_AFTER", seconds.to_string());
        }
        for (k, v) in &s.env {
            command.env(k, v);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(dir)
            .args([
                "serve",
                "--rtmp-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--rtsp-listen",
                "127.0.0.1:0",
            ])
            .env(
                "STREAMBOX_LIVE__SEGMENT_TARGET",
                s.segment_target.to_string(),
            )
            .env("STREAMBOX_LIVE__PART_TARGET", s.part_target.to_string())
            .env("STREAMBOX_LIVE__WINDOW", s.window.to_string())
            .env("STREAMBOX_LIVE__END_GRACE", s.end_grace.to_string())
            .env("STREAMBOX_SOURCES__RETRY_MAX", s.retry_max.to_string())
            .env(
                "STREAMBOX_DVR__MIN_FREE_BYTES",
                s.min_free_bytes.to_string(),
            )
            .env("STREAMBOX_LOG", "info,streambox=debug")
            // The tests read metrics on a loopback listener of their own; `/metrics` on
            // the HTTP port needs credentials (tests/security.rs).
            .env("STREAMBOX_METRICS__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start streambox");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let log_path = dir.join("server.log");
        let mut line = |what: &str, prefix: &str| -> String {
            let line = lines
                .next()
                .unwrap_or_else(|| {
                    panic!(
                        "streambox exited before reporting its {what}; log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    )
                })
                .expect("read stdout");
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .to_string()
        };
        let addr = |proto: &str, line: &mut dyn FnMut(&str, &str) -> String| -> SocketAddr {
            line(proto, &format!("{proto} listening on "))
                .parse()
                .expect("address")
        };
        let rtmp = addr("rtmp", &mut line);
        let http = addr("http", &mut line);
        let rtsp = addr("rtsp", &mut line);
        let metrics = addr("metrics", &mut line);
        let https = s
            .env
            .iter()
            .any(|(k, _)| *k == "STREAMBOX_HTTP__TLS_LISTEN")
            .then(|| {
                let a = addr("https", &mut line);
                (a, line("fingerprint", "https certificate sha256 "))
            });
        (child, [rtmp, http, rtsp, metrics], https)
    }
}

impl Server {
    /// Runs a CLI command against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run streambox CLI")
    }

    /// Adds stream `name`, publishes `clip` to it with ffmpeg (`loops` extra times, -1
    /// for ever), and waits until the stream has `segments` complete segments. Returns the
    /// stream key and the publisher (which stops when dropped).
    pub fn publish_live(
        &self,
        name: &str,
        clip: &Path,
        loops: i32,
        segments: usize,
    ) -> (String, Proc) {
        let key = self.add_stream(name);
        let publisher = publish(clip, loops, &self.rtmp_url(&format!("{name}?key={key}")));
        self.wait_segments(name, segments);
        (key, publisher)
    }

    /// Like [`Server::publish_live`], but ffmpeg publishes over RTSP (ANNOUNCE/RECORD)
    /// with `transport` (`tcp` or `udp`); the key goes as the Digest password
    /// (`rtsp://NAME:KEY@…`) when `digest`, else as `?key=`.
    pub fn publish_rtsp_live(
        &self,
        name: &str,
        clip: &Path,
        loops: i32,
        transport: &str,
        digest: bool,
        segments: usize,
    ) -> (String, Proc) {
        let key = self.add_stream(name);
        let url = if digest {
            format!("rtsp://{name}:{key}@{}/live/{name}", self.rtsp)
        } else {
            format!("rtsp://{}/live/{name}?key={key}", self.rtsp)
        };
        let publisher = publish_to(
            clip,
            loops,
            &[
                "-c",
                "copy",
                "-f",
                "rtsp",
                "-rtsp_transport",
                transport,
                &url,
            ],
        );
        self.wait_segments(name, segments);
        (key, publisher)
    }

    /// Waits (up to 30 s) until stream `name` lists `segments` complete segments.
    pub fn wait_segments(&self, name: &str, segments: usize) {
        wait_for(
            &self.url(&format!("/live/{name}/video.m3u8")),
            Duration::from_secs(30),
            |p| p.matches("#EXTINF").count() >= segments,
        );
    }

    /// `stream add NAME`, returning the key it printed.
    pub fn add_stream(&self, name: &str) -> String {
        let out = self.cli(&["stream", "add", name]);
        assert!(
            out.status.success(),
            "stream add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        key_from(&out)
    }

    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}/live/{path}", self.rtmp)
    }

    pub fn rtsp_url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.rtsp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The Prometheus metrics now, from the metrics listener.
    pub fn metrics(&self) -> String {
        get_text(&format!("http://{}/metrics", self.metrics))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log_from(0, needle, timeout)
    }

    /// [`Server::wait_log`] for a line after the first `from` bytes of the log (a
    /// length the log had earlier).
    pub fn wait_log_from(&self, from: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            let recent = log.get(from..).unwrap_or_default();
            if let Some(line) = recent.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if Instant::now() > deadline {
                panic!("server log never said {needle:?}; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- streambox log ----\n{}", self.log());
        }
    }
}

/// Reads from `sock` until the server closes it (true) or nothing comes for `quiet`
/// (false); returns what arrived.
pub fn read_until_closed(sock: &mut std::net::TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    use std::io::Read;
    sock.set_read_timeout(Some(quiet)).expect("read timeout");
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// The key printed by `stream add` / `stream rotate-key`.
pub fn key_from(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Stream Key: "))
        .unwrap_or_else(|| panic!("no key in output: {text}"))
        .to_string()
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stderr collected so far (only after exit).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ffmpeg -re [-stream_loop N] -i FILE -c copy -f flv URL`; `loops` = -1 loops forever.
pub fn publish(file: &Path, loops: i32, url: &str) -> Proc {
    publish_args(file, loops, &["-c", "copy"], url)
}

/// Like [`publish`], with other output codec arguments.
pub fn publish_args(file: &Path, loops: i32, codec: &[&str], url: &str) -> Proc {
    let mut output = codec.to_vec();
    output.extend(["-f", "flv", url]);
    publish_to(file, loops, &output)
}

/// `ffmpeg -re [-stream_loop N] -i FILE OUTPUT…`: `output` holds the codec, format and
/// URL arguments.
pub fn publish_to(file: &Path, loops: i32, output: &[&str]) -> Proc {
    let child = Command::new(tool("ffmpeg"))
        .args([
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-stream_loop",
            &loops.to_string(),
            "-i",
        ])
        .arg(file)
        .args(output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    Proc(child)
}

/// ffprobe's JSON for `url` with `-show_streams -count_frames` (decodes everything).
pub fn probe_count(url: &str) -> serde_json::Value {
    probe(url, &["-count_frames", "-count_packets"])
}

/// ffprobe's JSON for `url` with `-show_streams` and `extra` options.
pub fn probe(url: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(tool("ffprobe"))
        .args(["-v", "error", "-print_format", "json", "-show_streams"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// The stream of `codec_type` in ffprobe JSON, if there is one.
pub fn find_stream<'a>(
    probe: &'a serde_json::Value,
    codec_type: &str,
) -> Option<&'a serde_json::Value> {
    probe["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["codec_type"] == codec_type))
}

/// The stream of `codec_type` in ffprobe JSON.
pub fn stream_of<'a>(probe: &'a serde_json::Value, codec_type: &str) -> &'a serde_json::Value {
    find_stream(probe, codec_type).unwrap_or_else(|| panic!("no {codec_type} stream in {probe}"))
}

pub fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        serde_json::Value::Number(n) => n.as_f64().expect("f64"),
        other => panic!("not a number: {other}"),
    }
}

/// PSNR in dB (`inf` for identical pictures) that ffmpeg's `psnr` filter gives on
/// average over the pictures of two inputs: `inputs` are ffmpeg's input arguments
/// (each `-i` with its options before it), and `prepare` a filter graph that turns them
/// into the labels `[a]` and `[b]` to compare (same size and pixel format).
pub fn ffmpeg_psnr(inputs: &[&str], prepare: &str) -> f64 {
    let out = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "info"])
        .args(inputs)
        .args([
            "-lavfi",
            &format!("{prepare};[a][b]psnr"),
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psnr of {inputs:?}: {log}");
    log.lines()
        .filter(|l| l.contains("PSNR "))
        .find_map(|l| l.split("average:").nth(1)?.split_whitespace().next())
        .and_then(|v| {
            if v == "inf" {
                Some(f64::INFINITY)
            } else {
                v.parse().ok()
            }
        })
        .unwrap_or_else(|| panic!("no PSNR in ffmpeg's output: {log}"))
}

/// Decodes `url` completely with `ffmpeg -xerror`; panics with ffmpeg's words on any
/// decode error.
pub fn decode_strict(url: &str) {
    let out = Command::new(tool("ffmpeg"))
        .args([
            "-nostdin", "-v", "error", "-xerror", "-i", url, "-f", "null", "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "decoding {url} reported errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Blocking HTTP GET: (status, headers, body).
pub fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    get_with(url, &[])
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body").to_vec();
        (status, headers, body)
    })
}

pub fn get_text(url: &str) -> String {
    let (status, _, body) = get(url);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "GET {url}: {text}");
    text
}

/// Polls `url` until it answers 200 and `ready` accepts the body.
pub fn wait_for(url: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, _, body) = get(url);
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && ready(&text) {
            return text;
        }
        if Instant::now() > deadline {
            panic!("{url} never became ready; last answer {status}: {text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `publish(file, loops, …)` sends: the video and audio packet counts of the same
/// ffmpeg copy (`-stream_loop loops -c copy -f flv`) into a local file. Counting the
/// source and multiplying is not enough: at a loop boundary ffmpeg drops a packet that
/// would go back in time (an AAC priming frame, for one).
pub fn sent_packets(file: &Path, loops: i32) -> (Option<u64>, Option<u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sent.flv");
    let st = Command::new(tool("ffmpeg"))
        .args([
            "-nostdin",
            "-v",
            "error",
            "-stream_loop",
            &loops.to_string(),
            "-i",
        ])
        .arg(file)
        .args(["-c", "copy", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "copying {} to FLV failed", file.display());
    source_packets(&out)
}

/// Number of video and audio packets in a local file, per ffprobe (None: no such track).
pub fn source_packets(file: &Path) -> (Option<u64>, Option<u64>) {
    let p = probe_count(file.to_str().expect("utf-8 path"));
    let count = |kind| find_stream(&p, kind).map(|s| num(&s["nb_read_packets"]) as u64);
    (count("video"), count("audio"))
}

/// ffprobe counting every frame of an RTSP URL over `transport` (`tcp` or `udp`).
pub fn rtsp_probe(url: &str, transport: &str) -> std::process::Child {
    Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-print_format",
            "json",
        ])
        .args(["-show_streams", "-count_frames", "-count_packets", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffprobe")
}

pub fn finish(child: std::process::Child, what: &str) -> serde_json::Value {
    let out = child.wait_with_output().expect("ffprobe");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Sends raw bytes on a new RTSP connection; returns what came back until the server
/// closed or went quiet for a second.
pub fn rtsp_exchange(server: &Server, bytes: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(server.rtsp).expect("connect");
    let _ = s.write_all(bytes);
    let (out, closed) = read_until_closed(&mut s, Duration::from_secs(1));
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Runs tests/players/play.mjs: a real browser player (hls.js or dash.js) in Chromium,
/// playing `url` for `seconds`. [`browser_result`] reads what it printed.
pub fn play_in_browser(kind: &str, url: &str, seconds: u32) -> std::process::Child {
    in_browser("play.mjs", &[kind, url, &seconds.to_string()])
}

/// [`play_in_browser`] from a page on `url`'s own origin: a secure context on
/// 127.0.0.1, as Encrypted Media Extensions (ClearKey) require.
pub fn play_in_browser_same_origin(kind: &str, url: &str, seconds: u32) -> std::process::Child {
    in_browser(
        "play.mjs",
        &[kind, url, &seconds.to_string(), "same-origin"],
    )
}

/// Runs the script `script` of tests/players (a playwright-core driver of Debian's
/// Chromium) with `args`; [`browser_result`] reads the JSON it prints.
pub fn in_browser(script: &str, args: &[&str]) -> std::process::Child {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/players");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/players/node_modules is missing; run tests/run.sh, which installs it"
    );
    tool("chromium");
    std::process::Command::new(tool("node"))
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start node")
}

/// Waits for an [`in_browser`] run and returns its JSON result; panics with the
/// script's stderr if it failed.
pub fn browser_result(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("player");
    assert!(
        out.status.success(),
        "player failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "player printed no result ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Milliseconds of `t` since the Unix epoch: the clock the browser scripts report in.
pub fn epoch_ms(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}

/// Where a test's screenshots go: `$STREAMBOX_ARTIFACTS/TEST`, or Cargo's test temp
/// directory.
pub fn artifacts(test: &str) -> std::path::PathBuf {
    std::env::var_os("STREAMBOX_ARTIFACTS")
        .map_or_else(
            || std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"),
            std::path::PathBuf::from,
        )
        .join(test)
}

/// Reads and discards until the peer closes the connection (true) or `within` passes
/// (false).
pub fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + within;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// The part an LL-HLS media playlist's `EXT-X-PRELOAD-HINT` names: (media sequence
/// number, part index); `None` without one (an ended playlist).
pub fn hinted_part(playlist: &str) -> Option<(u64, u64)> {
    let uri = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?;
    let stem = uri.trim_end_matches('"').trim_end_matches(".m4s");
    let (msn, part) = stem
        .rsplit('/')
        .next()?
        .strip_prefix("part-")?
        .split_once('-')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

/// The wall-clock time the newest part of an LL-HLS media playlist ends: its segment's
/// EXT-X-PROGRAM-DATE-TIME plus the parts listed after it; `None` without one.
pub fn newest_part_end(playlist: &str) -> Option<std::time::SystemTime> {
    let (mut pdt, mut after) = (None, 0.0f64);
    for l in playlist.lines() {
        if let Some(t) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = t.parse::<jiff::Timestamp>().ok();
            after = 0.0;
        } else if let Some(p) = l.strip_prefix("#EXT-X-PART:DURATION=") {
            after += p.split(',').next()?.parse::<f64>().ok()?;
        }
    }
    let pdt = std::time::SystemTime::from(pdt?);
    Some(pdt + Duration::from_secs_f64(after))
}

/// What an LL-HLS viewer sees for `seconds`: it reloads the media playlist at `url`
/// blocking for the hinted part each time (`_HLS_msn`, `_HLS_part`), as hls.js does, and
/// notes after each reload how long ago (seconds) its newest part ended, by the
/// wall clock (negative when the publisher's timestamps run ahead of it). Panics on a
/// reload that fails.
pub async fn viewer_lags(url: &str, seconds: f64) -> Vec<f64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let (t0, mut lags, mut next) = (Instant::now(), Vec::new(), None);
    while t0.elapsed().as_secs_f64() < seconds {
        let u = match next {
            Some((msn, part)) => format!("{url}?_HLS_msn={msn}&_HLS_part={part}"),
            None => url.to_string(),
        };
        let resp = client
            .get(&u)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {u}: {e}"));
        assert_eq!(resp.status(), 200, "GET {u}");
        let p = resp.text().await.expect("playlist");
        let end = newest_part_end(&p).unwrap_or_else(|| panic!("no part in {p}"));
        let now = std::time::SystemTime::now();
        // Signed: the publisher's clock may run a little ahead of the wall clock.
        let lag = match now.duration_since(end) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        lags.push(lag);
        next = hinted_part(&p);
    }
    lags
}

/// The `q` quantile (0..=1) of `v` (nearest rank); 0 when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len() as f64 * q) as usize).min(s.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// The resident memory of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}
