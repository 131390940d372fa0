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
//! | `POST /admin/streams/{stream}/rename` | `name`; refused while live |
//! | `POST /admin/streams/{stream}/delete` | `confirm` = the name |
//! | `POST /admin/streams/{stream}/camera`, `POST /admin/cameras` | see [`super::cameras`] |
//!
//! Every action is audited. Bad input re-renders the page with the reason and changes
//! nothing; a stream that does not exist gets a 404 page.

use super::admin::{audit, shell, StreamStatus};
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::auth::{stream_keys, viewer};
use crate::dvr::{playback, settings as dvr_settings};
use crate::ingest::rtsp_pull::sources;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::time::Duration;
use streambox_web::admin::problem;
use streambox_web::setup::CameraForm;
use streambox_web::streams::{self as pages, CameraState, Detail, Publish, Recorded};

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

/// `stream` or `camera`, or `None` when `name` is neither.
async fn kind_of(app: &App, name: &str) -> Result<Option<&'static str>, Response> {
    if !stream_keys::valid_name(name) {
        return Ok(None);
    }
    if stream_keys::exists(&app.db, name).await.map_err(internal)? {
        return Ok(Some("stream"));
    }
    let cameras = sources::list(&app.db).await.map_err(internal)?;
    Ok(cameras.iter().any(|c| c.name == name).then_some("camera"))
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
    let private = match viewer::private_streams(&app.db).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let rows = all
        .into_iter()
        .map(|st| pages::Row {
            private: private.contains(&st.name),
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
    let name = f.name.trim().to_string();
    match stream_keys::add(&app.db, &name).await {
        Ok(key) => {
            if let Err(e) = crate::setup::apply_recording_defaults(&app.db, &name).await {
                tracing::warn!(error = %e, stream = %name, "applying recording defaults failed");
            }
            audit(&app, &s.user.name, &v, "stream.add", &name).await;
            let extra = Extra {
                key: Some(key),
                notice: Some(format!("Stream \u{201c}{name}\u{201d} created.")),
                ..Extra::default()
            };
            render_detail(&app, &v, &s, &name, extra).await
        }
        Err(
            e @ (stream_keys::StreamKeyError::InvalidName(_)
            | stream_keys::StreamKeyError::Exists(_)
            | stream_keys::StreamKeyError::TakenBySource(_)),
        ) => {
            let shown = if stream_keys::valid_name(&name) {
                name
            } else {
                String::new()
            };
            render_list(
                &app,
                &v,
                &s,
                shown,
                Some(format!("{e}.")),
                CameraState::default(),
            )
            .await
        }
        Err(e) => internal(e),
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
    let kind = match kind_of(app, name).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found(name),
        Err(r) => return r,
    };
    let shell = match shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let live = app.stream(name).is_some_and(|e| e.hub.is_live());
    let private = match viewer::is_private(&app.db, name).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let rec = match dvr_settings::get(&app.db, name).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let publish = if kind == "stream" {
        let rows = match stream_keys::list(&app.db).await {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
        let since = rows
            .iter()
            .find(|r| r.name == name)
            .map_or(0, |r| r.key_rotated_at);
        let (rtmp, rtsp) = (app.cfg.rtmp.listen, app.cfg.rtsp.listen);
        Some(Publish {
            server: super::setup::rtmp_url(&super::setup::first_host(app, rtmp), rtmp.port()),
            rtsp: format!(
                "rtsp://{}:{}/live/{name}",
                super::setup::first_host(app, rtsp),
                rtsp.port()
            ),
            key: extra.key,
            key_since: super::iso_ms(since.saturating_mul(1000)),
        })
    } else {
        None
    };
    let (camera, camera_form) = if kind == "camera" {
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
                    name: r.name,
                    url: r.url,
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
    let ranges = match playback::timeline(&app.db, name, span).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let recorded = ranges
        .iter()
        .rev()
        .map(|r| {
            let (start, end) = (super::iso_ms(r.start_ms), super::iso_ms(r.end_ms));
            Recorded {
                thumbnail: format!("/dvr/{name}/thumbnail.jpg?at={start}&width=160"),
                export: format!("/dvr/{name}/export.mp4?start={start}&end={end}"),
                playlist: format!("/dvr/{name}/index.m3u8?start={start}&end={end}"),
                start,
                end,
            }
        })
        .collect();
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
        kind,
        live,
        private,
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

/// Runs one action on an existing stream: 404 page when it does not exist; else the
/// stream page (under its new name after a rename) with what `act` reports.
async fn act<F, Fut>(app: App, v: Visitor, s: Signed, stream: String, act: F) -> Response
where
    F: FnOnce(App, Visitor, Signed, String, &'static str) -> Fut,
    Fut: std::future::Future<Output = Result<(String, Extra), Response>>,
{
    let kind = match kind_of(&app, &stream).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found(&stream),
        Err(r) => return r,
    };
    match act(app.clone(), v.clone(), s.clone(), stream, kind).await {
        Ok((name, extra)) => render_detail(&app, &v, &s, &name, extra).await,
        Err(r) => r,
    }
}

fn refused(stream: String, msg: String) -> Result<(String, Extra), Response> {
    Ok((
        stream,
        Extra {
            error: Some(msg),
            ..Extra::default()
        },
    ))
}

fn done(stream: String, msg: String) -> Result<(String, Extra), Response> {
    Ok((
        stream,
        Extra {
            notice: Some(msg),
            ..Extra::default()
        },
    ))
}

/// `POST /admin/streams/{stream}/key`.
pub async fn rotate_key(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
) -> Response {
    act(app, v, s, stream, |app, v, s, stream, kind| async move {
        if kind != "stream" {
            return refused(stream, "Cameras have no stream key.".into());
        }
        let key = stream_keys::rotate(&app.db, &stream)
            .await
            .map_err(internal)?;
        audit(&app, &s.user.name, &v, "stream.rotate-key", &stream).await;
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let parse =
            |text: &str, what: &str, p: fn(&str) -> Result<Option<i64>, crate::dvr::DvrError>| {
                let t = text.trim();
                if t.is_empty() {
                    return Ok(None);
                }
                if t.len() > 32 {
                    return Err(format!("{what}: too long"));
                }
                p(t).map_err(|e| {
                    format!(
                        "{what}: {}",
                        e.to_string().trim_start_matches("bad setting: ")
                    )
                })
            };
        let keep = match parse(&f.keep, "Keep for", dvr_settings::parse_keep) {
            Ok(k) => k,
            Err(m) => return refused(stream, format!("{m}. Nothing was changed.")),
        };
        let keep_bytes = match parse(
            &f.keep_bytes,
            "Keep at most",
            dvr_settings::parse_keep_bytes,
        ) {
            Ok(k) => k,
            Err(m) => return refused(stream, format!("{m}. Nothing was changed.")),
        };
        let change = dvr_settings::SettingsChange {
            enabled: Some(f.enabled.is_some()),
            keep_secs: Some(keep),
            keep_bytes: Some(keep_bytes),
        };
        let now = dvr_settings::set(&app.db, &stream, change)
            .await
            .map_err(internal)?;
        let detail = format!(
            "{stream}: record={} keep={:?} keep_bytes={:?}",
            now.enabled, now.keep_secs, now.keep_bytes
        );
        audit(&app, &s.user.name, &v, "stream.recording", &detail).await;
        done(stream, "Recording settings saved.".into())
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let private = match f.visibility.as_str() {
            "public" => false,
            "private" => true,
            _ => {
                return refused(
                    stream,
                    "Choose public or private. Nothing was changed.".into(),
                )
            }
        };
        viewer::set_private(&app.db, &stream, private)
            .await
            .map_err(internal)?;
        let what = if private { "private" } else { "public" };
        audit(
            &app,
            &s.user.name,
            &v,
            "stream.visibility",
            &format!("{stream}: {what}"),
        )
        .await;
        let msg = if private {
            "The stream is private: it plays only through viewer links (and for you)."
        } else {
            "The stream is public on the LAN."
        };
        done(stream, msg.into())
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
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let valid = f.valid.trim();
        let secs = match humantime::parse_duration(valid) {
            Ok(d)
                if valid.len() <= 16
                    && d.as_secs() >= 60
                    && d.as_secs() as i64 <= viewer::MAX_LINK_SECS =>
            {
                d.as_secs() as i64
            }
            _ => {
                return refused(
                    stream,
                    "Links are valid for a minute to 30 days, e.g. 2h, 24h or 7d.".into(),
                )
            }
        };
        let (token, expires) = viewer::new_link(&app.db, &stream, secs)
            .await
            .map_err(internal)?;
        let web = app.cfg.http.listen;
        let url = format!(
            "http://{}:{}/t/{token}/watch/{stream}",
            super::setup::first_host(&app, web),
            web.port()
        );
        let until = super::iso_ms(expires.saturating_mul(1000));
        audit(
            &app,
            &s.user.name,
            &v,
            "stream.link",
            &format!("{stream} until {until}"),
        )
        .await;
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

/// `POST /admin/streams/{stream}/rename`.
pub async fn rename(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(stream): Path<String>,
    Form(f): Form<NameForm>,
) -> Response {
    act(app, v, s, stream, |app, v, s, stream, _| async move {
        let new = f.name.trim().to_string();
        if !stream_keys::valid_name(&new) {
            return refused(stream, format!("{}.", stream_keys::StreamKeyError::InvalidName(new)));
        }
        if app.stream(&stream).is_some_and(|e| e.hub.is_live()) {
            return refused(
                stream,
                "The stream is live; stop the publisher before renaming it, so viewers and recordings are not split.".into(),
            );
        }
        match crate::db::rename_stream(&app.db, &stream, &new).await {
            Ok(()) => {
                audit(&app, &s.user.name, &v, "stream.rename", &format!("{stream} -> {new}")).await;
                done(
                    new,
                    format!("Renamed from \u{201c}{stream}\u{201d}. Publishers must use the new name; RTSP publishers use Basic authentication until the key is rotated."),
                )
            }
            Err(e @ crate::db::RenameError::Taken(_)) => refused(stream, format!("{e}.")),
            Err(e) => Err(internal(e)),
        }
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
    let kind = match kind_of(&app, &stream).await {
        Ok(Some(k)) => k,
        Ok(None) => return not_found(&stream),
        Err(r) => return r,
    };
    if f.confirm.trim() != stream {
        let extra = Extra {
            error: Some("Type the stream's name exactly to delete it. Nothing was deleted.".into()),
            ..Extra::default()
        };
        return render_detail(&app, &v, &s, &stream, extra).await;
    }
    let r = if kind == "stream" {
        stream_keys::remove(&app.db, &stream)
            .await
            .map_err(internal)
    } else {
        sources::remove(&app.db, &stream).await.map_err(internal)
    };
    if let Err(r) = r {
        return r;
    }
    audit(&app, &s.user.name, &v, &format!("{kind}.rm"), &stream).await;
    Redirect::to("/admin/streams").into_response()
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
        if kind != "camera" {
            return refused(stream, "This is a pushed stream, not a camera.".into());
        }
        let outcome = super::cameras::handle(&app, &v, &s, &f, Some(&stream)).await?;
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
