//! `GET /admin/hardware` and `GET /api/hardware`: the capture devices, sound cards and
//! GPUs the box has now, from the inventory the service keeps current
//! ([`crate::system::hardware::watch`]).

use super::admin::shell;
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::system::hardware::{format_summary, gpu, Inventory};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use streambox_web::hardware as web;

fn view(hw: &Inventory) -> web::Hardware {
    web::Hardware {
        video: hw
            .video
            .iter()
            .map(|d| web::Video {
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
                detail: [g.vendor.as_deref(), g.driver.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
    }
}

/// `GET /admin/hardware`.
pub async fn page_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let shell = match shell(&app, &v, &s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let hw = view(&app.hardware.borrow());
    page(StatusCode::OK, web::page(shell, hw))
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
