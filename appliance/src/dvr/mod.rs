//! The DVR: recording the CMAF segments the packager already makes to files, indexed in
//! SQLite, with retention; [`playback`] (VOD HLS and DASH of a range, time-shift) and
//! [`export`] (a range as one MP4, keyframes for thumbnails) read them back.
//!
//! Recordings belong to a stream's identity ([`StreamUid`]), not its name: they follow
//! it through a rename, and go when it is deleted.
//!
//! - [`recorder`]: a task per live stream copies each complete segment of every track,
//!   and its epoch's init segment, to `DATA_DIR/recordings/UID/EPOCH/TRACK/`, on a
//!   blocking thread: written, fsynced and renamed into place (directory fsynced) before
//!   its index row commits. A disk below the free-space floor pauses recording (live
//!   viewing goes on) until space returns.
//! - [`retain`]: deletes the oldest recordings beyond each stream's age and size limits,
//!   and those of deleted streams, through a pending-delete mark (`deleting`), so a crash
//!   mid-delete is finished at the next start.
//! - [`reconcile`]: at start-up, makes the directory and the index agree: pending deletes
//!   finished, temporary and unindexed files removed, rows of missing or truncated files
//!   dropped.
//!
//! A `kill -9` at any moment loses at most the segments being written, and never leaves
//! a row pointing at a missing or partial file.

pub mod export;
pub mod playback;
pub mod settings;
pub mod store;

use crate::config::Config;
use crate::media::{TrackId, TrackParams};
use crate::metrics::Metrics;
use crate::packager::LiveStream;
use crate::streams::life::StreamLife;
use crate::streams::registry::Registry;
use crate::streams::{Directory, StreamUid};
use bytes::Bytes;
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn, Instrument};

/// How often a recorder checks the free space (and retries reading its settings after
/// a failure).
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often retention runs.
const RETAIN_EVERY: Duration = Duration::from_secs(5);

