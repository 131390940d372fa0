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

use crate::app::App;
use crate::ingest::rtsp_pull::sources::{self, SourceKind, SourceRow};
use crate::media::TrackId;
use crate::metrics::Metrics;
use crate::streams::StreamUid;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a stopped source task is waited for before its successor starts.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Keeps one task per source of `kind` in the `sources` table, forever: re-reads the
/// table whenever the registry sees the configuration change (at once for this
/// process's changes, within a moment for `streambox source add|rm` in another), and at
/// least every [`rtsp_pull::RECONCILE_EVERY`]. A new row gets a task from `start`, which
/// must end it when its `oneshot` receiver fires or its sender is dropped; a row that
/// went, or whose `key` changed, has its sender dropped (and a changed one starts
/// again, once the stopped task has ended, or after [`STOP_WAIT`]: a source's
/// successor must not find the device its predecessor still holds). A task that ended
/// by itself (only a panic does) is started afresh. `what` names the sources in the
/// log.
pub(crate) async fn keep_source_tasks<K: PartialEq>(
    app: &App,
    kind: SourceKind,
    what: &'static str,
    key: impl Fn(&SourceRow) -> K,
    mut start: impl FnMut(SourceRow, oneshot::Receiver<()>) -> tokio::task::JoinHandle<()>,
) {
    struct Running<K> {
        name: String,
        key: K,
        /// Dropping this ends the task.
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }
    let mut running: HashMap<StreamUid, Running<K>> = HashMap::new();
    let mut changes = app.registry.changes();
    loop {
        match sources::list(&app.db).await {
            Ok(rows) => {
                let rows: Vec<SourceRow> = rows
                    .into_iter()
                    .filter(|r| r.kind == kind.as_str())
                    .collect();
                let ended: Vec<StreamUid> = running
                    .iter()
                    .filter(|(uid, r)| {
                        if r.task.is_finished() {
                            // Only a panic ends a task that was not stopped: a bug, or a
                            // library failing on what the source sent. Start it afresh.
                            tracing::error!(source = %r.name, "{what} task failed; restarting it");
                            return true;
                        }
                        let keep =
                            rows.iter().any(|row| &row.uid == *uid && key(row) == r.key);
                        if !keep {
                            tracing::info!(source = %r.name, "{what} removed or changed; stopping it");
                        }
                        !keep
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in ended {
                    if let Some(r) = running.remove(&uid) {
                        // Stopped (its stop sender dropped), and waited for: it lets go
                        // of what it holds (a capture device, a sound card) before a
                        // successor with new settings opens the same.
                        drop(r.stop);
                        let _ = tokio::time::timeout(STOP_WAIT, r.task).await;
                    }
                }
                for row in rows {
                    if running.contains_key(&row.uid) {
                        continue;
                    }
                    let (stop, stopped) = oneshot::channel();
                    let (uid, name, k) = (row.uid.clone(), row.name.clone(), key(&row));
                    let task = start(row, stopped);
                    running.insert(
                        uid,
                        Running {
                            name,
                            key: k,
                            stop,
                            task,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the {what} sources failed"),
        }
        let _ = tokio::time::timeout(rtsp_pull::RECONCILE_EVERY, changes.changed()).await;
    }
}

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
