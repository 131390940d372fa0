//! The box's host name: the name it answers to over mDNS as `NAME.local` (RFC 6762), and
//! the one its console banner and the network page offer.
//!
//! On the appliance `/etc/hostname` (on the read-only root) is a link to
//! [`STATE_FILE`], on the writable state partition, so a name survives reboots and
//! updates. A change, made by the network helper as root: the file is replaced
//! (written beside it, then renamed), then systemd-hostnamed is asked to set the name
//! (`SetHostname`: it takes the static name it reads from the file, so the kernel's name
//! follows), then systemd restarts avahi-daemon, which takes the kernel's name when it
//! starts (it does not follow a change by itself, and its own `SetHostName` is not
//! reliable: see [`restart_avahi`]). All are asked over the system bus, never through a
//! shell.

use std::path::Path;
use std::time::Duration;

/// Where the appliance keeps its host name (`/etc/hostname` links here).
pub const STATE_FILE: &str = "/mnt/state/host/hostname";

/// How long hostnamed or avahi may take to answer.
const CALL_DEADLINE: Duration = Duration::from_secs(20);

/// Checks a host name: one DNS label (RFC 1123 §2.1, RFC 6762 §16) of 1-63 lowercase
/// ASCII letters, digits and inner hyphens, not all digits, and not `localhost`.
///
/// # Errors
/// The reason, a sentence.
pub fn check(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{name:?} cannot be the box's name: {why}"));
    if name.is_empty() || name.len() > 63 {
        return bad("it must be 1-63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("use only lowercase letters a-z, digits and hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("it cannot begin or end with a hyphen");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return bad("it cannot be only digits");
    }
    if name == "localhost" {
        return bad("that name is every machine's own");
    }
    Ok(())
}

#[zbus::proxy(
    interface = "org.freedesktop.hostname1",
    default_service = "org.freedesktop.hostname1",
    default_path = "/org/freedesktop/hostname1"
)]
trait Hostnamed {
    /// Sets the transient host name; the kernel takes the static one when there is one.
    async fn set_hostname(&self, name: &str, interactive: bool) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.Avahi.Server",
    default_service = "org.freedesktop.Avahi",
    default_path = "/"
)]
trait AvahiServer {
    /// The name avahi announces (without `.local`).
    fn get_host_name(&self) -> zbus::Result<String>;
}

/// Why a change of name failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is not one ([`check`]).
    #[error("{0}")]
    Invalid(String),
    /// The state file could not be written; nothing changed.
    #[error("keeping the name failed: {0}")]
    Write(std::io::Error),
    /// No system bus.
    #[error("the system bus is not available: {0}")]
    Bus(String),
    /// hostnamed or avahi refused or did not answer. The name is kept, and in force
    /// after the next boot.
    #[error("{service} did not take the name: {detail}")]
    Call {
        /// `systemd-hostnamed`, `avahi-daemon` or `systemd`.
        service: &'static str,
        /// What it said.
        detail: String,
    },
}

/// Writes `name` to `file` ([`replace`]).
///
/// # Errors
/// The I/O error; `file` is then as it was.
pub fn keep(file: &Path, name: &str) -> std::io::Result<()> {
    replace(file, &format!("{name}\n"))
}

/// Replaces `file` with `text` at once: a new file beside it (`.new`, mode 0644 whatever
/// the umask: timesyncd reads its drop-in as its own user), synced, renamed over it,
/// and the directory synced, so a crash leaves the old file or the new one.
///
/// # Errors
/// The I/O error; `file` is then as it was.
pub fn replace(file: &Path, text: &str) -> std::io::Result<()> {
    replace_with_mode(file, text, 0o644)
}

/// [`replace`], with the new file's mode `mode` (0600 for a secret): it has that mode
/// from its creation, before anything is written to it.
///
/// # Errors
/// The I/O error; `file` is then as it was.
pub fn replace_with_mode(file: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = file.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

async fn call<T>(
    service: &'static str,
    f: impl std::future::Future<Output = zbus::Result<T>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CALL_DEADLINE, f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Error::Call {
            service,
            detail: e.to_string(),
        }),
        Err(_) => Err(Error::Call {
            service,
            detail: "no answer in time".into(),
        }),
    }
}

