//! The admin's stream pages ([`streambox_web::streams`]).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /admin/streams`, `POST /admin/streams` | list; create (`name`) |
//! | `GET /admin/streams/{stream}` | player, publish settings, recording, visibility, recordings |
//! | `POST /admin/streams/{stream}/key` | rotate the key (shown once) |
//! | `POST /admin/streams/{stream}/recording` | `enabled`, `keep`, `keep_bytes` |
//! | `POST /admin/streams/{stream}/visibility` | `visibility` = `public` or `private` |
//! | `POST /admin/streams/{stream}/link` | a viewer link valid for `valid` (e.g. `24h`) |
//! | `POST /admin/streams/{stream}/links/{id}/revoke` | revoke a viewer link |
//! | `POST /admin/streams/{stream}/rename` | `name`; refused while live |
//! | `POST /admin/streams/{stream}/delete` | `confirm` = the name |
//! | `POST /admin/streams/{stream}/camera`, `POST /admin/cameras` | see [`super::cameras`] |
//!
//! Every action is audited, and reloads the registry's directory, which ends at once
//! what it took away (a rotated key's publisher, a deleted stream's everything, a
//! revoked link's players). Bad input re-renders the page with the reason and changes
//! nothing; a stream that does not exist gets a 404 page.

use super::admin::{audit, shell, StreamStatus};
use super::visitor::{page, Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::auth::{stream_keys, viewer};
use crate::dvr::{playback, settings as dvr_settings};
use crate::ingest::rtsp_pull::sources;
use crate::streams::{Kind, Named};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
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
    match add_stream(&app, &v, &s, &f.name).await {
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
            | Refusal::Limited(m, _),
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

/// Creates stream `name` (trimmed) with the recording defaults; returns its name and
/// its key, to show once.
///
/// # Errors
/// [`Refusal::Invalid`] for a bad name, [`Refusal::Conflict`] for a taken one.
pub(super) async fn add_stream(
    app: &App,
    v: &Visitor,
    s: &Signed,
    name: &str,
) -> Result<(String, String), Refusal> {
    let name = name.trim();
    match stream_keys::add(&app.db, name).await {
        Ok(key) => {
            if let Err(e) = crate::setup::apply_recording_defaults(&app.db, name).await {
                tracing::warn!(error = %e, stream = %name, "applying recording defaults failed");
            }
            app.registry.changed().await;
            audit(app, &s.actor(), v, "stream.add", name).await;
            Ok((name.to_string(), key))
        }
        Err(e @ stream_keys::StreamKeyError::InvalidName(_)) => {
            Err(Refusal::Invalid(format!("{e}.")))
        }
        Err(
            e @ (stream_keys::StreamKeyError::Exists(_)
            | stream_keys::StreamKeyError::TakenBySource(_)),
        ) => Err(Refusal::Conflict(format!("{e}."))),
        Err(e) => Err(Refusal::Failed(internal(e))),
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
    let (camera, camera_form) = if kind == Kind::Camera {
        let row = match sources::list(&app.db).await {
            Ok(rows) => rows.into_iter().find(|r| r.name == name),
            Err(e) => return internal(e),
        };
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
        links,
        publish,
        camera,
        camera_form,
        recording: rec.enabled,
        keep,
        keep_bytes,
        recorded,
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

/// Stream `name`'s publish settings: [`publish_urls`], when its key was made (ISO 8601
/// UTC), and `key` when it was just made (shown once).
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
    let (server, rtsp) = publish_urls(app, name);
    Ok(Publish {
        server,
        rtsp,
        key,
        key_since: super::iso_ms(since.saturating_mul(1000)),
    })
}

/// Where publishers send stream `name`: the RTMP server URL (OBS's "Server"; the key
/// goes in "Stream Key") and the RTSP ANNOUNCE URL.
pub(super) fn publish_urls(app: &App, name: &str) -> (String, String) {
    let (rtmp, rtsp) = (app.cfg.rtmp.listen, app.cfg.rtsp.listen);
    (
        super::setup::rtmp_url(&super::setup::first_host(app, rtmp), rtmp.port()),
        format!(
            "rtsp://{}:{}/live/{name}",
            super::setup::first_host(app, rtsp),
            rtsp.port()
        ),
    )
}

/// Runs one action on an existing stream: 404 page when it does not exist; else the
/// stream page (under its new name after a rename) with what `act` reports, or with the
/// reason it refused.
async fn act<F, Fut>(app: App, v: Visitor, s: Signed, stream: String, act: F) -> Response
where
    F: FnOnce(App, Visitor, Signed, String, Kind) -> Fut,
    Fut: std::future::Future<Output = Result<(String, Extra), Refusal>>,
{
    let Some(kind) = named(&app, &stream).map(|n| n.kind) else {
        return not_found(&stream);
    };
    let extra = match act(app.clone(), v.clone(), s.clone(), stream.clone(), kind).await {
        Ok(done) => done,
        Err(Refusal::Invalid(m) | Refusal::Conflict(m) | Refusal::Limited(m, _)) => (
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
    act(app, v, s, stream, |app, v, s, stream, kind| async move {
        let key = new_key(&app, &v, &s, &stream, kind).await?;
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

/// Rotates the key of stream `stream` (of `kind`); returns the new key, to show once.
/// The old key stops working at once, and a publisher using it is ended.
///
/// # Errors
/// [`Refusal::Invalid`] for a camera.
pub(super) async fn new_key(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    kind: Kind,
) -> Result<String, Refusal> {
    if kind != Kind::Stream {
        return Err(Refusal::Invalid("Cameras have no stream key.".into()));
    }
    let key = stream_keys::rotate(&app.db, stream)
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    app.registry.changed().await;
    audit(app, &s.actor(), v, "stream.rotate-key", stream).await;
    Ok(key)
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let enabled = f.enabled.is_some();
        set_recording(&app, &v, &s, &stream, enabled, &f.keep, &f.keep_bytes).await?;
        Ok(notice(stream, "Recording settings saved."))
    })
    .await
}

/// Sets whether `stream` records and how long (`keep`, e.g. `7d`) and how much
/// (`keep_bytes`, e.g. `50 GB`) of it is kept; an empty limit is no limit. Returns the
/// settings now in force.
///
/// # Errors
/// [`Refusal::Invalid`] for a limit that does not parse; nothing is changed then.
pub(super) async fn set_recording(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    enabled: bool,
    keep: &str,
    keep_bytes: &str,
) -> Result<dvr_settings::RecordingSettings, Refusal> {
    let parse =
        |text: &str, what: &str, p: fn(&str) -> Result<Option<i64>, crate::dvr::DvrError>| {
            let t = text.trim();
            if t.is_empty() {
                return Ok(None);
            }
            if t.len() > 32 {
                return Err(Refusal::Invalid(format!(
                    "{what}: too long. Nothing was changed."
                )));
            }
            p(t).map_err(|e| {
                Refusal::Invalid(format!(
                    "{what}: {}. Nothing was changed.",
                    e.to_string().trim_start_matches("bad setting: ")
                ))
            })
        };
    let keep = parse(keep, "Keep for", dvr_settings::parse_keep)?;
    let keep_bytes = parse(keep_bytes, "Keep at most", dvr_settings::parse_keep_bytes)?;
    let change = dvr_settings::SettingsChange {
        enabled: Some(enabled),
        keep_secs: Some(keep),
        keep_bytes: Some(keep_bytes),
    };
    let now = dvr_settings::set(&app.db, stream, change)
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    let detail = format!(
        "{stream}: record={} keep={:?} keep_bytes={:?}",
        now.enabled, now.keep_secs, now.keep_bytes
    );
    audit(app, &s.actor(), v, "stream.recording", &detail).await;
    Ok(now)
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let private = set_visibility(&app, &v, &s, &stream, &f.visibility).await?;
        let msg = if private {
            "The stream is private: it plays only through viewer links (and for you)."
        } else {
            "The stream is public on the LAN."
        };
        Ok(notice(stream, msg))
    })
    .await
}

/// Makes `stream` `public` (anyone on the LAN may watch) or `private` (only through
/// viewer links); returns whether it is private now.
///
/// # Errors
/// [`Refusal::Invalid`] for another word.
pub(super) async fn set_visibility(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    visibility: &str,
) -> Result<bool, Refusal> {
    let private = match visibility {
        "public" => false,
        "private" => true,
        _ => {
            return Err(Refusal::Invalid(
                "Choose public or private. Nothing was changed.".into(),
            ))
        }
    };
    let named = named(app, stream).ok_or_else(|| Refusal::NotFound(stream.to_string()))?;
    viewer::set_private(&app.db, &named.uid, private)
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    // RTSP players without a grant are ended now.
    app.registry.changed().await;
    let detail = format!("{stream}: {visibility}");
    audit(app, &s.actor(), v, "stream.visibility", &detail).await;
    Ok(private)
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let (_, url, expires) = new_link(&app, &v, &s, &stream, &f.valid).await?;
        let until = super::iso_ms(expires.saturating_mul(1000));
        Ok((
            stream,
            Extra {
                link: Some((url, until)),
                ..Extra::default()
            },
        ))
    })
    .await
}

/// A viewer link to `stream`'s watch page, valid for `valid` (`2h`, `24h`, `7d`: a
/// minute to [`viewer::MAX_LINK_SECS`]); returns its id, URL and when it expires, in
/// seconds since the Unix epoch.
///
/// # Errors
/// [`Refusal::Invalid`] for a validity out of range or that does not parse.
pub(super) async fn new_link(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    valid: &str,
) -> Result<(i64, String, i64), Refusal> {
    let valid = valid.trim();
    let secs = match humantime::parse_duration(valid) {
        Ok(d)
            if valid.len() <= 16
                && d.as_secs() >= 60
                && d.as_secs() as i64 <= viewer::MAX_LINK_SECS =>
        {
            d.as_secs() as i64
        }
        _ => {
            return Err(Refusal::Invalid(
                "Links are valid for a minute to 30 days, e.g. 2h, 24h or 7d.".into(),
            ))
        }
    };
    let named = named(app, stream).ok_or_else(|| Refusal::NotFound(stream.to_string()))?;
    let (id, token, expires) = viewer::new_link(&app.db, &named.uid, secs, &s.actor())
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    app.registry.changed().await;
    let web = app.cfg.http.listen;
    let url = format!(
        "http://{}:{}/t/{token}/watch/{stream}",
        super::setup::first_host(app, web),
        web.port()
    );
    let until = super::iso_ms(expires.saturating_mul(1000));
    audit(
        app,
        &s.actor(),
        v,
        "stream.link",
        &format!("{stream} link {id} until {until}"),
    )
    .await;
    Ok((id, url, expires))
}

/// `POST /admin/streams/{stream}/links/{id}/revoke`.
pub async fn revoke_link(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path((stream, id)): Path<(String, String)>,
) -> Response {
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        end_link(&app, &v, &s, &stream, &id).await?;
        Ok(notice(
            stream,
            "Link revoked; nobody watches through it any more.",
        ))
    })
    .await
}

/// Revokes viewer link `id` of `stream`: its players are refused from their next
/// request, and RTSP sessions through it end.
///
/// # Errors
/// [`Refusal::NotFound`] for no such open link of this stream.
pub(super) async fn end_link(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    id: &str,
) -> Result<(), Refusal> {
    let gone = || Refusal::NotFound(format!("No open link {id} of \u{201c}{stream}\u{201d}."));
    let id: i64 = id.parse().map_err(|_| gone())?;
    let named = named(app, stream).ok_or_else(gone)?;
    let revoked = viewer::revoke(&app.db, &named.uid, id)
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    if !revoked {
        return Err(gone());
    }
    app.registry.changed().await;
    audit(
        app,
        &s.actor(),
        v,
        "stream.link-revoke",
        &format!("{stream} link {id}"),
    )
    .await;
    Ok(())
}

/// `POST /admin/streams/{stream}/rename`.
pub async fn rename(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<NameForm>,
) -> Response {
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let new = rename_stream(&app, &v, &s, &stream, &f.name).await?;
        Ok(notice(
            new,
            format!("Renamed from \u{201c}{stream}\u{201d}. Publishers must use the new name; RTSP publishers use Basic authentication until the key is rotated."),
        ))
    })
    .await
}

