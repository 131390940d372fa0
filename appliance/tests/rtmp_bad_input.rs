//! Bad input on the RTMP port: each case ends only the offending session, with a log line
//! naming the peer (and the stream, where one was named), while a healthy stream published
//! by a real ffmpeg keeps flowing.
//!
//! Well-formed-but-wrong sessions come from rml_rtmp's client session (the same library
//! OBS-like clients are built on); malformed bytes are written raw.

mod support;

use bytes::Bytes;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::rtmp::*;
use support::*;

/// A server with stream `good` published by ffmpeg in a loop, flowing.
struct Fixture {
    server: Server,
    _publisher: Proc,
    good_key: String,
}

impl Fixture {
    fn new() -> Fixture {
        let server = Server::start();
        let (good_key, publisher) = server.publish_live("good", &bbb_bframes(), -1, 1);
        Fixture {
            server,
            _publisher: publisher,
            good_key,
        }
    }

    /// The healthy stream still advances: two new parts arrive, each served intact, and
    /// the server process is alive.
    fn assert_unharmed(&mut self) {
        assert!(self.server.alive(), "server died");
        let video = self.server.url("/live/good/video.m3u8");
        let before = get_text(&video);
        let hint = |p: &str| -> String {
            p.lines()
                .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
                .map(|u| u.trim_end_matches('"').to_string())
                .unwrap_or_else(|| panic!("healthy stream has no preload hint: {p}"))
        };
        let first = hint(&before);
        for _ in 0..2 {
            let (status, _, body) = get(&self
                .server
                .url(&format!("/live/good/{}", hint(&get_text(&video)))));
            assert_eq!(status, 200, "healthy stream stopped producing parts");
            assert_eq!(&body[4..8], b"moof");
        }
        assert_ne!(
            hint(&get_text(&video)),
            first,
            "healthy stream did not advance"
        );
        let m = self.server.metrics();
        assert!(
            m.contains("streambox_stream_publishing{stream=\"good\"} 1"),
            "{m}"
        );
    }

