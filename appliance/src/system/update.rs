//! Updates of the appliance's root file system, A/B, with RAUC: the service's side of
//! the host. RAUC (`de.pengutronix.rauc`, run as root by `rauc.service`) checks a
//! bundle's signature against the keyring in the image, writes the slot that is not
//! running, and makes it the one systemd-boot boots next, on trial (the custom
//! bootloader backend `/usr/lib/streambox/rauc-bootloader`: a boot-counted entry with
//! two tries). The service reaches RAUC over the system bus only (the bus policy
//! `/etc/dbus-1/system.d/streambox-rauc.conf` lets no one else but root), never through
//! a shell.
//!
//! A slot on trial is kept only if `streambox-healthy.service` passes: [`probe`] waits
//! for the service's `/healthz`, and on failure records why in [`FAILURE_FILE`] on the
//! state partition and the box reboots; with no tries left, systemd-boot boots the
//! previous slot, and the service there reports the rollback with that reason.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// The image's release file: `VERSION=…` (the version of the whole root file system,
/// which a bundle carries too).
pub const RELEASE_FILE: &str = "/usr/lib/streambox/release";
/// Where a slot on trial that did not come up says why (`key=value` lines: `slot`,
/// `version`, `reason`, `at_ms`), on the state partition both slots share.
pub const FAILURE_FILE: &str = "/mnt/state/update/failure";

/// The version in the image's release file, if this is the appliance.
pub fn release() -> Option<String> {
    release_in(Path::new(RELEASE_FILE))
}

/// `VERSION=` of a release file.
pub fn release_in(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The root slot this boot runs from (`rauc.slot=` on the kernel command line: `a` or
/// `b`), if any.
pub fn booted_slot() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    slot_in(&cmdline)
}

/// `rauc.slot=` of a kernel command line.
pub fn slot_in(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .map(str::to_string)
}

/// Why a slot on trial was given up, as [`probe`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The slot (`a`, `b`).
    pub slot: String,
    /// Its release version.
    pub version: String,
    /// What went wrong.
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl Failure {
    /// The `key=value` text of [`FAILURE_FILE`].
    pub fn to_text(&self) -> String {
        format!(
            "slot={}\nversion={}\nreason={}\nat_ms={}\n",
            self.slot,
            self.version,
            self.reason.replace('\n', " "),
            self.at_ms
        )
    }

    /// Reads the text [`Failure::to_text`] wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<Failure> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        Some(Failure {
            slot: get("slot")?,
            version: get("version").unwrap_or_default(),
            reason: get("reason")?,
            at_ms: get("at_ms").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    /// The failure recorded in [`FAILURE_FILE`], if any.
    pub fn recorded() -> Option<Failure> {
        Failure::parse(&std::fs::read_to_string(FAILURE_FILE).ok()?)
    }
}

/// Waits until the service answers `GET /healthz` with 200 on `port` of the loopback,
/// for at most `within`; gives up early once `streambox.service` has failed for good or
/// been restarted three times.
///
/// # Errors
/// Why it is not healthy, for [`Failure::reason`].
pub async fn probe(port: u16, within: Duration) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let bus = zbus::Connection::system().await.ok();
    let mut last = String::from("no answer yet");
    while started.elapsed() < within {
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("/healthz answered {}", r.status()),
            Err(e) => last = format!("/healthz: {e}"),
        }
        if let Some(conn) = &bus {
            if let Ok(Some(result)) = super::systemd::failed(conn, "streambox.service", 3).await {
                return Err(format!("streambox.service keeps failing ({result})"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "streambox did not answer within {} s ({last})",
        within.as_secs()
    ))
}

/// RAUC's installer interface (`de.pengutronix.rauc.Installer`, RAUC 1.8).
#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/"
)]
pub trait Installer {
    /// Checks a bundle's signature and reads its manifest: (compatible, version).
    fn info(&self, bundle: &str) -> zbus::Result<(String, String)>;
    /// Starts installing a bundle; [`InstallerProxy::receive_completed`] says how it
    /// ended.
    fn install_bundle(
        &self,
        source: &str,
        args: std::collections::HashMap<&str, zbus::Variant<'_>>,
    ) -> zbus::Result<()>;
    /// `idle` or `installing`.
    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    /// The last error's message.
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    /// (percent, message, nesting depth).
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    /// The system's compatible string.
    #[zbus(property)]
    fn compatible(&self) -> zbus::Result<String>;
    /// The slot's bootname this boot runs from.
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
    /// An installation ended: 0 for success.
    #[zbus(signal)]
    fn completed(&self, result: i32) -> zbus::Result<()>;
}

