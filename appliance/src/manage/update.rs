//! Updating the appliance: a bundle received, checked by RAUC (signature, compatible),
//! refused when it is older than what runs (unless a downgrade is asked for), installed
//! to the other root slot, and the outcome after the reboot: the new slot kept once it
//! has passed its health check (`boot-complete.target`), or the rollback and its
//! reason. See [`crate::system::update`] for the host's side.
//!
//! Settings (table `settings`, JSON): `update.pending` (installed, not yet booted:
//! [`Pending`]) and `update.last` (how the last update ended: [`Outcome`]).

use super::{json_setting, now_ms, Refused};
use crate::system::update::{self as host, InstallerProxy};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const PENDING: &str = "update.pending";
const LAST: &str = "update.last";
/// The furthest ahead a reboot may be scheduled (a week).
pub const MAX_REBOOT_AHEAD: Duration = Duration::from_secs(7 * 86_400);

/// Checks a reboot time asked for: after `now` and at most [`MAX_REBOOT_AHEAD`] later.
///
/// # Errors
/// [`Refused::Invalid`], saying why.
pub fn reboot_time(at: SystemTime, now: SystemTime) -> Result<SystemTime, Refused> {
    if at <= now {
        return Err(Refused::Invalid(
            "that time has passed: choose a later one, or reboot now".into(),
        ));
    }
    if at.duration_since(now).unwrap_or_default() > MAX_REBOOT_AHEAD {
        return Err(Refused::Invalid(
            "a reboot can be scheduled at most a week ahead".into(),
        ));
    }
    Ok(at)
}

/// A time as an RFC 3339 timestamp (`2026-12-03T23:00:00Z`, `…+01:00`), as the API
/// takes it.
///
/// # Errors
/// [`Refused::Invalid`].
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, Refused> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| {
            Refused::Invalid(format!(
                "{:?} is not an RFC 3339 time such as 2026-12-03T23:00:00Z",
                text.chars().take(40).collect::<String>()
            ))
        })
}

/// A wall-clock time in time zone `zone` (`2026-12-03T23:00`, as a browser's
/// `datetime-local` field sends it). A time that a clock change skips or repeats is
/// taken as the later (RFC 9557's "compatible" choice).
///
/// # Errors
/// [`Refused::Invalid`] for a time that does not parse; [`Refused::Failed`] when the
/// zone is not in the system's tz database.
pub fn parse_local(text: &str, zone: &str) -> Result<SystemTime, Refused> {
    let civil: jiff::civil::DateTime = text.trim().parse().map_err(|_| {
        Refused::Invalid(format!(
            "{:?} is not a date and time such as 2026-12-03T23:00",
            text.chars().take(40).collect::<String>()
        ))
    })?;
    let tz = jiff::tz::TimeZone::get(zone).map_err(Refused::failed)?;
    let zoned = civil.to_zoned(tz).map_err(Refused::failed)?;
    Ok(SystemTime::from(zoned.timestamp()))
}

/// `t` as a wall-clock time in time zone `zone` (`2026-12-03 23:00 CET`), or in UTC
/// when the zone is unknown.
pub fn local_text(t: SystemTime, zone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_default()
}

/// The file in the data directory whose text the console banner shows: why the last
/// update was rolled back (removed when an update is installed or runs).
pub const NOTICE_FILE: &str = "update-notice";
/// The largest bundle accepted, in bytes.
pub const MAX_BUNDLE_BYTES: u64 = 4 << 30;
/// Free space kept on the data partition besides a bundle being received, in bytes:
/// room for the recordings being written while it arrives.
const KEEP_FREE: u64 = 256 << 20;
/// How often, in bytes received, the free space is looked at again while a bundle
/// arrives (recordings fill the disk too, and an upload without a length is checked
/// only this way).
const SPACE_CHECK_EVERY: u64 = 16 << 20;
/// How long a new slot may take to pass its health check before the service stops
/// waiting to report it (the box reboots by itself before that when it fails).
const BLESS_WAIT: Duration = Duration::from_secs(600);

/// An update installed and not booted yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// The bundle's version.
    pub version: String,
    /// The slot it was written to (`a`, `b`).
    pub slot: String,
    /// The version and slot that ran when it was installed.
    pub from_version: String,
    /// The slot that ran then.
    pub from_slot: String,
    /// When it was installed, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// How the last update ended, once the box had rebooted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// `updated` or `rolled back`.
    pub outcome: String,
    /// The version installed.
    pub version: String,
    /// The version before.
    pub from_version: String,
    /// The slot that runs now.
    pub slot: String,
    /// Why it was rolled back.
    pub reason: Option<String>,
    /// When this was found, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// What an install in progress is doing.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Progress {
    /// `idle`, `receiving`, `checking`, `installing`, `installed` (reboot to use it) or
    /// `failed`.
    pub state: String,
    /// Percent done (installing).
    pub percent: Option<i32>,
    /// RAUC's message, or the failure.
    pub message: Option<String>,
    /// The bundle's version.
    pub version: Option<String>,
}

