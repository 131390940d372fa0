//! Remote access over WireGuard and the admin zone: the admin page and the JSON API (the
//! operations are [`crate::manage::vpn`]'s).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /api/vpn` | | [`vpn::View`] |
//! | `PUT /api/vpn` | [`vpn::Change`] | [`vpn::View`] |
//! | `POST /api/vpn/peers` | `{name, public_key?}` | 201 [`vpn::Issued`] (its private key, once) |
//! | `PUT /api/vpn/peers/{id}` | `{enabled}` | [`vpn::Peer`] |
//! | `POST /api/vpn/peers/{id}/rekey` | | [`vpn::Issued`] |
//! | `DELETE /api/vpn/peers/{id}` | | 204 |
//! | `PUT /api/vpn/admin-networks` | `{networks: ["192.168.1.0/24", …]}` | [`vpn::View`] |
//! | `GET /admin/vpn` | | the page |
//! | `POST /admin/vpn` | the settings' form | the page |
//! | `POST /admin/vpn/peers` | `name`, `public_key` | the page, with the peer's QR code and file |
//! | `POST /admin/vpn/peers/{id}/enable`, `…/disable`, `…/rekey`, `…/remove` | | the page |
//! | `POST /admin/vpn/admin-networks` | `networks` | the page |
//!
//! Refusals: 422 (bad settings, name, key, or networks that would lock the asker out),
//! 409 (a name or key another peer has), 404 (no such peer), 503 (no network helper: a
//! developer's machine).

use super::visitor::{Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::manage::vpn::{self, Change, Issued};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

/// [`super::api::answer`] of an operation's result.
fn answer<T: serde::Serialize>(
    status: StatusCode,
    r: Result<T, crate::manage::Refused>,
) -> Response {
    super::api::answer(status, r.map_err(Refusal::from))
}

/// `GET /api/vpn`.
pub async fn get(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    let interfaces = app.interfaces.borrow().clone();
    answer(StatusCode::OK, app.vpn.view(&interfaces).await)
}

/// `PUT /api/vpn`: changes the settings (turning the VPN on the first time makes them).
pub async fn put(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<Change>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    answer(
        StatusCode::OK,
        app.vpn.set(ops.actor(), b, &interfaces).await,
    )
}

/// `POST /api/vpn/peers`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    /// Its name.
    name: String,
    /// Its own public key, when it made its own key pair.
    #[serde(default)]
    public_key: Option<String>,
}

/// `POST /api/vpn/peers`: adds a peer; its configuration (with its private key) is in
/// this answer only.
pub async fn add_peer(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<NewPeer>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let r = app
        .vpn
        .add_peer(ops.actor(), &b.name, b.public_key.as_deref(), &interfaces)
        .await;
    no_store(answer(StatusCode::CREATED, r))
}

/// An answer with a private key in it: no cache keeps it.
fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `PUT /api/vpn/peers/{id}`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerChange {
    /// Whether it may connect.
    enabled: bool,
}

/// `PUT /api/vpn/peers/{id}`: enables or disables a peer.
pub async fn put_peer(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
    b: Result<Json<PeerChange>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    answer(
        StatusCode::OK,
        app.vpn.set_enabled(ops.actor(), id, b.enabled).await,
    )
}

/// `POST /api/vpn/peers/{id}/rekey`: a new key pair for the peer.
pub async fn rekey(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    no_store(answer(
        StatusCode::OK,
        app.vpn.rekey(ops.actor(), id, &interfaces).await,
    ))
}

