//! The `sources` table: RTSP cameras to pull from, and the state the running service
//! reports for each.
//!
//! Credentials are split off the URL when a source is added and stored in their own
//! columns; the URL kept and shown never carries them, and [`SourceRow::display_url`]
//! masks the password.

use crate::auth::stream_keys::valid_name;
use crate::db::{unix_now, DbError};
use percent_encoding::percent_decode_str;
use sqlx::SqlitePool;
use std::fmt;
use std::str::FromStr;
use url::Url;

/// Why a source operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The name does not fit `[a-z0-9][a-z0-9_-]{0,63}`.
    #[error("invalid source name {0:?}: use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit")]
    InvalidName(String),
    /// The URL is not an `rtsp://` URL with a host. The message never repeats the URL,
    /// which may hold a password.
    #[error("invalid camera URL: {0}")]
    InvalidUrl(String),
    /// A transport other than `tcp` or `udp`.
    #[error("invalid transport {0:?}: use tcp or udp")]
    InvalidTransport(String),
    /// `source add` for a name that exists.
    #[error("source {0:?} already exists")]
    Exists(String),
    /// `source add` for a name that a pushed stream uses.
    #[error("{0:?} is the name of a stream; pick another name")]
    TakenByStream(String),
    /// No source of that name.
    #[error("no source named {0:?}")]
    NoSuchSource(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for SourceError {
    fn from(e: sqlx::Error) -> Self {
        SourceError::Db(DbError::Query(e))
    }
}

/// How RTP travels from the camera (RFC 2326 §12.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved on the RTSP TCP connection (§10.12): works through NAT and firewalls.
    Tcp,
    /// RTP/RTCP on UDP port pairs: less overhead on a clean LAN.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`, as stored and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl FromStr for Transport {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            other => Err(SourceError::InvalidTransport(other.to_string())),
        }
    }
}

/// What the service is doing with a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Connecting (DESCRIBE/SETUP/PLAY) for the first time or after a stop.
    Connecting,
    /// Media is flowing into the stream.
    Live,
    /// The last attempt failed with an error that may pass (the camera is down or
    /// rebooting); retrying with backoff.
    Retrying,
    /// The last attempt failed with an error that will not pass on its own (wrong
    /// credentials, no such path, no usable codec); still retried, at the backoff cap.
    Failed,
}

impl SourceState {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Live => "live",
            SourceState::Retrying => "retrying",
            SourceState::Failed => "failed",
        }
    }
}

impl fmt::Display for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source as stored, with its last reported state.
#[derive(Clone, sqlx::FromRow)]
pub struct SourceRow {
    /// Source and stream name.
    pub name: String,
    /// `rtsp://` URL without user info.
    pub url: String,
    /// User name for Basic/Digest authentication; empty for none.
    pub username: String,
    /// Password; empty for none. Never log or print this.
    pub password: String,
    /// `tcp` or `udp`.
    pub transport: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// A [`SourceState`] name.
    pub state: String,
    /// The last error, one line; empty when none.
    pub last_error: String,
    /// Bits per second received over the last few seconds while live.
    pub bitrate: i64,
    /// Seconds since the Unix epoch when the current live session began.
    pub live_since: Option<i64>,
    /// Seconds since the Unix epoch of the last state report.
    pub updated_at: i64,
}

impl fmt::Debug for SourceRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of debug output and therefore out of logs.
        f.debug_struct("SourceRow")
            .field("name", &self.name)
            .field("url", &self.display_url())
            .field("transport", &self.transport)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SourceRow {
    /// A row that is not stored, for testing a camera before adding it.
    pub fn probe_row(cam: &CameraUrl, transport: Transport) -> SourceRow {
        SourceRow {
            name: String::new(),
            url: cam.url.to_string(),
            username: cam.username.clone(),
            password: cam.password.clone(),
            transport: transport.as_str().to_string(),
            created_at: 0,
            state: String::new(),
            last_error: String::new(),
            bitrate: 0,
            live_since: None,
            updated_at: 0,
        }
    }

    /// The URL with the user name and a masked password, for people:
    /// `rtsp://admin:***@10.0.0.9:554/stream1`.
    pub fn display_url(&self) -> String {
        let Some(rest) = self.url.strip_prefix("rtsp://") else {
            return self.url.clone();
        };
        match (self.username.is_empty(), self.password.is_empty()) {
            (true, _) => self.url.clone(),
            (false, true) => format!("rtsp://{}@{rest}", self.username),
            (false, false) => format!("rtsp://{}:***@{rest}", self.username),
        }
    }
}

/// A camera URL split into the URL to request and its credentials.
#[derive(Clone)]
pub struct CameraUrl {
    /// `rtsp://host[:port]/path?query`, without user info.
    pub url: Url,
    /// Percent-decoded user name; empty for none.
    pub username: String,
    /// Percent-decoded password; empty for none.
    pub password: String,
}

/// Parses `rtsp://[user[:password]@]host[:port][/path]`, splitting off the credentials.
///
/// # Errors
/// [`SourceError::InvalidUrl`], without the URL in the message.
pub fn parse_camera_url(raw: &str) -> Result<CameraUrl, SourceError> {
    let mut url = Url::parse(raw).map_err(|e| SourceError::InvalidUrl(e.to_string()))?;
    if url.scheme() != "rtsp" {
        return Err(SourceError::InvalidUrl(format!(
            "scheme {:?} is not rtsp",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SourceError::InvalidUrl("no host".into()));
    }
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| SourceError::InvalidUrl("credentials are not UTF-8".into()))
    };
    let username = decode(url.username())?;
    let password = decode(url.password().unwrap_or(""))?;
    // Neither call fails on a URL that has a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    Ok(CameraUrl {
        url,
        username,
        password,
    })
}

