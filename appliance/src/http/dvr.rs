//! Recordings over HTTP.
//!
//! | path | what |
//! | --- | --- |
//! | `/dvr/{stream}/index.m3u8?start=…&end=…` | multivariant VOD playlist of a recorded range |
//! | `/dvr/{stream}/{video,audio}.m3u8?start=…&end=…` | VOD media playlists (RFC 8216bis §4.4) |
//! | `/dvr/{stream}/manifest.mpd?start=…&end=…` | static DASH manifest of the range |
//! | `/dvr/{stream}/export.mp4?start=…&end=…` | the range as one progressive MP4, streamed |
//! | `/dvr/{stream}/files/{epoch}/{track}/{file}` | a recorded init segment or segment (`?k=KID`: encrypted under that key; `cenc-…`: in Common Encryption) |
//! | `/dvr/{stream}/recordings.json?from=…&to=…` | recorded ranges and gaps (JSON; the last day by default) |
//!
//! Times are RFC 3339 or Unix seconds. A range in the wrong order, in the future, longer
//! than a day or with nothing recorded gets a 400 or 404 saying so. Recordings are the
//! stream's by identity: `{stream}` is resolved to the stream of that name now (the
//! viewer gate has answered 404 for a name that is none), and a file is served only when
//! the index lists it for that stream (never a file being written or deleted, never one
//! of another stream, whatever its path on disk), every path component checked against
//! the names the recorder makes.

use super::error;
use crate::app::App;
use crate::dvr::export::{self, ExportError};
use crate::dvr::playback::{self, RangeError};
use crate::dvr::{self, DvrError};
use crate::media::TrackId;
use crate::protect::Kid;
use crate::streams::StreamUid;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use std::collections::HashMap;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

fn db_error(e: DvrError) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn range_error(e: RangeError) -> Response {
    error(StatusCode::BAD_REQUEST, e.to_string())
}

/// The identity of the stream named `stream` now, or its 404.
pub(super) fn uid_of(app: &App, stream: &str) -> Result<StreamUid, Response> {
    app.registry
        .directory()
        .by_name(stream)
        .map(|n| n.uid.clone())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no stream named {stream:?}")))
}

/// Whether stream `uid` is encrypted now: its recordings (clear on disk) are then served
/// encrypted, never clear ([`crate::protect`]).
fn encrypted(app: &App, uid: &StreamUid) -> bool {
    app.registry
        .directory()
        .by_uid(uid)
        .is_some_and(|n| n.protection.is_some())
}

/// The key each of `segs` is served with, for an encrypted stream: the one it was
/// encrypted with live, else (recorded while the stream was clear) the stream's newest
/// key, made now when it has none.
///
/// # Errors
/// The response when no key could be made.
async fn keys_of(
    app: &App,
    uid: &StreamUid,
    segs: &[playback::RecordedSegment],
) -> Result<Vec<Kid>, Response> {
    let recorded = |s: &playback::RecordedSegment| {
        s.kid
            .as_deref()
            .and_then(Kid::from_bytes)
            .filter(|k| app.keyring.of(uid, k).is_some())
    };
    let newest = if segs.iter().any(|s| recorded(s).is_none()) {
        match app.keyring.latest(uid) {
            Some(k) => Some(k.kid),
            None => match app.keyring.rotate(uid).await {
                Ok(k) => Some(k.kid),
                Err(e) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            },
        }
    } else {
        None
    };
    Ok(segs.iter().filter_map(|s| recorded(s).or(newest)).collect())
}