/// `DELETE /api/vpn/peers/{id}`.
pub async fn delete_peer(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    match app.vpn.remove(ops.actor(), id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `PUT /api/vpn/admin-networks`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Networks {
    /// Networks (`192.168.1.0/24`) or addresses; none: the connected networks.
    networks: Vec<String>,
}

/// `PUT /api/vpn/admin-networks`: narrows who may open the admin pages.
pub async fn put_admin_networks(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<Networks>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let r = app
        .vpn
        .set_admin_networks(ops.actor(), &b.networks, Some(v.client), &interfaces)
        .await;
    answer(StatusCode::OK, r)
}

/// Bytes as people read them (`1.2 MB`).
fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().si().to_string()
}

async fn render(
    app: &App,
    v: &Visitor,
    s: &Signed,
    status: StatusCode,
    outcome: Result<Option<String>, String>,
    issued: Option<Issued>,
) -> Response {
    let shell = match super::admin::shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let interfaces = app.interfaces.borrow().clone();
    let view = match app.vpn.view(&interfaces).await {
        Ok(v) => v,
        Err(r) => return super::api::refused(Refusal::from(r)),
    };
    let set = view.settings.clone();
    let mut facts = Vec::new();
    if let Some(k) = &view.public_key {
        facts.push(("The box's public key".to_string(), k.clone()));
    }
    if !view.own_addresses.is_empty() {
        let urls: Vec<String> = view
            .own_addresses
            .iter()
            .map(|a| match a {
                std::net::IpAddr::V4(a) => format!("https://{a}/"),
                std::net::IpAddr::V6(a) => format!("https://[{a}]/"),
            })
            .collect();
        facts.push(("Admin pages over the VPN".to_string(), urls.join("  ")));
    }
    if let Some(e) = &view.endpoint {
        facts.push(("Peers connect to".to_string(), e.clone()));
    }
    let joined = |nets: &[ipnet::IpNet]| {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let peers = view
        .peers
        .iter()
        .map(|p| streambox_web::vpn::PeerRow {
            id: p.peer.id,
            name: p.peer.name.clone(),
            addresses: format!("{}, {}", p.peer.address4, p.peer.address6),
            enabled: p.peer.enabled,
            handshake: p.latest_handshake.clone().unwrap_or_else(|| "never".into()),
            endpoint: p.endpoint.clone().unwrap_or_else(|| "—".into()),
            traffic: format!("{} in, {} out", bytes(p.rx_bytes), bytes(p.tx_bytes)),
        })
        .collect();
    let (error, notice) = match outcome {
        Ok(n) => (None, n),
        Err(e) => (Some(e), None),
    };
    let page = streambox_web::vpn::VpnPage {
        enabled: set.as_ref().is_some_and(|s| s.enabled),
        port: set
            .as_ref()
            .map_or(vpn::DEFAULT_PORT, |s| s.port)
            .to_string(),
        subnet4: set
            .as_ref()
            .map(|s| s.subnet4.to_string())
            .unwrap_or_default(),
        subnet6: set
            .as_ref()
            .map(|s| s.subnet6.to_string())
            .unwrap_or_default(),
        endpoint: set
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .unwrap_or_default(),
        facts,
        forwarding: view.forwarding.clone(),
        peers,
        issued: issued.map(|i| streambox_web::vpn::IssuedBox {
            name: i.peer.name,
            file_name: i.file_name,
            config: i.config,
            qr_svg: i.qr_svg,
        }),
        admin_networks: joined(&view.admin_networks),
        connected: joined(&view.connected),
        error,
        notice,
    };
    // Never cached (visitor::page): the page may carry a peer's private key.
    super::visitor::page(status, streambox_web::vpn::page(shell, page))
}

/// `GET /admin/vpn`.
pub async fn page_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    render(&app, &v, &s, StatusCode::OK, Ok(None), None).await
}

/// The page after an operation: its notice, or the refusal and its status.
async fn after<T>(
    app: &App,
    v: &Visitor,
    s: &Signed,
    r: Result<T, crate::manage::Refused>,
    notice: impl FnOnce(&T) -> String,
) -> Response {
    match r {
        Ok(t) => {
            let n = notice(&t);
            render(app, v, s, StatusCode::OK, Ok(Some(n)), None).await
        }
        Err(r) => {
            let (status, m) = super::network::shown(r);
            render(app, v, s, status, Err(m), None).await
        }
    }
}

/// The settings' form.
#[derive(Debug, Deserialize)]
pub struct SettingsFields {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    port: String,
    #[serde(default)]
    subnet4: String,
    #[serde(default)]
    subnet6: String,
    #[serde(default)]
    endpoint: String,
}

/// `POST /admin/vpn`.
pub async fn post_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<SettingsFields>,
) -> Response {
    let port = match f.port.trim() {
        "" => None,
        t => match super::network::parsed::<u16>("UDP port", t) {
            Ok(p) => Some(p),
            Err(m) => {
                return render(&app, &v, &s, StatusCode::UNPROCESSABLE_ENTITY, Err(m), None).await
            }
        },
    };
    let filled = |t: &str| Some(t.trim().to_string()).filter(|t| !t.is_empty());
    let change = Change {
        enabled: Some(f.enabled.is_some()),
        port,
        subnet4: filled(&f.subnet4),
        subnet6: filled(&f.subnet6),
        endpoint: Some(f.endpoint.clone()),
    };
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let r = app.vpn.set(ops.actor(), change, &interfaces).await;
    after(&app, &v, &s, r, |view| {
        match view.settings.as_ref().filter(|s| s.enabled) {
            Some(s) => format!("Remote access is on, on UDP port {}.", s.port),
            None => "Remote access is off.".into(),
        }
    })
    .await
}

