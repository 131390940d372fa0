//! `/admin/network`: each wired interface's addresses now beside its settings, a form to
//! change them (on trial), and the trial's banner with Confirm and Cancel.

use crate::admin::{admin_page, Csrf, Message, Shell};
use leptos::prelude::*;

/// One interface's settings as the form shows them (the values as typed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicForm {
    /// `dhcp`, `static` or `off`.
    pub ipv4_mode: String,
    /// Static IPv4 address.
    pub ipv4_address: String,
    /// Its prefix length, bits.
    pub ipv4_prefix: String,
    /// Its gateway.
    pub ipv4_gateway: String,
    /// `slaac`, `dhcp`, `static` or `off`.
    pub ipv6_mode: String,
    /// Static IPv6 address.
    pub ipv6_address: String,
    /// Its prefix length, bits.
    pub ipv6_prefix: String,
    /// Its gateway.
    pub ipv6_gateway: String,
    /// DNS servers, space-separated.
    pub dns: String,
    /// Search domains, space-separated.
    pub search: String,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The kernel's name.
    pub name: String,
    /// Its addresses now (`192.0.2.5/24`).
    pub now: Vec<String>,
    /// Its default routes now (`via 192.0.2.1`).
    pub routes: Vec<String>,
    /// Where the settings come from: `streambox`, the image's default, `by hand`, or
    /// `as typed` (a refused form shown again).
    pub source: String,
    /// The YAML of an entry written by hand (then there is no form).
    pub by_hand: Option<String>,
    /// The form's values.
    pub form: NicForm,
}

/// The change on trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBanner {
    /// Who made it.
    pub by: String,
    /// When it reverts, ISO 8601 UTC.
    pub deadline: String,
    /// Seconds left.
    pub seconds_left: i64,
    /// What changes, one line per interface.
    pub changes: Vec<String>,
    /// Where to open the admin pages to confirm it.
    pub open: Vec<String>,
}

/// What the Network page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPage {
    /// Why the settings cannot be read or changed here, if they cannot.
    pub unavailable: Option<String>,
    /// The change on trial.
    pub trial: Option<TrialBanner>,
    /// A refusal to show.
    pub error: Option<String>,
    /// A success to show.
    pub notice: Option<String>,
    /// The interfaces.
    pub nics: Vec<Nic>,
    /// Entries written by hand that are no interface here (VLANs, bridges, …): id,
    /// section, YAML.
    pub other: Vec<(String, String, String)>,
    /// The trial's default length, seconds.
    pub confirm_within: u32,
}

fn select(
    name: &'static str,
    current: &str,
    options: &[(&'static str, &'static str)],
) -> impl IntoView {
    let options = options
        .iter()
        .map(|(value, label)| {
            let selected = *value == current;
            view! { <option value=*value selected=selected>{*label}</option> }
        })
        .collect_view();
    view! { <select name=name>{options}</select> }
}