/// `index.m3u8`, `video.m3u8` or `audio.m3u8` of a recorded range.
pub async fn playlist(
    State(app): State<App>,
    Path((stream, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    jar: CookieJar,
    grant: Option<axum::Extension<super::visitor::Grant>>,
    scheme: Option<axum::Extension<super::Scheme>>,
    headers: HeaderMap,
) -> Response {
    let uid = match uid_of(&app, &stream) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let encrypted = encrypted(&app, &uid);
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let range = match playback::parse_range(
        q.get("start").map(String::as_str),
        q.get("end").map(String::as_str),
    ) {
        Ok(r) => r,
        Err(e) => return range_error(e),
    };
    let (video, audio) = match playback::segments(&app.db, &uid, range).await {
        Ok(s) => s,
        Err(e) => return db_error(e),
    };
    if video.is_empty() && audio.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no recordings of {stream:?} in that range"),
        );
    }
    // An encrypted stream's recordings as HLS, encrypted with the keys of their time.
    let media = |segs: Vec<playback::RecordedSegment>| {
        let (app, uid, stream) = (&app, &uid, &stream);
        async move {
            if !encrypted {
                return Ok(playback::media_playlist(&segs, None));
            }
            let kids = keys_of(app, uid, &segs).await?;
            // The key route is the live stream's (`/live/NAME/keys/`), through the same
            // link or session as this playlist.
            let prefix = format!("../../live/{stream}/keys/");
            Ok(playback::media_playlist(
                &segs,
                Some(playback::Encryption {
                    key_uri_prefix: &prefix,
                    kids: &kids,
                }),
            ))
        }
    };
    let body = match file.as_str() {
        // An administrator's export stays clear (the box is trusted); a viewer's would
        // carry an encrypted stream in the clear.
        "export.mp4" if encrypted && !super::visitor::has_admin_session(&app, &jar).await => {
            return error(
                StatusCode::CONFLICT,
                format!("{stream:?} is encrypted: only an administrator can export its recordings"),
            )
        }
        "export.mp4" => return export(&app, &stream, &video, &audio, range).await,
        "index.m3u8" => playback::multivariant(&video, &audio, raw.as_deref().unwrap_or("")),
        "video.m3u8" if !video.is_empty() => match media(video).await {
            Ok(p) => p,
            Err(r) => return r,
        },
        "audio.m3u8" if !audio.is_empty() => match media(audio).await {
            Ok(p) => p,
            Err(r) => return r,
        },
        "manifest.mpd" => {
            let body = if encrypted {
                // In Common Encryption with the keys of their time; the license server is
                // the live stream's, through the same link or session as this manifest.
                let (vk, ak) = match (
                    keys_of(&app, &uid, &video).await,
                    keys_of(&app, &uid, &audio).await,
                ) {
                    (Ok(v), Ok(a)) => (v, a),
                    (Err(r), _) | (_, Err(r)) => return r,
                };
                let origin = super::live::origin(&headers, scheme.map(|s| s.0));
                let license_url =
                    super::live::license_url(&origin, grant.as_ref().map(|g| &g.0), &stream);
                playback::mpd(
                    &video,
                    &audio,
                    Some(playback::DashEncryption {
                        license_url: &license_url,
                        video: &vk,
                        audio: &ak,
                    }),
                )
            } else {
                playback::mpd(&video, &audio, None)
            };
            return (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/dash+xml"),
                    ),
                    // A link's token in the body: for that viewer alone.
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(if grant.is_some() {
                            "private, no-cache"
                        } else {
                            "no-cache"
                        }),
                    ),
                ],
                body,
            )
                .into_response();
        }
        _ => return error(StatusCode::NOT_FOUND, format!("no {file} for {stream:?}")),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Streams the clip of `range` as a progressive MP4 download: the header first, then the
/// recorded samples read on a blocking thread, a MiB at a time.
async fn export(
    app: &App,
    stream: &str,
    video: &[playback::RecordedSegment],
    audio: &[playback::RecordedSegment],
    range: playback::TimeRange,
) -> Response {
    let root = app.dvr.root.clone();
    let (v, a) = (video.to_vec(), audio.to_vec());
    let plan = match tokio::task::spawn_blocking(move || export::plan(&root, &v, &a, range)).await {
        Ok(Ok(p)) => p,
        Ok(Err(ExportError::Empty)) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no recordings of {stream:?} in that range"),
            )
        }
        Ok(Err(e @ ExportError::ParametersChange)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let len = plan.len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelWriter(tx);
        if let Err(e) = plan.write_to(&mut sink) {
            // The client sees a short body; the log says why.
            tracing::warn!(error = %e, "clip export stopped");
        }
    });
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let name = format!(
        "attachment; filename=\"{stream}-{}.mp4\"",
        crate::packager::hls::iso8601(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(range.start_ms.max(0) as u64)
        )
        .replace(':', "-")
    );
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Blocking writes into an async channel of chunks; fails once the receiver is gone.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `s` is a name the recorder makes for an epoch: `DIGITS-DIGITS`.
fn epoch_name(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.chars().chain(b.chars())).all(|c| c.is_ascii_digit())
    })
}

/// The key of `k=` in a recorded segment's URL.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    k: Option<String>,
}

