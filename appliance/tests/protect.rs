//! End-to-end: content protection (issue 21). An encrypted stream's HLS is AES-128
//! ciphertext that real ffmpeg plays frame-exact through its keys, across a key
//! rotation; without its key a segment does not decode; its keys go only to viewers
//! who may watch, and every refusal is counted.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::web::{Answer, Web};
use support::*;

fn admin(server: &Server) -> (Web, String) {
    support::web::admin_with_token(server, "protect")
}

fn api(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    support::web::api_call(server, token, method, path, body)
}

/// Waits for the publisher `ff` to finish cleanly, then for `lobby`'s video playlist to
/// end; the playlist.
fn published_whole(server: &Server, mut ff: Proc) -> String {
    let status = ff
        .wait(Duration::from_secs(60))
        .expect("publisher finishes");
    assert!(status.success(), "ffmpeg publish failed: {}", ff.stderr());
    wait_for(
        &server.url("/live/lobby/video.m3u8"),
        Duration::from_secs(15),
        |p| p.contains("#EXT-X-ENDLIST"),
    )
}

/// A new content key for `lobby` at once, through the API; its key ID.
fn rotate(server: &Server, token: &str) -> String {
    let a = api(
        server,
        token,
        "POST",
        "/api/streams/lobby/protection/rotate",
        None,
    );
    assert_eq!(a.status, 200, "{a:?}");
    a.json()["key_id"].as_str().expect("key_id").to_string()
}

/// The key URIs (`keys/KID.key`) of a media playlist, in order, each once.
fn key_uris(playlist: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in playlist.lines() {
        if let Some(uri) = l
            .strip_prefix("#EXT-X-KEY:METHOD=AES-128,URI=\"")
            .and_then(|r| r.strip_suffix('"'))
        {
            if !out.iter().any(|u| u == uri) {
                out.push(uri.to_string());
            }
        }
    }
    out
}

/// The value of `streambox_key_requests_total{outcome="…"}`.
fn key_requests(server: &Server, outcome: &str) -> u64 {
    let needle = format!("streambox_key_requests_total{{outcome=\"{outcome}\"}} ");
    server
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().expect("counter"))
}

