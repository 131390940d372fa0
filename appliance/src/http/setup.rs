//! `/setup`: the first-run wizard ([`streambox_web::setup`]). Every step is a form post
//! validated here; progress is in the database ([`crate::setup`]), so a reload or a
//! restart resumes at the same step. Step 1 creates the administrator and signs the
//! browser in; the later steps need that session, so nobody else on the LAN can finish
//! someone's setup.
//!
//! | route | step |
//! | --- | --- |
//! | `GET /setup[?step=N]` | the current step (or an earlier one, 2–4, to revisit) |
//! | `POST /setup/admin` | 1: create the administrator |
//! | `POST /setup/restore` | 1, instead: restore a backup ([`super::system`]) |
//! | `POST /setup/login` | sign in to resume after a restart or in another browser |
//! | `POST /setup/identity` | 2: appliance name and time zone |
//! | `POST /setup/network` | 3: done with the network (refused while a change is on trial) |
//! | `POST /setup/network/interface` | 3: one interface's settings, on trial |
//! | `POST /setup/network/confirm`, `…/cancel` | 3: the trial kept, or undone now |
//! | `POST /setup/network/hostname` | 3: rename the box |
//! | `POST /setup/network/ntp` | 3: NTP servers |
//! | `POST /setup/storage` | 4: recording defaults |
//! | `POST /setup/stream`, `POST /setup/camera` | 5: a first stream, or a camera (`action=test` only tests it) |
//! | `POST /setup/finish` | done: to the dashboard |

use super::admin::{audit, sign_in};
use super::cameras::{self, CameraFields};
use super::network::{NameFields, NicFields, NtpFields, Typed, VpnFields};
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::auth::users;
use crate::manage::{self, addresses};
use crate::setup::{self, Progress, RecordingDefaults, Step};
use crate::system::{network, storage, zones};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use streambox_web::setup::{self as pages, CameraForm, Created, StepView, Wizard};

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "setup request failed");
    super::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Where the wizard is (never `Done` here: the guard closes `/setup` after that).
async fn reached(app: &App) -> Result<Step, Response> {
    match setup::progress(&app.db).await.map_err(internal)? {
        Progress::At(step) => Ok(step),
        Progress::Done => Err(Redirect::to("/admin").into_response()),
    }
}

fn render(
    step: Step,
    reached: Step,
    v: &Visitor,
    error: Option<String>,
    view: StepView,
) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(
        status,
        pages::page(Wizard {
            step: step as u8,
            reached: reached as u8,
            csrf: v.csrf.clone(),
            error,
            view,
        }),
    )
}

/// The page of `step` with the values stored so far.
async fn view_of(app: &App, step: Step) -> Result<StepView, Response> {
    Ok(match step {
        Step::Admin => StepView::Admin {
            name: "admin".into(),
        },
        Step::Identity => StepView::Identity {
            name: setup::appliance_name(&app.db).await.map_err(internal)?,
            zone: setup::time_zone(&app.db).await.map_err(internal)?,
            zones: zones::list().to_vec(),
        },
        Step::Network => network_view(app, Typed::Nothing, None).await,
        Step::Storage => {
            let d = setup::recording_defaults(&app.db).await.map_err(internal)?;
            let keep = d.keep_secs.map_or("none".to_string(), |s| {
                humantime::format_duration(std::time::Duration::from_secs(s as u64)).to_string()
            });
            storage_view(app, keep, d.record).await
        }
        Step::FirstStream => StepView::FirstStream {
            stream: String::new(),
            created: None,
            camera: CameraForm::default(),
            test: None,
        },
    })
}

