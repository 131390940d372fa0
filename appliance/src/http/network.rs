//! The network settings: the admin page and the JSON API (the operations are
//! [`crate::manage::network`]'s).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /admin/network` | | the page: each interface now and its settings, the trial |
//! | `POST /admin/network` | one interface's form | 303 to the page, with the trial |
//! | `POST /admin/network/confirm` | | the page, confirmed |
//! | `POST /admin/network/cancel` | | the page, cancelled |
//! | `GET /api/network` | | [`NetworkView`]: configured, live, the trial |
//! | `PUT /api/network` | `{wired: [Wired…], confirm_within?}` | 202 [`TrialView`] |
//! | `POST /api/network/confirm` | | how the trial ended: confirmed |
//! | `POST /api/network/cancel` | | how the trial ended: cancelled |
//!
//! A `PUT` changes only the interfaces it names. Refusals: 422 (settings refused, an
//! unknown interface or one configured by hand), 409 (a change already on trial; a
//! confirmation with none on trial, which says how the last one ended), 503 (no netplan
//! here: a developer's machine).

use super::visitor::{api_error, Signed, Visitor};
use super::Refusal;
use crate::app::App;
use crate::manage::network::{Ended, Trial};
use crate::system::netplan::{Configured, Ipv4, Ipv6, Wired};
use crate::system::network::{self, DefaultRoute, Interface};
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

/// `GET /api/network`'s answer.
#[derive(Debug, Serialize)]
pub struct NetworkView {
    /// What netplan has configured; `None` where it cannot be read (see
    /// `unavailable`).
    pub configured: Option<Configured>,
    /// Why the configuration cannot be read or changed here, if it cannot.
    pub unavailable: Option<String>,
    /// The network interfaces the kernel has (loopback left out).
    pub links: Vec<String>,
    /// The addresses they have now.
    pub interfaces: Vec<Interface>,
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    TrialView {
        started: super::iso_ms(trial.started_ms),
        deadline: super::iso_ms(trial.deadline_ms),
        seconds_left: ((trial.deadline_ms - now) / 1000).max(0),
        open,
        trial,
    }
}

/// The kernel's interfaces, their addresses and the default routes now, read on a
/// blocking thread (`/sys`, `getifaddrs`, `/proc`); `None` if that thread failed.
async fn live() -> Option<(Vec<String>, Vec<Interface>, Vec<DefaultRoute>)> {
    tokio::task::spawn_blocking(|| {
        (
            network::links(),
            network::interfaces().unwrap_or_default(),
            network::default_routes(),
        )
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
    let Some((links, interfaces, routes)) = live().await else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the network failed",
        );
    };
    let (trial, last) = app.network.trial();
    Json(NetworkView {
        configured,
        unavailable,
        links,
        interfaces: interfaces.into_iter().filter(|i| !i.loopback).collect(),
        routes,
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
    let b = match b {
        Ok(Json(b)) => b,
        Err(e) => return api_error(e.status(), &e.body_text()),
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
    interface: String,
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
    confirm_within: String,
}

/// `what` parsed, or a sentence saying it is not one.
fn parsed<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, String> {
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
    fn wired(&self) -> Result<Wired, String> {
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

/// What the page shows: `error`/`notice`, and `typed` (an interface's refused form) in
/// place of its settings.
async fn render(
    app: &App,
    v: &Visitor,
    s: &Signed,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
    typed: Option<&NicFields>,
) -> Response {
    let shell = match super::admin::shell(app, v, s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (configured, unavailable) = match app.network.configured().await {
        Ok(c) => (c, None),
        Err(e) => (Configured::default(), Some(e.to_string())),
    };
    let Some((links, found, routes)) = live().await else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the network failed",
        );
    };
    let nics = links
        .iter()
        .map(|name| {
            let now = found
                .iter()
                .filter(|i| &i.name == name)
                .flat_map(|i| i.addresses.iter())
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect();
            let routes = routes
                .iter()
                .filter(|r| &r.interface == name)
                .map(|r| r.gateway.map_or("on-link".into(), |g| format!("via {g}")))
                .collect();
            let by_hand = configured.by_hand(name).map(|b| b.yaml.clone());
            let (source, form) = match (configured.wired(name), typed) {
                (_, Some(t)) if t.interface.trim() == name => ("as typed".into(), t.echo()),
                (Some(w), _) => ("streambox".into(), NicFields::of(w)),
                (None, _) if by_hand.is_some() => ("by hand".into(), Default::default()),
                (None, _) => (
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
                source,
                by_hand,
                form,
            }
        })
        .collect();
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
    let trial = app.network.trial().0.map(|t| {
        let view = trial_view(app, t);
        streambox_web::network::TrialBanner {
            by: view.trial.by.clone(),
            deadline: view.deadline,
            seconds_left: view.seconds_left,
            changes: view.trial.proposed.iter().map(Wired::summary).collect(),
            open: view.open,
        }
    });
    let p = streambox_web::network::NetworkPage {
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
    render(&app, &v, &s, StatusCode::OK, None, None, None).await
}

/// The message and status a refusal is shown with on the page.
fn shown(r: crate::manage::Refused) -> (StatusCode, String) {
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
                    Some(&f),
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
                Some(&f),
            )
            .await
        }
    };
    let ops = super::ops(&app, &v, &s);
    match app.network.propose(ops.actor(), vec![wired], within).await {
        Ok(_) => axum::response::Redirect::to("/admin/network").into_response(),
        Err(r) => {
            let (status, m) = shown(r);
            render(&app, &v, &s, status, Some(m), None, Some(&f)).await
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
        Ok(_) => render(app, v, s, StatusCode::OK, None, Some(notice.into()), None).await,
        Err(r) => {
            let (status, m) = shown(r);
            render(app, v, s, status, Some(m), None, None).await
        }
    }
}