/// Makes `name` the box's name: checked, kept in `file`, then in force in the kernel
/// (through systemd-hostnamed) and over mDNS (through avahi-daemon) on `conn`.
///
/// # Errors
/// [`Error`]; after [`Error::Call`] the name is kept and takes effect at the next boot.
pub async fn set(conn: &zbus::Connection, file: &Path, name: &str) -> Result<(), Error> {
    check(name).map_err(Error::Invalid)?;
    // From here until avahi has the new name, [`keep_mdns_name`] leaves it alone.
    mark_settling();
    let owned = (file.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || keep(&owned.0, &owned.1))
        .await
        .map_err(|e| Error::Write(std::io::Error::other(e)))?
        .map_err(Error::Write)?;
    let hostnamed = call("systemd-hostnamed", HostnamedProxy::new(conn)).await?;
    call("systemd-hostnamed", hostnamed.set_hostname(name, false)).await?;
    let avahi = call("avahi-daemon", AvahiServerProxy::new(conn)).await?;
    if call("avahi-daemon", avahi.get_host_name()).await? != name {
        restart_avahi(conn).await?;
    }
    Ok(())
}

/// Restarts avahi-daemon through systemd on `conn`, so that it announces the kernel's
/// host name afresh (avahi takes the kernel's name when it starts; the services it
/// announces are static files, so nothing else is lost).
///
/// Not avahi's own `SetHostName`: asked right after avahi renamed itself, that can leave
/// avahi announcing the name with no address records at all. The boot test saw it: after
/// "Changing host name to 'studio'" avahi logged no "Registering new address record"
/// line, reported the name established, and answered no query for `studio.local` for a
/// minute. A restart starts from a clean state every time.
///
/// # Errors
/// [`Error::Call`] when systemd refused or did not answer.
async fn restart_avahi(conn: &zbus::Connection) -> Result<(), Error> {
    mark_settling();
    super::systemd::restart_unit(conn, "avahi-daemon.service", CALL_DEADLINE)
        .await
        .map_err(|detail| Error::Call {
            service: "systemd",
            detail,
        })
}

/// Takes `name` back for the box over mDNS: the kernel's name made `name` again when it
/// is not (through systemd-hostnamed), then avahi restarted ([`restart_avahi`]).
///
/// # Errors
/// [`Error::Call`] when hostnamed or systemd refused or did not answer.
async fn take_back(conn: &zbus::Connection, name: &str) -> Result<(), Error> {
    let kernel = tokio::fs::read_to_string("/proc/sys/kernel/hostname")
        .await
        .unwrap_or_default();
    if kernel.trim() != name {
        let hostnamed = call("systemd-hostnamed", HostnamedProxy::new(conn)).await?;
        call("systemd-hostnamed", hostnamed.set_hostname(name, false)).await?;
    }
    restart_avahi(conn).await
}

/// When this process last had avahi restarted ([`restart_avahi`]): for [`SETTLES_IN`]
/// after it, avahi's name is in flux (the old one until it stops, none while it starts,
/// the new one once it has probed), and [`keep_mdns_name`] does not compare.
static RESTARTED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
/// How long avahi takes to restart and probe its name (RFC 6762 §8.1: three probes
/// 250 ms apart, announced after a further 250 ms), with a wide margin for a slow box.
const SETTLES_IN: std::time::Duration = std::time::Duration::from_secs(15);

/// Notes that avahi's name is about to change (a rename, a restart).
fn mark_settling() {
    if let Ok(mut at) = RESTARTED.lock() {
        *at = Some(std::time::Instant::now());
    }
}

/// Whether avahi was restarted less than [`SETTLES_IN`] ago.
fn settling() -> bool {
    RESTARTED
        .lock()
        .ok()
        .and_then(|at| *at)
        .is_some_and(|at| at.elapsed() < SETTLES_IN)
}

