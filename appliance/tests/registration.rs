//! End-to-end, on this machine: IPv6 address registration by the real binary with a
//! directory the test runs, over real HTTPS (rustls, a self-signed certificate the
//! box is told to trust). The directory records what arrives and answers with the
//! status the test sets. Address changes causing a registration are tested on the
//! appliance (image/boot_test.py), where the test can give the box addresses.

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "dir-token-1";

/// One registration as the directory received it.
#[derive(Debug, Clone)]
struct Arrived {
    at: Instant,
    authorization: String,
    content_type: String,
    body: Value,
}

/// A directory: HTTPS on 127.0.0.1, accepting `Bearer TOKEN` with the status in
/// `status` (401 for another token), and keeping every request.
struct Directory {
    url: String,
    ca_pem: String,
    status: Arc<Mutex<u16>>,
    arrived: Arc<Mutex<Vec<Arrived>>>,
}

impl Directory {
    fn start() -> Directory {
        let cert =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
        let ca_pem = cert.cert.pem();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "https://127.0.0.1:{}/register",
            listener.local_addr().expect("addr").port()
        );
        let status = Arc::new(Mutex::new(200u16));
        let arrived = Arc::new(Mutex::new(Vec::new()));
        let (st, arr) = (status.clone(), arrived.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, st, arr) = (config.clone(), st.clone(), arr.clone());
                std::thread::spawn(move || serve(stream, config, &st, &arr));
            }
        });
        Directory {
            url,
            ca_pem,
            status,
            arrived,
        }
    }

    fn answer_with(&self, status: u16) {
        *self.status.lock().expect("lock") = status;
    }

    fn arrived(&self) -> Vec<Arrived> {
        self.arrived.lock().expect("lock").clone()
    }

    /// Waits until `n` registrations have arrived.
    fn wait_for(&self, n: usize, seconds: u64) -> Vec<Arrived> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let got = self.arrived();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} registrations within {seconds} s; got {}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One HTTP/1.1 request over TLS: recorded, and answered with the status set.
