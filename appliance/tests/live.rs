//! End-to-end: the real `streambox` binary, real ffmpeg publishing over RTMP, real
//! ffmpeg/ffprobe reading LL-HLS and DASH back.

mod support;

use std::time::Duration;
use support::*;

/// Audio frames (of 1024 samples) listed in the audio AdaptationSet of an MPD.
fn mpd_audio_frames(mpd: &str) -> u64 {
    mpd.split("<AdaptationSet")
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
        .sum::<u64>()
        / 1024
}

/// Publishes `file` `loops + 1` times to a fresh stream, waits for the playlist to end,
/// and checks that HLS and DASH both carry every frame sent of each track the source has
/// (and no other track), decodable without errors, with audio and video starting
/// together. Returns the server and the HLS probe.
fn publish_whole_and_read_back(file: &std::path::Path, loops: i32) -> (Server, serde_json::Value) {
    let server = Server::start();
    let key = server.add_stream("lobby");
    let (sent_video, sent_audio) = sent_packets(file, loops);
    let mut ff = publish(file, loops, &server.rtmp_url(&format!("lobby?key={key}")));
    let status = ff
        .wait(Duration::from_secs(60))
        .expect("publisher finishes");
    assert!(status.success(), "ffmpeg publish failed: {}", ff.stderr());
    let lead = if sent_video.is_some() {
        "video"
    } else {
        "audio"
    };
    wait_for(
        &server.url(&format!("/live/lobby/{lead}.m3u8")),
        Duration::from_secs(15),
        |p| p.contains("#EXT-X-ENDLIST"),
    );

    let mut hls_probe = serde_json::Value::Null;
    for url in [
        server.url("/live/lobby/index.m3u8"),
        server.url("/live/lobby/manifest.mpd"),
    ] {
        let probe = probe_count(&url);
        let (v, a) = (find_stream(&probe, "video"), find_stream(&probe, "audio"));
        assert_eq!(
            v.is_some(),
            sent_video.is_some(),
            "{url}: video track: {probe}"
        );
        assert_eq!(
            a.is_some(),
            sent_audio.is_some(),
            "{url}: audio track: {probe}"
        );
        if let (Some(v), Some(sent)) = (v, sent_video) {
            assert_eq!(v["codec_name"], "h264", "{url}");
            assert_eq!(
                num(&v["nb_read_frames"]) as u64,
                sent,
                "{url}: video frames decoded vs sent"
            );
        }
        if let (Some(a), Some(sent)) = (a, sent_audio) {
            assert_eq!(a["codec_name"], "aac", "{url}");
            // A looped file re-sends its AAC priming frame at each loop, overlapping the
            // audio before it; ingest drops an overlap of more than one frame (so at most
            // one frame per loop boundary) rather than stamp time backwards. A single
            // publish must arrive whole.
            let served = if url.ends_with(".m3u8") || v.is_none() {
                num(&a["nb_read_packets"]) as u64
            } else {
                // ffmpeg's DASH demuxer stops at the first representation's end, so audio
                // past the last video frame (under 100 ms here) is not read; count what
                // the MPD itself lists.
                let read = num(&a["nb_read_packets"]) as u64;
                let listed = mpd_audio_frames(&get_text(&url));
                assert!(
                    read <= listed && read + 5 >= listed,
                    "{url}: read {read} of {listed}"
                );
                listed
            };
            let dropped = sent.checked_sub(served);
            assert!(
                dropped.is_some_and(|d| d <= loops as u64),
                "{url}: {served} audio frames served of {sent} sent over {loops} loop boundaries"
            );
        }
        if let (Some(v), Some(a)) = (v, a) {
            let skew = (num(&v["start_time"]) - num(&a["start_time"])).abs();
            assert!(skew < 0.1, "{url}: audio and video start {skew:.3} s apart");
        }
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

/// `(msn, part)` of the EXT-X-PRELOAD-HINT of a media playlist.
fn preload_hint(playlist: &str) -> (u64, u64) {
    hinted_part(playlist).unwrap_or_else(|| panic!("no preload hint in {playlist}"))
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no media sequence in {playlist}"))
}

fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.split("URI=\"").nth(1) {
                if l.starts_with("#EXT-X-PRELOAD-HINT") {
                    return None;
                }
                return rest.split('"').next().map(str::to_string);
            }
            (!l.starts_with('#') && !l.is_empty()).then(|| l.to_string())
        })
        .collect()
}

