//! The network settings: the admin page and the JSON API (the operations are
//! [`crate::manage::network`]'s).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /admin/network` | | the page: each interface now and its settings, the trial |
//! | `POST /admin/network` | one interface's form | 303 to the page, with the trial |
//! | `POST /admin/network/confirm` | | the page, confirmed |
//! | `POST /admin/network/cancel` | | the page, cancelled |
//! | `POST /admin/network/hostname` | `hostname` | the page, renamed |
//! | `GET /api/network` | | [`NetworkView`]: configured, live, the trial |
//! | `PUT /api/network` | `{wired: [Wired…], confirm_within?}` | 202 [`TrialView`] |
//! | `POST /api/network/confirm` | | how the trial ended: confirmed |
//! | `POST /api/network/cancel` | | how the trial ended: cancelled |
//! | `PUT /api/network/hostname` | `{hostname}` | [`NameView`] |
//! | `PUT /api/network/ntp` | `{servers: [..]}` | [`timesync::InUse`] |
//! | `POST /admin/network/ntp` | `servers` | the page, set |
//! | `GET /api/network/registration` | | [`registration::View`] |
//! | `PUT /api/network/registration` | [`registration::Settings`] | [`registration::View`] |
//! | `DELETE /api/network/registration` | | [`registration::View`], off |
//! | `POST /admin/network/registration` | the form | the page, registered |
//! | `POST /admin/network/registration/off` | | the page, off |
//!
//! A `PUT` changes only the interfaces it names. Refusals: 422 (settings refused, an
//! unknown interface or one configured by hand), 409 (a change already on trial; a
//! confirmation with none on trial, which says how the last one ended), 503 (no netplan
//! here: a developer's machine). A rename is not a trial: 422 for a name that is not
//! one DNS label or is the name already.