/// The new peer's form.
#[derive(Debug, Deserialize)]
pub struct PeerFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    public_key: String,
}

/// `POST /admin/vpn/peers`: the page with the new peer's QR code and file.
pub async fn add_peer_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<PeerFields>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let key = Some(f.public_key.as_str()).filter(|k| !k.trim().is_empty());
    let r = app
        .vpn
        .add_peer(ops.actor(), &f.name, key, &interfaces)
        .await;
    issued_page(&app, &v, &s, r).await
}

async fn issued_page(
    app: &App,
    v: &Visitor,
    s: &Signed,
    r: Result<Issued, crate::manage::Refused>,
) -> Response {
    match r {
        Ok(i) => {
            let n = format!("{} may connect now.", i.peer.name);
            render(app, v, s, StatusCode::OK, Ok(Some(n)), Some(i)).await
        }
        Err(r) => {
            let (status, m) = super::network::shown(r);
            render(app, v, s, status, Err(m), None).await
        }
    }
}

/// `POST /admin/vpn/peers/{id}/enable`.
pub async fn enable_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    toggle(&app, &v, &s, id, true).await
}

/// `POST /admin/vpn/peers/{id}/disable`.
pub async fn disable_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    toggle(&app, &v, &s, id, false).await
}

async fn toggle(app: &App, v: &Visitor, s: &Signed, id: i64, enabled: bool) -> Response {
    let ops = super::ops(app, v, s);
    let r = app.vpn.set_enabled(ops.actor(), id, enabled).await;
    after(app, v, s, r, |p| {
        if enabled {
            format!("{} may connect again.", p.name)
        } else {
            format!("{} can no longer connect.", p.name)
        }
    })
    .await
}

/// `POST /admin/vpn/peers/{id}/rekey`: the page with the peer's new QR code and file.
pub async fn rekey_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let r = app.vpn.rekey(ops.actor(), id, &interfaces).await;
    issued_page(&app, &v, &s, r).await
}

/// `POST /admin/vpn/peers/{id}/remove`.
pub async fn remove_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Path(id): Path<i64>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let r = app.vpn.remove(ops.actor(), id).await;
    after(&app, &v, &s, r, |()| "The peer was removed.".to_string()).await
}

/// The admin networks' form.
#[derive(Debug, Deserialize)]
pub struct NetworksFields {
    #[serde(default)]
    networks: String,
}

/// `POST /admin/vpn/admin-networks`.
pub async fn admin_networks_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<NetworksFields>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    let nets: Vec<String> = f.networks.split_whitespace().map(str::to_string).collect();
    let r = app
        .vpn
        .set_admin_networks(ops.actor(), &nets, Some(v.client), &interfaces)
        .await;
    after(&app, &v, &s, r, |view| {
        if view.admin_networks.is_empty() {
            "The admin pages answer on every local network and the VPN.".to_string()
        } else {
            "The admin pages answer only on those networks and the VPN.".to_string()
        }
    })
    .await
}
