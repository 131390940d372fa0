//! End-to-end: recording. Publishes with ffmpeg, records the CMAF segments to files with
//! an index, keeps them within a size limit, and survives `kill -9` with the index and
//! the directory in agreement.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// Unix seconds of an RFC 3339 time printed by `dvr ranges` (coreutils `date` parses it).
fn unix_seconds(rfc3339: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s.%N"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("seconds")
}

/// `dvr ranges NAME`: (ranges as (start ms, end ms, segments), gaps in seconds).
fn ranges(server: &Server, name: &str) -> (Vec<(String, String, usize)>, Vec<f64>) {
    let out = server.cli(&["dvr", "ranges", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut ranges = Vec::new();
    let mut gaps = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.first() {
            Some(&"range") => ranges.push((
                f[1].to_string(),
                f[2].to_string(),
                f[4].trim_end_matches(" segments")
                    .parse()
                    .expect("segments"),
            )),
            Some(&"gap") => gaps.push(f[3].trim_end_matches(" s").parse().expect("gap")),
            _ => {}
        }
    }
    (ranges, gaps)
}

/// The directory of stream `stream`'s recordings: `recordings/` and its identity.
fn stream_dir(server: &Server, stream: &str) -> PathBuf {
    let stream = stream.to_string();
    let uid = support::web::with_db(server, |pool| async move {
        sqlx::query_as::<_, (String,)>(
            "SELECT uid FROM streams WHERE name = ?1 UNION SELECT uid FROM sources WHERE name = ?1",
        )
        .bind(stream)
        .fetch_one(&pool)
        .await
        .expect("the stream's identity")
        .0
    });
    server.dir.path().join("recordings").join(uid)
}

/// Recorded files under the data directory: per epoch and track, the segment files by
/// media sequence number and whether an init segment is there.
fn recorded(
    server: &Server,
    stream: &str,
) -> BTreeMap<(String, String), (bool, BTreeMap<u64, PathBuf>)> {
    let mut out: BTreeMap<(String, String), (bool, BTreeMap<u64, PathBuf>)> = BTreeMap::new();
    let root = stream_dir(server, stream);
    for epoch in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for track in std::fs::read_dir(epoch.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = (
                epoch.file_name().to_string_lossy().into_owned(),
                track.file_name().to_string_lossy().into_owned(),
            );
            let entry = out.entry(key).or_default();
            for f in std::fs::read_dir(track.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name == "init.mp4" {
                    entry.0 = true;
                } else if let Some(msn) = name.strip_suffix(".m4s").and_then(|n| n.parse().ok()) {
                    entry.1.insert(msn, f.path());
                } else {
                    panic!("stray file in the recordings: {}", f.path().display());
                }
            }
        }
    }
    out
}

/// The directory of one track of one epoch of stream `lobby`'s recordings.
fn track_dir(server: &Server, epoch: &str, track: &str) -> PathBuf {
    stream_dir(server, "lobby").join(epoch).join(track)
}

