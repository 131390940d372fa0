//! End-to-end: the JSON API of the real binary, with an API token made on the account
//! page: streams (and ffmpeg publishing with the key it returns), viewers and uptime,
//! recording, visibility and links, rename, keys, cameras against GStreamer's RTSP
//! server, tokens, the audit log, and what bad requests get back.

mod support;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::web::{Answer, Web};
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// Polls `f` every 200 ms for up to `secs` seconds until it returns `Some`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_json_api_does_what_the_pages_do_with_a_token_made_in_the_ui() {
    let cam = support::camera::Camera::start(
        &support::camera::camera_clip(),
        "aac",
        0,
        Some(("viewer", "s3cret", "digest")),
    );
    // The test camera is on this machine's loopback, which the pages refuse by default.
    let server = Server::with(Settings {
        env: vec![("STREAMBOX_SOURCES__ALLOW_LOCAL_ADDRESSES", "true".into())],
        ..Settings::default()
    });
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");

    // A token made on the account page is shown once, then only listed by name.
    let t = web.csrf("/admin/account");
    let a = web.post("/admin/account/tokens", &[("csrf", &t), ("name", "")]);
    assert_eq!(a.status, 422, "{a:?}");
    let a = web.post("/admin/account/tokens", &[("csrf", &t), ("name", "ci")]);
    assert_eq!(a.status, 200, "{a:?}");
    let token = a.by_id("api-token").expect("the token is shown");
    assert!(token.starts_with("sbx_") && token.len() == 47, "{token}");
    let page = web.get("/admin/account");
    assert!(page.body.contains("<td>ci</td>"), "{}", page.body);
    assert!(!page.body.contains(&token), "the token was shown twice");

    // A client with no cookies, only the token.
    let bot = Web::new(&server);
    let call = |method: &str, path: &str, body: Option<Value>| -> Answer {
        bot.api(method, path, Some(&token), None, body.as_ref())
    };
    let a = call("GET", "/api/session", None);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        (&a.json()["user"], &a.json()["via"], &a.json()["token"]),
        (&json!("admin"), &json!("token"), &json!("ci"))
    );

    // Bad credentials and bad bodies: a clear JSON error, nothing changed.
    for (auth, why) in [
        (format!("Bearer {}x", &token[..46]), "not valid"),
        ("Bearer sbx_nonsense".to_string(), "not valid"),
        (format!("Basic {token}"), "Bearer"),
    ] {
        let a = Web::new(&server).api_with_authorization("POST", "/api/streams", &auth);
        assert_eq!(a.status, 401, "{auth}: {a:?}");
        assert!(a.error().contains(why), "{a:?}");
    }
    let a = bot.post_raw("/api/streams", "application/json", b"{\"name\": ".to_vec());
    assert_eq!(a.status, 401, "no token, no cookie: {a:?}");
    for (content_type, body, status) in [
        ("application/json", b"{\"name\": ".to_vec(), 400),
        ("application/x-www-form-urlencoded", b"name=x".to_vec(), 415),
        ("application/json", b"{\"title\": \"x\"}".to_vec(), 422),
        ("application/json", vec![b' '; 100_000], 413),
    ] {
        let a = bot.post_raw_with_bearer("/api/streams", content_type, body, &token);
        assert_eq!(a.status, status, "{content_type}: {a:?}");
        assert!(!a.error().is_empty(), "{a:?}");
    }
    for (name, status) in [("a b", 422), ("<script>", 422), ("lobby", 409)] {
        let a = call("POST", "/api/streams", Some(json!({ "name": name })));
        assert_eq!(a.status, status, "{name}: {a:?}");
    }
    let a = call("GET", "/api/streams/nosuch", None);
    assert_eq!(a.status, 404, "{a:?}");
    assert!(a.error().contains("nosuch"), "{a:?}");
    let a = call("GET", "/api/streams", None);
    assert_eq!(a.json().as_array().map(Vec::len), Some(1), "{a:?}");

    // Create a stream; ffmpeg publishes with the key the API returned.
    let a = call("POST", "/api/streams", Some(json!({ "name": "hall" })));
    assert_eq!(a.status, 201, "{a:?}");
    let made = a.json();
    let key = made["key"].as_str().expect("key").to_string();
    assert_eq!(
        made["server"],
        json!(format!("rtmp://127.0.0.1:{}/live", server.rtmp.port()))
    );
    let publisher = publish(&bbb(), -1, &server.rtmp_url(&format!("hall?key={key}")));
    server.wait_segments("hall", 1);

    // Viewers: two more HTTP players (address and User-Agent), then an RTSP session.
    let viewers = || call("GET", "/api/streams/hall", None).json()["viewers"].as_u64();
    let before = viewers().expect("viewers");
    for agent in ["player A", "player B"] {
        let (status, _, _) = get_with(
            &server.url("/live/hall/index.m3u8"),
            &[("user-agent", agent)],
        );
        assert_eq!(status, 200);
    }
    assert_eq!(viewers(), Some(before + 2));
    let mut rtsp = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(server.rtsp_url("/live/hall"))
        .args(["-t", "20", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    eventually(10, "an RTSP viewer", || {
        (viewers() == Some(before + 3)).then_some(())
    });
    let _ = rtsp.kill();
    let _ = rtsp.wait();
    eventually(10, "the RTSP viewer to go", || {
        (viewers() == Some(before + 2)).then_some(())
    });
    let d = call("GET", "/api/streams/hall", None).json();
    assert_eq!(d["live"], true, "{d}");
    assert_eq!(d["kind"], "stream", "{d}");
    assert!(d["bitrate"].as_i64().is_some_and(|b| b > 100_000), "{d}");
    assert!(
        d["live_since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{d}"
    );
    let up = d["uptime_secs"].as_u64().expect("uptime");
    assert!(up < 120, "{d}");
    assert_eq!(
        d["publish"]["rtsp"],
        json!(format!("rtsp://127.0.0.1:{}/live/hall", server.rtsp.port()))
    );
    // The dashboard shows the same.
    let dash = web.get("/admin").body;
    let card = &dash[dash.find("data-stream=\"hall\"").expect("hall's card")..];
    assert!(card.contains("class=\"uptime\""), "{card}");
    assert!(card.contains("class=\"viewers\""), "{card}");

    // Recording settings; a bad limit changes nothing.
    let a = call(
        "PUT",
        "/api/streams/hall/recording",
        Some(json!({ "enabled": true, "keep": "2d" })),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json(),
        json!({ "enabled": true, "keep_secs": 172800, "keep_bytes": null })
    );
    let a = call(
        "PUT",
        "/api/streams/hall/recording",
        Some(json!({ "enabled": false, "keep": "forever" })),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error().contains("Keep for"), "{a:?}");
    let d = call("GET", "/api/streams/hall", None).json();
    assert_eq!(
        d["recording_settings"],
        json!({ "enabled": true, "keep_secs": 172800, "keep_bytes": null })
    );
    let recorded = eventually(30, "a recorded range", || {
        let d = call("GET", "/api/streams/hall", None).json();
        d["recordings"]
            .as_array()
            .filter(|r| !r.is_empty())
            .cloned()
    });
    assert!(recorded[0]["start"].as_str().is_some(), "{recorded:?}");

    // The stream page's timeline: the range on the day's bar, a thumbnail along it, and
    // the clip export form, whose defaults export a playable MP4.
    let page = web.get("/admin/streams/hall").body;
    let attr = |from: &str, name: &str| -> String {
        let at = page
            .find(from)
            .unwrap_or_else(|| panic!("no {from} in {page}"));
        let rest = &page[at..];
        let start = rest.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        support::web::unescape(&rest[start..start + rest[start..].find('"').expect("quote")])
    };
    let bar = attr("id=\"timeline\"", "style");
    assert!(bar.starts_with("left:") && bar.contains("width:"), "{bar}");
    let thumb = attr("id=\"thumbs\"", "src");
    let (status, headers, jpeg) = get(&server.url(&thumb));
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"image/jpeg".parse().expect("value"))
    );
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "{thumb}");
    let clip = format!(
        "{}?start={}&end={}",
        attr("id=\"clip\"", "action"),
        attr("name=\"start\"", "value"),
        attr("name=\"end\"", "value")
    );
    let p = probe(&server.url(&clip), &["-show_format"]);
    assert_eq!(stream_of(&p, "video")["codec_name"], "h264", "{p}");
    assert!(num(&p["format"]["duration"]) > 1.0, "{clip}: {p}");

    // Private: viewers need a link; the link plays.
    let a = call(
        "PUT",
        "/api/streams/hall/visibility",
        Some(json!({ "visibility": "secret" })),
    );
    assert_eq!(a.status, 422, "{a:?}");
    let a = call(
        "PUT",
        "/api/streams/hall/visibility",
        Some(json!({ "visibility": "private" })),
    );
    assert_eq!(a.json(), json!({ "visibility": "private" }));
    assert_eq!(get(&server.url("/live/hall/index.m3u8")).0, 403);
    let a = call(
        "POST",
        "/api/streams/hall/links",
        Some(json!({ "valid": "1y" })),
    );
    assert_eq!(a.status, 422, "{a:?}");
    let a = call(
        "POST",
        "/api/streams/hall/links",
        Some(json!({ "valid": "1h" })),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let url = a.json()["url"].as_str().expect("url").to_string();
    let path = &url[url.find("/t/").expect("link path")..];
    let media = path.replace("/watch/hall", "/live/hall/index.m3u8");
    assert_eq!(get(&server.url(path)).0, 200, "{url}");
    assert_eq!(get(&server.url(&media)).0, 200, "{media}");

    // Rename waits until the publisher has gone; the new key works, the old does not.
    let a = call(
        "POST",
        "/api/streams/hall/rename",
        Some(json!({ "name": "hall2" })),
    );
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a.error().contains("live"), "{a:?}");
    drop(publisher);
    eventually(15, "the stream to go idle", || {
        let d = call("GET", "/api/streams/hall", None).json();
        (d["live"] == json!(false)).then_some(())
    });
    let a = call(
        "POST",
        "/api/streams/hall/rename",
        Some(json!({ "name": "hall2" })),
    );
    assert_eq!((a.status, a.json()), (200, json!({ "name": "hall2" })));
    assert_eq!(call("GET", "/api/streams/hall", None).status, 404);
    let a = call("POST", "/api/streams/hall2/key", None);
    assert_eq!(a.status, 200, "{a:?}");
    let new_key = a.json()["key"].as_str().expect("key").to_string();
    assert_ne!(new_key, key);

    // Cameras: test (wrong password, then right), add, edit, remove.
    let cam_url = cam.url(None);
    let camera = |password: &str| json!({ "name": "gate", "url": cam_url, "username": "viewer", "password": password });
    let a = call("POST", "/api/cameras/test", Some(camera("wrong")));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["ok"], false, "{a:?}");
    assert!(
        a.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{a:?}"
    );
    let a = call("POST", "/api/cameras/test", Some(camera("s3cret")));
    assert_eq!(a.json()["ok"], true, "{a:?}");
    assert!(
        a.json()["offers"]
            .as_str()
            .is_some_and(|o| o.contains("H.264 video and AAC audio")),
        "{a:?}"
    );
    let mut bad = camera("s3cret");
    bad["transport"] = json!("smoke");
    assert_eq!(call("POST", "/api/cameras", Some(bad)).status, 422);
    let a = call("POST", "/api/cameras", Some(camera("s3cret")));
    assert_eq!(a.status, 201, "{a:?}");
    assert!(!a.body.contains("s3cret"), "the password was echoed: {a:?}");
    let a = call(
        "PUT",
        "/api/streams/gate/camera",
        Some(json!({ "url": cam_url, "username": "viewer", "password": "", "transport": "udp" })),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let d = eventually(30, "the camera to go live", || {
        let d = call("GET", "/api/streams/gate", None).json();
        (d["live"] == json!(true)).then_some(d)
    });
    assert_eq!(d["camera"]["transport"], "udp", "{d}");
    assert_eq!(d["camera"]["username"], "viewer", "{d}");
    assert!(!d.to_string().contains("s3cret"), "{d}");
    let a = call(
        "PUT",
        "/api/streams/hall2/camera",
        Some(json!({ "url": cam_url })),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(call("DELETE", "/api/streams/gate", None).status, 204);
    assert_eq!(call("DELETE", "/api/streams/gate", None).status, 404);

    // The session cookie works too, with the CSRF token from /api/session.
    let a = web.api(
        "POST",
        "/api/streams",
        None,
        None,
        Some(&json!({ "name": "x1" })),
    );
    assert_eq!(a.status, 403, "{a:?}");
    let csrf = web.get("/api/session").json()["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let a = web.api(
        "POST",
        "/api/streams",
        None,
        Some(&csrf),
        Some(&json!({ "name": "x1" })),
    );
    assert_eq!(a.status, 201, "{a:?}");

    // Password: refused when the current one is wrong or the new one weak.
    for (current, new, why) in [
        (
            "wrong password!",
            "another good passphrase 9",
            "current password is wrong",
        ),
        (PASSWORD, "password123", "refused"),
    ] {
        let a = call(
            "PUT",
            "/api/account/password",
            Some(json!({ "current": current, "new": new })),
        );
        assert_eq!(a.status, 422, "{a:?}");
        assert!(a.error().contains(why), "{a:?}");
    }

    // Tokens: list, make another, revoke the first with it; the first stops working.
    let list = call("GET", "/api/tokens", None).json();
    assert_eq!(list[0]["name"], "ci", "{list}");
    assert!(list[0]["last_used"].as_i64().is_some(), "{list}");
    let first = list[0]["id"].as_i64().expect("id");
    let a = call("POST", "/api/tokens", Some(json!({ "name": "ci" })));
    assert_eq!(a.status, 409, "{a:?}");
    let a = call("POST", "/api/tokens", Some(json!({ "name": "second" })));
    assert_eq!(a.status, 201, "{a:?}");
    let second = a.json()["token"].as_str().expect("token").to_string();
    let a = bot.api(
        "DELETE",
        &format!("/api/tokens/{first}"),
        Some(&second),
        None,
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
    let a = call("GET", "/api/session", None);
    assert_eq!(a.status, 401, "a revoked token still works: {a:?}");
    assert!(a.error().contains("revoked"), "{a:?}");

    // The audit log names the token and the address of each action.
    let with_second = |path: &str| bot.api("GET", path, Some(&second), None, None);
    assert_eq!(with_second("/api/audit?limit=abc").status, 400);
    let log = with_second("/api/audit?limit=200").json();
    let entries = log.as_array().expect("entries");
    let find = |action: &str, detail: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["detail"] == detail)
            .unwrap_or_else(|| panic!("no {action} {detail} in {log}"))
    };
    let e = find("stream.add", "hall");
    assert_eq!(e["actor"], "admin (token \"ci\")", "{e}");
    assert_eq!(e["client"], "127.0.0.1", "{e}");
    assert_eq!(find("stream.add", "x1")["actor"], "admin");
    find("stream.rename", "hall -> hall2");
    find("camera.edit", "gate");
    find("token.revoke", "ci");

    // Revoking on the account page works as well.
    let page = web.get("/admin/account");
    let id = {
        let at = page
            .body
            .find("/admin/account/tokens/")
            .expect("a revoke form")
            + "/admin/account/tokens/".len();
        page.body[at..at + page.body[at..].find('/').expect("id end")].to_string()
    };
    let t = page.csrf();
    let a = web.post(
        &format!("/admin/account/tokens/{id}/revoke"),
        &[("csrf", &t)],
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.alert().is_some_and(|m| m.contains("second")), "{a:?}");
    assert_eq!(with_second("/api/session").status, 401);
}
