//! The JSON API: what the admin pages do, for scripts and other machines. Each action
//! runs the same operation as its page ([`crate::manage`], [`super::admin`]) and is
//! audited the same way.
//!
//! Authentication: the browser session cookie (a write then also needs the page's CSRF
//! token in `X-CSRF-Token`, from `GET /api/session`), or an API token made on the
//! account page, as `Authorization: Bearer sbx_…` (RFC 6750 §2.1; no CSRF token). A
//! token of scope `metrics` reads `/metrics` only (403 here).
//! Bodies are JSON, at most 64 KiB. Errors are `{"error": "…"}` with 400 (malformed
//! JSON), 401 (no or bad credentials), 403 (CSRF), 404 (no such stream or token), 409
//! (conflicts with the current state), 413 (too large), 415 (not JSON), 422 (a value
//! refused), 503 (setup not complete; or not possible on this machine).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /api/session` | | `{user, via, token, csrf}` |
//! | `GET /api/streams` | | every stream and camera, with its state |
//! | `POST /api/streams` | `{name}` | 201 `{name, key, server, rtsp}` (the key once) |
//! | `GET /api/streams/{stream}` | | state, settings, publish URLs, camera, recordings |
//! | `DELETE /api/streams/{stream}` | | 204; a stream or a camera |
//! | `POST /api/streams/{stream}/key` | | `{key}`: a new key; the old one stops working |
//! | `PUT /api/streams/{stream}/recording` | `{enabled, keep?, keep_bytes?}` | the settings |
//! | `PUT /api/streams/{stream}/visibility` | `{visibility}`: `public` or `private` | the same |
//! | `PUT /api/streams/{stream}/ladder` | `{ladder?, quality?}`: `720p,360p`, `standard`, `source`…; `efficient`, `balanced` or `best` | `{ladder, quality}` |
//! | `PUT /api/streams/{stream}/protection` | `{encrypted, rotate?}`: `rotate` `10m`…`24h` or `never` | `{encrypted, rotate_secs, key_id, keys}` |
//! | `POST /api/streams/{stream}/protection/rotate` | | `{key_id}`: a new content key |
//! | `POST /api/streams/{stream}/links` | `{valid}`, e.g. `"24h"` | 201 `{id, url, expires}` |
//! | `GET /api/streams/{stream}/links` | | the open viewer links (never their URLs) |
//! | `DELETE /api/streams/{stream}/links/{id}` | | 204; players through it are ended |
//! | `POST /api/streams/{stream}/rename` | `{name}` | `{name}`; 409 while live |
//! | `PUT /api/streams/{stream}/camera` | `{url, username?, password?, transport?}` | `{message}` |
//! | `POST /api/cameras` | `{name, url, username?, password?, transport?}` | 201 `{name, message}` |
//! | `POST /api/cameras/test` | `{url, username?, password?, transport?}` | `{ok, offers}` or `{ok, error}` |
//! | `POST /api/captures` | `{name, device, size?, fps?, bitrate?}` | 201 `{name, message}` |
//! | `PUT /api/streams/{stream}/capture` | `{device, size?, fps?, bitrate?}` | `{name, message}` |
//! | `PUT /api/account/password` | `{current, new}` | `{ended_sessions}` |
//! | `GET /api/tokens` | | the user's tokens (never the secrets) |
//! | `POST /api/tokens` | `{name, scope?}`: `admin` or `metrics` | 201 `{id, name, scope, created_at, token}` (the token once) |
//! | `DELETE /api/tokens/{id}` | | 204 |
//! | `GET /api/audit?limit=N` | | the newest N (≤ 1000, default 100) audit entries |
//! | `GET /api/system` | | see [`super::system`] |
//! | `GET /api/network` | | see [`super::network`] |
//! | `PUT /api/network` | `{wired, confirm_within?}` | 202: the change, on trial |
//! | `POST /api/network/confirm` | | the change on trial stays |
//! | `POST /api/network/cancel` | | the previous settings come back |

