//! `GET /admin/system` and `GET /api/system`: version, uptimes, CPU, memory, disk, and
//! (on the page) the recent log lines; configuration backups and restores
//! ([`crate::backup`]):
//!
//! | route | what |
//! | --- | --- |
//! | `POST /admin/system/backup`, `POST /api/system/backup` | a backup, as a `.tar.zst` download |
//! | `POST /admin/system/restore` | a backup uploaded from the page (`multipart/form-data`, field `backup`) |
//! | `POST /api/system/restore` | a backup as the request body (`application/zstd`) |
//! | `POST /setup/restore` | the same from the wizard's first step, while no administrator exists |
//! | `GET /api/system/update` | what runs, an install's progress, how the last update ended |
//! | `POST /admin/system/update`, `POST /api/system/update` | a RAUC bundle, streamed to the data disk, checked and installed ([`crate::manage::update`]) |
//! | `POST /admin/system/reboot`, `POST /api/system/reboot` | reboot (into an installed update), now or at a time |
//! | `POST /admin/system/reboot/cancel`, `DELETE /api/system/reboot` | cancel a scheduled reboot |
//! | `POST /admin/system/update/media`, `POST /api/system/update/media` | install a bundle from a USB stick |
//!
//! A restore is checked completely and staged, the answer says what it holds, and the
//! service then restarts to put it in place ([`crate::app::Lifecycle::restart`]). A
//! refused backup changes nothing (422, with the reason).

use super::admin::{audit, shell};
use super::visitor::{api_error, page, Signed, Visitor};
use crate::app::App;
use crate::backup::{self, BackupError, Summary};
use crate::manage::update;
use crate::system::{cpu::CpuTimes, host, log, storage};
use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use std::time::Duration;

/// How long CPU use is sampled over.
const CPU_SAMPLE: Duration = Duration::from_millis(250);

/// The figures, for the page and the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// streambox's version.
    pub version: &'static str,
    /// Seconds since the service started.
    pub service_uptime_s: u64,
    /// Seconds since the machine booted.
    pub host_uptime_s: Option<u64>,
    /// Cores busy, averaged over a quarter second, and cores in all.
    pub cpu_busy_cores: Option<f64>,
    /// CPUs the kernel counts.
    pub cpus: Option<usize>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<(f64, f64, f64)>,
    /// Bytes of memory in all.
    pub memory_total: Option<u64>,
    /// Bytes of memory available.
    pub memory_available: Option<u64>,
    /// Bytes this process holds in memory (RSS).
    pub memory_service: Option<u64>,
    /// Bytes on the data disk in all.
    pub disk_total: Option<u64>,
    /// Bytes free there.
    pub disk_free: Option<u64>,
    /// Why the data partition could not be used this boot (the box then runs on a
    /// stand-in in memory); `None` when all is well.
    pub data_fault: Option<String>,
}

/// `f` on a blocking thread: the host's figures are files under `/proc` and a
/// `statvfs`, which are not read on an async worker.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

async fn status(app: &App) -> Status {
    let before = blocking(|| CpuTimes::read().ok()).await.flatten();
    tokio::time::sleep(CPU_SAMPLE).await;
    let dir = app.cfg.data_dir.clone();
    let fault_file = app.cfg.data_fault_file.clone();
    let (after, disk, mem, host_uptime, load, data_fault) = blocking(move || {
        (
            CpuTimes::read().ok(),
            storage::disk_space(&dir).ok(),
            host::memory(),
            host::uptime(),
            host::load(),
            fault_file.as_deref().and_then(storage::data_fault),
        )
    })
    .await
    .unwrap_or_default();
    let (cpu_busy_cores, cpus) = match (before, after) {
        (Some(b), Some(a)) => (
            a.idle_cores_since(&b)
                .map(|idle| (a.cpus as f64 - idle).max(0.0)),
            Some(a.cpus),
        ),
        _ => (None, None),
    };
    Status {
        version: env!("CARGO_PKG_VERSION"),
        service_uptime_s: app.started.elapsed().as_secs(),
        host_uptime_s: host_uptime.map(|s| s as u64),
        cpu_busy_cores,
        cpus,
        load,
        memory_total: mem.total,
        memory_available: mem.available,
        memory_service: mem.resident,
        disk_total: disk.map(|d| d.total_bytes),
        disk_free: disk.map(|d| d.free_bytes),
        data_fault,
    }
}

