//! Pulling live video from IP cameras over RTSP (RFC 2326), with retina as the client.
//!
//! [`run`] keeps one task per `rtsp` row of the `sources` table (through
//! `ingest::keep_source_tasks`, as the capture sources do), re-reading it whenever the
//! registry sees the configuration change (at once for this process's changes, within a
//! moment for `streambox source add|rm` in another), and at least every
//! [`RECONCILE_EVERY`]. Each task connects (DESCRIBE, SETUP,
//! PLAY over TCP-interleaved or UDP, Basic or Digest authentication), publishes into the
//! stream of the same name, and on any failure retries with exponential backoff and
//! jitter up to `sources.retry_max`. Every reconnection is a new publish session, so the
//! stream resumes with a discontinuity. Removing a source drops its session, which sends
//! TEARDOWN; a session holds a lease on its stream, which ends it at once when the
//! camera is deleted.
//!
//! The state (connecting, live, retrying, failed), last error, bitrate and uptime are
//! written to the `sources` row for `streambox source list`.

pub mod sources;

use crate::app::App;
use crate::hub::HubError;
use crate::ingest::rtp_frames::{AudioInput, RtpFrames, RtpMediaError, RtpOut, VideoAu};
use crate::ingest::IngestMeter;
use crate::streams::registry::Holder;
use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions, Session,
    SessionGroup, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use sources::{SourceRow, SourceState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{info, warn, Instrument};
use url::Url;

/// How often the `sources` table is re-read.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// A camera that sends no media for this long is reconnected.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// DESCRIBE, SETUP and PLAY together must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The first wait before reconnecting; it doubles on each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// A session that stayed live this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How often a live source's bitrate is written to the database.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Why a camera session ended.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The stored URL does not parse (the row was edited by hand).
    #[error("invalid camera URL: {0}")]
    Url(#[from] url::ParseError),
    /// The RTSP exchange or the RTP stream failed: retina's whole message, with its
    /// context (`conn:` the addresses, `msg:` or `pkt:` where in the stream: the
    /// position, the RTP sequence number), on one line.
    #[error("{}", one_line(&.0.to_string()))]
    Rtsp(#[from] retina::Error),
    /// DESCRIBE got no RTSP answer: nothing listens there, or it speaks something else
    /// (retina's whole message, on one line).
    #[error("{}", one_line(&.0.to_string()))]
    Unreachable(retina::Error),
    /// DESCRIBE, SETUP and PLAY took longer than [`CONNECT_TIMEOUT`].
    #[error("camera did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout,
    /// The camera offers nothing streambox can carry.
    #[error(
        "no usable media: camera offers {0}; streambox takes H.264 video and AAC or G.711 audio"
    )]
    NoUsableMedia(String),
    /// Connected, but no media for [`STALL_TIMEOUT`].
    #[error("no media from the camera for {}s", STALL_TIMEOUT.as_secs())]
    Stalled,
    /// The camera ended the session.
    #[error("camera ended the stream")]
    CameraEnded,
    /// An access unit could not become a frame.
    #[error(transparent)]
    Media(#[from] RtpMediaError),
    /// Something else publishes the stream.
    #[error(transparent)]
    Busy(#[from] HubError),
    /// The appliance ended the session (the camera was removed).
    #[error("ended: {0}")]
    Ended(&'static str),
}

impl PullError {
    /// Whether an RTSP server answered (with a status, or a session that then failed),
    /// as opposed to nothing answering as one: a closed port, a timeout, another
    /// protocol. "Test connection" tells people only this much about the latter, so it
    /// cannot map which ports are open.
    pub fn spoke_rtsp(&self) -> bool {
        !matches!(self, PullError::Unreachable(_) | PullError::ConnectTimeout)
    }

    /// Whether waiting will not fix this: wrong credentials, a wrong path, or media
    /// streambox cannot carry. Such a source shows as `failed`.
    pub fn is_permanent(&self) -> bool {
        match self {
            PullError::Rtsp(e) => matches!(e.status_code(), Some(401 | 403 | 404 | 451 | 461)),
            PullError::Url(_) | PullError::NoUsableMedia(_) => true,
            _ => false,
        }
    }
}

/// `s`'s lines, trimmed, joined with `; `: a multi-line error as one log field or
/// table cell.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn identity(r: &SourceRow) -> (String, String, String, String, String) {
    (
        r.name.clone(),
        r.url.clone(),
        r.username.clone(),
        r.password.clone(),
        r.transport.clone(),
    )
}

/// A camera that answered DESCRIBE, SETUP and PLAY: the demuxed media, the index of the
/// H.264 video stream and the audio input, if any.
type Connected = (retina::client::Demuxed, Option<usize>, Option<AudioInput>);

/// DESCRIBE, SETUP (the H.264 video and the first usable audio) and PLAY, within
/// [`CONNECT_TIMEOUT`].
async fn connect(
    row: &SourceRow,
    url: Url,
    group: Option<Arc<SessionGroup>>,
) -> Result<Connected, PullError> {
    let creds = (!row.username.is_empty()).then(|| Credentials {
        username: row.username.clone(),
        password: row.password.clone(),
    });
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("streambox/{}", env!("CARGO_PKG_VERSION")));
    let options = match group {
        Some(g) => options.session_group(g),
        None => options,
    };
    let transport = match row.transport.as_str() {
        "udp" => Transport::Udp(Default::default()),
        _ => Transport::Tcp(Default::default()),
    };
    let connect = async {
        let mut session = Session::describe(url, options).await.map_err(|e| {
            if e.status_code().is_some() {
                PullError::Rtsp(e)
            } else {
                PullError::Unreachable(e)
            }
        })?;
        let streams = session.streams();
        let video = streams
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"));
        let audio = streams.iter().enumerate().find_map(|(i, s)| {
            if s.media() != "audio" {
                return None;
            }
            let channels = s.channels().map_or(1, |c| c.get());
            let aac_config = match s.parameters() {
                Some(ParametersRef::Audio(a)) => Some(Bytes::copy_from_slice(a.extra_data())),
                _ => None,
            };
            AudioInput::from_encoding(s.encoding_name(), s.clock_rate_hz(), channels, aac_config)
                .map(|a| (i, a))
        });
        let offered: Vec<String> = streams
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        if video.is_none() && audio.is_none() {
            return Err(PullError::NoUsableMedia(offered.join(", ")));
        }
        info!(offered = %offered.join(", "), video = video.is_some(), audio = ?audio.as_ref().map(|a| &a.1), "camera described");
        for i in [video, audio.as_ref().map(|a| a.0)].into_iter().flatten() {
            session
                .setup(
                    i,
                    SetupOptions::default()
                        .transport(transport.clone())
                        .frame_format(FrameFormat::MP4),
                )
                .await?;
        }
        // Timestamps are checked by `RtpFrames`: retina's own check refuses the backward
        // steps that B-frames make.
        // The RTP-Info sequence number is not trusted either: a camera that shares one
        // media among its clients (GStreamer's RTSP server does) reports a stale one to
        // a client that joins while another is playing, and retina would end the
        // session at the first packet.
        let playing = session
            .play(
                PlayOptions::default()
                    .initial_timestamp(InitialTimestampPolicy::Permissive)
                    .initial_seq(InitialSequenceNumberPolicy::Ignore),
            )
            .await?;
        Ok::<_, PullError>((playing.demuxed()?, video, audio.map(|a| a.1)))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| PullError::ConnectTimeout)?
}

/// How long [`probe`] waits for the first video frame after PLAY.
const PROBE_FRAME_WAIT: Duration = Duration::from_secs(8);

/// "Test connection": connects to the camera as the service would (DESCRIBE, SETUP,
/// PLAY), waits for its first video frame, and hangs up (TEARDOWN). Returns a sentence
/// for people: what the camera offers and what arrived.
///
/// # Errors
/// The [`PullError`] the service would hit: bad URL, refused credentials, no usable
/// media, a timeout, or no media after PLAY ([`PullError::Stalled`]).
pub async fn probe(row: &SourceRow) -> Result<String, PullError> {
    let url = Url::parse(&row.url)?;
    let (mut demuxed, video, audio) = connect(row, url, None).await?;
    let offered: Vec<String> = demuxed
        .streams()
        .iter()
        .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
        .collect();
    let deadline = tokio::time::Instant::now() + PROBE_FRAME_WAIT;
    loop {
        let item = match tokio::time::timeout_at(deadline, demuxed.next()).await {
            Err(_) => return Err(PullError::Stalled),
            Ok(None) => return Err(PullError::CameraEnded),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(item))) => item,
        };
        let got = match item {
            CodecItem::VideoFrame(_) => "video",
            CodecItem::AudioFrame(_) if video.is_none() => "audio",
            _ => continue,
        };
        let audio = match &audio {
            Some(AudioInput::Aac(_)) => Some("AAC audio"),
            Some(AudioInput::G711 { .. }) => Some("G.711 audio (made AAC)"),
            Some(AudioInput::Pcm { .. }) => Some("PCM audio (made AAC)"),
            None => None,
        };
        let what = match (video.is_some(), audio) {
            (true, Some(a)) => format!("H.264 video and {a}"),
            (true, None) => "H.264 video, no usable audio".to_string(),
            (false, Some(a)) => format!("{a} only"),
            (false, None) => "nothing usable".to_string(),
        };
        return Ok(format!(
            "Connected: the camera offers {}; streambox takes {what}, and its first {got} frame arrived.",
            offered.join(", ")
        ));
    }
}