use super::admin::{self, StreamStatus};
use super::cameras::{self, CameraFields, Outcome};
use super::streams;
use super::visitor::{api_error, Credential, Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::auth::viewer;
use crate::dvr::{playback, settings as dvr_settings};
use crate::ingest::rtsp_pull::sources;
use crate::manage::{self, addresses};
use crate::streams::{Kind, Named};
use crate::transcode::ladder;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// The JSON body, or the 400/413/415/422 that says what is wrong with it.
pub(super) fn body<T: DeserializeOwned>(r: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    r.map(|Json(t)| t)
        .map_err(|e| api_error(e.status(), &e.body_text()))
}

/// The JSON error of a refusal (a failure's response as built).
pub(crate) fn refused(r: Refusal) -> Response {
    let status = r.status();
    match r {
        Refusal::Failed(r) => r,
        Refusal::NotFound(m)
        | Refusal::Invalid(m)
        | Refusal::Conflict(m)
        | Refusal::Unavailable(m) => api_error(status, &m),
        Refusal::Limited(m, wait) => {
            let mut r = api_error(status, &m);
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// `t` as JSON with `status`, or the refusal's JSON error.
pub(super) fn answer<T: Serialize>(status: StatusCode, r: Result<T, Refusal>) -> Response {
    match r {
        Ok(t) => (status, Json(t)).into_response(),
        Err(r) => refused(r),
    }
}

/// The stream or camera named `stream` now, or the 404.
async fn existing(app: &App, stream: &str) -> Result<Arc<Named>, Response> {
    streams::named(app, stream).ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            &format!("there is no stream or camera named {stream:?}"),
        )
    })
}

/// The JSON body of a request about an existing `stream`: the 404 first, then what is
/// wrong with the body.
async fn on_stream<T: DeserializeOwned>(
    app: &App,
    stream: &str,
    b: Result<Json<T>, JsonRejection>,
) -> Result<T, Response> {
    existing(app, stream).await?;
    body(b)
}

/// `GET /api/session`: `{"user", "via": "session"|"token", "token": name|null, "csrf"}`.
pub async fn session(
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let (via, token) = match &s.via {
        Credential::Session(_) => ("session", None),
        Credential::Token { name, .. } => ("token", Some(name.clone())),
    };
    Json(json!({ "user": s.user.name, "via": via, "token": token, "csrf": v.csrf })).into_response()
}

/// `GET /api/streams`: every stream and camera, as [`StreamStatus`] objects by name.
pub async fn list(State(app): State<App>) -> Response {
    match admin::statuses(&app).await {
        Ok(all) => Json(all).into_response(),
        Err(r) => r,
    }
}

/// A name in a body.
#[derive(Debug, Deserialize)]
pub struct NameBody {
    name: String,
}

/// `POST /api/streams`.
pub async fn create(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Response {
    let b = match body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let made = manage::streams::add(&super::ops(&app, &v, &s), &b.name)
        .await
        .map_err(Refusal::from)
        .map(|(name, key)| {
            let (server, rtsp) = addresses::publish_urls(&app.cfg, &name);
            json!({ "name": name, "key": key, "server": server, "rtsp": rtsp })
        });
    answer(StatusCode::CREATED, made)
}

/// One recorded range in `GET /api/streams/{stream}`.
#[derive(Debug, Serialize)]
struct Recorded {
    /// ISO 8601 UTC.
    start: String,
    /// ISO 8601 UTC.
    end: String,
}

/// `GET /api/streams/{stream}`: its [`StreamStatus`] and `private`, `recording_settings`,
/// `abr` (`{ladder, quality, rungs}`: the settings, and each rung being made now with
/// its size and the quality preset it runs at), `publish` (streams), `camera`
/// (cameras), and `recordings` of the last day.
pub async fn detail(State(app): State<App>, Path(stream): Path<String>) -> Response {
    match detail_of(&app, &stream).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn detail_of(app: &App, stream: &str) -> Result<serde_json::Value, Response> {
    let named = existing(app, stream).await?;
    let kind = named.kind;
    let failed =
        |e: &dyn std::fmt::Display| super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let status: Option<StreamStatus> = admin::statuses(app)
        .await?
        .into_iter()
        .find(|s| s.name == stream);
    let private = named.private;
    let protection = protection_json(app, &named.uid, named.protection);
    let rec = dvr_settings::get(&app.db, &named.uid)
        .await
        .map_err(|e| failed(&e))?;
    let abr = ladder::get(&app.db, &named.uid)
        .await
        .map_err(|e| failed(&e))?;
    let abr = json!({ "ladder": abr.ladder.to_string(), "quality": abr.quality.name(),
                      "rungs": streams::rungs_now(app, &named) });
    let publish = if kind == Kind::Stream {
        let p = streams::publish_settings(app, stream, None).await?;
        json!({ "server": p.server, "rtsp": p.rtsp, "key_rotated_at": p.key_since })
    } else {
        serde_json::Value::Null
    };
    let camera = if kind == Kind::Camera {
        let rows = sources::list(&app.db).await.map_err(|e| failed(&e))?;
        rows.into_iter()
            .find(|r| r.name == stream)
            .map_or(serde_json::Value::Null, |r| {
                if r.is_capture() {
                    json!({ "kind": "capture", "device": r.device,
                            "size": (r.width > 0).then(|| format!("{}x{}", r.width, r.height)),
                            "fps": (r.fps > 0.0).then_some(r.fps),
                            "bitrate": (r.video_bitrate > 0).then_some(r.video_bitrate),
                            "audio": (!r.audio.is_empty()).then_some(&r.audio),
                            "state": r.state, "last_error": r.last_error,
                            "format": r.detail, "dropped_frames": r.dropped })
                } else {
                    json!({ "url": r.display_url(), "username": r.username,
                            "transport": r.transport, "state": r.state,
                            "last_error": r.last_error })
                }
            })
    } else {
        serde_json::Value::Null
    };
    let capture = match camera.get("kind") {
        Some(k) if k == "capture" => camera.clone(),
        _ => serde_json::Value::Null,
    };
    let camera = if capture.is_null() {
        camera
    } else {
        serde_json::Value::Null
    };
    let span = playback::parse_span(None, None).map_err(|e| failed(&e))?;
    let recordings: Vec<Recorded> = playback::timeline(&app.db, &named.uid, span)
        .await
        .map_err(|e| failed(&e))?
        .into_iter()
        .map(|r| Recorded {
            start: super::iso_ms(r.start_ms),
            end: super::iso_ms(r.end_ms),
        })
        .collect();
    let mut v = serde_json::to_value(status).map_err(|e| failed(&e))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("private".into(), private.into());
        o.insert("protection".into(), protection);
        o.insert("abr".into(), abr);
        o.insert(
            "recording_settings".into(),
            serde_json::to_value(rec).map_err(|e| failed(&e))?,
        );
        o.insert("publish".into(), publish);
        o.insert("camera".into(), camera);
        o.insert("capture".into(), capture);
        o.insert(
            "recordings".into(),
            serde_json::to_value(recordings).map_err(|e| failed(&e))?,
        );
    }
    Ok(v)
}

/// `DELETE /api/streams/{stream}`: 204.
pub async fn delete(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    if let Err(r) = existing(&app, &stream).await {
        return r;
    }
    match manage::streams::remove(&super::ops(&app, &v, &s), &stream).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r.into()),
    }
}

