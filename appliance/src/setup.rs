//! The first-run setup: which step the wizard is at, and the appliance-wide settings
//! its steps write. Progress is kept in the database, so the wizard resumes where it
//! was after a reload or a restart; once finished it cannot run again but after a
//! factory reset.
//!
//! Settings written here (table `settings`, text values):
//!
//! | name | value |
//! | --- | --- |
//! | `setup.step` | the step reached, 2–5, once the administrator exists |
//! | `setup.done` | `1` once finished |
//! | `appliance.name` | shown in page titles and headers |
//! | `appliance.time_zone` | a tz database name, e.g. `Europe/Berlin` |
//! | `dvr.default_keep` | seconds, or `none`: the age limit new streams get |
//! | `dvr.record_new` | `1` or `0`: whether new streams record |

use crate::auth::users;
use crate::db::{self, DbError};
use sqlx::SqlitePool;

/// The wizard's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// 1: create the administrator.
    Admin = 1,
    /// 2: name the appliance and set the time zone.
    Identity = 2,
    /// 3: the network as it is.
    Network = 3,
    /// 4: the data disk and the default retention.
    Storage = 4,
    /// 5: a first stream or camera.
    FirstStream = 5,
}

impl Step {
    /// The step numbered `n` (1–5).
    pub fn from_number(n: u8) -> Option<Step> {
        Some(match n {
            1 => Step::Admin,
            2 => Step::Identity,
            3 => Step::Network,
            4 => Step::Storage,
            5 => Step::FirstStream,
            _ => return None,
        })
    }

    /// The step after this one; `None` after the last.
    pub fn next(self) -> Option<Step> {
        Step::from_number(self as u8 + 1)
    }
}

/// Where setup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Steps before this one are done.
    At(Step),
    /// Finished: the admin UI and the API answer, the wizard does not.
    Done,
}

/// Where setup is, from the database.
///
/// # Errors
/// A database error.
pub async fn progress(pool: &SqlitePool) -> Result<Progress, DbError> {
    if db::setting(pool, "setup.done").await?.as_deref() == Some("1") {
        return Ok(Progress::Done);
    }
    if users::count(pool).await? == 0 {
        return Ok(Progress::At(Step::Admin));
    }
    let step = db::setting(pool, "setup.step")
        .await?
        .and_then(|s| s.parse::<u8>().ok())
        .and_then(Step::from_number)
        .unwrap_or(Step::Identity)
        .max(Step::Identity);
    Ok(Progress::At(step))
}

/// Records that `done` is complete: the wizard goes on at the step after it, unless it
/// was further already (a step revisited with "Back").
///
/// # Errors
/// A database error.
pub async fn completed(pool: &SqlitePool, done: Step) -> Result<(), DbError> {
    let Some(next) = done.next() else {
        return Ok(());
    };
    if let Progress::At(now) = progress(pool).await? {
        if next > now {
            db::set_setting(pool, "setup.step", &(next as u8).to_string()).await?;
        }
    }
    Ok(())
}

/// Marks setup finished.
///
/// # Errors
/// A database error.
pub async fn finish(pool: &SqlitePool) -> Result<(), DbError> {
    db::set_setting(pool, "setup.done", "1").await
}

/// The longest appliance name, in characters.
pub const MAX_APPLIANCE_NAME: usize = 64;

/// Checks an appliance name: 1–64 characters after trimming, no control characters.
/// Returns it trimmed.
///
/// # Errors
/// What is wrong with it, to show beside the field.
pub fn check_appliance_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("give the appliance a name".into());
    }
    if name.chars().count() > MAX_APPLIANCE_NAME {
        return Err(format!("use at most {MAX_APPLIANCE_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("use letters, digits, spaces and punctuation only".into());
    }
    Ok(name)
}

/// The appliance's name (`streambox` until set).
///
/// # Errors
/// A database error.
pub async fn appliance_name(pool: &SqlitePool) -> Result<String, DbError> {
    Ok(db::setting(pool, "appliance.name")
        .await?
        .unwrap_or_else(|| "streambox".to_string()))
}

/// The appliance's time zone (`UTC` until set).
///
/// # Errors
/// A database error.
pub async fn time_zone(pool: &SqlitePool) -> Result<String, DbError> {
    Ok(db::setting(pool, "appliance.time_zone")
        .await?
        .unwrap_or_else(|| crate::system::zones::UTC.to_string()))
}

/// What new streams get for recording: whether they record, and the age limit in
/// seconds (`None`: keep until the disk needs the space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingDefaults {
    /// Whether new streams record.
    pub record: bool,
    /// The age limit, seconds.
    pub keep_secs: Option<i64>,
}

/// The recording defaults for new streams (off, 7 days, until set).
///
/// # Errors
/// A database error.
pub async fn recording_defaults(pool: &SqlitePool) -> Result<RecordingDefaults, DbError> {
    let record = db::setting(pool, "dvr.record_new").await?.as_deref() == Some("1");
    let keep_secs = match db::setting(pool, "dvr.default_keep").await?.as_deref() {
        None => Some(7 * 86_400),
        Some("none") => None,
        Some(s) => s.parse().ok(),
    };
    Ok(RecordingDefaults { record, keep_secs })
}

/// Stores the recording defaults for new streams.
///
/// # Errors
/// A database error.
pub async fn set_recording_defaults(
    pool: &SqlitePool,
    d: RecordingDefaults,
) -> Result<(), DbError> {
    db::set_setting(pool, "dvr.record_new", if d.record { "1" } else { "0" }).await?;
    let keep = d.keep_secs.map_or("none".to_string(), |s| s.to_string());
    db::set_setting(pool, "dvr.default_keep", &keep).await
}

/// Why recording defaults could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum DefaultsError {
    /// Reading the defaults failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing the stream's settings failed.
    #[error(transparent)]
    Dvr(#[from] crate::dvr::DvrError),
}

/// Gives the new stream or camera `name` the recording defaults, when setup stored any
/// (streams made before that, or on an appliance set up from the CLI only, keep the
/// built-in default: not recording).
///
/// # Errors
/// A database error, or the stream does not exist.
pub async fn apply_recording_defaults(pool: &SqlitePool, name: &str) -> Result<(), DefaultsError> {
    if db::setting(pool, "dvr.record_new").await?.is_none() {
        return Ok(());
    }
    let d = recording_defaults(pool).await?;
    crate::dvr::settings::set(
        pool,
        name,
        crate::dvr::settings::SettingsChange {
            enabled: Some(d.record),
            keep_secs: Some(d.keep_secs),
            keep_bytes: None,
        },
    )
    .await?;
    Ok(())
}
