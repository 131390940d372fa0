//! The admin's stream pages ([`streambox_web::streams`]).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /admin/streams`, `POST /admin/streams` | list; create (`name`) |
//! | `GET /admin/streams/{stream}` | player, publish settings, recording, visibility, recordings |
//! | `POST /admin/streams/{stream}/key` | rotate the key (shown once) |
//! | `POST /admin/streams/{stream}/recording` | `enabled`, `keep`, `keep_bytes` |
//! | `POST /admin/streams/{stream}/visibility` | `visibility` = `public` or `private` |
//! | `POST /admin/streams/{stream}/protection` | `encrypted` = `on` or `off`, `rotate` (`10m`, `never`) |
//! | `POST /admin/streams/{stream}/protection/rotate` | a new content key at once |
//! | `POST /admin/streams/{stream}/link` | a viewer link valid for `valid` (e.g. `24h`) |
//! | `POST /admin/streams/{stream}/links/{id}/revoke` | revoke a viewer link |
//! | `POST /admin/streams/{stream}/rename` | `name`; refused while live |
//! | `POST /admin/streams/{stream}/delete` | `confirm` = the name |
//! | `POST /admin/cameras` | the camera form ([`super::cameras`]): `action=test` tries a camera, `action=add` adds it |
//! | `POST /admin/streams/{stream}/camera` | the same for an existing camera: test or save |
//!
//! Every action is an operation of [`crate::manage`]: audited, and told to the
//! registry, which ends at once what it took away (a rotated key's publisher, a deleted
//! stream's everything, a revoked link's players). Bad input re-renders the page with the reason and changes
//! nothing; a stream that does not exist gets a 404 page.

use super::admin::{shell, StreamStatus};
use super::cameras::{self, CameraFields};
use super::visitor::{page, Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::auth::{stream_keys, viewer};
use crate::dvr::{playback, settings as dvr_settings};
use crate::ingest::rtsp_pull::sources;
use crate::manage::{self, addresses, Ops};
use crate::streams::{Kind, Named};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use streambox_web::admin::problem;
use streambox_web::setup::CameraForm;
use streambox_web::streams::{
    self as pages, CameraState, Detail, OpenLink, Publish, Recorded, Thumb, Timeline,
};

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "stream admin request failed");
    super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn not_found(stream: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        problem(
            "No such stream",
            &format!("There is no stream or camera named \u{201c}{stream}\u{201d}."),
            ("/admin/streams", "All streams"),
        ),
    )
}

/// The stream or camera named `name` now, or `None` when it is neither.
pub(super) fn named(app: &App, name: &str) -> Option<Arc<Named>> {
    app.registry.directory().by_name(name).cloned()
}

/// `GET /admin/streams`.
pub async fn list(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    render_list(&app, &v, &s, String::new(), None, CameraState::default()).await
}

