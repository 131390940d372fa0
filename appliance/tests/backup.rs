//! End-to-end: configuration backups with the real binary. A backup made on one box (from
//! the System page, the API and the CLI) restored into a freshly started second one
//! through the setup wizard's first step: the service restarts by itself, the old
//! administrator signs in, ffmpeg publishes with the old stream key, the camera is there.
//! A restore on the same box keeps its recordings. Damaged, altered, newer and foreign
//! archives are refused with the reason and change nothing. A database that a newer
//! version migrated goes back to the copy kept before that update.

mod support;

use std::io::Read;
use std::time::Duration;
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A backup made on the System page; checks the download's headers.
fn backup_from_page(web: &Web) -> Vec<u8> {
    let t = web.csrf("/admin/system");
    let (status, headers, bytes) = web.post_for_file("/admin/system/backup", &[("csrf", &t)], None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let disposition = headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"streambox-test-hall-")
            && disposition.ends_with(".tar.zst\""),
        "{disposition}"
    );
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert!(bytes.starts_with(&ZSTD_MAGIC), "a zstd file");
    bytes
}

/// The members of a backup: (name, bytes), in order, read with the tar and zstd crates.
fn members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(zstd::Decoder::new(archive).expect("zstd"));
    tar.entries()
        .expect("tar")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").display().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).expect("read");
            (name, bytes)
        })
        .collect()
}

/// An archive of `members`, as a backup is packed.
fn repack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).expect("zstd"));
    for (name, bytes) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, bytes.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("zstd")
}

fn sign_in(server: &Server) -> Web {
    let web = Web::new(server);
    let t = web.csrf("/login");
    let a = web.post(
        "/login",
        &[
            ("csrf", &t),
            ("name", "admin"),
            ("password", PASSWORD),
            ("next", "/admin"),
        ],
    );
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/admin")),
        "{a:?}"
    );
    web
}

/// Waits for the service to stop after a restore was accepted: exit status 75, so that
/// its supervisor starts it again; then starts it again as systemd would.
fn restarts_after_restore(server: &mut Server) {
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the service stops by itself after a restore");
    assert_eq!(
        status.code(),
        Some(75),
        "exit status asks to be started again"
    );
    server.restart();
}

