//! End-to-end security tests of the real binary, one per class of bug a penetration test
//! found (issue 14), each walking what the class covers rather than one example:
//!
//! - a stream's identity, not its name: every viewer route of a stream after a rename,
//!   a delete and a new stream of the old name; its recordings, live window, thumbnail,
//!   RTSP and metrics;
//! - what a stream owns goes with it: a rotated key or a deleted stream ends the running
//!   RTMP or RTSP publisher, and a deleted stream leaves no metrics or recordings;
//! - RTSP players without a grant end when a stream turns private or a link is revoked;
//! - `/metrics` needs credentials; no public route names a private stream;
//! - half-open and slow clients are cut off, and connections are capped per address;
//! - the sign-in redirect, CSRF tokens bound to the session, the limits on password
//!   checks, thumbnails, camera tests; control characters in logs; credentials in URLs;
//!   the security headers of every page.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::web::{Answer, Web};
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// Polls `f` every 100 ms for up to `timeout` until it returns `Some`.
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn admin(server: &Server) -> (Web, String) {
    support::web::admin_with_token(server, "sec")
}

fn api(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    support::web::api_call(server, token, method, path, body)
}

/// Creates stream `name` through the API; its key.
fn new_stream(server: &Server, token: &str, name: &str) -> String {
    let a = api(
        server,
        token,
        "POST",
        "/api/streams",
        Some(json!({ "name": name })),
    );
    assert_eq!(a.status, 201, "{a:?}");
    a.json()["key"].as_str().expect("key").to_string()
}

/// A `PUT` of `body` to the API's `path` that must be accepted.
fn put(server: &Server, token: &str, path: &str, body: Value) {
    let a = api(server, token, "PUT", path, Some(body));
    assert_eq!(a.status, 200, "{path}: {a:?}");
}

/// The CSRF token of the sign-in page, as `client` (which keeps cookies) gets it.
async fn sign_in_token(client: &reqwest::Client, server: &Server) -> String {
    let page = client
        .get(server.url("/login"))
        .send()
        .await
        .expect("GET /login")
        .text()
        .await
        .expect("body");
    Answer {
        status: 200,
        location: None,
        cookies: Vec::new(),
        body: page,
    }
    .csrf()
}

/// `streambox routes`: (method, path, access) of every route.
fn routes() -> Vec<(String, String, String)> {
    let out = std::process::Command::new(bin())
        .arg("routes")
        .output()
        .expect("streambox routes");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split('\t').map(str::to_string);
            let (m, p, a) = (f.next(), f.next(), f.next());
            (m.expect("method"), p.expect("path"), a.expect("access"))
        })
        .collect()
}

/// The viewer routes of stream `name` as (method, concrete path) (`{file}` a playlist,
/// other parameters `x`), without the link prefix.
fn viewer_paths(name: &str) -> Vec<(String, String)> {
    routes()
        .into_iter()
        .filter(|(_, p, a)| a == "viewer" && !p.starts_with("/t/"))
        .map(|(m, p, _)| {
            let path = p
                .split('/')
                .map(|seg| match seg {
                    "{stream}" => name,
                    "{file}" => "index.m3u8",
                    s if s.starts_with('{') => "x",
                    s => s,
                })
                .collect::<Vec<_>>()
                .join("/");
            (m, path)
        })
        .collect()
}

/// A viewer route's request by `web`: a GET, or a POST with a ClearKey license
/// request's body.
fn visit(web: &Web, (method, path): &(String, String)) -> support::web::Answer {
    match method.as_str() {
        "GET" => web.get(path),
        "POST" => web.post_raw(
            path,
            "application/json",
            br#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"]}"#.to_vec(),
        ),
        other => panic!("no viewer route answers {other}: {path}"),
    }
}

/// Whether the stream is live, per the API.
fn live(server: &Server, token: &str, name: &str) -> Option<bool> {
    let a = api(server, token, "GET", &format!("/api/streams/{name}"), None);
    (a.status == 200).then(|| a.json()["live"] == json!(true))
}

/// The first URL line of an HLS playlist after `after` (a tag prefix), resolved against
/// the playlist's URL path `base` (ending in `/`).
fn first_uri(playlist: &str, base: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no URI in {playlist}"));
    if line.starts_with('/') {
        line.to_string()
    } else {
        format!("{base}{line}")
    }
}