/// The streams page with the create form's `name` and the camera form's `camera`, and
/// `error` about the last post.
pub(super) async fn render_list(
    app: &App,
    v: &Visitor,
    s: &Signed,
    name: String,
    error: Option<String>,
    camera: CameraState,
) -> Response {
    let shell = match shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let all: Vec<StreamStatus> = match super::admin::statuses(app).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let dir = app.registry.directory();
    let rows = all
        .into_iter()
        .map(|st| pages::Row {
            private: dir.by_name(&st.name).is_some_and(|n| n.private),
            name: st.name,
            kind: st.kind,
            live: st.live,
            recording: st.recording,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(status, pages::list(shell, rows, name, error, camera))
}

/// The create form's field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameForm {
    name: String,
}

/// `POST /admin/streams`: creates a stream and opens its page with the key shown once.
pub async fn create(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<NameForm>,
) -> Response {
    match manage::streams::add(&super::ops(&app, &v, &s), &f.name)
        .await
        .map_err(Refusal::from)
    {
        Ok((name, key)) => {
            let extra = Extra {
                key: Some(key),
                notice: Some(format!("Stream \u{201c}{name}\u{201d} created.")),
                ..Extra::default()
            };
            render_detail(&app, &v, &s, &name, extra).await
        }
        Err(
            Refusal::Invalid(m)
            | Refusal::Conflict(m)
            | Refusal::NotFound(m)
            | Refusal::Limited(m, _)
            | Refusal::Unavailable(m),
        ) => {
            let name = f.name.trim();
            let shown = if stream_keys::valid_name(name) {
                name.to_string()
            } else {
                String::new()
            };
            render_list(&app, &v, &s, shown, Some(m), CameraState::default()).await
        }
        Err(Refusal::Failed(r)) => r,
    }
}

/// What an action adds to the stream page.
#[derive(Debug, Default)]
struct Extra {
    key: Option<String>,
    camera: Option<CameraState>,
    link: Option<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
}

/// `GET /admin/streams/{stream}`.
pub async fn detail(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    render_detail(&app, &v, &s, &stream, Extra::default()).await
}

async fn render_detail(app: &App, v: &Visitor, s: &Signed, name: &str, extra: Extra) -> Response {
    let Some(named) = named(app, name) else {
        return not_found(name);
    };
    let kind = named.kind;
    let shell = match shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let live = app.stream(name).is_some_and(|e| e.hub.is_live());
    let rec = match dvr_settings::get(&app.db, &named.uid).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let links = match viewer::links(&app.db, &named.uid).await {
        Ok(l) => l
            .into_iter()
            .map(|l| OpenLink {
                id: l.id,
                created: super::iso_ms(l.created_at.saturating_mul(1000)),
                expires: super::iso_ms(l.expires_at.saturating_mul(1000)),
                by: l.created_by,
            })
            .collect(),
        Err(e) => return internal(e),
    };
    let publish = if kind == Kind::Stream {
        match publish_settings(app, name, extra.key).await {
            Ok(p) => Some(p),
            Err(r) => return r,
        }
    } else {
        None
    };
    let row = if kind == Kind::Camera {
        match sources::list(&app.db).await {
            Ok(rows) => rows.into_iter().find(|r| r.name == name),
            Err(e) => return internal(e),
        }
    } else {
        None
    };
    let capture = row
        .as_ref()
        .filter(|r| r.is_capture())
        .map(|r| format!("{}: {}", r.display_url(), r.capture_state()));
    let row = row.filter(|r| !r.is_capture());
    let (camera, camera_form) = if row.is_some() {
        let shown = row.as_ref().map(|r| {
            let error = if r.last_error.is_empty() {
                String::new()
            } else {
                format!("; last error: {}", r.last_error)
            };
            format!(
                "{} over {}: {}{error}",
                r.display_url(),
                r.transport,
                r.state
            )
        });
        let form = extra.camera.or_else(|| {
            row.map(|r| CameraState {
                form: CameraForm {
                    url: r.form_url(),
                    name: r.name,
                    username: r.username,
                    transport: r.transport,
                },
                test: None,
            })
        });
        (shown, form)
    } else {
        (None, None)
    };
    let span = match playback::parse_span(None, None) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let ranges = match playback::timeline(&app.db, &named.uid, span).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let recorded = timeline(name, span, &ranges);
    let keep = rec.keep_secs.map_or("none".to_string(), |s| {
        humantime::format_duration(Duration::from_secs(s.max(0) as u64)).to_string()
    });
    let keep_bytes = rec.keep_bytes.map_or("none".to_string(), |b| {
        bytesize::ByteSize::b(b.max(0) as u64).to_string()
    });
    let abr = match crate::transcode::ladder::get(&app.db, &named.uid).await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let rungs = rungs_now(app, &named)
        .into_iter()
        .map(|r| {
            format!(
                "{}: {}x{}, {} kbit/s, {}",
                r.name,
                r.width,
                r.height,
                r.bitrate / 1000,
                r.quality
            )
        })
        .collect();
    let status = if extra.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let d = Detail {
        name: name.to_string(),
        kind: kind.as_str(),
        live,
        private: named.private,
        encrypted: named.protection.map(|p| match p.rotate_secs {
            None => "never".to_string(),
            Some(s) => {
                humantime::format_duration(std::time::Duration::from_secs(u64::from(s))).to_string()
            }
        }),
        keys: app.keyring.count(&named.uid),
        links,
        publish,
        camera,
        camera_form,
        capture,
        recording: rec.enabled,
        keep,
        keep_bytes,
        recorded,
        ladder: abr.ladder.to_string(),
        quality: abr.quality.name(),
        rungs,
        link: extra.link,
        notice: extra.notice,
        error: extra.error,
    };
    page(status, pages::detail(shell, d))
}

/// Thumbnails on a stream page's timeline, at most.
const THUMBS: usize = 12;

/// The stream page's recordings section for `ranges` recorded in `span` (the last day):
/// each range's place on the bar, [`THUMBS`] thumbnails spread evenly over the recorded
/// time (not the wall-clock time, so gaps get none), and the clip form's defaults (the
/// newest minute recorded).
fn timeline(name: &str, span: playback::TimeRange, ranges: &[crate::dvr::Range]) -> Timeline {
    let day = (span.end_ms - span.start_ms).max(1) as f64;
    let pct = |ms: i64| (ms - span.start_ms) as f64 * 100.0 / day;
    let iso = super::iso_ms;
    let vod = |start: i64, end: i64| {
        format!(
            "/dvr/{name}/index.m3u8?start={}&end={}",
            iso(start),
            iso(end)
        )
    };
    let recorded: Vec<Recorded> = ranges
        .iter()
        .rev()
        .map(|r| {
            let start = r.start_ms.max(span.start_ms);
            let (from, to) = (iso(r.start_ms), iso(r.end_ms));
            Recorded {
                thumbnail: format!("/dvr/{name}/thumbnail.jpg?at={from}&width=160"),
                export: format!("/dvr/{name}/export.mp4?start={from}&end={to}"),
                playlist: vod(r.start_ms, r.end_ms),
                left: pct(start),
                width: pct(r.end_ms.min(span.end_ms)) - pct(start),
                start: from,
                end: to,
            }
        })
        .collect();
    let total: i64 = ranges.iter().map(|r| (r.end_ms - r.start_ms).max(0)).sum();
    let mut thumbs = Vec::new();
    if total > 0 {
        let n = THUMBS
            .min(ranges.len().max((total / 60_000) as usize))
            .max(1);
        let step = total / n as i64;
        // The i-th thumbnail sits at the middle of the i-th n-th of the recorded time.
        let (mut i, mut before) = (0usize, 0i64);
        for r in ranges {
            let len = (r.end_ms - r.start_ms).max(0);
            while i < n && step * i as i64 + step / 2 < before + len {
                let at = r.start_ms + (step * i as i64 + step / 2 - before);
                thumbs.push(Thumb {
                    at: iso(at),
                    thumbnail: format!("/dvr/{name}/thumbnail.jpg?at={}&width=160", iso(at)),
                    playlist: vod(at, r.end_ms),
                });
                i += 1;
            }
            before += len;
        }
    }
    let clip = ranges.last().map_or_else(Default::default, |r| {
        (iso((r.end_ms - 60_000).max(r.start_ms)), iso(r.end_ms))
    });
    Timeline {
        from: iso(span.start_ms),
        to: iso(span.end_ms),
        ranges: recorded,
        thumbs,
        export: format!("/dvr/{name}/export.mp4"),
        clip,
    }
}

/// Stream `name`'s publish settings: where publishers send it
/// ([`addresses::publish_urls`]), when its key was made (ISO 8601 UTC), and `key` when
/// it was just made (shown once).
pub(super) async fn publish_settings(
    app: &App,
    name: &str,
    key: Option<String>,
) -> Result<Publish, Response> {
    let rows = stream_keys::list(&app.db).await.map_err(internal)?;
    let since = rows
        .iter()
        .find(|r| r.name == name)
        .map_or(0, |r| r.key_rotated_at);
    let (server, rtsp) = addresses::publish_urls(&app.cfg, name);
    Ok(Publish {
        server,
        rtsp,
        key,
        key_since: super::iso_ms(since.saturating_mul(1000)),
    })
}

/// Runs one action of the signed-in `s` on an existing stream: 404 page when it does
/// not exist; else the stream page (under its new name after a rename) with what `act`
/// reports, or with the reason it refused.
async fn act<F, Fut>(app: App, v: Visitor, s: Signed, stream: String, act: F) -> Response
where
    F: FnOnce(Ops, String, Kind) -> Fut,
    Fut: std::future::Future<Output = Result<(String, Extra), Refusal>>,
{
    let Some(kind) = named(&app, &stream).map(|n| n.kind) else {
        return not_found(&stream);
    };
    let extra = match act(super::ops(&app, &v, &s), stream.clone(), kind).await {
        Ok(done) => done,
        Err(
            Refusal::Invalid(m)
            | Refusal::Conflict(m)
            | Refusal::Limited(m, _)
            | Refusal::Unavailable(m),
        ) => (
            stream,
            Extra {
                error: Some(m),
                ..Extra::default()
            },
        ),
        Err(Refusal::NotFound(_)) => return not_found(&stream),
        Err(Refusal::Failed(r)) => return r,
    };
    render_detail(&app, &v, &s, &extra.0, extra.1).await
}

fn notice(stream: String, msg: impl Into<String>) -> (String, Extra) {
    (
        stream,
        Extra {
            notice: Some(msg.into()),
            ..Extra::default()
        },
    )
}

/// `POST /admin/streams/{stream}/key`.
pub async fn rotate_key(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let key = manage::streams::rotate_key(&ops, &stream).await?;
        Ok((
            stream,
            Extra {
                key: Some(key),
                notice: Some("New key made; the old one no longer works.".into()),
                ..Extra::default()
            },
        ))
    })
    .await
}

