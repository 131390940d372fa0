//! The HTTP front end: one [`router`] for live media, recordings, the viewer portal,
//! the setup wizard, the admin pages and the JSON API ([`api`]), metrics and health.
//!
//! Every route is declared once in [`table`] with its [`Access`] class, and the router
//! is built from that table only, so [`routes`] (`streambox routes`) lists exactly what
//! the router serves, and the tests check every admin and API route against it.

// Handlers return early with the whole response a refusal is (`Result<_, Response>`);
// it is built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod admin;
pub mod api;
mod cameras;
mod dvr;
mod hardware;
mod live;
mod network;
mod portal;
mod serve;
mod setup;
mod streams;
mod system;
mod thumbnail;
pub mod visitor;
mod vpn;

pub use serve::{serve, serve_metrics, serve_tls, Scheme};

use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, map_request_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use std::collections::BTreeMap;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone: the portal's list, assets, metrics, health.
    Public,
    /// Viewers of one stream (`/watch`, `/live`, `/dvr`): anyone for a public stream; a
    /// link's grant or an administrator's session for a private one.
    Viewer,
    /// The setup wizard: only until setup is complete.
    Setup,
    /// Sign-in and sign-out: only after setup is complete.
    SignIn,
    /// Admin pages: a signed-in administrator, after setup.
    Admin,
    /// The JSON API: a signed-in administrator's session or API token, after setup
    /// (401/503 otherwise).
    Api,
}

impl Access {
    /// Lower-case name, as `streambox routes` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Viewer => "viewer",
            Access::Setup => "setup",
            Access::SignIn => "sign-in",
            Access::Admin => "admin",
            Access::Api => "api",
        }
    }
}

/// One route: method, path (axum syntax, `{param}`), and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: Method,
    /// The path pattern.
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
}

/// The routes, being declared.
#[derive(Default)]
struct Table {
    methods: BTreeMap<(Access, &'static str), MethodRouter<App>>,
    list: Vec<Route>,
}

impl Table {
    fn add(
        mut self,
        method: Method,
        access: Access,
        path: &'static str,
        mr: impl FnOnce(MethodRouter<App>) -> MethodRouter<App>,
    ) -> Self {
        let slot = self.methods.entry((access, path)).or_default();
        *slot = mr(std::mem::take(slot));
        self.list.push(Route {
            method,
            path,
            access,
        });
        self
    }

    fn get<H: Handler<T, App>, T: 'static>(self, access: Access, path: &'static str, h: H) -> Self {
        self.add(Method::GET, access, path, |m| m.get(h))
    }

    fn post<H: Handler<T, App>, T: 'static>(
        self,
        access: Access,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add(Method::POST, access, path, |m| m.post(h))
    }

    /// A `POST` whose body is a file ([`UPLOADS`]), up to
    /// [`crate::backup::MAX_ARCHIVE_BYTES`].
    fn upload<H: Handler<T, App>, T: 'static>(
        self,
        access: Access,
        path: &'static str,
        h: H,
    ) -> Self {
        debug_assert!(UPLOADS.contains(&path), "{path} is not in UPLOADS");
        self.add(Method::POST, access, path, |m| {
            m.post(h)
                .layer(DefaultBodyLimit::max(crate::backup::MAX_ARCHIVE_BYTES))
        })
    }

    /// A `POST` whose body streams to the handler ([`STREAMED`]), with no size limit
    /// of axum's (the handler sets its own).
    fn streamed<H: Handler<T, App>, T: 'static>(
        self,
        access: Access,
        path: &'static str,
        h: H,
    ) -> Self {
        debug_assert!(STREAMED.contains(&path), "{path} is not in STREAMED");
        self.add(Method::POST, access, path, |m| {
            m.post(h).layer(DefaultBodyLimit::disable())
        })
    }

    fn put<H: Handler<T, App>, T: 'static>(self, access: Access, path: &'static str, h: H) -> Self {
        self.add(Method::PUT, access, path, |m| m.put(h))
    }

    fn delete<H: Handler<T, App>, T: 'static>(
        self,
        access: Access,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add(Method::DELETE, access, path, |m| m.delete(h))
    }
}

/// The routes whose body is a file rather than a form: [`visitor::visitor`] reads up to
/// [`crate::backup::MAX_ARCHIVE_BYTES`] of them (within [`visitor::UPLOAD_TIMEOUT`]),
/// and takes their CSRF token from the query string too (`?csrf=`), since a browser
/// sends a form with a file as `multipart/form-data`.
pub const UPLOADS: [&str; 3] = [
    "/admin/system/restore",
    "/api/system/restore",
    "/setup/restore",
];

