//! `/admin/system`: version, uptime, CPU, memory, disk, and the service's recent log
//! lines.

use crate::admin::{admin_page, Csrf, Message, Shell};
use leptos::prelude::*;

/// What the System page shows, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// `streambox 0.1.0`.
    pub version: String,
    /// (what, value) rows: uptime, CPU, load, memory, disk.
    pub facts: Vec<(String, String)>,
    /// The recent log lines, newest last.
    pub log: Vec<String>,
    /// What a restore did, or why it was refused (`Ok`: a notice; `Err`: an error).
    pub restore: Option<Result<String, String>>,
    /// The software update section (`None` when its state could not be read).
    pub update: Option<UpdateView>,
    /// What an uploaded bundle did: installing (`Ok`), or why it was refused.
    pub installing: Option<Result<String, String>>,
}

/// The software update section: what runs, what an install does, how the last ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateView {
    /// The image's release (`None` off the appliance).
    pub release: Option<String>,
    /// The root slot this boot runs from (`a`, `b`).
    pub slot: Option<String>,
    /// `idle`, `receiving`, `checking`, `installing`, `installed` or `failed`.
    pub state: String,
    /// Percent done.
    pub percent: Option<i32>,
    /// RAUC's message, or the failure.
    pub message: Option<String>,
    /// The bundle's version.
    pub version: Option<String>,
    /// An update installed and waiting for a reboot.
    pub pending: Option<String>,
    /// The last update failed and was rolled back: why.
    pub rolled_back: Option<String>,
    /// The last update worked.
    pub updated: Option<String>,
    /// When the box is to reboot (a scheduled reboot), in its time zone.
    pub reboot_at: Option<String>,
    /// The box's time zone, which a time to reboot at is read in.
    pub zone: String,
    /// Update bundles on a USB stick: the file (below the stick's mount point) and its
    /// size in bytes.
    pub media: Vec<(String, u64)>,
}

fn update_section(u: UpdateView, csrf: String) -> impl IntoView {
    let running = match (&u.release, &u.slot) {
        (Some(r), Some(s)) => format!("{r}, from slot {}", s.to_uppercase()),
        (Some(r), None) => r.clone(),
        _ => "not an appliance image: updates come with the operating system's packages".into(),
    };
    let busy = matches!(u.state.as_str(), "receiving" | "checking" | "installing");
    let progress = busy.then(|| {
        let text = format!(
            "{} {}: {}% {}",
            u.state,
            u.version.clone().unwrap_or_default(),
            u.percent.unwrap_or(0),
            u.message.clone().unwrap_or_default()
        );
        view! {
            <meta http-equiv="refresh" content="5" />
            <p class="notice" role="status" id="update-progress">{text}</p>
        }
    });
    let failed = (u.state == "failed").then(|| u.message.clone()).flatten();
    let reboot_csrf = csrf.clone();
    let later_csrf = csrf.clone();
    let cancel_csrf = csrf.clone();
    let zone = u.zone.clone();
    let to = format!("/admin/system/update?csrf={csrf}");
    view! {
        <h2>"Software update"</h2>
        <table class="facts"><tr><th>"Running"</th><td id="release">{running}</td></tr></table>
        {u.rolled_back.map(|t| view! { <p class="error" id="rolled-back">{t}</p> })}
        {u.updated.map(|t| view! { <p class="notice" id="updated">{t}</p> })}
        {progress}
        {failed.map(|t| view! { <p class="error" id="update-failed">{t}</p> })}
        {u.pending.map(|t| view! {
            <p class="notice" id="update-pending">{t}</p>
            <form method="post" action="/admin/system/reboot" id="reboot">
                <Csrf token=reboot_csrf />
                <button type="submit">"Reboot now"</button>
            </form>
            <form method="post" action="/admin/system/reboot" class="inline" id="reboot-at">
                <Csrf token=later_csrf />
                <label>{format!("Or at ({zone}) ")}<input type="datetime-local" name="at" required /></label>
                <button type="submit">"Reboot then"</button>
            </form>
        })}
        {u.reboot_at.map(|t| view! {
            <form method="post" action="/admin/system/reboot/cancel" class="inline" id="reboot-scheduled">
                <Csrf token=cancel_csrf />
                <span class="notice">{format!("The box reboots at {t}. ")}</span>
                <button type="submit">"Cancel the reboot"</button>
            </form>
        })}
        <p class="hint">"An update bundle (streambox-VERSION-amd64.raucb) is checked against this appliance's signing key and written to the system slot that is not running; the running one is not touched. After the reboot, a new system that does not start is given up by itself, and the previous one boots again."</p>
        {(!u.media.is_empty() && !busy).then(|| {
            let rows = u.media.iter().map(|(file, bytes)| {
                let (file, csrf) = (file.clone(), csrf.clone());
                view! {
                    <li>
                        <form method="post" action="/admin/system/update/media" class="inline">
                            <Csrf token=csrf />
                            <input type="hidden" name="file" value=file.clone() />
                            <code>{file.clone()}</code>
                            {format!(" ({:.0} MiB) ", *bytes as f64 / 1048576.0)}
                            <label class="check"><input type="checkbox" name="downgrade" value="1" />" allow older"</label>
                            <button type="submit">"Install from the stick"</button>
                        </form>
                    </li>
                }
            }).collect::<Vec<_>>();
            view! {
                <h3>"On a USB stick"</h3>
                <ul id="media-bundles">{rows}</ul>
            }
        })}
        <form method="post" action=to enctype="multipart/form-data" class="stack" id="update">
            <Csrf token=csrf />
            <label><input type="checkbox" name="downgrade" value="1" />" Allow an older version (downgrade)"</label>
            <label>"Bundle (.raucb)"
                <input type="file" name="bundle" accept=".raucb" required />
            </label>
            <button type="submit">"Install"</button>
        </form>
    }
}