/// A DVR operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DvrError {
    /// A setting that does not parse.
    #[error("{0}")]
    BadSetting(String),
    /// Neither a stream nor a camera of that name.
    #[error("no stream or camera named {0:?}")]
    NoSuchStream(String),
    /// The database failed.
    #[error("DVR index: {0}")]
    Db(#[from] sqlx::Error),
    /// A file operation failed.
    #[error("DVR files: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes recorded per stream (segments only, not the small init segments), by
/// identity.
///
/// # Errors
/// A database error.
pub async fn disk_use(
    pool: &sqlx::SqlitePool,
) -> Result<std::collections::HashMap<StreamUid, i64>, DvrError> {
    let rows: Vec<(StreamUid, i64)> = sqlx::query_as(
        "SELECT stream_uid, SUM(bytes) FROM dvr_segments WHERE deleting = 0 GROUP BY stream_uid",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What the DVR works with: its index, its directory, its free-space floor and its
/// metrics. Cheap to clone.
#[derive(Clone)]
pub struct Dvr {
    /// The index (`dvr_segments`) and the recording settings.
    pub db: SqlitePool,
    /// The directory recordings live in: `DATA_DIR/recordings`.
    pub root: PathBuf,
    /// Recording pauses while the disk has less than this free, in bytes
    /// (`dvr.min_free_bytes`).
    pub min_free_bytes: u64,
    /// Bytes written, write times, pauses and deletions, per stream.
    pub metrics: Arc<Metrics>,
}

impl Dvr {
    /// The DVR of configuration `cfg` over the database `db`.
    pub fn new(cfg: &Config, db: SqlitePool, metrics: Arc<Metrics>) -> Dvr {
        Dvr {
            db,
            root: cfg.data_dir.join("recordings"),
            min_free_bytes: cfg.dvr.min_free_bytes,
            metrics,
        }
    }
}

/// One recorded segment, ready to be written.
struct Job {
    track: TrackId,
    params: Arc<TrackParams>,
    msn: u64,
    epoch: String,
    init: Bytes,
    parts: Vec<Bytes>,
    start: u64,
    timescale: u32,
    duration: u64,
    start_wall_ms: i64,
    /// The key it was encrypted with live (`None`: in the clear).
    kid: Option<crate::protect::Kid>,
}

impl Job {
    /// Bytes of the segment (not counting its init segment).
    fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
}

/// A written segment: its index row's values.
struct Written {
    job: Job,
    path: String,
    init_path: String,
    bytes: u64,
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The prefix of the epoch names of `live`'s recordings: its hub's origin in ms.
pub fn run_id(live: &LiveStream) -> i64 {
    unix_ms(live.read().origin)
}

/// The recorded segments of `track` of this hub run (`run`) just before sequence number
/// `before`, going back while consecutive and no older than `since_ms` (wall clock), as
/// window segments for the live playlists (time-shift). Each is flagged a discontinuity
/// where its epoch differs from the one before it, and sealed with the key (from
/// `keyring`) it went out under live, if it did.
///
/// # Errors
/// A database error.
pub async fn history(
    db: &SqlitePool,
    keyring: &crate::protect::Keyring,
    stream: &StreamUid,
    track: TrackId,
    run: i64,
    before: u64,
    since_ms: i64,
) -> Result<Vec<crate::packager::window::Segment>, DvrError> {
    type Row = (String, i64, i64, i64, i64, i64, Option<Vec<u8>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT epoch, msn, start_wall_ms, start, duration, timescale, kid FROM dvr_segments
         WHERE stream_uid = ? AND track = ? AND deleting = 0 AND epoch LIKE ? AND msn < ?
           AND start_wall_ms >= ?
         ORDER BY msn DESC",
    )
    .bind(stream)
    .bind(track.name())
    .bind(format!("{run}-%"))
    .bind(before as i64)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    // As the rows, with the epoch's index in place of its name.
    type Kept = (u32, i64, i64, i64, i64, i64, Option<Vec<u8>>);
    let mut out: Vec<Kept> = Vec::new();
    let mut want = before as i64 - 1;
    for (epoch, msn, wall, start, duration, timescale, kid) in rows {
        if msn != want {
            break; // a hole: only what plays straight into the window
        }
        let Some(idx) = epoch.rsplit_once('-').and_then(|(_, i)| i.parse().ok()) else {
            break;
        };
        out.push((idx, msn, wall, start, duration, timescale, kid));
        want -= 1;
    }
    out.reverse();
    // The head's own flag needs the segment before it.
    let before_head: Option<(String,)> = match out.first() {
        Some(head) => sqlx::query_as(
            "SELECT epoch FROM dvr_segments WHERE stream_uid = ? AND track = ? AND epoch LIKE ? AND msn = ?",
        )
        .bind(stream)
        .bind(track.name())
        .bind(format!("{run}-%"))
        .bind(head.1 - 1)
        .fetch_optional(db)
        .await?,
        None => None,
    };
    let mut prev =
        before_head.and_then(|(e,)| e.rsplit_once('-').and_then(|(_, i)| i.parse::<u32>().ok()));
    Ok(out
        .into_iter()
        .map(|(epoch, msn, wall, start, duration, timescale, kid)| {
            let discontinuity = prev.is_some_and(|p| p != epoch);
            prev = Some(epoch);
            // The key it went out under live: it is listed (and served) under it again.
            let sealing = kid_of(kid)
                .and_then(|k| keyring.get(&k))
                .map(|key| crate::protect::Sealing::new(key, msn.max(0) as u64));
            crate::packager::window::Segment {
                msn: msn as u64,
                epoch,
                discontinuity,
                start: start.max(0) as u64,
                timescale: timescale.clamp(1, i64::from(u32::MAX)) as u32,
                duration: duration.max(0) as u64,
                parts: Vec::new(),
                complete: true,
                pdt: UNIX_EPOCH + Duration::from_millis(wall.max(0) as u64),
                sealing,
                sealed: None,
            }
        })
        .collect())
}

/// The file of a recorded segment (`Some(msn)`) or init segment (`None`, of `epoch`) of
/// this hub run, relative to the recordings directory, if the index lists it; with the
/// key ID a segment went out under live (`None` for clear, and for an init segment).
///
/// # Errors
/// A database error.
pub async fn recorded_file(
    db: &SqlitePool,
    stream: &StreamUid,
    track: TrackId,
    run: i64,
    epoch: u32,
    msn: Option<u64>,
) -> Result<Option<(String, Option<crate::protect::Kid>)>, DvrError> {
    let epoch_name = format!("{run}-{epoch}");
    let row: Option<(String, String, Option<Vec<u8>>)> = match msn {
        Some(msn) => sqlx::query_as(
            "SELECT path, init_path, kid FROM dvr_segments
             WHERE stream_uid = ? AND track = ? AND epoch LIKE ? AND msn = ? AND deleting = 0",
        )
        .bind(stream)
        .bind(track.name())
        .bind(format!("{run}-%"))
        .bind(msn as i64),
        None => sqlx::query_as(
            "SELECT path, init_path, NULL FROM dvr_segments
             WHERE stream_uid = ? AND track = ? AND epoch = ? AND deleting = 0 LIMIT 1",
        )
        .bind(stream)
        .bind(track.name())
        .bind(&epoch_name),
    }
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(path, init, kid)| match msn {
        Some(_) => (path, kid_of(kid)),
        None => (init, None),
    }))
}

/// A key ID as the index stores it (16 bytes; anything else is none).
fn kid_of(stored: Option<Vec<u8>>) -> Option<crate::protect::Kid> {
    stored.as_deref().and_then(crate::protect::Kid::from_bytes)
}

/// The file of recorded segment `msn` (`Some`), or of the init segment (`None`), of
/// epoch `epoch` (its directory name, `RUN-EPOCH`) and `track` (`video` or `audio`) of
/// `stream`, relative to the recordings directory: what a recording's URL names, when
/// the index lists it and it is not being deleted; with the key ID the segment was
/// encrypted with live (`None` for an init segment or one that went out clear).
///
/// # Errors
/// A database error.
pub async fn recording_file(
    db: &SqlitePool,
    stream: &StreamUid,
    epoch: &str,
    track: &str,
    msn: Option<i64>,
) -> Result<Option<(String, Option<crate::protect::Kid>)>, DvrError> {
    let row: Option<(String, String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT path, init_path, kid FROM dvr_segments
         WHERE stream_uid = ? AND epoch = ? AND track = ? AND deleting = 0
           AND (? IS NULL OR msn = ?)
         LIMIT 1",
    )
    .bind(stream)
    .bind(epoch)
    .bind(track)
    .bind(msn)
    .bind(msn)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(path, init, kid)| match msn {
        Some(_) => (path, kid_of(kid)),
        None => (init, None),
    }))
}