/// One RTSP request on `sock`; the status code and the whole response.
fn rtsp_request(sock: &mut TcpStream, request: &str) -> (u16, String) {
    sock.write_all(request.as_bytes()).expect("send");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // Skip interleaved media that may precede the response.
    loop {
        sock.read_exact(&mut byte).expect("response");
        if byte[0] == b'$' {
            let mut head = [0u8; 3];
            sock.read_exact(&mut head).expect("frame");
            let mut skip = vec![0u8; usize::from(u16::from_be_bytes([head[1], head[2]]))];
            sock.read_exact(&mut skip).expect("frame");
            continue;
        }
        got.push(byte[0]);
        if got.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    sock.read_exact(&mut body).expect("body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head + &String::from_utf8_lossy(&body))
}

/// DESCRIBE, SETUP (video, then audio) and PLAY of `/live/NAME` over TCP-interleaved, with
/// `query` (`?token=…`) on DESCRIBE; the connection, playing. Panics unless every step
/// answers 200.
fn rtsp_play(server: &Server, name: &str, query: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.rtsp).expect("connect");
    let base = format!("rtsp://{}/live/{name}", server.rtsp);
    let (status, r) = rtsp_request(
        &mut s,
        &format!("DESCRIBE {base}{query} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    );
    assert_eq!(status, 200, "{r}");
    let (status, r) = rtsp_request(
        &mut s,
        &format!("SETUP {base}/video RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    assert_eq!(status, 200, "{r}");
    let session = r
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .expect("session")
        .to_string();
    let (status, r) = rtsp_request(
        &mut s,
        &format!("SETUP {base}/audio RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"),
    );
    assert_eq!(status, 200, "{r}");
    let (status, r) = rtsp_request(
        &mut s,
        &format!("PLAY {base} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"),
    );
    assert_eq!(status, 200, "{r}");
    s
}

/// The series of `/metrics` (read with `token`) that name `stream`.
fn series_of(server: &Server, token: &str, stream: &str) -> Vec<String> {
    let a = api(server, token, "GET", "/metrics", None);
    assert_eq!(a.status, 200, "{a:?}");
    let label = format!("stream=\"{stream}");
    a.body
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .map(str::to_string)
        .collect()
}

/// Finding 1 (and what belongs to a stream going with it): after a rename, nothing of
/// a private stream answers under its old name, not its live window, thumbnail or
/// recordings; the recordings play under the new name only; a new stream of the old
/// name sees none of them; and a delete takes the rest: routes, recordings, metrics.
#[test]
fn a_renamed_or_deleted_stream_leaves_nothing_under_its_old_name() {
    let server = Server::start();
    let (web, token) = admin(&server);
    let key = new_stream(&server, &token, "board");
    for (path, body) in [
        ("/api/streams/board/recording", json!({"enabled": true})),
        (
            "/api/streams/board/visibility",
            json!({"visibility": "private"}),
        ),
    ] {
        put(&server, &token, path, body);
    }
    let publisher = publish(
        &bbb_bframes(),
        -1,
        &server.rtmp_url(&format!("board?key={key}")),
    );
    // Two recorded segments, seen as the administrator.
    let (live_segment, recorded) = eventually(Duration::from_secs(40), "recordings", || {
        let p = web.get("/live/board/video.m3u8");
        let j = web.get("/dvr/board/recordings.json");
        if p.status != 200 || j.status != 200 {
            return None;
        }
        let r = &j.json()["ranges"][0];
        (r["segments"].as_u64()? >= 2).then(|| {
            (
                first_uri(&p.body, "/live/board/"),
                (
                    r["start"].as_str().map(str::to_string),
                    r["end"].as_str().map(str::to_string),
                ),
            )
        })
    });
    let (start, end) = (recorded.0.expect("start"), recorded.1.expect("end"));
    let vod = web.get(&format!("/dvr/board/video.m3u8?start={start}&end={end}"));
    assert_eq!(vod.status, 200, "{vod:?}");
    let recorded_segment = first_uri(&vod.body, "/dvr/board/");
    assert!(recorded_segment.contains("/files/"), "{recorded_segment}");
    assert_eq!(web.get("/live/board/thumbnail.jpg").status, 200);
    drop(publisher);
    eventually(Duration::from_secs(15), "the publisher to leave", || {
        (live(&server, &token, "board") == Some(false)).then_some(())
    });

    let mut old_urls = viewer_paths("board");
    for url in [&live_segment, &recorded_segment] {
        old_urls.push(("GET".to_string(), url.clone()));
    }
    let anon = Web::new(&server);
    for url in &old_urls {
        assert_eq!(
            visit(&anon, url).status,
            403,
            "anonymous {url:?} while private"
        );
    }

    let a = api(
        &server,
        &token,
        "POST",
        "/api/streams/board/rename",
        Some(json!({"name": "hall"})),
    );
    assert_eq!(a.status, 200, "{a:?}");
    for url in &old_urls {
        let a = visit(&anon, url);
        assert_eq!(a.status, 404, "anonymous {url:?} after the rename");
        let a = visit(&web, url);
        assert_eq!(a.status, 404, "administrator {url:?} after the rename");
    }
    // The recordings are the stream's, under its new name, and still private.
    let moved = recorded_segment.replacen("/dvr/board/", "/dvr/hall/", 1);
    assert_eq!(anon.get(&moved).status, 403, "{moved}");
    assert_eq!(web.get(&moved).status, 200, "{moved}");

    // A new, public stream of the old name has none of it.
    new_stream(&server, &token, "board");
    let a = anon.get("/dvr/board/recordings.json");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["ranges"], json!([]), "{a:?}");
    for url in [&recorded_segment, &live_segment] {
        let a = anon.get(url);
        assert_eq!(
            a.status, 404,
            "{url} of the old stream, through the new one"
        );
    }

    // A delete takes everything: routes, recordings on disk, metrics.
    let recordings = server.dir.path().join("recordings");
    let files_before = count_files(&recordings);
    assert!(files_before > 0, "nothing recorded on disk");
    let a = api(&server, &token, "DELETE", "/api/streams/hall", None);
    assert_eq!(a.status, 204, "{a:?}");
    for url in viewer_paths("hall")
        .iter()
        .chain([&("GET".to_string(), moved.clone())])
    {
        assert_eq!(visit(&web, url).status, 404, "{url:?} after the delete");
    }
    eventually(Duration::from_secs(15), "the recordings to go", || {
        (count_files(&recordings) == 0).then_some(())
    });
    eventually(Duration::from_secs(5), "the metrics to go", || {
        series_of(&server, &token, "hall").is_empty().then_some(())
    });
    let left = series_of(&server, &token, "board");
    assert!(left.is_empty(), "the old stream's series stayed: {left:?}");
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

/// Finding 2: rotating the key (from the API or the CLI) or deleting the stream ends the
/// running RTMP or RTSP publisher within a second, and the deleted stream's series go.
#[test]
fn rotating_a_key_or_deleting_a_stream_ends_the_running_publisher() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let mut key = new_stream(&server, &token, "rot");
    let clip = bbb_bframes();
    let wait_live = || {
        eventually(Duration::from_secs(20), "the publisher", || {
            (live(&server, &token, "rot") == Some(true)).then_some(())
        })
    };
    // Each way of ending it: (what, how), timed from the moment the change was made.
    for (i, how) in [
        "api rotate (rtmp)",
        "cli rotate (rtsp)",
        "api delete (rtmp)",
    ]
    .into_iter()
    .enumerate()
    {
        let mut publisher = if how.contains("rtsp") {
            publish_to(
                &clip,
                -1,
                &[
                    "-c",
                    "copy",
                    "-f",
                    "rtsp",
                    "-rtsp_transport",
                    "tcp",
                    &format!("rtsp://{}/live/rot?key={key}", server.rtsp),
                ],
            )
        } else {
            publish(&clip, -1, &server.rtmp_url(&format!("rot?key={key}")))
        };
        wait_live();
        let t0 = Instant::now();
        match i {
            0 => {
                let a = api(&server, &token, "POST", "/api/streams/rot/key", None);
                assert_eq!(a.status, 200, "{a:?}");
                key = a.json()["key"].as_str().expect("key").to_string();
            }
            1 => {
                let out = server.cli(&["stream", "rotate-key", "rot"]);
                assert!(out.status.success(), "{out:?}");
                key = key_from(&out);
            }
            _ => {
                let a = api(&server, &token, "DELETE", "/api/streams/rot", None);
                assert_eq!(a.status, 204, "{a:?}");
            }
        }
        let ended = eventually(Duration::from_secs(3), "the publisher to be ended", || {
            (live(&server, &token, "rot") != Some(true)).then(|| t0.elapsed())
        });
        eprintln!(
            "{how}: publisher ended {} ms after the change",
            ended.as_millis()
        );
        assert!(ended <= Duration::from_secs(1), "{how}: {ended:?}");
        assert!(
            publisher.wait(Duration::from_secs(10)).is_some(),
            "{how}: ffmpeg was not disconnected"
        );
    }
    eventually(
        Duration::from_secs(5),
        "the deleted stream's series to go",
        || series_of(&server, &token, "rot").is_empty().then_some(()),
    );
}

/// Finding 7, and revocable links: an RTSP player without a grant is ended when the
/// stream turns private; one that came through a viewer link plays on until the link is
/// revoked, which also refuses the link over HTTP.
#[test]
fn rtsp_players_without_a_grant_end_when_the_stream_turns_private_or_the_link_goes() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let key = support::web::new_stream_key(&server, &token, "lobby");
    let _publisher = publish(
        &bbb_bframes(),
        -1,
        &server.rtmp_url(&format!("lobby?key={key}")),
    );
    server.wait_segments("lobby", 1);
    let mut anonymous = rtsp_play(&server, "lobby", "");
    assert!(
        !closed_within(&mut anonymous, Duration::from_secs(1)),
        "ended too soon"
    );

    let a = api(
        &server,
        &token,
        "POST",
        "/api/streams/lobby/links",
        Some(json!({"valid": "1h"})),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let link = a.json();
    let url = link["url"].as_str().expect("url").to_string();
    let id = link["id"].as_i64().expect("id");
    let link_token = url
        .split("/t/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("token")
        .to_string();
    let a = api(&server, &token, "GET", "/api/streams/lobby/links", None);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.json()
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["id"] == json!(id))),
        "{a:?}"
    );

    put(
        &server,
        &token,
        "/api/streams/lobby/visibility",
        json!({"visibility": "private"}),
    );
    let t0 = Instant::now();
    assert!(
        closed_within(&mut anonymous, Duration::from_secs(2)),
        "an RTSP player without a grant kept watching a private stream"
    );
    eprintln!(
        "anonymous RTSP player ended {} ms after the stream turned private",
        t0.elapsed().as_millis()
    );

    // Through the link: plays, over RTSP and HTTP, until the link is revoked.
    let mut linked = rtsp_play(&server, "lobby", &format!("?token={link_token}"));
    let playlist = format!("/t/{link_token}/live/lobby/index.m3u8");
    assert_eq!(get(&server.url(&playlist)).0, 200);
    assert!(
        !closed_within(&mut linked, Duration::from_secs(2)),
        "a linked player was ended"
    );
    let a = api(
        &server,
        &token,
        "DELETE",
        &format!("/api/streams/lobby/links/{id}"),
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    assert!(
        closed_within(&mut linked, Duration::from_secs(2)),
        "the RTSP player of a revoked link kept watching"
    );
    let (status, _, body) = get(&server.url(&playlist));
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let a = api(&server, &token, "GET", "/api/streams/lobby/links", None);
    assert_eq!(a.json(), json!([]), "{a:?}");
}

/// Finding 3: `/metrics` answers only an administrator or a metrics-scoped token, and no
/// route open to anonymous clients names a private stream.
#[test]
fn metrics_need_credentials_and_no_public_route_names_a_private_stream() {
    let server = Server::start();
    let (web, token) = admin(&server);
    let key = new_stream(&server, &token, "vestry");
    put(
        &server,
        &token,
        "/api/streams/vestry/visibility",
        json!({"visibility": "private"}),
    );
    let _p = publish(
        &bbb_bframes(),
        -1,
        &server.rtmp_url(&format!("vestry?key={key}")),
    );
    eventually(Duration::from_secs(20), "the private stream live", || {
        (live(&server, &token, "vestry") == Some(true)).then_some(())
    });

    let anon = Web::new(&server);
    let a = anon.get("/metrics");
    assert_eq!(a.status, 401, "{a:?}");
    assert!(!a.body.contains("vestry"), "{a:?}");
    assert!(
        !series_of(&server, &token, "vestry").is_empty(),
        "the admin token sees it"
    );
    assert!(
        web.get("/metrics").body.contains("vestry"),
        "the admin session sees it"
    );
    // A token for Prometheus: metrics only.
    let a = api(
        &server,
        &token,
        "POST",
        "/api/tokens",
        Some(json!({"name": "prometheus", "scope": "metrics"})),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let scrape = a.json()["token"].as_str().expect("token").to_string();
    assert!(!series_of(&server, &scrape, "vestry").is_empty());
    let a = api(&server, &scrape, "GET", "/api/streams", None);
    assert_eq!(a.status, 403, "a metrics token used the API: {a:?}");

    for (method, path, access) in routes() {
        if method != "GET" || access != "public" {
            continue;
        }
        let url = path.replace("{*path}", "admin.css").replace(['{', '}'], "");
        let a = anon.get(&url);
        assert!(
            !a.body.contains("vestry"),
            "anonymous GET {url} named the private stream: {a:?}"
        );
    }
}

/// Finding 4: half-open requests, silent connections and slow bodies are cut off after
/// the configured timeouts, over HTTP and RTSP, and each client address gets at most
/// the configured number of connections.
#[test]
fn half_open_and_slow_clients_are_cut_off_and_connections_are_capped() {
    let server = Server::with(Settings {
        env: vec![
            ("STREAMBOX_HTTP__HEADER_TIMEOUT", "2".into()),
            ("STREAMBOX_HTTP__BODY_TIMEOUT", "2".into()),
            ("STREAMBOX_HTTP__MAX_CONNECTIONS_PER_CLIENT", "40".into()),
            ("STREAMBOX_RTSP__REQUEST_TIMEOUT", "2".into()),
            ("STREAMBOX_RTSP__IDLE_TIMEOUT", "4".into()),
            ("STREAMBOX_RTSP__MAX_CONNECTIONS_PER_CLIENT", "10".into()),
        ],
        ..Settings::default()
    });
    let (_web, token) = admin(&server);
    // HTTP: headers never finished, nothing sent at all, a body that stops.
    let mut held = Vec::new();
    for i in 0..30 {
        let mut s = TcpStream::connect(server.http).expect("connect");
        if i % 3 != 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .expect("send");
        }
        held.push(s);
    }
    let mut slow = TcpStream::connect(server.http).expect("connect");
    slow.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nname=admin").expect("send");
    let t0 = Instant::now();
    for (i, s) in held.iter_mut().enumerate() {
        let left = Duration::from_secs(5).saturating_sub(t0.elapsed());
        assert!(
            closed_within(s, left),
            "HTTP connection {i} is still open after 5 s"
        );
    }
    let mut answer = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = slow.read_to_end(&mut answer);
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "a slow body was waited for"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    // HTTP: the 41st connection of one address is refused; others still work.
    let held: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(server.http).expect("connect"))
        .collect();
    let mut extra = TcpStream::connect(server.http).expect("connect");
    let mut refused = Vec::new();
    extra
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let _ = extra.read_to_end(&mut refused);
    let refused = String::from_utf8_lossy(&refused);
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "over the cap: {refused:?}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server.url("/healthz")).0, 200);

    // RTSP: a request never finished, a connection that says nothing, and one that
    // stops after a request, each closed; the 11th connection is refused.
    let t0 = Instant::now();
    let mut partial = TcpStream::connect(server.rtsp).expect("connect");
    partial
        .write_all(b"OPTIONS rtsp://x/live/lobby RTSP/1.0\r\nCSeq: 1\r\n")
        .expect("send");
    let mut silent = TcpStream::connect(server.rtsp).expect("connect");
    let mut idle = TcpStream::connect(server.rtsp).expect("connect");
    let (status, _) = rtsp_request(
        &mut idle,
        "OPTIONS rtsp://x/live/lobby RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        closed_within(&mut partial, Duration::from_secs(4)),
        "a partial RTSP request is held"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)),
        "a silent RTSP connection is held"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(6)),
        "an idle RTSP connection is held"
    );
    eprintln!(
        "RTSP half-open connections closed within {} ms",
        t0.elapsed().as_millis()
    );
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(server.rtsp).expect("connect"))
        .collect();
    let mut extra = TcpStream::connect(server.rtsp).expect("connect");
    assert!(
        closed_within(&mut extra, Duration::from_secs(1)),
        "the 11th RTSP connection was taken"
    );
    drop(held);

    let m = api(&server, &token, "GET", "/metrics", None).body;
    for needle in [
        "streambox_connections_refused_total{protocol=\"http\"}",
        "streambox_connections_refused_total{protocol=\"rtsp\"}",
        "streambox_connection_timeouts_total{phase=\"headers\",protocol=\"http\"}",
        "streambox_connection_timeouts_total{phase=\"body\",protocol=\"http\"}",
        "streambox_connection_timeouts_total{phase=\"request\",protocol=\"rtsp\"}",
        "streambox_connection_timeouts_total{phase=\"idle\",protocol=\"rtsp\"}",
        "streambox_connection_limit{protocol=\"http\"} 40",
    ] {
        assert!(m.contains(needle), "/metrics lacks {needle}:\n{m}");
    }
}

