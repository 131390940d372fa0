//! Capture devices on this box (USB cameras, HDMI capture dongles) as live sources.
//!
//! A capture source is a row of the `sources` table of kind `capture`, bound to a
//! device's stable ID ([`crate::system::hardware::VideoDevice::id`]), so it follows the
//! device to any USB port. [`run`] keeps one task per such row, as
//! [`crate::ingest::rtsp_pull::run`] does for cameras. Each task:
//!
//! 1. waits until the hardware inventory lists the device (state `unplugged` until
//!    then: the stream is offline, and comes back by itself when the device does);
//! 2. chooses a format ([`choose`]), admits the encoder's cost against the CPU budget
//!    (the ABR rungs' cost model, [`crate::transcode::cost`]), and starts a capture
//!    thread: V4L2 memory-mapped streaming ([`crate::system::hardware::v4l2::Capture`])
//!    into [`pipeline::Pipeline`], which passes H.264 through or encodes the pictures;
//! 3. publishes the access units into the stream, on the stream's clock: each
//!    buffer's capture time (the driver's `CLOCK_MONOTONIC` timestamp) less the
//!    session's origin ([`video_zero`]), placed on the device's frame grid
//!    ([`grid::FrameGrid`]: whole frame periods apart, so players read the rate the
//!    device runs at, while the grid follows the stamps); a gap in the driver's frame
//!    counter is a frame the device dropped, counted, and the timestamps jump over it
//!    (it is not papered over). With a sound
//!    card ([`audio`]), a second thread reads it, stamped from the same origin on the
//!    same clock, and the samples are encoded to AAC-LC on the stream's timeline
//!    ([`RtpFrames`] with [`AudioInput::Pcm`]), so sound and pictures stay in sync;
//! 4. ends the session when the device goes (`ENODEV`: the stream goes offline and the
//!    recording closes its segment), when no frame comes for [`STALL`] (the capture
//!    restarts at once), or when another program holds the device (retried with
//!    backoff, and said in the source's state).
//!
//! A Motion-JPEG frame that does not decode, or one the driver flags as bad, is
//! skipped and counted with the dropped frames.

pub mod audio;
pub mod choose;
pub mod grid;
pub mod pipeline;

use crate::app::App;
use crate::ingest::rtp_frames::{AudioInput, RtpFrames, VideoAu};
use crate::ingest::rtsp_pull::sources::{self, SourceKind, SourceRow, SourceState};
use crate::ingest::IngestMeter;
use crate::streams::registry::Holder;
use crate::system::hardware::v4l2::{Capture, Negotiated};
use crate::system::hardware::VideoDevice;
use choose::{Choice, ChooseError, Request};
use grid::FrameGrid;
use pipeline::{FrameError, Pipeline};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn, Instrument};

/// No frame for this long restarts the capture.
pub const STALL: Duration = Duration::from_secs(2);
/// The first wait before starting again after a failure; it doubles on each one.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// A session that stayed live this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How often a live source's state is written to the database.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Access units and sound reads in flight from the capture threads to the stream.
const QUEUE: usize = 64;
/// How long an ended session's threads are waited for: each notices within [`STALL`].
const THREADS_END: Duration = Duration::from_secs(5);

