//! End-to-end: the setup wizard and the admin pages in headless Chromium against the
//! real binary, from a fresh data directory to a stream playing in the viewer portal,
//! entirely from the browser (with ffmpeg as the publisher, using the server URL and
//! key the page showed). Screenshots of every page visited are kept as test artifacts.

mod support;

use support::*;

fn phase(server: &Server, name: &str, shots: &str) -> serde_json::Value {
    let base = server.url("");
    let r = browser_result(in_browser("admin.mjs", &[&base, name, shots, "lobby"]));
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{name}: {r}");
    r
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
    let samples = r["samples"].as_array().expect("samples");
    let last = samples.last().expect("a sample");
    let first_t = samples[0]["t"].as_f64().unwrap_or(0.0);
    assert!(
        num(&last["t"]) > first_t + 5.0,
        "playback did not advance: {r}"
    );
    assert_eq!(
        (num(&last["width"]), num(&last["height"])),
        (1280.0, 720.0),
        "{r}"
    );
    assert!(samples.iter().all(|s| s["error"].is_null()), "{r}");
    let latency = num(&last["latency"]);
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