/// Finding 5: after sign-in the browser goes only to a path of this appliance, whatever
/// control character, space or backslash `next` smuggles in.
#[test]
fn sign_in_redirects_only_to_this_appliances_paths() {
    let server = Server::start();
    let (web, _) = admin(&server);
    let mut tricks: Vec<String> = (0u8..0x20)
        .chain([0x7f])
        .map(|c| format!("/%{c:02X}/evil.example/path"))
        .collect();
    tricks.extend(
        [
            "//evil.example",
            "/\\evil.example",
            "/%5Cevil.example",
            "/%2F/evil.example",
            "https://evil.example/",
            "%2F%2Fevil.example",
            "/%20/evil.example",
            "/%E2%80%A8/evil",
            "",
            "admin",
            "javascript:alert(1)",
        ]
        .map(str::to_string),
    );
    for next in &tricks {
        let a = web.get(&format!("/login?next={next}"));
        assert_eq!(
            (a.status, a.location.as_deref()),
            (303, Some("/admin")),
            "next={next:?}"
        );
    }
    let a = web.get("/login?next=/admin/streams/lobby%3Fx%3D1");
    assert_eq!(
        a.location.as_deref(),
        Some("/admin/streams/lobby?x=1"),
        "{a:?}"
    );
}

/// Finding 6: any width is rounded to a few sizes, so a hundred widths cost a few
/// decodes, and one client's decodes of new pictures are rate-limited.
#[test]
fn thumbnail_widths_are_rounded_and_decodes_are_limited_per_client() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    let key = support::web::new_stream_key(&server, &token, "lobby");
    put(
        &server,
        &token,
        "/api/streams/lobby/recording",
        json!({"enabled": true}),
    );
    let _p = publish(
        &bbb_bframes(),
        -1,
        &server.rtmp_url(&format!("lobby?key={key}")),
    );
    let decoded = || -> u64 {
        api(&server, &token, "GET", "/metrics", None)
            .body
            .lines()
            .find_map(|l| l.strip_prefix("streambox_thumbnails_total{result=\"decoded\"} "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0))
    };
    server.wait_segments("lobby", 1);
    // One keyframe, a hundred widths.
    let before = decoded();
    let keyframe_dts = || get_text(&server.url("/live/lobby/video.m3u8")).len();
    let _ = keyframe_dts();
    let mut ok = 0;
    for w in 100..200 {
        let (status, headers, _) =
            get(&server.url(&format!("/live/lobby/thumbnail.jpg?width={w}")));
        if status == 200 {
            ok += 1;
            assert_eq!(headers["content-type"], "image/jpeg", "width {w}");
        }
    }
    let spent = decoded() - before;
    eprintln!("100 widths: {ok} answered, {spent} decodes");
    assert!(ok >= 90, "{ok}");
    assert!(spent <= 4, "100 widths cost {spent} decodes");

    // Many recorded keyframes (2 s GOPs): past the per-client burst, 429 with a wait.
    let ranges = eventually(Duration::from_secs(60), "20 s recorded", || {
        let (s, _, b) = get(&server.url("/dvr/lobby/recordings.json"));
        let v: Value = serde_json::from_slice(&b).ok()?;
        (s == 200 && v["ranges"][0]["segments"].as_u64()? >= 10).then_some(v)
    });
    let start = ranges["ranges"][0]["start"]
        .as_str()
        .expect("start")
        .to_string();
    let t0 = time::OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
        .expect("time")
        .unix_timestamp();
    // Ten keyframes (one every 2 s) at each of the seven sizes: 70 new pictures, asked
    // for six at a time, as a script would.
    let asks: Vec<(i64, u32)> = (0..10)
        .flat_map(|k| [160, 320, 480, 640, 960, 1280, 1920].map(|w| (t0 + 1 + 2 * k, w)))
        .collect();
    let asks = std::sync::Mutex::new(asks.into_iter());
    let answers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| loop {
                let Some((at, w)) = asks.lock().expect("lock").next() else {
                    return;
                };
                let (status, headers, _) =
                    get(&server.url(&format!("/dvr/lobby/thumbnail.jpg?at={at}&width={w}")));
                let retry = headers.get("retry-after").is_some();
                answers.lock().expect("lock").push((status, retry));
            });
        }
    });
    let answers = answers.into_inner().expect("lock");
    let served = answers.iter().filter(|a| a.0 == 200).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    eprintln!(
        "70 new recorded pictures: {served} served, {} refused",
        limited.len()
    );
    assert!(
        !limited.is_empty(),
        "70 new pictures, never limited: {answers:?}"
    );
    assert!(limited.iter().all(|a| a.1), "429 without Retry-After");
    assert!(
        answers.iter().all(|a| matches!(a.0, 200 | 429 | 503)),
        "{answers:?}"
    );
    // Pictures already made are still served from the cache.
    let (status, _, _) =
        get(&server.url(&format!("/dvr/lobby/thumbnail.jpg?at={}&width=160", t0 + 1)));
    assert_eq!(status, 200, "a cached picture was refused");
}

