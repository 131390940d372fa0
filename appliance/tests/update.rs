//! End-to-end: the update routes of the real binary off the appliance (no RAUC, no A/B
//! slots): the status answers, an upload and a reboot are refused with the reason and
//! change nothing, and the routes want an administrator and the CSRF token. The updates
//! themselves (RAUC installing to the other slot, the reboot, the rollback) are tested on
//! the appliance, in image/test.sh.

mod support;

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
