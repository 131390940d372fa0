//! Who is watching a stream now: RTSP sessions that play it, and HTTP players (HLS or
//! DASH) that fetched its live media lately.
//!
//! HLS and DASH have no sessions, so an HTTP viewer is a client address and User-Agent
//! that fetched a playlist, manifest, part or segment of the stream within the last
//! [`WINDOW`]. Players behind one address with the same browser count once. At most
//! [`MAX_TRACKED`] HTTP viewers are told apart per stream; the count stops there.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An HTTP player that fetched nothing for this long has stopped watching. Players
/// reload a live playlist at least once per target duration (RFC 8216bis §6.3.4), and
/// this appliance's segments are at most about 6 s.
pub const WINDOW: Duration = Duration::from_secs(15);
/// The most HTTP viewers told apart per stream.
pub const MAX_TRACKED: usize = 10_000;

/// The viewers of one stream.
#[derive(Debug, Default)]
pub struct Viewers {
    rtsp: AtomicUsize,
    /// Hash of (address, User-Agent) → when it last fetched.
    http: Mutex<HashMap<u64, Instant>>,
}

/// An RTSP session playing the stream; it stops counting when dropped.
#[derive(Debug)]
pub struct Playing(Arc<Viewers>);

impl Drop for Playing {
    fn drop(&mut self) {
        self.0.rtsp.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Viewers {
    fn http(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        // The map holds plain data; a panic elsewhere while holding it changes nothing.
        self.http.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `client` with `user_agent` fetched live media of the stream at `now`.
    pub fn seen(&self, client: IpAddr, user_agent: &[u8], now: Instant) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (client, user_agent).hash(&mut h);
        let key = h.finish();
        let mut http = self.http();
        if http.len() >= MAX_TRACKED && !http.contains_key(&key) {
            http.retain(|_, t| now.saturating_duration_since(*t) < WINDOW);
            if http.len() >= MAX_TRACKED {
                return;
            }
        }
        http.insert(key, now);
    }

    /// Counts an RTSP session until the returned guard is dropped.
    pub fn playing(self: &Arc<Self>) -> Playing {
        self.rtsp.fetch_add(1, Ordering::Relaxed);
        Playing(self.clone())
    }

    /// Viewers at `now`: RTSP sessions playing, and HTTP players seen within [`WINDOW`].
    pub fn count(&self, now: Instant) -> usize {
        let mut http = self.http();
        http.retain(|_, t| now.saturating_duration_since(*t) < WINDOW);
        self.rtsp.load(Ordering::Relaxed) + http.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn players_count_while_they_fetch_and_sessions_while_they_play() {
        let v = Arc::new(Viewers::default());
        let t0 = Instant::now();
        let a = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
        let b = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 21));
        v.seen(a, b"Firefox", t0);
        v.seen(a, b"Firefox", t0 + Duration::from_secs(2));
        v.seen(a, b"VLC", t0 + Duration::from_secs(3));
        v.seen(b, b"Firefox", t0 + Duration::from_secs(4));
        assert_eq!(v.count(t0 + Duration::from_secs(5)), 3);
        let playing = v.playing();
        assert_eq!(v.count(t0 + Duration::from_secs(5)), 4);
        // Only b fetched within the window 18 s on.
        assert_eq!(v.count(t0 + Duration::from_secs(18)), 2);
        drop(playing);
        assert_eq!(v.count(t0 + Duration::from_secs(18)), 1);
        assert_eq!(v.count(t0 + Duration::from_secs(60)), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let v = Viewers::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 50) {
            v.seen(IpAddr::V4(Ipv4Addr::from(i)), b"x", t0);
        }
        assert_eq!(v.count(t0), MAX_TRACKED);
        // Once the first ones go quiet, new ones count again.
        let later = t0 + WINDOW;
        v.seen(IpAddr::V4(Ipv4Addr::from(u32::MAX)), b"x", later);
        assert_eq!(v.count(later), 1);
    }
}
