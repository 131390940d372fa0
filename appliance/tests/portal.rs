//! End-to-end: the LAN viewer portal in headless Chromium. The real binary, a real ffmpeg
//! publisher, and the pages as a viewer's browser renders them: the list of live streams
//! with thumbnails, and a stream's page playing it with hls.js, saying when it goes
//! offline and playing again when it comes back. Screenshots of each page are kept as
//! test artifacts.

mod support;

use std::time::{Duration, SystemTime};
use support::*;

#[test]
fn the_portal_lists_live_streams_and_plays_one_through_offline_and_back() {
    let server = Server::start();
    let key = server.add_stream("lobby");
    server.add_stream("quiet"); // never published: not listed
    let url = server.rtmp_url(&format!("lobby?key={key}"));
    // The test clip as it is: 1280x720 H.264 with 5.1 AAC.
    let ff = publish(&bbb(), -1, &url);
    server.wait_segments("lobby", 2);

    // Pages that exist answer; others say so.
    let (status, headers, body) = get(&server.url("/watch/nosuch"));
    assert_eq!(status, 404);
    assert!(headers["content-type"]
        .to_str()
        .is_ok_and(|v| v.starts_with("text/html")));
    assert!(String::from_utf8_lossy(&body).contains("no stream named “nosuch”"));
    let (status, _, body) = get(&server.url("/watch/%3Cscript%3E"));
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("&lt;script&gt;"));
    assert_eq!(get(&server.url("/watch/..%2Fetc")).0, 404);
    assert_eq!(get(&server.url("/assets/nosuch.js")).0, 404);
    let (status, headers, _) = get(&server.url("/assets/vendor/hls.min.js"));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript");
    let (status, _, body) = get(&server.url("/assets/vendor/hls.js.LICENSE"));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("Apache License"));

    // The browser: the list, then the watch page for 45 s. The publisher stops 15 s into
    // that and comes back 10 s later.
    let shots = artifacts("portal");
    let shots_arg = shots.to_str().expect("utf-8 path").to_string();
    let base = server.url("");
    let browser = in_browser("portal.mjs", &[&base, "lobby", "45", &shots_arg]);
    // The list and the thumbnail take a moment; time the outage from the watch page.
    std::thread::sleep(Duration::from_secs(18));
    let stopped = epoch_ms(SystemTime::now());
    drop(ff);
    std::thread::sleep(Duration::from_secs(10));
    let restarted = epoch_ms(SystemTime::now());
    let _ff = publish(&bbb(), -1, &url);
    let r = browser_result(browser);
    eprintln!("portal: {r}");
    eprintln!("screenshots in {}", shots.display());

    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r}");
    assert_eq!(r["cards"], serde_json::json!(["lobby"]), "{r}");
    assert_eq!(num(&r["thumbWidth"]), 480.0, "{r}");
    for shot in ["portal.png", "watch.png", "watch-end.png"] {
        let len = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
    use serde_json::Value;
    let samples: Vec<&Value> = r["samples"].as_array().expect("samples").iter().collect();
    let phase = |from: f64, to: f64| -> Vec<&Value> {
        samples
            .iter()
            .copied()
            .filter(|s| (from..to).contains(&num(&s["at"])))
            .collect()
    };
    let (before, outage, after) = (
        phase(0.0, stopped),
        phase(stopped, restarted),
        phase(restarted, f64::MAX),
    );
    let live = |ss: &[&Value]| -> Vec<f64> {
        ss.iter()
            .filter(|s| s["state"] == "Live")
            .map(|s| num(&s["t"]))
            .collect()
    };
    // Media seconds played over samples.
    let played = |ts: &[f64]| {
        ts.iter().copied().fold(f64::MIN, f64::max) - ts.first().copied().unwrap_or(0.0)
    };

    // Live: it plays, at the source's size, with a live latency hls.js reports.
    let live_before = live(&before);
    assert!(
        live_before.len() >= 10,
        "hardly live before the outage: {r}"
    );
    assert!(played(&live_before) > 5.0, "{r}");
    let last = before
        .iter()
        .rev()
        .find(|s| s["state"] == "Live")
        .expect("a live sample");
    assert_eq!(
        (num(&last["width"]), num(&last["height"])),
        (1280.0, 720.0),
        "{r}"
    );
    let latency = num(&last["latency"]);
    eprintln!("hls.js live latency on the watch page: {latency:.2} s");
    assert!(latency > 0.0 && latency < 10.0, "{r}");
    // The publisher left: the page says so within a few seconds.
    assert!(
        outage.iter().any(|s| s["state"]
            .as_str()
            .is_some_and(|t| t.starts_with("Offline"))),
        "never showed offline: {r}"
    );
    // It came back: the page plays again by itself.
    let live_after = live(&after);
    assert!(live_after.len() >= 5, "never live again: {r}");
    assert!(played(&live_after) > 2.0, "{r}");
}