#[test]
fn an_encrypted_stream_plays_frame_exact_across_a_key_rotation_and_is_ciphertext_without_its_key() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let clip = bbb_bframes();
    let a = api(
        &server,
        &token,
        "PUT",
        "/api/streams/lobby/protection",
        Some(json!({"encrypted": true, "rotate": "never"})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["encrypted"], json!(true), "{a:?}");
    // Bad input changes nothing.
    for bad in ["5s", "2d", "soon", ""] {
        let a = api(
            &server,
            &token,
            "PUT",
            "/api/streams/lobby/protection",
            Some(json!({"encrypted": false, "rotate": bad})),
        );
        assert_eq!(a.status, 422, "rotate {bad:?}: {a:?}");
    }
    let a = api(&server, &token, "GET", "/api/streams/lobby", None);
    assert_eq!(a.json()["protection"]["encrypted"], json!(true), "{a:?}");

    let key = support::web::new_stream_key(&server, &token, "lobby");
    let (sent_video, sent_audio) = sent_packets(&clip, 1);
    let ff = publish(&clip, 1, &server.rtmp_url(&format!("lobby?key={key}")));
    server.wait_segments("lobby", 2);
    // "This link leaked": a new key at once, in force from the segment after next.
    let rotated = rotate(&server, &token);
    let playlist = published_whole(&server, ff);

    // Two keys, the second the rotated one; init segments stay clear.
    let keys = key_uris(&playlist);
    assert_eq!(keys.len(), 2, "{playlist}");
    assert_eq!(keys[1], format!("keys/{rotated}.key"), "{playlist}");
    let map = playlist
        .lines()
        .position(|l| l.starts_with("#EXT-X-MAP"))
        .expect("EXT-X-MAP");
    assert!(
        playlist
            .lines()
            .take(map)
            .all(|l| !l.starts_with("#EXT-X-KEY:METHOD=AES")),
        "a key applies to the init segment: {playlist}"
    );
    for uri in &keys {
        let (status, headers, body) = get(&server.url(&format!("/live/lobby/{uri}")));
        assert_eq!((status, body.len()), (200, 16), "{uri}");
        assert_eq!(headers["cache-control"], "no-store", "{uri}");
    }

    // ffmpeg plays every frame sent, decoding cleanly, through both keys.
    let url = server.url("/live/lobby/index.m3u8");
    let probe = probe_count(&url);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        sent_video.expect("video"),
        "video frames decoded vs sent"
    );
    let audio = num(&stream_of(&probe, "audio")["nb_read_packets"]) as u64;
    let sent_audio = sent_audio.expect("audio");
    assert!(
        audio <= sent_audio && audio + 1 >= sent_audio,
        "{audio} audio frames of {sent_audio}"
    );
    decode_strict(&url);

    // Fetched by any route, media is ciphertext: a segment with its (clear) init segment
    // holds no decodable video; parts and segments are whole AES blocks.
    let seg = playlist
        .lines()
        .filter(|l| l.starts_with("video/seg-"))
        .nth(1)
        .expect("a second segment");
    let (status, _, init) = get(&server.url("/live/lobby/video/init-0.mp4"));
    assert_eq!(status, 200);
    let (status, _, sealed) = get(&server.url(&format!("/live/lobby/{seg}")));
    assert_eq!(status, 200);
    assert_eq!(sealed.len() % 16, 0, "{seg} is AES-CBC with padding");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stolen.mp4");
    std::fs::write(&file, [init.clone(), sealed].concat()).expect("write");
    let out = std::process::Command::new(tool("ffprobe"))
        .args(["-v", "error", "-count_frames", "-select_streams", "v"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let frames: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        !out.status.success() || frames == 0,
        "ffprobe decoded {frames} frames of an encrypted segment without its key"
    );
    let part = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('"').next())
        .expect("a listed part");
    let (status, _, bytes) = get(&server.url(&format!("/live/lobby/{part}")));
    assert_eq!((status, bytes.len() % 16), (200, 0), "{part}");

    // What would carry it in the clear refuses: DASH (until Common Encryption), the
    // recordings (until they are served encrypted), RTSP.
    let (status, _, _) = get(&server.url("/live/lobby/manifest.mpd"));
    assert_eq!(status, 409, "DASH of an encrypted stream");
    let (reply, _) = rtsp_exchange(
        &server,
        format!(
            "DESCRIBE rtsp://{}/live/lobby RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            server.rtsp
        )
        .as_bytes(),
    );
    assert!(reply.starts_with("RTSP/1.0 403"), "{reply}");
    assert!(key_requests(&server, "served") >= 2);
}