/// The routes whose body is streamed to the handler rather than read by
/// [`visitor::visitor`] first (an update bundle: hundreds of MB, written to the data
/// disk as it arrives). Their CSRF token must come in the `X-CSRF-Token` header or the
/// query string (`?csrf=`); the handler bounds the size and the time between chunks.
pub const STREAMED: [&str; 2] = ["/admin/system/update", "/api/system/update"];

/// Every route the service answers.
fn table() -> Table {
    use Access::*;
    Table::default()
        .get(Viewer, "/live/{stream}/thumbnail.jpg", thumbnail::live)
        .get(Viewer, "/live/{stream}/{file}", live::playlist)
        .get(Viewer, "/live/{stream}/keys/{file}", live::key)
        .post(Viewer, "/live/{stream}/keys/{file}", live::license)
        .get(Viewer, "/live/{stream}/{track}/{file}", live::media)
        .get(Viewer, "/dvr/{stream}/thumbnail.jpg", thumbnail::recorded)
        .get(Viewer, "/dvr/{stream}/recordings.json", dvr::recordings)
        .get(Viewer, "/dvr/{stream}/{file}", dvr::playlist)
        .get(
            Viewer,
            "/dvr/{stream}/files/{epoch}/{track}/{file}",
            dvr::file,
        )
        .get(Public, "/time", time)
        .get(Api, "/metrics", metrics)
        .get(Public, "/healthz", || async { "ok\n" })
        .get(Public, "/", portal::index)
        .get(Public, "/watch", portal::index)
        .get(Viewer, "/watch/{stream}", portal::watch)
        .get(Viewer, "/watch/{stream}/state", portal::state)
        .get(Public, "/assets/{*path}", portal::asset)
        .get(Setup, "/setup", setup::show)
        .post(Setup, "/setup/admin", setup::admin)
        .upload(Setup, "/setup/restore", setup::restore)
        .post(Setup, "/setup/login", setup::login)
        .post(Setup, "/setup/identity", setup::identity)
        .post(Setup, "/setup/network", setup::network)
        .post(Setup, "/setup/network/interface", setup::network_interface)
        .post(Setup, "/setup/network/confirm", setup::network_confirm)
        .post(Setup, "/setup/network/cancel", setup::network_cancel)
        .post(Setup, "/setup/network/hostname", setup::network_hostname)
        .post(Setup, "/setup/network/ntp", setup::network_ntp)
        .post(Setup, "/setup/network/vpn", setup::network_vpn)
        .post(Setup, "/setup/storage", setup::storage)
        .post(Setup, "/setup/stream", setup::stream)
        .post(Setup, "/setup/camera", setup::camera)
        .post(Setup, "/setup/finish", setup::finish)
        .get(SignIn, "/login", admin::login_form)
        .post(SignIn, "/login", admin::login)
        .post(SignIn, "/logout", admin::logout)
        .get(Admin, "/admin", admin::dashboard)
        .get(Admin, "/admin/streams", streams::list)
        .post(Admin, "/admin/streams", streams::create)
        .get(Admin, "/admin/streams/{stream}", streams::detail)
        .post(Admin, "/admin/streams/{stream}/key", streams::rotate_key)
        .post(
            Admin,
            "/admin/streams/{stream}/recording",
            streams::recording,
        )
        .post(Admin, "/admin/streams/{stream}/ladder", streams::ladder)
        .post(
            Admin,
            "/admin/streams/{stream}/visibility",
            streams::visibility,
        )
        .post(
            Admin,
            "/admin/streams/{stream}/protection",
            streams::protection,
        )
        .post(
            Admin,
            "/admin/streams/{stream}/protection/rotate",
            streams::rotate_content_key,
        )
        .post(Admin, "/admin/streams/{stream}/link", streams::link)
        .post(
            Admin,
            "/admin/streams/{stream}/links/{id}/revoke",
            streams::revoke_link,
        )
        .post(Admin, "/admin/streams/{stream}/rename", streams::rename)
        .post(Admin, "/admin/streams/{stream}/delete", streams::delete)
        .post(
            Admin,
            "/admin/streams/{stream}/camera",
            streams::camera_edit,
        )
        .post(Admin, "/admin/cameras", streams::camera_add)
        .get(Admin, "/admin/system", system::page_handler)
        .post(Admin, "/admin/system/backup", system::backup_download)
        .upload(Admin, "/admin/system/restore", system::restore_page)
        .streamed(Admin, "/admin/system/update", system::update_page)
        .post(
            Admin,
            "/admin/system/update/media",
            system::update_media_page,
        )
        .post(Admin, "/admin/system/reboot", system::reboot_page)
        .post(
            Admin,
            "/admin/system/reboot/cancel",
            system::cancel_reboot_page,
        )
        .get(Admin, "/admin/hardware", hardware::page_handler)
        .post(Admin, "/admin/hardware/capture", hardware::add_capture)
        .get(Admin, "/admin/network", network::page_handler)
        .get(Admin, "/admin/network/live", network::live_handler)
        .post(Admin, "/admin/network", network::post_handler)
        .post(Admin, "/admin/network/confirm", network::confirm_handler)
        .post(Admin, "/admin/network/cancel", network::cancel_handler)
        .post(Admin, "/admin/network/hostname", network::hostname_handler)
        .post(Admin, "/admin/network/ntp", network::ntp_handler)
        .post(
            Admin,
            "/admin/network/registration",
            network::registration_handler,
        )
        .post(
            Admin,
            "/admin/network/registration/off",
            network::registration_off_handler,
        )
        .get(Admin, "/admin/vpn", vpn::page_handler)
        .post(Admin, "/admin/vpn", vpn::post_handler)
        .post(Admin, "/admin/vpn/peers", vpn::add_peer_handler)
        .post(Admin, "/admin/vpn/peers/{id}/enable", vpn::enable_handler)
        .post(Admin, "/admin/vpn/peers/{id}/disable", vpn::disable_handler)
        .post(Admin, "/admin/vpn/peers/{id}/rekey", vpn::rekey_handler)
        .post(Admin, "/admin/vpn/peers/{id}/remove", vpn::remove_handler)
        .post(
            Admin,
            "/admin/vpn/admin-networks",
            vpn::admin_networks_handler,
        )
        .get(Admin, "/admin/account", admin::account)
        .post(Admin, "/admin/account/password", admin::change_password)
        .post(Admin, "/admin/account/tokens", admin::create_token)
        .post(
            Admin,
            "/admin/account/tokens/{id}/revoke",
            admin::revoke_token,
        )
        .get(Admin, "/admin/audit", admin::audit_log)
        .get(Api, "/api/session", api::session)
        .get(Api, "/api/streams", api::list)
        .post(Api, "/api/streams", api::create)
        .get(Api, "/api/streams/{stream}", api::detail)
        .delete(Api, "/api/streams/{stream}", api::delete)
        .post(Api, "/api/streams/{stream}/key", api::rotate_key)
        .put(Api, "/api/streams/{stream}/recording", api::recording)
        .put(Api, "/api/streams/{stream}/visibility", api::visibility)
        .put(Api, "/api/streams/{stream}/ladder", api::ladder)
        .put(Api, "/api/streams/{stream}/protection", api::protection)
        .post(
            Api,
            "/api/streams/{stream}/protection/rotate",
            api::rotate_content_key,
        )
        .post(Api, "/api/streams/{stream}/links", api::link)
        .get(Api, "/api/streams/{stream}/links", api::links)
        .delete(Api, "/api/streams/{stream}/links/{id}", api::revoke_link)
        .post(Api, "/api/streams/{stream}/rename", api::rename)
        .put(Api, "/api/streams/{stream}/camera", api::edit_camera)
        .post(Api, "/api/cameras", api::add_camera)
        .post(Api, "/api/cameras/test", api::test_camera)
        .post(Api, "/api/captures", api::add_capture)
        .put(Api, "/api/streams/{stream}/capture", api::edit_capture)
        .put(Api, "/api/account/password", api::password)
        .get(Api, "/api/tokens", api::tokens)
        .post(Api, "/api/tokens", api::create_token)
        .delete(Api, "/api/tokens/{id}", api::revoke_token)
        .get(Api, "/api/audit", api::audit)
        .get(Api, "/api/system", system::api)
        .post(Api, "/api/system/backup", system::backup_download)
        .upload(Api, "/api/system/restore", system::restore_api)
        .get(Api, "/api/system/update", system::update_status)
        .streamed(Api, "/api/system/update", system::update_api)
        .post(Api, "/api/system/update/media", system::update_media_api)
        .post(Api, "/api/system/reboot", system::reboot_api)
        .delete(Api, "/api/system/reboot", system::cancel_reboot_api)
        .get(Api, "/api/hardware", hardware::api)
        .get(Api, "/api/hardware/video/{id}/snapshot", hardware::snapshot)
        .get(Api, "/api/network", network::get)
        .put(Api, "/api/network", network::put)
        .post(Api, "/api/network/confirm", network::confirm)
        .post(Api, "/api/network/cancel", network::cancel)
        .put(Api, "/api/network/hostname", network::put_hostname)
        .put(Api, "/api/network/ntp", network::put_ntp)
        .get(Api, "/api/network/registration", network::get_registration)
        .put(Api, "/api/network/registration", network::put_registration)
        .delete(
            Api,
            "/api/network/registration",
            network::delete_registration,
        )
        .get(Api, "/api/vpn", vpn::get)
        .put(Api, "/api/vpn", vpn::put)
        .post(Api, "/api/vpn/peers", vpn::add_peer)
        .put(Api, "/api/vpn/peers/{id}", vpn::put_peer)
        .delete(Api, "/api/vpn/peers/{id}", vpn::delete_peer)
        .post(Api, "/api/vpn/peers/{id}/rekey", vpn::rekey)
        .put(Api, "/api/vpn/admin-networks", vpn::put_admin_networks)
}

