//! Who is asking, for every page and API route that is not public media: the client
//! address, the CSRF cookie and token, and the session; and the guards that admit a
//! request by its route's [`Access`].
//!
//! [`visitor`] runs first. It gives a browser a CSRF cookie minted by this appliance
//! (a planted one is replaced), looks the session up, and refuses a form post whose
//! token is not the one of its cookie and session (403; see [`csrf`]), whose body is
//! over [`FORM_LIMIT`] (413), or whose body does not arrive within `http.body_timeout`
//! (408). An `/api/` or `/metrics` request may instead carry an API token
//! (`Authorization: Bearer sbx_…`, RFC 6750 §2.1): it needs no CSRF token, since a
//! browser never sends one on its own, and a bad one is refused with 401. [`guard`]
//! then admits or refuses by the route's class: during setup only `/setup` answers;
//! afterwards `/setup` is closed, pages under `/admin` need a session (else a redirect
//! to `/login`), and `/api` (and `/metrics`) needs a session or a token (else 401); a
//! token of scope `metrics` opens `/metrics` only (else 403).
//!
//! Before all that, [`visitor`] refuses (403, logged) a client outside the admin zone:
//! the LAN and the VPN ([`crate::manage::vpn::Vpn::admits`]).
//!
//! Viewer routes have their own gate, [`viewer_gate`], after [`through_link`] has
//! checked any viewer link: both resolve the stream's name to its identity through the
//! registry's directory.

use super::Access;
use crate::app::App;
use crate::auth::api_tokens::{self, Bearer, Scope};
use crate::auth::csrf;
use crate::auth::sessions::{self, Lookup};
use crate::auth::users::User;
use crate::setup::{self, Progress};
use crate::streams::StreamUid;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use streambox_web::admin;

/// The largest form body accepted, in bytes (an upload route, [`super::UPLOADS`], takes
/// up to [`crate::backup::MAX_ARCHIVE_BYTES`]).
pub const FORM_LIMIT: usize = 64 * 1024;
/// How long an upload's body may take to arrive (a form's: `http.body_timeout`).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sb_session";

/// The session behind a request, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Signed in.
    Valid(Signed),
    /// The cookie named a session that has timed out.
    Expired,
    /// No session cookie, or an unknown one.
    None,
}

/// A signed-in administrator, and how they signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The administrator.
    pub user: User,
    /// The session or API token the request carried.
    pub via: Credential,
}

/// What a request was signed in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session: the cookie value (to sign out, or to keep on a password change).
    Session(String),
    /// An API token.
    Token {
        /// Its row id.
        id: i64,
        /// Its name.
        name: String,
        /// What it may do.
        scope: Scope,
    },
}

impl Signed {
    /// Who the audit log names: the user, and the token's name when one was used
    /// (`admin (token "backup")`).
    pub fn actor(&self) -> String {
        match &self.via {
            Credential::Session(_) => self.user.name.clone(),
            Credential::Token { name, .. } => format!("{} (token {name:?})", self.user.name),
        }
    }

    /// The session cookie value, when signed in by a browser session.
    pub fn session(&self) -> Option<&str> {
        match &self.via {
            Credential::Session(token) => Some(token),
            Credential::Token { .. } => None,
        }
    }
}

/// What [`visitor`] found out about a request; an extension for the handlers.
#[derive(Clone)]
pub struct Visitor {
    /// The peer's address (the socket's; no proxy headers are trusted).
    pub client: IpAddr,
    /// The CSRF token to put in this browser's forms.
    pub csrf: String,
    /// The session.
    pub session: SessionState,
    /// The CSRF secret, for a new cookie at sign-in ([`signed_in`]).
    csrf_secret: std::sync::Arc<[u8]>,
    /// Whether the request came over HTTPS: its cookies are then `Secure`.
    secure: bool,
}

impl std::fmt::Debug for Visitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitor")
            .field("client", &self.client)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Visitor {
    /// The signed-in administrator, if any.
    pub fn signed(&self) -> Option<&Signed> {
        match &self.session {
            SessionState::Valid(s) => Some(s),
            _ => None,
        }
    }
}

/// An HTML page with a status, never cached (pages carry CSRF tokens and private data).
pub fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

/// A JSON error `{"error": message}` with a status, for the API.
pub fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// A cookie for this appliance's pages: HttpOnly, SameSite=Strict, path `/`, and
/// `Secure` when `secure` (set on the HTTPS listener, so a browser never sends it over
/// plain HTTP; RFC 6265 §4.1.2.5).
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .build()
}