/// How often [`keep_mdns_name`] compares avahi's name with the box's.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a name taken back must hold before the next loss counts as a new one.
const HOLDS_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest pause between two take-backs of a name another host really holds.
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The pause before the next take-back after `taken` take-backs in a row that did not
/// hold: none for the first two, then 1 min doubling, at most an hour. A name avahi lost
/// to a spurious conflict is back within seconds; one another machine on the LAN holds
/// is asked for again seldom, each try a brief probe.
pub fn take_back_pause(taken: u32) -> std::time::Duration {
    match taken {
        0 | 1 => std::time::Duration::ZERO,
        n => (std::time::Duration::from_secs(60) * (1u32 << (n - 2).min(6))).min(LONGEST_PAUSE),
    }
}

/// Keeps avahi-daemon announcing the box's own name (the static name in `file`).
///
/// avahi renames the host (`NAME-2`) when it sees a conflict for its name, and it also
/// does so spuriously, with no other host involved, when addresses change while it
/// announces (avahi/avahi#117, #193): after a network change, the box would be
/// `streambox-2.local` until avahi restarts, and every bookmark of `streambox.local`
/// broken. Every 5 s (but not while avahi restarts: [`SETTLES_IN`], and a rename starts
/// the count afresh) this compares avahi's name with the box's, and takes the box's name
/// back when they differ ([`take_back`]: avahi restarted), with [`take_back_pause`] between take-backs
/// that do not hold for 30 s (another machine really has the name: avahi then stays on
/// its `-2` name between the tries, as mDNS says it must). Runs in the network helper;
/// logged, never fatal (no bus, no avahi: tried again later).
pub async fn keep_mdns_name(file: std::path::PathBuf) {
    let mut taken = 0u32;
    let mut last: Option<tokio::time::Instant> = None;
    let mut held_since: Option<tokio::time::Instant> = None;
    let mut conn: Option<zbus::Connection> = None;
    let mut kept = String::new();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(name) = tokio::fs::read_to_string(&file)
            .await
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|n| check(n).is_ok())
        else {
            continue;
        };
        if name != kept {
            // Renamed (or the first look): earlier take-backs were of another name.
            kept.clone_from(&name);
            taken = 0;
            last = None;
            held_since = None;
        }
        if settling() {
            // A rename or a take-back is restarting avahi: its name means nothing yet.
            continue;
        }
        if conn.is_none() {
            conn = zbus::Connection::system().await.ok();
        }
        let Some(c) = &conn else { continue };
        let announced = match call("avahi-daemon", AvahiServerProxy::new(c)).await {
            Ok(avahi) => match call("avahi-daemon", avahi.get_host_name()).await {
                Ok(n) => Some((avahi, n)),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let Some((avahi, announced)) = announced else {
            // avahi is not running (or the bus went): a new connection next time.
            conn = None;
            continue;
        };
        let now = tokio::time::Instant::now();
        if announced == name {
            // Held long enough: the next loss is a new one.
            let since = *held_since.get_or_insert(now);
            if now.duration_since(since) >= HOLDS_AFTER {
                taken = 0;
            }
            continue;
        }
        held_since = None;
        if last.is_some_and(|l| now.duration_since(l) < take_back_pause(taken)) {
            continue;
        }
        drop(avahi);
        tracing::warn!(
            announced,
            name,
            "avahi renamed the box after a name conflict; restarting it to take the name back"
        );
        if let Err(e) = take_back(c, &name).await {
            tracing::warn!(error = %e, "the name was not taken back");
        }
        taken += 1;
        last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_does_not_hold_is_asked_for_again_less_and_less_often() {
        let pauses: Vec<u64> = (0..10).map(|n| take_back_pause(n).as_secs()).collect();
        assert_eq!(pauses, [0, 0, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn names() {
        for good in ["streambox", "studio-2", "a", "b0x", &"x".repeat(63)] {
            assert!(check(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "1-63"),
            (&"x".repeat(64), "1-63"),
            ("Studio", "lowercase"),
            ("studio.local", "lowercase letters"),
            ("st udio", "lowercase"),
            ("-studio", "hyphen"),
            ("studio-", "hyphen"),
            ("1234", "digits"),
            ("localhost", "every machine"),
            ("stüdio", "lowercase"),
        ] {
            let e = check(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn kept_by_replacing_the_file() {
        let dir = std::env::temp_dir().join(format!("sb-hostname-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("hostname");
        std::fs::write(&file, "old\n").expect("write");
        keep(&file, "studio").expect("keep");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "studio\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(!dir.join("hostname.new").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
