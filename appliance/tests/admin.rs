//! End-to-end: setup, sign-in and the admin routes of the real binary, over HTTP as a
//! browser without JavaScript uses them: which routes answer whom, what bad input gets
//! back, and the factory reset. The same in a real browser is in `web_ui.rs`.

mod support;

use std::io::Write;
use std::process::Stdio;
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// `streambox routes`: (method, path, access) of every route the router serves.
fn routes() -> Vec<(String, String, String)> {
    let out = std::process::Command::new(bin())
        .arg("routes")
        .output()
        .expect("streambox routes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let all: Vec<(String, String, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad line {l:?}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    assert!(all.len() > 20, "{text}");
    all
}

/// A concrete path for a route pattern: `{stream}` becomes `lobby`, a link's viewer
/// route `watch/lobby`, every other `{param}` `x`.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{stream}" => "lobby",
            "{*viewer_route}" => "watch/lobby",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_admin_and_api_route_refuses_anonymous_requests() {
    let routes = routes();
    // Everything under the admin prefixes is guarded by class; nothing there is public.
    for (method, path, access) in &routes {
        for (prefix, class) in [("/admin", "admin"), ("/api/", "api"), ("/setup", "setup")] {
            if path.starts_with(prefix) {
                assert_eq!(access, class, "{method} {path} is {access}");
            }
        }
        if path == "/login" || path == "/logout" {
            assert_eq!(access, "sign-in", "{method} {path}");
        }
        // Whatever shows one stream to viewers is guarded by its visibility.
        if path.contains("{stream}") && !path.starts_with("/admin") && !path.starts_with("/api/") {
            assert_eq!(access, "viewer", "{method} {path}");
        }
    }
    let guarded: Vec<_> = routes
        .iter()
        .filter(|r| r.2 != "public" && r.2 != "viewer")
        .collect();
    let viewer: Vec<_> = routes.iter().filter(|r| r.2 == "viewer").collect();
    assert!(viewer.len() >= 9, "{viewer:?}");
    let server = Server::start();
    let web = Web::new(&server);
    let token = web.csrf("/setup");

    // During setup: only the wizard answers.
    for (method, path, access) in &guarded {
        let url = concrete(path);
        let a = web.request(method, &url, &token);
        match access.as_str() {
            "admin" | "sign-in" => assert_eq!(
                (a.status, a.location.as_deref()),
                (303, Some("/setup")),
                "{method} {path} during setup: {a:?}"
            ),
            "api" => {
                assert_eq!(a.status, 503, "{method} {path} during setup: {a:?}");
                assert!(a.body.contains("setup is not complete"), "{a:?}");
            }
            "setup" => assert!(a.status < 500, "{method} {path}: {a:?}"),
            other => panic!("unknown access class {other}"),
        }
    }

    web.complete_setup(PASSWORD, "lobby");

    // After setup, for a client that has not signed in (its own cookies, a valid CSRF
    // token so the refusal is about the session, not the form).
    let anon = Web::new(&server);
    let token = anon.csrf("/login");
    for (method, path, access) in &guarded {
        let url = concrete(path);
        let a = anon.request(method, &url, &token);
        match access.as_str() {
            "admin" => {
                let to = a.location.clone().unwrap_or_default();
                assert!(
                    a.status == 303 && to.starts_with("/login?next="),
                    "anonymous {method} {path}: {a:?}"
                );
            }
            "api" => {
                assert_eq!(a.status, 401, "anonymous {method} {path}: {a:?}");
                let v: serde_json::Value = serde_json::from_str(&a.body).expect("JSON error");
                assert!(
                    v["error"].as_str().is_some_and(|e| e.contains("sign in")),
                    "{v}"
                );
            }
            "setup" if method == "GET" => {
                assert_eq!(
                    (a.status, a.location.as_deref()),
                    (303, Some("/admin")),
                    "{path}"
                )
            }
            "setup" => assert_eq!(a.status, 409, "anonymous {method} {path}: {a:?}"),
            // /login answers everyone; /logout without a session just goes to /login.
            "sign-in" => assert!(
                a.status == 200 || a.status == 303 || a.status == 401,
                "{path}: {a:?}"
            ),
            other => panic!("unknown access class {other}"),
        }
        // Nothing admin-only leaked into a refusal.
        assert!(
            !a.body.contains("lobby"),
            "{method} {path} showed a stream: {a:?}"
        );
    }

    // The signed-in administrator gets every admin page and API route.
    for (method, path, access) in &guarded {
        if method == "GET" && (access == "admin" || access == "api") {
            let a = web.get(&concrete(path));
            if path.contains("/hardware/video/{id}") {
                // This machine has no capture device `x`: the handler itself says so.
                assert_eq!(a.status, 404, "signed-in GET {path}: {a:?}");
                assert!(a.body.contains("no capture device"), "{a:?}");
                continue;
            }
            assert_eq!(a.status, 200, "signed-in GET {path}: {a:?}");
        }
    }
    let a = web.get("/api/streams");
    let v: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
    assert_eq!(v[0]["name"], "lobby", "{v}");
    assert_eq!(v[0]["recording"], false, "{v}");

    // Once the stream is private, every viewer route of it refuses a client without a
    // link or a session (with a made-up link too), and answers the administrator.
    let t = web.csrf("/admin/streams/lobby");
    let a = web.post(
        "/admin/streams/lobby/visibility",
        &[("csrf", &t), ("visibility", "private")],
    );
    assert_eq!(a.status, 200, "{a:?}");
    // Viewer routes are GETs, but for the ClearKey license server's POST.
    let license = br#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"]}"#;
    let visit = |w: &Web, method: &str, url: &str| match method {
        "GET" => w.get(url),
        "POST" => w.post_raw(url, "application/json", license.to_vec()),
        other => panic!("a viewer route answers {other}: {url}"),
    };
    for (method, path, _) in &viewer {
        assert!(
            method == "GET" || path == "/live/{stream}/keys/{file}",
            "{method} {path}"
        );
        let url = concrete(path);
        let a = visit(&anon, method, &url);
        assert_eq!(
            a.status, 403,
            "anonymous {method} {url} of a private stream: {a:?}"
        );
        if !path.starts_with("/t/") {
            assert_ne!(
                visit(&web, method, &url).status,
                403,
                "the administrator was refused {method} {url}"
            );
        }
    }
}

#[test]
fn bad_input_gets_a_clear_answer_and_changes_nothing() {
    let server = Server::start();
    let web = Web::new(&server);
    let token = web.csrf("/setup");

    // Forms without a token, with another browser's token, or larger than allowed.
    let fields = |t: &str| -> Vec<(String, String)> {
        vec![
            ("csrf".into(), t.into()),
            ("name".into(), "admin".into()),
            ("password".into(), PASSWORD.into()),
            ("again".into(), PASSWORD.into()),
        ]
    };
    let post = |t: &str| {
        let f = fields(t);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        web.post("/setup/admin", &f)
    };
    let other = Web::new(&server).csrf("/setup");
    for bad in ["", "forged", other.as_str()] {
        let a = post(bad);
        assert_eq!(a.status, 403, "token {bad:?}: {a:?}");
        assert!(
            a.alert().is_some_and(|m| m.contains("Nothing was changed")),
            "{a:?}"
        );
    }
    let mut huge = format!("csrf={token}&name=admin&password=");
    huge.push_str(&"a".repeat(100_000));
    let a = web.post_raw(
        "/setup/admin",
        "application/x-www-form-urlencoded",
        huge.into_bytes(),
    );
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.alert().is_some_and(|m| m.contains("64 KiB")), "{a:?}");
    // None of that made an administrator: setup is still at step 1.
    assert!(web.get("/setup").body.contains("Create the administrator"));

    // Missing fields, odd names, weak and mismatched passwords: the step says why.
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "user names are"),
        (
            &[
                ("name", "<script>"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
            "user names are",
        ),
        (
            &[
                ("name", "admin"),
                ("password", "password123"),
                ("again", "password123"),
            ],
            "too easy to guess",
        ),
        (
            &[("name", "admin"), ("password", "short"), ("again", "short")],
            "at least 10",
        ),
        (
            &[
                ("name", "admin"),
                ("password", PASSWORD),
                ("again", "something else"),
            ],
            "differ",
        ),
    ];
    for (fields, expect) in cases {
        let mut f = fields.to_vec();
        f.push(("csrf", &token));
        let a = web.post("/setup/admin", &f);
        assert_eq!(a.status, 422, "{fields:?}: {a:?}");
        let msg = a.alert().unwrap_or_default();
        assert!(msg.contains(expect), "{fields:?}: {msg:?}");
        assert!(!a.body.contains("<script>"), "unescaped: {a:?}");
    }
    assert!(web.get("/setup").body.contains("Create the administrator"));

    // Past step 1, another browser cannot go on without signing in, nor make a second
    // administrator.
    let a = web.post(
        "/setup/admin",
        &[
            ("csrf", &token),
            ("name", "admin"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert_eq!(a.status, 303, "{a:?}");
    let stranger = Web::new(&server);
    let t = stranger.csrf("/setup");
    assert!(stranger
        .get("/setup")
        .body
        .contains("Sign in to continue setup"));
    let a = stranger.post(
        "/setup/identity",
        &[("csrf", &t), ("name", "Mine now"), ("time_zone", "UTC")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    let a = stranger.post(
        "/setup/admin",
        &[
            ("csrf", &t),
            ("name", "eve"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ],
    );
    assert!(
        a.alert().is_some_and(|m| m.contains("created already")),
        "{a:?}"
    );

    // Step 2 with a name too long, a control character, or a made-up zone.
    let t = web.csrf("/setup");
    let long = "x".repeat(65);
    for (name, zone, expect) in [
        (long.as_str(), "UTC", "at most 64"),
        ("tab\there", "UTC", "letters, digits"),
        ("Hall", "../../etc/passwd", "time zone"),
        ("", "UTC", "give the appliance a name"),
    ] {
        let a = web.post(
            "/setup/identity",
            &[("csrf", &t), ("name", name), ("time_zone", zone)],
        );
        assert_eq!(a.status, 422, "{name:?} {zone:?}: {a:?}");
        assert!(a.alert().unwrap_or_default().contains(expect), "{a:?}");
    }
    drop(web);

    // Finish setup on a fresh server and try sign-in.
    let server = Server::start();
    let admin = Web::new(&server);
    admin.complete_setup(PASSWORD, "lobby");
    let guest = Web::new(&server);
    let t = guest.csrf("/login");
    let a = guest.post(
        "/login",
        &[
            ("csrf", &t),
            ("name", "admin"),
            ("password", "wrong password"),
        ],
    );
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(a.alert().as_deref(), Some("Wrong user name or password."));
    let a = guest.post(
        "/login",
        &[("csrf", &t), ("name", "nobody"), ("password", PASSWORD)],
    );
    assert_eq!(
        a.alert().as_deref(),
        Some("Wrong user name or password."),
        "{a:?}"
    );
    // A forged `next` does not send the browser elsewhere.
    let a = guest.post(
        "/login",
        &[
            ("csrf", &t),
            ("name", "admin"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ],
    );
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/admin")),
        "{a:?}"
    );
    // Password change: wrong current password, weak new one, mismatch: refused.
    let t = admin.csrf("/admin/account");
    for (current, new, again, expect) in [
        (
            "wrong",
            "another good passphrase here",
            "another good passphrase here",
            "current password is wrong",
        ),
        (PASSWORD, "password123", "password123", "too easy"),
        (
            PASSWORD,
            "another good passphrase here",
            "different",
            "differ",
        ),
    ] {
        let a = admin.post(
            "/admin/account/password",
            &[
                ("csrf", &t),
                ("current", current),
                ("new", new),
                ("again", again),
            ],
        );
        assert_eq!(a.status, 422, "{a:?}");
        assert!(a.alert().unwrap_or_default().contains(expect), "{a:?}");
    }
    assert_eq!(
        guest.get("/admin").status,
        200,
        "the other session lives on"
    );

    // The limit: 5 password checks at once from one address (setup's sign-in, the
    // three above and the wrong current password, so far), then 429 with the wait, even
    // for the right password.
    let limited = Web::new(&server);
    let t = limited.csrf("/login");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            limited
                .post(
                    "/login",
                    &[("csrf", &t), ("name", "admin"), ("password", "nope nope")],
                )
                .status,
        );
    }
    let a = limited.post(
        "/login",
        &[("csrf", &t), ("name", "admin"), ("password", PASSWORD)],
    );
    assert_eq!(a.status, 429, "after {statuses:?}: {a:?}");
    assert!(
        a.alert()
            .is_some_and(|m| m.contains("Too many password attempts")),
        "{a:?}"
    );

    // A session that timed out: the page says so. (Time is moved on in the database.)
    support::web::with_db(&server, |pool| async move {
        sqlx::query("UPDATE sessions SET last_seen = last_seen - 13 * 3600")
            .execute(&pool)
            .await
            .expect("age sessions");
    });
    let a = guest.get("/admin/audit");
    assert_eq!(
        a.location.as_deref(),
        Some("/login?next=%2Fadmin%2Faudit&expired=1"),
        "{a:?}"
    );
    let a = guest.get("/login?next=%2Fadmin%2Faudit&expired=1");
    assert!(
        a.alert().is_some_and(|m| m.contains("session has ended")),
        "{a:?}"
    );
    let a = guest.get("/api/session");
    assert_eq!(a.status, 401, "{a:?}");
}

#[test]
fn the_audit_log_records_who_did_what_from_where() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let t = web.csrf("/admin");
    let a = web.post("/logout", &[("csrf", &t)]);
    assert_eq!(a.location.as_deref(), Some("/login?signed_out=1"), "{a:?}");
    assert_eq!(web.get("/admin").status, 303, "signed out");
    let t = web.csrf("/login");
    let a = web.post(
        "/login",
        &[("csrf", &t), ("name", "admin"), ("password", PASSWORD)],
    );
    assert_eq!(a.location.as_deref(), Some("/admin"), "{a:?}");
    let log = web.get("/admin/audit").body;
    for action in [
        "setup.admin",
        "user.sign-in",
        "setup.identity",
        "setup.storage",
        "stream.add",
        "setup.finish",
        "user.sign-out",
    ] {
        assert!(
            log.contains(&format!("<td>{action}</td>")),
            "{action} missing: {log}"
        );
    }
    assert!(
        log.contains("<td>127.0.0.1</td>"),
        "client address missing: {log}"
    );
}

#[test]
fn factory_reset_asks_first_and_then_setup_runs_again() {
    let mut server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let dir = server.dir.path().to_path_buf();
    let reset = |answer: &str| {
        let mut child = std::process::Command::new(bin())
            .args([
                "--data-dir",
                dir.to_str().expect("utf-8"),
                "reset",
                "--factory",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reset");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answer.as_bytes())
            .expect("answer");
        child.wait_with_output().expect("reset")
    };
    // While the service runs: refused.
    let out = reset("reset\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it first"),
        "{out:?}"
    );
    server.stop();
    // Not confirmed: nothing erased.
    let out = reset("no\n");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Type \"reset\""),
        "{out:?}"
    );
    assert!(dir.join("streambox.db").exists());
    // Confirmed: the database is gone and setup starts again.
    let out = reset("reset\n");
    assert!(out.status.success(), "{out:?}");
    assert!(!dir.join("streambox.db").exists());
    server.restart();
    let web = Web::new(&server);
    let a = web.get("/admin");
    assert_eq!(a.location.as_deref(), Some("/setup"), "{a:?}");
    assert!(web.get("/setup").body.contains("Create the administrator"));
}

#[test]
fn cameras_are_tested_added_and_edited_from_the_admin_pages() {
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
    let t = web.csrf("/admin/streams");
    let url = cam.url(None);
    let post = |fields: &[(&str, &str)]| {
        let mut f = fields.to_vec();
        f.push(("csrf", &t));
        web.post("/admin/cameras", &f)
    };
    let result = |a: &support::web::Answer| a.by_id("test-result").unwrap_or_default();

    // Test connection: wrong password, nothing listening, then right; nothing is saved.
    let a = post(&[
        ("name", "gate"),
        ("url", &url),
        ("username", "viewer"),
        ("password", "wrong"),
        ("transport", "tcp"),
        ("action", "test"),
    ]);
    assert!(
        result(&a).starts_with("Could not connect") && result(&a).contains("401"),
        "{}",
        result(&a)
    );
    let a = post(&[
        ("name", "gate"),
        ("url", "rtsp://127.0.0.1:9/x"),
        ("transport", "tcp"),
        ("action", "test"),
    ]);
    assert!(
        result(&a).starts_with("Could not connect"),
        "{}",
        result(&a)
    );
    let a = post(&[
        ("name", "gate"),
        ("url", &url),
        ("username", "viewer"),
        ("password", "s3cret"),
        ("transport", "tcp"),
        ("action", "test"),
    ]);
    let ok = result(&a);
    assert!(
        ok.starts_with("Connected") && ok.contains("H.264 video and AAC audio"),
        "{ok}"
    );
    assert!(!a.body.contains("s3cret"), "the password was echoed");
    assert_eq!(
        web.get("/api/streams").body.matches("\"camera\"").count(),
        0
    );

    // Bad fields are refused with the reason.
    for (fields, expect) in [
        (
            vec![
                ("name", "gate"),
                ("url", "http://x/"),
                ("transport", "tcp"),
                ("action", "add"),
            ],
            "not rtsp",
        ),
        (
            vec![
                ("name", "gate"),
                ("url", url.as_str()),
                ("transport", "carrier-pigeon"),
                ("action", "add"),
            ],
            "invalid transport",
        ),
        (
            vec![
                ("name", "Gate!"),
                ("url", url.as_str()),
                ("transport", "tcp"),
                ("action", "add"),
            ],
            "invalid source name",
        ),
        (
            vec![
                ("name", "lobby"),
                ("url", url.as_str()),
                ("transport", "tcp"),
                ("action", "add"),
            ],
            "name of a stream",
        ),
    ] {
        let a = post(&fields);
        assert!(
            a.alert().unwrap_or_default().contains(expect),
            "{fields:?}: {:?}",
            a.alert()
        );
    }

    // Add it; it goes live, with its state on the stream page.
    let a = post(&[
        ("name", "gate"),
        ("url", &url),
        ("username", "viewer"),
        ("password", "s3cret"),
        ("transport", "tcp"),
        ("action", "add"),
    ]);
    assert!(result(&a).contains("added"), "{}", result(&a));
    server.wait_segments("gate", 1);
    let page = web.get("/admin/streams/gate");
    let shown = page.by_id("camera").unwrap_or_default();
    assert!(
        shown.contains("rtsp://viewer:***@127.0.0.1") && shown.contains(": live"),
        "{shown}"
    );

    // Edit with the password left blank: the stored one is kept (the test connects).
    let t = page.csrf();
    let edit = |action: &str, password: &str, transport: &str| {
        web.post(
            "/admin/streams/gate/camera",
            &[
                ("csrf", &t),
                ("url", &url),
                ("username", "viewer"),
                ("password", password),
                ("transport", transport),
                ("action", action),
            ],
        )
    };
    let a = edit("test", "", "tcp");
    assert!(result(&a).starts_with("Connected"), "{}", result(&a));
    let a = edit("add", "", "udp");
    assert!(result(&a).contains("saved"), "{}", result(&a));
    let v: serde_json::Value = serde_json::from_str(&web.get("/api/streams").body).expect("json");
    let gate = v
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == "gate")
        .expect("gate")
        .clone();
    assert_eq!(gate["kind"], "camera", "{v}");
    assert!(
        gate["source"]
            .as_str()
            .is_some_and(|s| s.contains("viewer:***@")),
        "{v}"
    );
    // A pushed stream has no camera settings to edit.
    let a = web.post(
        "/admin/streams/lobby/camera",
        &[
            ("csrf", &t),
            ("url", &url),
            ("transport", "tcp"),
            ("action", "add"),
        ],
    );
    assert!(
        a.alert().unwrap_or_default().contains("not a camera"),
        "{:?}",
        a.alert()
    );
}

#[test]
fn the_system_page_shows_version_host_figures_and_the_log() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let a = web.get("/admin/system");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.by_id("version").as_deref(),
        Some(concat!("streambox ", env!("CARGO_PKG_VERSION")))
    );
    for fact in ["cores busy", "available of", "the service uses", "free of"] {
        assert!(a.body.contains(fact), "{fact} missing: {}", a.body);
    }
    let log = a.by_id("log").unwrap_or_default();
    assert!(log.contains("streambox starting"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the page log");

    let v: serde_json::Value = serde_json::from_str(&web.get("/api/system").body).expect("JSON");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    for key in [
        "memory_total",
        "memory_service",
        "disk_total",
        "disk_free",
        "cpus",
    ] {
        assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key}: {v}");
    }
    assert!(v["cpu_busy_cores"].as_f64().is_some(), "{v}");
}