/// The recording form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecordingForm {
    enabled: Option<String>,
    keep: String,
    keep_bytes: String,
}

/// `POST /admin/streams/{stream}/recording`.
pub async fn recording(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<RecordingForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let change = manage::streams::RecordingChange {
            enabled: Some(f.enabled.is_some()),
            keep: Some(&f.keep),
            keep_bytes: Some(&f.keep_bytes),
        };
        manage::streams::set_recording(&ops, &stream, change).await?;
        Ok(notice(stream, "Recording settings saved."))
    })
    .await
}

/// A rung being made now, as the stream page and the API show it.
#[derive(Debug, Serialize)]
pub struct RungNow {
    /// Its name (`720p`).
    pub name: String,
    /// Its size, pixels.
    pub width: u32,
    /// Its size, pixels.
    pub height: u32,
    /// Its video bitrate, bit/s.
    pub bitrate: u32,
    /// The quality preset it runs at: the ladder's, or cheaper when the machine could
    /// not afford that.
    pub quality: &'static str,
}

/// The rungs of stream `named` being made now, largest first; none when it is not live.
pub(super) fn rungs_now(app: &App, named: &crate::streams::Named) -> Vec<RungNow> {
    app.stream(&named.name)
        .filter(|e| e.uid == named.uid)
        .map(|e| e.renditions.running())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let p = r.planned()?;
            Some(RungNow {
                name: r.name.clone(),
                width: p.width,
                height: p.height,
                bitrate: p.rung.bitrate,
                quality: r.quality().name(),
            })
        })
        .collect()
}