/// The form that uploads a backup to restore, to `action` (a form with a file sends
/// `multipart/form-data`, so its CSRF token travels in the query string too).
#[component]
pub fn RestoreForm(action: &'static str, csrf: String) -> impl IntoView {
    let to = format!("{action}?csrf={csrf}");
    view! {
        <form method="post" action=to enctype="multipart/form-data" class="stack" id="restore">
            <Csrf token=csrf />
            <label>"Backup file (.tar.zst)"
                <input type="file" name="backup" accept=".zst,application/zstd" required />
            </label>
            <button type="submit">"Restore"</button>
        </form>
    }
}

/// The notice after a restore was accepted: the box restarts, and the page reloads to
/// the sign-in page after a few seconds.
pub fn restored_text(appliance: &str, users: i64, streams: i64, cameras: i64) -> String {
    format!(
        "The backup of \"{appliance}\" ({users} user(s), {streams} stream(s), {cameras} camera(s)) \
         was checked and is being put in place: the service restarts now. Sign in again in a \
         few seconds with the backup's accounts."
    )
}

/// Renders the System page.
pub fn page(shell: Shell, s: System) -> String {
    let shell_csrf = shell.csrf.clone();
    admin_page("System", shell, "/admin/system", move || {
        let facts = s
            .facts
            .into_iter()
            .map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> })
            .collect_view();
        let lines = s.log.len();
        let (notice, error) = match s.restore {
            Some(Ok(n)) => (Some(n), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let restarting = notice.is_some();
        let csrf = shell_csrf.clone();
        let (installing, install_error) = match s.installing {
            Some(Ok(n)) => (Some(n), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let update = s.update.map(|u| update_section(u, csrf.clone()));
        view! {
            <h1>"System"</h1>
            {restarting.then(|| view! { <meta http-equiv="refresh" content="8;url=/login" /> })}
            <Message text=notice ok=true />
            <Message text=error />
            <Message text=installing ok=true />
            <Message text=install_error />
            <table class="facts" id="facts">
                <tr><th>"Version"</th><td id="version">{s.version}</td></tr>
                {facts}
            </table>
            <h2>"Configuration backup"</h2>
            <p class="hint">"One file with the users, streams and their keys, cameras, settings, the VPN's peers and the HTTPS certificate; not the recordings. It holds password hashes and the certificate's private key: keep it as safely as a password."</p>
            <form method="post" action="/admin/system/backup" id="backup">
                <Csrf token=csrf.clone() />
                <button type="submit">"Back up configuration"</button>
            </form>
            <h3>"Restore"</h3>
            <p class="hint">"Replaces this box's configuration with a backup's, and restarts the service. The recordings on this box are kept."</p>
            <RestoreForm action="/admin/system/restore" csrf=csrf />
            {update}
            <h2>"Log"</h2>
            <p class="hint">{format!("The last {lines} lines, newest last.")}</p>
            <pre id="log" class="log">{s.log.join("\n")}</pre>
        }
    })
}