fn bytes(b: Option<u64>) -> String {
    b.map_or_else(
        || "unknown".into(),
        |b| bytesize::ByteSize::b(b).to_string(),
    )
}

fn duration(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

/// `GET /admin/system`.
pub async fn page_handler(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    render_with(app, v, s, None, None).await
}

async fn render_with(
    app: App,
    v: Visitor,
    s: Signed,
    restore: Option<Result<String, String>>,
    installing: Option<Result<String, String>>,
) -> Response {
    let shell = match shell(&app, &v, &s).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let st = status(&app).await;
    let facts = vec![
        ("Service up for".to_string(), duration(st.service_uptime_s)),
        (
            "Machine up for".to_string(),
            st.host_uptime_s.map_or_else(|| "unknown".into(), duration),
        ),
        (
            "CPU".to_string(),
            match (st.cpu_busy_cores, st.cpus) {
                (Some(b), Some(n)) => format!("{b:.2} of {n} cores busy"),
                _ => "unknown".into(),
            },
        ),
        (
            "Load".to_string(),
            st.load.map_or_else(
                || "unknown".into(),
                |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}"),
            ),
        ),
        (
            "Memory".to_string(),
            format!(
                "{} available of {}; the service uses {}",
                bytes(st.memory_available),
                bytes(st.memory_total),
                bytes(st.memory_service)
            ),
        ),
        (
            "Data disk".to_string(),
            format!(
                "{} free of {} ({})",
                bytes(st.disk_free),
                bytes(st.disk_total),
                app.cfg.data_dir.display()
            ),
        ),
    ];
    let sys = streambox_web::system::System {
        version: format!("streambox {}", st.version),
        facts,
        log: log::recent(),
        restore,
        update: match app.updates.status().await {
            Ok(st) => Some(update_view(
                &st,
                &crate::setup::time_zone(&app.db)
                    .await
                    .unwrap_or_else(|_| crate::system::zones::UTC.into()),
            )),
            Err(_) => None,
        },
        installing,
    };
    let status = match (&sys.restore, &sys.installing) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    page(status, streambox_web::system::page(shell, sys))
}

/// The update section of the System page, from [`crate::manage::update::Status`], its
/// times in time zone `zone`.
fn update_view(
    st: &crate::manage::update::Status,
    zone: &str,
) -> streambox_web::system::UpdateView {
    use crate::manage::update::rolled_back_text;
    let last = st.last.as_ref();
    streambox_web::system::UpdateView {
        reboot_at: st.reboot_at.map(|t| update::local_text(t, zone)),
        media: st.media.iter().map(|b| (b.file.clone(), b.bytes)).collect(),
        zone: zone.to_string(),
        release: st.release.clone(),
        slot: st.slot.clone(),
        state: st.progress.state.clone(),
        percent: st.progress.percent,
        message: st.progress.message.clone(),
        version: st.progress.version.clone(),
        pending: st.pending.as_ref().map(|p| {
            format!(
                "{} is installed in slot {}: reboot to run it.",
                p.version,
                p.slot.to_uppercase()
            )
        }),
        rolled_back: last.and_then(rolled_back_text),
        updated: last
            .filter(|o| o.reason.is_none())
            .map(|o| format!("Updated from {} to {}.", o.from_version, o.version)),
    }
}

/// `GET /api/system/update`: [`crate::manage::update::Status`].
pub async fn update_status(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    super::api::answer(
        StatusCode::OK,
        app.updates.status().await.map_err(super::Refusal::from),
    )
}

/// `?downgrade=1`: install a bundle older than what runs.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct UpdateQuery {
    downgrade: Option<String>,
}

