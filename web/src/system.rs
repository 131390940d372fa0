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
        view! {
            <h1>"System"</h1>
            {restarting.then(|| view! { <meta http-equiv="refresh" content="8;url=/login" /> })}
            <Message text=notice ok=true />
            <Message text=error />
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
            <h2>"Log"</h2>
            <p class="hint">{format!("The last {lines} lines, newest last.")}</p>
            <pre id="log" class="log">{s.log.join("\n")}</pre>
        }
    })
}