/// `POST /api/streams/{stream}/key`: `{"key"}`.
pub async fn rotate_key(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    if let Err(r) = existing(&app, &stream).await {
        return r;
    }
    let key = manage::streams::rotate_key(&super::ops(&app, &v, &s), &stream)
        .await
        .map_err(Refusal::from);
    answer(StatusCode::OK, key.map(|key| json!({ "key": key })))
}

/// `PUT /api/streams/{stream}/recording`'s body: an absent limit is no limit.
#[derive(Debug, Deserialize)]
pub struct RecordingBody {
    enabled: bool,
    #[serde(default)]
    keep: String,
    #[serde(default)]
    keep_bytes: String,
}

/// `PUT /api/streams/{stream}/recording`: the settings now in force.
pub async fn recording(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<RecordingBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let change = manage::streams::RecordingChange {
        enabled: Some(b.enabled),
        keep: Some(&b.keep),
        keep_bytes: Some(&b.keep_bytes),
    };
    let now = manage::streams::set_recording(&super::ops(&app, &v, &s), &stream, change)
        .await
        .map_err(Refusal::from);
    answer(StatusCode::OK, now)
}

/// `PUT /api/streams/{stream}/ladder`'s body: what is absent stays as it is.
#[derive(Debug, Deserialize)]
pub struct LadderBody {
    #[serde(default)]
    ladder: Option<String>,
    #[serde(default)]
    quality: Option<String>,
}

