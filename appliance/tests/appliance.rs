//! What the appliance image sets up around the service, tested on the real binary: a
//! data partition that could not be used this boot (`data_fault_file`) is said on every
//! administrator's page, in the API and on the console, and viewers' pages stay as
//! they are.

mod support;

use support::web::Web;
use support::*;

#[test]
fn a_data_partition_fault_is_shown_on_admin_pages_the_api_and_the_console() {
    let fault_dir = tempfile::tempdir().expect("tempdir");
    let fault = fault_dir.path().join("data-fault");
    // What streambox-data.service writes, with a stray control character.
    std::fs::write(
        &fault,
        "The data partition failed its check\x1b[31m (e2fsck exit 4) and was left as it is.\n",
    )
    .expect("write");
    let server = Server::with(Settings {
        env: vec![("STREAMBOX_DATA_FAULT_FILE", fault.display().to_string())],
        ..Settings::default()
    });
    let web = Web::new(&server);
    let setup = web.get("/setup");
    let shown = setup
        .by_id("system-fault")
        .expect("the wizard shows the fault");
    assert!(
        shown.contains("The data partition could not be used: The data partition failed its check [31m (e2fsck exit 4)"),
        "{shown}"
    );
    assert!(
        !setup.body.contains('\x1b'),
        "a control character reached the page"
    );
    let portal = web.get("/");
    assert_eq!(portal.status, 200);
    assert!(
        portal.by_id("system-fault").is_none(),
        "viewers are not told"
    );

    let token = {
        web.complete_setup("correct horse battery staple", "hall");
        web.make_token("ops")
    };
    let a = web.get("/admin");
    assert!(a.by_id("system-fault").is_some(), "the dashboard shows it");
    let a = web.api_with_authorization("GET", "/api/system", &format!("Bearer {token}"));
    assert_eq!(a.status, 200, "{a:?}");
    let fault_json = a.json()["data_fault"].as_str().map(str::to_string);
    assert_eq!(
        fault_json.as_deref(),
        Some("The data partition failed its check [31m (e2fsck exit 4) and was left as it is.")
    );

    let out = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(server.dir.path())
        .args(["console", "--once"])
        .env("STREAMBOX_DATA_FAULT_FILE", &fault)
        .output()
        .expect("streambox console");
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(
        banner.contains("!! THE DATA PARTITION COULD NOT BE USED"),
        "{banner}"
    );

    // Without the file, nothing is said.
    std::fs::remove_file(&fault).expect("remove");
    let a = web.api_with_authorization("GET", "/api/system", &format!("Bearer {token}"));
    assert!(a.json()["data_fault"].is_null(), "{a:?}");
}
