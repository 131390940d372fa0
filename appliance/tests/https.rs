//! The HTTPS listener (`http.tls_listen`), as the appliance image runs it: a self-signed
//! certificate made at first start and kept, admin routes only over TLS with `Secure`
//! cookies, and the viewer's portal and media still on plain HTTP for LAN players.

mod support;

use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::web::Web;
use support::*;

fn tls_server() -> Server {
    Server::with(Settings {
        env: vec![
            ("STREAMBOX_HTTP__TLS_LISTEN", "127.0.0.1:0".into()),
            ("STREAMBOX_HTTP__HEADER_TIMEOUT", "2".into()),
        ],
        ..Settings::default()
    })
}

fn sha256_colons(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The route table's paths with their parameters filled in (`{stream}` is `hall`).
fn concrete(path: &str) -> String {
    path.replace("{*path}", "x")
        .split('/')
        .map(|s| if s.starts_with('{') { "hall" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn admin_routes_are_served_over_tls_only_and_viewers_keep_plain_http() {
    let mut server = tls_server();
    let (https, printed) = server.https.clone().expect("https listener");
    let tls = Web::https(&server);
    // The certificate presented is the one on disk, and its fingerprint the one printed.
    let presented = tls.peer_certificate("/healthz");
    assert_eq!(sha256_colons(&presented), printed);
    // The console banner shows the same fingerprint (in two lines of 16 bytes).
    let out = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(server.dir.path())
        .args(["console", "--once"])
        .env("STREAMBOX_HTTP__TLS_LISTEN", "0.0.0.0:443")
        .output()
        .expect("streambox console");
    let banner = String::from_utf8_lossy(&out.stdout).to_string();
    let shown: Vec<&str> = banner
        .lines()
        .skip_while(|l| !l.starts_with("Certificate SHA-256"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(shown.join(":"), printed, "{banner}");
    assert!(banner.contains("https://"), "{banner}");

    // Plain HTTP: every route that is neither public nor a viewer's redirects to the
    // same path over HTTPS, whatever its method; the portal and media stay.
    let plain = Web::new(&server);
    let out = std::process::Command::new(bin())
        .arg("routes")
        .output()
        .expect("streambox routes");
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let mut walked = 0;
    for line in table.lines() {
        let mut f = line.split('\t');
        let (method, path, access) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if matches!(access, "public" | "viewer") {
            continue;
        }
        let path = concrete(path);
        let a = plain.request(method, &path, "");
        assert_eq!(a.status, 308, "{method} {path} over HTTP: {a:?}");
        assert_eq!(
            a.location.as_deref(),
            Some(format!("https://127.0.0.1:{}{path}", https.port()).as_str()),
            "{method} {path}"
        );
        assert!(
            a.cookies.is_empty(),
            "{method} {path} set a cookie over HTTP"
        );
        walked += 1;
    }
    assert!(walked > 40, "only {walked} admin and API routes walked");
    let a = plain.get("/admin/streams?x=1");
    assert_eq!(
        a.location.as_deref(),
        Some(format!("https://127.0.0.1:{}/admin/streams?x=1", https.port()).as_str())
    );
    assert_eq!(plain.get("/").status, 200, "the portal answers on HTTP");
    assert_eq!(plain.get("/healthz").status, 200);
    // A Host header that is not a host is not echoed into a redirect.
    let mut s = TcpStream::connect(server.http).expect("connect");
    s.write_all(b"GET /admin HTTP/1.1\r\nHost: evil.example/x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("evil"), "{answer}");

    // Over HTTPS the wizard runs, and every cookie it sets is Secure.
    let a = tls.get("/setup");
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!a.cookies.is_empty(), "the wizard sets its CSRF cookie");
    for c in &a.cookies {
        assert!(
            c.contains("; Secure"),
            "a cookie over HTTPS without Secure: {c}"
        );
    }
    let key = tls.complete_setup("correct horse battery staple", "hall");
    assert!(!key.is_empty());
    assert_eq!(tls.get("/admin").status, 200, "signed in over HTTPS");
    // Plain HTTP still shows no admin page, signed in or not.
    assert_eq!(plain.get("/admin").status, 308);

    // The certificate is kept across a restart.
    server.stop();
    server.restart();
    let (_, again) = server.https.clone().expect("https listener");
    assert_eq!(again, printed, "a restart made a new certificate");
    let tls = Web::https(&server);
    assert_eq!(sha256_colons(&tls.peer_certificate("/healthz")), printed);
}

#[test]
fn the_tls_handshake_has_a_deadline_and_plain_http_on_the_tls_port_is_refused() {
    let server = tls_server();
    let (https, _) = server.https.clone().expect("https listener");
    // Silent: closed after the 2 s header timeout, which covers the handshake.
    let mut silent = TcpStream::connect(https).expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a connection that never starts its handshake is still open"
    );
    // Plain HTTP to the TLS port: no HTTP answer, the connection closes.
    let mut s = TcpStream::connect(https).expect("connect");
    s.write_all(b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed, "still open");
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP was served on the TLS port"
    );
    // The service goes on serving.
    let tls = Web::https(&server);
    assert_eq!(tls.get("/healthz").status, 200);
    let log = server.log();
    assert!(log.contains("TLS handshake failed"), "not logged:\n{log}");
}