/// Everything the page and `GET /api/system/update` show.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The image's release that runs (`None` off the appliance).
    pub release: Option<String>,
    /// The root slot this boot runs from.
    pub slot: Option<String>,
    /// What an install is doing now.
    pub progress: Progress,
    /// Installed, waiting for a reboot.
    pub pending: Option<Pending>,
    /// How the last update ended.
    pub last: Option<Outcome>,
    /// Update bundles on removable media now (a USB stick), to install from.
    pub media: Vec<host::MediaBundle>,
    /// When the box is to reboot (scheduled through logind); ISO 8601 UTC in JSON.
    #[serde(serialize_with = "iso_time")]
    pub reboot_at: Option<SystemTime>,
}

fn iso_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    t.map(crate::packager::hls::iso8601).serialize(s)
}

/// A bundle checked and accepted for installing.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// Its version.
    pub version: String,
    /// Its compatible string.
    pub compatible: String,
    /// The release that runs.
    pub running: Option<String>,
    /// The slot it goes to.
    pub slot: String,
}

/// Updates: one at a time.
pub struct Updates {
    db: SqlitePool,
    dir: PathBuf,
    /// Where removable media are mounted (`Config::removable_media_dir`).
    media_dir: PathBuf,
    progress: Mutex<Progress>,
}

impl Updates {
    /// Updates keeping bundles in `DATA_DIR/updates`.
    pub fn new(db: SqlitePool, data_dir: &Path, media_dir: &Path) -> Arc<Updates> {
        Arc::new(Updates {
            db,
            dir: data_dir.join("updates"),
            media_dir: media_dir.to_path_buf(),
            progress: Mutex::new(Progress {
                state: "idle".into(),
                ..Progress::default()
            }),
        })
    }

    fn set(&self, p: Progress) {
        if let Ok(mut g) = self.progress.lock() {
            *g = p;
        }
    }

    fn progress(&self) -> Progress {
        self.progress.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// What runs, what an install is doing, and how the last update ended.
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn status(&self) -> Result<Status, Refused> {
        Ok(Status {
            media: self.media().await,
            release: host::release(),
            slot: host::booted_slot(),
            progress: self.progress(),
            pending: json_setting(&self.db, PENDING).await?,
            last: json_setting(&self.db, LAST).await?,
            reboot_at: host::scheduled_reboot().await,
        })
    }

    /// The update bundles on removable media now ([`host::media_bundles`]).
    pub async fn media(&self) -> Vec<host::MediaBundle> {
        let dir = self.media_dir.clone();
        tokio::task::spawn_blocking(move || host::media_bundles(&dir))
            .await
            .unwrap_or_default()
    }

    /// Installs the bundle `file` on removable media (as [`host::media_bundles`] lists
    /// it), as [`Updates::receive`] does an upload: copied to the data disk first, so
    /// pulling the stick out changes nothing, then checked the same way.
    ///
    /// # Errors
    /// [`Refused::NotFound`] for a file that is not a bundle listed on the media now;
    /// what [`Updates::receive`] refuses.
    pub async fn receive_media(
        self: &Arc<Self>,
        file: &str,
        downgrade: bool,
    ) -> Result<Accepted, Refused> {
        let (dir, name) = (self.media_dir.clone(), file.to_string());
        let path = tokio::task::spawn_blocking(move || host::media_bundle(&dir, &name))
            .await
            .map_err(Refused::failed)?
            .ok_or_else(|| {
                Refused::NotFound(format!(
                    "{:?} is not an update bundle on a USB stick now",
                    file.chars().take(200).collect::<String>()
                ))
            })?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Refused::Unavailable(format!("the stick could not be read: {e}")))?;
        let len = f.metadata().await.map_err(Refused::failed)?.len();
        self.receive(tokio_util::io::ReaderStream::new(f), Some(len), downgrade)
            .await
    }

    /// Claims the installer for a new bundle: `Err` while one is received or installed.
    fn claim(&self) -> Result<(), Refused> {
        let mut g = self
            .progress
            .lock()
            .map_err(|_| Refused::failed("the update state is poisoned"))?;
        if matches!(g.state.as_str(), "receiving" | "checking" | "installing") {
            return Err(Refused::Conflict(format!(
                "an update is {} already; wait for it to finish",
                g.state
            )));
        }
        *g = Progress {
            state: "receiving".into(),
            ..Progress::default()
        };
        Ok(())
    }