/// Renders the Network page.
pub fn page(shell: Shell, p: NetworkPage) -> String {
    let csrf = shell.csrf.clone();
    admin_page("Network", shell, "/admin/network", move || {
        let trial = p.trial.map(|t| {
            let open = t
                .open
                .iter()
                .map(|u| {
                    let href = format!("{u}admin/network");
                    let text = href.clone();
                    view! { <li><a href=href>{text}</a></li> }
                })
                .collect_view();
            let changes = t.changes.iter().map(|c| view! { <li>{c.clone()}</li> }).collect_view();
            let (c1, c2) = (csrf.clone(), csrf.clone());
            view! {
                <section class="notice" id="trial" role="alert">
                    <h2>"A change is on trial"</h2>
                    <p>{format!("Made by {}. Unless it is confirmed by {} ({} s from now), the previous settings come back by themselves.", t.by, t.deadline, t.seconds_left)}</p>
                    <ul>{changes}</ul>
                    <p>"Open the box at its new address and confirm there: that shows it can still be reached."</p>
                    <ul id="open">{open}</ul>
                    <form method="post" action="/admin/network/confirm" class="inline">
                        <Csrf token=c1 />
                        <button type="submit" id="confirm">"Confirm: keep these settings"</button>
                    </form>
                    <form method="post" action="/admin/network/cancel" class="inline">
                        <Csrf token=c2 />
                        <button type="submit" id="cancel">"Cancel: go back now"</button>
                    </form>
                </section>
            }
        });
        let within = p.confirm_within.to_string();
        let nics = p
            .nics
            .into_iter()
            .map(|n| {
                let now = if n.now.is_empty() { "no address".to_string() } else { n.now.join(", ") };
                let routes = if n.routes.is_empty() { "none".to_string() } else { n.routes.join(", ") };
                let f = n.form;
                let body = match n.by_hand {
                    Some(yaml) => view! {
                        <p class="hint">"Configured by hand on the box; streambox leaves it alone."</p>
                        <pre class="log">{yaml}</pre>
                    }
                    .into_any(),
                    None => view! {
                        <form method="post" action="/admin/network" class="stack">
                            <Csrf token=csrf.clone() />
                            <input type="hidden" name="interface" value=n.name.clone() />
                            <fieldset>
                                <legend>"IPv4"</legend>
                                <label>"Mode " {select("ipv4_mode", &f.ipv4_mode, &[("dhcp", "DHCP"), ("static", "Static"), ("off", "Off")])}</label>
                                <label>"Address " <input name="ipv4_address" value=f.ipv4_address placeholder="192.168.1.20" /></label>
                                <label>"Prefix " <input name="ipv4_prefix" value=f.ipv4_prefix placeholder="24" size="3" /></label>
                                <label>"Gateway " <input name="ipv4_gateway" value=f.ipv4_gateway placeholder="192.168.1.1" /></label>
                            </fieldset>
                            <fieldset>
                                <legend>"IPv6"</legend>
                                <label>"Mode " {select("ipv6_mode", &f.ipv6_mode, &[("slaac", "Router advertisements (SLAAC)"), ("dhcp", "DHCPv6"), ("static", "Static"), ("off", "Off")])}</label>
                                <label>"Address " <input name="ipv6_address" value=f.ipv6_address placeholder="2001:db8::20" /></label>
                                <label>"Prefix " <input name="ipv6_prefix" value=f.ipv6_prefix placeholder="64" size="3" /></label>
                                <label>"Gateway " <input name="ipv6_gateway" value=f.ipv6_gateway placeholder="fe80::1" /></label>
                            </fieldset>
                            <label>"DNS servers " <input name="dns" value=f.dns placeholder="192.168.1.1 2001:db8::53" /></label>
                            <label>"Search domains " <input name="search" value=f.search placeholder="example.com" /></label>
                            <label>"Confirm within (seconds) " <input name="confirm_within" value=within.clone() size="4" /></label>
                            <button type="submit">"Try these settings"</button>
                        </form>
                    }
                    .into_any(),
                };
                let id = format!("nic-{}", n.name);
                view! {
                    <section id=id>
                        <h2>{n.name.clone()}</h2>
                        <table class="facts">
                            <tr><th>"Addresses now"</th><td class="now">{now}</td></tr>
                            <tr><th>"Default routes"</th><td>{routes}</td></tr>
                            <tr><th>"Settings from"</th><td>{n.source}</td></tr>
                        </table>
                        {body}
                    </section>
                }
            })
            .collect_view();
        let other = (!p.other.is_empty()).then(|| {
            let rows = p
                .other
                .into_iter()
                .map(|(id, section, yaml)| view! { <h3>{format!("{id} ({section})")}</h3><pre class="log">{yaml}</pre> })
                .collect_view();
            view! { <section id="by-hand"><h2>"Configured by hand"</h2>{rows}</section> }
        });
        view! {
            <h1>"Network"</h1>
            <Message text=p.error />
            <Message text=p.notice ok=true />
            <Message text=p.unavailable.clone() />
            {trial}
            <p class="hint">"A change is tried first: open the box at its new address and confirm it there, or the previous settings come back by themselves."</p>
            {nics}
            {other}
        }
    })
}