#[test]
fn content_keys_go_only_to_viewers_who_may_watch_and_refusals_are_counted() {
    let server = Server::start();
    let (web, token) = admin(&server);
    for name in ["lobby", "other"] {
        if name == "other" {
            let a = api(
                &server,
                &token,
                "POST",
                "/api/streams",
                Some(json!({"name": name})),
            );
            assert_eq!(a.status, 201, "{a:?}");
        }
        let a = api(
            &server,
            &token,
            "PUT",
            &format!("/api/streams/{name}/protection"),
            Some(json!({"encrypted": true})),
        );
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["rotate_secs"], json!(600), "the default: {a:?}");
        let a = api(
            &server,
            &token,
            "PUT",
            &format!("/api/streams/{name}/visibility"),
            Some(json!({"visibility": "private"})),
        );
        assert_eq!(a.status, 200, "{a:?}");
    }
    let mut publishers = Vec::new();
    for name in ["lobby", "other"] {
        let key = support::web::new_stream_key(&server, &token, name);
        publishers.push(publish(
            &bbb(),
            -1,
            &server.rtmp_url(&format!("{name}?key={key}")),
        ));
    }
    let link = |name: &str| -> (i64, String) {
        let a = api(
            &server,
            &token,
            "POST",
            &format!("/api/streams/{name}/links"),
            Some(json!({"valid": "1h"})),
        );
        assert_eq!(a.status, 201, "{a:?}");
        let url = a.json()["url"].as_str().expect("url").to_string();
        let t = url.split("/t/").nth(1).and_then(|r| r.split('/').next());
        (
            a.json()["id"].as_i64().expect("id"),
            t.expect("token in the link").to_string(),
        )
    };
    let ((_, lobby_link), (_, other_link)) = (link("lobby"), link("other"));
    let (revoked_id, revoked) = link("lobby");
    let kid_of = |name: &str, via: &str| -> String {
        let p = wait_for(
            &server.url(&format!("/t/{via}/live/{name}/video.m3u8")),
            Duration::from_secs(30),
            |p| p.contains("#EXT-X-KEY:METHOD=AES-128"),
        );
        key_uris(&p)[0]
            .trim_start_matches("keys/")
            .trim_end_matches(".key")
            .to_string()
    };
    let (lobby_kid, other_kid) = (kid_of("lobby", &lobby_link), kid_of("other", &other_link));
    assert_ne!(lobby_kid, other_kid);
    let key_url = |prefix: &str, name: &str, kid: &str| {
        server.url(&format!("{prefix}/live/{name}/keys/{kid}.key"))
    };

    // Through this stream's link: the key, never cached.
    let (status, headers, body) = get(&key_url(&format!("/t/{lobby_link}"), "lobby", &lobby_kid));
    assert_eq!((status, body.len()), (200, 16));
    assert_eq!(headers["cache-control"], "no-store");
    // A signed-in administrator too.
    assert_eq!(
        web.get(&format!("/live/lobby/keys/{lobby_kid}.key")).status,
        200
    );

    let refused = key_requests(&server, "refused");
    let unknown = key_requests(&server, "unknown");
    let altered = {
        let mut t = lobby_link.clone();
        let last = t.pop().expect("char");
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    let (status, _, _) = get(&key_url(&format!("/t/{revoked}"), "lobby", &lobby_kid));
    assert_eq!(status, 200, "the link to revoke works first");
    let a = api(
        &server,
        &token,
        "DELETE",
        &format!("/api/streams/lobby/links/{revoked_id}"),
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    for (what, url) in [
        ("anonymous", key_url("", "lobby", &lobby_kid)),
        (
            "an altered link",
            key_url(&format!("/t/{altered}"), "lobby", &lobby_kid),
        ),
        (
            "a revoked link",
            key_url(&format!("/t/{revoked}"), "lobby", &lobby_kid),
        ),
        (
            "another stream's link",
            key_url(&format!("/t/{other_link}"), "lobby", &lobby_kid),
        ),
    ] {
        let (status, _, body) = get(&url);
        assert_eq!(status, 403, "{what}: {}", String::from_utf8_lossy(&body));
        assert!(body.len() != 16 || status != 200, "{what} got a key");
    }
    assert_eq!(key_requests(&server, "refused"), refused + 4);
    // The other stream's key through this stream's link, and keys that are none: 404.
    for (what, kid) in [
        ("another stream's key", other_kid.as_str()),
        ("an unknown key", &"00".repeat(16)),
        ("no key ID", "video"),
    ] {
        let (status, _, _) = get(&key_url(&format!("/t/{lobby_link}"), "lobby", kid));
        assert_eq!(status, 404, "{what}");
    }
    assert!(key_requests(&server, "unknown") >= unknown + 2);

    // A client asking for keys at a high rate is slowed down.
    let limited = (0..100).find_map(|i| {
        let (status, headers, _) = get(&key_url(&format!("/t/{lobby_link}"), "lobby", &lobby_kid));
        (status == 429).then_some((i, headers))
    });
    let (i, headers) = limited.expect("rate-limited within 100 requests");
    assert!(i >= 40, "limited after only {i} requests");
    assert!(headers.contains_key("retry-after"));
    assert!(key_requests(&server, "limited") >= 1);
    drop(publishers);
}

#[test]
fn hls_js_plays_an_encrypted_private_stream_through_its_link_across_a_rotation() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    for (path, body) in [
        ("/api/streams/lobby/protection", json!({"encrypted": true})),
        (
            "/api/streams/lobby/visibility",
            json!({"visibility": "private"}),
        ),
    ] {
        let a = api(&server, &token, "PUT", path, Some(body));
        assert_eq!(a.status, 200, "{a:?}");
    }
    let key = support::web::new_stream_key(&server, &token, "lobby");
    // 640x360 keeps Chromium's software decoding light: this is about the keys.
    let _ff = publish(
        &bbb_bframes_as("640x360", "mp4"),
        -1,
        &server.rtmp_url(&format!("lobby?key={key}")),
    );
    let a = api(
        &server,
        &token,
        "POST",
        "/api/streams/lobby/links",
        Some(json!({"valid": "1h"})),
    );
    let url = a.json()["url"].as_str().expect("url").to_string();
    let link = url
        .split("/watch/")
        .next()
        .expect("link prefix")
        .to_string();
    wait_for(
        &format!("{link}/live/lobby/video.m3u8"),
        Duration::from_secs(30),
        |p| p.matches("#EXTINF").count() >= 1,
    );

    // Without the link nothing plays.
    let refused = browser_result(play_in_browser(
        "hls",
        &server.url("/live/lobby/index.m3u8"),
        6,
    ));
    assert!(
        refused["fatal"].as_array().is_some_and(|f| !f.is_empty()),
        "{refused}"
    );
    assert_eq!(num(&refused["decodedFrames"]), 0.0, "{refused}");

    // Through the link hls.js plays on while the key changes under it.
    let player = play_in_browser("hls", &format!("{link}/live/lobby/index.m3u8"), 16);
    std::thread::sleep(Duration::from_secs(6));
    rotate(&server, &token);
    let r = browser_result(player);
    eprintln!("hls.js: {r}");
    assert_eq!(r["fatal"], json!([]), "{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    let (played, wall) = (num(&r["played"]), num(&r["wall"]));
    assert!(
        wall > 10.0 && played > wall * 0.75,
        "hls.js stalled: {played:.1} s in {wall:.1} s: {r}"
    );
    assert!(num(&r["partsInPlaylist"]) > 0.0, "hls.js saw no parts: {r}");
    // It fetched both keys, through the link.
    assert!(key_requests(&server, "served") >= 2, "{}", server.metrics());
    let playlist = get_text(&format!("{link}/live/lobby/video.m3u8"));
    assert_eq!(key_uris(&playlist).len(), 2, "{playlist}");
}

#[test]
fn protection_turned_off_and_on_while_live_plays_through_every_frame() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let clip = bbb_bframes();
    let set = |on: bool| {
        let a = api(
            &server,
            &token,
            "PUT",
            "/api/streams/lobby/protection",
            Some(json!({"encrypted": on})),
        );
        assert_eq!(a.status, 200, "{a:?}");
    };
    set(true);
    let key = support::web::new_stream_key(&server, &token, "lobby");
    let (sent_video, _) = sent_packets(&clip, 2);
    let ff = publish(&clip, 2, &server.rtmp_url(&format!("lobby?key={key}")));
    for (segments, on) in [(2, false), (4, true)] {
        server.wait_segments("lobby", segments);
        set(on);
    }
    let playlist = published_whole(&server, ff);
    // Encrypted, then clear (a segment after the change was asked for), then encrypted
    // again, under the session's key (not due for rotation yet).
    let methods: Vec<&str> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-KEY:METHOD="))
        .map(|m| m.split(',').next().unwrap_or(m))
        .collect();
    assert!(
        methods
            .windows(3)
            .any(|w| w == ["AES-128", "NONE", "AES-128"]),
        "{playlist}"
    );
    assert_eq!(key_uris(&playlist).len(), 1, "{playlist}");
    let url = server.url("/live/lobby/index.m3u8");
    let probe = probe_count(&url);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        sent_video.expect("video"),
        "every video frame across the changes"
    );
    decode_strict(&url);
}
