//! The NTP servers the box sets its clock from (systemd-timesyncd).
//!
//! With none set, timesyncd uses what DHCP gives and then the distribution's fallback
//! servers. Set servers go in a drop-in, `/etc/systemd/timesyncd.conf.d/streambox.conf`,
//! which on the appliance is a link to [`STATE_FILE`] on the writable state partition
//! (the root is read-only), so they survive reboots and updates. The network helper
//! writes that one file and restarts timesyncd through systemd's D-Bus API. What
//! timesyncd uses now is read from its own D-Bus API (`org.freedesktop.timesync1`,
//! readable by anyone).

use serde::Serialize;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Where the appliance keeps its NTP servers (a timesyncd.conf(5) drop-in).
pub const STATE_FILE: &str = "/mnt/state/host/timesyncd.conf";

/// The most servers one may set.
pub const MAX_SERVERS: usize = 8;

/// How long systemd or timesyncd may take to answer.
const CALL_DEADLINE: Duration = Duration::from_secs(20);

/// Checks NTP servers: at most [`MAX_SERVERS`], each an IP address (not unspecified or
/// multicast) or a DNS name, none twice.
///
/// # Errors
/// The reason, a sentence.
pub fn check(servers: &[String]) -> Result<(), String> {
    if servers.len() > MAX_SERVERS {
        return Err(format!(
            "at most {MAX_SERVERS} NTP servers, not {}",
            servers.len()
        ));
    }
    for (i, s) in servers.iter().enumerate() {
        match s.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                return Err(format!("{s} cannot be an NTP server"))
            }
            Ok(_) => {}
            Err(_) if super::netplan::valid_domain(s) => {}
            Err(_) => {
                return Err(format!(
                    "{s:?} is neither an IP address nor a DNS name, so it cannot be an NTP server"
                ))
            }
        }
        if servers[..i].contains(s) {
            return Err(format!("{s} is given twice"));
        }
    }
    Ok(())
}

/// The drop-in's text for `servers` (none: no `NTP=` line, timesyncd's defaults).
pub fn drop_in(servers: &[String]) -> String {
    let mut out =
        String::from("# Written by streambox (the Network page); timesyncd.conf(5).\n[Time]\n");
    if !servers.is_empty() {
        out.push_str(&format!("NTP={}\n", servers.join(" ")));
    }
    out
}

#[zbus::proxy(
    interface = "org.freedesktop.timesync1.Manager",
    default_service = "org.freedesktop.timesync1",
    default_path = "/org/freedesktop/timesync1"
)]
trait Timesyncd {
    /// The servers from timesyncd.conf's `NTP=`.
    #[zbus(property, name = "SystemNTPServers")]
    fn system_ntp_servers(&self) -> zbus::Result<Vec<String>>;
    /// The servers DHCP gave.
    #[zbus(property, name = "LinkNTPServers")]
    fn link_ntp_servers(&self) -> zbus::Result<Vec<String>>;
    /// The distribution's fallback servers.
    #[zbus(property, name = "FallbackNTPServers")]
    fn fallback_ntp_servers(&self) -> zbus::Result<Vec<String>>;
    /// The server in use now, by name.
    #[zbus(property, name = "ServerName")]
    fn server_name(&self) -> zbus::Result<String>;
}

/// What timesyncd uses now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InUse {
    /// The servers set (`NTP=`).
    pub system: Vec<String>,
    /// The servers DHCP gave.
    pub link: Vec<String>,
    /// The distribution's fallback servers.
    pub fallback: Vec<String>,
    /// The server it talks to now; empty while it has none.
    pub server: String,
}

/// Why a change of servers failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The servers are not ones ([`check`]).
    #[error("{0}")]
    Invalid(String),
    /// The drop-in could not be written; nothing changed.
    #[error("keeping the NTP servers failed: {0}")]
    Write(std::io::Error),
    /// systemd refused or did not answer; the servers are kept, and in force after the
    /// next boot.
    #[error("systemd did not restart timesyncd: {0}")]
    Restart(String),
}

/// Makes `servers` timesyncd's: checked, written to `file`, then timesyncd restarted
/// through systemd on `conn`.
///
/// # Errors
/// [`Error`].
pub async fn set(conn: &zbus::Connection, file: &Path, servers: &[String]) -> Result<(), Error> {
    check(servers).map_err(Error::Invalid)?;
    let text = drop_in(servers);
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || super::hostname::replace(&file, &text))
        .await
        .map_err(|e| Error::Write(std::io::Error::other(e)))?
        .map_err(Error::Write)?;
    super::systemd::restart_unit(conn, "systemd-timesyncd.service", CALL_DEADLINE)
        .await
        .map_err(Error::Restart)
}

/// What timesyncd uses now, or why that cannot be read (no system bus, no timesyncd).
///
/// # Errors
/// The reason, a sentence.
pub async fn in_use() -> Result<InUse, String> {
    let read = async {
        let conn = zbus::Connection::system().await?;
        let t = TimesyncdProxy::new(&conn).await?;
        zbus::Result::Ok(InUse {
            system: t.system_ntp_servers().await?,
            link: t.link_ntp_servers().await?,
            fallback: t.fallback_ntp_servers().await?,
            server: t.server_name().await?,
        })
    };
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(e)) => Err(format!("timesyncd cannot be asked: {e}")),
        Err(_) => Err("timesyncd did not answer in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn servers_are_checked() {
        assert!(check(&v(&[
            "192.0.2.123",
            "2001:db8::123",
            "ntp.example.org",
            "pool.ntp.org."
        ]))
        .is_ok());
        assert!(check(&[]).is_ok());
        for (bad, why) in [
            (v(&["ntp example"]), "neither"),
            (v(&["0.0.0.0"]), "cannot be"),
            (v(&["ff02::101"]), "cannot be"),
            (v(&["a.example", "a.example"]), "twice"),
            (v(&["x\nNTP=evil"]), "neither"),
            (v(&["1.1.1.1"; 9]), "at most 8"),
        ] {
            let e = check(&bad).expect_err("refused");
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn drop_in_text() {
        let text = drop_in(&v(&["192.0.2.123", "ntp.example.org"]));
        assert!(
            text.ends_with("[Time]\nNTP=192.0.2.123 ntp.example.org\n"),
            "{text}"
        );
        let none = drop_in(&[]);
        assert!(
            none.ends_with("[Time]\n") && !none.contains("NTP="),
            "{none}"
        );
    }
}
