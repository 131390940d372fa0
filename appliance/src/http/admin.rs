//! Sign-in, sign-out and the admin pages ([`streambox_web::admin`]); the actions of the
//! account page, which the JSON API ([`super::api`]) shares.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /login`, `POST /login` | the sign-in form; rate-limited per client |
//! | `POST /logout` | ends the session |
//! | `GET /admin` | the dashboard |
//! | `GET /admin/account` | change the password; API tokens |
//! | `POST /admin/account/password` | `current`, `new`, `again` |
//! | `POST /admin/account/tokens` | make a token named `name`; shown once |
//! | `POST /admin/account/tokens/{id}/revoke` | revoke one |
//! | `GET /admin/audit` | the audit log |

use super::visitor::{self, page, Signed, Visitor, SESSION_COOKIE};
use super::Refusal;
use crate::app::App;
use crate::auth::{api_tokens, sessions, stream_keys, users};
use crate::db;
use crate::ingest::rtsp_pull::sources;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;
use std::collections::HashMap;
use streambox_web::admin::{self as pages, Shell};

pub(super) fn internal(e: impl std::fmt::Display) -> Response {
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

/// Where to go after sign-in: `next` when it is a path of this appliance, else
/// `/admin`. A path starts with one `/` and holds only printable ASCII other than `\`:
/// browsers drop tabs and newlines from URLs (`/\t/host` becomes `//host`, another
/// site) and read `\` as `/`, so anything else could lead off the appliance.
fn safe_next(next: &str) -> &str {
    let path = next.strip_prefix('/').is_some_and(|rest| {
        !rest.starts_with('/') && rest.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    });
    if path {
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

/// Checks a sign-in attempt against the per-client and per-account limits and the
/// stored hash; on success starts a session and returns its cookie value (for
/// [`visitor::signed_in`]).
pub(super) async fn sign_in(
    app: &App,
    v: &Visitor,
    headers: &HeaderMap,
    name: &str,
    password: &str,
) -> Result<String, (StatusCode, String)> {
    if let Err(r) = app.sign_in.attempt(v.client, name) {
        tracing::warn!(client = %v.client, refused = ?r, "sign-in rate limit reached");
        return Err((StatusCode::TOO_MANY_REQUESTS, r.message()));
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
            Ok(token)
        }
        Err(users::UserError::BadCredentials) => {
            app.sign_in.failed(name);
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
        Ok(session) => (
            visitor::signed_in(jar, &v, session),
            Redirect::to(safe_next(&f.next)),
        )
            .into_response(),
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
        if let Some(token) = s.session() {
            if let Err(e) = sessions::end(&app.db, token).await {
                return internal(e);
            }
        }
        audit(&app, &s.actor(), &v, "user.sign-out", &s.user.name).await;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/login?signed_out=1")).into_response()
}

/// A stream or camera as the dashboard and `GET /api/streams` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStatus {
    /// Stream name.
    pub name: String,
    /// `stream` (pushed) or `camera` (pulled over RTSP, or a capture device on the box).
    pub kind: &'static str,
    /// Whether it has a publisher now.
    pub live: bool,
    /// The publisher's address, the camera's URL (password masked), or `device ID`.
    pub source: String,
    /// A camera's state and last error; empty for streams.
    pub detail: String,
    /// Incoming bits per second while live.
    pub bitrate: Option<i64>,
    /// Viewers now: RTSP sessions and HLS/DASH players ([`crate::viewers`]).
    pub viewers: usize,
    /// When the current publish session began (ISO 8601 UTC), while live.
    pub live_since: Option<String>,
    /// Seconds since then, while live.
    pub uptime_secs: Option<u64>,
    /// Whether it records.
    pub recording: bool,
    /// Bytes its recordings take.
    pub disk_bytes: u64,
}

/// Every stream and camera, by name.
pub(super) async fn statuses(app: &App) -> Result<Vec<StreamStatus>, Response> {
    let streams = stream_keys::list(&app.db).await.map_err(internal)?;
    let cameras = sources::list(&app.db).await.map_err(internal)?;
    let recording: HashMap<crate::streams::StreamUid, bool> = crate::dvr::settings::all(&app.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(name, s)| (name, s.enabled))
        .collect();
    let disk = crate::dvr::disk_use(&app.db).await.map_err(internal)?;
    let dir = app.registry.directory();
    let now = (std::time::Instant::now(), std::time::SystemTime::now());
    // (publisher, live since, viewers) of a stream published to since start.
    let live = |name: &str| -> (Option<(String, std::time::SystemTime)>, usize) {
        let Some(e) = app.stream(name) else {
            return (None, 0);
        };
        let state = e.hub.state();
        let peer = match &*state.borrow() {
            crate::hub::PublishState::Live { peer, since, .. } => Some((peer.clone(), *since)),
            crate::hub::PublishState::Idle => None,
        };
        (peer, e.viewers.count(now.0))
    };
    let status = |name: String, kind: &'static str, source: String, detail: String| {
        let (peer, viewers) = live(&name);
        let uid = dir.by_name(&name).map(|n| n.uid.clone());
        let since = peer.as_ref().map(|p| p.1);
        let peer = peer.map(|p| p.0);
        StreamStatus {
            viewers,
            live_since: since.map(crate::packager::hls::iso8601),
            uptime_secs: since.map(|t| now.1.duration_since(t).unwrap_or_default().as_secs()),
            live: peer.is_some(),
            bitrate: peer
                .is_some()
                .then(|| app.metrics.ingest_bitrate.with_label_values(&[&name]).get()),
            source: peer.filter(|_| kind == "stream").unwrap_or(source),
            recording: uid
                .as_ref()
                .and_then(|u| recording.get(u))
                .copied()
                .unwrap_or(false),
            disk_bytes: uid
                .as_ref()
                .and_then(|u| disk.get(u))
                .copied()
                .unwrap_or(0)
                .max(0) as u64,
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
        let detail = if c.is_capture() {
            c.capture_state()
        } else if c.last_error.is_empty() {
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
        viewers: s.viewers,
        uptime: s.uptime_secs.map_or_else(String::new, |secs| {
            humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
        }),
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
    render_account(&app, &v, &s, pages::AccountView::default()).await
}

/// The account page with what the last post did in `view` (its tokens are filled in).
async fn render_account(
    app: &App,
    v: &Visitor,
    s: &Signed,
    mut view: pages::AccountView,
) -> Response {
    let shell = match shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    view.tokens = match api_tokens::list(&app.db, &s.user).await {
        Ok(rows) => rows
            .into_iter()
            .map(|t| pages::TokenItem {
                id: t.id,
                name: t.name,
                scope: t.scope,
                created: super::iso_ms(t.created_at.saturating_mul(1000)),
                last_used: t
                    .last_used
                    .map_or("never".into(), |at| super::iso_ms(at.saturating_mul(1000))),
            })
            .collect(),
        Err(e) => return internal(e),
    };
    let status = if view.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(status, pages::account(shell, view))
}

/// The account page showing a refusal, or a failure's response.
async fn account_refused(app: &App, v: &Visitor, s: &Signed, r: Refusal) -> Response {
    match r {
        Refusal::Failed(r) => r,
        Refusal::Invalid(m)
        | Refusal::Conflict(m)
        | Refusal::NotFound(m)
        | Refusal::Unavailable(m) => {
            let view = pages::AccountView {
                error: Some(m),
                ..Default::default()
            };
            render_account(app, v, s, view).await
        }
        Refusal::Limited(m, _) => {
            let view = pages::AccountView {
                error: Some(m),
                ..Default::default()
            };
            let mut r = render_account(app, v, s, view).await;
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r
        }
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

/// `POST /admin/account/password` (see [`set_password`]).
pub async fn change_password(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<PasswordForm>,
) -> Response {
    if f.new != f.again {
        let msg = "The two new passwords differ. Nothing was changed.";
        return account_refused(&app, &v, &s, Refusal::Invalid(msg.into())).await;
    }
    match set_password(&app, &v, &s, &f.current, &f.new).await {
        Ok(ended) => {
            let view = pages::AccountView {
                notice: Some(format!(
                    "Password changed. {ended} other session(s) signed out."
                )),
                ..Default::default()
            };
            render_account(&app, &v, &s, view).await
        }
        Err(r) => account_refused(&app, &v, &s, r).await,
    }
}

/// Checks `current` (counted against the sign-in limits: each try is a full password
/// hash) and the strength of `new`, stores `new`, and signs out every session of the
/// user but the one making the change; returns how many ended.
///
/// # Errors
/// [`Refusal::Invalid`] for a wrong current password or a weak new one;
/// [`Refusal::Limited`] past the limits.
pub(super) async fn set_password(
    app: &App,
    v: &Visitor,
    s: &Signed,
    current: &str,
    new: &str,
) -> Result<u64, Refusal> {
    let appliance = crate::setup::appliance_name(&app.db)
        .await
        .map_err(|e| Refusal::Failed(internal(e)))?;
    // A weak new password is refused before the current one is hashed: it costs no
    // attempt.
    if let Err(users::UserError::WeakPassword(why)) =
        users::check_strength(new, &s.user.name, &[&appliance])
    {
        return Err(Refusal::Invalid(format!("New password refused: {why}.")));
    }
    if let Err(r) = app.sign_in.attempt(v.client, &s.user.name) {
        tracing::warn!(client = %v.client, refused = ?r, "password check rate limit reached");
        return Err(Refusal::Limited(r.message(), r.wait()));
    }
    match users::change_password(&app.db, &s.user, current, new, &[&appliance]).await {
        Ok(()) => {
            let keep = s.session().unwrap_or("");
            let ended = sessions::end_others(&app.db, &s.user, keep)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "ending other sessions failed");
                    0
                });
            audit(app, &s.actor(), v, "user.password", &s.user.name).await;
            Ok(ended)
        }
        Err(users::UserError::BadCredentials) => {
            app.sign_in.failed(&s.user.name);
            Err(Refusal::Invalid(
                "The current password is wrong. Nothing was changed.".into(),
            ))
        }
        Err(users::UserError::WeakPassword(why)) => {
            Err(Refusal::Invalid(format!("New password refused: {why}.")))
        }
        Err(e) => Err(Refusal::Failed(internal(e))),
    }
}

/// The token form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    name: String,
    scope: String,
}

/// `POST /admin/account/tokens`: makes an API token and shows it once.
pub async fn create_token(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<TokenForm>,
) -> Response {
    let scope = if f.scope.is_empty() {
        "admin"
    } else {
        &f.scope
    };
    match make_token(&app, &v, &s, &f.name, scope).await {
        Ok((row, secret)) => {
            let view = pages::AccountView {
                new_token: Some((row.name, secret)),
                ..Default::default()
            };
            render_account(&app, &v, &s, view).await
        }
        Err(r) => account_refused(&app, &v, &s, r).await,
    }
}

/// `POST /admin/account/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<String>,
) -> Response {
    match end_token(&app, &v, &s, &id).await {
        Ok(name) => {
            let view = pages::AccountView {
                notice: Some(format!(
                    "Token \u{201c}{name}\u{201d} revoked; it no longer works."
                )),
                ..Default::default()
            };
            render_account(&app, &v, &s, view).await
        }
        Err(r) => account_refused(&app, &v, &s, r).await,
    }
}

fn token_refusal(e: api_tokens::TokenError) -> Refusal {
    use api_tokens::TokenError as E;
    match e {
        E::InvalidName(_) => Refusal::Invalid(format!("{e}.")),
        E::Exists(_) | E::TooMany => Refusal::Conflict(format!("{e}.")),
        E::NotFound => Refusal::NotFound(format!("{e}.")),
        E::Db(e) => Refusal::Failed(internal(e)),
    }
}

/// Makes API token `name` (trimmed) of `scope` (`admin` or `metrics`) for the
/// signed-in user; returns its row and the secret, to show once.
///
/// # Errors
/// [`Refusal::Invalid`] for a bad name or scope; [`Refusal::Conflict`] for a taken
/// name, or when the user holds [`api_tokens::MAX_PER_USER`] already.
pub(super) async fn make_token(
    app: &App,
    v: &Visitor,
    s: &Signed,
    name: &str,
    scope: &str,
) -> Result<(api_tokens::TokenRow, String), Refusal> {
    let Some(scope) = api_tokens::Scope::parse(scope) else {
        return Err(Refusal::Invalid(
            "A token's scope is admin or metrics.".into(),
        ));
    };
    let made = api_tokens::create(&app.db, &s.user, name.trim(), scope)
        .await
        .map_err(token_refusal)?;
    let detail = format!("{} ({})", made.0.name, scope.as_str());
    audit(app, &s.actor(), v, "token.add", &detail).await;
    Ok(made)
}

/// Revokes the signed-in user's API token `id` (decimal); returns its name.
///
/// # Errors
/// [`Refusal::NotFound`] when the user has no such token.
pub(super) async fn end_token(
    app: &App,
    v: &Visitor,
    s: &Signed,
    id: &str,
) -> Result<String, Refusal> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(Refusal::NotFound("no such token.".into()));
    };
    let name = api_tokens::revoke(&app.db, &s.user, id)
        .await
        .map_err(token_refusal)?;
    audit(app, &s.actor(), v, "token.revoke", &name).await;
    Ok(name)
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