/// Keeps one pull task per configured camera, forever
/// (`ingest::keep_source_tasks`).
pub async fn run(app: App) {
    let group = Arc::new(SessionGroup::default());
    let retry_max = Duration::from_secs_f64(app.cfg.sources.retry_max);
    let a = app.clone();
    let start = move |row: SourceRow, stopped| {
        let span = tracing::info_span!("camera", source = %row.name, url = %row.display_url());
        tokio::spawn(pull(a.clone(), row, group.clone(), retry_max, stopped).instrument(span))
    };
    crate::ingest::keep_source_tasks(&app, sources::SourceKind::Rtsp, "camera", identity, start)
        .await;
}

/// One source: connect, stream, and retry, until `stop` fires or is dropped.
async fn pull(
    app: App,
    row: SourceRow,
    group: Arc<SessionGroup>,
    retry_max: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut delay = FIRST_RETRY;
    loop {
        report(&app, &row.name, SourceState::Connecting, None, 0, None).await;
        let mut live_since = None;
        let result = tokio::select! {
            r = session(&app, &row, &group, &mut live_since) => r,
            // The session future is dropped here, and with it retina's session, which
            // sends TEARDOWN.
            _ = &mut stop => {
                info!("camera session stopped");
                return;
            }
        };
        let e = match result {
            Ok(()) => PullError::CameraEnded,
            Err(e) => e,
        };
        if live_since.is_some_and(|t: Instant| t.elapsed() >= HEALTHY_AFTER) {
            delay = FIRST_RETRY;
        }
        let state = if e.is_permanent() {
            delay = retry_max;
            SourceState::Failed
        } else {
            SourceState::Retrying
        };
        // Equal jitter: between half the delay and all of it, so many cameras that
        // dropped together do not come back together.
        let wait = delay.mul_f64(rand::random_range(0.5..=1.0));
        // Camera URLs may carry credentials in their query; an error quoting one is masked.
        let error = sources::mask_urls_in(&e.to_string());
        warn!(%error, state = %state, retry_in_s = wait.as_secs_f32(), "camera session ended");
        report(&app, &row.name, state, Some(&error), 0, None).await;
        if matches!(e, PullError::Ended(_)) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return,
        }
        delay = (delay * 2).min(retry_max);
    }
}

