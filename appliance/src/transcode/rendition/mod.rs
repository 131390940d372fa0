//! ABR renditions of a live stream: the source decoded once, scaled and encoded per rung,
//! each rung a hub of its own (packaged like any stream) that follows the source's
//! clock, segment cuts and sequence numbers.
//!
//! ```text
//! source hub ─► feeder (async, never blocks) ─► decoder thread ─┬─► rung thread ─► rung hub ─► packager
//!                  bounded queue                  bounded queues ├─► rung thread ─► rung hub ─► packager
//!                                                                └─► …
//! ```
//!
//! Timing: a rung picture shown at the source's PTS `p` gets `dts = p − D` and
//! `cts = D`, where `D` is the composition offset of the source's keyframes (its
//! B-frame delay), so a rung keyframe has exactly the source keyframe's decode time and
//! presentation time. Rungs put an IDR at every source keyframe and nowhere else, so
//! their segments cut where the source's do (see [`crate::packager::segmenter::Follow`]).
//!
//! Overload: the feeder starts at the source's next keyframe (not its GOP cache, whose
//! burst would look like overload) and hands frames to the decoder without ever waiting.
//! The decoder waits for a rung with a full queue, up to [`RUNG_WAIT`]. A full decoder
//! queue (about two seconds behind), or a rung stuck that long, means the machine is not
//! keeping up: the lowest-priority rung still running is dropped (logged, and visible as
//! `streambox_rendition_running` 0), and the feeder skips to the next keyframe. The
//! source rendition never waits on any of this, and codec threads run at a lower
//! scheduling priority ([`crate::transcode::cost::CODEC_NICE`]) so that CPU they cannot get is
//! taken from them, not from ingest and packaging.
//!
//! Room again: a dropped rung gives its cores back at once. After `abr.retry_dropped_after`
//! seconds (doubled for each further drop of the same rung), the supervisor starts it
//! again if the budget has room for it and the machine, measured, has that much idle CPU
//! with a margin; rungs that did not fit when the ladder started are tried the same way.
//! One rung starts at a time (the highest-priority one that fits: on a small machine a
//! lower rung may fit before a higher one does, and is not kept waiting for it), at the
//! source's next keyframe, so its segments line up with the others from its first one.
//!
//! Quality: a rung runs at the ladder's preset or a cheaper one admission chose. Once
//! every rung runs, one below the ladder's preset moves up (one at a time) when the
//! budget and the idle CPU have room for what the dearer preset adds; a new ladder
//! preset moves every running rung (up only as far as the budget allows). Either way
//! the rung's own thread changes scaler and encoder at its next keyframe
//! (`Rendition::switch`), so nothing restarts and its segments stay aligned.
//!
//! Audio: rungs carry no audio of their own; every variant plays the source's audio
//! group. When the source's audio is not AAC-LC mono or stereo at 44.1 or 48 kHz (5.1,
//! HE-AAC, 32 kHz, …), the group is a `stereo` rendition instead: the source's AAC
//! decoded with fdk-aac, downmixed to stereo, resampled to 48 kHz when its rate is
//! another ([`super::resample`]), and encoded to AAC-LC.
//!
//! Layout: this module holds the public face ([`Renditions`], [`Transcoding`],
//! [`supervise`]) and the supervisor's loop; `supervisor` the pipeline of one stream
//! (admission, dropping, starting again); `decoder` the feeder and the decoder thread;
//! `rung` a rung's encoder thread; `audio` the stereo rendition's thread.

use super::aac::{AacDecoder, AacEncoder};
use super::ladder::{self, Planned};
use super::resample::Resampler;
use super::video::{Decoded, Quality, Scaler, VideoDecoder, VideoEncoder};
use crate::config::{AbrConfig, LiveConfig};
use crate::hub::{Hub, PublishState};
use crate::media::{Frame, TrackId, TrackParams};
use crate::metrics::Metrics;
use crate::packager::segmenter::Follow;
use crate::packager::{self, LiveStream};
use crate::streams::life::StreamLife;
use crate::streams::StreamUid;
use crate::system::cpu::CpuTimes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tracing::{info, warn, Instrument};

mod audio;
mod decoder;
mod rung;
mod supervisor;

use audio::*;
use decoder::*;
use rung::*;
use supervisor::*;