/// Starts the recorder of stream `uid` (it records only while its settings say so), one
/// of the stream's tasks: when the stream closes, it records what is complete and ends.
/// It re-reads its settings when `settings` sees a change of the configuration (the
/// registry's [`Registry::changes`]), and the free space every 2 s (`CHECK_EVERY`).
pub fn recorder(
    dvr: Dvr,
    uid: StreamUid,
    live: Arc<LiveStream>,
    settings: tokio::sync::watch::Receiver<u64>,
    life: &StreamLife,
) {
    let span = tracing::info_span!("dvr", stream = %live.name);
    life.spawn(record(dvr, uid, live, settings, life.clone()).instrument(span));
}

async fn record(
    dvr: Dvr,
    uid: StreamUid,
    live: Arc<LiveStream>,
    mut settings_changed: tokio::sync::watch::Receiver<u64>,
    life: StreamLife,
) {
    let root = dvr.root.clone();
    // Epoch indices restart with each hub; its origin keeps names unique, and lets the
    // live side find this hub's recordings (time-shift).
    let run = run_id(&live);
    let mut changed = live.subscribe();
    let mut next: BTreeMap<TrackId, u64> = BTreeMap::new();
    let mut enabled = false;
    let mut space = Space::default();
    let mut checked = tokio::time::Instant::now() - CHECK_EVERY;
    let mut reread = true;
    let paused = dvr.metrics.dvr_paused.with_label_values(&[&live.name]);
    loop {
        if reread {
            reread = false;
            match settings::get(&dvr.db, &uid).await {
                Ok(s) => {
                    if s.enabled != enabled {
                        info!(
                            enabled = s.enabled,
                            "recording {}",
                            if s.enabled { "on" } else { "off" }
                        );
                    }
                    enabled = s.enabled;
                }
                Err(e) => {
                    warn!(error = %e, "reading recording settings failed");
                    reread = true;
                }
            }
        }
        if checked.elapsed() >= CHECK_EVERY {
            checked = tokio::time::Instant::now();
            let free = tokio::task::spawn_blocking({
                let root = root.clone();
                // The recordings directory may be a mount of its own; before the first
                // recording it does not exist, and its parent tells.
                move || {
                    store::free_bytes(&root)
                        .or_else(|_| store::free_bytes(root.parent().unwrap_or(&root)))
                }
            })
            .await;
            if let Ok(Ok(free)) = free {
                space.check(free, dvr.min_free_bytes);
            }
        }
        paused.set(i64::from(space.paused()));
        let take = enabled && !space.paused();
        live.recording
            .store(take, std::sync::atomic::Ordering::Relaxed);
        let jobs = collect(&live, &mut next, run, take);
        if !jobs.is_empty() {
            let root = root.clone();
            let dir = uid.to_string();
            let asked: u64 = jobs.iter().map(Job::bytes).sum();
            let began = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || write(&root, &dir, jobs)).await {
                Ok((written, err)) => {
                    let bytes: u64 = written.iter().map(|w| w.bytes).sum();
                    dvr.metrics
                        .dvr_write_seconds
                        .with_label_values(&[&live.name])
                        .observe(began.elapsed().as_secs_f64());
                    if let Err(e) = index(&dvr.db, &uid, &written).await {
                        warn!(error = %e, "recording not indexed; its segments are removed");
                        let paths = written.iter().map(|w| w.path.as_str());
                        if let Err(e) = remove_files(&dvr.root, paths).await {
                            warn!(error = %e, "unindexed segments stay until the next start");
                        }
                    } else {
                        dvr.metrics
                            .dvr_written_bytes
                            .with_label_values(&[&live.name])
                            .inc_by(bytes);
                    }
                    match err {
                        Some(e) if disk_full(&e) => {
                            space.full(dvr.min_free_bytes, asked);
                            paused.set(1);
                            checked = tokio::time::Instant::now();
                        }
                        Some(e) => warn!(error = %e, "recording a segment failed"),
                        None => {}
                    }
                }
                Err(e) => warn!(error = %e, "recording task failed"),
            }
        }
        if life.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::timeout(CHECK_EVERY, changed.changed()) => {}
            Ok(()) = settings_changed.changed() => reread = true,
            // One more pass for what completed before the stream closed.
            () = life.cancelled() => {}
        }
    }
}