/// The prefix of viewer links: `/t/{token}` before a viewer route
/// ([`visitor::through_link`], which runs before routing).
pub const LINK_PREFIX: &str = "/t/{token}/{*viewer_route}";

/// Every route, in declaration order, and the viewer link prefix.
pub fn routes() -> Vec<Route> {
    let mut all = table().list;
    all.push(Route {
        method: Method::GET,
        path: LINK_PREFIX,
        access: Access::Viewer,
    });
    all
}

/// Builds the whole HTTP application from [`table`] for a listener of `scheme`: public
/// and viewer routes with CORS (players on other origins fetch media), viewer routes
/// behind [`visitor::viewer_gate`]; the others behind [`visitor::visitor`] and the
/// [`visitor::guard`] of their class, without CORS. [`visitor::through_link`] runs
/// first, before routing.
///
/// When the service has an HTTPS listener (`http.tls_listen`), the plain listener's
/// router answers every route that is neither public nor a viewer's (setup, sign-in,
/// admin, API, `/metrics`) with [`to_https`]: passwords, session cookies and API tokens
/// travel only over TLS, while LAN players keep plain HTTP for media.
pub fn router(app: App, scheme: Scheme) -> Router {
    let https_port = match scheme {
        Scheme::Http => app.cfg.http.tls_listen.map(|a| a.port()),
        Scheme::Https => None,
    };
    let cors = CorsLayer::new()
        .allow_origin(Any)
        // POST: a DASH player's ClearKey license request, the only viewer POST.
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS, Method::POST])
        .allow_headers(Any)
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_TYPE, header::AGE]);
    let mut public = Router::new();
    let mut private = Router::new();
    for ((access, path), mr) in table().methods {
        if access == Access::Public {
            public = public.route(path, mr);
        } else if access == Access::Viewer {
            let gate = from_fn_with_state(app.clone(), visitor::viewer_gate);
            public = public.route(path, mr.route_layer(gate));
        } else if let Some(port) = https_port {
            let redirect = move |req: axum::extract::Request| async move { to_https(&req, port) };
            public = public.route(path, axum::routing::any(redirect));
        } else {
            let guard = from_fn_with_state((app.clone(), access), visitor::guard);
            private = private.route(path, mr.route_layer(guard));
        }
    }
    let private = private.layer(from_fn_with_state(app.clone(), visitor::visitor));
    let routed = public.layer(cors).merge(private).with_state(app.clone());
    // Viewer links are unwrapped before routing, so their relative URLs route as usual.
    let links = map_request_with_state(app, visitor::through_link);
    Router::new().fallback_service(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(security_headers))
            .layer(links)
            .service(routed),
    )
}