/// `PUT /api/streams/{stream}/ladder`: `{"ladder", "quality"}` now in force.
pub async fn ladder(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<LadderBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = manage::streams::set_ladder(
        &super::ops(&app, &v, &s),
        &stream,
        b.ladder.as_deref(),
        b.quality.as_deref(),
    )
    .await
    .map_err(Refusal::from)
    .map(|n| json!({ "ladder": n.ladder.to_string(), "quality": n.quality.name() }));
    answer(StatusCode::OK, now)
}

/// A stream's content protection as the API shows it: `{"encrypted", "rotate_secs"
/// (null: by hand), "key_id" (the newest key's, null before the first), "keys" (how
/// many it has had)}`; `{"encrypted": false, …}` in the clear.
fn protection_json(
    app: &App,
    uid: &crate::streams::StreamUid,
    p: Option<crate::streams::Protection>,
) -> serde_json::Value {
    let latest = app.keyring.latest(uid);
    json!({
        "encrypted": p.is_some(),
        "rotate_secs": p.and_then(|p| p.rotate_secs),
        "key_id": latest.map(|k| k.kid.to_string()),
        "keys": app.keyring.count(uid),
    })
}

/// `PUT /api/streams/{stream}/protection`'s body: `rotate` is a duration (`10m`) or
/// `never`, `10m` when left out.
#[derive(Debug, Deserialize)]
pub struct ProtectionBody {
    encrypted: bool,
    rotate: Option<String>,
}

/// `PUT /api/streams/{stream}/protection`: encrypts the stream's media (or stops) from
/// the segment after next; answers the protection now in force (see
/// [`protection_json`]).
pub async fn protection(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<ProtectionBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rotate = b.rotate.as_deref().unwrap_or("10m");
    let now =
        manage::streams::set_protection(&super::ops(&app, &v, &s), &stream, b.encrypted, rotate)
            .await
            .map_err(Refusal::from)
            .map(|p| {
                let uid = app
                    .registry
                    .directory()
                    .by_name(&stream)
                    .map(|n| n.uid.clone());
                uid.map_or(serde_json::Value::Null, |u| protection_json(&app, &u, p))
            });
    answer(StatusCode::OK, now)
}

/// `POST /api/streams/{stream}/protection/rotate`: a new content key at once; 200
/// `{"key_id"}`, 422 when the stream is not encrypted.
pub async fn rotate_content_key(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    let made =
        manage::streams::rotate_content_key(&super::ops(&app, &v, &s), &app.keyring, &stream)
            .await
            .map_err(Refusal::from)
            .map(|kid| json!({ "key_id": kid.to_string() }));
    answer(StatusCode::OK, made)
}

/// `PUT /api/streams/{stream}/visibility`'s body.
#[derive(Debug, Deserialize)]
pub struct VisibilityBody {
    visibility: String,
}

/// `PUT /api/streams/{stream}/visibility`: `{"visibility"}` as now in force.
pub async fn visibility(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<VisibilityBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = manage::streams::set_visibility(&super::ops(&app, &v, &s), &stream, &b.visibility)
        .await
        .map_err(Refusal::from)
        .map(|private| json!({ "visibility": if private { "private" } else { "public" } }));
    answer(StatusCode::OK, now)
}

/// `POST /api/streams/{stream}/links`' body.
#[derive(Debug, Deserialize)]
pub struct LinkBody {
    valid: String,
}

/// `POST /api/streams/{stream}/links`: 201 `{"id", "url", "expires"}` (ISO 8601 UTC).
pub async fn link(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<LinkBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let made = manage::streams::new_link(&super::ops(&app, &v, &s), &stream, &b.valid)
        .await
        .map_err(Refusal::from)
        .map(|l| {
            json!({ "id": l.id, "url": l.url, "expires": super::iso_ms(l.expires.saturating_mul(1000)) })
        });
    answer(StatusCode::CREATED, made)
}