/// The network step: the interfaces, the default routes and the addresses the box is
/// reached at, read on a blocking thread (`getifaddrs`, `/proc/net`); and what can be
/// changed, as on the Network page (`typed`: a refused form shown again).
async fn network_view(app: &App, typed: Typed<'_>, notice: Option<String>) -> StepView {
    let cfg = app.cfg.clone();
    let (configured, unavailable) = match app.network.configured().await {
        Ok(c) => (c, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let nics = super::network::nics(app, &configured, typed)
        .await
        .map(|(_, n)| n)
        .unwrap_or_default();
    let hostname = network::host_name();
    let change = pages::NetworkChange {
        mdns_name: network::mdns_name(&hostname),
        hostname,
        hostname_typed: match typed {
            Typed::Hostname(h) => Some(h.to_string()),
            _ => None,
        },
        nics,
        trial: super::network::banner(app),
        confirm_within: app.cfg.network.confirm_within,
        unavailable,
        notice,
        ntp: super::network::ntp_box(typed).await,
        vpn: setup_vpn(app, typed).await,
    };
    let now = tokio::task::spawn_blocking(move || network_view_now(&cfg)).await;
    let (interfaces, routes, urls) = now.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the network failed");
        Default::default()
    });
    StepView::Network {
        interfaces,
        routes,
        urls,
        change,
    }
}

/// The interfaces, default routes and (what, URL) pairs the step shows.
type NetworkNow = (Vec<pages::Interface>, Vec<String>, Vec<(String, String)>);

fn network_view_now(cfg: &crate::config::Config) -> NetworkNow {
    let found = network::interfaces().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "listing network interfaces failed");
        Vec::new()
    });
    let interfaces = found
        .iter()
        .map(|i| pages::Interface {
            name: i.name.clone(),
            addresses: i
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect(),
        })
        .collect();
    let routes = network::default_routes()
        .into_iter()
        .map(|r| match r.gateway {
            Some(g) => format!("via {g} on {}", r.interface),
            None => format!("on-link on {}", r.interface),
        })
        .collect();
    let mut urls = Vec::new();
    for h in addresses::hosts(cfg, &found, cfg.http.listen) {
        urls.push((
            "Viewers (web)".to_string(),
            format!("http://{h}:{}/", cfg.http.listen.port()),
        ));
    }
    for h in addresses::hosts(cfg, &found, cfg.rtmp.listen) {
        urls.push((
            "Publishers (RTMP, OBS)".to_string(),
            addresses::rtmp_url(&h, cfg.rtmp.listen.port()),
        ));
    }
    for h in addresses::hosts(cfg, &found, cfg.rtsp.listen) {
        urls.push((
            "RTSP players".to_string(),
            format!("rtsp://{h}:{}/STREAM", cfg.rtsp.listen.port()),
        ));
    }
    (interfaces, routes, urls)
}

/// The storage step: the data directory, its disk's size and free space (a `statvfs`
/// on a blocking thread), and the recording defaults `keep` and `record`.
async fn storage_view(app: &App, keep: String, record: bool) -> StepView {
    let dir = app.cfg.data_dir.clone();
    let (data_dir, total, free) = tokio::task::spawn_blocking(move || {
        let (total, free) = match storage::disk_space(&dir) {
            Ok(d) => (
                bytesize::ByteSize::b(d.total_bytes).to_string(),
                bytesize::ByteSize::b(d.free_bytes).to_string(),
            ),
            Err(e) => (format!("unknown ({e})"), "unknown".into()),
        };
        let data_dir = std::fs::canonicalize(&dir)
            .unwrap_or_else(|_| dir.clone())
            .display()
            .to_string();
        (data_dir, total, free)
    })
    .await
    .unwrap_or_else(|e| (String::new(), format!("unknown ({e})"), "unknown".into()));
    StepView::Storage {
        data_dir,
        total,
        free,
        keep,
        record,
    }
}

/// `GET /setup` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StepQuery {
    step: Option<u8>,
}