    /// Receives a bundle from `body` (at most [`MAX_BUNDLE_BYTES`], `expected` bytes
    /// when the client said), checks it with RAUC, refuses an older version unless
    /// `downgrade`, and starts installing it to the other slot. Returns once the install
    /// has started; [`Updates::status`] follows it.
    ///
    /// # Errors
    /// [`Refused::Conflict`] while another update runs; [`Refused::Invalid`] for a
    /// bundle that is cut short, not signed by this appliance's key, for another
    /// system, or older; [`Refused::Unavailable`] off the appliance (no RAUC) or when
    /// the data partition has no room; [`Refused::Failed`].
    pub async fn receive<S, E>(
        self: &Arc<Self>,
        body: S,
        expected: Option<u64>,
        downgrade: bool,
    ) -> Result<Accepted, Refused>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.claim()?;
        let result = self.receive_claimed(body, expected, downgrade).await;
        if let Err(e) = &result {
            self.set(Progress {
                state: "failed".into(),
                message: Some(e.to_string()),
                ..Progress::default()
            });
        }
        result
    }

    async fn receive_claimed<S, E>(
        self: &Arc<Self>,
        body: S,
        expected: Option<u64>,
        downgrade: bool,
    ) -> Result<Accepted, Refused>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let no_rauc = |e: zbus::Error| {
            Refused::Unavailable(format!("updates need the appliance's RAUC service: {e}"))
        };
        let conn = zbus::Connection::system().await.map_err(no_rauc)?;
        let rauc = InstallerProxy::new(&conn).await.map_err(no_rauc)?;
        let running = host::release();
        let booted = host::booted_slot().ok_or_else(|| {
            Refused::Unavailable("this machine does not boot from an A/B slot".into())
        })?;
        let bundle = self.store(body, expected).await?;
        self.set(Progress {
            state: "checking".into(),
            ..Progress::default()
        });
        let path = bundle.display().to_string();
        if let Err(why) = bundle_format(&bundle).await {
            let _ = tokio::fs::remove_file(&bundle).await;
            return Err(Refused::Invalid(why));
        }
        let (compatible, version) = match rauc.info(&path).await {
            Ok(info) => info,
            Err(e) => {
                // RAUC's Info answers only "rauc info error" (its reason goes to its
                // log); the framing was checked above, so it is the signature.
                let _ = tokio::fs::remove_file(&bundle).await;
                tracing::warn!(error = %rauc_message(&e), "RAUC refused a bundle");
                return Err(Refused::Invalid(
                    "RAUC refused the bundle: its signature is not by this appliance's update \
                     key, or the bundle is damaged"
                        .into(),
                ));
            }
        };
        // RAUC would refuse another system's bundle only once installing; say so now.
        let system = rauc
            .compatible()
            .await
            .map_err(|e| Refused::failed(rauc_message(&e)))?;
        if compatible != system {
            let _ = tokio::fs::remove_file(&bundle).await;
            return Err(Refused::Invalid(format!(
                "the bundle is for {compatible:?}, not for this appliance ({system})"
            )));
        }
        if let Some(now) = &running {
            match host::compare(&version, now) {
                Some(std::cmp::Ordering::Less) if !downgrade => {
                    let _ = tokio::fs::remove_file(&bundle).await;
                    return Err(Refused::Invalid(format!(
                        "the bundle's version {version} is older than the running {now}: \
                         allow a downgrade to install it"
                    )));
                }
                None => {
                    let _ = tokio::fs::remove_file(&bundle).await;
                    return Err(Refused::Invalid(format!(
                        "the bundle's version {version:?} is not a version"
                    )));
                }
                _ => {}
            }
        }
        let slot = if booted == "a" { "b" } else { "a" }.to_string();
        let mut completed = rauc
            .receive_completed()
            .await
            .map_err(|e| Refused::failed(rauc_message(&e)))?;
        if let Err(e) = rauc.install_bundle(&path, Default::default()).await {
            let _ = tokio::fs::remove_file(&bundle).await;
            return Err(Refused::Invalid(format!(
                "the install did not start: {}",
                rauc_message(&e)
            )));
        }
        self.set(Progress {
            state: "installing".into(),
            percent: Some(0),
            version: Some(version.clone()),
            ..Progress::default()
        });
        let me = self.clone();
        let pending = Pending {
            version: version.clone(),
            slot: slot.clone(),
            from_version: running.clone().unwrap_or_default(),
            from_slot: booted,
            at_ms: now_ms(),
        };
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let result = loop {
                tokio::select! {
                    c = completed.next() => {
                        break c.and_then(|c| c.args().ok().map(|a| a.result)).unwrap_or(-1);
                    }
                    _ = tick.tick() => {
                        if let Ok((percent, message, _)) = rauc.progress().await {
                            me.set(Progress {
                                state: "installing".into(),
                                percent: Some(percent),
                                message: Some(message),
                                version: Some(pending.version.clone()),
                            });
                        }
                    }
                }
            };
            let _ = tokio::fs::remove_file(&bundle).await;
            if result == 0 {
                let saved = serde_json::to_string(&pending)
                    .map_err(|e| e.to_string())
                    .map(|t| (t, me.db.clone()));
                if let Ok((text, db)) = saved {
                    if let Err(e) = crate::db::set_setting(&db, PENDING, &text).await {
                        tracing::error!(error = %e, "recording the installed update failed");
                    }
                }
                tracing::info!(version = %pending.version, slot = %pending.slot, "update installed; it runs after a reboot");
                me.set(Progress {
                    state: "installed".into(),
                    percent: Some(100),
                    message: Some("installed: reboot to run it".into()),
                    version: Some(pending.version.clone()),
                });
            } else {
                let why = rauc.last_error().await.unwrap_or_else(|_| "unknown".into());
                tracing::error!(version = %pending.version, error = %why, "the update failed to install");
                me.set(Progress {
                    state: "failed".into(),
                    message: Some(format!("the install failed: {why}")),
                    version: Some(pending.version.clone()),
                    ..Progress::default()
                });
            }
        });
        Ok(Accepted {
            version,
            compatible,
            running,
            slot,
        })
    }

    /// Writes `body` to `updates/bundle.raucb` through a partial file; checks the size
    /// against `expected` and [`MAX_BUNDLE_BYTES`], and the room on the data partition:
    /// before the first byte when the length is known, then every
    /// [`SPACE_CHECK_EVERY`] bytes, giving up (and removing the partial file) when less
    /// than [`KEEP_FREE`] would be left, so that an upload never fills the disk the
    /// recordings are written to.
    async fn store<S, E>(&self, mut body: S, expected: Option<u64>) -> Result<PathBuf, Refused>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(Refused::failed)?;
        if let Some(n) = expected {
            if n > MAX_BUNDLE_BYTES {
                return Err(Refused::Invalid(format!(
                    "the bundle is {n} bytes, more than {MAX_BUNDLE_BYTES}"
                )));
            }
            let free = crate::system::storage::disk_space(&self.dir)
                .map(|d| d.free_bytes)
                .unwrap_or(u64::MAX);
            if free < n.saturating_add(KEEP_FREE) {
                return Err(Refused::Unavailable(format!(
                    "the data disk has {free} bytes free, too few for a bundle of {n} bytes"
                )));
            }
        }
        let partial = self.dir.join("bundle.raucb.partial");
        let done = self.dir.join("bundle.raucb");
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(Refused::failed)?;
        let mut received = 0u64;
        let mut checked_at = 0u64;
        let written = async {
            while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), body.next())
                .await
                .map_err(|_| Refused::Invalid("the upload stalled for a minute".into()))?
            {
                let chunk = chunk
                    .map_err(|e| Refused::Invalid(format!("the upload was cut short: {e}")))?;
                received += chunk.len() as u64;
                if received > MAX_BUNDLE_BYTES {
                    return Err(Refused::Invalid(format!(
                        "the bundle is more than {MAX_BUNDLE_BYTES} bytes"
                    )));
                }
                if received - checked_at >= SPACE_CHECK_EVERY {
                    checked_at = received;
                    let free = crate::system::storage::disk_space(&self.dir)
                        .map(|d| d.free_bytes)
                        .unwrap_or(u64::MAX);
                    if free < KEEP_FREE {
                        return Err(Refused::Unavailable(format!(
                            "the data disk is nearly full ({free} bytes free after {received} bytes of the bundle): it was not kept, so that recordings have room"
                        )));
                    }
                }
                file.write_all(&chunk).await.map_err(|e| {
                    if e.raw_os_error() == Some(28) {
                        Refused::Unavailable(
                            "the data disk is full: the bundle does not fit".into(),
                        )
                    } else {
                        Refused::failed(e)
                    }
                })?;
            }
            if let Some(n) = expected {
                if received != n {
                    return Err(Refused::Invalid(format!(
                        "the upload was cut short: {received} of {n} bytes"
                    )));
                }
            }
            file.sync_all().await.map_err(Refused::failed)?;
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        tokio::fs::rename(&partial, &done)
            .await
            .map_err(Refused::failed)?;
        Ok(done)
    }

    /// After a boot: how an update installed before it ended. On the slot it was
    /// installed to, "updated" once the slot has passed its health check
    /// (`boot-complete.target` is active; the box reboots by itself when it fails); on
    /// the other slot, "rolled back", with the reason the failed slot recorded. Logged,
    /// kept in `update.last`, shown on the System page.
    pub async fn after_boot(self: Arc<Self>) {
        let Ok(Some(pending)) = json_setting::<Pending>(&self.db, PENDING).await else {
            return;
        };
        let Some(booted) = host::booted_slot() else {
            return;
        };
        let outcome = if booted == pending.slot {
            let deadline = tokio::time::Instant::now() + BLESS_WAIT;
            let conn = zbus::Connection::system().await.ok();
            loop {
                if let Some(c) = &conn {
                    if crate::system::systemd::active(c, "boot-complete.target").await {
                        break;
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!("the new slot did not pass its health check in time");
                    return;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Outcome {
                outcome: "updated".into(),
                version: pending.version.clone(),
                from_version: pending.from_version.clone(),
                slot: booted,
                reason: None,
                at_ms: now_ms(),
            }
        } else {
            let reason = host::Failure::recorded()
                .filter(|f| f.slot == pending.slot && f.at_ms >= pending.at_ms)
                .map(|f| f.reason)
                .unwrap_or_else(|| "the new system did not start (it recorded no reason)".into());
            Outcome {
                outcome: "rolled back".into(),
                version: pending.version.clone(),
                from_version: pending.from_version.clone(),
                slot: booted,
                reason: Some(reason),
                at_ms: now_ms(),
            }
        };
        match &outcome.reason {
            None => tracing::info!(version = %outcome.version, "the update runs"),
            Some(why) => {
                tracing::error!(version = %outcome.version, reason = %why, "the update failed and was rolled back")
            }
        }
        let notice = self.dir.with_file_name(NOTICE_FILE);
        let written = match rolled_back_text(&outcome) {
            Some(text) => tokio::fs::write(&notice, text).await,
            None => match tokio::fs::remove_file(&notice).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "the console's update notice was not written");
        }
        let text = serde_json::to_string(&outcome).unwrap_or_default();
        if let Err(e) = crate::db::set_setting(&self.db, LAST, &text).await {
            tracing::error!(error = %e, "recording the update's outcome failed");
        }
        if let Err(e) = crate::db::set_setting(&self.db, PENDING, "").await {
            tracing::error!(error = %e, "clearing the pending update failed");
        }
    }
}

/// The largest CMS signature RAUC reads, in bytes.
const MAX_SIGNATURE: u64 = 64 * 1024;

/// Checks a bundle's framing as RAUC lays it out: a SquashFS image (magic `hsqs`),
/// then the CMS signature, then the signature's size as a big-endian u64; for a verity
/// bundle the image is a whole number of 4 KiB blocks.
///
/// # Errors
/// What is wrong, for the administrator ("not a RAUC bundle", "cut short").
async fn bundle_format(path: &Path) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let size = f.metadata().await.map_err(|e| e.to_string())?.len();
    let not = "not a RAUC update bundle (a streambox-VERSION-amd64.raucb)";
    if size < 4096 + 8 {
        return Err(format!("the file is {not}: it is only {size} bytes"));
    }
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).await.map_err(|e| e.to_string())?;
    if &magic != b"hsqs" {
        return Err(format!("the file is {not}"));
    }
    f.seek(std::io::SeekFrom::End(-8))
        .await
        .map_err(|e| e.to_string())?;
    let signature = f.read_u64().await.map_err(|e| e.to_string())?;
    let payload = (size - 8).checked_sub(signature);
    match payload {
        Some(p) if signature > 0 && signature <= MAX_SIGNATURE && p % 4096 == 0 => Ok(()),
        _ => Err(format!(
            "the bundle is cut short or damaged: its end does not hold a signature \
             ({size} bytes received)"
        )),
    }
}

/// RAUC's error text without D-Bus's wrapping.
fn rauc_message(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(_, Some(detail), _) => detail.clone(),
        other => other.to_string(),
    }
}

/// The text for a rollback, as the page and the console say it.
pub fn rolled_back_text(o: &Outcome) -> Option<String> {
    o.reason.as_ref().map(|why| {
        format!(
            "The update to {} failed and was rolled back: {why}. {} runs again.",
            o.version, o.from_version
        )
    })
}