/// Where an API token is taken instead of the session cookie: the JSON API, and
/// `/metrics` (a scraper's metrics-scoped token).
fn takes_token(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// The first middleware of every non-public route (see the module docs).
pub async fn visitor(State(app): State<App>, jar: CookieJar, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
        // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: logs and the
        // audit log say `a.b.c.d`.
        .to_canonical();
    // The admin zone first: from elsewhere, nothing but a refusal (no cookie, no
    // session lookup).
    if !app.vpn.admits(client, &app.interfaces.borrow()) {
        tracing::info!(%client, path = %req.uri().path(), "admin request from outside the LAN and the VPN refused");
        let api = takes_token(req.uri().path());
        return if api {
            api_error(StatusCode::FORBIDDEN, OUTSIDE)
        } else {
            page(
                StatusCode::FORBIDDEN,
                admin::problem("Not from here", OUTSIDE, ("/", "The streams")),
            )
        };
    }
    let secret = match app.secrets.get(&app.db, "csrf_secret").await {
        Ok(s) => s,
        Err(e) => return super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // Only a cookie this appliance minted is taken; another gets a new one.
    let (csrf_cookie, fresh_cookie) = match jar.get(csrf::COOKIE) {
        Some(c) if c.value().len() <= 128 && csrf::minted(&secret, c.value()) => {
            (c.value().to_string(), false)
        }
        _ => (csrf::new_cookie(&secret), true),
    };
    let secure = req.extensions().get::<super::Scheme>() == Some(&super::Scheme::Https);
    let (mut parts, body) = req.into_parts();
    let api = parts.uri.path().starts_with("/api/");
    // Pages take only the session cookie; the API takes a token instead when given one.
    let token = match parts.headers.get(header::AUTHORIZATION) {
        Some(h) if takes_token(parts.uri.path()) => match bearer(&app, h).await {
            Ok(b) => Some(b),
            Err(r) => return r,
        },
        _ => None,
    };
    let session = match (&token, jar.get(SESSION_COOKIE)) {
        (Some(b), _) => SessionState::Valid(Signed {
            user: b.user.clone(),
            via: Credential::Token {
                id: b.id,
                name: b.name.clone(),
                scope: b.scope,
            },
        }),
        (None, None) => SessionState::None,
        (None, Some(c)) => match sessions::lookup(&app.db, c.value()).await {
            Ok(Lookup::Valid(user)) => SessionState::Valid(Signed {
                user,
                via: Credential::Session(c.value().to_string()),
            }),
            Ok(Lookup::Expired) => SessionState::Expired,
            Ok(Lookup::Unknown) => SessionState::None,
            Err(e) => return super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    };
    // The token of a signed-in browser is bound to its session.
    let bound = match &session {
        SessionState::Valid(s) => s.session().unwrap_or(""),
        _ => "",
    }
    .to_string();
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    // A CSRF token guards what a browser's cookies would do. An API call with a token,
    // or with no session cookie (which the API then refuses), carries none.
    let csrf_refusal = |field: Option<String>| {
        let ok = token.is_some()
            || (api && jar.get(SESSION_COOKIE).is_none())
            || (!fresh_cookie
                && field.is_some_and(|f| csrf::check(&secret, &csrf_cookie, &bound, &f)));
        (!ok).then(|| {
            tracing::info!(%client, path = %parts.uri.path(), "form refused: CSRF token missing or wrong");
            refuse(api, StatusCode::FORBIDDEN, if api { API_CSRF } else { STALE_FORM })
        })
    };
    let header_token = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query_token = || {
        parts
            .uri
            .query()
            .and_then(|q| form_field(q.as_bytes(), csrf::FIELD))
    };
    let streamed = super::STREAMED.contains(&parts.uri.path());
    let body = if unsafe_method && streamed {
        // A body too large to hold: the token comes in the header or the URL.
        if let Some(refused) = csrf_refusal(header_token.clone().or_else(query_token)) {
            return refused;
        }
        body
    } else if unsafe_method {
        let upload = super::UPLOADS.contains(&parts.uri.path());
        let (limit, most) = if upload {
            (UPLOAD_TIMEOUT, crate::backup::MAX_ARCHIVE_BYTES)
        } else {
            (
                Duration::from_secs_f64(app.cfg.http.body_timeout),
                FORM_LIMIT,
            )
        };
        let bytes = match tokio::time::timeout(limit, axum::body::to_bytes(body, most)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return refuse(api, StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE),
            Err(_) => {
                app.metrics
                    .connection_timeouts
                    .with_label_values(&["http", "body"])
                    .inc();
                tracing::info!(%client, path = %parts.uri.path(), "request body too slow; closing");
                let mut r = refuse(api, StatusCode::REQUEST_TIMEOUT, SLOW_BODY);
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        };
        let field = header_token
            .clone()
            // A form with a file: the body is multipart, the token in the URL.
            .or_else(|| upload.then(query_token).flatten())
            .or_else(|| form_field(&bytes, csrf::FIELD));
        if let Some(refused) = csrf_refusal(field) {
            return refused;
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(Visitor {
        client,
        csrf: csrf::token(&secret, &csrf_cookie, &bound),
        session,
        csrf_secret: secret,
        secure,
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if fresh_cookie {
        (jar.add(cookie(csrf::COOKIE, csrf_cookie, secure)), response).into_response()
    } else {
        response
    }
}

/// The cookies of a browser that has just signed in: its session, and a new CSRF cookie
/// (tokens made before sign-in stop working).
pub fn signed_in(jar: CookieJar, v: &Visitor, session: String) -> CookieJar {
    jar.add(cookie(SESSION_COOKIE, session, v.secure))
        .add(cookie(
            csrf::COOKIE,
            csrf::new_cookie(&v.csrf_secret),
            v.secure,
        ))
}

/// The valid API token of an `Authorization` header, or the 401 for a header that is
/// not `Bearer` with a valid token (RFC 6750 §3: with `WWW-Authenticate`).
async fn bearer(app: &App, h: &HeaderValue) -> Result<Bearer, Response> {
    let unauthorized = |message: &str| {
        let mut r = api_error(StatusCode::UNAUTHORIZED, message);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"streambox\""),
        );
        r
    };
    let value = h.to_str().unwrap_or("");
    let Some((scheme, presented)) = value.split_once(' ') else {
        return Err(unauthorized("use Authorization: Bearer with an API token"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized("use Authorization: Bearer with an API token"));
    }
    match api_tokens::lookup(&app.db, presented.trim()).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => {
            tracing::info!("API token refused: unknown or revoked");
            Err(unauthorized(
                "the API token is not valid: it was revoked, or it is mistyped",
            ))
        }
        Err(e) => Err(super::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

const TOO_LARGE: &str =
    "That form was larger than this appliance accepts (64 KiB). Nothing was changed.";
const API_CSRF: &str = "With a session cookie, a write needs the CSRF token from GET /api/session in X-CSRF-Token (or use an API token). Nothing was changed.";
const STALE_FORM: &str = "This form had expired, or it was sent from another site. Nothing was changed: go back, reload the page and try again.";
const SLOW_BODY: &str = "The request's body came too slowly. Nothing was changed.";
const METRICS_ONLY: &str = "This token may only read /metrics.";
const OUTSIDE: &str = "The admin pages and the API answer only on this box's local network and over its VPN. The streams' pages are open as usual.";

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        return api_error(status, message);
    }
    page(
        status,
        admin::problem(
            "The form was refused",
            message,
            ("/admin", "Back to the appliance"),
        ),
    )
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Admits a request to a route of class `access` (see the module docs). Runs after
/// [`visitor`]; for `Admin` and `Api` routes it adds the [`Signed`] extension the
/// handlers take.
pub async fn guard(
    State((app, access)): State<(App, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let done = match setup::progress(&app.db).await {
        Ok(p) => p == Progress::Done,
        Err(e) => return super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(v) = req.extensions().get::<Visitor>().cloned() else {
        // Only a router built without `visitor` gets here: refuse rather than guess.
        return super::error(StatusCode::INTERNAL_SERVER_ERROR, "no visitor context");
    };
    match access {
        Access::Public | Access::Viewer => {}
        Access::Setup if done => {
            return if req.method() == Method::GET {
                Redirect::to("/admin").into_response()
            } else {
                page(
                    StatusCode::CONFLICT,
                    admin::problem(
                        "Setup is complete",
                        "This appliance is set up already; the wizard runs again only after a factory reset (streambox reset --factory).",
                        ("/admin", "Go to the dashboard"),
                    ),
                )
            };
        }
        Access::Setup => {}
        Access::SignIn if !done => return Redirect::to("/setup").into_response(),
        Access::SignIn => {}
        Access::Admin if !done => return Redirect::to("/setup").into_response(),
        Access::Admin => match v.session {
            SessionState::Valid(s) => {
                req.extensions_mut().insert(s);
            }
            state => {
                let next_path = req.uri().path();
                let mut to = format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(next_path.as_bytes()).collect::<String>()
                );
                if state == SessionState::Expired {
                    to.push_str("&expired=1");
                }
                return Redirect::to(&to).into_response();
            }
        },
        Access::Api if !done => {
            return api_error(StatusCode::SERVICE_UNAVAILABLE, "setup is not complete");
        }
        Access::Api => {
            match v.session {
                SessionState::Valid(Signed {
                    via:
                        Credential::Token {
                            scope: Scope::Metrics,
                            ..
                        },
                    ..
                }) if req.uri().path() != "/metrics" => {
                    return api_error(StatusCode::FORBIDDEN, METRICS_ONLY);
                }
                SessionState::Valid(s) => {
                    req.extensions_mut().insert(s);
                }
                SessionState::Expired => {
                    return api_error(
                        StatusCode::UNAUTHORIZED,
                        "the session has expired; sign in again",
                    )
                }
                SessionState::None => return api_error(
                    StatusCode::UNAUTHORIZED,
                    "sign in first: a session cookie, or Authorization: Bearer with an API token",
                ),
            }
        }
    }
    next.run(req).await
}

/// A viewer link that was checked: it grants one stream (by identity), and pages it
/// leads to keep `/t/{token}` in front of their URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The stream it grants.
    pub stream: StreamUid,
    /// The link's id.
    pub link: i64,
    /// The link token, for the URLs of the page.
    pub token: String,
}

/// The stream a viewer path names: `/watch/S…`, `/live/S/…`, `/dvr/S/…`, percent-decoded
/// as the router's `Path` extractor decodes it (else `/live/%6Cobby/` would pass the gate
/// as another name than the handler serves). `None` for other paths, and for a segment
/// that does not decode (the handler refuses those too).
fn viewed_stream(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next()? {
        "watch" | "live" | "dvr" => {
            let raw = parts.next().filter(|s| !s.is_empty())?;
            percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        }
        _ => None,
    }
}

/// Runs before routing: a request through a viewer link, `/t/{token}/REST`, has its
/// token checked for the stream REST names (by that stream's identity, and the link
/// must be open: not revoked, not expired) and goes on as `/REST` with a [`Grant`]; a
/// bad link gets 403 saying why, a name that is no stream 404. Other requests pass
/// untouched.
pub async fn through_link(State(app): State<App>, mut req: Request) -> Result<Request, Response> {
    let Some(rest) = req.uri().path().strip_prefix("/t/") else {
        return Ok(req);
    };
    let Some((token, rest)) = rest.split_once('/') else {
        return Err(super::error(StatusCode::NOT_FOUND, "no such link"));
    };
    let Some(stream) = viewed_stream(rest) else {
        return Err(super::error(
            StatusCode::NOT_FOUND,
            "links lead to /watch, /live or /dvr",
        ));
    };
    let dir = app.registry.directory();
    let Some(named) = dir.by_name(&stream) else {
        return Err(no_stream(&stream));
    };
    let secret = app
        .secrets
        .get(&app.db, crate::auth::viewer::SECRET)
        .await
        .map_err(|e| super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let watch_page = is_watch_page(rest);
    let now = crate::db::unix_now();
    let checked = crate::auth::viewer::check(&secret, &named.uid, token, now).and_then(|id| {
        if dir.link_opens(id, &named.uid, now) {
            Ok(id)
        } else {
            Err(crate::auth::viewer::LinkError::Revoked)
        }
    });
    let link = match checked {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(stream = %stream, error = %e, "viewer link refused");
            count_key_refusal(&app, rest);
            return Err(refuse_viewer(watch_page, &stream, &e.to_string()));
        }
    };
    let grant = Grant {
        stream: named.uid.clone(),
        link,
        token: token.to_string(),
    };
    let mut uri = format!("/{rest}");
    if let Some(q) = req.uri().query() {
        uri.push('?');
        uri.push_str(q);
    }
    *req.uri_mut() = uri
        .parse()
        .map_err(|_| super::error(StatusCode::BAD_REQUEST, "bad link path"))?;
    req.extensions_mut().insert(grant);
    Ok(req)
}

/// Whether the browser of `jar` has a signed-in administrator's session (the viewer
/// gate's own test).
pub(super) async fn has_admin_session(app: &App, jar: &CookieJar) -> bool {
    match jar.get(SESSION_COOKIE) {
        Some(c) => matches!(
            sessions::lookup(&app.db, c.value()).await,
            Ok(Lookup::Valid(_))
        ),
        None => false,
    }
}

/// Whether `path` (with or without its leading `/`) is a content key's or the ClearKey
/// license server's, `/live/NAME/keys/FILE`.
fn is_key_path(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    parts.next() == Some("live")
        && parts.next().is_some()
        && parts.next() == Some("keys")
        && parts.next().is_some()
        && parts.next().is_none()
}

/// Counts a refused request for a content key (`streambox_key_requests_total`).
fn count_key_refusal(app: &App, path: &str) {
    if is_key_path(path) {
        app.metrics
            .key_requests
            .with_label_values(&["refused"])
            .inc();
    }
}

/// Whether `path` (with or without its leading `/`) is a stream's watch page,
/// `/watch/NAME`, rather than media or state under it.
fn is_watch_page(path: &str) -> bool {
    path.trim_start_matches('/')
        .strip_prefix("watch/")
        .is_some_and(|s| !s.trim_end_matches('/').contains('/'))
}

/// The 404 for a name that is no stream or camera (now).
fn no_stream(stream: &str) -> Response {
    super::error(StatusCode::NOT_FOUND, format!("no stream named {stream:?}"))
}

fn refuse_viewer(watch_page: bool, stream: &str, why: &str) -> Response {
    if watch_page {
        page(
            StatusCode::FORBIDDEN,
            admin::problem(
                "This stream is private",
                &format!("\u{201c}{stream}\u{201d} plays only through a link from the appliance's administrator: {why}."),
                ("/", "See the public streams"),
            ),
        )
    } else {
        super::error(
            StatusCode::FORBIDDEN,
            format!("stream {stream:?} is private: {why}"),
        )
    }
}

/// The guard of viewer routes (`/watch/{stream}`, `/live/{stream}/…`, `/dvr/{stream}/…`):
/// a name that is no stream now gets 404, whatever was once under it; a public stream is
/// open to all; a private one needs a [`Grant`] for its identity from a link, or a
/// signed-in administrator. Live media served counts its client as a viewer
/// ([`crate::viewers`]).
pub async fn viewer_gate(
    State(app): State<App>,
    jar: CookieJar,
    req: Request,
    next: Next,
) -> Response {
    let Some(stream) = viewed_stream(req.uri().path()) else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if is_key_path(req.uri().path()) {
        // Content keys: a few per viewer; a client asking for many is slowed down.
        if let Some(Err(wait)) = client.map(|c| app.key_limit.check(c)) {
            app.metrics
                .key_requests
                .with_label_values(&["limited"])
                .inc();
            let mut r = super::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many key requests from this address; try again shortly",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            return r;
        }
    }
    let Some(named) = app.registry.directory().by_name(&stream).cloned() else {
        if is_watch_page(req.uri().path()) {
            return page(
                StatusCode::NOT_FOUND,
                streambox_web::portal::no_such_stream(&stream),
            );
        }
        return no_stream(&stream);
    };
    let admitted = !named.private
        || req
            .extensions()
            .get::<Grant>()
            .is_some_and(|g| g.stream == named.uid)
        || has_admin_session(&app, &jar).await;
    if !admitted {
        count_key_refusal(&app, req.uri().path());
        let watch_page = is_watch_page(req.uri().path());
        return refuse_viewer(
            watch_page,
            &stream,
            "open it through the link you were given",
        );
    }
    let path = req.uri().path();
    let live_media = path.starts_with("/live/") && !path.ends_with("/thumbnail.jpg");
    let agent = req.headers().get(header::USER_AGENT).cloned();
    let response = next.run(req).await;
    if let (true, Some(client), true) = (live_media, client, response.status().is_success()) {
        if let Some(e) = app.stream(&stream) {
            let agent = agent.as_ref().map_or(&[][..], HeaderValue::as_bytes);
            e.viewers.seen(client, agent, std::time::Instant::now());
        }
    }
    response
}