/// Whether a write failed for want of space (or quota).
fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Why a recorder is not writing for want of disk space, if it is not.
#[derive(Debug, Default)]
struct Space {
    /// The disk is below the free-space floor.
    low: bool,
    /// A write failed with the disk full: the free bytes to wait for before writing again.
    full_until: Option<u64>,
}

impl Space {
    fn paused(&self) -> bool {
        self.low || self.full_until.is_some()
    }

    /// Takes in a reading of the free bytes; logs when recording pauses or resumes.
    fn check(&mut self, free: u64, floor: u64) {
        let was = self.paused();
        self.low = free < floor;
        if self.full_until.is_some_and(|need| free >= need) {
            self.full_until = None;
        }
        match (was, self.paused()) {
            (false, true) => warn!(
                floor,
                free, "recording paused: the data disk is below its free-space floor"
            ),
            (true, false) => info!(free, "recording resumed: the data disk has room again"),
            _ => {}
        }
    }

    /// A write failed with the disk full (the floor set too low for this disk, or
    /// something else filled it): pause until there is room for a few more segments like
    /// the `asked` bytes that failed, above the floor.
    fn full(&mut self, floor: u64, asked: u64) {
        if self.full_until.is_none() {
            warn!("recording paused: the data disk is full (a segment was lost)");
        }
        self.full_until = Some(floor.saturating_add(asked.max(1 << 20).saturating_mul(4)));
    }
}