/// Finding 8: credentials in a camera URL's query (`?user=…&password=…`) never show in
/// clear: not in the API, the pages, `source list` or the log.
#[test]
fn camera_credentials_in_the_query_are_masked_everywhere() {
    let server = Server::with(Settings {
        env: vec![("STREAMBOX_SOURCES__ALLOW_LOCAL_ADDRESSES", "true".into())],
        ..Settings::default()
    });
    let (web, token) = admin(&server);
    // A closed port: the session fails at once, and its error goes to the log and the
    // sources table.
    let url = "rtsp://127.0.0.1:9/cam?channel=1&user=admin&password=hunter2&token=t0psecret";
    let a = api(
        &server,
        &token,
        "POST",
        "/api/cameras",
        Some(json!({"name": "gate", "url": url})),
    );
    assert_eq!(a.status, 201, "{a:?}");
    server.wait_log("camera session ended", Duration::from_secs(20));
    let out = server.cli(&["source", "list"]);
    let shown = [
        api(&server, &token, "GET", "/api/streams", None).body,
        api(&server, &token, "GET", "/api/streams/gate", None).body,
        web.get("/admin/streams/gate").body,
        web.get("/admin").body,
        web.get("/admin/system").body,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        server.log(),
    ];
    for (i, text) in shown.iter().enumerate() {
        for secret in ["hunter2", "t0psecret"] {
            assert!(!text.contains(secret), "place {i} shows {secret}: {text}");
        }
    }
    assert!(
        shown[1].contains("channel=1"),
        "the rest of the URL is shown: {}",
        shown[1]
    );
}

