//! End-to-end: any live stream plays over RTSP (TCP-interleaved and UDP) in real ffmpeg
//! and ffprobe, and bad RTSP requests get their status without disturbing anything.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// ffmpeg decoding an RTSP URL over TCP with `-xerror` (any decode error fails it), with
/// extra output options before the null output.
fn strict_player(url: &str, extra: &[&str]) -> std::process::Child {
    Command::new(tool("ffmpeg"))
        .args([
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
        ])
        .args(extra)
        .args(["-f", "null", "-"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg")
}

#[test]
fn rtmp_stream_plays_over_rtsp_tcp_and_udp_from_a_keyframe_without_loss() {
    let server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let (sent_video, sent_audio) = sent_packets(&clip, 2);
    let (sent_video, sent_audio) = (sent_video.expect("video"), sent_audio.expect("audio"));
    let (_key, mut ff) = server.publish_live("lobby", &clip, 2, 1);
    let url = server.rtsp_url("/live/lobby");
    let tcp = rtsp_probe(&url, "tcp");
    let udp = rtsp_probe(&url, "udp");
    // A third player decodes strictly: any corrupt frame fails it.
    let strict = strict_player(&url, &[]);
    assert!(ff
        .wait(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    // The players end when the publisher leaves: the server closes their sessions.
    for (name, probe) in [("tcp", finish(tcp, "tcp")), ("udp", finish(udp, "udp"))] {
        let v = stream_of(&probe, "video");
        let a = stream_of(&probe, "audio");
        assert_eq!(
            (v["codec_name"].as_str(), v["width"].as_u64()),
            (Some("h264"), Some(640)),
            "{name}"
        );
        assert_eq!(
            (a["codec_name"].as_str(), a["channels"].as_u64()),
            (Some("aac"), Some(2)),
            "{name}"
        );
        let got = num(&v["nb_read_frames"]) as u64;
        // A player joins at a keyframe from the GOP cache (2 s GOPs: 50 frames) and from
        // there on gets every frame.
        assert!(
            got >= 50 && got <= sent_video,
            "{name}: {got} of {sent_video} video frames"
        );
        assert_eq!(
            (sent_video - got) % 50,
            0,
            "{name}: {got} of {sent_video}: not a whole number of GOPs missed"
        );
        let audio = num(&a["nb_read_packets"]) as u64;
        assert!(
            audio > 0 && audio <= sent_audio,
            "{name}: {audio} of {sent_audio} audio frames"
        );
    }
    let out = strict.wait_with_output().expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "strict decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_rtsp_requests_get_their_status_and_disturb_nothing() {
    let server = Server::start();
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes_as("640x360", "mp4"), -1, 1);
    let url = server.rtsp_url("/live/lobby");
    let req = |method: &str, target: &str, extra: &str| {
        format!("{method} {target} RTSP/1.0\r\nCSeq: 7\r\n{extra}\r\n")
    };
    let cases: Vec<(String, &str, &str)> = vec![
        ("GARBAGE\r\n\r\n".to_string(), "RTSP/1.0 400", "garbage"),
        (req("FROB", &url, ""), "RTSP/1.0 501", "unknown method"),
        (
            req("DESCRIBE", &server.rtsp_url("/live/nosuch"), ""),
            "RTSP/1.0 404",
            "unknown stream",
        ),
        (
            req("DESCRIBE", &server.rtsp_url("/live/../etc"), ""),
            "RTSP/1.0 404",
            "path traversal",
        ),
        (
            req("PLAY", &url, "Session: 1234\r\n"),
            "RTSP/1.0 455",
            "PLAY before SETUP",
        ),
        (
            req("SETUP", &format!("{url}/video"), ""),
            "RTSP/1.0 400",
            "SETUP without Transport",
        ),
        (
            req(
                "SETUP",
                &format!("{url}/video"),
                "Transport: RTP/SAVP;unicast;client_port=5000-5001\r\n",
            ),
            "RTSP/1.0 461",
            "unsupported transport",
        ),
        (
            req(
                "SETUP",
                &format!("{url}/subtitles"),
                "Transport: RTP/AVP/TCP;interleaved=0-1\r\n",
            ),
            "RTSP/1.0 404",
            "unknown track",
        ),
        (
            "OPTIONS * RTSP/1.0\r\n\r\n".to_string(),
            "RTSP/1.0 400",
            "no CSeq",
        ),
    ];
    for (bytes, want, what) in &cases {
        let (got, _) = rtsp_exchange(&server, bytes.as_bytes());
        assert!(got.starts_with(want), "{what}: wanted {want}, got {got:?}");
        if *want != "RTSP/1.0 400" {
            assert!(got.contains("CSeq: 7"), "{what}: CSeq not echoed: {got:?}");
        }
    }
    // Huge headers: refused and closed.
    let mut huge = req("OPTIONS", &url, "");
    huge.insert_str(
        huge.len() - 2,
        &format!("X-Junk: {}\r\n", "a".repeat(70_000)),
    );
    let (got, closed) = rtsp_exchange(&server, huge.as_bytes());
    assert!(
        got.starts_with("RTSP/1.0 400") && closed,
        "huge request: {got:?}"
    );
    // A real session with the wrong session id on PLAY.
    let setup = req(
        "SETUP",
        &format!("{url}/video"),
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
    );
    let play = req("PLAY", &url, "Session: WRONG\r\n");
    let (got, _) = rtsp_exchange(&server, format!("{setup}{play}").as_bytes());
    assert!(
        got.contains("RTSP/1.0 200") && got.contains("RTSP/1.0 454"),
        "{got:?}"
    );
    // OPTIONS lists what we do.
    let (got, _) = rtsp_exchange(&server, req("OPTIONS", &url, "").as_bytes());
    assert!(
        got.starts_with("RTSP/1.0 200") && got.contains("DESCRIBE") && got.contains("PLAY"),
        "{got:?}"
    );
    // After all that, a real player still gets the stream, and HLS still flows.
    let probe = finish(
        Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-print_format",
                "json",
                "-show_streams",
                &url,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffprobe"),
        "probe after bad requests",
    );
    assert_eq!(stream_of(&probe, "video")["codec_name"], "h264");
    let log = server.log();
    assert!(
        log.contains("RTSP connection ended") && log.contains("malformed RTSP message"),
        "{log}"
    );
}

#[test]
fn a_stuck_player_is_dropped_and_never_stalls_another() {
    let server = Server::start();
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes(), -1, 1);
    let url = server.rtsp_url("/live/lobby");
    // A player that sets up over TCP, asks to play, and then never reads: a small
    // receive buffer fills at once.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(&server.rtsp.into()).expect("connect");
    let mut stuck: TcpStream = socket.into();
    let setup = format!(
        "SETUP {url}/video RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    );
    stuck.write_all(setup.as_bytes()).expect("setup");
    let mut buf = [0u8; 1024];
    let n = stuck.read(&mut buf).expect("setup reply");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let session = reply
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("no session in {reply}"))
        .to_string();
    let play = format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n");
    stuck.write_all(play.as_bytes()).expect("play");
    // Meanwhile a healthy player gets every frame from its keyframe on, and the stuck
    // one is dropped.
    let healthy = strict_player(&url, &["-t", "14"]);
    let line = server.wait_log("dropping it", Duration::from_secs(40));
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    let out = healthy.wait_with_output().expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "the healthy player suffered: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The dropped player's connection is closed by the server.
    let (_, closed) = read_until_closed(&mut stuck, Duration::from_secs(10));
    assert!(closed, "the stuck player's connection stayed open");
    let (status, _, _) = get(&server.url("/live/lobby/index.m3u8"));
    assert_eq!(status, 200);
}

/// Decoded video and audio buffers in a `gst-launch-1.0 -v` log with identities `v`/`a`.
fn gst_buffers(log: &str, identity: &str) -> usize {
    log.matches(&format!("GstIdentity:{identity}: last-message = chain"))
        .count()
}

#[test]
fn gstreamer_rtspsrc_plays_an_rtmp_stream_over_tcp_and_udp_from_a_keyframe_without_loss() {
    gstreamer_plays(false);
}

#[test]
fn gstreamer_rtspsrc_plays_an_rtsp_published_stream_over_tcp_and_udp() {
    gstreamer_plays(true);
}

/// GStreamer plays a stream published over RTMP, or over RTSP (`rtsp_in`).
fn gstreamer_plays(rtsp_in: bool) {
    let server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let sent_video = sent_packets(&clip, 2).0.expect("video");
    let (_key, mut ff) = if rtsp_in {
        server.publish_rtsp_live("lobby", &clip, 2, "tcp", false, 1)
    } else {
        server.publish_live("lobby", &clip, 2, 1)
    };
    let url = server.rtsp_url("/live/lobby");
    let players: Vec<_> = ["tcp", "udp"]
        .iter()
        .map(|proto| {
            let pipeline = format!(
                "rtspsrc location={url} protocols={proto} name=src \
                 src. ! rtph264depay ! h264parse ! avdec_h264 ! identity name=v silent=false ! fakesink \
                 src. ! rtpmp4gdepay ! aacparse ! avdec_aac ! identity name=a silent=false ! fakesink"
            );
            let child = Command::new(tool("gst-launch-1.0"))
                .arg("-v")
                .args(pipeline.split_whitespace())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("gst-launch-1.0");
            (*proto, child)
        })
        .collect();
    assert!(ff
        .wait(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    for (proto, child) in players {
        let out = child.wait_with_output().expect("gst-launch-1.0");
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && log.contains("Got EOS"),
            "{proto}: {}{}",
            log.lines()
                .filter(|l| !l.contains("last-message"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        let video = gst_buffers(&log, "v") as u64;
        assert!(
            video >= 50 && video <= sent_video,
            "{proto}: {video} of {sent_video} frames"
        );
        // It joins at a keyframe, so whole 50-frame GOPs before it are missing. GStreamer's
        // count is within a frame or two of that on a loaded machine (open, issue 3: its
        // jitter buffer turns our RTCP BYE into EOS while it still holds frames; ffprobe's
        // counts over the same path are exact). A real loss would be a whole chunk.
        let missed = sent_video - video;
        let off = (missed % 50).min(50 - missed % 50);
        assert!(
            off <= 3,
            "{proto}: {video} of {sent_video}: {off} frames off a keyframe start"
        );
        assert!(
            log.contains("345600 bytes"),
            "{proto}: decoded frames are not 640x360 I420"
        );
        assert!(gst_buffers(&log, "a") > 0, "{proto}: no audio decoded");
    }
}