/// `POST /api/system/update`: a RAUC bundle as the body (streamed to the data disk, not
/// held in memory); 202 with [`crate::manage::update::Accepted`] once it is checked and
/// installing, or the reason it was refused (409 while another runs, 422 for a bad,
/// foreign or older bundle, 503 off the appliance or without room).
pub async fn update_api(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Query(q): Query<UpdateQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let expected = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let downgrade = q
        .downgrade
        .as_deref()
        .is_some_and(|d| d == "1" || d == "true");
    let r = app
        .updates
        .receive(body.into_data_stream(), expected, downgrade)
        .await;
    if let Ok(a) = &r {
        audit(&app, &s.user.name, &v, "update.install", &a.version).await;
    }
    super::api::answer(StatusCode::ACCEPTED, r.map_err(super::Refusal::from))
}

/// `POST /admin/system/update`: a bundle uploaded from the page (`multipart/form-data`:
/// `downgrade` before the file `bundle`); the page with the install's progress.
pub async fn update_page(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let outcome = match form {
        Err(e) => Err(format!("Nothing was installed: {}", e.body_text())),
        Ok(mut form) => {
            let mut downgrade = false;
            loop {
                match form.next_field().await {
                    Ok(Some(field)) if field.name() == Some("downgrade") => {
                        downgrade = field.text().await.is_ok_and(|t| t == "1");
                    }
                    Ok(Some(field)) if field.name() == Some("bundle") => {
                        let r = app.updates.receive(field, None, downgrade).await;
                        break match r {
                            Ok(a) => {
                                audit(&app, &s.user.name, &v, "update.install", &a.version).await;
                                Ok(installing_text(&a))
                            }
                            Err(e) => Err(format!("Nothing was installed: {e}")),
                        };
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => break Err("Nothing was installed: choose a bundle first.".into()),
                    Err(e) => {
                        break Err(format!("Nothing was installed: the upload failed ({e})."))
                    }
                }
            }
        }
    };
    render_with(app, v, s, None, Some(outcome)).await
}

/// `POST /api/system/update/media`'s body: a bundle on a USB stick, as `GET
/// /api/system/update` lists it in `media`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    file: String,
    #[serde(default)]
    downgrade: bool,
}

/// `POST /api/system/update/media`: installs a bundle from a USB stick (copied to the
/// data disk, then as an upload); 202 with [`crate::manage::update::Accepted`], 404 for
/// a file that is not a bundle on the stick now, else what an upload gets.
pub async fn update_media_api(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    b: Result<Json<MediaBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match super::api::body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let r = install_media(&app, &v, &s, &b.file, b.downgrade).await;
    super::api::answer(StatusCode::ACCEPTED, r.map_err(super::Refusal::from))
}

/// The System page's form for a bundle on a USB stick.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct MediaForm {
    file: String,
    downgrade: String,
}

/// `POST /admin/system/update/media`: the System page, installing the bundle chosen on a
/// USB stick (or why not).
pub async fn update_media_page(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<MediaForm>,
) -> Response {
    let outcome = match install_media(&app, &v, &s, &f.file, f.downgrade == "1").await {
        Ok(a) => Ok(installing_text(&a)),
        Err(e) => Err(format!("Nothing was installed: {e}")),
    };
    render_with(app, v, s, None, Some(outcome)).await
}

/// Installs the bundle `file` on a USB stick ([`update::Updates::receive_media`]),
/// audited when it was accepted.
async fn install_media(
    app: &App,
    v: &Visitor,
    s: &Signed,
    file: &str,
    downgrade: bool,
) -> Result<update::Accepted, crate::manage::Refused> {
    let a = app.updates.receive_media(file, downgrade).await?;
    let what = format!("{} (USB)", a.version);
    audit(app, &s.user.name, v, "update.install", &what).await;
    Ok(a)
}

/// What the page says of a bundle accepted for installing.
fn installing_text(a: &crate::manage::update::Accepted) -> String {
    format!(
        "{} is signed by this appliance's key and installs to slot {} now.",
        a.version,
        a.slot.to_uppercase()
    )
}

