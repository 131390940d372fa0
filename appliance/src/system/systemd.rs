//! systemd's manager over the system bus (`org.freedesktop.systemd1`, systemd.unit(5)):
//! restarting a unit (the network helper, root), and a unit's state (the health probe
//! after an update, `streambox health`).

use std::time::Duration;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Systemd {
    /// Restarts a unit (a job path back).
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<zbus::OwnedObjectPath>;
    /// The object of a loaded unit.
    fn get_unit(&self, name: &str) -> zbus::Result<zbus::OwnedObjectPath>;
    /// Asks systemd to send this client its job signals.
    fn subscribe(&self) -> zbus::Result<()>;
    /// A job ended: its id, object, unit and result (`done`, `failed`, `canceled`,
    /// `timeout`, `dependency`, `skipped`).
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    /// `active`, `activating`, `failed`, … (systemd.unit(5)).
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    /// Why the service last stopped: `success`, `exit-code`, `signal`, `timeout`, …
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    /// How often systemd restarted it since it was started.
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
}

/// Whether `unit` (a target, say) is active now; `false` when systemd does not answer.
pub async fn active(conn: &zbus::Connection, unit: &str) -> bool {
    let state = async {
        let path = SystemdProxy::new(conn).await?.get_unit(unit).await?;
        UnitProxy::builder(conn)
            .path(path)
            .build()
            .await?
            .active_state()
            .await
    };
    matches!(state.await.as_deref(), Ok("active"))
}

/// Whether service `unit` has failed for good (systemd gave up restarting it), or has
/// been restarted `restarts` times already: its result (`exit-code`, `signal`, …)
/// then; `None` while it runs.
///
/// # Errors
/// What systemd said (an unknown unit, no bus).
pub async fn failed(
    conn: &zbus::Connection,
    unit: &str,
    restarts: u32,
) -> Result<Option<String>, String> {
    let path = SystemdProxy::new(conn)
        .await
        .map_err(|e| e.to_string())?
        .get_unit(unit)
        .await
        .map_err(|e| e.to_string())?;
    let state = UnitProxy::builder(conn)
        .path(path.clone())
        .build()
        .await
        .map_err(|e| e.to_string())?
        .active_state()
        .await
        .map_err(|e| e.to_string())?;
    let service = ServiceProxy::builder(conn)
        .path(path)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let restarted = service.n_restarts().await.unwrap_or(0);
    if state != "failed" && restarted < restarts {
        return Ok(None);
    }
    let result = service.result().await.unwrap_or_else(|_| "unknown".into());
    Ok(Some(format!("{result}, restarted {restarted} times")))
}

/// Asks systemd on `conn` to restart `unit` (e.g. `avahi-daemon.service`), replacing any
/// job queued for it, and waits for that job to end, as `systemctl restart` does: when
/// this returns `Ok`, the unit is up again (for a D-Bus service, its name is on the bus
/// once its unit is `Type=dbus` or `Type=notify`).
///
/// # Errors
/// What systemd said, the job's result other than `done` (`failed`, `timeout`, …), or
/// "no answer in time" after `deadline`.
pub async fn restart_unit(
    conn: &zbus::Connection,
    unit: &str,
    deadline: Duration,
) -> Result<(), String> {
    use futures_util::StreamExt;
    let restart = async {
        let systemd = SystemdProxy::new(conn).await.map_err(|e| e.to_string())?;
        // Listening before the job is queued, so its end cannot be missed.
        let mut removed = systemd
            .receive_job_removed()
            .await
            .map_err(|e| e.to_string())?;
        systemd.subscribe().await.map_err(|e| e.to_string())?;
        let job = systemd
            .restart_unit(unit, "replace")
            .await
            .map_err(|e| e.to_string())?;
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job.as_str() == job.as_str() {
                return match args.result {
                    "done" => Ok(()),
                    other => Err(format!("restarting {unit} ended with \"{other}\"")),
                };
            }
        }
        Err("systemd's signals ended".to_string())
    };
    match tokio::time::timeout(deadline, restart).await {
        Ok(answer) => answer,
        Err(_) => Err("no answer in time".into()),
    }
}