use super::visitor::{api_error, Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::manage::network::{Ended, Trial};
use crate::manage::registration;
use crate::system::netplan::{Configured, Ipv4, Ipv6, Wired};
use crate::system::network::{self, DefaultRoute, Interface};
use crate::system::timesync;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

/// A trial as the API shows it.
#[derive(Debug, Serialize)]
pub struct TrialView {
    /// The trial.
    #[serde(flatten)]
    pub trial: Trial,
    /// When it started, ISO 8601 UTC.
    pub started: String,
    /// When it reverts unless confirmed, ISO 8601 UTC.
    pub deadline: String,
    /// Seconds left to confirm it.
    pub seconds_left: i64,
    /// Where to open the admin pages to confirm it: the new static addresses, and the
    /// box's mDNS name (addresses from DHCP or SLAAC are the network's to give).
    pub open: Vec<String>,
}

/// The box's name.
#[derive(Debug, Serialize)]
pub struct NameView {
    /// The host name (one DNS label).
    pub hostname: String,
    /// The name it answers to over mDNS (RFC 6762), `HOSTNAME.local`; `None` when the
    /// host name is not a single label (a developer's machine).
    pub mdns_name: Option<String>,
}

impl NameView {
    fn now() -> NameView {
        let hostname = network::host_name();
        NameView {
            mdns_name: network::mdns_name(&hostname),
            hostname,
        }
    }
}

/// `GET /api/network`'s answer.
#[derive(Debug, Serialize)]
pub struct NetworkView {
    /// The box's name.
    #[serde(flatten)]
    pub name: NameView,
    /// What netplan has configured; `None` where it cannot be read (see
    /// `unavailable`).
    pub configured: Option<Configured>,
    /// Why the configuration cannot be read or changed here, if it cannot.
    pub unavailable: Option<String>,
    /// The network interfaces the kernel has (loopback left out).
    pub links: Vec<String>,
    /// Each link's state now (`up, 1000 Mbit/s, full duplex`), by name.
    pub link_states: std::collections::BTreeMap<String, String>,
    /// The addresses they have now.
    pub interfaces: Vec<Interface>,
    /// The DNS servers in use now.
    pub dns_in_use: Vec<std::net::IpAddr>,
    /// Each address's origin and lifetimes now (where the kernel tells them).
    pub address_details: Vec<AddressNow>,
    /// The NTP servers set and in use (`None` where timesyncd cannot be asked).
    pub ntp: Option<timesync::InUse>,
    /// The default routes now.
    pub routes: Vec<DefaultRoute>,
    /// The change on trial, if any.
    pub trial: Option<TrialView>,
    /// How the last trial ended, if one did since the service started.
    pub last: Option<Ended>,
}

/// Where the admin pages answer over HTTPS (or HTTP without it) at `host`.
fn admin_url(app: &App, host: &str) -> String {
    match (app.cfg.http.tls_listen, app.cfg.http.listen) {
        (Some(tls), _) if tls.port() == 443 => format!("https://{host}/"),
        (Some(tls), _) => format!("https://{host}:{}/", tls.port()),
        (None, web) if web.port() == 80 => format!("http://{host}/"),
        (None, web) => format!("http://{host}:{}/", web.port()),
    }
}

fn trial_view(app: &App, trial: Trial) -> TrialView {
    let mut open = Vec::new();
    for w in &trial.proposed {
        if let Ipv4::Static { address, .. } = w.ipv4 {
            open.push(admin_url(app, &address.to_string()));
        }
        if let Ipv6::Static { address, .. } = w.ipv6 {
            open.push(admin_url(app, &format!("[{address}]")));
        }
    }
    if let Some(name) = network::mdns_name(&network::host_name()) {
        open.push(admin_url(app, &name));
    }
    let now = crate::manage::now_ms();
    TrialView {
        started: super::iso_ms(trial.started_ms),
        deadline: super::iso_ms(trial.deadline_ms),
        seconds_left: ((trial.deadline_ms - now) / 1000).max(0),
        open,
        trial,
    }
}

/// The network now, as `GET /api/network` shows it.
struct Live {
    links: Vec<String>,
    states: Vec<String>,
    routes: Vec<DefaultRoute>,
    dns: Vec<std::net::IpAddr>,
    details: Vec<AddressNow>,
}

/// One address's origin and lifetimes now, by interface.
#[derive(Debug, Serialize)]
pub struct AddressNow {
    /// The interface.
    pub interface: String,
    /// The address, where it came from, and its lifetimes.
    #[serde(flatten)]
    pub detail: network::AddressDetail,
}

/// The kernel's links and their states, the default routes and the DNS servers in use,
/// read on a blocking thread (`/sys`, `/proc`, `/run`); `None` if that thread failed.
async fn live() -> Option<Live> {
    tokio::task::spawn_blocking(|| {
        let links = network::links();
        let index: Vec<(u32, String)> = links
            .iter()
            .chain(std::iter::once(&"lo".to_string()))
            .filter_map(|l| Some((network::link_index(l)?, l.clone())))
            .collect();
        let details = network::address_details()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| {
                let interface = index.iter().find(|(i, _)| *i == d.index)?.1.clone();
                (interface != "lo").then_some(AddressNow {
                    interface,
                    detail: d,
                })
            })
            .collect();
        Live {
            details,
            states: links.iter().map(|l| network::link_state(l)).collect(),
            links,
            routes: network::default_routes(),
            dns: network::dns_in_use(),
        }
    })
    .await
    .ok()
}

/// `GET /api/network`.
pub async fn get(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    let (configured, unavailable) = match app.network.configured().await {
        Ok(c) => (Some(c), None),
        Err(crate::manage::Refused::Unavailable(m)) => (None, Some(m)),
        Err(e) => {
            tracing::warn!(error = %e, "reading the network configuration failed");
            (None, Some(e.to_string()))
        }
    };
    let Some(live) = live().await else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the network failed",
        );
    };
    let interfaces = app.interfaces.borrow().clone();
    let (trial, last) = app.network.trial();
    Json(NetworkView {
        name: NameView::now(),
        configured,
        unavailable,
        link_states: live.links.iter().cloned().zip(live.states).collect(),
        links: live.links,
        interfaces: interfaces.into_iter().filter(|i| !i.loopback).collect(),
        routes: live.routes,
        dns_in_use: live.dns,
        address_details: live.details,
        ntp: timesync::in_use().await.ok(),
        trial: trial.map(|t| trial_view(&app, t)),
        last,
    })
    .into_response()
}