/// Reboots the box through logind, now (`at` `None`) or at `at` (checked first:
/// [`update::reboot_time`]), audited.
async fn reboot(
    app: &App,
    v: &Visitor,
    s: &Signed,
    at: Option<std::time::SystemTime>,
) -> Result<(), super::Refusal> {
    use super::Refusal;
    let unavailable =
        |e: String| Refusal::Unavailable(format!("the box cannot be rebooted from here: {e}"));
    match at {
        None => {
            audit(app, &s.user.name, v, "system.reboot", "").await;
            tracing::warn!(user = %s.user.name, "rebooting, as asked");
            crate::system::update::reboot().await.map_err(unavailable)
        }
        Some(at) => {
            let at = update::reboot_time(at, std::time::SystemTime::now())?;
            crate::system::update::reboot_at(at)
                .await
                .map_err(unavailable)?;
            let when = crate::packager::hls::iso8601(at);
            audit(app, &s.user.name, v, "system.reboot_scheduled", &when).await;
            tracing::warn!(user = %s.user.name, at = %when, "a reboot was scheduled");
            Ok(())
        }
    }
}

/// `POST /api/system/reboot`'s body, if any: `{"at": RFC 3339}` to reboot then.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootBody {
    at: Option<String>,
}

/// `POST /api/system/reboot`: reboots the box now (202 `{"rebooting": true}`), or with
/// `{"at": "2026-12-03T23:00:00Z"}` at that time, at most a week ahead (202 `{"reboot_at"}`;
/// 422 for a time past or too far); 503 off the appliance.
pub async fn reboot_api(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    body: axum::body::Bytes,
) -> Response {
    let b: RebootBody = if body.iter().all(u8::is_ascii_whitespace) {
        RebootBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}")),
        }
    };
    let at = match b.at.as_deref().map(update::parse_rfc3339).transpose() {
        Ok(at) => at,
        Err(e) => return super::api::answer::<()>(StatusCode::OK, Err(e.into())),
    };
    let answer = reboot(&app, &v, &s, at).await.map(|()| match at {
        None => serde_json::json!({ "rebooting": true }),
        Some(t) => serde_json::json!({ "reboot_at": crate::packager::hls::iso8601(t) }),
    });
    super::api::answer(StatusCode::ACCEPTED, answer)
}

/// `DELETE /api/system/reboot`: cancels a scheduled reboot; `{"cancelled"}` (whether
/// one was scheduled); 503 off the appliance.
pub async fn cancel_reboot_api(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let answer = cancel_reboot(&app, &v, &s)
        .await
        .map(|cancelled| serde_json::json!({ "cancelled": cancelled }));
    super::api::answer(StatusCode::OK, answer)
}

async fn cancel_reboot(app: &App, v: &Visitor, s: &Signed) -> Result<bool, super::Refusal> {
    let cancelled = crate::system::update::cancel_reboot()
        .await
        .map_err(super::Refusal::Unavailable)?;
    if cancelled {
        audit(app, &s.user.name, v, "system.reboot_cancelled", "").await;
    }
    Ok(cancelled)
}

/// The reboot form's field: empty for now, else a wall-clock time in the box's time
/// zone (`datetime-local`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RebootForm {
    at: String,
}

/// `POST /admin/system/reboot`: the System page, saying the box reboots (now, or at
/// the time given in the box's time zone).
pub async fn reboot_page(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    Form(f): Form<RebootForm>,
) -> Response {
    let zone = crate::setup::time_zone(&app.db)
        .await
        .unwrap_or_else(|_| crate::system::zones::UTC.into());
    let at = if f.at.trim().is_empty() {
        Ok(None)
    } else {
        update::parse_local(&f.at, &zone).map(Some)
    };
    let outcome = match at {
        Err(e) => Err(e.to_string()),
        Ok(at) => match reboot(&app, &v, &s, at).await {
            Ok(()) => Ok(match at {
                None => "Rebooting: the box is back in a minute or two.".to_string(),
                Some(t) => format!("The box reboots at {}.", update::local_text(t, &zone)),
            }),
            Err(r) => Err(r.message()),
        },
    };
    render_with(app, v, s, None, Some(outcome)).await
}

/// `POST /admin/system/reboot/cancel`: the System page, without the scheduled reboot.
pub async fn cancel_reboot_page(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    let outcome = match cancel_reboot(&app, &v, &s).await {
        Ok(true) => Ok("The scheduled reboot is cancelled.".to_string()),
        Ok(false) => Ok("No reboot was scheduled.".to_string()),
        Err(r) => Err(r.message()),
    };
    render_with(app, v, s, None, Some(outcome)).await
}