/// systemd-logind's manager (`org.freedesktop.login1.Manager`): rebooting, which polkit
/// allows the service's user on the appliance (`/etc/polkit-1/rules.d/50-streambox.rules`,
/// `org.freedesktop.login1.reboot` and nothing else).
#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Login {
    /// Reboots the machine; `interactive`: whether polkit may ask for a password.
    fn reboot(&self, interactive: bool) -> zbus::Result<()>;

    /// Schedules a shutdown of `kind` (`reboot`) at `usec` microseconds since the Unix
    /// epoch (CLOCK_REALTIME); polkit checks the same action as for doing it now.
    fn schedule_shutdown(&self, kind: &str, usec: u64) -> zbus::Result<()>;

    /// Cancels the scheduled shutdown; whether there was one.
    fn cancel_scheduled_shutdown(&self) -> zbus::Result<bool>;

    /// The scheduled shutdown: its kind and when (µs since the Unix epoch), or `("", 0)`.
    #[zbus(property)]
    fn scheduled_shutdown(&self) -> zbus::Result<(String, u64)>;
}

/// logind, on the appliance only (a boot from an A/B slot): a machine that merely runs
/// the service is not rebooted from a web page.
async fn login() -> Result<LoginProxy<'static>, String> {
    if booted_slot().is_none() {
        return Err("this is not the appliance's image; reboot the machine yourself".into());
    }
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| e.to_string())?;
    LoginProxy::new(&conn).await.map_err(|e| e.to_string())
}

/// Reboots the box through logind, now.
///
/// # Errors
/// Off the appliance; or what logind or polkit said.
pub async fn reboot() -> Result<(), String> {
    login()
        .await?
        .reboot(false)
        .await
        .map_err(|e| e.to_string())
}

/// Has logind reboot the box at `at` (it keeps the schedule, and says so to anyone
/// logged in); a schedule made before is replaced.
///
/// # Errors
/// Off the appliance; or what logind or polkit said.
pub async fn reboot_at(at: SystemTime) -> Result<(), String> {
    let usec = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "a time before 1970".to_string())?
        .as_micros();
    login()
        .await?
        .schedule_shutdown("reboot", u64::try_from(usec).unwrap_or(u64::MAX))
        .await
        .map_err(|e| e.to_string())
}

/// Cancels a scheduled reboot; whether there was one.
///
/// # Errors
/// Off the appliance; or what logind or polkit said.
pub async fn cancel_reboot() -> Result<bool, String> {
    login()
        .await?
        .cancel_scheduled_shutdown()
        .await
        .map_err(|e| e.to_string())
}

/// When logind is to reboot the box, if it is (`None` off the appliance too).
pub async fn scheduled_reboot() -> Option<SystemTime> {
    let (kind, usec) = login().await.ok()?.scheduled_shutdown().await.ok()?;
    (kind == "reboot" && usec > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_micros(usec))
}

/// An update bundle on removable media.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MediaBundle {
    /// Its path below the media directory (`usb-sda1/streambox-0.2.0-amd64.raucb`).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Bundles listed at most, and directories looked into below the media directory.
const MEDIA_BUNDLES: usize = 64;
const MEDIA_DEPTH: usize = 3;