/// `PUT /api/network`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    /// The interfaces to change.
    wired: Vec<Wired>,
    /// Seconds to confirm within (10-600); the configured default when absent.
    #[serde(default)]
    confirm_within: Option<u32>,
}

/// `PUT /api/network`: puts the settings on trial; 202 with the trial.
pub async fn put(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<PutBody>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    match app
        .network
        .propose(ops.actor(), b.wired, b.confirm_within)
        .await
    {
        Ok(t) => (StatusCode::ACCEPTED, Json(trial_view(&app, t))).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `PUT /api/network/hostname`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// The new name.
    hostname: String,
}

/// `PUT /api/network/hostname`: renames the box; the name now.
pub async fn put_hostname(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<NameBody>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    match app.network.set_hostname(ops.actor(), &b.hostname).await {
        Ok(()) => Json(NameView::now()).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `PUT /api/network/ntp`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtpBody {
    /// The servers (none: timesyncd's defaults).
    servers: Vec<String>,
}

/// `PUT /api/network/ntp`: sets the NTP servers; what timesyncd uses then.
pub async fn put_ntp(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<NtpBody>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    match app.network.set_ntp(ops.actor(), b.servers).await {
        Ok(()) => Json(timesync::in_use().await.unwrap_or_default()).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// The NTP form: servers, space-separated.
#[derive(Debug, Default, Deserialize)]
pub struct NtpFields {
    #[serde(default)]
    pub(super) servers: String,
}

impl NtpFields {
    /// The servers typed.
    pub(super) fn list(&self) -> Vec<String> {
        self.servers
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// `POST /admin/network/ntp`: sets the NTP servers.
pub async fn ntp_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<NtpFields>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    match app.network.set_ntp(ops.actor(), f.list()).await {
        Ok(()) => {
            let notice = Some("The NTP servers are set.".to_string());
            render(&app, &v, &s, StatusCode::OK, None, notice, Typed::Nothing).await
        }
        Err(r) => {
            let (status, m) = shown(r);
            render(&app, &v, &s, status, Some(m), None, Typed::Ntp(&f.servers)).await
        }
    }
}

/// The NTP section's values: the servers set (or as typed), and what is in use.
pub(super) async fn ntp_box(typed: Typed<'_>) -> streambox_web::network::NtpBox {
    let now = timesync::in_use().await;
    let servers = match (typed, &now) {
        (Typed::Ntp(t), _) => t.to_string(),
        (_, Ok(n)) => n.system.join(" "),
        (_, Err(_)) => String::new(),
    };
    let in_use = match now {
        Ok(n) => {
            let from = if !n.system.is_empty() {
                "the servers set here"
            } else if !n.link.is_empty() {
                "the servers DHCP gave"
            } else {
                "the distribution's fallback servers"
            };
            match n.server.as_str() {
                "" => format!("from {from}; no server answered yet"),
                s => format!("{s}, from {from}"),
            }
        }
        Err(e) => e,
    };
    streambox_web::network::NtpBox { servers, in_use }
}

/// `GET /api/network/registration`.
pub async fn get_registration(
    State(app): State<App>,
    Extension(_s): Extension<Signed>,
) -> Response {
    match app.registration.view().await {
        Ok(v) => Json(v).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `PUT /api/network/registration`: registers with the directory now, and from then on;
/// 422 (nothing saved) for bad settings, a directory that cannot be reached or one that
/// refuses the token.
pub async fn put_registration(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<registration::Settings>, JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, &s);
    let interfaces = app.interfaces.borrow().clone();
    match app.registration.set(ops.actor(), b, &interfaces).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `DELETE /api/network/registration`: stops registering.
pub async fn delete_registration(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    match app.registration.clear(ops.actor()).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// `POST /api/network/confirm`: the settings on trial stay.
pub async fn confirm(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    finish(&app, &v, &s, true).await
}

/// `POST /api/network/cancel`: the previous settings come back now.
pub async fn cancel(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    finish(&app, &v, &s, false).await
}

/// Ends the trial (`keep`: confirmed, else cancelled): the outcome, or the refusal.
async fn finish(app: &App, v: &Visitor, s: &Signed, keep: bool) -> Response {
    let ops = super::ops(app, v, s);
    let done = if keep {
        app.network.confirm(ops.actor()).await
    } else {
        app.network.cancel(ops.actor()).await
    };
    match done {
        Ok(e) => Json(e).into_response(),
        Err(r) => super::api::refused(Refusal::from(r)),
    }
}

/// The form on `/admin/network`: one interface's settings, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct NicFields {
    pub(super) interface: String,
    #[serde(default)]
    ipv4_mode: String,
    #[serde(default)]
    ipv4_address: String,
    #[serde(default)]
    ipv4_prefix: String,
    #[serde(default)]
    ipv4_gateway: String,
    #[serde(default)]
    ipv6_mode: String,
    #[serde(default)]
    ipv6_address: String,
    #[serde(default)]
    ipv6_prefix: String,
    #[serde(default)]
    ipv6_gateway: String,
    #[serde(default)]
    dns: String,
    #[serde(default)]
    search: String,
    #[serde(default)]
    pub(super) confirm_within: String,
}

/// `what` parsed, or a sentence saying it is not one.
pub(super) fn parsed<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{what}: {:?} is not valid", text.trim()))
}

/// An optional gateway: empty is none.
fn gateway<T: std::str::FromStr>(what: &str, text: &str) -> Result<Option<T>, String> {
    match text.trim() {
        "" => Ok(None),
        t => parsed(what, t).map(Some),
    }
}

impl NicFields {
    /// The settings typed, or what cannot be read in them.
    pub(super) fn wired(&self) -> Result<Wired, String> {
        let n = self.interface.trim();
        let ipv4 = match self.ipv4_mode.as_str() {
            "dhcp" => Ipv4::Dhcp,
            "off" => Ipv4::Off,
            "static" => Ipv4::Static {
                address: parsed(&format!("{n}: IPv4 address"), &self.ipv4_address)?,
                prefix: parsed(&format!("{n}: IPv4 prefix"), &self.ipv4_prefix)?,
                gateway: gateway(&format!("{n}: IPv4 gateway"), &self.ipv4_gateway)?,
            },
            m => return Err(format!("{n}: {m:?} is not an IPv4 mode")),
        };
        let ipv6 = match self.ipv6_mode.as_str() {
            "slaac" => Ipv6::Slaac,
            "dhcp" => Ipv6::Dhcp,
            "off" => Ipv6::Off,
            "static" => Ipv6::Static {
                address: parsed(&format!("{n}: IPv6 address"), &self.ipv6_address)?,
                prefix: parsed(&format!("{n}: IPv6 prefix"), &self.ipv6_prefix)?,
                gateway: gateway(&format!("{n}: IPv6 gateway"), &self.ipv6_gateway)?,
            },
            m => return Err(format!("{n}: {m:?} is not an IPv6 mode")),
        };
        Ok(Wired {
            interface: n.to_string(),
            ipv4,
            ipv6,
            dns: self
                .dns
                .split_whitespace()
                .map(|d| parsed(&format!("{n}: DNS server"), d))
                .collect::<Result<_, _>>()?,
            search: self.search.split_whitespace().map(str::to_string).collect(),
        })
    }

    /// The form's values for `w`.
    fn of(w: &Wired) -> streambox_web::network::NicForm {
        let mut f = streambox_web::network::NicForm {
            dns: w
                .dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            search: w.search.join(" "),
            ..Default::default()
        };
        let show = |g: Option<String>| g.unwrap_or_default();
        match &w.ipv4 {
            Ipv4::Dhcp => f.ipv4_mode = "dhcp".into(),
            Ipv4::Off => f.ipv4_mode = "off".into(),
            Ipv4::Static {
                address,
                prefix,
                gateway,
            } => {
                f.ipv4_mode = "static".into();
                f.ipv4_address = address.to_string();
                f.ipv4_prefix = prefix.to_string();
                f.ipv4_gateway = show(gateway.map(|g| g.to_string()));
            }
        }
        match &w.ipv6 {
            Ipv6::Slaac => f.ipv6_mode = "slaac".into(),
            Ipv6::Dhcp => f.ipv6_mode = "dhcp".into(),
            Ipv6::Off => f.ipv6_mode = "off".into(),
            Ipv6::Static {
                address,
                prefix,
                gateway,
            } => {
                f.ipv6_mode = "static".into();
                f.ipv6_address = address.to_string();
                f.ipv6_prefix = prefix.to_string();
                f.ipv6_gateway = show(gateway.map(|g| g.to_string()));
            }
        }
        f
    }

    /// The form's values as typed.
    fn echo(&self) -> streambox_web::network::NicForm {
        streambox_web::network::NicForm {
            ipv4_mode: self.ipv4_mode.clone(),
            ipv4_address: self.ipv4_address.clone(),
            ipv4_prefix: self.ipv4_prefix.clone(),
            ipv4_gateway: self.ipv4_gateway.clone(),
            ipv6_mode: self.ipv6_mode.clone(),
            ipv6_address: self.ipv6_address.clone(),
            ipv6_prefix: self.ipv6_prefix.clone(),
            ipv6_gateway: self.ipv6_gateway.clone(),
            dns: self.dns.clone(),
            search: self.search.clone(),
        }
    }
}

/// Each interface the kernel has, as the page shows it: its state now (addresses from
/// the kept-current [`App::interfaces`], routes and link read now) and its settings in
/// `configured` (or `typed`, when that interface's form was refused). Also the links'
/// names. `None` if the blocking read failed.
pub(super) async fn nics(
    app: &App,
    configured: &Configured,
    typed: Typed<'_>,
) -> Option<(Vec<String>, Vec<streambox_web::network::Nic>)> {
    let found = app.interfaces.borrow().clone();
    let (links, routes, states, details) = tokio::task::spawn_blocking(|| {
        let links = network::links();
        let states: Vec<String> = links.iter().map(|l| network::link_state(l)).collect();
        let details = network::address_details().unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading the addresses' origins failed");
            Vec::new()
        });
        (links, network::default_routes(), states, details)
    })
    .await
    .ok()?;
    let nics = links
        .iter()
        .zip(states)
        .map(|(name, link)| {
            let index = network::link_index(name);
            let now = found
                .iter()
                .filter(|i| &i.name == name)
                .flat_map(|i| i.addresses.iter())
                .map(|a| {
                    let d = details
                        .iter()
                        .find(|d| Some(d.index) == index && d.ip == a.ip);
                    described(a, d)
                })
                .collect();
            let routes = routes
                .iter()
                .filter(|r| &r.interface == name)
                .map(|r| r.gateway.map_or("on-link".into(), |g| format!("via {g}")))
                .collect();
            let by_hand = configured.by_hand(name).map(|b| b.yaml.clone());
            let (source, form) = match (&typed, configured.wired(name)) {
                (Typed::Nic(t), _) if t.interface.trim() == name => ("as typed".into(), t.echo()),
                (_, Some(w)) => ("streambox".into(), NicFields::of(w)),
                (_, None) if by_hand.is_some() => ("by hand".into(), Default::default()),
                (_, None) => (
                    "the image's default (DHCP; router advertisements and DHCPv6)".into(),
                    NicFields::of(&Wired {
                        interface: name.clone(),
                        ipv4: Ipv4::Dhcp,
                        ipv6: Ipv6::Dhcp,
                        dns: vec![],
                        search: vec![],
                    }),
                ),
            };
            streambox_web::network::Nic {
                name: name.clone(),
                now,
                routes,
                link,
                source,
                by_hand,
                form,
            }
        })
        .collect();
    Some((links, nics))
}

/// `192.0.2.5/24 (DHCP, valid 23 h 59 min)`: an address, with where it came from and
/// how long it stays when the kernel said (`detail`).
fn described(a: &network::Address, detail: Option<&network::AddressDetail>) -> String {
    use network::Origin;
    let Some(d) = detail else {
        return format!("{}/{}", a.ip, a.prefix);
    };
    let mut parts = vec![match d.origin {
        Origin::LinkLocal => "link-local",
        Origin::Static => "static",
        Origin::Dhcp => "DHCP",
        Origin::Dhcpv6 => "DHCPv6",
        Origin::Slaac => "router advertisement",
        Origin::Temporary => "temporary (privacy)",
    }
    .to_string()];
    if let Some(v) = d.valid_seconds {
        parts.push(format!("valid {}", lifetime(v)));
    }
    if d.deprecated {
        parts.push("deprecated".into());
    }
    if d.tentative {
        parts.push("being checked for duplicates".into());
    }
    format!("{}/{} ({})", a.ip, a.prefix, parts.join(", "))
}

/// A lifetime in seconds as people read it: `45 s`, `59 min`, `23 h 59 min`.
fn lifetime(s: u32) -> String {
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The banner of the change on trial, if any.
pub(super) fn banner(app: &App) -> Option<streambox_web::network::TrialBanner> {
    app.network.trial().0.map(|t| {
        let view = trial_view(app, t);
        streambox_web::network::TrialBanner {
            by: view.trial.by.clone(),
            deadline: view.deadline,
            seconds_left: view.seconds_left,
            changes: view.trial.proposed.iter().map(Wired::summary).collect(),
            open: view.open,
        }
    })
}

/// `GET /admin/network/live`: only each interface's state now, for the page's
/// `refresh.js` (no call to the helper).
pub async fn live_handler(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    match nics(&app, &Configured::default(), Typed::Nothing).await {
        Some((_, nics)) => {
            super::visitor::page(StatusCode::OK, streambox_web::network::live_page(nics))
        }
        None => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the network failed",
        ),
    }
}

/// A refused form, shown again as typed.
#[derive(Clone, Copy)]
pub(super) enum Typed<'a> {
    /// None.
    Nothing,
    /// An interface's settings.
    Nic(&'a NicFields),
    /// A name.
    Hostname(&'a str),
    /// The registration's settings.
    Registration(&'a RegistrationFields),
    /// NTP servers.
    Ntp(&'a str),
    /// Remote access, in the setup wizard.
    Vpn(&'a VpnFields),
}

/// The setup wizard's remote access form (step 3).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VpnFields {
    pub(super) enabled: Option<String>,
    pub(super) endpoint: String,
}

/// What the page shows: `error`/`notice`, and `typed` (a refused form) in place of the
/// settings.
async fn render(
    app: &App,
    v: &Visitor,
    s: &Signed,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
    typed: Typed<'_>,
) -> Response {
    let shell = match super::admin::shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (configured, unavailable) = match app.network.configured().await {
        Ok(c) => (c, None),
        Err(e) => (Configured::default(), Some(e.to_string())),
    };
    let Some((links, nics)) = nics(app, &configured, typed).await else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the network failed",
        );
    };
    let other = configured
        .by_hand
        .iter()
        .filter(|b| {
            // Match rules (the image's defaults) are said in each interface's section.
            let rule = b.section == "ethernets" && b.yaml.contains("match:");
            !links.contains(&b.id) && !rule
        })
        .map(|b| (b.id.clone(), b.section.clone(), b.yaml.clone()))
        .collect();
    let trial = banner(app);
    let name = NameView::now();
    let registration = match app.registration.view().await {
        Ok(r) => registration_box(r, typed),
        Err(e) => {
            tracing::warn!(error = %e, "reading the registration failed");
            Default::default()
        }
    };
    let dns_in_use = tokio::task::spawn_blocking(network::dns_in_use)
        .await
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let ntp = ntp_box(typed).await;
    let p = streambox_web::network::NetworkPage {
        ntp,
        dns_in_use,
        registration,
        hostname: name.hostname,
        mdns_name: name.mdns_name,
        hostname_typed: match typed {
            Typed::Hostname(h) => Some(h.to_string()),
            _ => None,
        },
        unavailable,
        trial,
        error,
        notice,
        nics,
        other,
        confirm_within: app.cfg.network.confirm_within,
    };
    super::visitor::page(status, streambox_web::network::page(shell, p))
}

/// `GET /admin/network`.
pub async fn page_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    render(&app, &v, &s, StatusCode::OK, None, None, Typed::Nothing).await
}

/// The message and status a refusal is shown with on the page.
pub(super) fn shown(r: crate::manage::Refused) -> (StatusCode, String) {
    let r = Refusal::from(r);
    let status = r.status();
    match r {
        Refusal::NotFound(m)
        | Refusal::Invalid(m)
        | Refusal::Conflict(m)
        | Refusal::Limited(m, _)
        | Refusal::Unavailable(m) => (status, m),
        Refusal::Failed(_) => (
            status,
            "the change failed; see the System page's log".into(),
        ),
    }
}

/// `POST /admin/network`: one interface's settings, on trial.
pub async fn post_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<NicFields>,
) -> Response {
    let within = match f.confirm_within.trim() {
        "" => None,
        t => match parsed::<u32>("Confirm within", t) {
            Ok(n) => Some(n),
            Err(m) => {
                return render(
                    &app,
                    &v,
                    &s,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(m),
                    None,
                    Typed::Nic(&f),
                )
                .await
            }
        },
    };
    let wired = match f.wired() {
        Ok(w) => w,
        Err(m) => {
            return render(
                &app,
                &v,
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(m),
                None,
                Typed::Nic(&f),
            )
            .await
        }
    };
    let ops = super::ops(&app, &v, &s);
    match app.network.propose(ops.actor(), vec![wired], within).await {
        Ok(_) => axum::response::Redirect::to("/admin/network").into_response(),
        Err(r) => {
            let (status, m) = shown(r);
            render(&app, &v, &s, status, Some(m), None, Typed::Nic(&f)).await
        }
    }
}

/// `POST /admin/network/confirm`.
pub async fn confirm_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    finish_page(&app, &v, &s, true).await
}

/// `POST /admin/network/cancel`.
pub async fn cancel_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    finish_page(&app, &v, &s, false).await
}

/// Ends the trial from the page (`keep`: confirmed, else cancelled).
async fn finish_page(app: &App, v: &Visitor, s: &Signed, keep: bool) -> Response {
    let ops = super::ops(app, v, s);
    let (done, notice) = if keep {
        let done = app.network.confirm(ops.actor()).await;
        (done, "Confirmed: the new settings stay.")
    } else {
        let done = app.network.cancel(ops.actor()).await;
        (done, "Cancelled: the previous settings are back.")
    };
    match done {
        Ok(_) => {
            let notice = Some(notice.into());
            render(app, v, s, StatusCode::OK, None, notice, Typed::Nothing).await
        }
        Err(r) => {
            let (status, m) = shown(r);
            render(app, v, s, status, Some(m), None, Typed::Nothing).await
        }
    }
}

/// The registration's part of the page: its state, and the form's values (as typed when
/// refused; the token is never shown).
fn registration_box(
    r: registration::View,
    typed: Typed<'_>,
) -> streambox_web::network::RegistrationBox {
    let last_ok = matches!(
        r.last.as_ref().map(|a| &a.outcome),
        Some(registration::Outcome::Accepted { .. })
    );
    let last = r.last.as_ref().map(|a| {
        let sent = if a.addresses.is_empty() {
            "no global IPv6 address".to_string()
        } else {
            a.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let how = match &a.outcome {
            registration::Outcome::Accepted { status, answer } => {
                format!("accepted ({status}) {answer}")
            }
            registration::Outcome::Refused { status, answer } => {
                format!("the directory refused the token ({status}) {answer}")
            }
            registration::Outcome::Failed { error, .. } => format!("failed: {error}"),
        };
        format!("{} ({}; sent {sent}): {}", a.at, a.reason, how.trim())
    });
    let (url, interval) = match typed {
        Typed::Registration(f) => (f.url.clone(), f.interval_seconds.clone()),
        _ => (
            r.url.clone().unwrap_or_default(),
            r.interval_seconds
                .unwrap_or(registration::DEFAULT_INTERVAL)
                .to_string(),
        ),
    };
    streambox_web::network::RegistrationBox {
        enabled: r.enabled,
        url,
        interval,
        ca: r.ca,
        last,
        last_ok,
        next: r.next,
    }
}

/// The registration form on `/admin/network`.
#[derive(Debug, Default, Deserialize)]
pub struct RegistrationFields {
    #[serde(default)]
    url: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    interval_seconds: String,
    #[serde(default)]
    ca_pem: String,
}

/// `POST /admin/network/registration`: registers with the directory now, and from
/// then on.
pub async fn registration_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<RegistrationFields>,
) -> Response {
    let refused = |status, m| (status, m);
    let outcome = match f.interval_seconds.trim() {
        "" => Ok(registration::DEFAULT_INTERVAL),
        t => parsed::<u32>("Register every", t),
    };
    let done = match outcome {
        Err(m) => Err(refused(StatusCode::UNPROCESSABLE_ENTITY, m)),
        Ok(interval_seconds) => {
            // Left empty, the token and certificates stay as saved; the token only for
            // the same directory, so a changed URL never receives the old token.
            let saved = app.registration.settings().await.ok().flatten();
            let same = saved.as_ref().filter(|s| s.url == f.url.trim());
            let token = match f.token.trim() {
                "" => same.map(|s| s.token.clone()).unwrap_or_default(),
                t => t.to_string(),
            };
            let ca_pem = match f.ca_pem.trim() {
                "" => saved.as_ref().and_then(|s| s.ca_pem.clone()),
                _ => Some(f.ca_pem.clone()),
            };
            let settings = registration::Settings {
                url: f.url.clone(),
                token,
                interval_seconds,
                ca_pem,
            };
            let ops = super::ops(&app, &v, &s);
            let interfaces = app.interfaces.borrow().clone();
            app.registration
                .set(ops.actor(), settings, &interfaces)
                .await
                .map_err(shown)
        }
    };
    match done {
        Ok(view) => {
            let notice = match view.last.map(|a| a.outcome) {
                Some(registration::Outcome::Accepted { .. }) => {
                    format!("Registered with {}.", f.url.trim())
                }
                _ => format!(
                    "Saved; the directory at {} did not accept the first registration, so the box tries again.",
                    f.url.trim()
                ),
            };
            render(
                &app,
                &v,
                &s,
                StatusCode::OK,
                None,
                Some(notice),
                Typed::Nothing,
            )
            .await
        }
        Err((status, m)) => {
            render(&app, &v, &s, status, Some(m), None, Typed::Registration(&f)).await
        }
    }
}

/// `POST /admin/network/registration/off`: stops registering.
pub async fn registration_off_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    match app.registration.clear(ops.actor()).await {
        Ok(_) => {
            let notice = Some("The box no longer registers its addresses.".to_string());
            render(&app, &v, &s, StatusCode::OK, None, notice, Typed::Nothing).await
        }
        Err(r) => {
            let (status, m) = shown(r);
            render(&app, &v, &s, status, Some(m), None, Typed::Nothing).await
        }
    }
}

/// The rename form on `/admin/network`.
#[derive(Debug, Deserialize)]
pub struct NameFields {
    #[serde(default)]
    pub(super) hostname: String,
}

/// `POST /admin/network/hostname`: renames the box.
pub async fn hostname_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    axum::Form(f): axum::Form<NameFields>,
) -> Response {
    let ops = super::ops(&app, &v, &s);
    let name = f.hostname.trim();
    match app.network.set_hostname(ops.actor(), name).await {
        Ok(()) => {
            let now = NameView::now();
            let notice = match &now.mdns_name {
                Some(m) => format!(
                    "The box is now called {}: open {}",
                    now.hostname,
                    admin_url(&app, m)
                ),
                None => format!("The box is now called {}.", now.hostname),
            };
            render(
                &app,
                &v,
                &s,
                StatusCode::OK,
                None,
                Some(notice),
                Typed::Nothing,
            )
            .await
        }
        Err(r) => {
            let (status, m) = shown(r);
            let typed = Typed::Hostname(&f.hostname);
            render(&app, &v, &s, status, Some(m), None, typed).await
        }
    }
}