    /// Waits for an `RTMP session ended` line containing `reason`; returns it.
    fn ended_with(&self, reason: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.server.log();
            if let Some(l) = log
                .lines()
                .find(|l| l.contains("RTMP session ended") && l.contains(reason))
            {
                assert!(
                    l.contains("peer=127.0.0.1:"),
                    "log line does not name the peer: {l}"
                );
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no session-ended line with {reason:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Reads until the server closes the connection (or 15 s pass, which fails).
fn assert_closed_by_server(sock: &mut TcpStream) {
    let (_, closed) = read_until_closed(sock, Duration::from_secs(15));
    assert!(closed, "server kept the connection open");
}

fn ffmpeg_refused(mut ff: Proc) -> String {
    let st = ff.wait(Duration::from_secs(20)).expect("ffmpeg gives up");
    assert!(!st.success(), "ffmpeg publish should have been refused");
    ff.stderr()
}

#[test]
fn unknown_key_is_refused() {
    let mut f = Fixture::new();
    ffmpeg_refused(publish(&bbb(), -1, &f.server.rtmp_url("not-a-key")));
    f.ended_with("unknown or revoked stream key");
    ffmpeg_refused(publish(&bbb(), -1, &f.server.rtmp_url("good?key=wrong")));
    let line = f.ended_with("stream=\"good\"");
    assert!(line.contains("unknown or revoked stream key"), "{line}");
    assert!(
        !line.contains("wrong"),
        "the log must not show keys: {line}"
    );
    f.assert_unharmed();
}

#[test]
fn revoked_key_is_refused_and_the_new_one_works() {
    let mut f = Fixture::new();
    let old = f.server.add_stream("lobby");
    let out = f.server.cli(&["stream", "rotate-key", "lobby"]);
    assert!(out.status.success());
    let new = key_from(&out);
    assert_ne!(old, new);
    ffmpeg_refused(publish(&bbb(), -1, &f.server.rtmp_url(&old)));
    f.ended_with("unknown or revoked stream key");
    let _ok = publish(&bbb(), -1, &f.server.rtmp_url(&new));
    wait_for(
        &f.server.url("/live/lobby/index.m3u8"),
        Duration::from_secs(30),
        |p| p.contains("video.m3u8"),
    );
    // Deleting the stream revokes its key too.
    assert!(f.server.cli(&["stream", "rm", "lobby"]).status.success());
    ffmpeg_refused(publish(
        &bbb(),
        -1,
        &f.server.rtmp_url(&format!("lobby?key={new}")),
    ));
    f.assert_unharmed();
}

#[test]
fn second_publisher_on_a_live_stream_is_refused() {
    let mut f = Fixture::new();
    let url = f.server.rtmp_url(&format!("good?key={}", f.good_key));
    ffmpeg_refused(publish(&bbb(), -1, &url));
    let line = f.ended_with("already has a publisher");
    assert!(line.contains("stream=\"good\""), "{line}");
    f.assert_unharmed();
}

#[test]
fn garbage_on_the_rtmp_port_is_dropped() {
    let mut f = Fixture::new();
    let mut sock = TcpStream::connect(f.server.rtmp).expect("connect");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    sock.write_all(&garbage).expect("write");
    assert_closed_by_server(&mut sock);
    f.ended_with("bad RTMP handshake");
    // Garbage after a good handshake: a chunk header declaring a 16 MiB message of an
    // unknown type, some junk, and a hang-up. That session ends too, and is logged.
    let (mut sock, _) = handshake(f.server.rtmp);
    let mut junk = vec![0x03u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x63];
    junk.extend(std::iter::repeat_n(0xee, 2000));
    let _ = sock.write_all(&junk);
    drop(sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.server.log().matches("RTMP session").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "second session not logged:\n{}",
            f.server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    f.assert_unharmed();
}

#[test]
fn truncated_chunk_ends_only_that_session() {
    let mut f = Fixture::new();
    let mut c = Client::connect(f.server.rtmp);
    c.publish(&format!("trunc?key={}", f.server.add_stream("trunc")));
    // A type-0 chunk header for a 1000-byte video message, then 10 bytes, then hang up.
    let mut bytes = vec![0x04, 0, 0, 0, 0, 0x03, 0xe8, 0x09, 1, 0, 0, 0];
    bytes.extend_from_slice(&[0x17, 1, 0, 0, 0, 0, 0, 0, 5, 0x65]);
    c.sock.write_all(&bytes).expect("write");
    drop(c);
    f.server
        .wait_log("RTMP session closed", Duration::from_secs(10));
    let m = f.server.metrics();
    assert!(
        m.contains("streambox_stream_publishing{stream=\"trunc\"} 0"),
        "{m}"
    );
    f.assert_unharmed();
}

#[test]
fn oversized_chunk_is_bounded_and_ends_the_session() {
    let mut f = Fixture::new();
    let (mut sock, _) = handshake(f.server.rtmp);
    // Set Chunk Size to the maximum, then a video message of the largest length RTMP
    // can declare (16 MiB - 1) outside any publish, then more junk: the server buffers at
    // most one message and cuts the peer off once 20 MiB brought nothing it can act on.
    let mut bytes = vec![
        0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
    ];
    bytes.extend_from_slice(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
    let _ = sock.write_all(&bytes);
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..40 {
        if sock.write_all(&chunk).is_err() {
            break;
        }
    }
    assert_closed_by_server(&mut sock);
    f.ended_with("without a usable RTMP message");
    f.assert_unharmed();
}

#[test]
fn video_before_its_sequence_header_is_refused() {
    let mut f = Fixture::new();
    let key = f.server.add_stream("cam");
    let mut c = Client::connect(f.server.rtmp);
    c.publish(&format!("cam?key={key}"));
    // An AVC keyframe NALU with no AVC sequence header before it.
    c.video(
        Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
        0,
    );
    assert_closed_by_server(&mut c.sock);
    let line = f.ended_with("video frame before its sequence header");
    assert!(line.contains("stream=\"cam\""), "{line}");
    f.assert_unharmed();
}

#[test]
fn unsupported_codecs_are_named() {
    let mut f = Fixture::new();
    let key = f.server.add_stream("old");
    let lavfi = |codec: &[&str]| -> Proc {
        let mut args = vec![
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "20",
        ];
        args.extend_from_slice(codec);
        let url = f.server.rtmp_url(&format!("old?key={key}"));
        args.extend_from_slice(&["-f", "flv", &url]);
        Proc(
            std::process::Command::new(tool("ffmpeg"))
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ffmpeg"),
        )
    };
    ffmpeg_refused(lavfi(&["-c:v", "flv1", "-c:a", "aac"]));
    f.ended_with("unsupported video codec Sorenson H.263");
    ffmpeg_refused(lavfi(&["-c:v", "libx264", "-c:a", "libmp3lame"]));
    f.ended_with("unsupported audio codec MP3");
    f.assert_unharmed();
}