/// Renames `stream` to `new` (trimmed) in every table that names it; recordings keep
/// their files. Returns the new name.
///
/// # Errors
/// [`Refusal::Invalid`] for a bad name; [`Refusal::Conflict`] while the stream is live
/// (viewers and recordings would be split) or when the name is taken.
pub(super) async fn rename_stream(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    new: &str,
) -> Result<String, Refusal> {
    let new = new.trim().to_string();
    if !stream_keys::valid_name(&new) {
        return Err(Refusal::Invalid(format!(
            "{}.",
            stream_keys::StreamKeyError::InvalidName(new)
        )));
    }
    if app.stream(stream).is_some_and(|e| e.hub.is_live()) {
        return Err(Refusal::Conflict(
            "The stream is live; stop the publisher before renaming it, so viewers and recordings are not split.".into(),
        ));
    }
    match crate::db::rename_stream(&app.db, stream, &new).await {
        Ok(()) => {
            // The live entry under the old name closes; nothing answers under it.
            app.registry.changed().await;
            audit(
                app,
                &s.actor(),
                v,
                "stream.rename",
                &format!("{stream} -> {new}"),
            )
            .await;
            Ok(new)
        }
        Err(e @ crate::db::RenameError::Taken(_)) => Err(Refusal::Conflict(format!("{e}."))),
        Err(e) => Err(Refusal::Failed(internal(e))),
    }
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
    let Some(kind) = named(&app, &stream).map(|n| n.kind) else {
        return not_found(&stream);
    };
    if f.confirm.trim() != stream {
        let extra = Extra {
            error: Some("Type the stream's name exactly to delete it. Nothing was deleted.".into()),
            ..Extra::default()
        };
        return render_detail(&app, &v, &s, &stream, extra).await;
    }
    match remove(&app, &v, &s, &stream, kind).await {
        Ok(()) => Redirect::to("/admin/streams").into_response(),
        Err(r) => r,
    }
}