/// Finding 9: a control character from the network or a form never starts a line of the
/// log; fields that may not hold one are refused.
#[test]
fn control_characters_never_reach_the_log_unescaped() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    // An RTMP publish name, straight from the network.
    let mut c = support::rtmp::Client::connect(server.rtmp);
    let _ = c.try_publish("nosuch\nFORGED line one?key=x\r\nFORGED line two");
    // A camera user name, from the API.
    let a = api(
        &server,
        &token,
        "POST",
        "/api/cameras",
        Some(
            json!({"name": "cam", "url": "rtsp://192.0.2.10/x", "username": "bob\nFORGED line three"}),
        ),
    );
    assert_eq!(a.status, 422, "{a:?}");
    std::thread::sleep(Duration::from_millis(500));
    let log = server.log();
    assert!(
        log.contains("FORGED line one"),
        "the publish attempt was not logged"
    );
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "a forged log line: {line:?}");
        assert!(!line.contains('\r'), "a raw CR in the log: {line:?}");
    }
}

/// Finding 10: a CSRF cookie the client chose is not taken, and the token changes at
/// sign-in, so one learnt before it is refused after.
#[test]
fn csrf_tokens_are_minted_by_the_server_and_renewed_at_sign_in() {
    let server = Server::start();
    let _ = admin(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie_of = |r: &reqwest::Response, name: &str| -> Option<String> {
        r.headers().get_all("set-cookie").iter().find_map(|v| {
            let v = v.to_str().ok()?;
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        })
    };
    rt.block_on(async {
        // A planted cookie is replaced by one the server made.
        let r = client
            .get(server.url("/login"))
            .header("cookie", "sb_csrf=attacker-chosen")
            .send()
            .await
            .expect("get");
        let fresh = cookie_of(&r, "sb_csrf").expect("the planted CSRF cookie was kept");
        assert_ne!(fresh, "attacker-chosen");
        let page = r.text().await.expect("body");
        let before = Answer {
            status: 200,
            location: None,
            cookies: Vec::new(),
            body: page,
        }
        .csrf();
        // Sign in with it; the session gets a new CSRF cookie.
        let r = client
            .post(server.url("/login"))
            .header("cookie", format!("sb_csrf={fresh}"))
            .form(&[
                ("csrf", before.as_str()),
                ("name", "admin"),
                ("password", PASSWORD),
                ("next", "/admin"),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 303);
        let session = cookie_of(&r, "sb_session").expect("session");
        let renewed = cookie_of(&r, "sb_csrf").expect("the CSRF cookie was not renewed at sign-in");
        assert_ne!(renewed, fresh);
        let cookies = format!("sb_session={session}; sb_csrf={renewed}");
        // The token from before sign-in is refused now; the page's new one works.
        let r = client
            .post(server.url("/admin/streams"))
            .header("cookie", &cookies)
            .form(&[("csrf", before.as_str()), ("name", "fixed")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "a token from before sign-in was taken");
        // Nor does the old cookie with the old token work beside the session.
        let r = client
            .post(server.url("/admin/streams"))
            .header("cookie", format!("sb_session={session}; sb_csrf={fresh}"))
            .form(&[("csrf", before.as_str()), ("name", "fixed")])
            .send()
            .await
            .expect("post");
        assert_eq!(
            r.status(),
            403,
            "the pre-sign-in cookie and token were taken"
        );
        let page = client
            .get(server.url("/admin/streams"))
            .header("cookie", &cookies)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        let now = Answer {
            status: 200,
            location: None,
            cookies: Vec::new(),
            body: page,
        }
        .csrf();
        assert_ne!(now, before);
        let r = client
            .post(server.url("/admin/streams"))
            .header("cookie", &cookies)
            .form(&[("csrf", now.as_str()), ("name", "fixed")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200, "the session's own token was refused");
    });
}

/// Findings 11 and 12: the current-password check counts against the sign-in limit;
/// sign-in is limited per account across addresses as well as per address.
#[test]
fn password_checks_are_limited_per_client_and_per_account() {
    let server = Server::start();
    let (web, _) = admin(&server);
    let csrf = web.api("GET", "/api/session", None, None, None).json()["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let a = web.api(
            "PUT",
            "/api/account/password",
            None,
            Some(&csrf),
            Some(&json!({"current": "wrong guess here", "new": "another long passphrase 1"})),
        );
        statuses.push(a.status);
    }
    // Setup's sign-in took one of the client's five attempts.
    let refused = statuses.iter().position(|s| *s == 429);
    assert_eq!(
        refused,
        Some(4),
        "the current-password check was not limited: {statuses:?}"
    );
    assert!(statuses[..4].iter().all(|s| *s == 422), "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");

    // Two wrong tries from each of eight addresses: under each address's limit, over the
    // account's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut answers = Vec::new();
    rt.block_on(async {
        for host in 2..10u8 {
            let ip = std::net::IpAddr::from([127, 0, 0, host]);
            let client = reqwest::Client::builder()
                .local_address(ip)
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client");
            let t = sign_in_token(&client, &server).await;
            for _ in 0..2 {
                let r = client
                    .post(server.url("/login"))
                    .form(&[
                        ("csrf", t.as_str()),
                        ("name", "admin"),
                        ("password", "not the password"),
                    ])
                    .send()
                    .await
                    .expect("post");
                answers.push(r.status().as_u16());
            }
        }
    });
    eprintln!("wrong sign-ins from 8 addresses: {answers:?}");
    // The account takes ten failures: four wrong current passwords above, six here.
    assert!(answers[..6].iter().all(|s| *s == 401), "{answers:?}");
    assert!(
        answers[6..].iter().all(|s| *s == 429),
        "no per-account limit: {answers:?}"
    );
}

/// Finding 13: "Test connection" refuses loopback and link-local cameras unless the
/// appliance allows them, and answers every connection failure alike.
#[test]
fn camera_tests_refuse_local_targets_and_answer_failures_alike() {
    let server = Server::start();
    let (_web, token) = admin(&server);
    for url in [
        "rtsp://127.0.0.1:22/x",
        "rtsp://localhost/x",
        "rtsp://[::1]:554/x",
        "rtsp://169.254.10.1/x",
        "rtsp://[fe80::1]/x",
        "rtsp://0.0.0.0/x",
        "rtsp://[::ffff:127.0.0.1]/x",
    ] {
        let a = api(
            &server,
            &token,
            "POST",
            "/api/cameras/test",
            Some(json!({"url": url})),
        );
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.json()["ok"], json!(false), "{url}: {a:?}");
        let e = a.json()["error"].as_str().unwrap_or("").to_string();
        assert!(e.contains("loopback or link-local"), "{url}: {e}");
        let a = api(
            &server,
            &token,
            "POST",
            "/api/cameras",
            Some(json!({"name": "loop", "url": url})),
        );
        assert_eq!(a.status, 422, "{url}: {a:?}");
    }
    // Where the appliance allows local cameras: a closed port and a port that speaks
    // something else get the same answer.
    let local = Server::with(Settings {
        env: vec![("STREAMBOX_SOURCES__ALLOW_LOCAL_ADDRESSES", "true".into())],
        ..Settings::default()
    });
    let (_web, token) = admin(&local);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    // A port that takes the connection and closes it at once.
    let hangs_up = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hangs_up_port = hangs_up.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in hangs_up.incoming() {
            drop(c);
        }
    });
    let mut errors = Vec::new();
    for port in [closed_port, local.http.port(), hangs_up_port] {
        let a = api(
            &local,
            &token,
            "POST",
            "/api/cameras/test",
            Some(json!({"url": format!("rtsp://127.0.0.1:{port}/x")})),
        );
        assert_eq!(a.json()["ok"], json!(false), "{a:?}");
        errors.push(
            a.json()["error"]
                .as_str()
                .unwrap_or("")
                .replace(&port.to_string(), "PORT"),
        );
    }
    assert!(
        errors.windows(2).all(|w| w[0] == w[1]),
        "the answers tell ports apart: {errors:?}"
    );
}

