//! End-to-end: whatever a stream owns goes when the stream goes. A hundred streams are
//! made, published to (a real RTMP session, which opens each stream's hub, packager,
//! recorder and rendition supervisor) and deleted, and the server is left with no live
//! entry, no thread, no metrics series and no memory more than it had.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::rtmp::{flv_tags, Client, FlvTag};
use support::web::Web;
use support::*;

/// The names of process `pid`'s threads other than tokio's: its workers, and its
/// blocking pool, whose idle threads leave on tokio's own clock (after 10 s). What a
/// stream starts (rungs, decoders, thumbnails) has a name of its own.
fn own_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's /proc entry")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.starts_with("tokio-"))
        .collect();
    names.sort();
    names
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the server's status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The value of the un-labelled metric `name`.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Makes stream `name`, publishes its first tags over RTMP until the stream has opened
/// (live), hangs up, and deletes it through the API.
fn cycle(server: &Server, token: &str, name: &str, tags: &[FlvTag]) {
    let bot = Web::new(server);
    let a = bot.api(
        "POST",
        "/api/streams",
        Some(token),
        None,
        Some(&json!({ "name": name })),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let key = a.json()["key"].as_str().expect("key").to_string();
    let mut c = Client::connect(server.rtmp);
    c.publish(&format!("{name}?key={key}"));
    for t in tags {
        match t.kind {
            8 => c.audio(t.body.clone(), t.ms),
            _ => c.video(t.body.clone(), t.ms),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = bot.api(
            "GET",
            &format!("/api/streams/{name}"),
            Some(token),
            None,
            None,
        );
        if a.json()["live"] == json!(true) {
            break;
        }
        assert!(Instant::now() < deadline, "{name} never went live: {a:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    let a = bot.api(
        "DELETE",
        &format!("/api/streams/{name}"),
        Some(token),
        None,
        None,
    );
    assert_eq!(a.status, 204, "{a:?}");
}

#[test]
fn deleting_a_hundred_streams_leaves_nothing_behind() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup("correct horse battery staple", "lobby");
    let token = web.make_token("lifecycle");
    // The sequence headers and the first keyframe's second of a real encode.
    let all = flv_tags(&bbb_bframes_as("640x360", "flv"));
    let tags: Vec<FlvTag> = all.into_iter().filter(|t| t.ms < 1000).collect();
    assert!(tags.iter().any(|t| t.kind == 9), "no video tags");

    // A first cycle grows what the service keeps for any stream (thread pools, caches);
    // then the measure is taken once its blocking threads have gone idle.
    cycle(&server, &token, "warmup", &tags);
    let settle = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    settle("the warm-up stream was not closed", &|| {
        gauge(&server.metrics(), "streambox_live_streams") == Some(0.0)
    });
    let (threads_before, rss_before) = (own_threads(server.pid()), rss_kib(server.pid()));
    let tasks_before = gauge(&server.metrics(), "streambox_tasks").expect("the tasks gauge");

    let t0 = Instant::now();
    for i in 0..100 {
        cycle(&server, &token, &format!("s{i}"), &tags);
    }
    eprintln!(
        "100 streams made, published and deleted in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    settle("live entries are left", &|| {
        gauge(&server.metrics(), "streambox_live_streams") == Some(0.0)
    });
    let metrics = server.metrics();
    let left: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("stream=\"s") || l.contains("stream=\"warmup"))
        .collect();
    assert!(left.is_empty(), "series of deleted streams: {left:?}");
    settle("threads are left", &|| {
        own_threads(server.pid()).len() <= threads_before.len()
    });
    // A few tasks come and go with the test's own requests; a hundred streams' worth
    // would not.
    settle("tasks are left", &|| {
        gauge(&server.metrics(), "streambox_tasks").is_some_and(|n| n <= tasks_before + 4.0)
    });
    let rss_after = rss_kib(server.pid());
    eprintln!(
        "threads {threads_before:?} before, {:?} after; tokio tasks {tasks_before} before, {:?} after; resident memory {rss_before} KiB before, {rss_after} KiB after",
        own_threads(server.pid()),
        gauge(&server.metrics(), "streambox_tasks")
    );
    // Allocators keep some freed memory; a stream's window and GOP cache are megabytes,
    // so a hundred streams left behind would be far more than this.
    assert!(
        rss_after < rss_before + 48 * 1024,
        "resident memory grew from {rss_before} to {rss_after} KiB"
    );
}