/// `GET /api/streams/{stream}/links`: the open viewer links, newest first: `[{"id",
/// "created_at", "expires", "created_by"}]` (ISO 8601 UTC). Their URLs were shown once.
pub async fn links(State(app): State<App>, Path(stream): Path<String>) -> Response {
    let named = match existing(&app, &stream).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    match viewer::links(&app.db, &named.uid).await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|l| {
                    json!({
                        "id": l.id,
                        "created_at": super::iso_ms(l.created_at.saturating_mul(1000)),
                        "expires": super::iso_ms(l.expires_at.saturating_mul(1000)),
                        "created_by": l.created_by,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `DELETE /api/streams/{stream}/links/{id}`: 204; players through it are refused from
/// now on, and RTSP sessions through it end.
pub async fn revoke_link(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path((stream, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = existing(&app, &stream).await {
        return r;
    }
    match manage::streams::end_link(&super::ops(&app, &v, &s), &stream, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r.into()),
    }
}

/// `POST /api/streams/{stream}/rename`: `{"name"}` (the new one).
pub async fn rename(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Response {
    let b = match on_stream(&app, &stream, b).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let renamed = manage::streams::rename(&super::ops(&app, &v, &s), &stream, &b.name)
        .await
        .map_err(Refusal::from)
        .map(|name| json!({ "name": name }));
    answer(StatusCode::OK, renamed)
}

/// What a camera action came to, as JSON: `{"message"}` when saved, `{"ok", "offers"}`
/// or `{"ok", "error"}` when tested, the 422 when the fields were wrong.
fn camera_answer(created: bool, name: Option<String>, o: Outcome) -> Response {
    match o {
        Outcome::Invalid(m) => api_error(StatusCode::UNPROCESSABLE_ENTITY, &m),
        Outcome::Tested(Ok(offers)) => {
            Json(json!({ "ok": true, "offers": offers })).into_response()
        }
        Outcome::Tested(Err(e)) => Json(json!({ "ok": false, "error": e })).into_response(),
        Outcome::Saved(m) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "name": name, "message": m }))).into_response()
        }
    }
}

/// `POST /api/cameras`: adds a camera (`{name, url, username, password, transport}`;
/// `transport` is `tcp` or `udp`, default `tcp`).
pub async fn add_camera(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<CameraFields>, JsonRejection>,
) -> Response {
    let f = match body(b) {
        Ok(f) => f.with_action("add"),
        Err(r) => return r,
    };
    match cameras::handle(&app, &v, &s, &f, None).await {
        Ok(o) => camera_answer(true, Some(f.name().to_string()), o),
        Err(r) => r,
    }
}

/// `POST /api/cameras/test`: connects to a camera as the service would, without saving
/// it; `{"ok": true, "offers": "H.264 …"}` or `{"ok": false, "error": …}`.
pub async fn test_camera(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<CameraFields>, JsonRejection>,
) -> Response {
    let f = match body(b) {
        Ok(f) => f.with_action("test"),
        Err(r) => return r,
    };
    match cameras::handle(&app, &v, &s, &f, None).await {
        Ok(o) => camera_answer(false, None, o),
        Err(r) => r,
    }
}

/// `PUT /api/streams/{stream}/camera`: new settings for a camera; an empty password
/// keeps the stored one.
pub async fn edit_camera(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<CameraFields>, JsonRejection>,
) -> Response {
    match existing(&app, &stream).await {
        Ok(n) if n.kind == Kind::Camera => {}
        Ok(_) => {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this is a pushed stream, not a camera",
            )
        }
        Err(r) => return r,
    }
    let f = match body(b) {
        Ok(f) => f.with_action("add"),
        Err(r) => return r,
    };
    match cameras::handle(&app, &v, &s, &f, Some(&stream)).await {
        Ok(o) => camera_answer(false, Some(stream), o),
        Err(r) => r,
    }
}

/// A capture source's fields (`POST /api/captures`, `PUT /api/streams/{stream}/capture`,
/// and the hardware page's form); empty ones leave the choice to the appliance.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CaptureFields {
    /// The source's name (adding only).
    pub name: String,
    /// The device's stable ID.
    pub device: String,
    /// `WIDTHxHEIGHT`.
    pub size: String,
    /// Frames per second.
    pub fps: String,
    /// `4M`, `2500k` or bits per second.
    pub bitrate: String,
    /// The sound card's capture device (`hw:CARD=ID,DEV=N`); empty for none.
    pub audio: String,
}