/// Joins an epoch's init segment and segments into one file and probes it with every
/// frame decoded (`-xerror`); returns ffprobe's frame count.
fn decode_recording(dir: &Path, segments: &BTreeMap<u64, PathBuf>) -> u64 {
    let mut bytes = std::fs::read(dir.join("init.mp4")).expect("init segment");
    for p in segments.values() {
        bytes.extend(std::fs::read(p).expect("segment"));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("joined.mp4");
    std::fs::write(&file, bytes).expect("write");
    let path = file.to_str().expect("utf-8");
    decode_strict(path);
    num(&probe_count(path)["streams"][0]["nb_read_frames"]) as u64
}

/// Polls until `ready` holds for `dvr ranges`; panics after `timeout`.
fn wait_ranges(
    server: &Server,
    name: &str,
    timeout: Duration,
    ready: impl Fn(&[(String, String, usize)]) -> bool,
) -> (Vec<(String, String, usize)>, Vec<f64>) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = ranges(server, name);
        if ready(&r.0) {
            return r;
        }
        assert!(Instant::now() < deadline, "ranges never got there: {:?}", r);
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn set(server: &Server, args: &[&str]) -> String {
    let out = server.cli(&[&["stream", "set"][..], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_publishes_are_recorded_as_two_ranges_with_a_gap_and_every_frame() {
    let server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let sent_video = sent_packets(&clip, 1).0.expect("video");
    let key = server.add_stream("lobby");
    let said = set(&server, &["lobby", "--record", "on", "--keep", "7d"]);
    assert!(
        said.contains("recording on") && said.contains("7days"),
        "{said}"
    );
    // Bad settings change nothing.
    for (args, why) in [
        (
            vec!["stream", "set", "lobby", "--keep", "forever"],
            "--keep",
        ),
        (
            vec!["stream", "set", "lobby", "--keep-bytes", "lots"],
            "--keep-bytes",
        ),
        (
            vec!["stream", "set", "nosuch", "--record", "on"],
            "no stream or camera",
        ),
        (vec!["dvr", "ranges", "lobby/../x"], "no stream or camera"),
    ] {
        let out = server.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    }
    let url = server.rtmp_url(&format!("lobby?key={key}"));
    for round in 0..2 {
        let mut ff = publish(&clip, 1, &url);
        assert!(
            ff.wait(Duration::from_secs(60))
                .is_some_and(|s| s.success()),
            "publish {round}"
        );
        if round == 0 {
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    let (r, gaps) = wait_ranges(&server, "lobby", Duration::from_secs(15), |r| {
        r.len() == 2 && r.iter().all(|x| x.2 == 4)
    });
    assert_eq!(gaps.len(), 1, "{r:?}");
    assert!(
        gaps[0] >= 2.5,
        "the 3 s away is a gap, not stretched over: {gaps:?}"
    );
    // Played back over both ranges: one VOD presentation, a discontinuity at the gap,
    // every frame of both publishes, decoded without an error.
    let (start, end) = (&r[0].0, &r[1].1);
    let query = format!("start={start}&end={end}");
    let index = server.url(&format!("/dvr/lobby/index.m3u8?{query}"));
    let video = get_text(&server.url(&format!("/dvr/lobby/video.m3u8?{query}")));
    assert_eq!(
        video.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{video}"
    );
    assert!(video.contains("#EXT-X-PLAYLIST-TYPE:VOD") && video.ends_with("#EXT-X-ENDLIST\n"));
    decode_strict(&index);
    let probe = probe_count(&index);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        2 * sent_video
    );
    let json: serde_json::Value = serde_json::from_str(&get_text(
        &server.url(&format!("/dvr/lobby/recordings.json?from={start}&to={end}")),
    ))
    .expect("json");
    assert_eq!(json["ranges"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json["gaps"].as_array().map(Vec::len), Some(1), "{json}");
    // Bad requests get a status that says what is wrong.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let first_file = video
        .lines()
        .find(|l| l.starts_with("files/"))
        .expect("a segment")
        .to_string();
    for (path, status, what) in [
        (
            format!("/dvr/lobby/index.m3u8?start={end}&end={start}"),
            400,
            "ends before it starts",
        ),
        (
            format!(
                "/dvr/lobby/index.m3u8?start={}&end={}",
                now + 100,
                now + 200
            ),
            400,
            "future",
        ),
        (
            format!("/dvr/lobby/index.m3u8?start=1&end={now}"),
            400,
            "longer than 24 hours",
        ),
        (
            "/dvr/lobby/index.m3u8?start=soon&end=later".to_string(),
            400,
            "RFC 3339",
        ),
        (
            format!(
                "/dvr/lobby/index.m3u8?start={}&end={}",
                now - 7200,
                now - 3600
            ),
            404,
            "no recordings",
        ),
        (
            format!("/dvr/nosuch/index.m3u8?{query}"),
            404,
            "no stream named",
        ),
        (
            format!("/dvr/lobby/other.m3u8?{query}"),
            404,
            "no other.m3u8",
        ),
        (
            "/dvr/lobby/files/..%2F..%2Fstreambox.db/video/init.mp4".to_string(),
            400,
            "not a recording path",
        ),
        (
            "/dvr/lobby/files/1-0/video/..%2Finit.mp4".to_string(),
            400,
            "not a recording path",
        ),
        (
            "/dvr/lobby/files/1-0/video/7.m4s".to_string(),
            404,
            "no such recording",
        ),
        (
            format!("/dvr/lobby/recordings.json?from={end}&to={start}"),
            400,
            "ends before",
        ),
    ] {
        let (got, _, body) = get(&server.url(&path));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(what), "{path}: {body}");
    }
    let (got, _, _) = get(&server.url(&format!("/dvr/lobby/{first_file}")));
    assert_eq!(got, 200, "a listed segment is served");

    // The DASH equivalent: a static MPD, one Period per range. (ffmpeg's DASH reader
    // plays only the first Period, so frames are counted over one range.)
    let mpd = get_text(&server.url(&format!("/dvr/lobby/manifest.mpd?{query}")));
    assert!(
        mpd.contains("type=\"static\"") && mpd.matches("<Period ").count() == 2,
        "{mpd}"
    );
    let one = server.url(&format!(
        "/dvr/lobby/manifest.mpd?start={}&end={}",
        r[0].0, r[0].1
    ));
    decode_strict(&one);
    let probe = probe_count(&one);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        sent_video
    );

    // Clip export: one progressive MP4, moov first, from the keyframe at or before the
    // start, audio starting with the picture; the same bytes over HTTP as from the CLI.
    let t0 = unix_seconds(start) + 3.0;
    let (from, to) = (format!("{t0:.3}"), format!("{:.3}", t0 + 4.0));
    let out = server.dir.path().join("clip.mp4");
    let cli = server.cli(&[
        "dvr",
        "export",
        "lobby",
        "--from",
        &from,
        "--to",
        &to,
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let clip = std::fs::read(&out).expect("clip");
    assert_eq!(&clip[4..8], b"ftyp");
    let moov = clip.windows(4).position(|w| w == b"moov").expect("moov");
    let mdat = clip.windows(4).position(|w| w == b"mdat").expect("mdat");
    assert!(moov < mdat, "moov after mdat");
    let path = out.to_str().expect("utf-8");
    decode_strict(path);
    let probe = probe_count(path);
    let duration = num(&stream_of(&probe, "video")["duration"]);
    assert!(
        (4.0..=6.1).contains(&duration),
        "4 s asked, from a keyframe up to 2 s earlier: {duration}"
    );
    let starts = (
        num(&stream_of(&probe, "video")["start_time"]),
        num(&stream_of(&probe, "audio")["start_time"]),
    );
    assert!(
        (starts.0 - starts.1).abs() < 0.1,
        "audio and video start apart: {starts:?}"
    );
    let (status, headers, body) =
        get(&server.url(&format!("/dvr/lobby/export.mp4?start={from}&end={to}")));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert!(
        body == clip,
        "the HTTP download differs from the CLI export"
    );
    // Across the gap: both publishes, played straight through.
    let (status, _, whole) = get(&server.url(&format!("/dvr/lobby/export.mp4?{query}")));
    assert_eq!(status, 200);
    let whole_path = server.dir.path().join("whole.mp4");
    std::fs::write(&whole_path, whole).expect("write");
    let whole_path = whole_path.to_str().expect("utf-8");
    decode_strict(whole_path);
    let probe = probe_count(whole_path);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        2 * sent_video
    );

    // On disk: two epochs, each with its init segment and every frame of a publish.
    let files = recorded(&server, "lobby");
    let video: Vec<_> = files.iter().filter(|((_, t), _)| t == "video").collect();
    assert_eq!(video.len(), 2, "{files:?}");
    for ((epoch, _), (init, segs)) in video {
        assert!(init, "{epoch}: no init segment");
        let dir = track_dir(&server, epoch, "video");
        assert_eq!(
            decode_recording(&dir, segs),
            sent_video,
            "{epoch}: every frame recorded"
        );
    }
}

#[test]
fn retention_keeps_the_newest_recordings_within_the_size_limit() {
    let server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let key = server.add_stream("lobby");
    set(
        &server,
        &["lobby", "--record", "on", "--keep-bytes", "300kB"],
    );
    let mut ff = publish(&clip, 3, &server.rtmp_url(&format!("lobby?key={key}")));
    assert!(ff
        .wait(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    // The last segment is recorded, then a retention pass runs (at once after a change,
    // else every few seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (files, total) = loop {
        let files = recorded(&server, "lobby");
        let total: u64 = files
            .values()
            .flat_map(|(_, segs)| segs.values())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let last = files
            .iter()
            .any(|((_, t), (_, segs))| t == "video" && segs.contains_key(&7));
        if last && total <= 300_000 {
            break (files, total);
        }
        assert!(
            Instant::now() < deadline,
            "{total} bytes kept of a 300 kB limit; last segment recorded: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(total > 0, "nothing kept");
    // The newest survive: the last segment of the publish is there, the first is not.
    let video = files
        .iter()
        .find(|((_, t), _)| t == "video")
        .map(|(_, v)| v.1.clone())
        .expect("video recorded");
    assert!(
        !video.contains_key(&0) && video.contains_key(&7),
        "{:?}",
        video.keys()
    );
    // The index says exactly what is on disk.
    let (r, _) = ranges(&server, "lobby");
    assert_eq!(r.iter().map(|x| x.2).sum::<usize>(), video.len(), "{r:?}");
}

#[test]
fn kill_9_while_recording_leaves_index_and_files_in_agreement() {
    let mut server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let key = server.add_stream("lobby");
    set(&server, &["lobby", "--record", "on"]);
    let _ff = publish(&clip, -1, &server.rtmp_url(&format!("lobby?key={key}")));
    wait_ranges(&server, "lobby", Duration::from_secs(30), |r| {
        r.iter().map(|x| x.2).sum::<usize>() >= 3
    });
    server.kill_and_restart();
    // What a crash can leave, and worse: a half-written file, a segment that never made
    // it into the index, and an indexed segment cut short.
    let files = recorded(&server, "lobby");
    let ((epoch, _), (_, segs)) = files
        .iter()
        .find(|((_, t), _)| t == "video")
        .expect("video");
    let dir = track_dir(&server, epoch, "video");
    std::fs::write(dir.join("99.m4s.tmp"), b"half").expect("tmp");
    std::fs::write(dir.join("98.m4s"), b"orphan").expect("orphan");
    let victim = segs.values().next().expect("a segment").clone();
    let len = std::fs::metadata(&victim).expect("victim").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    server.kill_and_restart();
    server.wait_log("DVR reconciled", Duration::from_secs(10));
    // Now the directory holds exactly what the index lists, and all of it decodes.
    let (r, _) = ranges(&server, "lobby");
    let files = recorded(&server, "lobby");
    let video: Vec<_> = files.iter().filter(|((_, t), _)| t == "video").collect();
    let on_disk: usize = video.iter().map(|(_, (_, s))| s.len()).sum();
    assert!(on_disk >= 2, "{files:?}");
    assert!(!victim.exists(), "the truncated segment was dropped");
    assert_eq!(
        r.iter().map(|x| x.2).sum::<usize>(),
        on_disk,
        "index {r:?} vs files {files:?}"
    );
    for ((epoch, _), (init, segs)) in video {
        assert!(init);
        let dir = track_dir(&server, epoch, "video");
        // Segments from both sides of the truncated one are still there; each run of
        // consecutive ones decodes.
        let mut run = BTreeMap::new();
        for (msn, p) in segs {
            if run.keys().next_back().is_some_and(|last| msn - last != 1) {
                decode_recording(&dir, &run);
                run.clear();
            }
            run.insert(*msn, p.clone());
        }
        if !run.is_empty() {
            decode_recording(&dir, &run);
        }
    }
}

/// PSNR (dB, average over R, G and B) of two pictures of the same size, per ffmpeg's
/// `psnr` filter.
fn psnr(a: &Path, b: &Path) -> f64 {
    let (a, b) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    ffmpeg_psnr(
        &["-i", a, "-i", b],
        "[0:v]format=rgb24[a];[1:v]format=rgb24[b]",
    )
}

/// GETs every URL at the same moment, each from its own thread.
fn at_once(
    urls: Vec<String>,
) -> Vec<std::thread::JoinHandle<(u16, reqwest::header::HeaderMap, Vec<u8>)>> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(urls.len()));
    urls.into_iter()
        .map(|url| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                get(&url)
            })
        })
        .collect()
}

/// `streambox_thumbnails_total` by result (every result present, 0 when never counted).
fn thumbnail_counts(server: &Server) -> BTreeMap<String, usize> {
    let metrics = server.metrics();
    let mut out: BTreeMap<String, usize> = [
        "cached", "shared", "queued", "stale", "busy", "decoded", "failed",
    ]
    .iter()
    .map(|r| (r.to_string(), 0))
    .collect();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("streambox_thumbnails_total{result=\"") {
            let (result, n) = rest.split_once("\"} ").expect("metric line");
            out.insert(result.to_string(), n.parse().expect("count"));
        }
    }
    out
}

#[test]
fn thumbnails_of_live_and_recorded_keyframes_match_ffmpegs_decode() {
    let server = Server::start();
    let clip = bbb_bframes_as("640x360", "mp4");
    let key = server.add_stream("lobby");
    set(&server, &["lobby", "--record", "on"]);
    // 24 s: enough keyframes recorded for the queue test while the stream is still live.
    let mut ff = publish(&clip, 5, &server.rtmp_url(&format!("lobby?key={key}")));
    server.wait_segments("lobby", 1);
    // Live: a hundred dashboard tiles at once all get the picture, at the size asked
    // for, for one decode per keyframe.
    let url = server.url("/live/lobby/thumbnail.jpg?width=320");
    let tiles = at_once((0..100).map(|_| url.clone()).collect());
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, t) in tiles.into_iter().enumerate() {
        let (status, headers, body) = t.join().expect("tile");
        assert_eq!(status, 200, "tile {i}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/jpeg");
        if i == 0 {
            let f = dir.path().join("live.jpg");
            std::fs::write(&f, &body).expect("write");
            let p = probe_count(f.to_str().expect("utf-8"));
            assert_eq!(
                (
                    num(&p["streams"][0]["width"]),
                    num(&p["streams"][0]["height"])
                ),
                (320.0, 180.0)
            );
        }
    }
    let counts = thumbnail_counts(&server);
    assert_eq!(
        counts["cached"] + counts["shared"] + counts["queued"],
        100,
        "{counts:?}"
    );
    assert_eq!(counts["queued"], counts["decoded"], "{counts:?}");
    assert!(
        (1..=2).contains(&counts["decoded"]),
        "one decode per keyframe (a burst may straddle two): {counts:?}"
    );
    // More distinct pictures than the decoder's queue holds (recorded keyframes at every
    // size, asked for at once): the rest get an older picture or are told to retry, and
    // the stream goes on meanwhile. (Widths are rounded to a few sizes, so distinct
    // pictures are distinct keyframes.)
    let (r, _) = wait_ranges(&server, "lobby", Duration::from_secs(30), |r| {
        r.iter().any(|x| x.2 >= 5)
    });
    let t0 = unix_seconds(&r[0].0);
    let msn = live_msn(&server);
    let pictures: Vec<String> = (0..5)
        .flat_map(|k| {
            [160, 320, 480, 640].map(|w| {
                server.url(&format!(
                    "/dvr/lobby/thumbnail.jpg?at={:.3}&width={w}",
                    t0 + 1.0 + 2.0 * f64::from(k)
                ))
            })
        })
        .collect();
    let mut busy = 0;
    for (status, headers, body) in at_once(pictures)
        .into_iter()
        .map(|t| t.join().expect("tile"))
    {
        match status {
            200 => assert_eq!(headers["content-type"], "image/jpeg"),
            503 => {
                busy += 1;
                assert_eq!(headers["retry-after"], "1");
                assert!(String::from_utf8_lossy(&body).contains("busy"));
            }
            _ => panic!("{status}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let after = thumbnail_counts(&server);
    eprintln!("20 recorded pictures at once: {busy} told to retry; {after:?}");
    let behind = (after["busy"] - counts["busy"]) + (after["stale"] - counts["stale"]);
    assert!(behind > 0, "the queue never filled: {after:?}");
    assert_eq!(after["busy"] - counts["busy"], busy, "{after:?}");
    assert_eq!(
        after["queued"],
        after["decoded"] + after["failed"],
        "{after:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_msn(&server) < msn + 2 {
        assert!(Instant::now() < deadline, "the stream stalled");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (path, status) in [
        ("/live/lobby/thumbnail.jpg?width=5", 400),
        ("/live/nosuch/thumbnail.jpg", 404),
        ("/dvr/lobby/thumbnail.jpg", 400),
        ("/dvr/lobby/thumbnail.jpg?at=5", 404),
    ] {
        assert_eq!(get(&server.url(path)).0, status, "{path}");
    }
    assert!(ff
        .wait(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    // Recorded: the keyframe at or before a time, against ffmpeg's own decode of the
    // same recorded keyframe scaled to the same size.
    let (r, _) = wait_ranges(&server, "lobby", Duration::from_secs(15), |r| {
        r.iter().any(|x| x.2 >= 3)
    });
    let at = unix_seconds(&r[0].0) + 3.0; // in the second segment, which starts with a keyframe
    let (status, _, jpeg) =
        get(&server.url(&format!("/dvr/lobby/thumbnail.jpg?at={at:.3}&width=320")));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&jpeg));
    let ours = dir.path().join("ours.jpg");
    std::fs::write(&ours, jpeg).expect("write");
    let files = recorded(&server, "lobby");
    let (epoch, segs) = files
        .iter()
        .find(|((_, t), _)| t == "video")
        .map(|((e, _), (_, s))| (e.clone(), s.clone()))
        .expect("video");
    let second: BTreeMap<u64, PathBuf> = segs
        .iter()
        .skip(1)
        .take(1)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let vdir = track_dir(&server, &epoch, "video");
    let mut joined = std::fs::read(vdir.join("init.mp4")).expect("init");
    joined.extend(std::fs::read(second.values().next().expect("segment")).expect("segment"));
    let seg = dir.path().join("segment.mp4");
    std::fs::write(&seg, joined).expect("write");
    let reference = dir.path().join("reference.png");
    let st = std::process::Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&seg)
        .args(["-frames:v", "1", "-vf", "scale=320:180"])
        .arg(&reference)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let db = psnr(&ours, &reference);
    eprintln!("thumbnail vs ffmpeg decode: {db:.1} dB");
    assert!(db > 30.0, "thumbnail vs ffmpeg's decode: {db} dB");
}

#[test]
fn time_shift_lists_recorded_segments_before_the_in_memory_window() {
    // 6 s of media in memory; the rest of a 20 s publish comes from the recording.
    let server = Server::with(Settings {
        window: 6.0,
        ..Settings::default()
    });
    let clip = bbb_bframes_as("640x360", "mp4");
    let sent_video = sent_packets(&clip, 4).0.expect("video");
    let key = server.add_stream("lobby");
    set(&server, &["lobby", "--record", "on"]);
    let mut ff = publish(&clip, 4, &server.rtmp_url(&format!("lobby?key={key}")));
    assert!(ff
        .wait(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    let playlist = wait_for(
        &server.url("/live/lobby/video.m3u8"),
        Duration::from_secs(20),
        |p| p.contains("#EXT-X-ENDLIST"),
    );
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{playlist}");
    assert_eq!(
        playlist.matches("#EXTINF").count(),
        10,
        "all 20 s listed: {playlist}"
    );
    // The oldest segment left memory long ago; it comes from disk.
    let (status, _, _) = get(&server.url("/live/lobby/video/seg-0.m4s"));
    assert_eq!(status, 200);
    // A player reading the live playlist (or the manifest) from its start gets every
    // frame.
    for path in ["/live/lobby/index.m3u8", "/live/lobby/manifest.mpd"] {
        let url = server.url(path);
        decode_strict(&url);
        let probe = probe_count(&url);
        assert_eq!(
            num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
            sent_video,
            "{path}"
        );
    }
}

/// A tmpfs mounted at `mount` while the value lives. Mounting needs CAP_SYS_ADMIN (root,
/// as CI runs the suite); without it the test fails and says so.
struct Tmpfs {
    mount: PathBuf,
    /// Removed once unmounted (the server's data directory, which holds the mount point).
    parent: PathBuf,
}

impl Tmpfs {
    fn mount(parent: &Path, name: &str, bytes: u64) -> Tmpfs {
        let mount = parent.join(name);
        std::fs::create_dir_all(&mount).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&mount)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "this test mounts a {bytes}-byte tmpfs at {} and needs root (CAP_SYS_ADMIN) for it: {}",
            mount.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            mount,
            parent: parent.to_path_buf(),
        }
    }

    fn free(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.mount)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df avail")
    }

    /// Writes `path` in 64 KiB blocks until `bytes` are written or the disk is full;
    /// returns whether it filled up.
    fn fill(&self, path: &Path, bytes: u64) -> bool {
        use std::io::Write;
        let mut f = std::fs::File::create(path).expect("ballast");
        let block = vec![0x5a_u8; 64 << 10];
        let mut n = 0;
        while n < bytes {
            match f.write_all(&block).and_then(|_| f.sync_all()) {
                Ok(()) => n += block.len() as u64,
                Err(e) if e.raw_os_error() == Some(28) => return true, // ENOSPC
                Err(e) => panic!("ballast: {e}"),
            }
        }
        false
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

/// A server whose recordings directory is a small tmpfs, recording stream `lobby` from a
/// looping 640x360 publish; returns once something is recorded.
fn recording_on_tmpfs(tmpfs_bytes: u64, floor: u64) -> (Tmpfs, Server, Proc) {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Tmpfs::mount(dir.path(), "recordings", tmpfs_bytes);
    let server = Server::in_dir(
        dir,
        Settings {
            min_free_bytes: floor,
            ..Settings::default()
        },
    );
    let clip = bbb_bframes_as("640x360", "mp4");
    let key = server.add_stream("lobby");
    set(&server, &["lobby", "--record", "on"]);
    let ff = publish(&clip, -1, &server.rtmp_url(&format!("lobby?key={key}")));
    wait_ranges(&server, "lobby", Duration::from_secs(30), |r| !r.is_empty());
    (disk, server, ff)
}

/// The newest media sequence number in the live video playlist.
fn live_msn(server: &Server) -> u64 {
    let p = get_text(&server.url("/live/lobby/video.m3u8"));
    let first: u64 = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("media sequence");
    first + p.matches("#EXTINF").count() as u64
}

/// While paused: live HLS goes on, the pause is visible in the metrics, nothing is
/// recorded, and the index matches the files (no partial or temporary file is left).
fn check_paused(server: &Server) {
    let metrics = server.metrics();
    assert!(
        metrics.contains("streambox_dvr_paused{stream=\"lobby\"} 1"),
        "{metrics}"
    );
    let (before, _) = ranges(server, "lobby");
    let msn = live_msn(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_msn(server) < msn + 3 {
        assert!(Instant::now() < deadline, "live HLS stopped while paused");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(ranges(server, "lobby").0, before, "recorded while paused");
    index_matches_files(server);
}

/// Every indexed segment is on disk, and every segment on disk is indexed.
fn index_matches_files(server: &Server) {
    let files = recorded(server, "lobby"); // panics on a temporary or stray file
    let on_disk: usize = files
        .iter()
        .filter(|((_, t), _)| t == "video")
        .map(|(_, (init, segs))| {
            assert!(
                *init || segs.is_empty(),
                "segments without their init segment"
            );
            segs.len()
        })
        .sum();
    let (r, _) = ranges(server, "lobby");
    assert_eq!(r.iter().map(|x| x.2).sum::<usize>(), on_disk, "{r:?}");
}

#[test]
fn below_the_free_space_floor_recording_pauses_and_resumes_by_itself() {
    // A 64 MiB disk with a 16 MiB floor: ballast down to 8 MiB free pauses recording
    // (the segments would still fit); removing it resumes recording.
    let (disk, server, _ff) = recording_on_tmpfs(64 << 20, 16 << 20);
    let ballast = disk.mount.join("ballast");
    assert!(!disk.fill(&ballast, disk.free() - (8 << 20)));
    let line = server.wait_log("recording paused", Duration::from_secs(10));
    assert!(line.contains("free-space floor"), "{line}");
    check_paused(&server);
    std::fs::remove_file(&ballast).expect("remove ballast");
    server.wait_log("recording resumed", Duration::from_secs(10));
    let (r, gaps) = wait_ranges(&server, "lobby", Duration::from_secs(30), |r| r.len() == 2);
    assert_eq!(gaps.len(), 1, "{r:?}");
    assert!(!server.log().contains("recording a segment failed"));
}

#[test]
fn a_disk_that_fills_mid_write_pauses_recording_and_it_resumes_by_itself() {
    // No floor: the writes themselves meet the full disk.
    let (disk, server, _ff) = recording_on_tmpfs(32 << 20, 0);
    let ballast = disk.mount.join("ballast");
    assert!(disk.fill(&ballast, u64::MAX), "the tmpfs never filled");
    server.wait_log("the data disk is full", Duration::from_secs(15));
    check_paused(&server);
    // Room again: recording resumes by itself, after a gap.
    std::fs::remove_file(&ballast).expect("remove ballast");
    server.wait_log("recording resumed", Duration::from_secs(10));
    let (r, gaps) = wait_ranges(&server, "lobby", Duration::from_secs(30), |r| r.len() == 2);
    assert_eq!(gaps.len(), 1, "{r:?}");
    index_matches_files(&server);
    let metrics = server.metrics();
    assert!(
        metrics.contains("streambox_dvr_paused{stream=\"lobby\"} 0"),
        "{metrics}"
    );
}