/// `GET /setup`: the step reached, or an earlier one (2–4) asked for with `?step=`.
pub async fn show(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Query(q): Query<StepQuery>,
) -> Response {
    let reached = match reached(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if reached > Step::Admin && v.signed().is_none() {
        return render(
            reached,
            reached,
            &v,
            None,
            StepView::SignIn {
                name: String::new(),
            },
        );
    }
    let step = q
        .step
        .and_then(Step::from_number)
        .filter(|s| *s >= Step::Identity && *s <= reached)
        .unwrap_or(reached);
    match view_of(&app, step).await {
        Ok(view) => render(step, reached, &v, None, view),
        Err(r) => r,
    }
}

/// The signed-in administrator for steps 2–5, or the sign-in page.
fn require_admin(v: &Visitor, reached: Step) -> Result<&Signed, Response> {
    v.signed().ok_or_else(|| {
        render(
            reached,
            reached,
            v,
            Some("Sign in as the administrator to go on with setup.".into()),
            StepView::SignIn {
                name: String::new(),
            },
        )
    })
}

/// For steps 2–5: where the wizard is, and the signed-in administrator. Without a
/// session, the sign-in page; before `step` is reached, back to the current step.
async fn admin_at<'a>(
    app: &App,
    v: &'a Visitor,
    step: Step,
) -> Result<(Step, &'a Signed), Response> {
    let reached = reached(app).await?;
    let s = require_admin(v, reached)?;
    if reached < step {
        return Err(Redirect::to("/setup").into_response());
    }
    Ok((reached, s))
}

/// Step 1's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminForm {
    name: String,
    password: String,
    again: String,
}

/// `POST /setup/admin`: creates the administrator and signs this browser in.
pub async fn admin(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<AdminForm>,
) -> Response {
    let reached = match reached(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if reached != Step::Admin {
        // The administrator exists: nobody else gets to make one.
        return render(
            reached,
            reached,
            &v,
            Some("The administrator has been created already. Sign in as them to go on.".into()),
            StepView::SignIn {
                name: String::new(),
            },
        );
    }
    let shown = if users::valid_name(&f.name) {
        f.name.clone()
    } else {
        String::new()
    };
    let fail = |msg: String| {
        render(
            Step::Admin,
            Step::Admin,
            &v,
            Some(msg),
            StepView::Admin {
                name: shown.clone(),
            },
        )
    };
    if !users::valid_name(&f.name) {
        return fail(users::UserError::InvalidName.to_string());
    }
    if f.password != f.again {
        return fail("The two passwords differ.".into());
    }
    match users::create_first(&app.db, &f.name, &f.password, &[]).await {
        Ok(user) => {
            if let Err(e) = setup::completed(&app.db, Step::Admin).await {
                return internal(e);
            }
            audit(&app, &user.name, &v, "setup.admin", &user.name).await;
            match sign_in(&app, &v, &headers, &f.name, &f.password).await {
                Ok(session) => (
                    super::visitor::signed_in(jar, &v, session),
                    Redirect::to("/setup"),
                )
                    .into_response(),
                // Rate-limited right after creating: the sign-in page explains.
                Err((status, msg)) => with_status(
                    render(
                        Step::Identity,
                        Step::Identity,
                        &v,
                        Some(msg),
                        StepView::SignIn { name: f.name },
                    ),
                    status,
                ),
            }
        }
        Err(users::UserError::WeakPassword(why)) => fail(format!("Password refused: {why}.")),
        Err(
            e @ (users::UserError::InvalidName
            | users::UserError::Exists(_)
            | users::UserError::AdministratorExists),
        ) => fail(e.to_string()),
        Err(e) => internal(e),
    }
}

/// `POST /setup/restore`: step 1's other way, a backup (`multipart/form-data`, field
/// `backup`) instead of a new administrator ([`super::system::restore`]); only while no
/// administrator exists, as step 1 itself.
pub async fn restore(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let reached = match reached(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if reached != Step::Admin {
        return render(
            reached,
            reached,
            &v,
            Some("The administrator has been created already: restore a backup from the System page once signed in.".into()),
            StepView::SignIn {
                name: String::new(),
            },
        );
    }
    let outcome = match form {
        Ok(form) => match super::system::uploaded(form).await {
            Ok(bytes) => super::system::restore_text(
                &super::system::restore(&app, "setup", &v, &bytes).await,
            ),
            Err(why) => Err(why),
        },
        Err(e) => Err(format!("Nothing was changed: {}", e.body_text())),
    };
    match outcome {
        Ok(notice) => render(
            Step::Admin,
            Step::Admin,
            &v,
            None,
            StepView::Restored { notice },
        ),
        Err(why) => render(
            Step::Admin,
            Step::Admin,
            &v,
            Some(why),
            StepView::Admin {
                name: "admin".into(),
            },
        ),
    }
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// The resume sign-in's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    name: String,
    password: String,
}

/// `POST /setup/login`: signs the administrator in to resume setup.
pub async fn login(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let reached = match reached(&app).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if reached == Step::Admin {
        return Redirect::to("/setup").into_response();
    }
    match sign_in(&app, &v, &headers, &f.name, &f.password).await {
        Ok(session) => (
            super::visitor::signed_in(jar, &v, session),
            Redirect::to("/setup"),
        )
            .into_response(),
        Err((status, msg)) => {
            let name = if users::valid_name(&f.name) {
                f.name
            } else {
                String::new()
            };
            with_status(
                render(reached, reached, &v, Some(msg), StepView::SignIn { name }),
                status,
            )
        }
    }
}

/// Step 2's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IdentityForm {
    name: String,
    time_zone: String,
}

/// `POST /setup/identity`.
pub async fn identity(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<IdentityForm>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Identity).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = match setup::check_appliance_name(&f.name) {
        Ok(n) => n.to_string(),
        Err(msg) => {
            return render(
                Step::Identity,
                reached,
                &v,
                Some(format!("Appliance name: {msg}.")),
                StepView::Identity {
                    name: String::new(),
                    zone: f.time_zone,
                    zones: zones::list().to_vec(),
                },
            )
        }
    };
    if !zones::valid(&f.time_zone) {
        return render(
            Step::Identity,
            reached,
            &v,
            Some("Pick a time zone from the list.".into()),
            StepView::Identity {
                name,
                zone: zones::UTC.into(),
                zones: zones::list().to_vec(),
            },
        );
    }
    let saved = async {
        crate::db::set_setting(&app.db, "appliance.name", &name).await?;
        crate::db::set_setting(&app.db, "appliance.time_zone", &f.time_zone).await?;
        setup::completed(&app.db, Step::Identity).await
    };
    if let Err(e) = saved.await {
        return internal(e);
    }
    audit(
        &app,
        &s.actor(),
        &v,
        "setup.identity",
        &format!("{name} ({})", f.time_zone),
    )
    .await;
    Redirect::to("/setup").into_response()
}