/// The complete segments not yet recorded (all of them are marked seen when `take` is
/// false, so recording starts from the moment it is switched on).
fn collect(live: &LiveStream, next: &mut BTreeMap<TrackId, u64>, run: i64, take: bool) -> Vec<Job> {
    let w = live.read();
    let mut jobs = Vec::new();
    for (track, tw) in &w.tracks {
        let from = next.get(track).copied().unwrap_or(0);
        if let Some(first) = tw.segments.front() {
            if take && first.msn > from && from > 0 {
                warn!(
                    track = track.name(),
                    lost = first.msn - from,
                    "recording fell behind the live window"
                );
            }
        }
        for s in tw.segments.iter().filter(|s| s.complete && s.msn >= from) {
            next.insert(*track, s.msn + 1);
            if !take {
                continue;
            }
            let Some((params, init)) = w.epochs.get(&s.epoch).and_then(|e| e.tracks.get(track))
            else {
                continue;
            };
            jobs.push(Job {
                track: *track,
                params: params.clone(),
                msn: s.msn,
                epoch: format!("{run}-{}", s.epoch),
                init: init.clone(),
                parts: s.parts.iter().map(|p| p.bytes.clone()).collect(),
                start: s.start,
                timescale: s.timescale,
                duration: s.duration,
                start_wall_ms: unix_ms(s.pdt),
                kid: s.sealing.as_ref().map(|x| x.key.kid),
            });
        }
    }
    jobs
}

