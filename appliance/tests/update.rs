//! End-to-end: the update routes of the real binary off the appliance (no RAUC, no A/B
//! slots): the status answers, an upload and a reboot are refused with the reason and
//! change nothing, and the routes want an administrator and the CSRF token. The updates
//! themselves (RAUC installing to the other slot, the reboot, the rollback) are tested on
//! the appliance, in image/test.sh.

mod support;

use serde_json::json;
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn off_the_appliance_updates_and_reboots_are_refused_with_the_reason() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "main");
    let token = web.make_token("updates");
    let api = Web::new(&server);

    let a = api.api("GET", "/api/system/update", Some(&token), None, None);
    assert_eq!(a.status, 200, "{a:?}");
    let st = a.json();
    assert_eq!(st["release"], serde_json::Value::Null, "{st}");
    assert_eq!(st["slot"], serde_json::Value::Null, "{st}");
    assert_eq!(st["progress"]["state"], "idle", "{st}");
    assert_eq!(st["pending"], serde_json::Value::Null, "{st}");

    // An upload: no RAUC here, refused before anything is stored.
    let a = api.post_raw_with_bearer(
        "/api/system/update",
        "application/octet-stream",
        vec![0u8; 64 * 1024],
        &token,
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.error().contains("RAUC"), "{}", a.error());
    assert!(
        !server.dir.path().join("updates/bundle.raucb").exists()
            && !server
                .dir
                .path()
                .join("updates/bundle.raucb.partial")
                .exists(),
        "nothing stored"
    );
    let st = api
        .api("GET", "/api/system/update", Some(&token), None, None)
        .json();
    assert_eq!(st["progress"]["state"], "failed", "{st}");
    assert!(
        st["progress"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RAUC")),
        "{st}"
    );

    // A reboot: this machine is not the appliance's image.
    let a = api.post_raw_with_bearer(
        "/api/system/reboot",
        "application/json",
        b"{}".to_vec(),
        &token,
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.error().contains("not the appliance"), "{}", a.error());
    let t = web.csrf("/admin/system");
    let a = web.post("/admin/system/reboot", &[("csrf", &t)]);
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert().is_some_and(|e| e.contains("not the appliance")),
        "{a:?}"
    );
    assert!(server.log().contains("rebooting, as asked"));
    // A reboot at a time: a bad or past time is refused before anything is asked of
    // logind; a good one is refused off the appliance, as a cancel is.
    let later = |secs: i64| {
        time::OffsetDateTime::now_utc()
            .saturating_add(time::Duration::seconds(secs))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    for (body, status, says) in [
        (json!({"at": "tonight"}), 422, "RFC 3339"),
        (json!({"at": later(-60)}), 422, "has passed"),
        (json!({"at": later(8 * 86_400)}), 422, "a week ahead"),
        (json!({"when": later(60)}), 400, "unknown field"),
        (json!({"at": later(3600)}), 503, "not the appliance"),
    ] {
        let a = api.post_raw_with_bearer(
            "/api/system/reboot",
            "application/json",
            body.to_string().into_bytes(),
            &token,
        );
        assert_eq!(a.status, status, "{body}: {a:?}");
        assert!(a.error().contains(says), "{body}: {}", a.error());
    }
    let a = api.api("DELETE", "/api/system/reboot", Some(&token), None, None);
    assert_eq!(a.status, 503, "{a:?}");
    let a = web.post(
        "/admin/system/reboot",
        &[("csrf", &t), ("at", "2026-13-40T25:00")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert().is_some_and(|e| e.contains("not a date and time")),
        "{a:?}"
    );

    // The page: what runs, and the upload form, whose token travels in its URL.
    let page = web.get("/admin/system");
    assert_eq!(
        page.by_id("release").as_deref(),
        Some("not an appliance image: updates come with the operating system's packages")
    );
    assert!(
        page.body.contains("action=\"/admin/system/update?csrf="),
        "{}",
        page.body
    );
    // The page's form, as a browser sends it: refused the same way.
    let a = web.upload(
        "/admin/system/update",
        &t,
        "bundle",
        "x.raucb",
        b"not a bundle",
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert()
            .is_some_and(|e| e.contains("Nothing was installed") && e.contains("RAUC")),
        "{a:?}"
    );
    // Without the token in the URL (a streamed body is not read for it): refused first.
    let a = web.upload_without_query_token("/admin/system/update", &t, "x.raucb", b"x");
    assert_eq!(a.status, 403, "{a:?}");
    // Anonymous: nothing.
    let a = Web::new(&server).post_raw(
        "/api/system/update",
        "application/octet-stream",
        b"x".to_vec(),
    );
    assert_eq!(a.status, 401, "{a:?}");
}

#[test]
fn bundles_on_a_usb_stick_are_listed_and_only_they_can_be_installed_from() {
    let media = tempfile::tempdir().expect("tempdir");
    let bundle = media.path().join("usb-sdz1/streambox-9.9.9-amd64.raucb");
    std::fs::create_dir_all(bundle.parent().expect("parent")).expect("mkdir");
    std::fs::write(&bundle, vec![7u8; 3 * 1024 * 1024]).expect("write");
    std::fs::write(media.path().join("usb-sdz1/readme.txt"), b"not a bundle").expect("write");
    let server = Server::with(Settings {
        env: vec![(
            "STREAMBOX_REMOVABLE_MEDIA_DIR",
            media.path().display().to_string(),
        )],
        ..Settings::default()
    });
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "main");
    let token = web.make_token("usb");
    let api = Web::new(&server);

    let st = api
        .api("GET", "/api/system/update", Some(&token), None, None)
        .json();
    assert_eq!(
        st["media"],
        json!([{"file": "usb-sdz1/streambox-9.9.9-amd64.raucb", "bytes": 3 * 1024 * 1024}]),
        "{st}"
    );
    let page = web.get("/admin/system");
    let listed = page
        .body
        .split("id=\"media-bundles\"")
        .nth(1)
        .and_then(|l| l.split("</ul>").next())
        .unwrap_or_default();
    assert!(
        listed.contains("<code>usb-sdz1/streambox-9.9.9-amd64.raucb</code>")
            && !listed.contains("readme"),
        "{}",
        page.body
    );
    // Only what is listed can be named.
    for file in [
        "usb-sdz1/readme.txt",
        "usb-sdz1/../../etc/passwd",
        "/etc/passwd",
    ] {
        let a = api.api(
            "POST",
            "/api/system/update/media",
            Some(&token),
            None,
            Some(&json!({ "file": file })),
        );
        assert_eq!(a.status, 404, "{file}: {a:?}");
    }
    // The listed bundle: off the appliance, refused as an upload is, nothing stored, the
    // stick untouched.
    let a = api.api(
        "POST",
        "/api/system/update/media",
        Some(&token),
        None,
        Some(&json!({"file": "usb-sdz1/streambox-9.9.9-amd64.raucb"})),
    );
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.error().contains("RAUC"), "{}", a.error());
    assert!(!server.dir.path().join("updates/bundle.raucb").exists());
    assert_eq!(
        std::fs::metadata(&bundle).expect("still there").len(),
        3 * 1024 * 1024
    );
}