/// The renditions form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LadderForm {
    ladder: String,
    quality: String,
}

/// `POST /admin/streams/{stream}/ladder`.
pub async fn ladder(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<LadderForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let now = manage::streams::set_ladder(
            &ops,
            &stream,
            Some(f.ladder.trim()).filter(|l| !l.is_empty()),
            Some(f.quality.as_str()),
        )
        .await?;
        Ok(notice(
            stream,
            format!(
                "Renditions saved: {} at {} quality.",
                now.ladder, now.quality
            ),
        ))
    })
    .await
}

/// The visibility form's field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VisibilityForm {
    visibility: String,
}

/// `POST /admin/streams/{stream}/visibility`.
pub async fn visibility(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<VisibilityForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let private = manage::streams::set_visibility(&ops, &stream, &f.visibility).await?;
        let msg = if private {
            "The stream is private: it plays only through viewer links (and for you)."
        } else {
            "The stream is public on the LAN."
        };
        Ok(notice(stream, msg))
    })
    .await
}

/// The encryption form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProtectionForm {
    encrypted: String,
    rotate: String,
}

/// `POST /admin/streams/{stream}/protection`.
pub async fn protection(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<ProtectionForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let on = match f.encrypted.as_str() {
            "on" => true,
            "off" => false,
            _ => {
                return Err(Refusal::Invalid(
                    "Choose in the clear or encrypted. Nothing was changed.".into(),
                ))
            }
        };
        let rotate = if f.rotate.trim().is_empty() {
            "10m"
        } else {
            f.rotate.as_str()
        };
        let now = manage::streams::set_protection(&ops, &stream, on, rotate).await?;
        let msg = if now.is_some() {
            "The stream is encrypted from the next segment but one: players with a valid link or session play on."
        } else {
            "The stream is in the clear from the next segment but one."
        };
        Ok(notice(stream, msg))
    })
    .await
}