/// `POST /admin/system/backup` and `POST /api/system/backup`: a backup of the
/// configuration made now ([`backup::create`]), as an attachment
/// (`application/zstd`, `Cache-Control: no-store`: it holds secrets).
pub async fn backup_download(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
) -> Response {
    match backup::create(&app.db, &app.cfg.data_dir, &app.cfg.tls_dir()).await {
        Ok((name, bytes)) => {
            audit(&app, &s.user.name, &v, "backup.create", &name).await;
            (
                [
                    (header::CONTENT_TYPE, "application/zstd".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "making a backup failed");
            super::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The backup failed: {e}"),
            )
        }
    }
}

/// Checks and stages `archive`, audits it as `who` did from `v`, and has the service
/// restart to put it in place once the answer is on its way.
///
/// # Errors
/// [`BackupError`]; nothing is staged then.
pub(super) async fn restore(
    app: &App,
    who: &str,
    v: &Visitor,
    archive: &[u8],
) -> Result<Summary, BackupError> {
    let client = v.client.to_string();
    let summary = match backup::stage(&app.cfg.data_dir, archive, who, &client).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(client = %v.client, error = %e, "a backup was refused");
            return Err(e);
        }
    };
    // The audit entry goes into the restored database, when it is in place.
    tracing::warn!(
        appliance = %summary.appliance,
        made_by = %summary.version,
        "a backup was staged; restarting to put it in place"
    );
    let lifecycle = app.lifecycle.clone();
    tokio::spawn(async move {
        // The answer goes out first; the listeners then finish what is in flight.
        tokio::time::sleep(RESTART_AFTER).await;
        lifecycle.restart();
    });
    Ok(summary)
}

/// How long after accepting a restore the service stops.
const RESTART_AFTER: Duration = Duration::from_millis(500);

/// The text a page shows for a restore's outcome.
pub(super) fn restore_text(r: &Result<Summary, BackupError>) -> Result<String, String> {
    match r {
        Ok(s) => Ok(streambox_web::system::restored_text(
            &s.appliance,
            s.users,
            s.streams,
            s.cameras,
        )),
        Err(e) => Err(format!("Nothing was changed: {e}")),
    }
}

/// The status a refused restore gets: 422 for the archive's faults, 500 for the box's.
fn refused_status(e: &BackupError) -> StatusCode {
    match e {
        BackupError::Io { .. } | BackupError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        BackupError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The backup file of a `multipart/form-data` upload (field `backup`).
///
/// # Errors
/// The reason, for the page, when the form holds no such field or cannot be read.
pub(super) async fn uploaded(mut form: Multipart) -> Result<Vec<u8>, String> {
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("backup") => {
                return field
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| format!("Nothing was changed: the upload failed ({e})."));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err("Nothing was changed: choose a backup file first.".into()),
            Err(e) => return Err(format!("Nothing was changed: the upload failed ({e}).")),
        }
    }
}

/// `POST /admin/system/restore`: the System page with what the restore did.
pub async fn restore_page(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let outcome = match form {
        Ok(form) => match uploaded(form).await {
            Ok(bytes) => restore_text(&restore(&app, &s.user.name, &v, &bytes).await),
            Err(why) => Err(why),
        },
        Err(e) => Err(format!("Nothing was changed: {}", e.body_text())),
    };
    render_with(app, v, s, Some(outcome), None).await
}

/// `POST /api/system/restore`: the backup as the body; 202 with `{"restored": SUMMARY,
/// "restarting": true}`, or the reason it was refused (`{"error": …}`).
pub async fn restore_api(
    State(app): State<App>,
    Extension(v): Extension<Visitor>,
    Extension(s): Extension<Signed>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return api_error(e.status(), &e.body_text()),
    };
    match restore(&app, &s.user.name, &v, &body).await {
        Ok(summary) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "restored": summary, "restarting": true })),
        )
            .into_response(),
        Err(e) => api_error(refused_status(&e), &e.to_string()),
    }
}

/// `GET /api/system`: the [`Status`] figures as JSON.
pub async fn api(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    Json(status(&app).await).into_response()
}
