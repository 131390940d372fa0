//! End-to-end: streambox pulls a real RTSP camera (GStreamer's RTSP server) with and
//! without Digest authentication, over TCP and UDP, with AAC and with G.711 audio; the
//! camera's media comes out over HLS frame-exact and in sync; a camera that dies and
//! comes back is resumed on its own; removing a source tears its session down.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::camera::{camera_clip, Camera};
use support::*;

/// One media segment of a playlist: its init segment, duration and URI.
struct Segment {
    map: String,
    duration: f64,
    uri: String,
}

fn segments(playlist: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let (mut map, mut duration) = (String::new(), None);
    for line in playlist.lines() {
        if let Some(m) = line.strip_prefix("#EXT-X-MAP:URI=") {
            map = m.trim_matches('"').to_string();
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').parse().ok();
        } else if !line.starts_with('#') && !line.is_empty() {
            let duration = duration.take().expect("EXTINF before the URI");
            out.push(Segment {
                map: map.clone(),
                duration,
                uri: line.to_string(),
            });
        }
    }
    out
}

/// Fetches `segs` (one epoch) with their init segment into one file and probes it with
/// every frame decoded. Returns ffprobe's stream and the playlist's total duration.
fn probe_segments(server: &Server, stream: &str, segs: &[Segment]) -> (serde_json::Value, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("segments.mp4");
    let base = format!("/live/{stream}/");
    let mut bytes = get_ok(&server.url(&format!("{base}{}", segs[0].map)));
    for s in segs {
        assert_eq!(s.map, segs[0].map, "segments span an epoch");
        bytes.extend(get_ok(&server.url(&format!("{base}{}", s.uri))));
    }
    std::fs::write(&file, bytes).expect("write segments");
    let path = file.to_str().expect("utf-8 path");
    decode_strict(path);
    let probe = probe_count(path);
    let stream = probe["streams"][0].clone();
    (stream, segs.iter().map(|s| s.duration).sum())
}

fn get_ok(url: &str) -> Vec<u8> {
    let (status, _, body) = get(url);
    assert_eq!(status, 200, "GET {url}");
    body
}

/// Waits for `n` complete segments in the current epoch of `track`'s playlist past its
/// first (where one track may start before the other) and returns the newest `n`.
fn wait_segments(server: &Server, stream: &str, track: &str, n: usize) -> Vec<Segment> {
    let url = server.url(&format!("/live/{stream}/{track}.m3u8"));
    let text = wait_for(&url, Duration::from_secs(40), |p| {
        let segs = segments(p);
        let last = segs.last().map(|s| s.map.clone());
        segs.iter()
            .filter(|s| Some(&s.map) == last.as_ref())
            .count()
            > n
    });
    let segs = segments(&text);
    let last = segs.last().map(|s| s.map.clone());
    let mut epoch: Vec<Segment> = segs
        .into_iter()
        .filter(|s| Some(&s.map) == last.as_ref())
        .collect();
    epoch.drain(..epoch.len() - n);
    epoch
}

/// Checks the newest `n` segments of both tracks: every video frame is there (25 fps
/// times the listed duration), the picture is the camera's, and audio covers the same
/// time within 100 ms. Returns the audio stream as ffprobe saw it.
fn check_media(server: &Server, stream: &str, n: usize) -> serde_json::Value {
    let video = wait_segments(server, stream, "video", n);
    // Both tracks are cut at the same moments: segments with the same media sequence
    // number cover the same span.
    let video = &video[..];
    let (v, v_listed) = probe_segments(server, stream, video);
    assert_eq!((num(&v["width"]), num(&v["height"])), (640.0, 360.0), "{v}");
    let frames = num(&v["nb_read_frames"]);
    assert_eq!(
        frames,
        (v_listed * 25.0).round(),
        "every frame of {v_listed} s at 25 fps: {v}"
    );
    let audio_all = wait_segments(server, stream, "audio", n + 1);
    let audio: Vec<Segment> = audio_all
        .into_iter()
        .filter(|a| {
            let seq = |u: &str| u.rsplit('-').next().map(str::to_string);
            video.iter().any(|s| seq(&s.uri) == seq(&a.uri))
        })
        .collect();
    assert_eq!(
        audio.len(),
        n,
        "audio segments with the same sequence numbers"
    );
    let (a, a_listed) = probe_segments(server, stream, &audio);
    assert_eq!(a["codec_name"], "aac", "{a}");
    assert!(
        (a_listed - v_listed).abs() < 0.1,
        "audio {a_listed} s against video {v_listed} s\n{}\n{}",
        get_text(&server.url(&format!("/live/{stream}/audio.m3u8"))),
        get_text(&server.url(&format!("/live/{stream}/video.m3u8")))
    );
    let decoded = num(&a["nb_read_frames"]) * 1024.0 / num(&a["sample_rate"]);
    assert!(
        (decoded - a_listed).abs() < 0.1,
        "audio frames cover {decoded} s of the listed {a_listed} s"
    );
    a
}