#[test]
fn a_backup_carries_the_configuration_to_a_freshly_flashed_box() {
    let old = Server::start();
    let web = Web::new(&old);
    let key = web.complete_setup(PASSWORD, "main");
    let out = old.cli(&["source", "add", "door", "rtsp://cam:secret@192.0.2.10/live"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page_backup = backup_from_page(&web);

    // What is in it: the manifest first, each member's checksum, no recordings' index
    // and no sessions.
    let m = members(&page_backup);
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["manifest.json", "streambox.db"],
        "no TLS on this server"
    );
    let manifest: serde_json::Value = serde_json::from_slice(&m[0].1).expect("manifest");
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["appliance"], "Test hall");
    assert_eq!(manifest["files"][0]["bytes"], m[1].1.len());

    // The same from the API (with a token) and the CLI, while the service runs.
    let token = web.make_token("backups");
    let (status, _, api_backup) =
        Web::new(&old).post_for_file("/api/system/backup", &[], Some(&token));
    assert_eq!(status, 200);
    assert!(api_backup.starts_with(&ZSTD_MAGIC));
    let cli_file = old.dir.path().join("cli-backup.tar.zst");
    let out = old.cli(&[
        "backup",
        "create",
        "--out",
        cli_file.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&cli_file)
        .expect("written")
        .starts_with(&ZSTD_MAGIC));
    // Anonymous, nothing.
    let (status, _, _) = Web::new(&old).post_for_file("/api/system/backup", &[], None);
    assert_eq!(status, 401);

    // A freshly flashed box: the wizard's first step offers the restore.
    let mut new = Server::start();
    let fresh = Web::new(&new);
    let first = fresh.get("/setup");
    assert!(
        first.body.contains("action=\"/setup/restore?csrf="),
        "{}",
        first.body
    );
    let a = fresh.upload(
        "/setup/restore",
        &first.csrf(),
        "backup",
        "b.tar.zst",
        &page_backup,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let notice = a.by_id("restored").expect("the restore is confirmed");
    assert!(
        notice.contains("Test hall")
            && notice.contains("1 stream(s)")
            && notice.contains("1 camera(s)"),
        "{notice}"
    );
    restarts_after_restore(&mut new);
    assert!(new.log().contains("configuration restored from a backup"));

    // The old administrator signs in; setup is over; the stream's key publishes.
    let admin = sign_in(&new);
    assert_eq!(admin.get("/setup").location.as_deref(), Some("/admin"));
    let publisher = publish(&bbb(), 1, &new.rtmp_url(&format!("main?key={key}")));
    new.wait_segments("main", 1);
    drop(publisher);
    // The camera, with its credentials, is there.
    let out = new.cli(&["source", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("door") && listed.contains("192.0.2.10"),
        "{listed}"
    );
    // The API token made after that backup is not in it; the audit log says who restored.
    let a = Web::new(&new).api("GET", "/api/audit?limit=1", Some(&token), None, None);
    assert_eq!(a.status, 401, "{a:?}");
    let a = admin.api("GET", "/api/audit?limit=5", None, None, None);
    assert_eq!(a.status, 200, "{a:?}");
    let entries = a.json();
    let restored = entries
        .as_array()
        .and_then(|e| e.iter().find(|e| e["action"] == "backup.restore"))
        .unwrap_or_else(|| panic!("no restore in {entries}"));
    assert_eq!(restored["actor"], "setup", "{restored}");
    assert_eq!(restored["client"], "127.0.0.1", "{restored}");
    // A wrong key still does not publish.
    let mut wrong = publish(&bbb(), 0, &new.rtmp_url("main?key=wrong"));
    assert!(
        wrong
            .wait(Duration::from_secs(20))
            .is_some_and(|s| !s.success()),
        "a wrong key is refused"
    );

    // Once set up, the wizard's restore is closed, even to the administrator.
    let t = admin.csrf("/admin/system");
    let a = admin.upload("/setup/restore", &t, "backup", "b.tar.zst", &api_backup);
    assert!(a.by_id("restored").is_none() && a.status != 200, "{a:?}");
    assert!(
        new.wait_exit(Duration::from_secs(2)).is_none(),
        "no restart"
    );
}

#[test]
fn a_restore_on_the_same_box_keeps_its_recordings() {
    let mut server = Server::start();
    let web = Web::new(&server);
    let key = web.complete_setup(PASSWORD, "main");
    let out = server.cli(&["stream", "set", "main", "--record", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = backup_from_page(&web);
    // After the backup: a recording, and a stream the backup does not have.
    let publisher = publish(&bbb(), 2, &server.rtmp_url(&format!("main?key={key}")));
    server.wait_segments("main", 2);
    drop(publisher);
    server.add_stream("later");
    let recordings_dir = server.dir.path().join("recordings");
    let recordings = || {
        let mut n = 0;
        for e in walk(&recordings_dir) {
            if e.extension().is_some_and(|x| x == "m4s") {
                n += 1;
            }
        }
        n
    };
    let recorded = eventually(30, "segments recorded", || {
        let n = recordings();
        (n >= 2).then_some(n)
    });

    assert!(
        server.wait_exit(Duration::from_millis(10)).is_none(),
        "{}",
        server.log()
    );
    let t = web.csrf("/admin/system");
    let a = web.upload("/admin/system/restore", &t, "backup", "b.tar.zst", &backup);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.alert().is_some_and(|n| n.contains("restarts")), "{a:?}");
    restarts_after_restore(&mut server);

    // The configuration is the backup's, the recordings are all still there and indexed.
    let out = server.cli(&["stream", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("main") && !listed.contains("later"),
        "{listed}"
    );
    assert!(recordings() >= recorded, "no recording lost");
    let web = sign_in(&server);
    let json = web.get("/dvr/main/recordings.json").body;
    assert!(
        json.contains("\"ranges\":[{"),
        "the recordings are indexed: {json}"
    );
    // The replaced database is kept.
    assert!(server
        .dir
        .path()
        .join("before-restore/streambox.db")
        .exists());
}

#[test]
fn damaged_altered_newer_and_foreign_backups_are_refused_and_change_nothing() {
    let mut server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "main");
    let token = web.make_token("restores");
    let good = backup_from_page(&web);
    let api = Web::new(&server);
    let restore = |body: Vec<u8>| {
        api.post_raw_with_bearer("/api/system/restore", "application/zstd", body, &token)
    };
    let m = members(&good);
    let mut altered_db = m.clone();
    let db = &mut altered_db[1].1;
    let at = db.len() / 2;
    db[at] ^= 0x55;
    let mut newer = m.clone();
    let mut manifest: serde_json::Value = serde_json::from_slice(&newer[0].1).expect("json");
    manifest["schema"] = serde_json::json!(manifest["schema"].as_i64().expect("schema") + 1);
    manifest["version"] = serde_json::json!("9.0.0");
    newer[0].1 = serde_json::to_vec(&manifest).expect("json");
    let mut later_format = m.clone();
    manifest["format"] = serde_json::json!(2);
    later_format[0].1 = serde_json::to_vec(&manifest).expect("json");
    let mut extra = m.clone();
    extra.push(("etc/passwd".into(), b"root::0:0::/:/bin/sh\n".to_vec()));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("cut short", good[..good.len() / 2].to_vec(), 422, "damaged"),
        (
            "a changed byte in the database",
            repack(&altered_db),
            422,
            "SHA-256",
        ),
        (
            "a member that is not in the manifest",
            repack(&extra),
            422,
            "not in its manifest",
        ),
        (
            "a newer version's",
            repack(&newer),
            422,
            "newer streambox (9.0.0",
        ),
        ("a later format", repack(&later_format), 422, "format 2"),
        (
            "not a backup at all",
            b"PK\x03\x04not a zip either".to_vec(),
            422,
            "not a streambox backup",
        ),
        ("empty", Vec::new(), 422, "not a streambox backup"),
    ];
    for (what, body, status, says) in cases {
        let a = restore(body);
        assert_eq!(a.status, status, "{what}: {a:?}");
        assert!(a.error().contains(says), "{what}: {}", a.error());
    }
    // A database that is sound SQLite but not this version's schema.
    let mut foreign = m.clone();
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("streambox.db");
        std::fs::write(&path, &foreign[1].1).expect("write");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open");
            sqlx::query(
                "CREATE TRIGGER sneaky AFTER INSERT ON sessions BEGIN DELETE FROM users; END",
            )
            .execute(&pool)
            .await
            .expect("trigger");
            pool.close().await;
        });
        foreign[1].1 = std::fs::read(&path).expect("read");
        let mut manifest: serde_json::Value = serde_json::from_slice(&foreign[0].1).expect("json");
        manifest["files"][0]["bytes"] = serde_json::json!(foreign[1].1.len());
        manifest["files"][0]["sha256"] = serde_json::json!(sha256_hex(&foreign[1].1));
        foreign[0].1 = serde_json::to_vec(&manifest).expect("json");
    }
    let a = restore(repack(&foreign));
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.error().contains("trigger sneaky"), "{}", a.error());
    // Without a token, nothing.
    let a = Web::new(&server).post_raw("/api/system/restore", "application/zstd", good.clone());
    assert_eq!(a.status, 401);
    // None of it staged anything, or stopped the service.
    assert!(!server.dir.path().join("restore").exists());
    assert!(!server.dir.path().join("restore.partial").exists());
    assert!(
        server.wait_exit(Duration::from_secs(1)).is_none(),
        "the service runs on"
    );
    let a = Web::new(&server).api("GET", "/api/streams", Some(&token), None, None);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json().as_array().map(Vec::len), Some(1), "{a:?}");
    // The page shows the refusal.
    let t = web.csrf("/admin/system");
    let a = web.upload(
        "/admin/system/restore",
        &t,
        "backup",
        "x.tar.zst",
        b"nonsense",
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert().is_some_and(|e| e.contains("Nothing was changed")),
        "{a:?}"
    );
    // A form without its CSRF token is refused before anything is read.
    let a = web.upload(
        "/admin/system/restore",
        "forged",
        "backup",
        "x.tar.zst",
        &good,
    );
    assert_eq!(a.status, 403, "{a:?}");
    // The good one is still accepted, through the API: 202 and a restart.
    let a = restore(good);
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.json()["restored"]["streams"], 1);
    restarts_after_restore(&mut server);
    sign_in(&server);
}

