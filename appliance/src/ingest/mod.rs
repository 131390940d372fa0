//! Protocol front ends that turn bytes into [`crate::media::Frame`]s and publish them
//! into a hub: RTMP push ([`rtmp`]), RTSP push ([`rtsp_push`], whose requests the RTSP
//! session in [`crate::rtsp::session`] answers) and RTSP pull from cameras
//! ([`rtsp_pull`]), and capture devices on the box ([`capture`]); access units become
//! frames in [`rtp_frames`].

pub mod capture;
pub mod rtmp;
pub mod rtp_frames;
pub mod rtsp_pull;
pub mod rtsp_push;

use crate::media::TrackId;
use crate::metrics::Metrics;
use std::time::{Duration, Instant};

/// The ingest metrics of one publish session, with handles looked up once rather than
/// per frame. The stream counts as publishing while this lives.
pub struct IngestMeter {
    publishing: prometheus::IntGauge,
    bytes: prometheus::IntCounter,
    bitrate: prometheus::IntGauge,
    video_frames: prometheus::IntCounter,
    audio_frames: prometheus::IntCounter,
    bytes_this_second: u64,
    second_started: Instant,
    bps: u64,
}

impl IngestMeter {
    /// Starts metering a publish session of stream `name`.
    pub fn new(metrics: &Metrics, name: &str) -> IngestMeter {
        let publishing = metrics.publishing.with_label_values(&[name]);
        publishing.set(1);
        IngestMeter {
            publishing,
            bytes: metrics.ingest_bytes.with_label_values(&[name]),
            bitrate: metrics.ingest_bitrate.with_label_values(&[name]),
            video_frames: metrics
                .frames
                .with_label_values(&[name, TrackId::Video.name()]),
            audio_frames: metrics
                .frames
                .with_label_values(&[name, TrackId::Audio.name()]),
            bytes_this_second: 0,
            second_started: Instant::now(),
            bps: 0,
        }
    }

    /// Counts one frame of `bytes` bytes on `track`.
    pub fn frame(&mut self, track: TrackId, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
        match track {
            TrackId::Video => self.video_frames.inc(),
            TrackId::Audio => self.audio_frames.inc(),
        }
        self.bytes_this_second += bytes as u64;
        let elapsed = self.second_started.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.bps = (self.bytes_this_second as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
            self.bitrate
                .set(i64::try_from(self.bps).unwrap_or(i64::MAX));
            self.bytes_this_second = 0;
            self.second_started = Instant::now();
        }
    }

    /// Media bits per second over the last whole second measured.
    pub fn bitrate(&self) -> u64 {
        self.bps
    }
}

impl Drop for IngestMeter {
    fn drop(&mut self) {
        self.publishing.set(0);
    }
}