#[test]
fn audio_only_mono_22khz_stream_plays_frame_exact() {
    let clip = derived_clip(
        "bbb-audio-mono-22k-v1.m4a",
        &[
            "-vn", "-c:a", "aac", "-ac", "1", "-ar", "22050", "-f", "mp4",
        ],
    );
    let (server, probe) = publish_whole_and_read_back(&clip, 1);
    let a = stream_of(&probe, "audio");
    assert_eq!(
        (a["channels"].as_u64(), a["sample_rate"].as_str()),
        (Some(1), Some("22050"))
    );
    let mv = get_text(&server.url("/live/lobby/index.m3u8"));
    assert!(
        mv.contains("CODECS=\"mp4a.40.2\"") && mv.contains("\naudio.m3u8"),
        "{mv}"
    );
    assert!(!mv.contains("RESOLUTION"), "{mv}");
    // Audio-only segments are cut at the target duration (2 s).
    let p = get_text(&server.url("/live/lobby/audio.m3u8"));
    let first: f64 = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXTINF:"))
        .and_then(|d| d.trim_end_matches(',').parse().ok())
        .expect("EXTINF");
    assert!((first - 2.0).abs() < 0.05, "{p}");
}

#[test]
fn video_only_stream_plays_frame_exact() {
    let clip = derived_clip(
        "bbb-video-only-v1.mp4",
        &["-an", "-c:v", "copy", "-f", "mp4"],
    );
    let (server, _) = publish_whole_and_read_back(&clip, 1);
    let mv = get_text(&server.url("/live/lobby/index.m3u8"));
    assert!(
        mv.contains("CODECS=\"avc1.4d401f\"") && !mv.contains("EXT-X-MEDIA"),
        "{mv}"
    );
    let (status, _, _) = get(&server.url("/live/lobby/audio.m3u8"));
    assert_eq!(status, 404);
}