/// Writes segments (and init segments not yet there) under `root/top/`; stops at the
/// first failure, which it returns with what was written.
fn write(root: &Path, top: &str, jobs: Vec<Job>) -> (Vec<Written>, Option<std::io::Error>) {
    let mut out = Vec::new();
    for job in jobs {
        let dir = format!("{top}/{}/{}", job.epoch, job.track.name());
        let init_path = format!("{dir}/init.mp4");
        let path = format!("{dir}/{}.m4s", job.msn);
        let result = (|| {
            let init = root.join(&init_path);
            if !init.is_file() {
                store::write_durable(&init, std::slice::from_ref(&job.init))?;
            }
            store::write_durable(&root.join(&path), &job.parts)
        })();
        match result {
            Ok(bytes) => out.push(Written {
                job,
                path,
                init_path,
                bytes,
            }),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

async fn index(db: &SqlitePool, stream: &StreamUid, written: &[Written]) -> Result<(), DvrError> {
    let mut tx = db.begin().await?;
    for w in written {
        sqlx::query(
            "INSERT OR REPLACE INTO dvr_segments (stream_uid, track, epoch, msn, start_wall_ms, start,
                 timescale, duration, bytes, path, init_path, codec, width, height, channels, kid)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(stream)
        .bind(w.job.track.name())
        .bind(&w.job.epoch)
        .bind(w.job.msn as i64)
        .bind(w.job.start_wall_ms)
        .bind(w.job.start as i64)
        .bind(i64::from(w.job.timescale))
        .bind(w.job.duration as i64)
        .bind(w.bytes as i64)
        .bind(&w.path)
        .bind(&w.init_path)
        .bind(w.job.params.codec_string())
        .bind(match &*w.job.params {
            TrackParams::Video(v) => i64::from(v.width),
            TrackParams::Audio(_) => 0,
        })
        .bind(match &*w.job.params {
            TrackParams::Video(v) => i64::from(v.height),
            TrackParams::Audio(_) => 0,
        })
        .bind(match &*w.job.params {
            TrackParams::Video(_) => 0,
            TrackParams::Audio(a) => i64::from(a.channels),
        })
        .bind(w.job.kid.map(|k| k.0.to_vec()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes the index rows `ids` and their files: mark, remove, then drop the rows. Init
/// segments no longer referenced go too.
async fn delete(dvr: &Dvr, ids: &[i64]) -> Result<(), DvrError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    sqlx::query(&format!(
        "UPDATE dvr_segments SET deleting = 1 WHERE id IN ({list})"
    ))
    .execute(&dvr.db)
    .await?;
    finish_deletes(dvr).await
}

/// Removes the files of every row marked `deleting`, then the rows.
async fn finish_deletes(dvr: &Dvr) -> Result<(), DvrError> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, path, init_path FROM dvr_segments WHERE deleting = 1")
            .fetch_all(&dvr.db)
            .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let root = dvr.root.clone();
    remove_files(&root, rows.iter().map(|r| r.1.as_str())).await?;
    let list = rows
        .iter()
        .map(|r| r.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    sqlx::query(&format!("DELETE FROM dvr_segments WHERE id IN ({list})"))
        .execute(&dvr.db)
        .await?;
    // Init segments no row needs any more.
    let mut inits: Vec<String> = rows.into_iter().map(|r| r.2).collect();
    inits.sort();
    inits.dedup();
    let mut orphans = Vec::new();
    for init in inits {
        let used: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM dvr_segments WHERE init_path = ? LIMIT 1")
                .bind(&init)
                .fetch_optional(&dvr.db)
                .await?;
        if used.is_none() {
            orphans.push(init);
        }
    }
    remove_files(&root, orphans.iter().map(String::as_str)).await
}

/// Removes files (paths relative to `root`) durably, on a blocking thread.
async fn remove_files<'a>(
    root: &Path,
    paths: impl Iterator<Item = &'a str>,
) -> Result<(), DvrError> {
    let root = root.to_path_buf();
    let paths: Vec<PathBuf> = paths.map(|p| root.join(p)).collect();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for p in paths {
            store::remove_durable(&p, &root)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| DvrError::Io(std::io::Error::other(e)))??;
    Ok(())
}

/// Runs retention forever: every stream's recordings beyond its age or size limit are
/// deleted, oldest first, and those marked for deletion (a deleted stream's) go. A
/// change to the streams (a delete) starts a pass at once.
pub async fn retain(dvr: Dvr, registry: Arc<Registry>) {
    let mut changes = registry.changes();
    loop {
        let now = unix_ms(SystemTime::now());
        if let Err(e) = retain_once(&dvr, &registry.directory(), now).await {
            warn!(error = %e, "DVR retention failed");
        }
        let _ = tokio::time::timeout(RETAIN_EVERY, changes.changed()).await;
    }
}

/// One pass of retention at `now` (ms since the Unix epoch): finishes deletions under
/// way, then deletes every stream's recordings older than its age limit or beyond its
/// size limit, oldest first. `dir` names the streams in the log.
async fn retain_once(dvr: &Dvr, dir: &Directory, now: i64) -> Result<(), DvrError> {
    finish_deletes(dvr).await?;
    for (uid, s) in settings::all(&dvr.db).await? {
        let stream = dir
            .by_uid(&uid)
            .map_or_else(|| uid.to_string(), |n| n.name.clone());
        let mut doomed: Vec<i64> = Vec::new();
        if let Some(secs) = s.keep_secs {
            let old: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM dvr_segments WHERE stream_uid = ? AND deleting = 0 AND start_wall_ms < ?",
            )
            .bind(&uid)
            .bind(now - secs * 1000)
            .fetch_all(&dvr.db)
            .await?;
            doomed.extend(old.into_iter().map(|r| r.0));
        }
        if let Some(limit) = s.keep_bytes {
            // A running total from the newest back: everything past the limit goes.
            let over: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM (
                     SELECT id, SUM(bytes) OVER (ORDER BY start_wall_ms DESC, id DESC) AS total
                     FROM dvr_segments WHERE stream_uid = ? AND deleting = 0)
                 WHERE total > ?",
            )
            .bind(&uid)
            .bind(limit)
            .fetch_all(&dvr.db)
            .await?;
            doomed.extend(over.into_iter().map(|r| r.0));
        }
        doomed.sort_unstable();
        doomed.dedup();
        if !doomed.is_empty() {
            info!(%stream, segments = doomed.len(), "DVR retention deletes the oldest recordings");
            delete(dvr, &doomed).await?;
            dvr.metrics
                .dvr_deleted_segments
                .with_label_values(&[&stream])
                .inc_by(doomed.len() as u64);
        }
    }
    Ok(())
}

/// Makes the recordings directory and the index agree; run at start-up, before any
/// recorder. Returns (files removed, rows dropped).
///
/// # Errors
/// A database error, or a file that cannot be removed.
pub async fn reconcile(dvr: &Dvr) -> Result<(usize, usize), DvrError> {
    finish_deletes(dvr).await?;
    let root = dvr.root.clone();
    let rows: Vec<(i64, String, String, i64)> =
        sqlx::query_as("SELECT id, path, init_path, bytes FROM dvr_segments")
            .fetch_all(&dvr.db)
            .await?;
    let r2 = root.clone();
    let files = tokio::task::spawn_blocking(move || store::walk(&r2))
        .await
        .map_err(|e| DvrError::Io(std::io::Error::other(e)))?;
    let on_disk: BTreeMap<String, u64> = files
        .iter()
        .filter_map(|(p, n)| Some((p.strip_prefix(&root).ok()?.to_str()?.to_string(), *n)))
        .collect();
    // Rows whose segment or init segment is missing or not the size indexed.
    let mut bad_rows = Vec::new();
    for (id, path, init, bytes) in &rows {
        let ok =
            on_disk.get(path).is_some_and(|n| *n as i64 == *bytes) && on_disk.contains_key(init);
        if !ok {
            bad_rows.push(*id);
        }
    }
    if !bad_rows.is_empty() {
        let list = bad_rows
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(&format!("DELETE FROM dvr_segments WHERE id IN ({list})"))
            .execute(&dvr.db)
            .await?;
    }
    // Files no remaining row names: temporary files, unindexed segments, unused inits.
    let keep: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| !bad_rows.contains(&r.0))
        .flat_map(|r| [r.1.as_str(), r.2.as_str()])
        .collect();
    let strays: Vec<&str> = on_disk
        .keys()
        .map(String::as_str)
        .filter(|p| !keep.contains(p))
        .collect();
    let removed = strays.len();
    remove_files(&root, strays.into_iter()).await?;
    if removed > 0 || !bad_rows.is_empty() {
        warn!(
            files_removed = removed,
            rows_dropped = bad_rows.len(),
            "DVR reconciled after an unclean stop"
        );
    }
    Ok((removed, bad_rows.len()))
}

/// A recorded span of a stream, or the gap before it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Range {
    /// Wall-clock start, ms since the Unix epoch.
    pub start_ms: i64,
    /// Wall-clock end, ms since the Unix epoch.
    pub end_ms: i64,
    /// Segments of the lead track in the range.
    pub segments: usize,
}

/// Wall-clock distance between segments, in ms, beyond which they are not one range
/// (and playback marks a discontinuity).
pub(crate) const GAP_MS: i64 = 500;
/// Queries by time look this far (ms) before a range for segments overlapping its start:
/// no segment is assumed longer than a minute.
pub(crate) const MAX_SEGMENT_MS: i64 = 60_000;

/// The recorded ranges of stream `stream`, oldest first: consecutive segments of its lead track
/// (video when recorded, else audio) with less than [`GAP_MS`] between them. With
/// `within` (start, end in wall-clock ms), only segments overlapping it are read.
///
/// # Errors
/// A database error.
pub async fn ranges(
    db: &SqlitePool,
    stream: &StreamUid,
    within: Option<(i64, i64)>,
) -> Result<Vec<Range>, DvrError> {
    let (from, to) = within.map_or((i64::MIN, i64::MAX), |(s, e)| {
        (s.saturating_sub(MAX_SEGMENT_MS), e)
    });
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT track, start_wall_ms, duration, timescale FROM dvr_segments
         WHERE stream_uid = ? AND deleting = 0 AND start_wall_ms > ? AND start_wall_ms < ?
         ORDER BY start_wall_ms, id",
    )
    .bind(stream)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let lead = if rows.iter().any(|r| r.0 == "video") {
        "video"
    } else {
        "audio"
    };
    let mut out: Vec<Range> = Vec::new();
    for (_, start, duration, timescale) in rows.into_iter().filter(|r| r.0 == lead) {
        let end = start + duration * 1000 / timescale.max(1);
        match out.last_mut() {
            Some(r) if start - r.end_ms < GAP_MS => {
                r.end_ms = r.end_ms.max(end);
                r.segments += 1;
            }
            _ => out.push(Range {
                start_ms: start,
                end_ms: end,
                segments: 1,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index row of `stream`'s video, `age_s` seconds before `now`, of `bytes`, with
    /// its file on disk; returns its path.
    async fn segment(
        dvr: &Dvr,
        stream: &StreamUid,
        msn: i64,
        now: i64,
        age_s: i64,
        bytes: usize,
    ) -> String {
        let path = format!("{stream}/1-0/video/{msn}.m4s");
        let init = format!("{stream}/1-0/video/init.mp4");
        for (p, n) in [(&path, bytes), (&init, 10)] {
            let file = dvr.root.join(p);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
            std::fs::write(&file, vec![0u8; n]).expect("write");
        }
        sqlx::query(
            "INSERT INTO dvr_segments (stream_uid, track, epoch, msn, start_wall_ms, start,
                 timescale, duration, bytes, path, init_path, codec, width, height, channels)
             VALUES (?, 'video', '1-0', ?, ?, 0, 90000, 180000, ?, ?, ?, 'avc1.4d401f', 1280, 720, 0)",
        )
        .bind(stream)
        .bind(msn)
        .bind(now - age_s * 1000)
        .bind(bytes as i64)
        .bind(&path)
        .bind(&init)
        .execute(&dvr.db)
        .await
        .expect("insert");
        path
    }

    async fn kept(dvr: &Dvr) -> Vec<i64> {
        sqlx::query_as::<_, (i64,)>("SELECT msn FROM dvr_segments ORDER BY msn")
            .fetch_all(&dvr.db)
            .await
            .expect("select")
            .into_iter()
            .map(|r| r.0)
            .collect()
    }

    #[tokio::test]
    async fn retention_keeps_what_the_limits_allow_at_the_time_it_is_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::open(dir.path()).await.expect("open");
        let dvr = Dvr::new(&Config::default(), db.clone(), Arc::new(Metrics::new()));
        let dvr = Dvr {
            root: dir.path().join("recordings"),
            ..dvr
        };
        crate::auth::stream_keys::add(&db, "lobby")
            .await
            .expect("stream");
        let uid = crate::streams::lookup(&db, "lobby")
            .await
            .expect("lookup")
            .expect("lobby")
            .uid;
        let directory = Directory::load(&db, 0).await.expect("directory");
        let now = 1_795_000_000_000;
        let mut paths = Vec::new();
        for (msn, age) in [(1, 120), (2, 90), (3, 30), (4, 10)] {
            paths.push(segment(&dvr, &uid, msn, now, age, 1000).await);
        }
        let keep = |secs, bytes| settings::SettingsChange {
            enabled: Some(true),
            keep_secs: Some(secs),
            keep_bytes: Some(bytes),
        };

        // Without limits nothing goes; with a minute's, what is older than a minute at
        // the time given, files and rows.
        settings::set(&db, "lobby", keep(None, None))
            .await
            .expect("settings");
        retain_once(&dvr, &directory, now).await.expect("retain");
        assert_eq!(kept(&dvr).await, [1, 2, 3, 4]);
        settings::set(&db, "lobby", keep(Some(60), None))
            .await
            .expect("settings");
        retain_once(&dvr, &directory, now).await.expect("retain");
        assert_eq!(kept(&dvr).await, [3, 4]);
        assert!(!dvr.root.join(&paths[0]).exists() && dvr.root.join(&paths[2]).exists());

        // Twenty seconds later the one 30 s old then is past the minute.
        retain_once(&dvr, &directory, now + 40_000)
            .await
            .expect("retain");
        assert_eq!(kept(&dvr).await, [4]);

        // A size limit keeps the newest that fit; with no segment left, the init
        // segment goes too.
        segment(&dvr, &uid, 5, now, 5, 1000).await;
        settings::set(&db, "lobby", keep(None, Some(1500)))
            .await
            .expect("settings");
        retain_once(&dvr, &directory, now).await.expect("retain");
        assert_eq!(kept(&dvr).await, [5]);
        settings::set(&db, "lobby", keep(None, Some(10)))
            .await
            .expect("settings");
        retain_once(&dvr, &directory, now).await.expect("retain");
        assert!(kept(&dvr).await.is_empty());
        assert!(!dvr.root.join(format!("{uid}/1-0/video/init.mp4")).exists());
    }
}
