//! Sign-in, sign-out and the admin pages ([`streambox_web::admin`]), and the JSON API
//! that goes with them.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /login`, `POST /login` | the sign-in form; rate-limited per client |
//! | `POST /logout` | ends the session |
//! | `GET /admin` | the dashboard |
//! | `GET /admin/account`, `POST /admin/account/password` | change the password |
//! | `GET /admin/audit` | the audit log |
//! | `GET /api/session` | `{"user": …}` of the session |
//! | `GET /api/streams` | every stream and camera with its state (JSON) |

use super::visitor::{self, page, Signed, Visitor, SESSION_COOKIE};
use crate::app::App;
use crate::auth::{sessions, stream_keys, users};
use crate::db;
use crate::ingest::rtsp_pull::sources;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use std::collections::HashMap;
use streambox_web::admin::{self as pages, Shell};

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin request failed");
    super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// What every admin page's header needs.
pub(super) async fn shell(app: &App, v: &Visitor, s: &Signed) -> Result<Shell, Response> {
    Ok(Shell {
        appliance: crate::setup::appliance_name(&app.db)
            .await
            .map_err(internal)?,
        user: s.user.name.clone(),
        csrf: v.csrf.clone(),
    })
}

/// Appends to the audit log for a signed-in user's action; a failure is logged, not
/// shown (the action itself succeeded).
pub(super) async fn audit(app: &App, who: &str, v: &Visitor, action: &str, detail: &str) {
    if let Err(e) = db::audit(&app.db, who, action, detail, &v.client.to_string()).await {
        tracing::warn!(error = %e, action, "writing the audit log failed");
    }
}

/// Only local paths are followed after sign-in (no `//host` or `https://…`).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/admin"
    }
}

/// `GET /login` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
    expired: Option<String>,
    signed_out: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if v.signed().is_some() {
        return Redirect::to(safe_next(&q.next)).into_response();
    }
    let name = match crate::setup::appliance_name(&app.db).await {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    let error = q
        .expired
        .map(|_| "Your session has ended. Sign in again to go on.".to_string());
    let notice = q.signed_out.map(|_| "You have signed out.".to_string());
    page(
        StatusCode::OK,
        pages::login(&name, &v.csrf, "", safe_next(&q.next), error, notice),
    )
}

/// The sign-in form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    name: String,
    password: String,
    next: String,
}