/// The security headers on every page: a content security policy with frame-ancestors,
/// nosniff and no referrer everywhere; admin, setup and sign-in pages never framed.
#[test]
fn every_page_has_its_security_headers() {
    let server = Server::start();
    // The wizard's page, before setup is complete.
    let setup = get(&server.url("/setup"));
    admin(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let check = |url: &str, headers: &reqwest::header::HeaderMap, private_page: bool| {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{url}: CSP {csp:?}");
        assert!(csp.contains("frame-ancestors"), "{url}: CSP {csp:?}");
        assert!(csp.contains("object-src 'none'"), "{url}: CSP {csp:?}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{url}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{url}");
        if private_page {
            assert!(csp.contains("frame-ancestors 'none'"), "{url}: {csp}");
            assert_eq!(h("x-frame-options"), "DENY", "{url}");
        }
    };
    check("/setup", &setup.1, true);
    let cookie_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    rt.block_on(async {
        // Sign in as a browser does, then read every HTML page.
        let t = sign_in_token(&cookie_client, &server).await;
        let r = cookie_client
            .post(server.url("/login"))
            .form(&[
                ("csrf", t.as_str()),
                ("name", "admin"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 303);
        let mut pages = 0;
        for (method, path, access) in routes() {
            if method != "GET" || access == "api" || path.starts_with("/t/") {
                continue;
            }
            let url = path
                .replace("{stream}", "lobby")
                .replace("{*path}", "portal.css")
                .replace("{file}", "index.m3u8")
                .replace("{track}", "video")
                .replace("{epoch}", "1-0")
                .replace(['{', '}'], "");
            let r = cookie_client
                .get(server.url(&url))
                .send()
                .await
                .expect("get");
            let html = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/html"));
            if html {
                pages += 1;
                check(&url, r.headers(), access != "public" && access != "viewer");
            }
        }
        assert!(pages >= 8, "only {pages} HTML pages");
    });
}

/// Keeps `n` connections open from `ip` to `to` that never send a byte, each opened
/// again when the server closes it, until `stop`: how long the server let each stay
/// open (seconds), and how many were refused outright.
async fn idle_connections(
    ip: std::net::Ipv4Addr,
    to: std::net::SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<f64> {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncReadExt;
    let slots = (0..n).map(|_| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind((ip, 0).into()).expect("bind");
                let Ok(mut c) = socket.connect(to).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let t0 = Instant::now();
                let mut buf = [0u8; 512];
                // Closed (0 or an error) or answered: the server let it go.
                let _ = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf)).await;
                held.push(t0.elapsed().as_secs_f64());
            }
            held
        })
    });
    let mut all = Vec::new();
    for slot in slots.collect::<Vec<_>>() {
        all.extend(slot.await.expect("idle slot"));
    }
    all
}

