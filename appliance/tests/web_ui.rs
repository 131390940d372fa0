//! End-to-end: the setup wizard and the admin pages in headless Chromium against the
//! real binary, from a fresh data directory to a stream playing in the viewer portal,
//! entirely from the browser (with ffmpeg as the publisher, using the server URL and
//! key the page showed). Screenshots of every page visited are kept as test artifacts.

mod support;

use support::*;

fn phase(server: &Server, name: &str, shots: &str) -> serde_json::Value {
    phase_with(server, name, shots, &["lobby"])
}

fn phase_with(server: &Server, name: &str, shots: &str, args: &[&str]) -> serde_json::Value {
    let base = server.url("");
    let mut all = vec![base.as_str(), name, shots];
    all.extend_from_slice(args);
    let r = browser_result(in_browser("admin.mjs", &all));
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{name}: {r}");
    r
}

/// Checks a player's samples: the media time advanced by more than `advance` seconds,
/// the picture is the test clip's 1280x720, no error; returns the page's last live
/// latency.
fn played(samples: &serde_json::Value, advance: f64) -> f64 {
    let samples = samples.as_array().expect("samples");
    let first = samples
        .iter()
        .find(|s| num(&s["t"]) > 0.0)
        .expect("never played");
    let last = samples.last().expect("a sample");
    assert!(
        num(&last["t"]) > num(&first["t"]) + advance,
        "playback did not advance: {samples:?}"
    );
    assert_eq!(
        (num(&last["width"]), num(&last["height"])),
        (1280.0, 720.0),
        "{samples:?}"
    );
    assert!(samples.iter().all(|s| s["error"].is_null()), "{samples:?}");
    // NaN (which no latency check accepts) when the page's live player reported none.
    last["latency"].as_f64().unwrap_or(f64::NAN)
}

