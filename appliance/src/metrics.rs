//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Per stream (label `stream`): publish state, ingest bytes and bitrate, frames and
//! segments (label `track`), the delay from a part's or segment's last frame arriving to it
//! being listed, playlist and segment requests, recording paused for disk space, bytes
//! recorded and segments deleted, the time a recorder batch takes to write.
//! Service-wide: publish attempts rejected (label `reason`), thumbnails by outcome
//! (label `result`), content key requests by outcome (label `outcome`); connections open, refused over the per-client cap and cut off by
//! a timeout, and the cap itself (label `protocol`: `http`, `rtsp`, `rtmp`).
//!
//! A stream's series go when the stream does ([`Metrics::forget_stream`]).

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    /// Segments completed, by track.
    pub segments: IntCounterVec,
    /// Playlist and manifest requests answered.
    pub playlist_requests: IntCounterVec,
    /// Segment, part and init segment requests answered.
    pub segment_requests: IntCounterVec,
    /// Publish attempts refused, by reason.
    pub rejected: IntCounterVec,
    /// Content key requests (encrypted HLS), by outcome: `served`, `refused` (no valid
    /// link or session), `unknown` (no such key for that stream), `limited` (too many
    /// from one address).
    pub key_requests: IntCounterVec,
    /// 1 while a stream's recording is paused for lack of disk space.
    pub dvr_paused: IntGaugeVec,
    /// Bytes of recorded segments written durably (fsynced and renamed into place).
    pub dvr_written_bytes: IntCounterVec,
    /// Recorded segments deleted by retention.
    pub dvr_deleted_segments: IntCounterVec,
    /// Seconds one recorder batch took to write (files, fsyncs, renames), by stream.
    pub dvr_write_seconds: HistogramVec,
    /// 1 while an ABR rung is being made, 0 once stopped, refused or dropped.
    pub rendition_running: IntGaugeVec,
    /// CPU cores admitted for a stream's ABR ladder (estimated).
    pub abr_cores: GaugeVec,
    /// Source access units the ABR decoder rejected (each skips to the next keyframe).
    pub abr_rejected_frames: IntCounterVec,
    /// Thumbnail requests by outcome (`result`: cached, shared, queued, stale, busy) and
    /// decodes by outcome (decoded, failed).
    pub thumbnails: IntCounterVec,
    /// Seconds from the arrival of a part's last frame to the part being listed.
    pub part_delay: HistogramVec,
    /// Seconds from the arrival of a segment's last frame to the segment being listed.
    pub segment_delay: HistogramVec,
    /// Connections open now, by protocol.
    pub connections: IntGaugeVec,
    /// Connections refused because their client address had the most it may open.
    pub connections_refused: IntCounterVec,
    /// Connections closed for sending too slowly or not at all, by protocol and `phase`
    /// (`headers`, `body`, `request`, `idle`).
    pub connection_timeouts: IntCounterVec,
    /// The most connections one client address (an IPv4 address or an IPv6 /64) may
    /// have open, by protocol.
    pub connection_limit: IntGaugeVec,
    /// Streams with a live entry (hub, packager, recorder, renditions) in memory now.
    pub live_streams: prometheus::IntGauge,
    /// Tokio tasks alive in the service, read when the metrics are rendered.
    pub tasks: prometheus::IntGauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2, 0.5, 1.0,
    ];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    h
}