#[test]
fn the_hardware_page_and_api_list_what_hw_list_finds() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let api: serde_json::Value =
        serde_json::from_str(&web.get("/api/hardware").body).expect("JSON");
    // The CLI scans the same machine on its own: the service's inventory must agree.
    let out = std::process::Command::new(bin())
        .args(["hw", "list", "--json"])
        .output()
        .expect("streambox hw list --json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(api, cli);
    for key in ["video", "sound", "gpus"] {
        assert!(api[key].is_array(), "{key}: {api}");
    }
    let page = web.get("/admin/hardware");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body
            .contains(r#"href="/admin/hardware" aria-current="page""#),
        "{}",
        page.body
    );
    let videos = api["video"].as_array().map_or(0, Vec::len);
    assert_eq!(
        page.by_id("no-video").is_some(),
        videos == 0,
        "{}",
        page.body
    );
    for d in api["video"].as_array().into_iter().flatten() {
        let id = d["id"].as_str().unwrap_or_default();
        assert!(page.body.contains(id), "{id} missing from the page");
    }
    let gpus = api["gpus"].as_array().map_or(0, Vec::len);
    assert_eq!(page.by_id("no-gpu").is_some(), gpus == 0, "{}", page.body);

    // A capture source for a device that is not on the box is refused everywhere, with
    // the devices that are (the QEMU boot test adds a real one: vivid).
    let wanted = "usb-Nosuch_Cam_0-video-index0";
    let t = web.csrf("/admin/hardware");
    let a = web.api(
        "POST",
        "/api/captures",
        None,
        Some(&t),
        Some(&serde_json::json!({"name": "stage", "device": wanted})),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.body
            .contains(&format!(r#"No capture device \"{wanted}\" is on this box"#)),
        "{a:?}"
    );
    let a = web.post(
        "/admin/hardware/capture",
        &[("csrf", &t), ("name", "stage"), ("device", wanted)],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("is on this box"), "{}", a.body);
    let a = web.api(
        "PUT",
        "/api/streams/lobby/capture",
        None,
        Some(&t),
        Some(&serde_json::json!({"device": wanted, "fps": "fast"})),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.body.contains("Frame rate"), "{a:?}");
    let out = server.cli(&["source", "add", "stage", "--device", wanted]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is on this box"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams = web.get("/api/streams").body;
    assert!(!streams.contains("stage"), "{streams}");
}