#[test]
fn from_a_fresh_appliance_to_a_stream_playing_all_in_the_browser() {
    let mut server = Server::start();
    let shots = artifacts("web_ui");
    let shots = shots.to_str().expect("utf-8 path").to_string();

    // Steps 1 and 2, then the service restarts.
    let r = phase(&server, "start", &shots);
    assert_eq!(r["redirectedTo"], "/setup", "{r}");
    assert_eq!(r["step1"], "Create the administrator", "{r}");
    let weak = r["weakPassword"].as_str().unwrap_or_default();
    assert!(weak.contains("too easy to guess"), "{r}");
    assert_eq!(r["step2"], "Name the appliance", "{r}");
    assert_eq!(r["step3"], "Network", "{r}");
    server.kill_and_restart();

    // A new browser resumes at step 3 after signing in, and finishes.
    let r = phase(&server, "resume", &shots);
    assert_eq!(r["redirectedTo"], "/setup", "{r}");
    assert_eq!(r["resumeHeading"], "Sign in to continue setup", "{r}");
    assert_eq!(r["resumedAt"], "Network", "{r}");
    assert_eq!(r["revisited"]["name"], "Main hall", "{r}");
    assert_eq!(r["revisited"]["zone"], "Europe/Berlin", "{r}");
    let interfaces: Vec<&str> = r["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        interfaces
            .iter()
            .any(|i| i.starts_with("lo") && i.contains("127.0.0.1/8")),
        "{r}"
    );
    let port = server.http.port().to_string();
    let urls: Vec<&str> = r["urls"]
        .as_array()
        .expect("urls")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        urls.iter()
            .any(|u| u.starts_with("http://") && u.ends_with(&format!(":{port}/"))),
        "{r}"
    );
    assert!(
        urls.iter()
            .any(|u| u.starts_with("rtmp://")
                && u.ends_with(&format!(":{}/live", server.rtmp.port()))),
        "{r}"
    );
    let disk = r["disk"].to_string();
    assert!(disk.contains("Free") && disk.contains("B"), "{r}");
    assert!(
        r["badKeep"]
            .as_str()
            .is_some_and(|m| m.contains("not a duration")),
        "{r}"
    );
    assert_eq!(r["step5"], "Your first stream", "{r}");
    assert_eq!(r["created"], "Stream created", "{r}");
    assert_eq!(r["copyButtons"], 3, "{r}");
    assert_eq!(r["finishedAt"], "/admin?welcome=1", "{r}");
    assert!(
        r["notice"]
            .as_str()
            .is_some_and(|n| n.contains("Setup is complete")),
        "{r}"
    );
    assert_eq!(r["cards"], serde_json::json!(["lobby"]), "{r}");

    // Publish as OBS would, with what the page showed.
    let server_url = r["server"].as_str().expect("server URL");
    let key = r["key"].as_str().expect("key");
    assert_eq!(key.len(), 32, "{r}");
    assert!(
        server_url.starts_with("rtmp://") && server_url.ends_with("/live"),
        "{r}"
    );
    let watch = r["watch"].as_str().expect("watch URL");
    assert!(watch.ends_with(&format!(":{port}/watch/lobby")), "{r}");
    let _ff = publish(&bbb(), -1, &format!("{server_url}/{key}"));
    server.wait_segments("lobby", 2);

    // Sign in (a wrong password first), see it live, watch it, sign out.
    let r = phase(&server, "use", &shots);
    assert_eq!(r["redirectedTo"], "/login?next=%2Fadmin", "{r}");
    assert_eq!(r["wrongPassword"], "Wrong user name or password.", "{r}");
    assert_eq!(r["signedInAt"], "/admin", "{r}");
    let card = &r["dashboardCard"];
    assert_eq!(card["state"], "live", "{r}");
    assert_eq!(card["Type"], "stream", "{r}");
    assert!(
        card["Source"]
            .as_str()
            .is_some_and(|s| s.contains("127.0.0.1") || s.contains('.')),
        "{r}"
    );
    assert!(
        card["Bitrate"]
            .as_str()
            .is_some_and(|b| b.ends_with("Mbit/s")),
        "{r}"
    );
    // Step 4 asked new streams to record.
    assert_eq!(card["Recording"], "on", "{r}");
    assert!(
        card["Uptime"].as_str().is_some_and(|u| u.ends_with('s')),
        "{r}"
    );
    assert!(
        card["Viewers"]
            .as_str()
            .is_some_and(|v| v.parse::<u32>().is_ok()),
        "{r}"
    );
    // The recording plays from a thumbnail on the stream page's timeline.
    assert!(r["timelineSpans"].as_u64() >= Some(1), "{r}");
    played(&r["recording"], 3.0);
    let latency = played(&r["samples"], 5.0);
    assert!(latency > 0.0, "{r}");
    eprintln!("hls.js live latency in the portal after the wizard: {latency:.2} s");
    let audit = r["audit"].to_string();
    for action in [
        "setup.admin",
        "setup.identity",
        "setup.storage",
        "stream.add",
        "setup.finish",
        "user.sign-in",
    ] {
        assert!(audit.contains(action), "{action} not in the audit log: {r}");
    }
    assert_eq!(
        r["version"],
        concat!("streambox ", env!("CARGO_PKG_VERSION")),
        "{r}"
    );
    assert_eq!(r["signedOutAt"], "/login?signed_out=1", "{r}");
    assert_eq!(r["signedOutNotice"], "You have signed out.", "{r}");
    assert_eq!(r["afterSignOut"], "/login?next=%2Fadmin", "{r}");
    for page in [
        "setup-1-administrator",
        "setup-1-weak-password",
        "setup-resume-sign-in",
        "setup-3-network",
        "setup-4-storage",
        "setup-5-first-stream",
        "setup-5-stream-created",
        "dashboard-after-setup",
        "sign-in-refused",
        "dashboard-live",
        "portal-watch",
        "audit-log",
        "account",
        "system",
        "signed-out",
    ] {
        let f = std::path::Path::new(&shots).join(format!("{page}.png"));
        assert!(
            f.metadata().is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            f.display()
        );
    }
}

