//! The LAN viewer portal ([`streambox_web::portal`]) and the embedded web assets: the
//! live streams at `/`, one stream at `/watch/{stream}`, whether it is live at
//! `/watch/{stream}/state`, and `/assets/…`. Private streams are not listed; their pages
//! answer only through a viewer link (see [`super::visitor::viewer_gate`]).

use super::error;
use super::visitor::Grant;
use crate::app::App;
use crate::auth::stream_keys;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use streambox_web::portal;

fn html(body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Whether `name` has a publisher now.
fn is_live(app: &App, name: &str) -> bool {
    app.stream(name).is_some_and(|e| e.hub.is_live())
}

/// `GET /`, `GET /watch`: the streams live now, by name.
pub async fn index(State(app): State<App>) -> Response {
    let rows = match stream_keys::list(&app.db).await {
        Ok(rows) => rows,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let private = match crate::auth::viewer::private_streams(&app.db).await {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let cards = rows
        .into_iter()
        .filter(|r| is_live(&app, &r.name) && !private.contains(&r.name))
        .map(|r| portal::Card { name: r.name })
        .collect();
    html(portal::index(cards))
}

/// `GET /watch/{stream}`: the player page of a stream that exists (live or not); for
/// any other name, a 404 page that says so. Through a viewer link, the page's URLs keep
/// the link's `/t/{token}` prefix.
pub async fn watch(
    State(app): State<App>,
    Path(stream): Path<String>,
    grant: Option<Extension<Grant>>,
) -> Response {
    let prefix = grant.map_or_else(String::new, |g| format!("/t/{}", g.token));
    match known(&app, &stream).await {
        Ok(()) => html(portal::watch(&stream, &prefix)),
        Err(r) if r.status() == StatusCode::NOT_FOUND => {
            (StatusCode::NOT_FOUND, html(portal::no_such_stream(&stream))).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /watch/{stream}/state`: `{"live": true|false}`.
pub async fn state(State(app): State<App>, Path(stream): Path<String>) -> Response {
    if let Err(r) = known(&app, &stream).await {
        return r;
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        serde_json::json!({ "live": is_live(&app, &stream) }).to_string(),
    )
        .into_response()
}

/// Ok when `stream` is a stream of this appliance; else a 404 that says so.
async fn known(app: &App, stream: &str) -> Result<(), Response> {
    let not_found = || error(StatusCode::NOT_FOUND, format!("no stream named {stream:?}"));
    if !stream_keys::valid_name(stream) {
        return Err(not_found());
    }
    match stream_keys::exists(&app.db, stream).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found()),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `GET /assets/{path}`: an embedded asset, revalidated by its content hash.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = streambox_web::assets::get(&path) else {
        return error(StatusCode::NOT_FOUND, format!("no asset {path:?}"));
    };
    let etag = format!("\"{}\"", a.etag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&a.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    (h, a.data.into_owned()).into_response()
}