#[test]
fn ll_hls_playlists_parts_blocking_reload_headers_and_metrics() {
    let server = Server::start();
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes(), -1, 2);
    let video = server.url("/live/lobby/video.m3u8");

    // Multivariant playlist: codecs, resolution, frame rate, bandwidth, audio group.
    let (status, headers, body) = get_with(
        &server.url("/live/lobby/index.m3u8"),
        &[("Origin", "http://player.example")],
    );
    let mv = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age="));
    for needle in [
        "CODECS=\"avc1.64",
        "mp4a.40.2\"",
        "RESOLUTION=1280x720",
        "FRAME-RATE=25.000",
        "BANDWIDTH=",
        "AUDIO=\"audio\"",
        "URI=\"audio.m3u8\"",
    ] {
        assert!(mv.contains(needle), "multivariant lacks {needle}: {mv}");
    }

    let mut last_sequence = 0;
    for round in 0..3 {
        let p = get_text(&video);
        for tag in [
            "#EXT-X-PART-INF:PART-TARGET=0.333",
            "CAN-BLOCK-RELOAD=YES",
            "#EXT-X-PROGRAM-DATE-TIME:",
            "#EXT-X-MAP:URI=",
        ] {
            assert!(p.contains(tag), "media playlist lacks {tag}: {p}");
        }
        for line in p
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        {
            let d: f64 = line
                .split(',')
                .next()
                .and_then(|d| d.parse().ok())
                .expect("part duration");
            assert!(d <= 0.333 + 1e-6, "part of {d} s exceeds PART-TARGET");
        }
        let seq = media_sequence(&p);
        assert!(
            seq >= last_sequence,
            "media sequence went back from {last_sequence} to {seq}"
        );
        last_sequence = seq;
        // Every listed part, segment and init segment exists and is an MP4 box sequence.
        for uri in uris(&p) {
            let (status, headers, body) = get(&server.url(&format!("/live/lobby/{uri}")));
            assert_eq!(status, 200, "{uri} listed but not served");
            let kind = &body[4..8];
            assert!(
                kind == b"moof" || kind == b"ftyp",
                "{uri} starts with {kind:?}"
            );
            assert_eq!(headers["content-type"], "video/mp4");
            assert!(headers["cache-control"]
                .to_str()
                .expect("ascii")
                .contains("immutable"));
        }
        // Blocking reload: ask for the hinted part; the answer must list it.
        let (msn, part) = preload_hint(&p);
        let blocked = get_text(&format!("{video}?_HLS_msn={msn}&_HLS_part={part}"));
        let next_seg = format!("video/seg-{msn}.m4s");
        assert!(
            blocked.contains(&format!("video/part-{msn}-{part}.m4s"))
                || blocked.contains(&next_seg),
            "round {round}: blocking reload for {msn}.{part} returned without it:\n{blocked}"
        );
        // The hinted part of the new playlist is served once it exists.
        let (msn2, part2) = preload_hint(&blocked);
        let (status, _, body) =
            get(&server.url(&format!("/live/lobby/video/part-{msn2}-{part2}.m4s")));
        assert_eq!(status, 200, "hinted part {msn2}.{part2} not served");
        assert_eq!(&body[4..8], b"moof");
    }
    // Far past the live edge is a bad request (RFC 8216bis §6.2.5.2).
    let (status, _, _) = get(&format!("{video}?_HLS_msn=100000"));
    assert_eq!(status, 400);
    let (status, _, _) = get(&format!("{video}?_HLS_part=1"));
    assert_eq!(status, 400);
    let (status, _, _) = get(&format!("{video}?_HLS_msn=banana"));
    assert_eq!(status, 400, "a malformed _HLS_msn is refused");

    // Delta updates (RFC 8216bis §6.2.5.1): offered, and once segments end more than six
    // target durations before the live edge, a delta leaves them out and counts them.
    let (status, _, _) = get(&format!("{video}?_HLS_skip=banana"));
    assert_eq!(status, 400, "a malformed _HLS_skip is refused");
    let full = wait_for(&video, Duration::from_secs(30), |p| {
        p.matches("#EXTINF").count() >= 9
    });
    assert!(full.contains("CAN-SKIP-UNTIL=12.000"), "{full}");
    let delta = get_text(&format!("{video}?_HLS_skip=YES"));
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no EXT-X-SKIP in {delta}"));
    let first_listed = |p: &str| -> u64 {
        p.lines()
            .find_map(|l| {
                l.strip_prefix("video/seg-")?
                    .strip_suffix(".m4s")?
                    .parse()
                    .ok()
            })
            .expect("a segment")
    };
    assert_eq!(
        first_listed(&delta),
        media_sequence(&delta) + skipped as u64,
        "{delta}"
    );
    assert!(delta.len() < full.len(), "{delta}");

    // DASH: dynamic, timeline, UTCTiming; every segment it lists is served.
    let mpd = get_text(&server.url("/live/lobby/manifest.mpd"));
    for needle in [
        "type=\"dynamic\"",
        "availabilityStartTime=",
        "<SegmentTimeline>",
        "urn:mpeg:dash:utc:http-iso:2014",
        "codecs=\"avc1.64",
        "value=\"2\"",
    ] {
        assert!(mpd.contains(needle), "MPD lacks {needle}: {mpd}");
    }
    let start: u64 = mpd
        .split("startNumber=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("startNumber");
    let (status, _, _) = get(&server.url(&format!("/live/lobby/video/seg-{start}.m4s")));
    assert_eq!(status, 200);
    let (status, headers, _) = get(&server.url("/live/lobby/manifest.mpd"));
    assert_eq!(
        (status, headers["content-type"].to_str().expect("ascii")),
        (200, "application/dash+xml")
    );
    assert!(get_text(&server.url("/time")).starts_with("20"));
    let (_, _, body) = get_with(
        &server.url("/live/lobby/manifest.mpd"),
        &[("Host", "evil.example\"><x y=\"")],
    );
    let mpd = String::from_utf8_lossy(&body);
    assert!(
        !mpd.contains("evil"),
        "Host header reflected into the MPD: {mpd}"
    );
    // ... while a plausible one is used, which shows the header does reach the server.
    let (_, _, body) = get_with(
        &server.url("/live/lobby/manifest.mpd"),
        &[("Host", "studio.lan:8080")],
    );
    let mpd = String::from_utf8_lossy(&body);
    assert!(
        mpd.contains("value=\"http://studio.lan:8080/time\""),
        "{mpd}"
    );
    let (status, _, _) = get(&server.url("/live/lobby/bogus.txt"));
    assert_eq!(status, 404);

    // Metrics per stream.
    let m = server.metrics();
    for needle in [
        "streambox_stream_publishing{stream=\"lobby\"} 1",
        "streambox_frames_total{stream=\"lobby\",track=\"video\"}",
        "streambox_segments_total{stream=\"lobby\",track=\"video\"}",
        "streambox_part_delay_seconds_count{stream=\"lobby\",track=\"video\"}",
        "streambox_playlist_requests_total{stream=\"lobby\"}",
        "streambox_segment_requests_total{stream=\"lobby\"}",
        "streambox_ingest_bitrate_bps{stream=\"lobby\"}",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    // Unknown streams and files are 404s with a message.
    let (status, headers, body) = get(&server.url("/live/nosuch/index.m3u8"));
    assert_eq!(status, 404);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(String::from_utf8_lossy(&body).contains("no stream named"));
    let (status, _, _) = get(&server.url("/live/lobby/video/seg-999999.m4s"));
    assert_eq!(status, 404);
}

/// The (last) video Representation of an MPD, up to its end.
fn video_representation(mpd: &str) -> &str {
    let from = mpd
        .rsplit("<Representation id=\"video\"")
        .next()
        .expect("a video Representation");
    from.split("</Representation>").next().unwrap_or(from)
}

/// The last `$Number$` a SegmentTemplate lists: its startNumber plus the
/// segments of its timeline (`S` elements and their repeats), less one.
fn last_listed(template: &str) -> u64 {
    let attr = |s: &str, name: &str| -> Option<u64> {
        s.split(&format!(" {name}=\""))
            .nth(1)?
            .split('"')
            .next()?
            .parse()
            .ok()
    };
    let start = attr(template, "startNumber").expect("startNumber");
    let listed: u64 = template
        .split("<S ")
        .skip(1)
        .map(|s| 1 + attr(s, "r").unwrap_or(0))
        .sum();
    start + listed - 1
}

#[test]
fn low_latency_dash_lists_the_segment_being_written_and_sends_it_as_it_grows() {
    let server = Server::with(Settings {
        part_target: 0.2,
        ..Settings::default()
    });
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes(), -1, 2);
    let regular = get_text(&server.url("/live/lobby/manifest.mpd"));
    let mpd = get_text(&server.url("/live/lobby/low-latency.mpd"));
    for needle in [
        "http://www.dashif.org/guidelines/low-latency-live-v5",
        "minimumUpdatePeriod=\"PT0.400S\"",
        "<ServiceDescription id=\"0\">",
        "<Latency target=\"1000\"",
        "<PlaybackRate min=\"0.9\" max=\"1.5\"/>",
        "availabilityTimeComplete=\"false\"",
        "urn:mpeg:dash:utc:http-iso:2014",
    ] {
        assert!(
            mpd.contains(needle),
            "low-latency MPD lacks {needle}: {mpd}"
        );
        assert!(
            !regular.contains(needle) || needle.starts_with("urn:"),
            "the regular MPD has {needle}: {regular}"
        );
    }
    // The segment being written is available a chunk (0.2 s) after it begins.
    let video = video_representation(&mpd);
    let ato: f64 = video
        .split("availabilityTimeOffset=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("availabilityTimeOffset");
    assert!((1.6..=2.2).contains(&ato), "ATO {ato}: {mpd}");
    // The regular MPD lists complete segments; the low-latency one, the segment being
    // written (once it has a part) and the next one too.
    let (complete, ahead) = (
        last_listed(video_representation(&regular)),
        last_listed(video),
    );
    let being_written = mpd.contains("availabilityTimeOffset");
    assert!(
        ahead > complete && being_written,
        "listed up to {ahead}, complete {complete}: {mpd}"
    );

    // The next segment, asked for before it begins: held until it does, then sent
    // part by part as the packager writes it, in chunked transfer.
    let url = server.url(&format!("/live/lobby/video/seg-{ahead}.m4s"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (headers, chunks, bytes) = rt.block_on(async {
        let mut resp = reqwest::get(&url).await.expect("GET the next segment");
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        let (mut chunks, mut bytes) = (Vec::new(), Vec::new());
        while let Some(c) = resp.chunk().await.expect("chunk") {
            chunks.push((std::time::Instant::now(), c.len()));
            bytes.extend_from_slice(&c);
        }
        (headers, chunks, bytes)
    });
    assert_eq!(headers["transfer-encoding"], "chunked", "{headers:?}");
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    let spread = chunks.last().expect("a chunk").0 - chunks[0].0;
    assert!(
        chunks.len() >= 5 && spread >= Duration::from_millis(1000),
        "a 2 s segment came in {} chunks over {spread:?}",
        chunks.len()
    );
    // The same bytes as the complete segment.
    let (status, headers, whole) = get(&url);
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], whole.len().to_string().as_str());
    assert_eq!(bytes.len(), whole.len());
    assert!(
        bytes == whole,
        "the growing segment differs from the complete one"
    );
    // Beyond the next segment is not promised: 404 at once.
    let (status, _, _) = get(&server.url(&format!("/live/lobby/video/seg-{}.m4s", ahead + 5)));
    assert_eq!(status, 404);
}

#[test]
fn reconnect_continues_with_discontinuity_then_playlist_ends() {
    let server = Server::with(Settings {
        end_grace: 4.0,
        ..Settings::default()
    });
    let key = server.add_stream("lobby");
    let url = server.rtmp_url(&key); // the bare key, as OBS sends it
    let video = server.url("/live/lobby/video.m3u8");
    for _ in 0..2 {
        let mut ff = publish(&bbb(), 0, &url);
        let st = ff
            .wait(Duration::from_secs(30))
            .expect("publisher finishes");
        assert!(st.success(), "{}", ff.stderr());
        let p = get_text(&video);
        assert!(
            !p.contains("#EXT-X-ENDLIST"),
            "ended inside the grace period:\n{p}"
        );
    }
    let p = wait_for(&video, Duration::from_secs(15), |p| {
        p.contains("#EXT-X-ENDLIST")
    });
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    assert_eq!(
        p.matches("#EXT-X-MAP:").count(),
        2,
        "a new init segment after the reconnect: {p}"
    );
    let seqs: Vec<u64> = p
        .lines()
        .filter_map(|l| l.strip_prefix("video/seg-"))
        .map(|s| s.trim_end_matches(".m4s").parse().expect("msn"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let mpd = get_text(&server.url("/live/lobby/manifest.mpd"));
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    let probe = probe_count(&server.url("/live/lobby/index.m3u8"));
    let src_video = sent_packets(&bbb(), 0).0.expect("bigbuckbunny has video");
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        2 * src_video
    );
    decode_strict(&server.url("/live/lobby/index.m3u8"));
    let m = server.metrics();
    assert!(
        m.contains("streambox_stream_publishing{stream=\"lobby\"} 0"),
        "{m}"
    );
}

#[test]
fn new_sequence_header_mid_stream_starts_a_discontinuity_and_period() {
    use support::rtmp::{flv_tags, Client};
    let server = Server::start();
    let key = server.add_stream("switch");
    let (big, small) = (
        flv_tags(&bbb_bframes_as("1280x720", "flv")),
        flv_tags(&bbb_bframes_as("640x360", "flv")),
    );
    let frames = |tags: &[support::rtmp::FlvTag]| {
        tags.iter()
            .filter(|t| t.kind == 9 && t.body.get(1) == Some(&1))
            .count()
    };
    let sent_video = frames(&big) + frames(&small);
    let mut c = Client::connect(server.rtmp);
    c.publish(&format!("switch?key={key}"));
    let t0 = std::time::Instant::now();
    c.send_tags(&big, 0, t0);
    // The second encode follows on, with its own sequence headers (a new SPS: 640x360).
    c.send_tags(&small, big.last().map_or(0, |t| t.ms) + 40, t0);
    drop(c);
    let video = server.url("/live/switch/video.m3u8");
    let p = wait_for(&video, Duration::from_secs(15), |p| {
        p.contains("#EXT-X-ENDLIST")
    });
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{p}");
    assert_eq!(p.matches("#EXT-X-MAP:").count(), 2, "{p}");
    let mpd = get_text(&server.url("/live/switch/manifest.mpd"));
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    assert!(
        mpd.contains("width=\"1280\" height=\"720\"")
            && mpd.contains("width=\"640\" height=\"360\""),
        "{mpd}"
    );
    let probe = probe_count(&server.url("/live/switch/index.m3u8"));
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as usize,
        sent_video
    );
    decode_strict(&server.url("/live/switch/index.m3u8"));
}

#[test]
fn a_publishers_timestamp_jump_is_re_anchored_and_the_publish_goes_on() {
    use support::rtmp::{flv_tags, Client};
    let server = Server::start();
    let key = server.add_stream("jumpy");
    let tags = flv_tags(&bbb_bframes_as("640x360", "flv"));
    let pictures = tags
        .iter()
        .filter(|t| t.kind == 9 && t.body.get(1) == Some(&1))
        .count();
    let mut c = Client::connect(server.rtmp);
    c.publish(&format!("jumpy?key={key}"));
    let t0 = std::time::Instant::now();
    // The jump falls between two pictures: each send ends with a picture, and the ones
    // after the first start with one (their sequence headers are the same and change
    // nothing; tags before the first picture are left out).
    let picture = |t: &support::rtmp::FlvTag| t.kind == 9 && t.body.get(1) == Some(&1);
    let last = tags.iter().rposition(picture).expect("a picture");
    let first = tags.iter().position(picture).expect("a picture");
    // Sends `tags` stamped `shift` ms later than they are, paced from `at` ms after t0.
    let send = |c: &mut Client, shift: u32, at: u64| {
        let from = if shift == 0 { 0 } else { first };
        for t in &tags[from..=last] {
            let due = t0 + Duration::from_millis(at + u64::from(t.ms));
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            let ms = t.ms.wrapping_add(shift);
            match t.kind {
                8 => c.audio(t.body.clone(), ms),
                9 => c.video(t.body.clone(), ms),
                _ => {}
            }
        }
    };
    let length = u64::from(tags.last().map_or(0, |t| t.ms)) + 40;
    send(&mut c, 0, 0);
    // The publisher's clock steps an hour ahead, then back by more than it went: the
    // same pictures, stamped far off, continue the stream where it was.
    send(&mut c, 3_600_000, length);
    send(&mut c, u32::MAX - 3_600_000, 2 * length);
    assert!(
        !server.log().contains("RTMP session ended"),
        "the jump ended the session"
    );
    drop(c);
    let video = server.url("/live/jumpy/video.m3u8");
    let p = wait_for(&video, Duration::from_secs(15), |p| {
        p.contains("#EXT-X-ENDLIST")
    });
    assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 0, "{p}");
    let index = server.url("/live/jumpy/index.m3u8");
    let probe = probe_count(&index);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as usize,
        3 * pictures
    );
    decode_strict(&index);
    // Decode times only go forward, and the stream lasts what was sent, not an hour.
    let out = std::process::Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts_time",
        ])
        .args(["-of", "csv=p=0", &video])
        .output()
        .expect("ffprobe");
    let dts: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(dts.len(), 3 * pictures, "{dts:?}");
    assert!(
        dts.windows(2).all(|w| w[1] > w[0]),
        "decode times went back: {dts:?}"
    );
    let span = dts[dts.len() - 1] - dts[0];
    let expected = 3.0 * length as f64 / 1000.0;
    assert!(
        (span - expected).abs() < 1.0,
        "{span} s of decode time for {expected} s sent"
    );
    // And the log says what happened.
    server.wait_log("timestamps jumped", Duration::from_secs(5));
}

