//! `/admin/system`: version, uptime, CPU, memory, disk, and the service's recent log
//! lines.

use crate::admin::{admin_page, Shell};
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
}

/// Renders the System page.
pub fn page(shell: Shell, s: System) -> String {
    admin_page("System", shell, "/admin/system", move || {
        let facts = s
            .facts
            .into_iter()
            .map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> })
            .collect_view();
        let lines = s.log.len();
        view! {
            <h1>"System"</h1>
            <table class="facts" id="facts">
                <tr><th>"Version"</th><td id="version">{s.version}</td></tr>
                {facts}
            </table>
            <h2>"Log"</h2>
            <p class="hint">{format!("The last {lines} lines, newest last.")}</p>
            <pre id="log" class="log">{s.log.join("\n")}</pre>
        }
    })
}