/// Deletes stream or camera `stream` (of `kind`) and everything that is its: its
/// publisher or camera session, players and viewer links end at once, its live entry
/// closes, its recordings are deleted.
///
/// # Errors
/// A response for a failure of the database.
pub(super) async fn remove(
    app: &App,
    v: &Visitor,
    s: &Signed,
    stream: &str,
    kind: Kind,
) -> Result<(), Response> {
    crate::db::delete_stream(&app.db, stream)
        .await
        .map_err(internal)?;
    app.registry.changed().await;
    let action = match kind {
        Kind::Stream => "stream.rm",
        Kind::Camera => "camera.rm",
    };
    audit(app, &s.actor(), v, action, stream).await;
    Ok(())
}

/// `POST /admin/streams/{stream}/camera` (see [`super::cameras`]).
pub(super) async fn camera_edit(
    app: App,
    v: Visitor,
    s: Signed,
    stream: String,
    f: super::cameras::CameraFields,
) -> Response {
    act(app, v, s, stream, |app, v, s, stream, kind| async move {
        if kind != Kind::Camera {
            return Err(Refusal::Invalid(
                "This is a pushed stream, not a camera.".into(),
            ));
        }
        let outcome = super::cameras::handle(&app, &v, &s, &f, Some(&stream))
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