/// Checks a sign-in attempt against the per-client limit and the stored hash; on
/// success starts a session and returns its cookie.
pub(super) async fn sign_in(
    app: &App,
    v: &Visitor,
    headers: &HeaderMap,
    name: &str,
    password: &str,
) -> Result<Cookie<'static>, (StatusCode, String)> {
    if let Err(wait) = app.sign_in.attempt(v.client) {
        tracing::warn!(client = %v.client, "sign-in rate limit reached");
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many sign-in attempts from your address. Try again in {} seconds.",
                wait.as_secs().max(1)
            ),
        ));
    }
    match users::verify(&app.db, name, password).await {
        Ok(user) => {
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let token = sessions::create(&app.db, &user, &v.client.to_string(), ua)
                .await
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            audit(app, &user.name, v, "user.sign-in", &user.name).await;
            Ok(visitor::cookie(SESSION_COOKIE, token))
        }
        Err(users::UserError::BadCredentials) => {
            tracing::info!(client = %v.client, "sign-in refused: wrong user name or password");
            Err((
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".to_string(),
            ))
        }
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /login`.
pub async fn login(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    match sign_in(&app, &v, &headers, &f.name, &f.password).await {
        Ok(c) => (jar.add(c), Redirect::to(safe_next(&f.next))).into_response(),
        Err((status, message)) => {
            let name = match crate::setup::appliance_name(&app.db).await {
                Ok(n) => n,
                Err(e) => return internal(e),
            };
            let shown = if users::valid_name(&f.name) {
                f.name.as_str()
            } else {
                ""
            };
            page(
                status,
                pages::login(
                    &name,
                    &v.csrf,
                    shown,
                    safe_next(&f.next),
                    Some(message),
                    None,
                ),
            )
        }
    }
}

/// `POST /logout`: ends the session and forgets its cookie.
pub async fn logout(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    jar: CookieJar,
) -> Response {
    if let Some(s) = v.signed() {
        if let Err(e) = sessions::end(&app.db, &s.token).await {
            return internal(e);
        }
        audit(&app, &s.user.name, &v, "user.sign-out", &s.user.name).await;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/login?signed_out=1")).into_response()
}

/// A stream or camera as the dashboard and `GET /api/streams` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStatus {
    /// Stream name.
    pub name: String,
    /// `stream` (pushed) or `camera` (pulled over RTSP).
    pub kind: &'static str,
    /// Whether it has a publisher now.
    pub live: bool,
    /// The publisher's address, or the camera's URL (password masked).
    pub source: String,
    /// A camera's state and last error; empty for streams.
    pub detail: String,
    /// Incoming bits per second while live.
    pub bitrate: Option<i64>,
    /// Whether it records.
    pub recording: bool,
    /// Bytes its recordings take.
    pub disk_bytes: u64,
}

/// Every stream and camera, by name.
pub(super) async fn statuses(app: &App) -> Result<Vec<StreamStatus>, Response> {
    let streams = stream_keys::list(&app.db).await.map_err(internal)?;
    let cameras = sources::list(&app.db).await.map_err(internal)?;
    let recording: HashMap<String, bool> = crate::dvr::settings::all(&app.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(name, s)| (name, s.enabled))
        .collect();
    let disk = crate::dvr::disk_use(&app.db).await.map_err(internal)?;
    let peer = |name: &str| -> Option<String> {
        let e = app.stream(name)?;
        let state = e.hub.state();
        let peer = match &*state.borrow() {
            crate::hub::PublishState::Live { peer, .. } => Some(peer.clone()),
            crate::hub::PublishState::Idle => None,
        };
        peer
    };
    let status = |name: String, kind: &'static str, source: String, detail: String| {
        let peer = peer(&name);
        StreamStatus {
            live: peer.is_some(),
            bitrate: peer
                .is_some()
                .then(|| app.metrics.ingest_bitrate.with_label_values(&[&name]).get()),
            source: peer.filter(|_| kind == "stream").unwrap_or(source),
            recording: recording.get(&name).copied().unwrap_or(false),
            disk_bytes: disk.get(&name).copied().unwrap_or(0).max(0) as u64,
            detail,
            kind,
            name,
        }
    };
    let mut out: Vec<StreamStatus> = streams
        .into_iter()
        .map(|s| status(s.name, "stream", "no publisher".into(), String::new()))
        .collect();
    out.extend(cameras.into_iter().map(|c| {
        let detail = if c.last_error.is_empty() {
            c.state.clone()
        } else {
            format!("{}: {}", c.state, c.last_error)
        };
        let url = c.display_url();
        status(c.name, "camera", url, detail)
    }));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn card(s: StreamStatus) -> pages::StreamCard {
    pages::StreamCard {
        bitrate: s
            .bitrate
            .map_or_else(String::new, |b| format!("{:.2} Mbit/s", b as f64 / 1e6)),
        disk: bytesize::ByteSize::b(s.disk_bytes).to_string(),
        name: s.name,
        kind: s.kind,
        live: s.live,
        source: s.source,
        detail: s.detail,
        recording: s.recording,
    }
}

/// `GET /admin` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DashboardQuery {
    welcome: Option<String>,
}

/// `GET /admin`: the dashboard.
pub async fn dashboard(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let shell = match shell(&app, &v, &s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cards = match statuses(&app).await {
        Ok(c) => c.into_iter().map(card).collect(),
        Err(r) => return r,
    };
    let notice = q.welcome.map(|_| {
        "Setup is complete. Streams that are live appear here and in the viewer portal.".to_string()
    });
    page(StatusCode::OK, pages::dashboard(shell, cards, notice))
}

/// `GET /admin/account`.
pub async fn account(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    match shell(&app, &v, &s).await {
        Ok(shell) => page(StatusCode::OK, pages::account(shell, None, None)),
        Err(r) => r,
    }
}

/// The password form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    current: String,
    new: String,
    again: String,
}

/// `POST /admin/account/password`: checks the current password and the new one's
/// strength, stores it, and signs out every other session of the user.
pub async fn change_password(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<PasswordForm>,
) -> Response {
    let shell = match shell(&app, &v, &s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if f.new != f.again {
        let msg = "The two new passwords differ. Nothing was changed.".to_string();
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::account(shell, Some(msg), None),
        );
    }
    let appliance = shell.appliance.clone();
    match users::change_password(&app.db, &s.user, &f.current, &f.new, &[&appliance]).await {
        Ok(()) => {
            let ended = sessions::end_others(&app.db, &s.user, &s.token)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "ending other sessions failed");
                    0
                });
            audit(&app, &s.user.name, &v, "user.password", &s.user.name).await;
            let msg = format!("Password changed. {ended} other session(s) signed out.");
            page(StatusCode::OK, pages::account(shell, None, Some(msg)))
        }
        Err(users::UserError::BadCredentials) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::account(
                shell,
                Some("The current password is wrong. Nothing was changed.".into()),
                None,
            ),
        ),
        Err(users::UserError::WeakPassword(why)) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::account(shell, Some(format!("New password refused: {why}.")), None),
        ),
        Err(e) => internal(e),
    }
}

/// `GET /admin/audit`: the newest 500 entries.
pub async fn audit_log(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let shell = match shell(&app, &v, &s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows = match db::audit_log(&app.db, 500).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let rows = rows
        .into_iter()
        .map(|e| pages::AuditRow {
            at: super::iso_ms(e.at.saturating_mul(1000)),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
            client: e.client,
        })
        .collect();
    page(StatusCode::OK, pages::audit(shell, rows))
}

/// `GET /api/session`: `{"user": NAME}`.
pub async fn api_session(Extension(s): Extension<Signed>) -> Response {
    Json(serde_json::json!({ "user": s.user.name })).into_response()
}

/// `GET /api/streams`: every stream and camera, as [`StreamStatus`] objects by name.
pub async fn api_streams(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    match statuses(&app).await {
        Ok(all) => Json(all).into_response(),
        Err(r) => r,
    }
}
