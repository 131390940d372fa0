//! systemd's manager over the system bus (`org.freedesktop.systemd1`, systemd.unit(5)):
//! the one call the network helper (root) makes of it, restarting a unit.

use std::time::Duration;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Systemd {
    /// Restarts a unit (a job path back).
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<zbus::OwnedObjectPath>;
}

/// Asks systemd on `conn` to restart `unit` (e.g. `avahi-daemon.service`), replacing any
/// job queued for it; returns once the job is queued, not when the unit is up again.
///
/// # Errors
/// What systemd said, or "no answer in time" after `deadline`.
pub async fn restart_unit(
    conn: &zbus::Connection,
    unit: &str,
    deadline: Duration,
) -> Result<(), String> {
    let restart = async {
        SystemdProxy::new(conn)
            .await?
            .restart_unit(unit, "replace")
            .await
    };
    match tokio::time::timeout(deadline, restart).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}
