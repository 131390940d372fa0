//! The `sources` table: RTSP cameras to pull from (kind `rtsp`) and capture devices on
//! the box (kind `capture`, [`crate::ingest::capture`]), and the state the running
//! service reports for each.
//!
//! Credentials are split off the URL when a source is added and stored in their own
//! columns; the URL kept and shown never carries them, and [`SourceRow::display_url`]
//! masks the password. Cameras that take credentials in the query instead
//! (`?user=…&password=…`) keep them in the stored URL; wherever a URL is shown (pages,
//! API, `source list`, the log, error messages) [`mask_url`] masks the values of the
//! query parameters such credentials go by ([`SECRET_PARAMS`]), and an edit that sends a
//! masked value back keeps the stored one.

use crate::auth::stream_keys::valid_name;
use crate::db::{unix_now, DbError};
use crate::streams::StreamUid;
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
    /// Connecting (DESCRIBE/SETUP/PLAY), or opening a capture device, for the first time
    /// or after a stop.
    Connecting,
    /// Media is flowing into the stream.
    Live,
    /// The last attempt failed with an error that may pass (the camera is down or
    /// rebooting); retrying with backoff.
    Retrying,
    /// The last attempt failed with an error that will not pass on its own (wrong
    /// credentials, no such path, no usable codec); still retried, at the backoff cap.
    Failed,
    /// A capture source's device is not on the box; it starts again by itself when the
    /// device comes back.
    Unplugged,
}

impl SourceState {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Connecting => "connecting",
            SourceState::Live => "live",
            SourceState::Retrying => "retrying",
            SourceState::Failed => "failed",
            SourceState::Unplugged => "unplugged",
        }
    }
}

impl fmt::Display for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a source takes its media from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// An RTSP camera on the network ([`super`]).
    Rtsp,
    /// A V4L2 capture device on this box ([`crate::ingest::capture`]).
    Capture,
}

impl SourceKind {
    /// `rtsp` or `capture`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Rtsp => "rtsp",
            SourceKind::Capture => "capture",
        }
    }
}

/// A source as stored, with its last reported state.
#[derive(Clone, sqlx::FromRow)]
pub struct SourceRow {
    /// The stream's identity.
    pub uid: StreamUid,
    /// Source and stream name.
    pub name: String,
    /// `rtsp` or `capture` ([`SourceKind`]).
    pub kind: String,
    /// `rtsp://` URL without user info; empty for a capture source.
    pub url: String,
    /// User name for Basic/Digest authentication; empty for none.
    pub username: String,
    /// Password; empty for none. Never log or print this.
    pub password: String,
    /// `tcp` or `udp`.
    pub transport: String,
    /// A capture source's device: its stable ID ([`crate::system::hardware::VideoDevice::id`]).
    pub device: String,
    /// The width asked of a capture device, in pixels; 0 for its best.
    pub width: i64,
    /// The height asked of a capture device, in pixels; 0 for its best.
    pub height: i64,
    /// The frame rate asked of a capture device, in frames per second; 0 for its best.
    pub fps: f64,
    /// The bitrate to encode a capture device's pictures at, in bits per second; 0 for
    /// one that fits the size and rate.
    pub video_bitrate: i64,
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
    /// A capture source's format as running: `YUYV 1280x720 at 30 fps, encoded at
    /// 3.3 Mbit/s`; empty otherwise.
    pub detail: String,
    /// Frames a capture source lost since it started: the device's sequence gaps, and
    /// frames skipped as corrupt.
    pub dropped: i64,
    /// A capture source's sound card: the ALSA capture PCM (`hw:CARD=ID,DEV=N`,
    /// [`crate::system::hardware::sound::Pcm::alsa`]); empty for pictures alone.
    pub audio: String,
}

