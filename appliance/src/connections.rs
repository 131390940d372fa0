//! Connections per client address, for every listener (HTTP, RTSP, RTMP).
//!
//! A client is its address's [`client_group`] (an IPv4 address, or an IPv6 /64), so a
//! host cannot multiply its share by picking new addresses of its own prefix. Each
//! listener admits at most its configured number of connections per client; one more
//! is refused at once (and counted in `streambox_connections_refused_total`), so one
//! client with many half-open connections cannot use up the appliance's sockets and
//! tasks. Open connections are `streambox_connections`, the cap
//! `streambox_connection_limit`, and connections cut off for sending too slowly (each
//! listener's timeouts) `streambox_connection_timeouts_total`, all by `protocol`.

use crate::auth::limit::client_group;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The connections of one listener, per client.
pub struct ConnectionLimit {
    protocol: &'static str,
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

impl ConnectionLimit {
    /// A limit of `max` connections per client for `protocol` (`http`, `rtsp`, `rtmp`,
    /// the metrics' label).
    pub fn new(protocol: &'static str, max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics
            .connection_limit
            .with_label_values(&[protocol])
            .set(i64::try_from(max).unwrap_or(i64::MAX));
        // Present from the start, so a scraper sees zeros rather than nothing.
        metrics.connections.with_label_values(&[protocol]).set(0);
        metrics
            .connections_refused
            .with_label_values(&[protocol])
            .inc_by(0);
        Arc::new(ConnectionLimit {
            protocol,
            max,
            open: Mutex::default(),
            metrics,
        })
    }

    /// Admits a connection from `peer`: a slot, held for as long as the connection
    /// lives; or `None` (counted) when the client has its most open already.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let group = client_group(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(group).or_insert(0);
        if *n >= self.max {
            drop(open);
            self.metrics
                .connections_refused
                .with_label_values(&[self.protocol])
                .inc();
            tracing::warn!(
                client = %group,
                protocol = self.protocol,
                max = self.max,
                "connection refused: the client has the most connections it may open"
            );
            return None;
        }
        *n += 1;
        self.metrics
            .connections
            .with_label_values(&[self.protocol])
            .inc();
        Some(Slot {
            limit: self.clone(),
            group,
        })
    }

    /// Counts a connection closed for sending too slowly, in `phase` (`headers`,
    /// `body`, `request`, `idle`).
    pub fn timed_out(&self, phase: &str) {
        self.metrics
            .connection_timeouts
            .with_label_values(&[self.protocol, phase])
            .inc();
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    limit: Arc<ConnectionLimit>,
    group: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.group);
            }
        }
        self.limit
            .metrics
            .connections
            .with_label_values(&[self.limit.protocol])
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_its_share_and_gets_it_back() {
        let metrics = Arc::new(Metrics::new());
        let limit = ConnectionLimit::new("http", 2, metrics.clone());
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let a = limit.admit(ip("192.0.2.1")).expect("first");
        let _b = limit.admit(ip("192.0.2.1")).expect("second");
        assert!(limit.admit(ip("192.0.2.1")).is_none(), "third");
        // Another address of the same IPv6 /64 is the same client.
        let _c = limit.admit(ip("2001:db8::1")).expect("v6");
        let _d = limit.admit(ip("2001:db8::2")).expect("v6, same /64");
        assert!(
            limit.admit(ip("2001:db8::ffff")).is_none(),
            "the /64 is full"
        );
        assert!(limit.admit(ip("2001:db8:0:1::1")).is_some(), "another /64");
        drop(a);
        assert!(limit.admit(ip("192.0.2.1")).is_some(), "a slot came back");
        let text = metrics.render();
        assert!(
            text.contains("streambox_connections_refused_total{protocol=\"http\"} 2"),
            "{text}"
        );
        assert!(text.contains("streambox_connection_limit{protocol=\"http\"} 2"));
    }
}