/// The redirect of a request on plain HTTP to the same URL over HTTPS on `port`: 308,
/// which keeps the method and body (RFC 9110 §15.4.9). The host is the request's
/// `Host` header without its port; a header that is not a plain host name or address
/// gets 400 rather than a redirect to a place the client named.
fn to_https(req: &axum::extract::Request, port: u16) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_of);
    let Some(host) = host else {
        return error(
            StatusCode::BAD_REQUEST,
            "this page is served over HTTPS only; open it with https://",
        );
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, v)],
            "this page is served over HTTPS only\n",
        )
            .into_response(),
        Err(_) => error(StatusCode::BAD_REQUEST, "bad request target"),
    }
}

/// The host of a `Host` header value (RFC 9110 §7.2) without its port: a name of
/// letters, digits, `-` and `.`, an IPv4 address, or a bracketed IPv6 address.
fn host_of(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        let v6 = &value[..=end];
        v6[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        v6
    } else {
        let h = value.split(':').next()?;
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        (!h.is_empty() && h.len() <= 253 && h.chars().all(plain)).then_some(h)?
    };
    let rest = &value[host.len()..];
    let port_ok = rest.is_empty()
        || rest.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    port_ok.then_some(host)
}

/// The content security policy of every page: only this appliance's own scripts,
/// styles, images and media (hls.js and dash.js make `blob:` media and workers), no
/// plugins, no `<base>`, forms only to here. Inline style attributes are allowed (the
/// recordings timeline places its ranges with them); inline scripts are not.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// Headers for every response: `X-Content-Type-Options: nosniff` and `Referrer-Policy:
/// no-referrer` (a viewer link's token is in its URL and must not leave in a Referer);
/// and for pages, [`CSP`] with `frame-ancestors`: the viewer's pages (the portal, a
/// watch page, through a link) may be framed, so a school can embed its stream in its
/// own site; every other page (setup, sign-in, admin) may not (`'none'`, and
/// `X-Frame-Options: DENY` for old browsers), against clickjacking. A [`STREAMED`]
/// upload's answer also carries `Connection: close`: it may come before the body was
/// read (a refusal), after which the connection cannot carry another request, and a
/// client must not try.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let framable = path == "/" || path.starts_with("/watch") || path.starts_with("/t/");
    let upload = req.method() == Method::POST && STREAMED.contains(&path);
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if upload {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        let (ancestors, frame) = if framable {
            ("frame-ancestors *", None)
        } else {
            ("frame-ancestors 'none'", Some("DENY"))
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{CSP}; {ancestors}")) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        if let Some(f) = frame {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(f));
        }
    }
    r
}