impl fmt::Debug for SourceRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of debug output and therefore out of logs.
        f.debug_struct("SourceRow")
            .field("name", &self.name)
            .field("kind", &self.kind)
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
            url: cam.url.to_string(),
            username: cam.username.clone(),
            password: cam.password.clone(),
            transport: transport.as_str().to_string(),
            ..SourceRow::blank(SourceKind::Rtsp)
        }
    }

    /// A row of `kind` with every other field empty or zero.
    pub fn blank(kind: SourceKind) -> SourceRow {
        SourceRow {
            uid: StreamUid::new(),
            name: String::new(),
            kind: kind.as_str().to_string(),
            url: String::new(),
            username: String::new(),
            password: String::new(),
            transport: Transport::Tcp.as_str().to_string(),
            device: String::new(),
            width: 0,
            height: 0,
            fps: 0.0,
            video_bitrate: 0,
            created_at: 0,
            state: String::new(),
            last_error: String::new(),
            bitrate: 0,
            live_since: None,
            updated_at: 0,
            detail: String::new(),
            dropped: 0,
            audio: String::new(),
        }
    }

    /// A capture source's state as people read it: `live: YUYV 1280x720 at 30 fps,
    /// encoded at 2.8 Mbit/s; 3 frames dropped`, `unplugged`, `retrying: the device is
    /// busy: …`.
    pub fn capture_state(&self) -> String {
        match self.state.as_str() {
            "live" if !self.detail.is_empty() => {
                format!("live: {}; {} frames dropped", self.detail, self.dropped)
            }
            "live" | "unplugged" => self.state.clone(),
            _ if self.last_error.is_empty() => self.state.clone(),
            _ => format!("{}: {}", self.state, self.last_error),
        }
    }

    /// Whether this is a capture device on the box rather than an RTSP camera.
    pub fn is_capture(&self) -> bool {
        self.kind == SourceKind::Capture.as_str()
    }

    /// Where the media comes from, for people. An RTSP camera's URL with the user name
    /// and a masked password, and credentials in its query masked:
    /// `rtsp://admin:***@10.0.0.9:554/stream1?channel=1&token=***`; a capture device's
    /// `device usb-046d_HD_Pro_Webcam_C920_0A1B2C3D-video-index0`.
    pub fn display_url(&self) -> String {
        if self.is_capture() {
            return format!("device {}", self.device);
        }
        let url = mask_url(&self.url);
        let Some(rest) = url.strip_prefix("rtsp://") else {
            return url;
        };
        let user: String = url::form_urlencoded::byte_serialize(self.username.as_bytes()).collect();
        match (self.username.is_empty(), self.password.is_empty()) {
            (true, _) => url,
            (false, true) => format!("rtsp://{user}@{rest}"),
            (false, false) => format!("rtsp://{user}:{MASK}@{rest}"),
        }
    }

    /// The stored URL with credentials in its query masked, for the edit form (saving it
    /// back keeps the masked values: [`update`]).
    pub fn form_url(&self) -> String {
        mask_url(&self.url)
    }
}

/// What a masked credential shows as.
pub const MASK: &str = "***";

/// Query parameters whose values are credentials (compared without case).
pub const SECRET_PARAMS: [&str; 16] = [
    "user",
    "username",
    "usr",
    "login",
    "pass",
    "password",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "auth",
    "key",
    "apikey",
    "api_key",
    "secret",
    "signature",
];