/// Sends the first line and one header of a request, then one more header line every
/// 500 ms (slowloris), until the server closes the connection: seconds it stayed open.
async fn slowloris(to: std::net::SocketAddr) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::new(127, 0, 0, 10), 0).into())
        .expect("bind");
    let mut c = socket.connect(to).await.expect("connect");
    let t0 = Instant::now();
    let _ = c
        .write_all(b"GET /live/lobby/video.m3u8 HTTP/1.1\r\nHost: x\r\n")
        .await;
    let mut buf = [0u8; 512];
    loop {
        if c.write_all(b"X-Slow: yes\r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => break,
            Err(_) if t0.elapsed() > Duration::from_secs(30) => break,
            Err(_) => {}
        }
    }
    t0.elapsed().as_secs_f64()
}

#[test]
fn idle_slow_and_greedy_clients_leave_a_live_viewer_on_time() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let server = Server::with(Settings {
        part_target: 0.2,
        env: vec![("STREAMBOX_HTTP__HEADER_TIMEOUT", "3".into())],
        ..Settings::default()
    });
    let (_key, _ff) = server.publish_live("lobby", &bbb_bframes(), -1, 2);
    let video = server.url("/live/lobby/video.m3u8");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // A viewer alone first.
    let alone = rt.block_on(viewer_lags(&video, 6.0));
    let rss_before = rss_kib(server.pid());

    let http = server.http;
    let stop = Arc::new(AtomicBool::new(false));
    let (under_load, idle, slow, distinct, far) = rt.block_on(async {
        // A thousand connections that never send a request, from eight addresses (125
        // each, under the 128 allowed per address), opened again as they are closed.
        let idle: Vec<_> = (0..8u8)
            .map(|k| {
                tokio::spawn(idle_connections(
                    std::net::Ipv4Addr::new(127, 0, 0, 2 + k),
                    http,
                    125,
                    stop.clone(),
                ))
            })
            .collect();
        // Twenty slowloris clients.
        let slow: Vec<_> = (0..20).map(|_| tokio::spawn(slowloris(http))).collect();
        // A flood of distinct query strings on the playlist and a segment.
        let flood_url = video.clone();
        let distinct = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ok = 0;
            for n in 0..4000 {
                let u = if n % 2 == 0 {
                    format!("{flood_url}?q={n}")
                } else {
                    format!("{flood_url}?_HLS_skip=YES&v={n}")
                };
                if client.get(&u).send().await.is_ok_and(|r| r.status() == 200) {
                    ok += 1;
                }
            }
            ok
        });
        // Far past the live edge: more than two segments is refused at once; two is
        // answered within the blocking bound (three target durations), not held on.
        let far_url = video.clone();
        let far = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let p = client
                .get(&far_url)
                .send()
                .await
                .expect("playlist")
                .text()
                .await
                .expect("text");
            let (last, _) = hinted_part(&p).expect("preload hint");
            let mut out = Vec::new();
            for ahead in [3, 2] {
                let t0 = Instant::now();
                let status = client
                    .get(format!("{far_url}?_HLS_msn={}&_HLS_part=50", last + ahead))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                out.push((ahead, status, t0.elapsed().as_secs_f64()));
            }
            out
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The viewer, while all that goes on.
        let under_load = viewer_lags(&video, 10.0).await;
        stop.store(true, Ordering::Relaxed);
        let mut held = Vec::new();
        for t in idle {
            held.extend(t.await.expect("idle"));
        }
        let mut slow_held = Vec::new();
        for t in slow {
            slow_held.push(t.await.expect("slowloris"));
        }
        (
            under_load,
            held,
            slow_held,
            distinct.await.expect("flood"),
            far.await.expect("far"),
        )
    });
    let rss_after = rss_kib(server.pid());
    let (med0, max0) = (quantile(&alone, 0.5), quantile(&alone, 1.0));
    let (med1, p95, max1) = (
        quantile(&under_load, 0.5),
        quantile(&under_load, 0.95),
        quantile(&under_load, 1.0),
    );
    eprintln!(
        "viewer alone: median {med0:.3} s, max {max0:.3} s ({} reloads); under load: median \
         {med1:.3} s, p95 {p95:.3} s, max {max1:.3} s ({} reloads); idle connections closed \
         after at most {:.1} s ({} in all); slowloris held {:.1} s at most; distinct queries \
         answered {distinct}/4000; far: {far:?}; RSS {rss_before} -> {rss_after} KiB; idle \
         p50 {:.2} s, p99 {:.2} s, {} over 5 s",
        alone.len(),
        under_load.len(),
        quantile(&idle, 1.0),
        idle.len(),
        quantile(&slow, 1.0),
        quantile(&idle, 0.5),
        quantile(&idle, 0.99),
        idle.iter().filter(|&&h| h > 5.0).count(),
    );
    // Idle and trickling connections are let go at the header deadline (3 s).
    assert!(idle.len() >= 1000, "{} idle connections", idle.len());
    assert!(quantile(&idle, 1.0) < 5.0, "an idle connection was held");
    assert!(quantile(&slow, 1.0) < 5.0, "a slowloris client was held");
    // Every distinct query string is answered, and none is kept.
    assert_eq!(distinct, 4000);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Far-future reloads: 400 at once, or answered within three target durations.
    assert_eq!(far[0].1, 400, "{far:?}");
    assert!(far[0].2 < 1.0, "{far:?}");
    assert!(matches!(far[1].1, 200 | 503) && far[1].2 < 7.0, "{far:?}");
    // The viewer is as close to live as it was alone.
    assert!(
        under_load.len() > 20,
        "{} reloads in 10 s",
        under_load.len()
    );
    assert!(
        med1 <= med0 + 0.1 && max1 < 1.0,
        "the viewer fell behind: median {med0:.3} -> {med1:.3} s, max {max1:.3} s"
    );
}