/// Source audio access units waiting for the audio thread: about 5 s at 48 kHz.
const AUDIO_QUEUE: usize = 256;
/// Source frames waiting for the decoder: about two seconds at 30 fps.
const DECODE_QUEUE: usize = 64;
/// Decoded pictures waiting for one rung's scaler and encoder.
const RUNG_QUEUE: usize = 8;
/// How long the decoder waits for a rung whose queue is full before dropping a rung.
const RUNG_WAIT: Duration = Duration::from_secs(2);
/// A feeder starts from the source's cached GOP only when its keyframe arrived this
/// recently (a burst of older frames would look like overload).
const FRESH_GOP: Duration = Duration::from_millis(500);
/// How often the supervisor re-reads the ladder and looks for room for waiting rungs.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// A waiting rung starts again only when the machine's measured idle CPU is this many
/// times what the rung is estimated to take.
const IDLE_MARGIN: f64 = 1.25;

/// Name of the transcoded audio rendition.
pub const STEREO: &str = "stereo";

/// One rung's output (or the transcoded audio's): a hub of its own and its packaged
/// window.
pub struct Rendition {
    /// The rung's name (`720p`, or [`STEREO`]): its URL path under the stream.
    pub name: String,
    /// Its one track: video for a rung, audio for [`STEREO`].
    pub track: TrackId,
    /// The rung's frames.
    pub hub: Arc<Hub>,
    /// The rung's segments and playlists.
    pub output: Arc<LiveStream>,
    /// The size and bitrate it is made at (rungs only).
    pub planned: Mutex<Option<Planned>>,
    /// The quality preset it is (or was last) made at (rungs only).
    quality: Mutex<Quality>,
    /// The preset the supervisor wants the running rung at, from its next keyframe on
    /// (the ladder's preset changed, or there is room for a dearer one); the rung's
    /// thread takes it there.
    switch_to: Mutex<Option<Quality>>,
    /// Being made now (false once dropped under overload, or off the ladder).
    running: AtomicBool,
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rendition({})", self.name)
    }
}

