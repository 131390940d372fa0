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
//! scheduling priority ([`super::cost::CODEC_NICE`]) so that CPU they cannot get is
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
//! Audio: rungs carry no audio of their own; every variant plays the source's audio
//! group. When the source's audio is not AAC-LC mono or stereo at 44.1 or 48 kHz (5.1,
//! HE-AAC, 32 kHz, …), the group is a `stereo` rendition instead: the source's AAC
//! decoded with fdk-aac, downmixed to stereo, resampled to 48 kHz when its rate is
//! another ([`super::resample`]), and encoded to AAC-LC.

use super::aac::{AacDecoder, AacEncoder};
use super::ladder::{self, Planned};
use super::resample::Resampler;
use super::video::{Decoded, Scaler, VideoDecoder, VideoEncoder};
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
    pub costs: Arc<super::cost::Costs>,
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

/// What a running transcoder was started for.
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
    let mut stored = ladder::Ladder::default();
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
            (Some(session), Some(TrackParams::Video(v))) if !stored.rungs.is_empty() => {
                Some(Want {
                    ladder: stored.to_string(),
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
                let mut planned = stored.plan(want.width, want.height);
                if let Some(why) = &want.undecodable {
                    warn!(
                        "ABR: the source's H.264 profile {why} cannot be decoded here (OpenH264 takes Baseline, Main and High, 8-bit 4:2:0): passthrough only"
                    );
                    planned.clear();
                } else if planned.is_empty() {
                    info!(
                        width = want.width,
                        height = want.height,
                        "the source is not above any rung of the ladder: passthrough only"
                    );
                }
                let p = Pipeline::start(&ctx, &hub, &source, &renditions, &want, planned, &life);
                running = Some((want, p));
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

/// One rung of a running ladder: being made, or waiting for room.
struct Slot {
    r: Arc<Rendition>,
    planned: Planned,
    /// Its thread, until a check finds it finished and joins it.
    thread: Option<std::thread::JoinHandle<()>>,
    /// When it stopped (dropped, or not admitted when the ladder started); `None` while
    /// it runs.
    stopped_at: Option<Instant>,
    /// Times it was dropped while this ladder ran.
    drops: u32,
}

/// A running transcoder: the feeder task and the codec threads it feeds.
struct Pipeline {
    feeder: tokio::task::JoinHandle<()>,
    /// The decoder and audio threads.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Every rung of the plan, in priority order, running or not.
    slots: Vec<Slot>,
    /// Hands a restarted rung's queue (by slot index) to the decoder.
    revive: Option<SyncSender<(usize, SyncSender<Job>)>>,
    shed: Arc<Shed>,
    /// The audio rendition, when made.
    audio: Vec<Arc<Rendition>>,
    /// The source's width, height (pixels) and frame rate (per second).
    source: (u32, u32, f64),
    /// When a rung was last started.
    last_start: Instant,
    /// Told by the feeder when the source's video changes size.
    resized: Arc<tokio::sync::Notify>,
}

impl Pipeline {
    fn start(
        ctx: &Transcoding,
        hub: &Arc<Hub>,
        source: &Arc<LiveStream>,
        renditions: &Renditions,
        want: &Want,
        planned: Vec<Planned>,
        life: &StreamLife,
    ) -> Pipeline {
        let fps = source.read().frame_rate.unwrap_or(30.0).clamp(1.0, 120.0);
        let stream = hub.name();
        let admitted = admit(ctx, stream, want, &planned, fps);
        let stereo = want.audio.is_some();
        let now = Instant::now();
        let mut slots = Vec::new();
        let mut senders = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            let r = rendition(ctx, hub, source, renditions, &p.name, TrackId::Video, life);
            *r.planned.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
            let mut slot = Slot {
                r,
                planned: p,
                thread: None,
                stopped_at: Some(now),
                drops: 0,
            };
            let tx = if admitted.contains(&i) {
                start_rung(ctx, stream, &mut slot, fps)
            } else {
                None
            };
            senders.push(tx);
            slots.push(slot);
        }
        let mut audio = Vec::new();
        let mut threads = Vec::new();
        let mut audio_tx = None;
        if stereo {
            let r = rendition(ctx, hub, source, renditions, STEREO, TrackId::Audio, life);
            r.running.store(true, Ordering::Relaxed);
            set_running_metric(ctx, stream, &r.name, true);
            let (tx, rx) = sync_channel::<Arc<Frame>>(AUDIO_QUEUE);
            let rr = r.clone();
            let name = stream.to_string();
            match std::thread::Builder::new()
                .name("abr-audio".into())
                .spawn(move || audio_thread(&name, &rr, rx))
            {
                Ok(t) => {
                    threads.push(t);
                    audio_tx = Some(tx);
                }
                Err(e) => warn!(error = %e, "cannot start the ABR audio thread"),
            }
            audio.push(r);
        }
        let shed = Arc::new(Shed {
            ctx: ctx.clone(),
            stream: stream.to_string(),
            rungs: slots.iter().map(|s| s.r.clone()).collect(),
        });
        let started: Vec<&str> = shed
            .rungs
            .iter()
            .chain(&audio)
            .filter(|r| r.running())
            .map(|r| r.name.as_str())
            .collect();
        if !started.is_empty() {
            info!(renditions = %started.join(","), "ABR ladder started");
        }
        // The decoder runs for the rungs, even while none is running (it then gets
        // nothing to decode), so that they can start again.
        let mut video_tx = None;
        let mut revive = None;
        if !slots.is_empty() {
            let (tx, rx) = sync_channel::<Arc<Frame>>(DECODE_QUEUE);
            let (revive_tx, revive_rx) = sync_channel(slots.len());
            let s2 = shed.clone();
            let mpx = super::cost::mpx_per_second(want.width, want.height, fps);
            match std::thread::Builder::new()
                .name("abr-decoder".into())
                .spawn(move || decoder_thread(&s2, rx, senders, &revive_rx, mpx))
            {
                Ok(t) => {
                    threads.push(t);
                    video_tx = Some(tx);
                    revive = Some(revive_tx);
                }
                Err(e) => warn!(error = %e, "cannot start the ABR decoder thread"),
            }
        }
        let s3 = shed.clone();
        let resized = Arc::new(tokio::sync::Notify::new());
        let size = (want.width, want.height);
        let feeder = tokio::spawn(
            feed(hub.clone(), video_tx, audio_tx, s3, size, resized.clone()).in_current_span(),
        );
        Pipeline {
            feeder,
            resized,
            threads,
            slots,
            revive,
            shed,
            audio,
            source: (want.width, want.height, fps),
            last_start: now,
        }
    }

    /// Every [`CHECK_EVERY`]: notices rungs that stopped, gives their cores back, and
    /// starts one waiting rung again when its wait is over and there is room for it both
    /// in the budget and on the machine (`idle`: idle cores measured since the last
    /// check, `None` when unknown).
    fn check(&mut self, ctx: &Transcoding, idle: Option<f64>) {
        let now = Instant::now();
        for s in &mut self.slots {
            if !s.r.running() && s.stopped_at.is_none() {
                s.stopped_at = Some(now);
                s.drops += 1;
                set_running_metric(ctx, &self.shed.stream, &s.r.name, false);
            }
            if s.thread.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(t) = s.thread.take() {
                    let _ = t.join();
                }
            }
        }
        let stream = self.shed.stream.as_str();
        let (width, height, fps) = self.source;
        let costs = &ctx.costs;
        let rung_cores = |s: &Slot| {
            let rate = s.planned.rung.max_fps.map_or(fps, |c| c.min(fps));
            costs.encode_cores(s.planned.width, s.planned.height, rate)
        };
        let running: f64 = self
            .slots
            .iter()
            .filter(|s| s.r.running())
            .map(rung_cores)
            .sum();
        let decode = costs.decode_cores(width, height, fps);
        let any_running = self.slots.iter().any(|s| s.r.running());
        let own = if any_running { decode + running } else { 0.0 };
        costs.commit(stream, own);
        ctx.metrics.abr_cores.with_label_values(&[stream]).set(own);

        // One start at a time, and not before the last one shows in the measurements.
        let (Some(revive), Some(idle)) = (&self.revive, idle) else {
            return;
        };
        if now.duration_since(self.last_start) < 2 * CHECK_EVERY {
            return;
        }
        let room = costs.free_for(stream, ctx.abr.budget()) - own;
        let base = ctx.abr.retry_dropped_after;
        let need = |s: &Slot| rung_cores(s) + if any_running { 0.0 } else { decode };
        let pick = self.slots.iter().position(|s| {
            let Some(at) = s.stopped_at else {
                return false;
            };
            let wait = base * f64::from(1u32 << s.drops.saturating_sub(1).min(4));
            s.thread.is_none()
                && now.duration_since(at).as_secs_f64() >= wait
                && need(s) <= room
                && need(s) * IDLE_MARGIN <= idle
        });
        let Some(i) = pick else {
            return;
        };
        let slot = &mut self.slots[i];
        info!(
            rung = %slot.r.name,
            cores = format!("{:.2}", need(slot)),
            idle = format!("{idle:.2}"),
            "ABR: room again; starting the rung at the next keyframe"
        );
        self.last_start = now;
        let Some(tx) = start_rung(ctx, stream, slot, fps) else {
            return;
        };
        if revive.try_send((i, tx)).is_err() {
            // The decoder has ended; the rung's thread ends with its queue.
            slot.r.running.store(false, Ordering::Relaxed);
        }
    }

    /// Stops the feeder (if it has not ended by itself) and waits while the rest drains:
    /// the decoder hands its last pictures (those held back for B-frame reordering) to
    /// the rungs, whose threads then end and whose hubs go idle.
    async fn stop(self) {
        self.feeder.abort();
        let _ = self.feeder.await;
        let mut threads = self.threads;
        threads.extend(self.slots.into_iter().filter_map(|s| s.thread));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        let (ctx, stream) = (&self.shed.ctx, &self.shed.stream);
        ctx.costs.release(stream);
        ctx.metrics.abr_cores.with_label_values(&[stream]).set(0.0);
        for r in self.shed.rungs.iter().chain(&self.audio) {
            r.running.store(false, Ordering::Relaxed);
            set_running_metric(ctx, stream, &r.name, false);
        }
        info!("ABR ladder stopped");
    }
}

/// Indices of the rungs of `planned` (in priority order) that fit in the transcoding
/// budget with what other streams' ladders take; the rest are refused with a log line
/// saying what the ladder needs, what is free, and what fits.
fn admit(
    ctx: &Transcoding,
    stream: &str,
    want: &Want,
    planned: &[Planned],
    fps: f64,
) -> Vec<usize> {
    let costs = &ctx.costs;
    let decode = costs.decode_cores(want.width, want.height, fps);
    let rungs: Vec<f64> = planned
        .iter()
        .map(|p| {
            let rate = p.rung.max_fps.map_or(fps, |cap| cap.min(fps));
            costs.encode_cores(p.width, p.height, rate)
        })
        .collect();
    let budget = ctx.abr.budget();
    let a = costs.admit(stream, budget, decode, &rungs);
    ctx.metrics
        .abr_cores
        .with_label_values(&[stream])
        .set(a.cores);
    let (admitted, refused): (Vec<_>, Vec<_>) = planned
        .iter()
        .enumerate()
        .partition(|(i, _)| a.admitted.contains(i));
    if !refused.is_empty() {
        let names = |ps: &[(usize, &Planned)]| {
            ps.iter()
                .map(|(_, p)| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let fits = if admitted.is_empty() {
            "nothing".to_string()
        } else {
            names(&admitted)
        };
        warn!(
            "ABR: the ladder needs {:.2} cores and {:.2} of the {budget:.2} for transcoding (abr.max_cpu) are free: refused {}; what fits: {fits}",
            a.wanted,
            a.free,
            names(&refused),
        );
        for (_, p) in &refused {
            set_running_metric(ctx, stream, &p.name, false);
        }
    }
    a.admitted
}

/// Starts `slot`'s rung thread on a new queue, which it returns; marks the rung running.
/// `None` (logged) when the thread cannot start.
fn start_rung(
    ctx: &Transcoding,
    stream: &str,
    slot: &mut Slot,
    fps: f64,
) -> Option<SyncSender<Job>> {
    let (tx, rx) = sync_channel::<Job>(RUNG_QUEUE);
    let (r, p) = (slot.r.clone(), slot.planned.clone());
    let (name, costs) = (stream.to_string(), ctx.costs.clone());
    // Running before the thread exists: a thread that fails at once marks it stopped.
    slot.r.running.store(true, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name(format!("rung-{}", p.name))
        .spawn(move || rung_thread(&name, &r, &p, fps, &costs, rx));
    match spawned {
        Ok(t) => {
            set_running_metric(ctx, stream, &slot.r.name, true);
            slot.thread = Some(t);
            slot.stopped_at = None;
            Some(tx)
        }
        Err(e) => {
            warn!(rung = %slot.r.name, error = %e, "cannot start the rung's thread");
            slot.r.running.store(false, Ordering::Relaxed);
            None
        }
    }
}

fn set_running_metric(ctx: &Transcoding, stream: &str, rung: &str, running: bool) {
    ctx.metrics
        .rendition_running
        .with_label_values(&[stream, rung])
        .set(i64::from(running));
}

/// The rendition `name` of `track`, created (hub and packager) on first use. A video
/// rung's segments follow the source's; the audio rendition cuts its own.
fn rendition(
    ctx: &Transcoding,
    hub: &Arc<Hub>,
    source: &Arc<LiveStream>,
    renditions: &Renditions,
    name: &str,
    track: TrackId,
    life: &StreamLife,
) -> Arc<Rendition> {
    let mut list = renditions.list.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = list.iter().find(|r| r.name == name) {
        return r.clone();
    }
    let rung_hub = Hub::follower(hub, &format!("{}/{}", hub.name(), name));
    let leader = source.clone();
    let follow = Follow(Arc::new(move |dts| {
        let w = leader.read();
        w.cuts.iter().rev().find(|c| c.0 == dts).map(|c| c.1)
    }));
    let output = packager::spawn_following(
        rung_hub.clone(),
        ctx.live.clone(),
        ctx.metrics.clone(),
        (track == TrackId::Video).then_some(follow),
        life,
    );
    let r = Arc::new(Rendition {
        name: name.to_string(),
        track,
        hub: rung_hub,
        output,
        planned: Mutex::new(None),
        running: AtomicBool::new(false),
    });
    list.push(r.clone());
    r
}

/// Drops rungs when the machine falls behind, lowest priority first.
struct Shed {
    ctx: Transcoding,
    stream: String,
    rungs: Vec<Arc<Rendition>>,
}

impl Shed {
    /// Drops the lowest-priority rung still running, saying why.
    fn drop_lowest(&self, why: &str) {
        if let Some(r) = self.rungs.iter().rev().find(|r| r.running()) {
            r.running.store(false, Ordering::Relaxed);
            set_running_metric(&self.ctx, &self.stream, &r.name, false);
            warn!(rung = %r.name, "ABR: {why}; dropping the lowest-priority rung");
        }
    }

    fn any_running(&self) -> bool {
        self.rungs.iter().any(|r| r.running())
    }
}

/// Hands the source's video frames to the decoder without ever waiting: a full queue
/// drops a rung and skips to the next keyframe. While no rung runs, video is not decoded
/// at all, and it resumes at a keyframe. Audio goes to the audio thread, if any; a unit
/// it has no room for is dropped (the encoder fills the gap with silence). Ends when the
/// publisher leaves, or at a keyframe whose size is not `size` (width, height), after
/// telling `resized`.
async fn feed(
    hub: Arc<Hub>,
    tx: Option<SyncSender<Arc<Frame>>>,
    audio: Option<SyncSender<Arc<Frame>>>,
    shed: Arc<Shed>,
    size: (u32, u32),
    resized: Arc<tokio::sync::Notify>,
) {
    let mut state = hub.state();
    // Not the GOP cache, whose burst would look like overload: from the next keyframe
    // on, at the pace it arrives. Unless the cached GOP has only just begun (a restart
    // for a new size, at its first keyframe).
    let (gop, mut rx) = hub.subscribe();
    let fresh = gop
        .first()
        .is_some_and(|f| f.received.elapsed() < FRESH_GOP);
    let mut skipping = true;
    let give = |f: Arc<Frame>, skipping: &mut bool| -> bool {
        if f.is_sync {
            if let TrackParams::Video(v) = &*f.params {
                if (v.width, v.height) != size {
                    info!(
                        width = v.width,
                        height = v.height,
                        "the source changed size; restarting the ladder"
                    );
                    resized.notify_one();
                    return false;
                }
            }
        }
        if f.track == TrackId::Audio {
            if let Some(a) = &audio {
                if let Err(TrySendError::Full(_)) = a.try_send(f) {
                    warn!("ABR audio fell behind; an access unit is lost");
                }
            }
            return true;
        }
        let Some(tx) = &tx else {
            return true;
        };
        if !shed.any_running() {
            *skipping = true;
            return true;
        }
        if *skipping && !f.is_sync {
            return true;
        }
        *skipping = false;
        match tx.try_send(f) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                shed.drop_lowest("the decoder fell behind");
                *skipping = true;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    };
    if tx.is_none() && audio.is_none() {
        return;
    }
    if fresh {
        for f in gop {
            if !give(f, &mut skipping) {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(f) => if !give(f, &mut skipping) { return },
                Err(broadcast::error::RecvError::Lagged(_)) => skipping = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = state.changed() => {
                if r.is_err() || matches!(*state.borrow_and_update(), PublishState::Idle) {
                    return;
                }
            }
        }
    }
}

/// A decoded picture for a rung, with the source's keyframe composition offset `D`.
struct Job {
    decoded: Decoded,
    delay: i64,
}

/// Decodes the source once and hands each picture to every running rung. A rung
/// started again (its new queue arrives on `revive`, by index) gets pictures from the
/// next keyframe on.
fn decoder_thread(
    shed: &Shed,
    rx: Receiver<Arc<Frame>>,
    mut senders: Vec<Option<SyncSender<Job>>>,
    revive: &Receiver<(usize, SyncSender<Job>)>,
    mpx: f64,
) {
    super::cost::lower_thread_priority();
    let mut meter = Meter::default();
    let mut decoder = match VideoDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            warn!(stream = %shed.stream, error = %e, "ABR decoder");
            return;
        }
    };
    let mut delay: Option<i64> = None;
    let mut skip_to_keyframe = false;
    let mut rejected = 0u64;
    // Rungs started again that wait for a keyframe.
    let mut waiting = vec![false; senders.len()];
    let fan_out = |decoded: Decoded,
                   delay: i64,
                   senders: &mut Vec<Option<SyncSender<Job>>>,
                   waiting: &mut Vec<bool>| {
        for (i, slot) in senders.iter_mut().enumerate() {
            if !shed.rungs[i].running() {
                *slot = None; // its thread drains and ends
            }
            let Some(tx) = slot else { continue };
            if waiting[i] {
                if !decoded.keyframe {
                    continue;
                }
                waiting[i] = false;
            }
            let job = Job {
                decoded: decoded.clone(),
                delay,
            };
            let deadline = std::time::Instant::now() + RUNG_WAIT;
            let mut job = job;
            loop {
                match tx.try_send(job) {
                    Ok(()) => break,
                    Err(TrySendError::Full(j)) => {
                        if std::time::Instant::now() > deadline || !shed.rungs[i].running() {
                            shed.drop_lowest(&format!("rung {} fell behind", shed.rungs[i].name));
                            break;
                        }
                        job = j;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        *slot = None;
                        break;
                    }
                }
            }
        }
    };
    while let Ok(f) = rx.recv() {
        while let Ok((i, tx)) = revive.try_recv() {
            if let Some(slot) = senders.get_mut(i) {
                *slot = Some(tx);
                waiting[i] = true;
            }
        }
        let TrackParams::Video(config) = &*f.params else {
            continue;
        };
        if skip_to_keyframe && !f.is_sync {
            continue;
        }
        skip_to_keyframe = false;
        if f.is_sync {
            // A keyframe's composition offset: constant for a given encoder.
            let cts = i64::from(f.cts).max(0);
            if delay.is_some_and(|d| d != cts) {
                warn!(stream = %shed.stream, was = ?delay, now = cts, "source keyframe delay changed");
            }
            delay = Some(cts);
        }
        let Some(d) = delay else { continue };
        if let Some((cpu, media)) = meter.tick(f.dts) {
            shed.ctx.costs.measured_decode(cpu, media, mpx);
        }
        match decoder.decode(
            config,
            &f.data,
            f.dts + i64::from(f.cts),
            f.is_sync,
            f.received,
        ) {
            Ok(pictures) => {
                for p in pictures {
                    fan_out(p, d, &mut senders, &mut waiting);
                }
            }
            Err(e) => {
                rejected += 1;
                shed.ctx
                    .metrics
                    .abr_rejected_frames
                    .with_label_values(&[&shed.stream])
                    .inc();
                if rejected.is_power_of_two() {
                    warn!(stream = %shed.stream, error = %e, rejected, "ABR decoder rejected a frame; skipping to the next keyframe");
                }
                skip_to_keyframe = true;
            }
        }
    }
    if let Some(d) = delay {
        for p in decoder.flush() {
            fan_out(p, d, &mut senders, &mut waiting);
        }
    }
}

/// Measures the calling thread's CPU time against media time, every couple of seconds
/// of media.
#[derive(Debug, Default)]
struct Meter {
    /// CPU seconds and media time (90 kHz ticks) at the start of the current span.
    start: Option<(f64, i64)>,
}

impl Meter {
    /// At media time `t` (90 kHz ticks): the (CPU seconds, media seconds) of a span
    /// that just completed, if one did.
    /// The CPU clock is read only when a span starts or ends, not every frame.
    fn tick(&mut self, t: i64) -> Option<(f64, f64)> {
        match self.start {
            Some((_, t0)) if t >= t0 && t - t0 < 2 * 90_000 => None,
            // Over 4 s means media was skipped (nothing to decode for a while): not a
            // measurement.
            Some((cpu, t0)) if t >= t0 && t - t0 <= 4 * 90_000 => {
                let now = super::cost::thread_cpu_seconds();
                self.start = Some((now, t));
                Some((now - cpu, (t - t0) as f64 / 90_000.0))
            }
            // The first frame, a jump back in time, or a gap: start a span.
            _ => {
                self.start = Some((super::cost::thread_cpu_seconds(), t));
                None
            }
        }
    }
}

/// Scales and encodes one rung's pictures and publishes them into its hub.
fn rung_thread(
    stream: &str,
    r: &Rendition,
    p: &Planned,
    fps: f64,
    costs: &super::cost::Costs,
    rx: Receiver<Job>,
) {
    /// However the thread ends, the rung is no longer being made.
    struct Stopped<'a>(&'a Rendition);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            self.0.running.store(false, Ordering::Relaxed);
        }
    }
    let _stopped = Stopped(r);
    super::cost::lower_thread_priority();
    let mut meter = Meter::default();
    let rate = p.rung.max_fps.map_or(fps, |c| c.min(fps));
    let mpx = super::cost::mpx_per_second(p.width, p.height, rate);
    let publisher = match r.hub.publish("transcoder") {
        Ok(p) => p,
        Err(e) => {
            warn!(%stream, rung = %r.name, error = %e, "rung hub busy");
            return;
        }
    };
    let fps = p.rung.max_fps.map_or(fps, |cap| cap.min(fps));
    let mut scaler = Scaler::new(p.width, p.height);
    let mut encoder = match VideoEncoder::new(p.rung.bitrate, fps) {
        Ok(e) => e,
        Err(e) => {
            warn!(%stream, rung = %r.name, error = %e, "rung encoder");
            return;
        }
    };
    // The shortest picture interval kept under a frame rate cap, 90 kHz ticks (a little
    // under, so timestamp jitter does not halve the rate).
    let min_interval = p.rung.max_fps.map(|cap| (90_000.0 / cap * 0.9) as i64);
    let mut last_kept: Option<i64> = None;
    let mut params: Option<Arc<TrackParams>> = None;
    let mut need_idr = true;
    let mut failures = 0u64;
    while let Ok(job) = rx.recv() {
        if !r.running() {
            break;
        }
        let d = &job.decoded;
        if let (Some(min), Some(last)) = (min_interval, last_kept) {
            if !d.keyframe && d.pts - last < min {
                continue;
            }
        }
        last_kept = Some(d.pts);
        if let Some((cpu, media)) = meter.tick(d.pts) {
            costs.measured_encode(cpu, media, mpx);
        }
        let encoded = scaler.scale(&d.picture).and_then(|small| {
            encoder.encode(&small, d.keyframe || need_idr, (d.pts.max(0) / 90) as u64)
        });
        match encoded {
            Ok(Some((au, config))) => {
                if let Some(c) = config {
                    let new = Arc::new(TrackParams::Video(c));
                    publisher.set_params(new.clone());
                    params = Some(new);
                }
                let Some(params) = params.clone() else {
                    continue;
                };
                need_idr = false;
                publisher.send(Frame {
                    track: TrackId::Video,
                    dts: d.pts - job.delay,
                    cts: i32::try_from(job.delay).unwrap_or(0),
                    is_sync: au.idr,
                    params,
                    data: au.data,
                    received: d.received,
                });
            }
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(%stream, rung = %r.name, error = %e, failures, "rung picture lost");
                }
                need_idr = true;
            }
        }
    }
}