/// Why an admin action was not done. Pages show the message in the form they came
/// from; the API answers it as `{"error": message}` with [`Refusal::status`].
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No such stream, camera or token (404).
    NotFound(String),
    /// The input is wrong (422); nothing was changed.
    Invalid(String),
    /// The action conflicts with the current state (409): a taken name, a rename while
    /// live. Nothing was changed.
    Conflict(String),
    /// Too many attempts (429): the message, and how long until the next is allowed.
    Limited(String, std::time::Duration),
    /// Not possible on this machine (503); nothing was changed.
    Unavailable(String),
    /// The appliance itself failed (500); the response is built.
    Failed(Response),
}

impl Refusal {
    /// The HTTP status the API answers with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Limited(..) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a page says of it.
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::NotFound(m)
            | Refusal::Invalid(m)
            | Refusal::Conflict(m)
            | Refusal::Limited(m, _)
            | Refusal::Unavailable(m) => m.clone(),
            Refusal::Failed(_) => "the appliance failed to do it; its log says why".into(),
        }
    }
}

impl From<crate::manage::Refused> for Refusal {
    fn from(r: crate::manage::Refused) -> Refusal {
        use crate::manage::Refused as R;
        match r {
            R::NotFound(m) => Refusal::NotFound(m),
            R::Invalid(m) => Refusal::Invalid(m),
            R::Conflict(m) => Refusal::Conflict(m),
            R::Unavailable(m) => Refusal::Unavailable(m),
            R::Failed(e) => {
                tracing::error!(error = %e, "admin action failed");
                Refusal::Failed(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            }
        }
    }
}

/// The operations ([`crate::manage`]) of the signed-in `s`, from `v`'s address.
pub(crate) fn ops(app: &App, v: &visitor::Visitor, s: &visitor::Signed) -> crate::manage::Ops {
    crate::manage::Ops::in_service(
        app.db.clone(),
        app.cfg.clone(),
        app.registry.clone(),
        crate::manage::Actor {
            name: s.actor(),
            client: v.client.to_string(),
        },
    )
}

pub(crate) use crate::manage::iso_ms;

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

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn redirects_name_only_the_host_the_request_named() {
        assert_eq!(host_of("box.local"), Some("box.local"));
        assert_eq!(host_of("192.0.2.7:8080"), Some("192.0.2.7"));
        assert_eq!(host_of("[2001:db8::7]:80"), Some("[2001:db8::7]"));
        assert_eq!(host_of("[2001:db8::7]"), Some("[2001:db8::7]"));
        for bad in [
            "",
            ":80",
            "evil.example/x",
            "a b",
            "[not-v6]",
            "[::1",
            "box:",
            "box:80:80",
            "box:123456",
            "box@evil",
        ] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }
}