#[test]
fn a_database_a_newer_version_migrated_goes_back_to_the_copy_kept_before() {
    let mut server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "main");
    let out = server.cli(&["stream", "set", "main", "--record", "on"]);
    assert!(out.status.success());
    server.stop();
    // What an update does before it migrates: the copy, at this version's schema.
    let dir = server.dir.path().to_path_buf();
    let schema = support::web::with_db(&server, |pool| async move {
        let (v,): (i64,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .expect("schema");
        std::fs::create_dir_all(dir.join("schema-copies")).expect("dir");
        sqlx::query("VACUUM INTO ?")
            .bind(
                dir.join(format!("schema-copies/schema-{v}.db"))
                    .display()
                    .to_string(),
            )
            .execute(&pool)
            .await
            .expect("copy");
        v
    });
    // The newer version runs: a stream is added and recorded, and its migration applied.
    server.restart();
    let key = server.add_stream("newer");
    let out = server.cli(&["stream", "set", "newer", "--record", "on"]);
    assert!(out.status.success());
    let publisher = publish(&bbb(), 1, &server.rtmp_url(&format!("newer?key={key}")));
    server.wait_segments("newer", 1);
    drop(publisher);
    std::thread::sleep(Duration::from_secs(3));
    server.stop();
    let rows_before: i64 = support::web::with_db(&server, |pool| async move {
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, 'from the future', 1, x'00', 0)")
            .bind(schema + 1)
            .execute(&pool)
            .await
            .expect("a newer migration");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dvr_segments")
            .fetch_one(&pool)
            .await
            .expect("count");
        n
    });
    assert!(rows_before > 0, "the newer version recorded");

    // The CLI (which does not hold the data directory) leaves it as it is.
    let out = server.cli(&["stream", "list"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("start the service"),
        "{said}"
    );
    // This version's service starts on it: back to the copy, with the recordings' index.
    server.restart();
    let log = server.wait_log(
        "returned to the copy kept before that update",
        Duration::from_secs(10),
    );
    assert!(log.contains("recordings="), "{log}");
    let out = server.cli(&["stream", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("main") && !listed.contains("newer"),
        "{listed}"
    );
    let rows_after: i64 = support::web::with_db(&server, |pool| async move {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dvr_segments")
            .fetch_one(&pool)
            .await
            .expect("count");
        n
    });
    assert_eq!(rows_after, rows_before, "the recordings' index came along");
    assert!(server
        .dir
        .path()
        .join(format!("schema-copies/newer-{}.db", schema + 1))
        .exists());
    sign_in(&server);

    // Without a copy, nothing opens the database, and says why.
    server.stop();
    support::web::with_db(&server, |pool| async move {
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, 'from the future', 1, x'00', 0)")
            .bind(schema + 2)
            .execute(&pool)
            .await
            .expect("a newer migration");
    });
    let out = server.cli(&["stream", "list"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("made by a newer streambox") && said.contains("no copy"),
        "{said}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Polls `f` every 200 ms for up to `secs` seconds until it returns `Some`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