/// Decodes the source's audio, downmixed to stereo, resampled to 48 kHz unless it is at
/// 44.1 or 48 kHz, and encodes it to AAC-LC into the audio rendition's hub, at the
/// source's times.
fn audio_thread(stream: &str, r: &Rendition, rx: Receiver<Arc<Frame>>) {
    super::cost::lower_thread_priority();
    let publisher = match r.hub.publish("transcoder") {
        Ok(p) => p,
        Err(e) => {
            warn!(%stream, error = %e, "audio rendition hub busy");
            return;
        }
    };
    let mut decoder: Option<(Arc<TrackParams>, AacDecoder)> = None;
    let mut encoder: Option<(AacEncoder, Arc<TrackParams>)> = None;
    let mut resampler: Option<(u32, usize, Resampler)> = None;
    let mut failures = 0u64;
    while let Ok(f) = rx.recv() {
        if !r.running() {
            break;
        }
        let TrackParams::Audio(config) = &*f.params else {
            continue;
        };
        if !decoder
            .as_ref()
            .is_some_and(|(p, _)| Arc::ptr_eq(p, &f.params))
        {
            match AacDecoder::new(config) {
                Ok(d) => decoder = Some((f.params.clone(), d)),
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition: the source's AAC does not decode");
                    decoder = None;
                    continue;
                }
            }
        }
        let Some((_, dec)) = decoder.as_mut() else {
            continue;
        };
        let (pcm, channels) = match dec.decode(&f.data) {
            Ok(x) => x,
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    warn!(%stream, error = %e, failures, "audio rendition: an access unit was rejected");
                }
                continue;
            }
        };
        let rate = if is_common_rate(config.sample_rate) {
            config.sample_rate
        } else {
            48_000
        };
        let (pts, pcm): (i64, std::borrow::Cow<'_, [i16]>) = if rate == config.sample_rate {
            (f.dts, pcm.into())
        } else {
            let fits = resampler
                .as_ref()
                .is_some_and(|(hz, ch, _)| *hz == config.sample_rate && *ch == channels);
            if !fits {
                match Resampler::new(config.sample_rate, rate, channels) {
                    Ok(x) => resampler = Some((config.sample_rate, channels, x)),
                    Err(e) => {
                        warn!(%stream, error = %e, "audio rendition resampler");
                        continue;
                    }
                }
            }
            let Some((_, _, rs)) = resampler.as_mut() else {
                continue;
            };
            match rs.push(f.dts, pcm) {
                Ok(Some((t, converted))) => (t, converted.into()),
                Ok(None) => continue,
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition: resampling failed");
                    resampler = None;
                    continue;
                }
            }
        };
        let fits = encoder.as_ref().is_some_and(|(e, _)| {
            let c = e.config();
            usize::from(c.channels) == channels && c.sample_rate == rate
        });
        if !fits {
            match AacEncoder::new(rate, channels as u16) {
                Ok(e) => {
                    let params = Arc::new(TrackParams::Audio(e.config().clone()));
                    publisher.set_params(params.clone());
                    encoder = Some((e, params));
                }
                Err(e) => {
                    warn!(%stream, error = %e, "audio rendition encoder");
                    continue;
                }
            }
        }
        let Some((enc, params)) = encoder.as_mut() else {
            continue;
        };
        match enc.push(pts, &pcm) {
            Ok(units) => {
                for (t, au) in units {
                    publisher.send(Frame {
                        track: TrackId::Audio,
                        dts: t,
                        cts: 0,
                        is_sync: true,
                        params: params.clone(),
                        data: au,
                        received: f.received,
                    });
                }
            }
            Err(e) => {
                warn!(%stream, error = %e, "audio rendition encoder failed; starting a new one");
                encoder = None;
            }
        }
    }
}
