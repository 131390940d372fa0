//! `GET /admin/hardware` and `GET /api/hardware`: the capture devices, sound cards and
//! GPUs the box has now, from the inventory the service keeps current
//! ([`crate::system::hardware::watch`]).

use super::admin::shell;
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::system::hardware::{format_summary, gpu, Inventory};
use axum::extract::State;
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
