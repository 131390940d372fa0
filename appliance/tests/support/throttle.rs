//! A bandwidth cap between a real player and the real server: a TCP relay whose
//! server-to-client direction goes through one shared token bucket, like a slow link.
//! The test changes the rate while the player runs. It also notes the request line of
//! every HTTP request that goes through, so a test can see which renditions a player
//! fetched and when. It shapes bytes; it never answers in the server's place.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The relay's shared state.
struct Link {
    /// Bits per second from server to client; 0 means no cap.
    rate: AtomicU64,
    /// Bytes that may go now, and when that was worked out.
    bucket: Mutex<(f64, Instant)>,
    /// `(when, "GET /path HTTP/1.1")` for every request seen.
    requests: Mutex<Vec<(SystemTime, String)>>,
}

impl Link {
    /// Waits until `n` bytes may go at the current rate. The bucket holds at most
    /// 50 ms of bytes (or `n`, if more), so a burst cannot beat the cap.
    fn take(&self, n: usize) {
        loop {
            let rate = self.rate.load(Ordering::Relaxed);
            if rate == 0 {
                return;
            }
            let bytes_per_s = rate as f64 / 8.0;
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let (tokens, then) = *b;
                let tokens = (tokens + (now - then).as_secs_f64() * bytes_per_s)
                    .min((bytes_per_s * 0.05).max(n as f64));
                if tokens >= n as f64 {
                    *b = (tokens - n as f64, now);
                    return;
                }
                *b = (tokens, now);
                (n as f64 - tokens) / bytes_per_s
            };
            std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.001, 0.05)));
        }
    }
}

/// A running relay; it stops taking connections when dropped (the ones open end with
/// their peers).
pub struct Throttle {
    /// Where players connect instead of the server.
    pub addr: SocketAddr,
    link: Arc<Link>,
}

impl Throttle {
    /// Starts a relay to `target` on an ephemeral port, with no cap yet.
    pub fn start(target: SocketAddr) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind throttle");
        let addr = listener.local_addr().expect("throttle address");
        let link = Arc::new(Link {
            rate: AtomicU64::new(0),
            bucket: Mutex::new((0.0, Instant::now())),
            requests: Mutex::new(Vec::new()),
        });
        let l = Arc::clone(&link);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c2, s2, l2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                    Arc::clone(&l),
                );
                std::thread::spawn(move || relay(c2, s2, &l2, false));
                let l3 = Arc::clone(&l);
                std::thread::spawn(move || relay(server, client, &l3, true));
            }
        });
        Throttle { addr, link }
    }

    /// Caps server-to-client traffic at `bits_per_s` (0 lifts the cap).
    pub fn set_rate(&self, bits_per_s: u64) {
        self.link.rate.store(bits_per_s, Ordering::Relaxed);
    }

    /// `(when, request line)` of every request so far.
    pub fn requests(&self) -> Vec<(SystemTime, String)> {
        self.link
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `http://ADDR{path}` through the relay.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Copies `from` to `to` until either ends; `shaped` is the server-to-client side.
fn relay(mut from: TcpStream, mut to: TcpStream, link: &Link, shaped: bool) {
    let mut buf = vec![0u8; if shaped { 1400 } else { 64 * 1024 }];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shaped {
            link.take(n);
        } else {
            // Request lines start a line of their own; headers never start with "GET ".
            let text = String::from_utf8_lossy(&buf[..n]);
            let mut seen = link.requests.lock().unwrap_or_else(|e| e.into_inner());
            for line in text.split("\r\n").filter(|l| l.starts_with("GET ")) {
                seen.push((SystemTime::now(), line.to_string()));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