async fn report(
    app: &App,
    name: &str,
    state: SourceState,
    error: Option<&str>,
    bitrate: u64,
    live_since: Option<i64>,
) {
    if let Err(e) = sources::report(&app.db, name, state, error, bitrate, live_since).await {
        warn!(error = %e, "recording camera state failed");
    }
}

/// Connects, plays and publishes until the session fails. `live_since` is set when the
/// first frame goes out.
async fn session(
    app: &App,
    row: &SourceRow,
    group: &Arc<SessionGroup>,
    live_since: &mut Option<Instant>,
) -> Result<(), PullError> {
    let url = Url::parse(&row.url)?;
    let peer = url.host_str().unwrap_or("camera").to_string();
    let (mut demuxed, video, audio) = connect(row, url, Some(group.clone())).await?;
    let lease = app
        .registry
        .lease(&row.uid, Holder::Camera)
        .await
        .map_err(PullError::Ended)?;
    let entry = app
        .open_stream(&row.uid)
        .await
        .map_err(|_| PullError::Ended("the camera was removed"))?;
    let publisher = entry.hub.publish(&format!("rtsp://{peer}"))?;
    let mut frames = RtpFrames::new(publisher.base_ms(), audio);
    let mut out = Vec::new();
    // Declare the tracks up front (the SDP's parameters), so the packager does not
    // restart when the second track's first frame comes.
    let video_params =
        video
            .and_then(|i| demuxed.streams().get(i))
            .and_then(|s| match s.parameters() {
                Some(ParametersRef::Video(v)) => Some(Bytes::copy_from_slice(v.extra_data())),
                _ => None,
            });
    if let Err(e) = frames.declare(video_params, &mut out) {
        warn!(error = %e, "described parameters unusable; waiting for in-band ones");
    }
    publish(&publisher, None, &mut out);
    let mut meter: Option<IngestMeter> = None;
    let mut last_report = Instant::now();
    let result = loop {
        let next = tokio::select! {
            n = tokio::time::timeout(STALL_TIMEOUT, demuxed.next()) => n,
            why = lease.ended() => break Err(PullError::Ended(why)),
        };
        let item = match next {
            Err(_) => break Err(PullError::Stalled),
            Ok(None) => break Err(PullError::CameraEnded),
            Ok(Some(Err(e))) => break Err(e.into()),
            Ok(Some(Ok(item))) => item,
        };
        let step = match item {
            CodecItem::VideoFrame(f) => {
                // retina prefers in-band SPS/PPS over the SDP's, and flags a change.
                let params = if f.has_new_parameters() || !frames.has_video_params() {
                    match demuxed
                        .streams()
                        .get(f.stream_id())
                        .and_then(|s| s.parameters())
                    {
                        Some(ParametersRef::Video(v)) => {
                            Some(Bytes::copy_from_slice(v.extra_data()))
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                let ts = f.timestamp();
                let au = VideoAu {
                    pts: ts.elapsed() * 90_000 / i64::from(ts.clock_rate().get()),
                    is_sync: f.is_random_access_point(),
                    data: Bytes::from(f.into_data()),
                    params,
                };
                frames.video(au, &mut out)
            }
            CodecItem::AudioFrame(f) => {
                let ts = f.timestamp();
                frames.audio(ts.elapsed(), ts.clock_rate().get(), f.data(), &mut out)
            }
            _ => Ok(()),
        };
        if let Err(e) = step {
            break Err(e.into());
        }
        let first = meter.is_none() && out.iter().any(|o| matches!(o, RtpOut::Frame(_)));
        if first {
            info!("camera live");
            *live_since = Some(Instant::now());
            meter = Some(IngestMeter::new(&app.metrics, &row.name));
            report(
                app,
                &row.name,
                SourceState::Live,
                None,
                0,
                Some(crate::db::unix_now()),
            )
            .await;
        }
        publish(&publisher, meter.as_mut(), &mut out);
        if let Some(m) = &meter {
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                let since =
                    live_since.map(|t| crate::db::unix_now() - t.elapsed().as_secs() as i64);
                report(app, &row.name, SourceState::Live, None, m.bitrate(), since).await;
            }
        }
    };
    frames.finish(&mut out);
    publish(&publisher, meter.as_mut(), &mut out);
    result
}

/// Hands what [`RtpFrames`] made to the stream: parameters to the publisher, frames
/// counted by `meter` (when live) and sent. Drains `out`.
pub(crate) fn publish(
    publisher: &crate::hub::Publisher,
    mut meter: Option<&mut IngestMeter>,
    out: &mut Vec<RtpOut>,
) {
    for o in out.drain(..) {
        match o {
            RtpOut::Params(p) => publisher.set_params(p),
            RtpOut::Frame(f) => {
                if let Some(m) = meter.as_deref_mut() {
                    m.frame(f.track, f.data.len());
                }
                publisher.send(f);
            }
        }
    }
}
