//! Who is asking, for every page and API route that is not public media: the client
//! address, the CSRF cookie and token, and the session; and the guards that admit a
//! request by its route's [`Access`].
//!
//! [`visitor`] runs first. It gives a browser its CSRF cookie, refuses a form post
//! whose token does not match (403) or whose body is over [`FORM_LIMIT`] (413), and
//! looks the session up. An `/api/` request may instead carry an API token
//! (`Authorization: Bearer sbx_…`, RFC 6750 §2.1): it needs no CSRF token, since a
//! browser never sends one on its own, and a bad one is refused with 401. [`guard`]
//! then admits or refuses by the route's class: during setup only `/setup` answers;
//! afterwards `/setup` is closed, pages under `/admin` need a session (else a redirect
//! to `/login`), and `/api` needs a session or a token (else 401).

use super::Access;
use crate::app::App;
use crate::auth::api_tokens::{self, Bearer};
use crate::auth::csrf;
use crate::auth::sessions::{self, Lookup};
use crate::auth::users::User;
use crate::setup::{self, Progress};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use streambox_web::admin;

/// The largest form body accepted, in bytes.
pub const FORM_LIMIT: usize = 64 * 1024;
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
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The peer's address (the socket's; no proxy headers are trusted).
    pub client: IpAddr,
    /// The CSRF token to put in this browser's forms.
    pub csrf: String,
    /// The session.
    pub session: SessionState,
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

/// A cookie for this appliance's pages: HttpOnly, SameSite=Strict, path `/`. `Secure`
/// is not set: the service serves plain HTTP only so far (there is no TLS listener).
pub fn cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

/// The first middleware of every non-public route (see the module docs).
pub async fn visitor(State(app): State<App>, jar: CookieJar, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let secret = match crate::db::secret(&app.db, "csrf_secret").await {
        Ok(s) => s,
        Err(e) => return super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (csrf_cookie, fresh_cookie) = match jar.get(csrf::COOKIE) {
        Some(c) if !c.value().is_empty() && c.value().len() <= 64 => (c.value().to_string(), false),
        _ => (csrf::new_cookie(), true),
    };
    let (mut parts, body) = req.into_parts();
    let api = parts.uri.path().starts_with("/api/");
    // Pages take only the session cookie; the API takes a token instead when given one.
    let token = match parts.headers.get(header::AUTHORIZATION) {
        Some(h) if api => match bearer(&app, h).await {
            Ok(b) => Some(b),
            Err(r) => return r,
        },
        _ => None,
    };
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let body = if unsafe_method {
        let bytes = match axum::body::to_bytes(body, FORM_LIMIT).await {
            Ok(b) => b,
            Err(_) => return refuse(api, StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE),
        };
        let field = || {
            parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| form_field(&bytes, csrf::FIELD))
        };
        // A CSRF token guards what a browser's cookies would do. An API call with a
        // token, or with no session cookie (which the API then refuses), carries none.
        let ok = token.is_some()
            || (api && jar.get(SESSION_COOKIE).is_none())
            || (!fresh_cookie && field().is_some_and(|f| csrf::check(&secret, &csrf_cookie, &f)));
        if !ok {
            tracing::info!(%client, path = %parts.uri.path(), "form refused: CSRF token missing or wrong");
            let why = if api { API_CSRF } else { STALE_FORM };
            return refuse(api, StatusCode::FORBIDDEN, why);
        }
        Body::from(bytes)
    } else {
        body
    };
    let session = match (token, jar.get(SESSION_COOKIE)) {
        (Some(b), _) => SessionState::Valid(Signed {
            user: b.user,
            via: Credential::Token {
                id: b.id,
                name: b.name,
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
    parts.extensions.insert(Visitor {
        client,
        csrf: csrf::token(&secret, &csrf_cookie),
        session,
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if fresh_cookie {
        (jar.add(cookie(csrf::COOKIE, csrf_cookie)), response).into_response()
    } else {
        response
    }
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
fn form_field(body: &Bytes, name: &str) -> Option<String> {
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

/// A viewer link that was checked: it grants `stream`, and pages it leads to keep
/// `/t/{token}` in front of their URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The stream it grants.
    pub stream: String,
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
/// token checked for the stream REST names and goes on as `/REST` with a [`Grant`];
/// a bad or expired link gets 403 saying so. Other requests pass untouched.
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
    let secret = crate::db::secret(&app.db, crate::auth::viewer::SECRET)
        .await
        .map_err(|e| super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let watch_page = rest
        .strip_prefix("watch/")
        .is_some_and(|s| !s.contains('/'));
    if let Err(e) = crate::auth::viewer::check(&secret, &stream, token, crate::db::unix_now()) {
        tracing::info!(stream = %stream, error = %e, "viewer link refused");
        return Err(refuse_viewer(watch_page, &stream, &e.to_string()));
    }
    let grant = Grant {
        stream,
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
/// a public stream is open to all; a private one needs a [`Grant`] for it from a link,
/// or a signed-in administrator. Live media served counts its client as a viewer
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
    let private = match crate::auth::viewer::is_private(&app.db, &stream).await {
        Ok(p) => p,
        Err(e) => return super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let admitted = !private
        || req
            .extensions()
            .get::<Grant>()
            .is_some_and(|g| g.stream == stream)
        || match jar.get(SESSION_COOKIE) {
            Some(c) => matches!(
                sessions::lookup(&app.db, c.value()).await,
                Ok(Lookup::Valid(_))
            ),
            None => false,
        };
    if !admitted {
        let watch_page = req.uri().path().trim_end_matches('/') == format!("/watch/{stream}");
        return refuse_viewer(
            watch_page,
            &stream,
            "open it through the link you were given",
        );
    }
    let path = req.uri().path();
    let live_media = path.starts_with("/live/") && !path.ends_with("/thumbnail.jpg");
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
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
