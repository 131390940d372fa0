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

/// `PUT /api/streams/lobby/protection` with `body`, which must succeed; the answer.
fn protect_lobby(server: &Server, token: &str, body: Value) -> Answer {
    let a = api(
        server,
        token,
        "PUT",
        "/api/streams/lobby/protection",
        Some(body),
    );
    assert_eq!(a.status, 200, "{a:?}");
    a
}

/// ffprobe reads `sent` video frames from `url` (`what` if not), and ffmpeg decodes it
/// with errors fatal.
fn plays_every_frame(url: &str, sent: Option<u64>, what: &str) {
    let probe = probe_count(url);
    assert_eq!(
        num(&stream_of(&probe, "video")["nb_read_frames"]) as u64,
        sent.expect("video"),
        "{what}"
    );
    decode_strict(url);
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

/// A ClearKey license request (W3C EME §9.1.3) for `kids` (hex) to `url`: the status
/// and the answer.
fn license(url: &str, kids: &[&str]) -> (u16, Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kids: Vec<String> = kids.iter().map(|k| b64.encode(hex(k))).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(json!({"kids": kids, "type": "temporary"}).to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The segments of a media playlist with the key ID each is encrypted with (`None`:
/// in the clear): (`N` of `seg-N.m4s`, key ID).
fn segment_keys(playlist: &str) -> Vec<(u64, Option<String>)> {
    let mut key = None;
    let mut out = Vec::new();
    for l in playlist.lines() {
        if let Some(m) = l.strip_prefix("#EXT-X-KEY:METHOD=") {
            key = m
                .split("URI=\"keys/")
                .nth(1)
                .and_then(|r| r.split(".key").next())
                .map(str::to_string);
        } else if let Some(n) = l.split("seg-").nth(1).and_then(|r| r.strip_suffix(".m4s")) {
            if !l.starts_with('#') {
                out.push((n.parse().expect("msn"), key.clone()));
            }
        }
    }
    out
}

/// A file for ffmpeg's standard input. Fragmented MP4 in Common Encryption is read
/// from a pipe: from a seekable file ffmpeg 5.1 reads every `moof` first and then
/// decrypts each sample with the last fragment's `senc` (fixed in later versions).
fn stdin_of(file: &std::path::Path) -> std::process::Stdio {
    std::fs::File::open(file).expect("open").into()
}

/// Runs ffmpeg over `file` (`args` before it), decoding everything with errors fatal;
/// whether it succeeded, and its stderr.
fn ffmpeg_decodes(args: &[&str], file: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-xerror", "-err_detect", "explode"])
        .args(args)
        .args(["-i", "pipe:0", "-f", "null", "-"])
        .stdin(stdin_of(file))
        .output()
        .expect("ffmpeg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Frames (video) or packets (audio) ffprobe reads from `file` with `key` (hex).
fn frames_with_key(file: &std::path::Path, key: &str, video: bool) -> u64 {
    let entry = if video {
        "nb_read_frames"
    } else {
        "nb_read_packets"
    };
    let out = std::process::Command::new(tool("ffprobe"))
        .args(["-v", "error", "-decryption_key", key])
        .arg(if video {
            "-count_frames"
        } else {
            "-count_packets"
        })
        .args([
            "-show_entries",
            &format!("stream={entry}"),
            "-of",
            "csv=p=0",
        ])
        .arg("pipe:0")
        .stdin(stdin_of(file))
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("a count, not {text:?}: {e}"))
}

/// What a DASH player of the encrypted presentation `mpd` (at `base`, the URL its
/// relative URLs resolve against) would play, fetched as its SegmentTemplates name the
/// files: for each Period and AdaptationSet, its init segment and segments, decoded
/// by ffmpeg with the key of the AdaptationSet's `cenc:default_KID` (from the key route
/// of the live stream `lobby`) with errors fatal. Returns (Periods, video frames,
/// audio packets).
fn dash_plays_encrypted(server: &Server, base: &str, mpd: &str) -> (usize, u64, u64) {
    let attr = |chunk: &str, name: &str| -> String {
        chunk
            .split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no {name} in {chunk}"))
            .to_string()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut video, mut audio) = (0, 0);
    let periods: Vec<&str> = mpd.split("<Period ").skip(1).collect();
    for (p, period) in periods.iter().enumerate() {
        for (a, set) in period.split("<AdaptationSet ").skip(1).enumerate() {
            let is_video = set.contains("contentType=\"video\"");
            let kid = attr(set, "cenc:default_KID").replace('-', "");
            let (status, _, key) = get(&server.url(&format!("/live/lobby/keys/{kid}.key")));
            assert_eq!(status, 200, "key {kid}");
            let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let template = set
                .split("<SegmentTemplate")
                .nth(1)
                .expect("SegmentTemplate");
            let first: u64 = attr(template, "startNumber").parse().expect("startNumber");
            let count: u64 = template
                .split("<S ")
                .skip(1)
                .map(|s| {
                    s.split(" r=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .map_or(1, |r| 1 + r.parse::<u64>().expect("r"))
                })
                .sum();
            assert!(count >= 1, "{set}");
            let mut file = {
                let url = format!("{base}{}", attr(template, "initialization"));
                let (status, _, body) = get(&url);
                assert_eq!(status, 200, "{url}");
                body
            };
            let media = attr(template, "media");
            assert!(media.contains("cenc"), "clear segments listed: {media}");
            for n in first..first + count {
                let url = format!("{base}{}", media.replace("$Number$", &n.to_string()));
                let (status, _, body) = get(&url);
                assert_eq!(status, 200, "{url}");
                file.extend(body);
            }
            let path = dir.path().join(format!("{p}-{a}.mp4"));
            std::fs::write(&path, &file).expect("write");
            let (ok, err) = ffmpeg_decodes(&["-decryption_key", &key], &path);
            assert!(
                ok,
                "Period {p}, {}: {err}",
                if is_video { "video" } else { "audio" }
            );
            let (ok, _) = ffmpeg_decodes(&[], &path);
            assert!(!ok, "Period {p} decoded without its key");
            if is_video {
                video += frames_with_key(&path, &key, true);
            } else {
                audio += frames_with_key(&path, &key, false);
            }
        }
    }
    (periods.len(), video, audio)
}

/// The MPD at `dir` + `manifest.mpd` + `query`, played as [`dash_plays_encrypted`]
/// plays it: two Periods (one per key) and every video frame `sent`. Returns the MPD.
fn dash_plays_every_frame_of_two_keys(
    server: &Server,
    dir: &str,
    query: &str,
    sent: Option<u64>,
) -> String {
    let mpd = get_text(&server.url(&format!("{dir}manifest.mpd{query}")));
    let (periods, frames, _) = dash_plays_encrypted(server, &server.url(dir), &mpd);
    assert_eq!(periods, 2, "{mpd}");
    assert_eq!(Some(frames), sent, "{dir}: video frames over DASH vs sent");
    mpd
}

/// The stream `lobby`, encrypted, published whole and its key rotated (to `rotated`)
/// once, over DASH: a Period per key, each with its key ID and license server; the
/// license server gives the keys the HLS route gives; each key's Common Encryption
/// segments decode with that key and only with it, `sent` (video, audio frames) in all.
fn dash_is_common_encryption_frame_exact(
    server: &Server,
    video: &str,
    rotated: &str,
    (sent_video, sent_audio): (Option<u64>, Option<u64>),
) {
    let audio = get_text(&server.url("/live/lobby/audio.m3u8"));

    // One Period per key, each with the cenc scheme's default key ID and the ClearKey
    // license server; the segments are the Common Encryption ones.
    let mpd = get_text(&server.url("/live/lobby/manifest.mpd"));
    let keys = key_uris(video);
    assert_eq!(keys.len(), 2, "{video}");
    let kids: Vec<String> = keys
        .iter()
        .map(|u| {
            u.trim_start_matches("keys/")
                .trim_end_matches(".key")
                .to_string()
        })
        .collect();
    assert_eq!(kids[1], rotated);
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    for kid in &kids {
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &kid[..8],
            &kid[8..12],
            &kid[12..16],
            &kid[16..20],
            &kid[20..]
        );
        assert!(
            mpd.contains(&format!("cenc:default_KID=\"{uuid}\"")),
            "{kid}: {mpd}"
        );
        assert!(
            mpd.contains(&format!("video/cenc-init-0-{kid}.mp4")),
            "{mpd}"
        );
    }
    for kid in &kids {
        assert!(
            mpd.contains(&format!("media=\"video/cenc-seg-{kid}-$Number$.m4s\"")),
            "{mpd}"
        );
    }
    assert!(
        !mpd.contains("media=\"video/seg-"),
        "clear segments listed: {mpd}"
    );
    assert!(
        mpd.contains(&format!(
            "<dashif:Laurl>{}</dashif:Laurl>",
            server.url("/live/lobby/keys/license")
        )),
        "{mpd}"
    );

    // The license server gives both keys, the same the HLS key route gives.
    let (status, answer) = license(
        &server.url("/live/lobby/keys/license"),
        &[&kids[0], &kids[1]],
    );
    assert_eq!(status, 200, "{answer}");
    let given: Vec<(String, String)> = answer["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            assert_eq!(k["kty"], "oct", "{answer}");
            let de = |v: &Value| {
                b64.decode(v.as_str().expect("base64url"))
                    .expect("base64url")
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            };
            (de(&k["kid"]), de(&k["k"]))
        })
        .collect();
    for (kid, (given_kid, k)) in kids.iter().zip(&given) {
        assert_eq!(kid, given_kid);
        let (_, _, hls_key) = get(&server.url(&format!("/live/lobby/keys/{kid}.key")));
        let hls_key: String = hls_key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(k, &hls_key, "one key per period for both players");
    }

    // Each key's segments, with its init segment, decode with that key and only with
    // it; together, every frame sent.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut counted = (0u64, 0u64);
    for (track, playlist) in [("video", video), ("audio", audio.as_str())] {
        let segments = segment_keys(playlist);
        for (kid, (_, key)) in kids.iter().zip(&given) {
            let mut file =
                get(&server.url(&format!("/live/lobby/{track}/cenc-init-0-{kid}.mp4"))).2;
            let mut n = 0;
            for (msn, _) in segments.iter().filter(|(_, k)| k.as_deref() == Some(kid)) {
                let (status, _, bytes) =
                    get(&server.url(&format!("/live/lobby/{track}/cenc-seg-{kid}-{msn}.m4s")));
                assert_eq!(status, 200, "{track} cenc-seg-{kid}-{msn}");
                // Asked for under the other key (as from a Period that listed it
                // ahead, before the rotation), it is refused, not sent to be
                // decrypted with the wrong key.
                let other = kids.iter().find(|k| *k != kid).expect("two keys");
                let (status, _, body) =
                    get(&server.url(&format!("/live/lobby/{track}/cenc-seg-{other}-{msn}.m4s")));
                let body = String::from_utf8_lossy(&body);
                assert_eq!(status, 404, "{track} {msn} under {other}: {body}");
                assert!(body.contains("another key"), "{body}");
                file.extend(bytes);
                n += 1;
            }
            assert!(n >= 1, "{track}: no segment with key {kid}");
            let path = dir.path().join(format!("{track}-{kid}.mp4"));
            std::fs::write(&path, &file).expect("write");
            let (ok, err) = ffmpeg_decodes(&["-decryption_key", key], &path);
            assert!(ok, "{track} with key {kid}: {err}");
            let (ok, _) = ffmpeg_decodes(&[], &path);
            assert!(!ok, "{track} with key {kid} decoded without it");
            let other = if key.starts_with('0') { "1" } else { "0" }.repeat(32);
            let (ok, _) = ffmpeg_decodes(&["-decryption_key", &other], &path);
            assert!(!ok, "{track} with key {kid} decoded with another key");
            let c = frames_with_key(&path, key, track == "video");
            if track == "video" {
                counted.0 += c;
            } else {
                counted.1 += c;
            }
        }
    }
    assert_eq!(
        counted.0,
        sent_video.expect("video"),
        "video frames decoded vs sent"
    );
    let sent_audio = sent_audio.expect("audio");
    assert!(
        counted.1 <= sent_audio && counted.1 + 1 >= sent_audio,
        "{} audio frames of {sent_audio}",
        counted.1
    );
    // No init segment for a key the stream does not use.
    let (status, _, _) = get(&server.url(&format!(
        "/live/lobby/video/cenc-init-0-{}.mp4",
        "00".repeat(16)
    )));
    assert_eq!(
        status, 404,
        "an init segment for a key the stream does not use"
    );
}

#[test]
fn an_encrypted_stream_plays_frame_exact_across_a_key_rotation_and_is_ciphertext_without_its_key() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let clip = bbb_bframes();
    let a = protect_lobby(
        &server,
        &token,
        json!({"encrypted": true, "rotate": "never"}),
    );
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
    let live_mpd = get_text(&server.url("/live/lobby/manifest.mpd"));
    assert!(live_mpd.contains("type=\"dynamic\""), "{live_mpd}");
    // "This link leaked": a new key at once, in force from the segment after next.
    let rotated = rotate(&server, &token);
    let playlist = published_whole(&server, ff);
    dash_is_common_encryption_frame_exact(&server, &playlist, &rotated, (sent_video, sent_audio));

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

    // What would carry it in the clear refuses: RTSP.
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

    // The ClearKey license server is the same gate.
    let license_url =
        |prefix: &str, name: &str| server.url(&format!("{prefix}/live/{name}/keys/license"));
    let (status, answer) = license(
        &license_url(&format!("/t/{lobby_link}"), "lobby"),
        &[&lobby_kid],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["keys"].as_array().map(Vec::len), Some(1), "{answer}");
    for (what, url) in [
        ("anonymous", license_url("", "lobby")),
        (
            "an altered link",
            license_url(&format!("/t/{altered}"), "lobby"),
        ),
        (
            "a revoked link",
            license_url(&format!("/t/{revoked}"), "lobby"),
        ),
        (
            "another stream's link",
            license_url(&format!("/t/{other_link}"), "lobby"),
        ),
    ] {
        let (status, answer) = license(&url, &[&lobby_kid]);
        assert_eq!(status, 403, "license, {what}: {answer}");
    }
    for (what, kids) in [
        ("another stream's key", vec![other_kid.as_str()]),
        ("an unknown key", vec!["00000000000000000000000000000000"]),
        (
            "one of them another stream's",
            vec![lobby_kid.as_str(), other_kid.as_str()],
        ),
    ] {
        let (status, answer) = license(&license_url(&format!("/t/{lobby_link}"), "lobby"), &kids);
        assert_eq!(status, 404, "license, {what}: {answer}");
        assert!(answer.get("keys").is_none(), "license, {what}: {answer}");
    }

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

/// `lobby` encrypted and private, published live at 640x360 (light for Chromium's
/// software decoding: these tests are about the keys); the server, an API token, the
/// publisher, and the prefix of a viewer link to it (`http://…/t/TOKEN`).
fn encrypted_private_live() -> (Server, String, Proc, String) {
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
    let ff = publish(
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
    (server, token, ff, link)
}

/// Rotates `lobby`'s key `after` seconds into the browser `player`'s run, and checks
/// that it played on without an error or a stall at 640x360 for more than `wall`
/// seconds; what it printed.
fn played_across_a_rotation(
    server: &Server,
    token: &str,
    player: std::process::Child,
    after: u64,
    wall: f64,
) -> Value {
    std::thread::sleep(Duration::from_secs(after));
    rotate(server, token);
    let r = browser_result(player);
    eprintln!("player: {r}");
    assert_eq!(r["fatal"], json!([]), "{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360)),
        "{r}"
    );
    let (played, ran) = (num(&r["played"]), num(&r["wall"]));
    assert!(
        ran > wall && played > ran * 0.75,
        "the player stalled: {played:.1} s in {ran:.1} s: {r}"
    );
    r
}

#[test]
fn hls_js_plays_an_encrypted_private_stream_through_its_link_across_a_rotation() {
    let (server, token, _ff, link) = encrypted_private_live();
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
    let r = played_across_a_rotation(&server, &token, player, 6, 10.0);
    assert!(num(&r["partsInPlaylist"]) > 0.0, "hls.js saw no parts: {r}");
    // It fetched both keys, through the link.
    assert!(key_requests(&server, "served") >= 2, "{}", server.metrics());
    let playlist = get_text(&format!("{link}/live/lobby/video.m3u8"));
    assert_eq!(key_uris(&playlist).len(), 2, "{playlist}");
}

#[test]
fn dash_js_plays_an_encrypted_private_stream_with_clear_key_through_its_link_across_a_rotation() {
    let (server, token, _ff, link) = encrypted_private_live();
    let mpd = wait_for(
        &format!("{link}/live/lobby/manifest.mpd"),
        Duration::from_secs(30),
        |m| m.contains("cenc:default_KID"),
    );
    // The license server in it is reached through the same link.
    assert!(
        mpd.contains(&format!(
            "<dashif:Laurl>{link}/live/lobby/keys/license</dashif:Laurl>"
        )),
        "{mpd}"
    );

    // Without the link nothing plays.
    let refused = browser_result(play_in_browser_same_origin(
        "dash",
        &server.url("/live/lobby/manifest.mpd"),
        6,
    ));
    assert_eq!(num(&refused["decodedFrames"]), 0.0, "{refused}");

    // Through the link dash.js asks the license server for the key, plays, and goes on
    // into the next key's Period.
    let served = key_requests(&server, "served");
    let player =
        play_in_browser_same_origin("dash", &format!("{link}/live/lobby/manifest.mpd"), 24);
    let r = played_across_a_rotation(&server, &token, player, 2, 12.0);
    assert!(
        key_requests(&server, "served") >= served + 2,
        "a license for each key: {}",
        server.metrics()
    );
    // It played well into the second key's Period.
    let mpd = get_text(&format!("{link}/live/lobby/manifest.mpd"));
    let starts: Vec<f64> = mpd
        .split("<Period ")
        .skip(1)
        .filter_map(|p| {
            p.split("start=\"PT")
                .nth(1)?
                .split('S')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(starts.len() >= 2, "{mpd}");
    assert!(
        num(&r["currentTime"]) > starts[1] + 4.0,
        "dash.js stopped at {} s, the second key's Period starts at {} s",
        r["currentTime"],
        starts[1]
    );

    // The low-latency MPD (the watch page's DASH choice) plays it too, across another
    // rotation, within two seconds of live. The segment it lists ahead in the old key's
    // Period begins the new key's: that request is refused, and dash.js reads the MPD
    // again.
    let served = key_requests(&server, "served");
    let player =
        play_in_browser_same_origin("dash", &format!("{link}/live/lobby/low-latency.mpd"), 24);
    let r = played_across_a_rotation(&server, &token, player, 2, 12.0);
    assert!(
        key_requests(&server, "served") > served,
        "a license for the new key: {}",
        server.metrics()
    );
    let latency = num(&r["latency"]);
    assert!(
        latency > 0.0 && latency <= 2.0,
        "dash.js plays {latency:.2} s behind live: {r}"
    );
}

#[test]
fn every_rendition_of_an_encrypted_ladder_changes_key_where_the_source_does() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    protect_lobby(&server, &token, json!({"encrypted": true}));
    let out = server.cli(&["stream", "set", "lobby", "--ladder", "240p"]);
    assert!(out.status.success(), "{out:?}");
    // 640x360 with 2 s GOPs and the clip's 5.1 audio: a 240p rung and the stereo
    // rendition, both following the source's keys.
    let mut args = vec!["-t", "4", "-s", "640x360"];
    args.extend(x264_2s_video("3"));
    args.extend(["-c:a", "copy", "-f", "mp4"]);
    let clip = derived_clip("bbb-360p-5.1-v1.mp4", &args);
    let key = support::web::new_stream_key(&server, &token, "lobby");
    let _ff = publish(&clip, -1, &server.rtmp_url(&format!("lobby?key={key}")));
    wait_for(
        &server.url("/live/lobby/240p.m3u8"),
        Duration::from_secs(60),
        |p| p.matches("#EXTINF").count() >= 2,
    );
    let rotated = rotate(&server, &token);
    // Until every rendition has two segments under the new key.
    for name in ["video", "240p", "stereo"] {
        wait_for(
            &server.url(&format!("/live/lobby/{name}.m3u8")),
            Duration::from_secs(60),
            |p| {
                segment_keys(p)
                    .iter()
                    .filter(|(_, k)| k.as_deref() == Some(rotated.as_str()))
                    .count()
                    >= 2
            },
        );
    }
    // The rung's segments have the source's keys, number by number.
    let source = segment_keys(&get_text(&server.url("/live/lobby/video.m3u8")));
    let rung = segment_keys(&get_text(&server.url("/live/lobby/240p.m3u8")));
    let mut compared = 0;
    for (msn, kid) in &rung {
        if let Some((_, k)) = source.iter().find(|(m, _)| m == msn) {
            assert_eq!(kid, k, "segment {msn}: rung {rung:?}, source {source:?}");
            compared += 1;
        }
    }
    assert!(compared >= 3, "rung {rung:?}, source {source:?}");
    assert!(
        rung.iter()
            .any(|(_, k)| k.as_deref() != Some(rotated.as_str())),
        "the rung's window holds the first key too: {rung:?}"
    );
    // DASH: each key's Period lists the source, the rung and the stereo audio.
    let mpd = get_text(&server.url("/live/lobby/manifest.mpd"));
    let periods: Vec<&str> = mpd.split("<Period ").skip(1).collect();
    assert_eq!(periods.len(), 2, "{mpd}");
    for p in &periods {
        for id in ["video", "240p", "stereo"] {
            assert!(
                p.contains(&format!("<Representation id=\"{id}\"")),
                "{id} missing from a Period: {mpd}"
            );
        }
    }
    assert!(
        periods[1].contains(&format!("240p/cenc-init-0-{rotated}.mp4")),
        "{mpd}"
    );
    // The rung's and the stereo audio's Common Encryption segments of the new key
    // decode with it.
    let (_, answer) = license(&server.url("/live/lobby/keys/license"), &[&rotated]);
    let k = answer["keys"][0]["k"].as_str().expect("a key").to_string();
    let key_hex: String = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k)
            .expect("base64url")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["240p", "stereo"] {
        let playlist = get_text(&server.url(&format!("/live/lobby/{name}.m3u8")));
        let mut file = get(&server.url(&format!("/live/lobby/{name}/cenc-init-0-{rotated}.mp4"))).2;
        for (msn, _) in segment_keys(&playlist)
            .iter()
            .filter(|(_, k)| k.as_deref() == Some(rotated.as_str()))
        {
            let (status, _, bytes) =
                get(&server.url(&format!("/live/lobby/{name}/cenc-seg-{rotated}-{msn}.m4s")));
            assert_eq!(status, 200, "{name} cenc-seg-{rotated}-{msn}");
            file.extend(bytes);
        }
        let path = dir.path().join(format!("{name}.mp4"));
        std::fs::write(&path, &file).expect("write");
        let (ok, err) = ffmpeg_decodes(&["-decryption_key", &key_hex], &path);
        assert!(ok, "{name}: {err}");
    }
}

#[test]
fn recordings_of_an_encrypted_stream_play_encrypted_in_time_shift_and_over_a_range_spanning_two_keys(
) {
    // 6 s of media in memory: the rest of the publish comes from the recording.
    let server = Server::with(Settings {
        window: 6.0,
        ..Settings::default()
    });
    let (web, token) = admin(&server);
    protect_lobby(
        &server,
        &token,
        json!({"encrypted": true, "rotate": "never"}),
    );
    let out = server.cli(&["stream", "set", "lobby", "--record", "on"]);
    assert!(out.status.success(), "{out:?}");
    let clip = bbb_bframes();
    let key = support::web::new_stream_key(&server, &token, "lobby");
    let (sent_video, _) = sent_packets(&clip, 4);
    let ff = publish(&clip, 4, &server.rtmp_url(&format!("lobby?key={key}")));
    server.wait_segments("lobby", 2);
    let rotated = rotate(&server, &token);
    let live = published_whole(&server, ff);
    let live_segments = segment_keys(&live).len();

    // Time-shift: the live playlist lists the recorded segments before the window under
    // the keys they had, and serves them sealed; a player from its start gets every frame.
    assert!(live.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{live}");
    assert_eq!(live_segments, 10, "all 20 s listed: {live}");
    assert_eq!(key_uris(&live).len(), 2, "{live}");
    let (status, _, sealed) = get(&server.url("/live/lobby/video/seg-0.m4s"));
    assert_eq!(
        (status, sealed.len() % 16),
        (200, 0),
        "seg-0 from the recording"
    );
    let url = server.url("/live/lobby/index.m3u8");
    plays_every_frame(&url, sent_video, "time-shift: video frames played vs sent");
    // Over DASH too, in Common Encryption: a Period per key, the recorded segments
    // before the window in them (from sequence number 0), every frame.
    let mpd = dash_plays_every_frame_of_two_keys(&server, "/live/lobby/", "", sent_video);
    assert!(mpd.contains("startNumber=\"0\""), "{mpd}");
    // The whole publish recorded: one range.
    let range = {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, _, body) = get(&server.url("/dvr/lobby/recordings.json"));
            let v: Value = serde_json::from_slice(&body).expect("JSON");
            let r = &v["ranges"][0];
            if r["segments"].as_u64().unwrap_or(0) as usize >= live_segments {
                break (
                    r["start"].as_str().expect("start").to_string(),
                    r["end"].as_str().expect("end").to_string(),
                );
            }
            assert!(std::time::Instant::now() < deadline, "not recorded: {v}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let q = format!("start={}&end={}", range.0, range.1);

    // The VOD playlist names both keys, each segment with its own IV and its key in its
    // URL; the init segment stays clear.
    let playlist = get_text(&server.url(&format!("/dvr/lobby/video.m3u8?{q}")));
    let kids: Vec<&str> = playlist
        .lines()
        .filter_map(|l| l.split("URI=\"../../live/lobby/keys/").nth(1))
        .filter_map(|r| r.split(".key").next())
        .fold(Vec::new(), |mut v, k| {
            if v.last() != Some(&k) {
                v.push(k);
            }
            v
        });
    assert_eq!(kids.len(), 2, "{playlist}");
    assert_eq!(kids[1], rotated, "{playlist}");
    assert!(playlist.contains(",IV=0x"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-KEY:METHOD=NONE\n#EXT-X-MAP:"),
        "{playlist}"
    );
    // ffmpeg plays the recorded range through both keys, every frame sent.
    let url = server.url(&format!("/dvr/lobby/index.m3u8?{q}"));
    plays_every_frame(&url, sent_video, "video frames played back vs sent");

    // A recorded segment is ciphertext under its key only, never clear.
    let uri = playlist
        .lines()
        .find(|l| l.starts_with("files/") && l.contains(&format!("?k={rotated}")))
        .expect("a segment under the second key");
    let (path, _) = uri.split_once('?').expect("query");
    let (status, _, sealed) = get(&server.url(&format!("/dvr/lobby/{uri}")));
    assert_eq!((status, sealed.len() % 16), (200, 0), "{uri}");
    let (status, _, _) = get(&server.url(&format!("/dvr/lobby/{path}")));
    assert_eq!(status, 409, "{path} without its key");
    let (status, _, _) = get(&server.url(&format!("/dvr/lobby/{path}?k={}", kids[0])));
    assert_eq!(status, 404, "{path} under another key");
    // The recorded range over DASH: a Period per key, every frame, each segment in
    // Common Encryption under its key only.
    let mpd =
        dash_plays_every_frame_of_two_keys(&server, "/dvr/lobby/", &format!("?{q}"), sent_video);
    assert!(
        mpd.contains(&server.url("/live/lobby/keys/license")),
        "{mpd}"
    );
    let cenc = path.replacen("/video/", "/video/cenc-", 1);
    let (status, _, _) = get(&server.url(&format!("/dvr/lobby/{cenc}")));
    assert_eq!(status, 409, "{cenc} without its key");
    let (status, _, _) = get(&server.url(&format!("/dvr/lobby/{cenc}?k={}", kids[0])));
    assert_eq!(status, 404, "{cenc} under another key");
    // A viewer's export refuses; an administrator's export is the clear recording.
    let (status, _, _) = get(&server.url(&format!("/dvr/lobby/export.mp4?{q}")));
    assert_eq!(status, 409, "a viewer's export");
    let export = web.get(&format!("/dvr/lobby/export.mp4?{q}"));
    assert_eq!(export.status, 200, "{export:?}");
    assert!(export.body.contains("ftyp") && export.body.contains("mdat"));
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
    plays_every_frame(&url, sent_video, "every video frame across the changes");
}
