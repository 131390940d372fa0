//! Recording settings per stream (by identity): on or off, and how long and how much to
//! keep.

use super::DvrError;
use crate::streams::StreamUid;
use sqlx::SqlitePool;

/// What is recorded of one stream and for how long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct RecordingSettings {
    /// Whether new segments are recorded.
    pub enabled: bool,
    /// Recordings older than this many seconds are deleted; `None`: no age limit.
    pub keep_secs: Option<i64>,
    /// The oldest recordings are deleted beyond this many bytes; `None`: no size limit.
    pub keep_bytes: Option<i64>,
}

/// A change to some of the settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettingsChange {
    /// Turn recording on or off.
    pub enabled: Option<bool>,
    /// New age limit (`Some(None)` removes it).
    pub keep_secs: Option<Option<i64>>,
    /// New size limit (`Some(None)` removes it).
    pub keep_bytes: Option<Option<i64>>,
}

/// Parses an age limit: a duration such as `7d`, `12h`, `90min` (humantime's syntax),
/// or `none`.
///
/// # Errors
/// [`DvrError::BadSetting`] with what was wrong.
pub fn parse_keep(s: &str) -> Result<Option<i64>, DvrError> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| DvrError::BadSetting(format!("--keep {s:?}: {e} (e.g. 7d, 12h, none)")))?;
    match i64::try_from(d.as_secs()) {
        Ok(secs) if secs > 0 => Ok(Some(secs)),
        _ => Err(DvrError::BadSetting(format!(
            "--keep {s:?}: must be at least a second"
        ))),
    }
}

/// Parses a size limit such as `50GB`, `500MiB`, or `none`.
///
/// # Errors
/// [`DvrError::BadSetting`] with what was wrong.
pub fn parse_keep_bytes(s: &str) -> Result<Option<i64>, DvrError> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| DvrError::BadSetting(format!("--keep-bytes {s:?}: {e} (e.g. 50GB, none)")))?;
    match i64::try_from(b.as_u64()) {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(DvrError::BadSetting(format!(
            "--keep-bytes {s:?}: must be more than 0"
        ))),
    }
}

/// The settings of `stream` (recording off when never set).
///
/// # Errors
/// A database error.
pub async fn get(pool: &SqlitePool, stream: &StreamUid) -> Result<RecordingSettings, DvrError> {
    let row: Option<RecordingSettings> = sqlx::query_as(
        "SELECT enabled, keep_secs, keep_bytes FROM recording_settings WHERE stream_uid = ?",
    )
    .bind(stream)
    .fetch_optional(pool)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Every stream with settings, by identity.
///
/// # Errors
/// A database error.
pub async fn all(pool: &SqlitePool) -> Result<Vec<(StreamUid, RecordingSettings)>, DvrError> {
    let rows: Vec<(StreamUid, bool, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT stream_uid, enabled, keep_secs, keep_bytes FROM recording_settings
         ORDER BY stream_uid",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(s, enabled, keep_secs, keep_bytes)| {
            (
                s,
                RecordingSettings {
                    enabled,
                    keep_secs,
                    keep_bytes,
                },
            )
        })
        .collect())
}

/// Applies `change` to the settings of stream or camera `name`; returns the new
/// settings.
///
/// # Errors
/// [`DvrError::NoSuchStream`], or a database error.
pub async fn set(
    pool: &SqlitePool,
    name: &str,
    change: SettingsChange,
) -> Result<RecordingSettings, DvrError> {
    let Some(stream) = crate::streams::lookup(pool, name).await?.map(|n| n.uid) else {
        return Err(DvrError::NoSuchStream(name.to_string()));
    };
    let mut s = get(pool, &stream).await?;
    if let Some(e) = change.enabled {
        s.enabled = e;
    }
    if let Some(k) = change.keep_secs {
        s.keep_secs = k;
    }
    if let Some(k) = change.keep_bytes {
        s.keep_bytes = k;
    }
    sqlx::query(
        "INSERT INTO recording_settings (stream_uid, enabled, keep_secs, keep_bytes)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (stream_uid) DO UPDATE SET enabled = excluded.enabled,
             keep_secs = excluded.keep_secs, keep_bytes = excluded.keep_bytes",
    )
    .bind(stream)
    .bind(s.enabled)
    .bind(s.keep_secs)
    .bind(s.keep_bytes)
    .execute(pool)
    .await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_or_say_why() {
        assert_eq!(parse_keep("7d").ok(), Some(Some(7 * 86_400)));
        assert_eq!(parse_keep("90min").ok(), Some(Some(5400)));
        assert_eq!(parse_keep("none").ok(), Some(None));
        assert!(parse_keep("forever").is_err());
        assert!(parse_keep("0s").is_err());
        assert_eq!(parse_keep_bytes("50GB").ok(), Some(Some(50_000_000_000)));
        assert_eq!(parse_keep_bytes("1 MiB").ok(), Some(Some(1 << 20)));
        assert!(parse_keep_bytes("lots").is_err());
        assert!(parse_keep_bytes("0").is_err());
    }
}