impl CaptureFields {
    /// The fields as the operation takes them.
    pub fn input(&self) -> crate::manage::capture::CaptureInput<'_> {
        crate::manage::capture::CaptureInput {
            name: &self.name,
            device: &self.device,
            size: &self.size,
            fps: &self.fps,
            bitrate: &self.bitrate,
            audio: &self.audio,
        }
    }
}

/// `POST /api/captures`: adds a capture device on the box as a source, `{name, device,
/// size?, fps?, bitrate?, audio?}`: 201 `{name, message}` (the message says the format chosen);
/// 422 when the device is not on the box or does not offer what is asked (with what it
/// offers); 409 for a taken name.
pub async fn add_capture(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<CaptureFields>, JsonRejection>,
) -> Response {
    save_capture(&app, &v, &s, b, None).await
}

/// `PUT /api/streams/{stream}/capture`: new device or settings for a capture source,
/// `{device, size?, fps?, bitrate?, audio?}`: `{name, message}`; 404 for a name that is no
/// capture source.
pub async fn edit_capture(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    b: Result<Json<CaptureFields>, JsonRejection>,
) -> Response {
    save_capture(&app, &v, &s, b, Some(&stream)).await
}

/// Adds a capture source (`existing` `None`, 201) or changes one (200).
async fn save_capture(
    app: &App,
    v: &Visitor,
    s: &Signed,
    b: Result<Json<CaptureFields>, JsonRejection>,
    existing: Option<&str>,
) -> Response {
    let f = match body(b) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let hardware = app.hardware.borrow().clone();
    let ops = super::ops(app, v, s);
    let saved = crate::manage::capture::save(&ops, &f.input(), &hardware, existing).await;
    let status = match existing {
        None => StatusCode::CREATED,
        Some(_) => StatusCode::OK,
    };
    answer(
        status,
        saved
            .map_err(Refusal::from)
            .map(|(name, message)| json!({ "name": name, "message": message })),
    )
}

/// `PUT /api/account/password`'s body.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    current: String,
    new: String,
}

/// `PUT /api/account/password`: `{"ended_sessions"}`, the browser sessions signed out.
pub async fn password(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<PasswordBody>, JsonRejection>,
) -> Response {
    let b = match body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ended = admin::set_password(&app, &v, &s, &b.current, &b.new)
        .await
        .map(|n| json!({ "ended_sessions": n }));
    answer(StatusCode::OK, ended)
}

/// `GET /api/tokens`: the user's tokens (`id`, `name`, `created_at`, `last_used`; Unix
/// seconds).
pub async fn tokens(State(app): State<App>, Extension(s): Extension<Signed>) -> Response {
    match crate::auth::api_tokens::list(&app.db, &s.user).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/tokens`'s body: a name, and the scope (`admin`, the default, or
/// `metrics`).
#[derive(Debug, Deserialize)]
pub struct TokenBody {
    name: String,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /api/tokens`: 201 with the row and `token`, the secret, shown this once.
pub async fn create_token(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<TokenBody>, JsonRejection>,
) -> Response {
    let b = match body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let made = admin::make_token(&app, &v, &s, &b.name, b.scope.as_deref().unwrap_or("admin"))
        .await
        .map(|(row, token)| {
            json!({ "id": row.id, "name": row.name, "scope": row.scope,
                    "created_at": row.created_at, "token": token })
        });
    answer(StatusCode::CREATED, made)
}

/// `DELETE /api/tokens/{id}`: 204.
pub async fn revoke_token(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<String>,
) -> Response {
    match admin::end_token(&app, &v, &s, &id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

/// `GET /api/audit` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /api/audit?limit=N`: the newest entries first (`at` in Unix seconds, `actor`,
/// `action`, `detail`, `client`).
pub async fn audit(
    State(app): State<App>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return api_error(e.status(), &e.body_text()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match crate::db::audit_log(&app.db, limit).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
