//! Thumbnails over HTTP.
//!
//! | path | what |
//! | --- | --- |
//! | `/live/{stream}/thumbnail.jpg?width=…` | the newest keyframe of a live stream |
//! | `/dvr/{stream}/thumbnail.jpg?at=…&width=…` | the keyframe at or before `at` in a recording |
//!
//! `width` is in pixels (16 to 1920; 640 by default), rounded up to one of
//! [`WIDTHS`](crate::transcode::thumbnail::WIDTHS) and never wider than the picture; the
//! height follows the picture's aspect ratio. A request that needs a new decode counts
//! against its client's limit (429 with `Retry-After` past it); one a cache answers does
//! not. A busy decoder gives an older thumbnail, or 503 with `Retry-After` when it has
//! none.

use super::error;
use crate::app::App;
use crate::dvr::export::{self, Keyframe};
use crate::dvr::playback;
use crate::media::h264::AvcConfig;
use crate::media::TrackParams;
use crate::transcode::thumbnail::{made_width, Key, ThumbnailError, MAX_WIDTH, MIN_WIDTH};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// Thumbnail query parameters.
#[derive(Debug, Deserialize)]
pub struct ThumbQuery {
    width: Option<u32>,
    at: Option<String>,
}

/// Default thumbnail width, pixels.
const DEFAULT_WIDTH: u32 = 640;

/// The width to make for a picture `picture` pixels wide, or the 400 saying why not.
fn width(q: &ThumbQuery, picture: u32) -> Result<u32, Box<Response>> {
    match q.width {
        None => Ok(made_width(DEFAULT_WIDTH, picture)),
        Some(w) if (MIN_WIDTH..=MAX_WIDTH).contains(&w) => Ok(made_width(w, picture)),
        Some(w) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("width={w}: give {MIN_WIDTH} to {MAX_WIDTH} pixels"),
        ))),
    }
}

async fn respond(
    app: &App,
    client: IpAddr,
    key: Key,
    config: &AvcConfig,
    data: &Bytes,
    cache: &'static str,
) -> Response {
    let may_decode = || app.thumbnail_limit.check(client);
    match app.thumbnails.jpeg(key, config, data, may_decode).await {
        Ok(jpeg) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            jpeg,
        )
            .into_response(),
        Err(e @ ThumbnailError::Busy) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(e @ ThumbnailError::Decode(_)) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e @ ThumbnailError::Limited(wait)) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, e.to_string());
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The newest keyframe of a live stream as JPEG.
pub async fn live(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    Query(q): Query<ThumbQuery>,
) -> Response {
    let Some(entry) = app.stream(&stream) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("stream {stream:?} is not live"),
        );
    };
    let Some(frame) = entry.hub.latest_keyframe() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("stream {stream:?} has no picture yet"),
        );
    };
    let TrackParams::Video(config) = &*frame.params else {
        return error(StatusCode::NOT_FOUND, "no video");
    };
    let width = match width(&q, config.width) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let key = Key {
        source: format!("live/{}", entry.uid),
        time: frame.dts,
        width,
    };
    respond(&app, peer.ip(), key, config, &frame.data, "no-cache").await
}

/// The recorded keyframe at or before `at` as JPEG.
pub async fn recorded(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    Query(q): Query<ThumbQuery>,
) -> Response {
    let uid = match super::dvr::uid_of(&app, &stream) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(at) = q.at.as_deref().and_then(playback::parse_time) else {
        return error(
            StatusCode::BAD_REQUEST,
            "at= is required: an RFC 3339 time (2026-11-21T16:40:00Z) or Unix seconds",
        );
    };
    // The newest video segment starting at or before `at`, allowing a second past its end.
    let around = playback::TimeRange {
        start_ms: at - 1000,
        end_ms: at + 1,
    };
    let seg = match playback::segments(&app.db, &uid, around).await {
        Ok((video, _)) => video.into_iter().rfind(|v| v.start_wall_ms <= at),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(seg) = seg else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no recording of {stream:?} at that time"),
        );
    };
    let root = app.dvr.root.clone();
    let found = tokio::task::spawn_blocking(move || export::keyframe_at(&root, &seg, at)).await;
    let Keyframe {
        config,
        data,
        wall_ms: time,
    } = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::warn!(%stream, error = %e, "recorded thumbnail");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("recording unreadable: {e}"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let width = match width(&q, config.width) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let key = Key {
        source: format!("dvr/{uid}"),
        time,
        width,
    };
    respond(
        &app,
        peer.ip(),
        key,
        &config,
        &data,
        "public, max-age=86400",
    )
    .await
}
