//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Per stream (label `stream`): publish state, ingest bytes and bitrate, frames (label
//! `track`), segments, playlist and segment requests. Service-wide: RTMP sessions
//! rejected (label `reason`).

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric of the service, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// 1 while a publisher is connected.
    pub publishing: IntGaugeVec,
    /// Bytes of media received from publishers.
    pub ingest_bytes: IntCounterVec,
    /// Ingest bitrate over the last second, bits per second.
    pub ingest_bitrate: IntGaugeVec,
    /// Frames received, by track.
    pub frames: IntCounterVec,
    /// Segments completed.
    pub segments: IntCounterVec,
    /// Playlist and manifest requests answered.
    pub playlist_requests: IntCounterVec,
    /// Segment, part and init segment requests answered.
    pub segment_requests: IntCounterVec,
    /// Publish attempts refused, by reason.
    pub rejected: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    g
}

impl Metrics {
    /// Creates and registers every metric. The names are fixed, so this cannot fail at
    /// run time.
    pub fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            publishing: gauge(
                &r,
                "streambox_stream_publishing",
                "1 while a publisher is connected",
                &["stream"],
            ),
            ingest_bytes: counter(
                &r,
                "streambox_ingest_bytes_total",
                "Media bytes received from publishers",
                &["stream"],
            ),
            ingest_bitrate: gauge(
                &r,
                "streambox_ingest_bitrate_bps",
                "Ingest bitrate over the last second, bits/s",
                &["stream"],
            ),
            frames: counter(
                &r,
                "streambox_frames_total",
                "Frames received",
                &["stream", "track"],
            ),
            segments: counter(
                &r,
                "streambox_segments_total",
                "Segments completed",
                &["stream"],
            ),
            playlist_requests: counter(
                &r,
                "streambox_playlist_requests_total",
                "Playlist and manifest requests",
                &["stream"],
            ),
            segment_requests: counter(
                &r,
                "streambox_segment_requests_total",
                "Segment, part and init requests",
                &["stream"],
            ),
            rejected: counter(
                &r,
                "streambox_publish_rejected_total",
                "Publish attempts refused",
                &["reason"],
            ),
            registry: r,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