/// `POST /admin/streams/{stream}/protection/rotate`: a new content key at once.
pub async fn rotate_content_key(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    let keyring = app.keyring.clone();
    act(app, v, s, stream, |ops, stream, _| async move {
        manage::streams::rotate_content_key(&ops, &keyring, &stream).await?;
        Ok(notice(
            stream,
            "A new key is in use from the next segment but one; players without a valid link or session cannot get it.",
        ))
    })
    .await
}

/// The link form's field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LinkForm {
    valid: String,
}

/// `POST /admin/streams/{stream}/link`: a viewer link for the stream.
pub async fn link(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<LinkForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let made = manage::streams::new_link(&ops, &stream, &f.valid).await?;
        let until = super::iso_ms(made.expires.saturating_mul(1000));
        Ok((
            stream,
            Extra {
                link: Some((made.url, until)),
                ..Extra::default()
            },
        ))
    })
    .await
}

/// `POST /admin/streams/{stream}/links/{id}/revoke`.
pub async fn revoke_link(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path((stream, id)): Path<(String, String)>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        manage::streams::end_link(&ops, &stream, &id).await?;
        Ok(notice(
            stream,
            "Link revoked; nobody watches through it any more.",
        ))
    })
    .await
}

/// `POST /admin/streams/{stream}/rename`.
pub async fn rename(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<NameForm>,
) -> Response {
    act(app, v, s, stream, |ops, stream, _| async move {
        let new = manage::streams::rename(&ops, &stream, &f.name).await?;
        Ok(notice(
            new,
            format!("Renamed from \u{201c}{stream}\u{201d}. Publishers must use the new name; RTSP publishers use Basic authentication until the key is rotated."),
        ))
    })
    .await
}

/// The delete form's field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteForm {
    confirm: String,
}

/// `POST /admin/streams/{stream}/delete`: after the name is typed to confirm.
pub async fn delete(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Response {
    if named(&app, &stream).is_none() {
        return not_found(&stream);
    }
    if f.confirm.trim() != stream {
        let extra = Extra {
            error: Some("Type the stream's name exactly to delete it. Nothing was deleted.".into()),
            ..Extra::default()
        };
        return render_detail(&app, &v, &s, &stream, extra).await;
    }
    match manage::streams::remove(&super::ops(&app, &v, &s), &stream)
        .await
        .map_err(Refusal::from)
    {
        Ok(_) => Redirect::to("/admin/streams").into_response(),
        Err(Refusal::Failed(r)) => r,
        Err(_) => not_found(&stream),
    }
}

/// `POST /admin/cameras`: test or add a camera from the streams page.
pub async fn camera_add(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<CameraFields>,
) -> Response {
    let outcome = match cameras::handle(&app, &v, &s, &f, None).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (state, error) = outcome.state(&f, None);
    render_list(&app, &v, &s, String::new(), error, state).await
}

/// `POST /admin/streams/{stream}/camera`: test or save an existing camera's settings.
pub async fn camera_edit(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<CameraFields>,
) -> Response {
    let (app2, v2, s2) = (app.clone(), v.clone(), s.clone());
    act(app, v, s, stream, |_, stream, kind| async move {
        if kind != Kind::Camera {
            return Err(Refusal::Invalid(
                "This is a pushed stream, not a camera.".into(),
            ));
        }
        let outcome = cameras::handle(&app2, &v2, &s2, &f, Some(&stream))
            .await
            .map_err(Refusal::Failed)?;
        let (state, error) = outcome.state(&f, Some(&stream));
        Ok((
            stream,
            Extra {
                camera: Some(state),
                error,
                ..Extra::default()
            },
        ))
    })
    .await
}
