//! `GET /admin/hardware` and `GET /api/hardware`: the capture devices, sound cards and
//! GPUs the box has now, from the inventory the service keeps current
//! ([`crate::system::hardware::watch`]).

use super::admin::shell;
use super::api::CaptureFields;
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::ingest::rtsp_pull::sources::{self, SourceRow};
use crate::system::hardware::{format_summary, gpu, Inventory};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::Form;
use axum::{Extension, Json};
use streambox_web::hardware as web;

/// The page's view of `hw`, with the capture sources among `sources` bound to each
/// device.
fn view(hw: &Inventory, sources: &[SourceRow]) -> web::Hardware {
    web::Hardware {
        video: hw
            .video
            .iter()
            .map(|d| web::Video {
                sources: sources
                    .iter()
                    .filter(|r| r.is_capture() && r.device == d.id)
                    .map(|r| (r.name.clone(), r.capture_state()))
                    .collect(),
                id: d.id.clone(),
                node: d.node.display().to_string(),
                name: d.name.clone(),
                driver: if d.driver.is_empty() {
                    String::new()
                } else {
                    format!("{} at {}", d.driver, d.bus)
                },
                error: d.error.clone(),
                formats: d.formats.iter().map(format_summary).collect(),
            })
            .collect(),
        audio: hw
            .sound
            .iter()
            .flat_map(|c| {
                c.captures.iter().map(move |p| web::Audio {
                    alsa: p.alsa.clone(),
                    name: p.name.clone(),
                    card: format!("{} ({})", c.name, c.driver),
                })
            })
            .collect(),
        gpus: hw
            .gpus
            .iter()
            .map(|g| web::Gpu {
                kind: match g.kind {
                    gpu::Kind::Vaapi => "VA-API".into(),
                    gpu::Kind::Nvidia => "NVIDIA".into(),
                },
                node: g.node.display().to_string(),
                detail: [
                    g.vendor.clone(),
                    g.driver.clone(),
                    g.vaapi.as_ref().map(|v| v.summary()),
                    g.vaapi_error.as_ref().map(|e| format!("VA-API: {e}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            })
            .collect(),
        form: web::CaptureForm::default(),
    }
}

/// The page with `form` in the "Add a capture source" form.
async fn render(
    app: &App,
    v: &Visitor,
    s: &Signed,
    status: StatusCode,
    form: web::CaptureForm,
) -> Response {
    let shell = match shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows = match sources::list(&app.db).await {
        Ok(rows) => rows,
        Err(e) => return super::admin::internal(e),
    };
    let mut hw = view(&app.hardware.borrow(), &rows);
    hw.form = form;
    page(status, web::page(shell, hw))
}

/// `GET /admin/hardware`.
pub async fn page_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    render(&app, &v, &s, StatusCode::OK, web::CaptureForm::default()).await
}

/// `POST /admin/hardware/capture`: adds a capture source (the API's
/// [`super::api::CaptureFields`]); to its stream page when saved, else the page again
/// with the form as typed and why (422; 409 for a taken name).
pub async fn add_capture(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<CaptureFields>,
) -> Response {
    let hardware = app.hardware.borrow().clone();
    let ops = super::ops(&app, &v, &s);
    match crate::manage::capture::save(&ops, &f.input(), &hardware, None).await {
        Ok((name, _)) => Redirect::to(&format!("/admin/streams/{name}")).into_response(),
        Err(crate::manage::Refused::Failed(e)) => super::admin::internal(e),
        Err(e) => {
            let status = match e {
                crate::manage::Refused::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let form = web::CaptureForm {
                name: f.name.trim().chars().take(64).collect(),
                device: f.device.chars().take(255).collect(),
                size: f.size.chars().take(32).collect(),
                fps: f.fps.chars().take(32).collect(),
                bitrate: f.bitrate.chars().take(32).collect(),
                audio: f.audio.chars().take(255).collect(),
                error: Some(e.to_string()),
            };
            render(&app, &v, &s, status, form).await
        }
    }
}

/// `GET /api/hardware`: the inventory as JSON: `video` (each with `id`, `node`, `name`,
/// `driver`, `bus`, `formats` with their `sizes` and `rates` as fractions of frames
/// per second, and `error`), `sound` (cards with their capture PCMs' ALSA names), and
/// `gpus`.
pub async fn api(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    let hw = app.hardware.borrow().clone();
    Json(&*hw).into_response()
}

/// One snapshot at a time: each holds a capture device for a few frames.
static SNAPSHOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `GET /api/hardware/video/{id}/snapshot`: what the capture device with stable ID `id`
/// sees now, as a JPEG at a small size it offers (at least 320 pixels wide where it
/// can). 404 for an unknown or unplugged device, 409 when it is busy (another program
/// or a source is capturing), 422 when it offers no format streambox converts, 504 when
/// it sends no frame within 2 s.
pub async fn snapshot(
    State(app): State<App>,
    Extension(_s): Extension<Signed>,
    Path(id): Path<String>,
) -> Response {
    use crate::system::hardware::{snapshot, SnapshotError};
    let Some(device) = app.hardware.borrow().video(&id).cloned() else {
        return super::visitor::api_error(StatusCode::NOT_FOUND, "no capture device has that ID");
    };
    let _one = SNAPSHOT.lock().await;
    let taken = tokio::task::spawn_blocking(move || {
        let (picture, _) = snapshot(&device)?;
        let rgb = crate::transcode::pixels::to_rgb(&picture);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode(
                &rgb,
                picture.width,
                picture.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| SnapshotError::Io(std::io::Error::other(e.to_string())))?;
        Ok::<_, SnapshotError>(out)
    })
    .await;
    let status = |e: &SnapshotError| match e {
        SnapshotError::Gone => StatusCode::NOT_FOUND,
        SnapshotError::Busy => StatusCode::CONFLICT,
        SnapshotError::NoFormat(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SnapshotError::Stalled(_) => StatusCode::GATEWAY_TIMEOUT,
        SnapshotError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match taken {
        Ok(Ok(jpeg)) => (
            [
                (axum::http::header::CONTENT_TYPE, "image/jpeg"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(device = %id, error = %e, "capture device snapshot failed");
            super::visitor::api_error(status(&e), &e.to_string())
        }
        Err(_) => {
            super::visitor::api_error(StatusCode::INTERNAL_SERVER_ERROR, "the snapshot failed")
        }
    }
}