#[test]
fn streams_made_and_played_in_the_admin_ui_and_a_private_one_only_through_its_link() {
    let server = Server::start();
    support::web::Web::new(&server).complete_setup("correct horse battery staple", "lobby");
    let shots = artifacts("web_ui_streams");
    let shots = shots.to_str().expect("utf-8 path").to_string();

    let r = phase_with(&server, "create", &shots, &["chapel"]);
    assert!(
        r["badName"]
            .as_str()
            .is_some_and(|m| m.contains("invalid stream name")),
        "{r}"
    );
    assert_eq!(r["createdAt"], "/admin/streams", "{r}");
    assert!(
        r["notice"].as_str().is_some_and(|m| m.contains("created")),
        "{r}"
    );
    assert_eq!(r["listed"], serde_json::json!(["chapel", "lobby"]), "{r}");
    let server_url = r["server"].as_str().expect("server");
    let key = r["key"].as_str().expect("key");
    let _ff = publish(&bbb(), -1, &format!("{server_url}/{key}"));
    server.wait_segments("chapel", 2);

    // The stream page plays it with either player, then it goes private with a link.
    let r = phase_with(&server, "player", &shots, &["chapel"]);
    assert!(
        r["hls"]
            .as_array()
            .expect("hls")
            .iter()
            .any(|s| s["kind"] == "hls"),
        "{r}"
    );
    assert!(
        r["dash"]
            .as_array()
            .expect("dash")
            .iter()
            .any(|s| s["kind"] == "dash"),
        "{r}"
    );
    let hls = played(&r["hls"], 3.0);
    let dash = played(&r["dash"], 3.0);
    eprintln!("stream page live latency: hls.js {hls:.2} s, dash.js {dash:.2} s");
    assert!(
        r["visibilityNotice"]
            .as_str()
            .is_some_and(|m| m.contains("private")),
        "{r}"
    );
    let link = r["link"].as_str().expect("link").to_string();
    let token = link
        .split_once("/t/")
        .and_then(|(_, rest)| rest.split_once("/watch/chapel"))
        .map(|(t, _)| t.to_string())
        .unwrap_or_else(|| panic!("not a /t/TOKEN/watch/chapel link: {link}"));
    let prefix = format!("/t/{token}");

    // Without the link: not listed; the page, playlists, media and RTSP refuse.
    let listed = get_text(&server.url("/"));
    assert!(!listed.contains("/watch/chapel"), "{listed}");
    let (status, _, body) = get(&server.url("/watch/chapel"));
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("This stream is private"));
    for path in [
        "/live/chapel/index.m3u8",
        "/live/chapel/manifest.mpd",
        "/live/chapel/low-latency.mpd",
        "/live/chapel/thumbnail.jpg",
        "/dvr/chapel/recordings.json",
        "/watch/chapel/state",
        // The same with the name percent-encoded, as the router decodes it.
        "/live/%63hapel/index.m3u8",
        "/watch/ch%61pel",
    ] {
        assert_eq!(get(&server.url(path)).0, 403, "{path}");
    }
    let out = probe_streams(&server.rtsp_url("/live/chapel"));
    assert!(
        !out.status.success(),
        "RTSP played a private stream without a token"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    // With it: the playlists, and media ffmpeg decodes cleanly; RTSP with ?token=.
    let playlist = get_text(&server.url(&format!("{prefix}/live/chapel/index.m3u8")));
    assert!(playlist.contains("#EXTM3U"), "{playlist}");
    let out = std::process::Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(server.url(&format!("{prefix}/live/chapel/video.m3u8")))
        .args(["-t", "4", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let out = probe_streams(&server.rtsp_url(&format!("/live/chapel?token={token}")));
    assert!(out.status.success(), "RTSP with a token: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("h264"),
        "{out:?}"
    );
    // A link altered, expired, damaged, or for another stream does not open it.
    let mut parts = token.splitn(3, '.');
    let (id, expires, sig) = (
        parts.next().expect("ID"),
        parts.next().expect("EXPIRES"),
        parts.next().expect("SIGNATURE"),
    );
    let later = expires.parse::<i64>().expect("expiry") + 3600;
    let secret = read_secret(&server, streambox::auth::viewer::SECRET);
    let uid = support::web::with_db(&server, |pool| async move {
        sqlx::query_as::<_, (streambox::streams::StreamUid,)>(
            "SELECT uid FROM streams WHERE name = 'chapel'",
        )
        .fetch_one(&pool)
        .await
        .expect("the stream's identity")
        .0
    });
    let id: i64 = id.parse().expect("link id");
    let expired = streambox::auth::viewer::token(&secret, &uid, id, 1_000);
    for (bad, why) in [
        (format!("{id}.{later}.{sig}"), "not valid"),
        (expired, "expired"),
        ("garbage".to_string(), "damaged"),
    ] {
        let (status, _, body) = get(&server.url(&format!("/t/{bad}/watch/chapel")));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "{bad}: {body}");
        assert!(body.contains(why), "{bad}: {body}");
    }
    let (status, _, _) = get(&server.url(&format!("{prefix}/live/lobby/index.m3u8")));
    assert_eq!(status, 403, "a link opens its own stream only");

    // A browser with no session: refused without the link, plays with it.
    let r = phase_with(&server, "link", &shots, &["chapel", &link]);
    assert_eq!(r["withoutLink"]["status"], "This stream is private", "{r}");
    let latency = played(&r["withLink"], 3.0);
    eprintln!("private stream through its link: hls.js live latency {latency:.2} s");
}

/// A secret setting of the server's database.
fn read_secret(server: &Server, name: &str) -> Vec<u8> {
    support::web::with_db(server, |pool| async move {
        let (v,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("secret");
        v
    })
}

/// ffprobe's streams of an RTSP URL (it reads only until it has found them).
fn probe_streams(url: &str) -> std::process::Output {
    std::process::Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_streams",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("ffprobe")
}
