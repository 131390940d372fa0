//! End-to-end: the real `streambox` binary, real ffmpeg publishing over RTMP, real
//! ffmpeg/ffprobe reading LL-HLS and DASH back.

mod support;

use std::time::Duration;
use support::*;

/// Publishes `file` `loops + 1` times to a fresh stream, waits for the playlist to end,
/// and checks that HLS and DASH both carry every frame sent, decodable without errors,
/// with audio and video starting together. Returns the server and the HLS probe.
fn publish_whole_and_read_back(file: &std::path::Path, loops: i32) -> (Server, serde_json::Value) {
    let server = Server::start();
    let key = server.add_stream("lobby");
    let (src_video, src_audio) = source_packets(file);
    let mut ff = publish(file, loops, &server.rtmp_url(&format!("lobby?key={key}")));
    let status = ff
        .wait(Duration::from_secs(60))
        .expect("publisher finishes");
    assert!(status.success(), "ffmpeg publish failed: {}", ff.stderr());
    wait_for(
        &server.url("/live/lobby/video.m3u8"),
        Duration::from_secs(15),
        |p| p.contains("#EXT-X-ENDLIST"),
    );
    let sent_video = src_video * (loops as u64 + 1);
    let sent_audio = src_audio * (loops as u64 + 1);

    let mut hls_probe = serde_json::Value::Null;
    for url in [
        server.url("/live/lobby/index.m3u8"),
        server.url("/live/lobby/manifest.mpd"),
    ] {
        let probe = probe_count(&url);
        let v = stream_of(&probe, "video");
        let a = stream_of(&probe, "audio");
        assert_eq!(v["codec_name"], "h264", "{url}");
        assert_eq!(a["codec_name"], "aac", "{url}");
        assert_eq!(
            num(&v["nb_read_frames"]) as u64,
            sent_video,
            "{url}: video frames decoded vs sent"
        );
        let audio_read = num(&a["nb_read_packets"]) as u64;
        if url.ends_with(".m3u8") {
            assert_eq!(audio_read, sent_audio, "{url}: audio frames vs sent");
        } else {
            // ffmpeg's DASH demuxer stops at the first representation's end, so audio
            // past the last video frame (under 100 ms here) is not read. The MPD itself
            // must still list every audio frame: 1024 samples each at 48 kHz.
            let mpd = get_text(&url);
            let audio_ticks: u64 = mpd
                .split("<AdaptationSet")
                .filter(|a| a.contains("contentType=\"audio\""))
                .flat_map(|a| a.split("<S ").skip(1))
                .map(|s| {
                    let attr = |name: &str| -> u64 {
                        s.split(&format!("{name}=\""))
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .map_or(0, |v| v.parse().expect("number"))
                    };
                    attr("d") * (attr("r") + 1)
                })
                .sum();
            assert_eq!(
                audio_ticks,
                sent_audio * 1024,
                "{url}: audio in the MPD timeline"
            );
            assert!(
                audio_read <= sent_audio && audio_read + 5 >= sent_audio,
                "{url}: read {audio_read} audio frames of {sent_audio}"
            );
        }
        let skew = (num(&v["start_time"]) - num(&a["start_time"])).abs();
        assert!(skew < 0.1, "{url}: audio and video start {skew:.3} s apart");
        decode_strict(&url);
        if hls_probe.is_null() {
            hls_probe = probe;
        }
    }
    (server, hls_probe)
}

#[test]
fn source_copy_51_audio_plays_over_hls_and_dash_frame_exact() {
    let (server, probe) = publish_whole_and_read_back(&bbb(), 2);
    let v = stream_of(&probe, "video");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(stream_of(&probe, "audio")["channels"].as_u64(), Some(6));
    // One keyframe per 5.3 s loop: segments are as long as the GOP, never cut without one.
    let media = get_text(&server.url("/live/lobby/video.m3u8"));
    for d in media.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
        let d: f64 = d.trim_end_matches(',').parse().expect("EXTINF");
        assert!(d > 5.0 && d < 5.5, "segment of {d} s in a 5.3 s-GOP stream");
    }
}

#[test]
fn bframes_with_2s_gops_play_frame_exact_in_2s_segments() {
    let (server, probe) = publish_whole_and_read_back(&bbb_bframes(), 2);
    assert_eq!(stream_of(&probe, "audio")["channels"].as_u64(), Some(2));
    let media = get_text(&server.url("/live/lobby/video.m3u8"));
    let durations: Vec<f64> = media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().expect("EXTINF"))
        .collect();
    assert!(durations.len() >= 6, "{media}");
    for d in &durations[..durations.len() - 1] {
        assert!(
            (d - 2.0).abs() < 0.05,
            "segment of {d} s with 2 s GOPs: {media}"
        );
    }
    // Every segment's first part is independent (starts at a keyframe).
    let mut lines = media.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("#EXT-X-PROGRAM-DATE-TIME") {
            if let Some(next) = lines.peek().filter(|n| n.starts_with("#EXT-X-PART:")) {
                assert!(
                    next.contains("INDEPENDENT=YES"),
                    "segment starts with {next}"
                );
            }
        }
    }
}
