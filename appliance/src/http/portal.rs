//! The LAN viewer portal ([`streambox_web::portal`]) and the embedded web assets: the
//! live streams at `/`, one stream at `/watch/{stream}`, whether it is live at
//! `/watch/{stream}/state`, and `/assets/…`. Private streams are not listed; their pages
//! answer only through a viewer link (see [`super::visitor::viewer_gate`]).

use super::error;
use super::visitor::Grant;
use crate::app::App;
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

/// `GET /`, `GET /watch`: the public streams and cameras live now, by name.
pub async fn index(State(app): State<App>) -> Response {
    let dir = app.registry.directory();
    let mut names: Vec<&str> = dir
        .all()
        .filter(|n| !n.private && is_live(&app, &n.name))
        .map(|n| n.name.as_str())
        .collect();
    names.sort_unstable();
    let cards = names
        .into_iter()
        .map(|name| portal::Card {
            name: name.to_string(),
        })
        .collect();
    html(portal::index(cards))
}

/// The 404 page of `/watch/NAME` for a name that is no stream.
fn no_such_stream(stream: &str) -> Response {
    (StatusCode::NOT_FOUND, html(portal::no_such_stream(stream))).into_response()
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
    if app.registry.directory().by_name(&stream).is_none() {
        return no_such_stream(&stream);
    }
    html(portal::watch(&stream, &prefix))
}

/// `GET /watch/{stream}/state`: `{"live": true|false}`.
pub async fn state(State(app): State<App>, Path(stream): Path<String>) -> Response {
    if app.registry.directory().by_name(&stream).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no stream named {stream:?}"));
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