impl Rendition {
    /// Whether the rung is being made now.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// The size and bitrate it is made at (rungs only).
    pub fn planned(&self) -> Option<Planned> {
        self.planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The quality preset it is (or was last) made at (rungs only): the ladder's, or
    /// a cheaper one when the machine could not afford it.
    pub fn quality(&self) -> Quality {
        *self.quality.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the running rung to move to `quality` at its next keyframe (`None`: stay).
    fn switch(&self, quality: Option<Quality>) {
        *self.switch_to.lock().unwrap_or_else(|e| e.into_inner()) = quality;
    }

    /// The preset asked for by [`Rendition::switch`], taken (once).
    fn take_switch(&self) -> Option<Quality> {
        self.switch_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// The renditions of one stream, in ladder (priority) order.
#[derive(Debug, Default)]
pub struct Renditions {
    list: RwLock<Vec<Arc<Rendition>>>,
}

impl Renditions {
    /// The rendition named `name`, running or not.
    pub fn get(&self, name: &str) -> Option<Arc<Rendition>> {
        self.read().iter().find(|r| r.name == name).cloned()
    }

    /// Every video rung being made now, largest first.
    pub fn running(&self) -> Vec<Arc<Rendition>> {
        let mut out: Vec<Arc<Rendition>> = self
            .read()
            .iter()
            .filter(|r| r.running() && r.track == TrackId::Video)
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.planned().map_or(0, |p| p.height)));
        out
    }

    /// The transcoded audio rendition, while it is being made.
    pub fn audio(&self) -> Option<Arc<Rendition>> {
        self.read()
            .iter()
            .find(|r| r.running() && r.track == TrackId::Audio)
            .cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Rendition>>> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the renditions of a stream work with: its stored ladder, the cost model and
/// the cores committed, the metrics, and the ABR and packaging settings. Cheap to
/// clone.
#[derive(Clone)]
pub struct Transcoding {
    /// The ladder settings (`ladder_settings`).
    pub db: sqlx::SqlitePool,
    /// What transcoding costs here, and the cores committed to ABR ladders.
    pub costs: Arc<crate::transcode::cost::Costs>,
    /// Rung and core metrics, per stream.
    pub metrics: Arc<Metrics>,
    /// The `abr` settings: the budget, the retry wait.
    pub abr: AbrConfig,
    /// The `live` settings the rungs' packagers use.
    pub live: LiveConfig,
}

/// Starts the supervisor of `source`'s ladder: it (re)starts the transcoder whenever the
/// stream is live and its ladder or source size changes.
pub fn supervise(
    ctx: Transcoding,
    uid: StreamUid,
    hub: Arc<Hub>,
    source: Arc<LiveStream>,
    renditions: Arc<Renditions>,
    life: &StreamLife,
) {
    let span = tracing::info_span!("abr", stream = %hub.name());
    let task = run(ctx, uid, hub, source, renditions, life.clone());
    life.spawn(task.instrument(span));
}

/// What a running transcoder was started for; a change restarts it. (The rungs'
/// quality preset is not part of it: the running pipeline moves to a new one,
/// [`Pipeline::set_quality`].)
#[derive(Debug, Clone, PartialEq)]
struct Want {
    ladder: String,
    width: u32,
    height: u32,
    session: u64,
    /// The source's audio, when it needs the stereo rendition.
    audio: Option<Arc<TrackParams>>,
    /// Why the source's video cannot be decoded here, if it cannot.
    undecodable: Option<String>,
}

/// Whether players need the source's audio transcoded: more than two channels, not
/// AAC-LC (object type 2), or a sample rate other than 44.1 or 48 kHz.
pub fn needs_stereo(params: &TrackParams) -> bool {
    matches!(params, TrackParams::Audio(a)
        if a.channels > 2 || a.object_type != 2 || !is_common_rate(a.sample_rate))
}

/// 44.1 or 48 kHz, the rates every player and device takes.
fn is_common_rate(hz: u32) -> bool {
    matches!(hz, 44_100 | 48_000)
}

async fn run(
    ctx: Transcoding,
    uid: StreamUid,
    hub: Arc<Hub>,
    source: Arc<LiveStream>,
    renditions: Arc<Renditions>,
    life: StreamLife,
) {
    let mut state = hub.state();
    let mut running: Option<(Want, Pipeline)> = None;
    let mut stored = ladder::Settings::default();
    let mut cpu = CpuTimes::read().ok();
    // The feeder saw the source change size: restart even if the parameters read the same.
    let mut resized = false;
    loop {
        match ladder::get(&ctx.db, &uid).await {
            Ok(l) => stored = l,
            Err(e) => warn!(error = %e, "reading the ladder failed"),
        }
        let session = match &*state.borrow_and_update() {
            PublishState::Live { session, .. } => Some(*session),
            PublishState::Idle => None,
        };
        let params = hub.params();
        let video = params.get(&TrackId::Video).cloned();
        let audio = params
            .get(&TrackId::Audio)
            .filter(|a| needs_stereo(a))
            .cloned();
        let want = match (session, video.as_deref()) {
            (Some(session), Some(TrackParams::Video(v))) if !stored.ladder.rungs.is_empty() => {
                Some(Want {
                    ladder: stored.ladder.to_string(),
                    width: v.width,
                    height: v.height,
                    session,
                    audio,
                    undecodable: super::video::unsupported_profile(v),
                })
            }
            _ => None,
        };
        if resized || running.as_ref().map(|r| &r.0) != want.as_ref() {
            resized = false;
            if let Some((_, p)) = running.take() {
                p.stop().await;
            }
            if let Some(want) = want {
                let p = Pipeline::start(&ctx, &hub, &source, &renditions, &want, &stored, &life);
                running = Some((want, p));
            }
        }
        // A new quality preset alone: the rungs move to it at their next keyframes,
        // without a restart.
        if let Some((_, p)) = &mut running {
            if p.quality != stored.quality {
                p.set_quality(&ctx, stored.quality);
            }
        }
        let now = CpuTimes::read().ok();
        let idle = now.zip(cpu).and_then(|(n, e)| n.idle_cores_since(&e));
        cpu = now;
        if let Some((_, p)) = &mut running {
            p.check(&ctx, idle);
        }
        let notify = running.as_ref().map(|(_, p)| p.resized.clone());
        tokio::select! {
            r = state.changed() => if r.is_err() { break },
            () = life.cancelled() => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            // The source's first keyframe at a new size: restart now, from that keyframe.
            _ = async {
                match &notify {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            } => resized = true,
        }
    }
    // The stream closed: the codec threads end and give their cores back.
    if let Some((_, p)) = running.take() {
        p.stop().await;
    }
}