/// Adds a source; the running service starts pulling it within a few seconds.
///
/// # Errors
/// [`SourceError::InvalidName`], [`SourceError::InvalidUrl`], [`SourceError::Exists`],
/// [`SourceError::TakenByStream`], or a database error.
pub async fn add(
    pool: &SqlitePool,
    name: &str,
    raw_url: &str,
    transport: Transport,
) -> Result<CameraUrl, SourceError> {
    if !valid_name(name) {
        return Err(SourceError::InvalidName(name.to_string()));
    }
    let cam = parse_camera_url(raw_url)?;
    let r = sqlx::query(
        "INSERT INTO sources (name, url, username, password, transport, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(name)
    .bind(cam.url.as_str())
    .bind(&cam.username)
    .bind(&cam.password)
    .bind(transport.as_str())
    .bind(unix_now())
    .bind(unix_now())
    .execute(pool)
    .await;
    match r {
        Ok(_) => Ok(cam),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(SourceError::Exists(name.to_string()))
        }
        // The `sources_name_free` trigger.
        Err(sqlx::Error::Database(e)) if e.message().contains("taken by a stream") => {
            Err(SourceError::TakenByStream(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Changes a source's URL, credentials and transport; the running service reconnects
/// with them within a few seconds. When `raw_url` carries a user name but no password
/// and the user name is the stored one, the stored password is kept (forms do not echo
/// passwords back).
///
/// # Errors
/// [`SourceError::InvalidUrl`], [`SourceError::NoSuchSource`], or a database error.
pub async fn update(
    pool: &SqlitePool,
    name: &str,
    raw_url: &str,
    transport: Transport,
) -> Result<CameraUrl, SourceError> {
    let mut cam = parse_camera_url(raw_url)?;
    let mut tx = pool.begin().await?;
    let stored: Option<(String, String)> =
        sqlx::query_as("SELECT username, password FROM sources WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((user, password)) = stored else {
        return Err(SourceError::NoSuchSource(name.to_string()));
    };
    if cam.password.is_empty() && !cam.username.is_empty() && cam.username == user {
        cam.password = password;
    }
    sqlx::query(
        "UPDATE sources SET url = ?, username = ?, password = ?, transport = ?, updated_at = ?
         WHERE name = ?",
    )
    .bind(cam.url.as_str())
    .bind(&cam.username)
    .bind(&cam.password)
    .bind(transport.as_str())
    .bind(unix_now())
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(cam)
}

/// All sources, by name.
///
/// # Errors
/// A database error.
pub async fn list(pool: &SqlitePool) -> Result<Vec<SourceRow>, SourceError> {
    Ok(sqlx::query_as(
        "SELECT name, url, username, password, transport, created_at, state, last_error,
                bitrate, live_since, updated_at
         FROM sources ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// Deletes a source; the running service tears its RTSP session down within a few
/// seconds.
///
/// # Errors
/// [`SourceError::NoSuchSource`] or a database error.
pub async fn remove(pool: &SqlitePool, name: &str) -> Result<(), SourceError> {
    let r = sqlx::query("DELETE FROM sources WHERE name = ?")
        .bind(name)
        .execute(pool)
        .await?;
    if r.rows_affected() == 0 {
        return Err(SourceError::NoSuchSource(name.to_string()));
    }
    Ok(())
}

/// Records the state of a source as the running service sees it. `error` is kept only
/// up to its first line; `bitrate` is in bits per second. A source deleted meanwhile is
/// left deleted.
///
/// # Errors
/// A database error.
pub async fn report(
    pool: &SqlitePool,
    name: &str,
    state: SourceState,
    error: Option<&str>,
    bitrate: u64,
    live_since: Option<i64>,
) -> Result<(), SourceError> {
    let error = error.map(|e| e.lines().next().unwrap_or("").trim().to_string());
    sqlx::query(
        "UPDATE sources SET state = ?, last_error = COALESCE(?, last_error), bitrate = ?,
                live_since = ?, updated_at = ?
         WHERE name = ?",
    )
    .bind(state.as_str())
    .bind(error)
    .bind(i64::try_from(bitrate).unwrap_or(i64::MAX))
    .bind(live_since)
    .bind(unix_now())
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_and_decoded() {
        let c =
            parse_camera_url("rtsp://admin:p%40ss:w@10.0.0.9:554/stream1?ch=1#x").expect("parse");
        assert_eq!(c.url.as_str(), "rtsp://10.0.0.9:554/stream1?ch=1");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss:w")
        );
        let none = parse_camera_url("rtsp://cam.local/live").expect("parse");
        assert_eq!((none.username.as_str(), none.password.as_str()), ("", ""));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for raw in ["http://u:secret@cam/x", "rtsp://", "secret", "rtsp:///path"] {
            let e = parse_camera_url(raw).err().map(|e| e.to_string());
            let e = e.unwrap_or_else(|| panic!("{raw} accepted"));
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn display_masks_the_password() {
        let row = SourceRow {
            name: "door".into(),
            url: "rtsp://10.0.0.9/stream1".into(),
            username: "admin".into(),
            password: "hunter2".into(),
            transport: "tcp".into(),
            created_at: 0,
            state: "live".into(),
            last_error: String::new(),
            bitrate: 0,
            live_since: None,
            updated_at: 0,
        };
        assert_eq!(row.display_url(), "rtsp://admin:***@10.0.0.9/stream1");
        assert!(!format!("{row:?}").contains("hunter2"));
    }
}