/// `POST /setup/network`: done with the network step; refused while a change is on
/// trial (it must be confirmed or cancelled first).
pub async fn network(State(app): State<App>, Extension(v): Extension<Visitor>) -> Response {
    let (reached, _) = match admin_at(&app, &v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if app.network.trial().0.is_some() {
        let m =
            "A network change is on trial: confirm it from its new address, or cancel it, first.";
        let view = network_view(&app, Typed::Nothing, None).await;
        return render(Step::Network, reached, &v, Some(m.into()), view);
    }
    if let Err(e) = setup::completed(&app.db, Step::Network).await {
        return internal(e);
    }
    Redirect::to("/setup").into_response()
}

/// Step 3 again after a change: `Ok` with a notice, or the refusal with the form as
/// typed.
async fn network_again(
    app: &App,
    v: &Visitor,
    reached: Step,
    done: Result<String, String>,
    typed: Typed<'_>,
) -> Response {
    match done {
        Ok(notice) => {
            let view = network_view(app, Typed::Nothing, Some(notice)).await;
            render(Step::Network, reached, v, None, view)
        }
        Err(m) => {
            let view = network_view(app, typed, None).await;
            render(Step::Network, reached, v, Some(m), view)
        }
    }
}

/// `POST /setup/network/interface`: one interface's settings, on trial.
pub async fn network_interface(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<NicFields>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let within = match f.confirm_within.trim() {
        "" => Ok(None),
        t => super::network::parsed::<u32>("Confirm within", t).map(Some),
    };
    let done = match within.and_then(|w| f.wired().map(|wired| (w, wired))) {
        Err(m) => Err(m),
        Ok((within, wired)) => {
            let ops = super::ops(&app, &v, s);
            match app.network.propose(ops.actor(), vec![wired], within).await {
                Ok(_) => Ok(
                    "The change is on trial: open the box at its new address to confirm it.".into(),
                ),
                Err(r) => Err(super::network::shown(r).1),
            }
        }
    };
    network_again(&app, &v, reached, done, Typed::Nic(&f)).await
}

/// `POST /setup/network/confirm` (`keep`) and `/setup/network/cancel`.
async fn network_finish(app: &App, v: &Visitor, keep: bool) -> Response {
    let (reached, s) = match admin_at(app, v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ops = super::ops(app, v, s);
    let done = if keep {
        app.network
            .confirm(ops.actor())
            .await
            .map(|_| "Confirmed: the new settings stay.")
    } else {
        app.network
            .cancel(ops.actor())
            .await
            .map(|_| "Cancelled: the previous settings are back.")
    };
    let done = done
        .map(String::from)
        .map_err(|r| super::network::shown(r).1);
    network_again(app, v, reached, done, Typed::Nothing).await
}

/// `POST /setup/network/confirm`: the settings on trial stay.
pub async fn network_confirm(State(app): State<App>, Extension(v): Extension<Visitor>) -> Response {
    network_finish(&app, &v, true).await
}

/// `POST /setup/network/cancel`: the previous settings come back now.
pub async fn network_cancel(State(app): State<App>, Extension(v): Extension<Visitor>) -> Response {
    network_finish(&app, &v, false).await
}

/// `POST /setup/network/ntp`: sets the NTP servers.
pub async fn network_ntp(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<NtpFields>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, s);
    let done = match app.network.set_ntp(ops.actor(), f.list()).await {
        Ok(()) => Ok("The NTP servers are set.".to_string()),
        Err(r) => Err(super::network::shown(r).1),
    };
    network_again(&app, &v, reached, done, Typed::Ntp(&f.servers)).await
}

/// Remote access as step 3 shows it: saved, or as typed when refused.
async fn setup_vpn(app: &App, typed: Typed<'_>) -> streambox_web::vpn::SetupVpn {
    let saved = app.vpn.settings().await.ok().flatten();
    let on = saved.as_ref().filter(|s| s.enabled);
    let address = on.map(|s| {
        crate::system::wireguard::own_addresses(&s.subnet4, &s.subnet6)
            .0
            .to_string()
    });
    match typed {
        Typed::Vpn(f) => streambox_web::vpn::SetupVpn {
            enabled: f.enabled.is_some(),
            endpoint: f.endpoint.clone(),
            address,
        },
        _ => streambox_web::vpn::SetupVpn {
            enabled: on.is_some(),
            endpoint: saved.and_then(|s| s.endpoint).unwrap_or_default(),
            address,
        },
    }
}

/// `POST /setup/network/vpn`: remote access on or off.
pub async fn network_vpn(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<VpnFields>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, s);
    let change = crate::manage::vpn::Change {
        enabled: Some(f.enabled.is_some()),
        endpoint: Some(f.endpoint.clone()),
        ..Default::default()
    };
    let interfaces = app.interfaces.borrow().clone();
    let done = match app.vpn.set(ops.actor(), change, &interfaces).await {
        Ok(view) => Ok(match view.settings.filter(|s| s.enabled) {
            Some(s) => format!(
                "Remote access is on (UDP port {}). Add the devices that may connect on the Remote access page once setup is done.",
                s.port
            ),
            None => "Remote access is off.".to_string(),
        }),
        Err(r) => Err(super::network::shown(r).1),
    };
    network_again(&app, &v, reached, done, Typed::Vpn(&f)).await
}