fn secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// `url` with the password of its user info and the values of credential query
/// parameters ([`SECRET_PARAMS`]) replaced by [`MASK`]. Text that is not a URL comes
/// back unchanged.
pub fn mask_url(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return url.to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    // Only a query with a credential in it is rewritten (re-encoding may change it).
    if u.query_pairs().any(|(k, _)| secret_param(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_param(&k) {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The mask reads better unescaped.
    u.to_string().replace("%2A%2A%2A", MASK)
}

/// `text` (an error message, say) with every `rtsp://` URL in it masked ([`mask_url`]).
pub fn mask_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("rtsp://") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ','))
            .unwrap_or(tail.len());
        out.push_str(&mask_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `new` with each masked credential query value taken from `stored` (the same URL as
/// an edit form showed it, sent back).
fn unmask_query(new: &mut Url, stored: &str) {
    let Ok(stored) = Url::parse(stored) else {
        return;
    };
    if !new.query_pairs().any(|(_, v)| v == MASK) {
        return;
    }
    let old: Vec<(String, String)> = stored.query_pairs().into_owned().collect();
    let pairs: Vec<(String, String)> = new
        .query_pairs()
        .map(|(k, v)| {
            let v = if v == MASK {
                old.iter()
                    .find(|(ok, _)| *ok == k)
                    .map_or_else(|| v.to_string(), |(_, ov)| ov.clone())
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    new.query_pairs_mut().clear().extend_pairs(pairs);
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
    // A control character cannot be a credential, and would reach the camera's
    // Authorization header and the log as is.
    if username
        .chars()
        .chain(password.chars())
        .any(char::is_control)
        || url
            .query_pairs()
            .any(|(k, v)| k.chars().chain(v.chars()).any(char::is_control))
    {
        return Err(SourceError::InvalidUrl(
            "control characters in the credentials or the query".into(),
        ));
    }
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
        "INSERT INTO sources (uid, name, url, username, password, transport, created_at,
                              updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(StreamUid::new())
    .bind(name)
    .bind(cam.url.as_str())
    .bind(&cam.username)
    .bind(&cam.password)
    .bind(transport.as_str())
    .bind(unix_now())
    .bind(unix_now())
    .execute(pool)
    .await;
    r.map_err(|e| insert_error(e, name))?;
    Ok(cam)
}

/// What an `INSERT INTO sources` of `name` that failed with `e` means.
fn insert_error(e: sqlx::Error, name: &str) -> SourceError {
    match e {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            SourceError::Exists(name.to_string())
        }
        // The `sources_name_free` trigger.
        sqlx::Error::Database(e) if e.message().contains("taken by a stream") => {
            SourceError::TakenByStream(name.to_string())
        }
        e => e.into(),
    }
}

/// What a capture source asks of its device.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// The device's stable ID ([`crate::system::hardware::VideoDevice::id`]).
    pub device: String,
    /// Width and height in pixels; `None` for the device's best.
    pub size: Option<(u32, u32)>,
    /// Frames per second; `None` for the device's best.
    pub fps: Option<f64>,
    /// Bits per second to encode at; `None` for one that fits the size and rate.
    pub bitrate: Option<u32>,
    /// The sound card's capture PCM (`hw:CARD=ID,DEV=N`); `None` for pictures alone.
    pub audio: Option<String>,
}

impl CaptureSettings {
    /// The settings as the `sources` columns store them: width, height (pixels), fps,
    /// video_bitrate (bit/s), 0 for "choose".
    fn columns(&self) -> (i64, i64, f64, i64) {
        let (width, height) = self.size.unwrap_or((0, 0));
        (
            i64::from(width),
            i64::from(height),
            self.fps.unwrap_or(0.0),
            i64::from(self.bitrate.unwrap_or(0)),
        )
    }
}

/// Adds a capture source (kind `capture`); the running service starts capturing within
/// a few seconds. The settings are checked against the device by the caller
/// ([`crate::manage::capture`]).
///
/// # Errors
/// [`SourceError::InvalidName`], [`SourceError::Exists`],
/// [`SourceError::TakenByStream`], or a database error.
pub async fn add_capture(
    pool: &SqlitePool,
    name: &str,
    settings: &CaptureSettings,
) -> Result<(), SourceError> {
    if !valid_name(name) {
        return Err(SourceError::InvalidName(name.to_string()));
    }
    let (width, height, fps, bitrate) = settings.columns();
    sqlx::query(
        "INSERT INTO sources (uid, name, kind, device, width, height, fps, video_bitrate,
                              audio, created_at, updated_at)
         VALUES (?, ?, 'capture', ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(StreamUid::new())
    .bind(name)
    .bind(&settings.device)
    .bind(width)
    .bind(height)
    .bind(fps)
    .bind(bitrate)
    .bind(settings.audio.as_deref().unwrap_or(""))
    .bind(unix_now())
    .bind(unix_now())
    .execute(pool)
    .await
    .map_err(|e| insert_error(e, name))?;
    Ok(())
}

/// Changes a capture source's device and settings; the running service starts it
/// again with them within a few seconds, and the count of dropped frames starts anew.
///
/// # Errors
/// [`SourceError::NoSuchSource`] when no capture source has that name, or a database
/// error.
pub async fn update_capture(
    pool: &SqlitePool,
    name: &str,
    settings: &CaptureSettings,
) -> Result<(), SourceError> {
    let (width, height, fps, bitrate) = settings.columns();
    let r = sqlx::query(
        "UPDATE sources SET device = ?, width = ?, height = ?, fps = ?, video_bitrate = ?,
                audio = ?, dropped = 0, updated_at = ?
         WHERE name = ? AND kind = 'capture'",
    )
    .bind(&settings.device)
    .bind(width)
    .bind(height)
    .bind(fps)
    .bind(bitrate)
    .bind(settings.audio.as_deref().unwrap_or(""))
    .bind(unix_now())
    .bind(name)
    .execute(pool)
    .await?;
    if r.rows_affected() == 0 {
        return Err(SourceError::NoSuchSource(name.to_string()));
    }
    Ok(())
}

/// Changes a source's URL, credentials and transport; the running service reconnects
/// with them within a few seconds. When `raw_url` carries a user name but no password
/// and the user name is the stored one, the stored password is kept (forms do not echo
/// passwords back); query values sent back masked keep their stored values.
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
    let mut tx = crate::db::begin_write(pool).await?;
    let stored: Option<(String, String, String)> = sqlx::query_as(
        "SELECT username, password, url FROM sources WHERE name = ? AND kind = 'rtsp'",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user, password, stored_url)) = stored else {
        return Err(SourceError::NoSuchSource(name.to_string()));
    };
    unmask_query(&mut cam.url, &stored_url);
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
        "SELECT uid, name, kind, url, username, password, transport, device, width, height,
                fps, video_bitrate, created_at, state, last_error, bitrate, live_since,
                updated_at, detail, dropped, audio
         FROM sources ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// The longest error kept in `last_error`, in bytes.
const MAX_ERROR: usize = 1000;

/// Records the state of a source as the running service sees it. `error` is kept on one
/// line, URLs masked, up to `MAX_ERROR` (1000) bytes; `bitrate` is in bits per second. A
/// source deleted meanwhile is left deleted.
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
    let error = error.map(|e| {
        let mut e = mask_urls_in(&super::one_line(e));
        if e.len() > MAX_ERROR {
            let mut end = MAX_ERROR;
            while !e.is_char_boundary(end) {
                end -= 1;
            }
            e.truncate(end);
            e.push('…');
        }
        e
    });
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

/// Records what a running capture source delivers (`detail`: its format, `dropped`:
/// frames lost since it started). A source deleted meanwhile is left deleted.
///
/// # Errors
/// A database error.
pub async fn report_capture(
    pool: &SqlitePool,
    name: &str,
    detail: &str,
    dropped: u64,
) -> Result<(), SourceError> {
    sqlx::query("UPDATE sources SET detail = ?, dropped = ? WHERE name = ? AND kind = 'capture'")
        .bind(detail)
        .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
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
            state: "live".into(),
            ..SourceRow::blank(SourceKind::Rtsp)
        };
        assert_eq!(row.display_url(), "rtsp://admin:***@10.0.0.9/stream1");
        assert!(!format!("{row:?}").contains("hunter2"));
    }

    #[test]
    fn credentials_in_the_query_are_masked_and_kept_through_an_edit() {
        let url = "rtsp://10.0.0.9:554/cam?channel=1&User=admin&password=hunter2&token=t0p";
        let masked = mask_url(url);
        assert_eq!(
            masked,
            "rtsp://10.0.0.9:554/cam?channel=1&User=***&password=***&token=***"
        );
        for secret in ["hunter2", "t0p", "admin"] {
            assert!(!masked.contains(secret), "{masked}");
        }
        let text = format!("DESCRIBE {url} failed; conn: 10.0.0.9");
        let shown = mask_urls_in(&text);
        assert!(
            !shown.contains("hunter2") && shown.ends_with("failed; conn: 10.0.0.9"),
            "{shown}"
        );
        assert_eq!(mask_urls_in("no URL here"), "no URL here");
        assert_eq!(mask_url("rtsp://u:p@h/x"), "rtsp://u:***@h/x");
        // The edit form shows the masked URL; sending it back keeps the stored values,
        // and a value typed anew replaces one.
        let mut back = Url::parse(&masked).expect("url");
        unmask_query(&mut back, url);
        assert_eq!(
            back.as_str(),
            "rtsp://10.0.0.9:554/cam?channel=1&User=admin&password=hunter2&token=t0p"
        );
        let mut typed =
            Url::parse("rtsp://10.0.0.9:554/cam?channel=2&password=new&token=***").expect("url");
        unmask_query(&mut typed, url);
        assert_eq!(
            typed.as_str(),
            "rtsp://10.0.0.9:554/cam?channel=2&password=new&token=t0p"
        );
    }

    #[test]
    fn control_characters_in_credentials_are_refused() {
        for raw in [
            "rtsp://bob%0AFORGED:pw@10.0.0.9/x",
            "rtsp://bob:p%0Dw@10.0.0.9/x",
            "rtsp://10.0.0.9/x?user=bob%0Aforged",
        ] {
            assert!(parse_camera_url(raw).is_err(), "{raw}");
        }
    }
}