fn serve(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    status: &Mutex<u16>,
    arrived: &Mutex<Vec<Arrived>>,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => headers.push(line.trim_end().to_string()),
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let authorization = header("authorization");
    arrived.lock().expect("lock").push(Arrived {
        at: Instant::now(),
        authorization: authorization.clone(),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let code = if authorization == format!("Bearer {TOKEN}") {
        *status.lock().expect("lock")
    } else {
        401
    };
    let text = match code {
        200 => "registered",
        401 => "token expired",
        _ => "directory overloaded",
    };
    let answer = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tls.write_all(answer.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

#[test]
fn a_directory_on_the_box_itself_is_refused() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let token = web.make_token("reg");
    let dir = Directory::start();
    for url in [
        dir.url.clone(),
        "https://localhost/register".into(),
        "https://[fe80::1]/r".into(),
    ] {
        let body = json!({"url": url, "token": TOKEN, "ca_pem": dir.ca_pem});
        let a = web.api(
            "PUT",
            "/api/network/registration",
            Some(&token),
            None,
            Some(&body),
        );
        assert_eq!(a.status, 422, "{url} → {a:?}");
        assert!(
            a.error().contains("loopback or link-local"),
            "{url}: {:?}",
            a.error()
        );
    }
    assert!(dir.arrived().is_empty(), "nothing reached the directory");
}

#[test]
fn the_box_registers_with_a_directory_and_retries_with_backoff() {
    // The directory runs on this machine, so the box must be allowed to reach it.
    let server = Server::with(Settings {
        env: vec![("STREAMBOX_SOURCES__ALLOW_LOCAL_ADDRESSES", "true".into())],
        ..Default::default()
    });
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let token = web.make_token("reg");
    let call = |method: &str, path: &str, body: Option<Value>| {
        web.api(method, path, Some(&token), None, body.as_ref())
    };
    let dir = Directory::start();
    let good =
        json!({"url": dir.url, "token": TOKEN, "interval_seconds": 600, "ca_pem": dir.ca_pem});

    // Bad settings, each refused with the reason, and nothing saved.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("https://127.0.0.1:{port}/register")
    };
    let untrusted = json!({"url": dir.url, "token": TOKEN});
    let cases = [
        (
            json!({"url": dir.url.replace("https", "http"), "token": TOKEN}),
            "https://",
        ),
        (
            json!({"url": "https://u:p@example.com/", "token": TOKEN}),
            "user or password",
        ),
        (
            json!({"url": dir.url, "token": "two words"}),
            "visible ASCII",
        ),
        (
            json!({"url": dir.url, "token": TOKEN, "interval_seconds": 10}),
            "60-86400",
        ),
        (
            json!({"url": dir.url, "token": TOKEN, "ca_pem": "garbage"}),
            "no certificate",
        ),
        (
            json!({"url": closed, "token": TOKEN}),
            "could not be reached",
        ),
        (untrusted, "could not be reached"),
        (
            json!({"url": dir.url, "token": "wrong", "ca_pem": dir.ca_pem}),
            "refused the token (401): token expired",
        ),
    ];
    for (body, why) in cases {
        let a = call("PUT", "/api/network/registration", Some(body.clone()));
        assert_eq!(a.status, 422, "{body} → {a:?}");
        assert!(
            a.error().contains(why),
            "{body}: {:?} should say {why:?}",
            a.error()
        );
    }
    let a = call(
        "PUT",
        "/api/network/registration",
        Some(json!({"url": dir.url, "token": TOKEN, "mtu": 1})),
    );
    assert_eq!(a.status, 422, "an unknown field: {a:?}");
    let view = call("GET", "/api/network/registration", None).json();
    assert_eq!(view["enabled"], json!(false), "nothing was saved: {view}");
    // The refused attempts reached the directory only with the wrong token.
    assert!(dir
        .arrived()
        .iter()
        .all(|a| a.authorization == "Bearer wrong"));

    // Good settings: registered at once, with the contract's fields.
    let a = call("PUT", "/api/network/registration", Some(good.clone()));
    assert_eq!(a.status, 200, "{a:?}");
    let view = a.json();
    assert_eq!(view["enabled"], json!(true));
    assert_eq!(view["url"], json!(dir.url));
    assert_eq!(view["last"]["outcome"], json!("accepted"), "{view}");
    assert_eq!(view["last"]["answer"], json!("registered"));
    assert!(
        !view.to_string().contains(TOKEN),
        "the token is not shown: {view}"
    );
    let got = dir.arrived();
    let first = got.last().expect("a registration");
    assert_eq!(first.authorization, format!("Bearer {TOKEN}"));
    assert_eq!(first.content_type, "application/json");
    let b = &first.body;
    assert_eq!(b["reason"], json!("settings"), "{b}");
    assert_eq!(b["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(b["id"].as_str().map(str::len), Some(32), "{b}");
    assert!(b["name"].is_string() && b["sent_at"].is_string(), "{b}");
    let addresses = b["addresses"].as_array().expect("addresses");
    assert_eq!(
        b["urls"].as_array().map(Vec::len),
        Some(addresses.len()),
        "{b}"
    );
    for (a, u) in addresses.iter().zip(b["urls"].as_array().expect("urls")) {
        let a = a.as_str().expect("address");
        assert!(a.parse::<std::net::Ipv6Addr>().is_ok(), "{a}");
        assert_eq!(u["address"], json!(a));
        assert!(
            u["portal"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("[{a}]"))),
            "{u}"
        );
    }

    // The page's form keeps the saved token and certificates when left empty, the
    // token only for the same directory.
    let t = web.csrf("/admin/network");
    let a = web.post(
        "/admin/network/registration",
        &[
            ("csrf", &t),
            ("url", &dir.url),
            ("token", ""),
            ("interval_seconds", "300"),
            ("ca_pem", ""),
        ],
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.alert().unwrap_or_default().contains("Registered with"),
        "{:?}",
        a.alert()
    );
    assert_eq!(
        dir.arrived().last().map(|x| x.authorization.clone()),
        Some(format!("Bearer {TOKEN}"))
    );
    let other = dir.url.replace("/register", "/elsewhere");
    let a = web.post(
        "/admin/network/registration",
        &[
            ("csrf", &t),
            ("url", &other),
            ("token", ""),
            ("interval_seconds", "300"),
            ("ca_pem", ""),
        ],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert().unwrap_or_default().contains("1-4096"),
        "{:?}",
        a.alert()
    );
    assert!(
        a.body.contains(&format!(r#"value="{other}""#)),
        "the URL as typed: {}",
        a.body
    );

    // A directory that fails: retried after 2 s, then 4 s.
    dir.answer_with(500);
    let before = dir.arrived().len();
    let a = call("PUT", "/api/network/registration", Some(good.clone()));
    assert_eq!(a.status, 200, "a failing directory is not a refusal: {a:?}");
    assert_eq!(a.json()["last"]["outcome"], json!("failed"), "{a:?}");
    assert_eq!(a.json()["failures"], json!(1));
    let got = dir.wait_for(before + 3, 30);
    let tries: Vec<&Arrived> = got[before..].iter().collect();
    let (gap1, gap2) = (tries[1].at - tries[0].at, tries[2].at - tries[1].at);
    assert!(
        gap1 >= Duration::from_millis(1800) && gap2 >= Duration::from_millis(3600) && gap2 > gap1,
        "backoff grows: {gap1:?} then {gap2:?}"
    );
    assert_eq!(tries[1].body["reason"], json!("retry"));
    let view = call("GET", "/api/network/registration", None).json();
    assert!(view["failures"].as_u64().is_some_and(|f| f >= 3), "{view}");
    assert!(
        view["last"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{view}"
    );

    // The token stops working (it expired): the page says so.
    // The next retry (8 s after the third try) goes out with the same token, which the
    // directory now refuses.
    let token_now = dir.arrived().len();
    dir.answer_with(401);
    dir.wait_for(token_now + 1, 30);
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = web.get("/admin/network");
        if page.body.contains("refused the token") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        page.body
            .contains("the directory refused the token (401) token expired"),
        "the page shows the refusal: {}",
        page.body
    );
    let view = call("GET", "/api/network/registration", None).json();
    assert_eq!(view["last"]["outcome"], json!("refused"), "{view}");
    assert_eq!(
        view["failures"],
        json!(0),
        "a refused token is not retried with backoff"
    );

    // Off: the directory hears no more.
    let a = call("DELETE", "/api/network/registration", None);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["enabled"], json!(false));
    let audit = call("GET", "/api/audit?limit=100", None).json();
    let entries: Vec<&Value> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "network.registration")
        .collect();
    assert_eq!(entries.len(), 4, "three saves and one off: {audit}");
    assert!(
        !audit.to_string().contains(TOKEN),
        "the token is not in the audit log"
    );
}
