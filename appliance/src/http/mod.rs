//! The HTTP front end: one [`router`] for live media, recordings, the viewer portal,
//! metrics and health, with CORS so players on other origins can fetch everything.

mod dvr;
mod live;
mod portal;
mod thumbnail;

use crate::app::App;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

/// Builds the whole HTTP application.
pub fn router(app: App) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_TYPE, header::AGE]);
    Router::new()
        .route("/live/{stream}/thumbnail.jpg", get(thumbnail::live))
        .route("/live/{stream}/{file}", get(live::playlist))
        .route("/live/{stream}/{track}/{file}", get(live::media))
        .route("/dvr/{stream}/thumbnail.jpg", get(thumbnail::recorded))
        .route("/dvr/{stream}/{file}", get(dvr::playlist))
        .route("/dvr/{stream}/files/{epoch}/{track}/{file}", get(dvr::file))
        .route("/api/streams/{stream}/recordings", get(dvr::recordings))
        .route("/time", get(time))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(portal::index))
        .route("/watch", get(portal::index))
        .route("/watch/{stream}", get(portal::watch))
        .route("/watch/{stream}/state", get(portal::state))
        .route("/assets/{*path}", get(portal::asset))
        .layer(cors)
        .with_state(app)
}

/// A plain-text error response that no cache keeps.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// UTC time in ISO 8601 for DASH UTCTiming (`urn:mpeg:dash:utc:http-iso:2014`).
async fn time() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        crate::packager::hls::iso8601(std::time::SystemTime::now()),
    )
        .into_response()
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        app.metrics.render(),
    )
        .into_response()
}