/// A gauge without labels, registered in `r`.
fn single_gauge(r: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    let g = prometheus::IntGauge::new(name, help)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    g
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
                &["stream", "track"],
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
            key_requests: counter(
                &r,
                "streambox_key_requests_total",
                "Content key requests, by outcome: served, refused, unknown, limited",
                &["outcome"],
            ),
            dvr_paused: gauge(
                &r,
                "streambox_dvr_paused",
                "1 while recording is paused: the disk is below its free-space floor, or full",
                &["stream"],
            ),
            part_delay: histogram(
                &r,
                "streambox_part_delay_seconds",
                "From a part's last frame arriving to the part being listed",
                &["stream", "track"],
            ),
            segment_delay: histogram(
                &r,
                "streambox_segment_delay_seconds",
                "From a segment's last frame arriving to the segment being listed",
                &["stream", "track"],
            ),
            dvr_written_bytes: counter(
                &r,
                "streambox_dvr_written_bytes_total",
                "Bytes of recorded segments written durably",
                &["stream"],
            ),
            dvr_deleted_segments: counter(
                &r,
                "streambox_dvr_deleted_segments_total",
                "Recorded segments deleted by retention",
                &["stream"],
            ),
            dvr_write_seconds: histogram(
                &r,
                "streambox_dvr_write_seconds",
                "Time to write one batch of recorded segments durably",
                &["stream"],
            ),
            rendition_running: gauge(
                &r,
                "streambox_rendition_running",
                "1 while an ABR rung is being made; 0 once stopped or dropped under overload",
                &["stream", "rendition"],
            ),
            abr_cores: {
                let g = GaugeVec::new(
                    Opts::new(
                        "streambox_abr_cores",
                        "CPU cores admitted for the stream's ABR ladder (estimated)",
                    ),
                    &["stream"],
                )
                .unwrap_or_else(|e| panic!("metric streambox_abr_cores is malformed: {e}"));
                r.register(Box::new(g.clone()))
                    .unwrap_or_else(|e| panic!("metric streambox_abr_cores registered twice: {e}"));
                g
            },
            abr_rejected_frames: counter(
                &r,
                "streambox_abr_rejected_frames_total",
                "Source access units the ABR decoder rejected; each skips the rungs to the next keyframe",
                &["stream"],
            ),
            thumbnails: counter(
                &r,
                "streambox_thumbnails_total",
                "Thumbnail requests and decodes by outcome",
                &["result"],
            ),
            connections: gauge(
                &r,
                "streambox_connections",
                "Connections open now",
                &["protocol"],
            ),
            connections_refused: counter(
                &r,
                "streambox_connections_refused_total",
                "Connections refused: the client address had the most it may open",
                &["protocol"],
            ),
            connection_timeouts: counter(
                &r,
                "streambox_connection_timeouts_total",
                "Connections closed for sending too slowly or not at all",
                &["protocol", "phase"],
            ),
            connection_limit: gauge(
                &r,
                "streambox_connection_limit",
                "The most connections one client address (IPv4, or IPv6 /64) may have open",
                &["protocol"],
            ),
            live_streams: single_gauge(
                &r,
                "streambox_live_streams",
                "Streams with a live entry (hub, packager, recorder, renditions) in memory",
            ),
            tasks: single_gauge(
                &r,
                "streambox_tasks",
                "Tokio tasks alive in the service (connections, streams' tasks, loops)",
            ),
            registry: r,
        }
    }

    /// Removes every series of stream `name` and of its renditions (`name/720p`): the
    /// stream is gone. Counters of a stream of the same name made later start at zero.
    pub fn forget_stream(&self, name: &str) {
        forget(&self.publishing, name);
        forget(&self.ingest_bytes, name);
        forget(&self.ingest_bitrate, name);
        forget(&self.frames, name);
        forget(&self.segments, name);
        forget(&self.playlist_requests, name);
        forget(&self.segment_requests, name);
        forget(&self.dvr_paused, name);
        forget(&self.dvr_written_bytes, name);
        forget(&self.dvr_deleted_segments, name);
        forget(&self.dvr_write_seconds, name);
        forget(&self.rendition_running, name);
        forget(&self.abr_cores, name);
        forget(&self.abr_rejected_frames, name);
        forget(&self.part_delay, name);
        forget(&self.segment_delay, name);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tasks.set(rt.metrics().num_alive_tasks() as i64);
        }
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Removes the series of `vec` whose `stream` label is `name` or a rendition of it
/// (`name/…`).
fn forget<T: MetricVecBuilder>(vec: &MetricVec<T>, name: &str) {
    let rendition = format!("{name}/");
    for family in vec.collect() {
        for m in family.get_metric() {
            let labels: std::collections::HashMap<&str, &str> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels
                .get("stream")
                .is_some_and(|s| *s == name || s.starts_with(&rendition))
            {
                // Gone already is as good.
                let _ = vec.remove(&labels);
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_stream_leaves_no_series_and_others_keep_theirs() {
        let m = Metrics::new();
        for s in ["lobby", "lobby/720p", "lobbyist"] {
            m.ingest_bytes.with_label_values(&[s]).inc();
            m.segments.with_label_values(&[s, "video"]).inc();
            m.part_delay.with_label_values(&[s, "audio"]).observe(0.1);
        }
        m.rendition_running
            .with_label_values(&["lobby", "720p"])
            .set(1);
        m.forget_stream("lobby");
        let text = m.render();
        assert!(!text.contains("stream=\"lobby\""), "{text}");
        assert!(!text.contains("stream=\"lobby/720p\""), "{text}");
        assert!(text.contains("stream=\"lobbyist\""), "{text}");
    }
}