/// `POST /setup/network/hostname`: renames the box.
pub async fn network_hostname(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<NameFields>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Network).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ops = super::ops(&app, &v, s);
    let name = f.hostname.trim();
    let done = match app.network.set_hostname(ops.actor(), name).await {
        Ok(()) => Ok(format!("The box is now called {name}.")),
        Err(r) => Err(super::network::shown(r).1),
    };
    network_again(&app, &v, reached, done, Typed::Hostname(&f.hostname)).await
}

/// Step 4's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StorageForm {
    keep: String,
    record: Option<String>,
}

/// `POST /setup/storage`.
pub async fn storage(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<StorageForm>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::Storage).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let record = f.record.is_some();
    let keep = f.keep.trim();
    let parsed = if keep.len() > 32 {
        Err("use a duration such as 7d, 48h or 30d, or none".to_string())
    } else {
        crate::dvr::settings::parse_keep(keep)
            .map_err(|_| format!("{keep:?} is not a duration; use e.g. 7d, 48h or 30d, or none"))
    };
    let keep_secs = match parsed {
        Ok(k) => k,
        Err(msg) => {
            let shown = if keep.len() > 32 {
                String::new()
            } else {
                keep.to_string()
            };
            return render(
                Step::Storage,
                reached,
                &v,
                Some(format!("Keep recordings for: {msg}.")),
                storage_view(&app, shown, record).await,
            );
        }
    };
    let saved = async {
        setup::set_recording_defaults(&app.db, RecordingDefaults { record, keep_secs }).await?;
        setup::completed(&app.db, Step::Storage).await
    };
    if let Err(e) = saved.await {
        return internal(e);
    }
    audit(
        &app,
        &s.actor(),
        &v,
        "setup.storage",
        &format!("record={record} keep={keep}"),
    )
    .await;
    Redirect::to("/setup").into_response()
}