/// Why a capture session ended.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device is not on the box (unplugged, or its driver unloaded).
    #[error("device unplugged")]
    Unplugged,
    /// Another program holds the device.
    #[error("the device is busy: another program is capturing from it")]
    Busy,
    /// The service may not open it.
    #[error("no permission to open the device ({0})")]
    Denied(String),
    /// Nothing fits what the source asks.
    #[error(transparent)]
    Format(#[from] ChooseError),
    /// The device set another format or size than the one asked for.
    #[error("the device set {got} when asked for {asked}")]
    Renegotiated {
        /// What was asked.
        asked: String,
        /// What it set.
        got: String,
    },
    /// The encoder would not fit in the CPU budget.
    #[error("encoding {what} needs about {needs:.2} cores and {free:.2} of the budget (abr.max_cpu) are free after the other capture sources")]
    NoRoom {
        /// The format and size.
        what: String,
        /// Estimated cores.
        needs: f64,
        /// Cores free.
        free: f64,
    },
    /// No frame for [`STALL`].
    #[error("no frame from the device for {} s", STALL.as_secs())]
    Stalled,
    /// The encoder failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The access unit could not become a frame of the stream.
    #[error(transparent)]
    Media(#[from] crate::ingest::rtp_frames::RtpMediaError),
    /// Something else publishes the stream.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// Anything else the kernel said.
    #[error("capturing failed: {0}")]
    Io(io::Error),
    /// The appliance ended the session (the source was removed).
    #[error("ended: {0}")]
    Ended(&'static str),
    /// The source's sound card is not on the box.
    #[error("audio device unplugged")]
    AudioUnplugged,
    /// Another program captures from the sound card.
    #[error("the audio device is busy: another program is capturing from it")]
    AudioBusy,
    /// No sound for [`STALL`].
    #[error("no sound from the audio device for {} s", STALL.as_secs())]
    AudioStalled,
    /// ALSA failed otherwise.
    #[error("audio: {0}")]
    Audio(String),
}

impl From<io::Error> for CaptureError {
    fn from(e: io::Error) -> Self {
        use rustix::io::Errno;
        match e.raw_os_error() {
            Some(c) if c == Errno::BUSY.raw_os_error() => CaptureError::Busy,
            Some(c) if c == Errno::NODEV.raw_os_error() || c == Errno::NOENT.raw_os_error() => {
                CaptureError::Unplugged
            }
            Some(c) if c == Errno::PERM.raw_os_error() || c == Errno::ACCESS.raw_os_error() => {
                CaptureError::Denied(e.to_string())
            }
            _ => CaptureError::Io(e),
        }
    }
}

impl CaptureError {
    /// The state a source is in after this.
    fn state(&self) -> SourceState {
        match self {
            CaptureError::Unplugged | CaptureError::AudioUnplugged => SourceState::Unplugged,
            CaptureError::Format(_) | CaptureError::Denied(_) | CaptureError::NoRoom { .. } => {
                SourceState::Failed
            }
            _ => SourceState::Retrying,
        }
    }
}

/// What a capture source asks of its device, from its row.
pub fn request_of(row: &SourceRow) -> Request {
    Request {
        size: (row.width > 0 && row.height > 0).then_some((row.width as u32, row.height as u32)),
        fps: (row.fps > 0.0).then_some(row.fps),
    }
}

/// The bitrate to encode at, in bit/s: `requested`, else the ABR ladder's default for
/// the height ([`crate::transcode::ladder::default_bitrate`]), scaled by the rate above
/// 30 fps.
pub fn bitrate_for(requested: Option<u32>, height: u32, fps: f64) -> u32 {
    if let Some(b) = requested.filter(|b| *b > 0) {
        return b;
    }
    let base = f64::from(crate::transcode::ladder::default_bitrate(height));
    (base * (fps / 30.0).max(1.0)) as u32
}

/// The bitrate a capture source's row asks for, if any.
fn requested_bitrate(row: &SourceRow) -> Option<u32> {
    (row.video_bitrate > 0).then(|| row.video_bitrate.min(i64::from(u32::MAX)) as u32)
}

/// `YUYV 1280x720 at 30 fps, encoded at 2.8 Mbit/s` or `H264 1920x1080 at 30 fps,
/// passed through`.
fn describe(n: &Negotiated, bitrate: u32) -> String {
    let what = Choice {
        fourcc: n.fourcc,
        width: n.width,
        height: n.height,
        rate: n.rate,
    };
    if n.fourcc == choose::H264 {
        format!("{what}, passed through")
    } else {
        format!("{what}, encoded at {:.1} Mbit/s", f64::from(bitrate) / 1e6)
    }
}

/// Checks that a device offering `device`'s formats can deliver what a capture source
/// asks, before it is saved; the same choice the running source makes.
///
/// # Errors
/// [`ChooseError`], saying what the device offers.
pub fn check(device: &VideoDevice, request: &Request) -> Result<Choice, ChooseError> {
    choose::choose(&device.formats, request)
}

fn identity(r: &SourceRow) -> (String, String, i64, i64, u64, i64, String) {
    (
        r.name.clone(),
        r.device.clone(),
        r.width,
        r.height,
        r.fps.to_bits(),
        r.video_bitrate,
        r.audio.clone(),
    )
}

/// Keeps one task per capture source, forever
/// (`ingest::keep_source_tasks`).
pub async fn run(app: App) {
    let a = app.clone();
    let start = move |row: SourceRow, stopped| {
        let span = tracing::info_span!("capture", source = %row.name, device = %row.device);
        tokio::spawn(source(a.clone(), row, stopped).instrument(span))
    };
    crate::ingest::keep_source_tasks(&app, SourceKind::Capture, "capture", identity, start).await;
}

async fn report(app: &App, name: &str, state: SourceState, error: Option<&str>, bitrate: u64) {
    let since = (state == SourceState::Live).then(crate::db::unix_now);
    if let Err(e) = sources::report(&app.db, name, state, error, bitrate, since).await {
        warn!(error = %e, "recording capture state failed");
    }
}

/// The device with stable ID `id`, when the inventory lists it.
fn present(app: &App, id: &str) -> Option<VideoDevice> {
    app.hardware.borrow().video(id).cloned()
}

/// Whether `row`'s devices are on the box: its video device (returned), and its sound
/// card's capture PCM when it has one; the error says which is missing.
fn devices(app: &App, row: &SourceRow) -> Result<VideoDevice, CaptureError> {
    let video = present(app, &row.device).ok_or(CaptureError::Unplugged)?;
    if !row.audio.is_empty() && app.hardware.borrow().audio(&row.audio).is_none() {
        return Err(CaptureError::AudioUnplugged);
    }
    Ok(video)
}

/// One capture source: wait for its device, capture, and start again, until `stop`
/// fires or is dropped.
async fn source(app: App, row: SourceRow, mut stop: oneshot::Receiver<()>) {
    let mut hardware = app.hardware.clone();
    let mut delay = FIRST_RETRY;
    // Frames lost over the source's whole run, for its state.
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let key = format!("capture {}", row.uid);
    loop {
        let device = match devices(&app, &row) {
            Ok(d) => d,
            Err(e) => {
                report(
                    &app,
                    &row.name,
                    SourceState::Unplugged,
                    Some(&e.to_string()),
                    0,
                )
                .await;
                tokio::select! {
                    _ = hardware.changed() => {}
                    // The inventory is also read every 30 s; look again sooner.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = &mut stop => return,
                }
                continue;
            }
        };
        report(&app, &row.name, SourceState::Connecting, None, 0).await;
        let mut live_since = None;
        // Each capture thread holds a clone until it ends: the devices are let go of
        // before the next session (or a successor task) opens them again. A sound card
        // with several substreams (snd-aloop) would otherwise hand the next session
        // another one, unconnected, and silent.
        let (alive, mut threads) = mpsc::channel::<()>(1);
        let result = tokio::select! {
            r = session(&app, &row, &device, &key, &dropped, &mut live_since, alive) => r,
            _ = &mut stop => {
                app.costs.commit_ingest(&key, None);
                let _ = tokio::time::timeout(THREADS_END, threads.recv()).await;
                info!("capture stopped");
                return;
            }
        };
        app.costs.commit_ingest(&key, None);
        let _ = tokio::time::timeout(THREADS_END, threads.recv()).await;
        let e = match result {
            Ok(()) => CaptureError::Stalled,
            Err(e) => e,
        };
        if matches!(e, CaptureError::Ended(_)) {
            return;
        }
        if live_since.is_some_and(|t: Instant| t.elapsed() >= HEALTHY_AFTER) {
            delay = FIRST_RETRY;
        }
        let state = e.state();
        let wait = match (&e, state) {
            // A stall of a source that was live restarts the capture at once: a stuck
            // driver usually recovers when the device is closed and opened again. One
            // that never delivered (an HDMI dongle without a signal) backs off.
            (CaptureError::Stalled, _) if live_since.is_some() => Duration::ZERO,
            // Waits below for the device to go and come back.
            (_, SourceState::Unplugged) => Duration::ZERO,
            (_, SourceState::Failed) => RETRY_MAX,
            _ => delay.mul_f64(rand::random_range(0.5..=1.0)),
        };
        let error = e.to_string();
        warn!(%error, state = %state, retry_in_s = wait.as_secs_f32(), "capture ended");
        report(&app, &row.name, state, Some(&error), 0).await;
        if state == SourceState::Unplugged {
            // Until the inventory has seen the device go (or 2 s), then the loop's top
            // waits for it to come back.
            let gone = async {
                while devices(&app, &row).is_ok() {
                    if hardware.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(2), gone) => {}
                _ = &mut stop => return,
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return,
        }
        if wait > Duration::ZERO {
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

/// What the capture thread tells the session.
enum Event {
    /// The device streams in this format, at this bitrate.
    Started(Negotiated, u32),
    /// An access unit, and when its frame was captured.
    Au(VideoAu, Instant),
    /// A read of sound.
    Sound(audio::Read),
    /// The thread's CPU use over the last few seconds, in cores.
    Cost(f64),
    /// The thread ended.
    Ended(CaptureError),
}

/// One capture session: the thread, and publishing what it sends, until it ends.
async fn session(
    app: &App,
    row: &SourceRow,
    device: &VideoDevice,
    key: &str,
    dropped: &Arc<std::sync::atomic::AtomicU64>,
    live_since: &mut Option<Instant>,
    alive: mpsc::Sender<()>,
) -> Result<(), CaptureError> {
    let choice = check(device, &request_of(row))?;
    let fps = choice.rate.map_or(30.0, |r| r.fps());
    let bitrate = bitrate_for(requested_bitrate(row), choice.height, fps);
    if choice.encodes() {
        let (decode, encode) = (
            app.costs.decode_cores(choice.width, choice.height, fps),
            app.costs.encode_cores(
                choice.width,
                choice.height,
                fps,
                crate::transcode::video::Quality::Efficient,
            ),
        );
        // Decoding Motion-JPEG costs about what decoding H.264 of the same size does.
        let needs = encode
            + if matches!(choice.fourcc, choose::MJPG | choose::JPEG) {
                decode
            } else {
                0.0
            };
        if let Err(free) = app.costs.admit_ingest(key, app.cfg.abr.budget(), needs) {
            return Err(CaptureError::NoRoom {
                what: format!("{} {}x{}", choice.fourcc, choice.width, choice.height),
                needs,
                free,
            });
        }
    }
    let lease = app
        .registry
        .lease(&row.uid, Holder::Camera)
        .await
        .map_err(CaptureError::Ended)?;
    let entry = app
        .open_stream(&row.uid)
        .await
        .map_err(|_| CaptureError::Ended("the source was removed"))?;
    // Both timelines count from here, on the monotonic clock.
    let origin = monotonic();
    let sound = if row.audio.is_empty() {
        None
    } else {
        let device = row.audio.clone();
        Some(
            tokio::task::spawn_blocking(move || audio::open(&device))
                .await
                .map_err(|e| CaptureError::Io(io::Error::other(e)))??,
        )
    };
    let sound_rate = sound.as_ref().map_or(audio::PREFERRED_RATE, |o| o.rate);
    let audio_input = sound.as_ref().map(|o| AudioInput::Pcm {
        sample_rate: o.rate,
        channels: o.channels,
    });
    let sound_format = sound
        .as_ref()
        .map(|o| format!("sound {} Hz stereo from {}, AAC-LC", o.rate, row.audio));
    let overruns = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let stopped = Arc::new(AtomicBool::new(false));
    // Stops the thread however this session ends (it notices within STALL).
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = StopOnDrop(stopped.clone());
    {
        let (node, dropped, stopped) = (device.node.clone(), dropped.clone(), stopped.clone());
        let (tx, alive) = (tx.clone(), alive.clone());
        std::thread::Builder::new()
            .name(format!("capture {}", row.name))
            .spawn(move || {
                let end = capture(&node, choice, bitrate, origin, &tx, &dropped, &stopped);
                let _ = tx.blocking_send(Event::Ended(end));
                drop(alive);
            })
            .map_err(CaptureError::Io)?;
    }
    if let Some(opened) = sound {
        let (device, overruns, stopped) = (row.audio.clone(), overruns.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("sound {}", row.name))
            .spawn(move || {
                let end = audio::run(&device, opened, origin, &overruns, &stopped, |r| {
                    tx.blocking_send(Event::Sound(r)).is_ok()
                });
                let _ = tx.blocking_send(Event::Ended(end));
                drop(alive);
            })
            .map_err(CaptureError::Io)?;
    }
    let mut publisher = None;
    let mut frames = None;
    let mut meter: Option<IngestMeter> = None;
    let mut out = Vec::new();
    // The format as running, and the encoder's measured cost.
    let mut format = String::new();
    let mut detail = String::new();
    let mut last_report = Instant::now();
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            why = lease.ended() => return Err(CaptureError::Ended(why)),
        };
        let Some(event) = event else {
            return Err(CaptureError::Io(io::Error::other(
                "the capture thread ended",
            )));
        };
        match event {
            Event::Started(n, bitrate) => {
                format = describe(&n, bitrate);
                if let Some(s) = &sound_format {
                    format = format!("{format}; {s}");
                }
                detail.clone_from(&format);
                info!(%format, "capture started");
                let p = entry.hub.publish(&format!("device {}", row.device))?;
                let mut f = RtpFrames::new(p.base_ms(), audio_input.clone());
                // The sound track before any frame: one that came later would restart
                // the packager's output.
                f.declare(None, &mut out)?;
                crate::ingest::rtsp_pull::publish(&p, None, &mut out);
                frames = Some(f);
                publisher = Some(p);
                if let Err(e) = sources::report_capture(
                    &app.db,
                    &row.name,
                    &detail,
                    dropped.load(Ordering::Relaxed),
                )
                .await
                {
                    warn!(error = %e, "recording capture state failed");
                }
            }
            Event::Au(au, captured) => {
                let (Some(p), Some(f)) = (&publisher, frames.as_mut()) else {
                    continue;
                };
                f.video(au, &mut out)?;
                captured_at(&mut out, captured);
                if meter.is_none()
                    && out
                        .iter()
                        .any(|o| matches!(o, crate::ingest::rtp_frames::RtpOut::Frame(_)))
                {
                    info!("capture live");
                    *live_since = Some(Instant::now());
                    meter = Some(IngestMeter::new(&app.metrics, &row.name));
                    report(app, &row.name, SourceState::Live, None, 0).await;
                }
                crate::ingest::rtsp_pull::publish(p, meter.as_mut(), &mut out);
                if let Some(m) = &meter {
                    if last_report.elapsed() >= REPORT_EVERY {
                        last_report = Instant::now();
                        report_live(app, row, m.bitrate(), *live_since, &detail, dropped).await;
                    }
                }
            }
            Event::Sound(read) => {
                let (Some(p), Some(f)) = (&publisher, frames.as_mut()) else {
                    continue;
                };
                f.audio(read.at, sound_rate, &read.data, &mut out)?;
                let captured = instant_of(read.captured);
                captured_at(&mut out, captured);
                crate::ingest::rtsp_pull::publish(p, meter.as_mut(), &mut out);
            }
            Event::Cost(cores) => {
                if choice.encodes() {
                    app.costs.commit_ingest(key, Some(cores));
                }
                if !format.is_empty() {
                    detail = describe_running(
                        &format,
                        choice.encodes().then_some(cores),
                        overruns.load(Ordering::Relaxed),
                    );
                }
            }
            Event::Ended(e) => {
                if let (Some(f), Some(p)) = (frames.as_mut(), &publisher) {
                    f.finish(&mut out);
                    crate::ingest::rtsp_pull::publish(p, meter.as_mut(), &mut out);
                }
                return Err(e);
            }
        }
    }
}

async fn report_live(
    app: &App,
    row: &SourceRow,
    bitrate: u64,
    live_since: Option<Instant>,
    detail: &str,
    dropped: &std::sync::atomic::AtomicU64,
) {
    let since = live_since.map(|t| crate::db::unix_now() - t.elapsed().as_secs() as i64);
    if let Err(e) =
        sources::report(&app.db, &row.name, SourceState::Live, None, bitrate, since).await
    {
        warn!(error = %e, "recording capture state failed");
    }
    if let Err(e) =
        sources::report_capture(&app.db, &row.name, detail, dropped.load(Ordering::Relaxed)).await
    {
        warn!(error = %e, "recording capture state failed");
    }
}

/// The source's state detail while it runs: its `format`, the encoder's cost in `cores`
/// (when it encodes), and the sound card's overruns (when there were some).
fn describe_running(format: &str, cores: Option<f64>, overruns: u64) -> String {
    let mut out = format.to_string();
    if let Some(c) = cores {
        out.push_str(&format!(", {c:.2} cores"));
    }
    if overruns > 0 {
        out.push_str(&format!(
            ", {overruns} sound overrun{}",
            if overruns == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Marks the frames in `out` as captured at `captured`, so the part and segment delay
/// histograms measure from the device's capture time.
fn captured_at(out: &mut [crate::ingest::rtp_frames::RtpOut], captured: Instant) {
    for o in out {
        if let crate::ingest::rtp_frames::RtpOut::Frame(fr) = o {
            fr.received = captured;
        }
    }
}

/// The monotonic clock now (the clock V4L2 and ALSA stamp buffers with).
fn monotonic() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The [`Instant`] of `at` on the monotonic clock (both are `CLOCK_MONOTONIC`); now for a
/// time in the future.
fn instant_of(at: Duration) -> Instant {
    Instant::now()
        .checked_sub(monotonic().saturating_sub(at))
        .unwrap_or_else(Instant::now)
}

/// The monotonic time the video timeline counts from: `origin` (the sound's as well)
/// when the first buffer's `stamp` lies between it and `now`, as a driver that stamps
/// with `CLOCK_MONOTONIC` gives; otherwise (another clock) the stamp less the time since
/// `origin`, so the first frame is placed when it arrived.
fn video_zero(origin: Duration, stamp: Duration, now: Duration) -> Duration {
    if origin <= stamp && stamp <= now {
        origin
    } else {
        stamp.saturating_sub(now.saturating_sub(origin))
    }
}

/// The capture thread: streams from `node` in `choice` until `stopped`, the receiver
/// goes, or something fails; returns why it ended. Frames are stamped from `origin`
/// ([`video_zero`]). Blocking.
fn capture(
    node: &std::path::Path,
    choice: Choice,
    bitrate: u32,
    origin: Duration,
    tx: &mpsc::Sender<Event>,
    dropped: &std::sync::atomic::AtomicU64,
    stopped: &AtomicBool,
) -> CaptureError {
    let mut cap = match Capture::start(
        node,
        choice.fourcc,
        choice.width,
        choice.height,
        choice.rate,
    ) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let n = cap.format;
    if (n.fourcc, n.width, n.height) != (choice.fourcc, choice.width, choice.height) {
        return CaptureError::Renegotiated {
            asked: format!("{} {}x{}", choice.fourcc, choice.width, choice.height),
            got: format!("{} {}x{}", n.fourcc, n.width, n.height),
        };
    }
    let fps = n.rate.or(choice.rate).map_or(30.0, |r| r.fps());
    let mut pipeline = match Pipeline::new(n, bitrate, fps) {
        Ok(p) => p,
        Err(e) => return CaptureError::Frame(FrameError::Encode(e)),
    };
    if tx.blocking_send(Event::Started(n, bitrate)).is_err() {
        return CaptureError::Ended("stopped");
    }
    let mut first: Option<Duration> = None;
    let mut grid = FrameGrid::new(n.rate.or(choice.rate));
    let mut last_sequence: Option<u32> = None;
    let mut cpu = (crate::transcode::cost::thread_cpu_seconds(), Instant::now());
    loop {
        if stopped.load(Ordering::Relaxed) {
            return CaptureError::Ended("stopped");
        }
        let step = cap.next(STALL, |data, info| {
            if let Some(prev) = last_sequence {
                let gap = info.sequence.wrapping_sub(prev).wrapping_sub(1);
                // A counter that went back (a driver restart) is not a gap.
                if gap > 0 && gap < 1 << 20 {
                    dropped.fetch_add(u64::from(gap), Ordering::Relaxed);
                }
            }
            last_sequence = Some(info.sequence);
            if info.error {
                dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            let t0 = *first.get_or_insert_with(|| video_zero(origin, info.timestamp, monotonic()));
            let pts = grid.place(info.timestamp.saturating_sub(t0), info.sequence);
            let captured = instant_of(info.timestamp);
            match pipeline.push(data, pts) {
                Ok(au) => Ok(au.map(|a| (a, captured))),
                Err(FrameError::Picture(e)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "frame skipped");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        });
        match step {
            Err(e) => return e.into(),
            Ok(None) => return CaptureError::Stalled,
            Ok(Some(Err(e))) => return CaptureError::Frame(e),
            Ok(Some(Ok(None))) => {}
            Ok(Some(Ok(Some((au, captured))))) => {
                if tx.blocking_send(Event::Au(au, captured)).is_err() {
                    return CaptureError::Ended("stopped");
                }
            }
        }
        let elapsed = cpu.1.elapsed();
        if elapsed >= REPORT_EVERY {
            let now = crate::transcode::cost::thread_cpu_seconds();
            let cores = (now - cpu.0) / elapsed.as_secs_f64();
            cpu = (now, Instant::now());
            if tx.blocking_send(Event::Cost(cores)).is_err() {
                return CaptureError::Ended("stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::rtsp_pull::sources::SourceKind;

    #[test]
    fn kernel_errors_become_states() {
        use rustix::io::Errno;
        let e = |n: Errno| CaptureError::from(io::Error::from_raw_os_error(n.raw_os_error()));
        assert_eq!(e(Errno::NODEV).state(), SourceState::Unplugged);
        assert_eq!(e(Errno::NOENT).state(), SourceState::Unplugged);
        assert!(matches!(e(Errno::BUSY), CaptureError::Busy));
        assert_eq!(e(Errno::BUSY).state(), SourceState::Retrying);
        assert_eq!(e(Errno::ACCESS).state(), SourceState::Failed);
        assert_eq!(CaptureError::Stalled.state(), SourceState::Retrying);
        assert_eq!(CaptureError::AudioUnplugged.state(), SourceState::Unplugged);
        assert_eq!(CaptureError::AudioBusy.state(), SourceState::Retrying);
        assert_eq!(CaptureError::AudioStalled.state(), SourceState::Retrying);
    }

    #[test]
    fn pictures_count_from_the_origin_the_sound_counts_from() {
        let s = Duration::from_secs_f64;
        // A driver that stamps with the monotonic clock: the shared origin.
        assert_eq!(video_zero(s(100.0), s(100.2), s(100.25)), s(100.0));
        // Another clock (stamps far off): the first frame is placed when it arrived.
        assert_eq!(video_zero(s(100.0), s(5.0), s(100.25)), s(4.75));
        assert_eq!(video_zero(s(100.0), s(900.0), s(100.25)), s(899.75));
    }

    #[test]
    fn bitrate_follows_the_row_or_the_ladder_table() {
        let mut row = SourceRow::blank(SourceKind::Capture);
        assert_eq!(bitrate_for(requested_bitrate(&row), 720, 30.0), 2_800_000);
        assert_eq!(bitrate_for(requested_bitrate(&row), 720, 60.0), 5_600_000);
        row.video_bitrate = 4_000_000;
        assert_eq!(bitrate_for(requested_bitrate(&row), 720, 30.0), 4_000_000);
        row.width = 1280;
        row.height = 720;
        row.fps = 25.0;
        assert_eq!(
            request_of(&row),
            Request {
                size: Some((1280, 720)),
                fps: Some(25.0)
            }
        );
    }
}