#[test]
fn cli_manages_streams_beside_the_running_server_and_refuses_bad_input() {
    let server = Server::start();
    let out = server.cli(&["stream", "add", "lobby"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Server:     rtmp://") && text.contains("/live\n"),
        "{text}"
    );
    assert_eq!(key_from(&out).len(), 32);
    for (args, says) in [
        (&["stream", "add", "Bad Name"][..], "invalid stream name"),
        (&["stream", "add", "../etc"][..], "invalid stream name"),
        (&["stream", "add", "lobby"][..], "already exists"),
        (&["stream", "rm", "nosuch"][..], "no stream named"),
        (&["stream", "rotate-key", "nosuch"][..], "no stream named"),
    ] {
        let out = server.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("backtrace"),
            "{args:?} printed a backtrace: {err}"
        );
    }
    let list = String::from_utf8_lossy(&server.cli(&["stream", "list"]).stdout).into_owned();
    assert!(list.starts_with("lobby\tcreated 20"), "{list}");
    assert!(server.cli(&["stream", "rm", "lobby"]).status.success());
    let list = String::from_utf8_lossy(&server.cli(&["stream", "list"]).stdout).into_owned();
    assert!(list.starts_with("No streams."), "{list}");
}

#[test]
fn hls_js_and_dash_js_play_the_live_stream_in_chromium() {
    let server = Server::start();
    // 640x360 keeps Chromium's software decoding light on a small machine: this test is
    // about the players and the protocol, not decoding speed. One player at a time.
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes_as("640x360", "mp4"), -1, 1);
    let hls = browser_result(play_in_browser(
        "hls",
        &server.url("/live/lobby/index.m3u8"),
        12,
    ));
    let dash = browser_result(play_in_browser(
        "dash",
        &server.url("/live/lobby/manifest.mpd"),
        12,
    ));
    for (name, r) in [("hls.js", hls), ("dash.js", dash)] {
        eprintln!("{name}: {r}");
        assert_eq!(r["fatal"], serde_json::json!([]), "{name}: {r}");
        assert_eq!(r["pageErrors"], serde_json::json!([]), "{name}: {r}");
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(640), Some(360)),
            "{name}: {r}"
        );
        assert_eq!(r["audioTracks"].as_u64(), Some(1), "{name}: {r}");
        // Playback keeps going: most of the watched wall time became media time.
        let (played, wall) = (num(&r["played"]), num(&r["wall"]));
        assert!(
            wall > 5.0 && played > wall * 0.75,
            "{name} stalled: {played:.1} s in {wall:.1} s: {r}"
        );
        assert!(num(&r["decodedFrames"]) > 150.0, "{name}: {r}");
        if name == "hls.js" {
            assert!(num(&r["partsInPlaylist"]) > 0.0, "hls.js saw no parts: {r}");
            assert_eq!(r["canBlockReload"], true, "{r}");
        } else {
            assert_eq!(r["isDynamic"], true, "{r}");
        }
    }
}

#[test]
fn dash_js_plays_the_low_latency_mpd_within_two_seconds_of_live() {
    let server = Server::with(Settings {
        part_target: 0.2,
        ..Settings::default()
    });
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes_as("640x360", "mp4"), -1, 1);
    let r = browser_result(play_in_browser(
        "dash",
        &server.url("/live/lobby/low-latency.mpd"),
        20,
    ));
    eprintln!("dash.js, low latency: {r}");
    // No error at all: a failed clock synchronisation against /time would be one
    // (TIME_SYNC_FAILED), and /time is the MPD's only UTCTiming source.
    assert_eq!(r["fatal"], serde_json::json!([]), "{r}");
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r}");
    assert_eq!(r["isDynamic"], true, "{r}");
    let (played, wall) = (num(&r["played"]), num(&r["wall"]));
    assert!(
        wall > 10.0 && played > wall * 0.9,
        "stalled: {played:.1} s in {wall:.1} s: {r}"
    );
    assert_eq!(r["stalls"], 0, "{r}");
    let latency = num(&r["latency"]);
    assert!(
        latency > 0.0 && latency <= 2.0,
        "dash.js plays {latency:.2} s behind live: {r}"
    );
}
