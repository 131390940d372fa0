//! `GET /admin/system` and `GET /api/system`: version, uptimes, CPU, memory, disk, and
//! (on the page) the recent log lines.

use super::admin::shell;
use super::visitor::{page, Signed, Visitor};
use crate::app::App;
use crate::system::{cpu::CpuTimes, host, log, storage};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
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
    };
    page(StatusCode::OK, streambox_web::system::page(shell, sys))
}

/// `GET /api/system`: the [`Status`] figures as JSON.
pub async fn api(State(app): State<App>, Extension(_s): Extension<Signed>) -> Response {
    Json(status(&app).await).into_response()
}
