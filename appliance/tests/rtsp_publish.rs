//! End-to-end: ffmpeg publishes over RTSP (ANNOUNCE/RECORD) over TCP and UDP, with the
//! stream key as a Digest password or `?key=`; HLS carries every frame it sent, and RTSP
//! players get the stream back. Bad publishers get their RTSP status, bad RTP is
//! dropped or ends only that session, and other streams never notice.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn ffmpeg_publishes_over_rtsp_tcp_and_udp_and_every_frame_reaches_hls() {
    // RTP over UDP within the ports a firewall opens (`rtsp.udp_ports`).
    let server = Server::with(Settings {
        env: vec![("STREAMBOX_RTSP__UDP_PORTS", "[40100, 40199]".into())],
        ..Settings::default()
    });
    let clip = bbb_bframes_as("640x360", "mp4");
    let (sent_video, sent_audio) = sent_packets(&clip, 1);
    let (sent_video, sent_audio) = (sent_video.expect("video"), sent_audio.expect("audio"));
    let (_k1, mut tcp) = server.publish_rtsp_live("bytcp", &clip, 1, "tcp", true, 1);
    let (_k2, mut udp) = server.publish_rtsp_live("byudp", &clip, 1, "udp", false, 1);
    // An RTSP player of the RTSP-published stream, from a keyframe on.
    let player = rtsp_probe(&server.rtsp_url("/live/bytcp"), "udp");
    for (name, ff) in [("tcp", &mut tcp), ("udp", &mut udp)] {
        let st = ff.wait(Duration::from_secs(60));
        assert!(
            st.is_some_and(|s| s.success()),
            "{name} publisher: {}",
            ff.stderr()
        );
    }
    for stream in ["bytcp", "byudp"] {
        wait_for(
            &server.url(&format!("/live/{stream}/video.m3u8")),
            Duration::from_secs(20),
            |p| p.contains("#EXT-X-ENDLIST"),
        );
        let url = server.url(&format!("/live/{stream}/index.m3u8"));
        decode_strict(&url);
        let probe = probe_count(&url);
        let v = stream_of(&probe, "video");
        let a = stream_of(&probe, "audio");
        assert_eq!(
            (num(&v["width"]), num(&v["height"])),
            (640.0, 360.0),
            "{stream}"
        );
        assert_eq!(
            num(&v["nb_read_frames"]) as u64,
            sent_video,
            "{stream}: every video frame"
        );
        // As over RTMP: a looped file re-sends its AAC priming frame at the loop, and
        // ingest drops audio overlapping by more than a frame, at most one per loop. And
        // ffmpeg's RTP AAC packetizer groups up to 5 frames per packet and does not send
        // the group it holds when it closes, so up to 4 frames at the very end never
        // leave ffmpeg. Anything lost in between shows as a gap.
        let audio = num(&a["nb_read_frames"]) as u64;
        let (gaps, _, _) = audio_gaps(&url);
        assert!(gaps.is_empty(), "{stream}: audio gaps {gaps:?}");
        assert!(
            audio <= sent_audio && sent_audio - audio <= 1 + 4,
            "{stream}: {audio} audio frames of {sent_audio}; audio gaps: {:?}",
            audio_gaps(&url)
        );
        // Audio and video start together, as sent: the first audio frame is the clip's
        // priming frame, 21 ms before the first picture.
        let first = |kind: &str| -> f64 {
            let out = std::process::Command::new(tool("ffprobe"))
                .args([
                    "-v",
                    "error",
                    "-select_streams",
                    kind,
                    "-read_intervals",
                    "%+#1",
                ])
                .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0", &url])
                .output()
                .expect("ffprobe");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("pts")
        };
        let (v0, a0) = (first("v"), first("a"));
        assert!(
            (v0 - a0 - 0.0213).abs() < 0.005,
            "{stream}: video at {v0}, audio at {a0}"
        );
    }
    let probe = finish(player, "RTSP player");
    let got = num(&stream_of(&probe, "video")["nb_read_frames"]) as u64;
    assert!(
        got >= 50 && got <= sent_video && (sent_video - got) % 50 == 0,
        "RTSP out of an RTSP-published stream: {got} of {sent_video} frames, not from a keyframe on"
    );
    // Every pair, the UDP publisher's and the UDP player's, was in the configured range.
    let log = server.log();
    let pairs: Vec<u16> = log
        .lines()
        .filter(|l| l.contains("RTP/RTCP port pair bound"))
        .filter_map(|l| {
            l.split("rtp=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(pairs.len() >= 2, "publisher and player pairs: {pairs:?}");
    assert!(
        pairs
            .iter()
            .all(|p| (40100..=40198).contains(p) && p % 2 == 0),
        "{pairs:?}"
    );
    let log = server.log();
    assert!(
        log.contains("RTSP publisher recording") && log.contains("RTSP publisher left"),
        "{log}"
    );
}

/// Where the audio of `url` is not continuous (AAC frames of 1024 samples at 48 kHz):
/// `(time, step)` pairs, and the first and last frame times.
fn audio_gaps(url: &str) -> (Vec<(f64, f64)>, f64, f64) {
    let out = std::process::Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0", url])
        .output()
        .expect("ffprobe");
    let t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let gaps = t
        .windows(2)
        .filter(|w| ((w[1] - w[0]) - 0.021333).abs() > 0.002)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    (
        gaps,
        t.first().copied().unwrap_or(0.0),
        t.last().copied().unwrap_or(0.0),
    )
}

/// An RTP packet on interleaved channel 0.
fn interleaved(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(0x1234_5678u32.to_be_bytes());
    p.extend(payload);
    let mut out = vec![b'$', 0];
    out.extend((p.len() as u16).to_be_bytes());
    out.extend(p);
    out
}

const SPS: &[u8] = &[
    0x67, 0x4d, 0x40, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
    0x00, 0x00, 0x0c, 0x83, 0xc6, 0x0c, 0xa8,
];
const PPS: &[u8] = &[0x68, 0xef, 0x3c, 0x80];
const VIDEO_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n";

fn announce(url: &str, extra: &str, sdp: &str) -> String {
    format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {b}\r\n")
}

fn frames_counted(server: &Server, stream: &str) -> u64 {
    let metrics = server.metrics();
    let prefix = format!("streambox_frames_total{{stream=\"{stream}\",track=\"video\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("count"))
}

#[test]
fn bad_rtsp_publishers_get_their_status_and_disturb_nothing() {
    let server = Server::start();
    let (lobby_key, _ff) = server.publish_live("lobby", &bbb_bframes_as("640x360", "mp4"), -1, 1);
    let key = server.add_stream("cam");
    let cam = server.rtsp_url("/live/cam");
    let h265 = VIDEO_SDP.replace("H264", "H265");
    let cases: Vec<(String, &str, &str)> = vec![
        (announce(&cam, "", VIDEO_SDP), "RTSP/1.0 401", "no key"),
        (
            announce(&cam, &basic("cam", "wrong"), VIDEO_SDP),
            "RTSP/1.0 401",
            "wrong key",
        ),
        (
            announce(&format!("{cam}?key=wrong"), "", VIDEO_SDP),
            "RTSP/1.0 401",
            "wrong ?key=",
        ),
        (
            announce(
                &server.rtsp_url("/live/lobby"),
                &basic("lobby", &key),
                VIDEO_SDP,
            ),
            "RTSP/1.0 401",
            "another stream's key",
        ),
        (
            announce(&format!("{cam}?key={key}"), "", &h265),
            "RTSP/1.0 415",
            "H.265",
        ),
        (
            announce(&format!("{cam}?key={key}"), "", "not sdp at all"),
            "RTSP/1.0 400",
            "garbage SDP",
        ),
        (
            announce(
                &server.rtsp_url("/live/lobby"),
                &basic("lobby", &lobby_key),
                VIDEO_SDP,
            ),
            "RTSP/1.0 403",
            "stream busy",
        ),
        (
            format!(
                "{}RECORD {cam} RTSP/1.0\r\nCSeq: 2\r\nSession: 1\r\n\r\n",
                announce(&cam, &basic("cam", &key), VIDEO_SDP)
            ),
            "RTSP/1.0 454",
            "RECORD before SETUP",
        ),
    ];
    for (bytes, want, what) in &cases {
        let (got, _) = rtsp_exchange(&server, bytes.as_bytes());
        let last = got.rfind("RTSP/1.0 ").map_or("", |i| &got[i..]);
        assert!(last.starts_with(want), "{what}: wanted {want}, got {got:?}");
    }
    let (got, _) = rtsp_exchange(&server, announce(&cam, "", VIDEO_SDP).as_bytes());
    assert!(
        got.contains("WWW-Authenticate: Digest realm=\"streambox\""),
        "{got}"
    );

    // A publisher sending RTP with a sequence-number wrap, reordering, a duplicate,
    // junk, another payload type and a truncated fragment: 30 pictures, all counted.
    let mut s = TcpStream::connect(server.rtsp).expect("connect");
    let setup = format!(
        "SETUP {cam}/streamid=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n"
    );
    s.write_all(announce(&cam, &basic("cam", &key), VIDEO_SDP).as_bytes())
        .expect("announce");
    s.write_all(setup.as_bytes()).expect("setup");
    let (reply, _) = read_until_closed(&mut s, Duration::from_millis(500));
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let session = reply
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no session: {reply}"))
        .to_string();
    let record = format!("RECORD {cam} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n");
    s.write_all(record.as_bytes()).expect("record");
    let (reply, _) = read_until_closed(&mut s, Duration::from_millis(500));
    assert!(
        String::from_utf8_lossy(&reply).starts_with("RTSP/1.0 200"),
        "{reply:?}"
    );
    let mut stap = vec![24u8, 0, SPS.len() as u8];
    stap.extend(SPS);
    stap.extend([0, PPS.len() as u8]);
    stap.extend(PPS);
    let mut packets: Vec<Vec<u8>> = vec![interleaved(65530, 0, false, &stap)];
    let mut seq = 65531u16;
    for i in 0..30u32 {
        packets.push(interleaved(seq, i * 3600, true, &[0x65, 0x88, i as u8]));
        seq = seq.wrapping_add(1);
    }
    packets.swap(6, 7); // reordered across the wrap
    packets.insert(12, packets[11].clone()); // duplicate
    packets.insert(14, vec![b'$', 0, 0, 4, 0, 0, 0, 0]); // not RTP
    packets.insert(15, interleaved(1, 0, true, &[28])); // truncated FU-A, out of place
    let mut other = interleaved(seq, 0, true, &[1, 2, 3]);
    other[5] = 0x80 | 100; // another payload type
    packets.push(other);
    for p in &packets {
        s.write_all(p).expect("rtp");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames_counted(&server, "cam") < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(frames_counted(&server, "cam"), 30, "{}", server.log());

    // RTP time jumping by an hour is a discontinuity, not the end: this publisher goes
    // on from its last picture (its next ones are counted), the log says so, and lobby
    // is not disturbed.
    let lobby_segments = |server: &Server| {
        get_text(&server.url("/live/lobby/video.m3u8"))
            .matches("#EXTINF")
            .count()
    };
    let before = lobby_segments(&server);
    for i in 0..3u16 {
        let ts = 3600 * (31 + u32::from(i)) + 90_000 * 3600;
        s.write_all(&interleaved(
            seq.wrapping_add(i),
            ts,
            true,
            &[0x65, 0x88, 0],
        ))
        .expect("after the jump");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames_counted(&server, "cam") < 32 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(frames_counted(&server, "cam") >= 32, "{}", server.log());
    let line = server.wait_log("RTP time jumped", Duration::from_secs(5));
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    let (_, closed) = read_until_closed(&mut s, Duration::from_millis(500));
    assert!(!closed, "the jump ended the publisher");
    let deadline = Instant::now() + Duration::from_secs(15);
    while lobby_segments(&server) <= before {
        assert!(Instant::now() < deadline, "lobby stopped while cam jumped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = server.metrics();
    assert!(
        metrics.contains("streambox_publish_rejected_total{reason=\"bad_key\"} 3"),
        "{metrics}"
    );
}