/// A recorded init segment or segment of the stream named `stream` now. An encrypted
/// stream's segments are served encrypted with the key its playlist or manifest named
/// in `k=`: the key it was encrypted with live, or for one recorded in the clear any key
/// of the stream; never clear (409 without `k=`, 404 for a key that is not the
/// segment's). `N.m4s` is sealed for HLS (AES-128-CBC, PKCS#7, the IV its media
/// sequence number: RFC 8216bis §5.2), `cenc-N.m4s` is in Common Encryption for DASH
/// (ISO/IEC 23001-7 `cenc`, [`crate::protect::cenc::recorded_segment`]); `init.mp4`
/// stays clear, and `cenc-init.mp4?k=KID` is its Common Encryption form under that
/// key. The `cenc-` forms are an encrypted stream's only.
pub async fn file(
    State(app): State<App>,
    Path((stream, epoch, track, file)): Path<(String, String, String, String)>,
    Query(fq): Query<FileQuery>,
) -> Response {
    let uid = match uid_of(&app, &stream) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let encrypted = encrypted(&app, &uid);
    let (cenc, name) = match file.strip_prefix("cenc-") {
        Some(rest) => (true, rest),
        None => (false, file.as_str()),
    };
    let msn = name
        .strip_suffix(".m4s")
        .filter(|n| !n.is_empty() && n.len() <= 18 && n.chars().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok());
    let valid = epoch_name(&epoch)
        && matches!(track.as_str(), "video" | "audio")
        && (msn.is_some() || name == "init.mp4");
    if !valid {
        return error(StatusCode::BAD_REQUEST, "not a recording path");
    }
    if cenc && !encrypted {
        return error(StatusCode::NOT_FOUND, "no such recording");
    }
    // The index says where the stream's file is; the URL never names a path on disk.
    let (rel, recorded_kid) = match dvr::recording_file(&app.db, &uid, &epoch, &track, msn).await {
        Ok(Some(found)) => found,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such recording"),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let segment = msn.is_some();
    // Which key, if any: only what the playlist names, for the segment it names.
    let key = match ((segment && encrypted) || cenc, fq.k.as_deref()) {
        (false, None) => None,
        (false, Some(_)) => return error(StatusCode::NOT_FOUND, "no such recording"),
        (true, None) => {
            return error(
                StatusCode::CONFLICT,
                format!("{stream:?} is encrypted: its recordings are served encrypted, with the key their playlist names"),
            )
        }
        (true, Some(k)) => {
            let key = k
                .parse::<Kid>()
                .ok()
                .and_then(|k| app.keyring.of(&uid, &k))
                // An init segment names the key, whichever segments follow.
                .filter(|key| !segment || recorded_kid.is_none_or(|r| r == key.kid));
            match key {
                Some(key) => Some(key),
                None => return error(StatusCode::NOT_FOUND, "no such recording under that key"),
            }
        }
    };
    // tokio::fs runs the read on a blocking thread.
    let bytes = match tokio::fs::read(app.dvr.root.join(&rel)).await {
        Ok(b) => bytes::Bytes::from(b),
        // Deleted by retention between the check and the read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return error(StatusCode::NOT_FOUND, "no such recording")
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let track_id = if track == "video" {
        TrackId::Video
    } else {
        TrackId::Audio
    };
    let how = match (msn, cenc) {
        (Some(_), false) => crate::protect::Served::Sealed,
        (Some(_), true) => crate::protect::Served::CommonEncryption,
        (None, _) => crate::protect::Served::CommonEncryptionInit,
    };
    let body = match &key {
        Some(key) => {
            match crate::protect::recorded(
                key,
                msn.unwrap_or(0).max(0) as u64,
                track_id,
                &bytes,
                how,
            ) {
                Ok(b) => b,
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{rel}: {e}")),
            }
        }
        None => bytes,
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(if segment {
                    "video/iso.segment"
                } else {
                    "video/mp4"
                }),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `from` and `to` of the recordings listing.
#[derive(Debug, Deserialize)]
pub struct Span {
    from: Option<String>,
    to: Option<String>,
}

/// Recorded ranges and gaps of a stream over `from`..`to` (by default the last 24 hours),
/// as JSON:
/// `{"stream": …, "ranges": [{"start", "end", "segments"}], "gaps": [{"start", "end"}]}`.
pub async fn recordings(
    State(app): State<App>,
    Path(stream): Path<String>,
    Query(q): Query<Span>,
) -> Response {
    let uid = match uid_of(&app, &stream) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let range = match playback::parse_span(q.from.as_deref(), q.to.as_deref()) {
        Ok(r) => r,
        Err(e) => return range_error(e),
    };
    let ranges = match playback::timeline(&app.db, &uid, range).await {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let iso = super::iso_ms;
    let gaps: Vec<serde_json::Value> = ranges
        .windows(2)
        .map(|w| serde_json::json!({"start": iso(w[0].end_ms), "end": iso(w[1].start_ms)}))
        .collect();
    let body = serde_json::json!({
        "stream": stream,
        "from": iso(range.start_ms),
        "to": iso(range.end_ms),
        "ranges": ranges.iter().map(|r| serde_json::json!({
            "start": iso(r.start_ms),
            "end": iso(r.end_ms),
            "segments": r.segments,
        })).collect::<Vec<_>>(),
        "gaps": gaps,
    });
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}