/// Step 5's stream field.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamForm {
    name: String,
}

/// `POST /setup/stream`: creates a stream and shows its OBS settings (the key, once).
pub async fn stream(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<StreamForm>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::FirstStream).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let retry = |msg: String, name: String| {
        render(
            Step::FirstStream,
            reached,
            &v,
            Some(msg),
            StepView::FirstStream {
                stream: name,
                created: None,
                camera: CameraForm::default(),
                test: None,
            },
        )
    };
    let added = manage::streams::add(&super::ops(&app, &v, s), &f.name).await;
    let (name, key) = match added.map_err(super::Refusal::from) {
        Ok(x) => x,
        Err(super::Refusal::Failed(r)) => return r,
        Err(super::Refusal::Conflict(m)) => return retry(m, f.name.trim().to_string()),
        Err(
            super::Refusal::Invalid(m)
            | super::Refusal::NotFound(m)
            | super::Refusal::Limited(m, _)
            | super::Refusal::Unavailable(m),
        ) => return retry(m, String::new()),
    };
    let created = Created {
        server: addresses::publish_urls(&app.cfg, &name).0,
        watch: addresses::web_url(&app.cfg, &format!("/watch/{name}")),
        key,
        name,
    };
    render(
        Step::FirstStream,
        reached,
        &v,
        None,
        StepView::FirstStream {
            stream: String::new(),
            created: Some(created),
            camera: CameraForm::default(),
            test: None,
        },
    )
}

/// `POST /setup/camera`: `action=test` connects to the camera and reports what it
/// offers, saving nothing; `action=add` adds it as a source.
pub async fn camera(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Form(f): Form<CameraFields>,
) -> Response {
    let (reached, s) = match admin_at(&app, &v, Step::FirstStream).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let outcome = match cameras::handle(&app, &v, s, &f, None).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (state, error) = outcome.state(&f, None);
    render(
        Step::FirstStream,
        reached,
        &v,
        error,
        StepView::FirstStream {
            stream: String::new(),
            created: None,
            camera: state.form,
            test: state.test,
        },
    )
}

/// `POST /setup/finish`: setup is complete; on to the dashboard.
pub async fn finish(State(app): State<App>, Extension(v): Extension<Visitor>) -> Response {
    let (_, s) = match admin_at(&app, &v, Step::FirstStream).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = setup::finish(&app.db).await {
        return internal(e);
    }
    audit(&app, &s.actor(), &v, "setup.finish", "").await;
    Redirect::to("/admin?welcome=1").into_response()
}