fn source_list(server: &Server) -> String {
    let out = server.cli(&["source", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `source list` until the line of `name` contains `needle`.
fn wait_source(server: &Server, name: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let list = source_list(server);
        if let Some(line) = list.lines().find(|l| l.starts_with(&format!("{name}\t"))) {
            if line.contains(needle) {
                return line.to_string();
            }
        }
        if Instant::now() > deadline {
            panic!("source {name} never showed {needle:?}; list:\n{list}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn camera_with_aac_over_tcp_plays_and_resumes_after_a_restart() {
    let clip = camera_clip();
    // Basic authentication here; the G.711 camera below uses Digest.
    let basic = ("viewer", "b4sic-pass");
    let mut cam = Camera::start(&clip, "aac", 0, Some((basic.0, basic.1, "basic")));
    let server = Server::with(Settings {
        retry_max: 4.0,
        ..Settings::default()
    });
    let add = server.cli(&["source", "add", "door", &cam.url(Some(basic))]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    assert!(String::from_utf8_lossy(&add.stdout).contains("/live/door/index.m3u8"));

    let audio = check_media(&server, "door", 3);
    assert_eq!(
        (num(&audio["channels"]), num(&audio["sample_rate"])),
        (2.0, 48000.0),
        "passed through: {audio}"
    );
    let line = wait_source(&server, "door", "\tlive\t", Duration::from_secs(10));
    assert!(line.contains("tcp") && line.contains("up "), "{line}");

    // The camera dies: the source says so, with the error.
    let port = cam.port;
    let died = server.log().len();
    drop(cam);
    let line = wait_source(&server, "door", "\tretrying\t", Duration::from_secs(15));
    assert!(
        !line.ends_with("last error: -"),
        "the error is shown: {line}"
    );

    // While it is away the source keeps trying, never waiting longer than the backoff
    // cap (`sources.retry_max`, 4 s here) between tries.
    let retries = |log: &str| -> Vec<f64> {
        log.get(died..)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("camera session ended"))
            .filter_map(|l| {
                l.split_once("retry_in_s=")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while retries(&server.log()).len() < 3 {
        assert!(Instant::now() < deadline, "no retries:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // It comes back on the same address: the stream resumes by itself at the next try,
    // after a discontinuity.
    let lives_before = server.log().matches("camera live").count();
    let tries_before = retries(&server.log()).len();
    cam = Camera::start(&clip, "aac", port, Some((basic.0, basic.1, "basic")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.log().matches("camera live").count() == lives_before {
        assert!(
            Instant::now() < deadline,
            "not resumed:\n{}",
            source_list(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let waits = retries(&server.log());
    assert!(
        waits.iter().all(|w| *w <= 4.0) && waits.len() <= tries_before + 2,
        "every wait within the cap, and resumed at the first or second try after the camera came back (one under way may fail while it starts): {waits:?} ({tries_before} before it did)"
    );
    let playlist = get_text(&server.url("/live/door/video.m3u8"));
    check_media(&server, "door", 2);
    let playlist_after = get_text(&server.url("/live/door/video.m3u8"));
    assert!(
        playlist_after.contains("#EXT-X-DISCONTINUITY")
            || playlist.contains("#EXT-X-DISCONTINUITY"),
        "{playlist_after}"
    );
    wait_source(&server, "door", "\tlive\t", Duration::from_secs(10));

    // Removing the source ends the session with TEARDOWN.
    let rm = server.cli(&["source", "rm", "door"]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(
        cam.wait_output("TEARDOWN", Duration::from_secs(10)),
        "no TEARDOWN reached the camera"
    );
    assert!(!source_list(&server).contains("door"));
    assert!(!server.log().contains(basic.1), "password in the log");
}

#[test]
fn camera_with_g711_and_digest_over_udp_is_transcoded_to_aac() {
    let clip = camera_clip();
    let auth = ("admin", "s3cret-pass");
    let cam = Camera::start(&clip, "pcma", 0, Some((auth.0, auth.1, "digest")));
    let server = Server::with(Settings {
        retry_max: 4.0,
        ..Settings::default()
    });

    // Wrong password: the source fails with the camera's 401, and no password shows.
    let wrong = cam.url(Some(("admin", "wrong-pass")));
    let add = server.cli(&["source", "add", "door", &wrong, "--transport", "udp"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let line = wait_source(&server, "door", "\tfailed\t", Duration::from_secs(15));
    assert!(line.contains("401"), "{line}");
    assert!(line.contains("admin:***@"), "{line}");
    // retina's whole error, with where it happened: the connection's addresses and the
    // message's place in the session.
    assert!(
        line.contains("; conn: ") && line.contains("; msg: "),
        "{line}"
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&add.stdout),
        source_list(&server)
    );
    assert!(!shown.contains("wrong-pass"), "{shown}");
    assert!(!server.log().contains("wrong-pass"), "password in the log");

    // Bad input to the CLI changes nothing.
    for (args, why) in [
        (vec!["source", "add", "door", &wrong], "already exists"),
        (
            vec!["source", "add", "Bad Name", &wrong],
            "invalid source name",
        ),
        (vec!["source", "add", "other", "http://cam/x"], "not rtsp"),
        (
            vec!["source", "add", "other", &wrong, "--transport", "sctp"],
            "invalid transport",
        ),
        (vec!["source", "rm", "nosuch"], "no source named"),
    ] {
        let out = server.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    }
    let out = server.cli(&["stream", "add", "door"]);
    assert!(
        !out.status.success(),
        "a stream cannot take a camera's name"
    );

    // The right password, over UDP: G.711 A-law comes out as AAC, 8 kHz mono.
    let rm = server.cli(&["source", "rm", "door"]);
    assert!(rm.status.success());
    let add = server.cli(&[
        "source",
        "add",
        "door",
        &cam.url(Some(auth)),
        "--transport",
        "udp",
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let audio = check_media(&server, "door", 3);
    assert_eq!(
        (num(&audio["channels"]), num(&audio["sample_rate"])),
        (1.0, 8000.0),
        "{audio}"
    );
    let line = wait_source(&server, "door", "\tlive\t", Duration::from_secs(10));
    assert!(line.contains("udp"), "{line}");
    assert!(!server.log().contains(auth.1), "password in the log");

    // HLS as a player reads it: the multivariant playlist names AAC, and ffmpeg decodes
    // video and audio from it without an error.
    let master = get_text(&server.url("/live/door/index.m3u8"));
    assert!(
        master.contains("mp4a.40.2") && master.contains("RESOLUTION=640x360"),
        "{master}"
    );
    let out = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(server.url("/live/door/index.m3u8"))
        .args(["-t", "4", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rm = server.cli(&["source", "rm", "door"]);
    assert!(rm.status.success());
    assert!(
        cam.wait_output("TEARDOWN", Duration::from_secs(10)),
        "no TEARDOWN reached the camera"
    );
}

/// Decodes `secs` seconds of `url` with `ffmpeg -xerror` (RTSP over TCP); panics with
/// ffmpeg's words on any error.
fn watch(url: &str, secs: u32) {
    let mut cmd = Command::new(tool("ffmpeg"));
    cmd.args(["-nostdin", "-v", "error", "-xerror"]);
    if url.starts_with("rtsp://") {
        cmd.args(["-rtsp_transport", "tcp"]);
    }
    let out = cmd
        .args(["-i", url, "-t", &secs.to_string(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "watching {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_camera_an_rtsp_publisher_and_an_rtmp_publisher_are_watched_everywhere_at_once() {
    let cam = Camera::start(&camera_clip(), "pcma", 0, None);
    let server = Server::start();
    let add = server.cli(&["source", "add", "door", &cam.url(None)]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let clip = bbb_bframes_as("640x360", "mp4");
    let (_k1, _rtsp) = server.publish_rtsp_live("lobby", &clip, -1, "tcp", true, 1);
    let (_k2, _rtmp) = server.publish_live("stage", &clip, -1, 1);
    wait_segments(&server, "door", "video", 1);
    for stream in ["door", "lobby", "stage"] {
        watch(&server.url(&format!("/live/{stream}/index.m3u8")), 2);
        watch(&server.url(&format!("/live/{stream}/manifest.mpd")), 2);
        watch(&server.rtsp_url(&format!("/live/{stream}")), 2);
    }
}