/// The update bundles (`*.raucb`, regular files, never through a symbolic link) on the
/// removable media mounted below `dir`, at most three directories down, sorted, at most
/// 64; none when `dir` is not there. Blocking: reading a stick's directory mounts it.
pub fn media_bundles(dir: &Path) -> Vec<MediaBundle> {
    fn walk(root: &Path, rel: &Path, depth: usize, out: &mut Vec<MediaBundle>) {
        let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            if out.len() >= MEDIA_BUNDLES {
                return;
            }
            // The entry's own type: a symbolic link is neither a file nor a directory.
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name();
            let Some(text) = name.to_str() else { continue };
            if text.starts_with('.') {
                continue;
            }
            let path = rel.join(text);
            if kind.is_dir() && depth < MEDIA_DEPTH {
                walk(root, &path, depth + 1, out);
            } else if kind.is_file() && text.ends_with(".raucb") {
                let bytes = e.metadata().map_or(0, |m| m.len());
                if let Some(file) = path.to_str() {
                    out.push(MediaBundle {
                        file: file.to_string(),
                        bytes,
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), 1, &mut out);
    out
}

/// The path of the bundle `file` names (as [`media_bundles`] lists it) below `dir`, if
/// it is one listed now: nothing else on the box can be named this way.
pub fn media_bundle(dir: &Path, file: &str) -> Option<std::path::PathBuf> {
    media_bundles(dir)
        .into_iter()
        .any(|b| b.file == file)
        .then(|| dir.join(file))
}

/// Compares two release versions (`MAJOR.MINOR.PATCH`, SemVer 2.0.0 §11: a
/// pre-release before its release, build metadata ignored); `None` when one is not a
/// version.
pub fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let a = semver::Version::parse(a).ok()?;
    let b = semver::Version::parse(b).ok()?;
    Some(a.cmp_precedence(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn bundles_on_removable_media_are_listed_and_only_those_can_be_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for f in [
            "usb-sda1/streambox-0.2.0-amd64.raucb",
            "usb-sda1/updates/streambox-0.3.0-amd64.raucb",
            "usb-sda1/notes.txt",
            "usb-sdb/.hidden.raucb",
            "usb-sdb/a/b/c/too-deep.raucb",
        ] {
            std::fs::create_dir_all(d.join(f).parent().expect("parent")).expect("mkdir");
            std::fs::write(d.join(f), b"bundle").expect("write");
        }
        std::os::unix::fs::symlink("/etc/passwd", d.join("usb-sdb/passwd.raucb")).expect("link");
        let listed: Vec<String> = media_bundles(d).into_iter().map(|b| b.file).collect();
        assert_eq!(
            listed,
            [
                "usb-sda1/streambox-0.2.0-amd64.raucb",
                "usb-sda1/updates/streambox-0.3.0-amd64.raucb"
            ]
        );
        assert_eq!(media_bundles(d)[0].bytes, 6);
        assert!(media_bundle(d, "usb-sda1/streambox-0.2.0-amd64.raucb").is_some());
        for other in [
            "usb-sdb/passwd.raucb",
            "../etc/passwd",
            "usb-sda1/notes.txt",
            "/etc/passwd",
            "usb-sdb/a/b/c/too-deep.raucb",
        ] {
            assert!(media_bundle(d, other).is_none(), "{other}");
        }
        assert!(media_bundles(&d.join("nothing")).is_empty());
    }

    #[test]
    fn versions_compare_by_precedence() {
        assert_eq!(compare("0.1.0", "0.1.1"), Some(Less));
        assert_eq!(compare("0.10.0", "0.9.9"), Some(Greater));
        assert_eq!(compare("1.0.0-rc.1", "1.0.0"), Some(Less));
        assert_eq!(compare("0.1.0+build.2", "0.1.0"), Some(Equal));
        assert_eq!(compare("next", "0.1.0"), None);
    }

    #[test]
    fn the_slot_and_the_failure_are_read_back() {
        assert_eq!(
            slot_in("root=PARTLABEL=root-b ro rauc.slot=b quiet").as_deref(),
            Some("b")
        );
        assert_eq!(slot_in("root=/dev/sda2 ro"), None);
        let f = Failure {
            slot: "b".into(),
            version: "0.2.0".into(),
            reason: "streambox did not answer\nwithin 90 s".into(),
            at_ms: 42,
        };
        let back = Failure::parse(&f.to_text()).unwrap();
        assert_eq!(back.reason, "streambox did not answer within 90 s");
        assert_eq!((back.slot.as_str(), back.at_ms), ("b", 42));
        assert_eq!(Failure::parse("nonsense"), None);
    }
}
