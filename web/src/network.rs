//! `/admin/network`: the box's name, each wired interface's addresses now beside its
//! settings, a form to change them (on trial), and the trial's banner with Confirm and
//! Cancel.

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
    /// The link now: carrier, speed, duplex (`up, 1000 Mbit/s, full duplex`).
    pub link: String,
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

/// IPv6 address registration as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationBox {
    /// Whether the box registers.
    pub enabled: bool,
    /// The directory's URL (saved, or as typed when refused).
    pub url: String,
    /// Seconds between registrations (saved, or as typed).
    pub interval: String,
    /// Whether extra certificates are trusted.
    pub ca: bool,
    /// The last attempt: when, why, what was sent, and how it ended.
    pub last: Option<String>,
    /// Whether the last attempt was accepted.
    pub last_ok: bool,
    /// When the next attempt is due.
    pub next: Option<String>,
}

/// The NTP servers as the page shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NtpBox {
    /// The servers set (or as typed), space-separated.
    pub servers: String,
    /// What timesyncd uses now, a sentence.
    pub in_use: String,
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
    /// The box's host name now.
    pub hostname: String,
    /// The name it answers to over mDNS (`NAME.local`), when it has one.
    pub mdns_name: Option<String>,
    /// The name as typed, when it was refused.
    pub hostname_typed: Option<String>,
    /// IPv6 address registration.
    pub registration: RegistrationBox,
    /// The DNS servers in use now.
    pub dns_in_use: Vec<String>,
    /// The NTP servers.
    pub ntp: NtpBox,
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

/// Where a network form posts: the Network page's routes, or the setup wizard's.
#[derive(Debug, Clone, Copy)]
pub struct Actions {
    /// One interface's settings, on trial.
    pub interface: &'static str,
    /// Confirm the trial.
    pub confirm: &'static str,
    /// Cancel the trial.
    pub cancel: &'static str,
    /// Rename the box.
    pub hostname: &'static str,
    /// Set the NTP servers.
    pub ntp: &'static str,
    /// The page to open at a new address to confirm there.
    pub page: &'static str,
}

/// The Network page's.
pub const ADMIN: Actions = Actions {
    interface: "/admin/network",
    confirm: "/admin/network/confirm",
    cancel: "/admin/network/cancel",
    hostname: "/admin/network/hostname",
    ntp: "/admin/network/ntp",
    page: "admin/network",
};

/// The setup wizard's (step 3).
pub const SETUP: Actions = Actions {
    interface: "/setup/network/interface",
    confirm: "/setup/network/confirm",
    cancel: "/setup/network/cancel",
    hostname: "/setup/network/hostname",
    ntp: "/setup/network/ntp",
    page: "setup",
};

/// The banner of a change on trial, with Confirm and Cancel.
pub fn trial_section(t: TrialBanner, csrf: String, a: Actions) -> impl IntoView {
    let open = t
        .open
        .iter()
        .map(|u| {
            let href = format!("{u}{}", a.page);
            let text = href.clone();
            view! { <li><a href=href>{text}</a></li> }
        })
        .collect_view();
    let changes = t
        .changes
        .iter()
        .map(|c| view! { <li>{c.clone()}</li> })
        .collect_view();
    let c2 = csrf.clone();
    view! {
        <section class="notice" id="trial" role="alert">
            <h2>"A change is on trial"</h2>
            <p>{format!("Made by {}. Unless it is confirmed by {} ({} s from now), the previous settings come back by themselves.", t.by, t.deadline, t.seconds_left)}</p>
            <ul>{changes}</ul>
            <p>"Open the box at its new address and confirm there: that shows it can still be reached."</p>
            <ul id="open">{open}</ul>
            <form method="post" action=a.confirm class="inline">
                <Csrf token=csrf />
                <button type="submit" id="confirm">"Confirm: keep these settings"</button>
            </form>
            <form method="post" action=a.cancel class="inline">
                <Csrf token=c2 />
                <button type="submit" id="cancel">"Cancel: go back now"</button>
            </form>
        </section>
    }
}

/// The box's name, and the form to rename it.
pub fn name_section(
    hostname: String,
    mdns_name: Option<String>,
    typed: Option<String>,
    csrf: String,
    a: Actions,
) -> impl IntoView {
    let mdns = mdns_name.map_or_else(
        || "none (the name is not a single label)".to_string(),
        |m| format!("{m} (IPv4 and IPv6)"),
    );
    let typed = typed.unwrap_or_else(|| hostname.clone());
    view! {
        <section id="name">
            <h2>"Name"</h2>
            <table class="facts">
                <tr><th>"Host name"</th><td id="hostname">{hostname}</td></tr>
                <tr><th>"On the LAN (mDNS)"</th><td id="mdns">{mdns}</td></tr>
            </table>
            <form method="post" action=a.hostname class="stack">
                <Csrf token=csrf />
                <label>"New name " <input name="hostname" value=typed pattern="[a-z0-9-]{1,63}" required /></label>
                <p class="hint">"Lowercase letters, digits and hyphens. The box answers as NAME.local at once; its addresses do not change."</p>
                <button type="submit">"Rename the box"</button>
            </form>
        </section>
    }
}

/// The NTP servers, and the form to set them.
pub fn ntp_section(n: NtpBox, csrf: String, a: Actions) -> impl IntoView {
    view! {
        <section id="ntp">
            <h2>"Time"</h2>
            <table class="facts">
                <tr><th>"Clock set from"</th><td id="ntp-in-use">{n.in_use}</td></tr>
            </table>
            <form method="post" action=a.ntp class="stack">
                <Csrf token=csrf />
                <label>"NTP servers " <input name="servers" value=n.servers placeholder="ntp.example.org 192.168.1.1" size="40" /></label>
                <p class="hint">"Names or addresses, space-separated; leave empty for what DHCP gives, then the distribution's servers."</p>
                <button type="submit">"Set the NTP servers"</button>
            </form>
        </section>
    }
}

/// One interface: its state now (refreshed every second from `live`, when given), and
/// its settings' form (or the hand-written YAML).
pub fn nic_section(
    n: Nic,
    csrf: String,
    within: String,
    a: Actions,
    live: Option<&'static str>,
) -> impl IntoView {
    let now = if n.now.is_empty() {
        "no address".to_string()
    } else {
        n.now.join(", ")
    };
    let routes = if n.routes.is_empty() {
        "none".to_string()
    } else {
        n.routes.join(", ")
    };
    let f = n.form;
    let body = match n.by_hand {
        Some(yaml) => view! {
            <p class="hint">"Configured by hand on the box; streambox leaves it alone."</p>
            <pre class="log">{yaml}</pre>
        }
        .into_any(),
        None => view! {
            <form method="post" action=a.interface class="stack">
                <Csrf token=csrf />
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
                <label>"Confirm within (seconds) " <input name="confirm_within" value=within size="4" /></label>
                <button type="submit">"Try these settings"</button>
            </form>
        }
        .into_any(),
    };
    let id = format!("nic-{}", n.name);
    view! {
        <section id=id>
            <h2>{n.name.clone()}</h2>
            {live_facts(&n.name, now, routes, n.link, live)}
            <table class="facts">
                <tr><th>"Settings from"</th><td>{n.source}</td></tr>
            </table>
            {body}
        </section>
    }
}

/// An interface's state now, in an element `refresh.js` swaps from `live` every second.
fn live_facts(
    name: &str,
    now: String,
    routes: String,
    link: String,
    live: Option<&'static str>,
) -> impl IntoView {
    let id = format!("live-{name}");
    view! {
        <table class="facts" id=id data-refresh=live.map(|_| "1") data-refresh-from=live>
            <tr><th>"Addresses now"</th><td class="now">{now}</td></tr>
            <tr><th>"Default routes"</th><td>{routes}</td></tr>
            <tr><th>"Link"</th><td class="link">{link}</td></tr>
        </table>
    }
}

/// `/admin/network/live`: only the interfaces' state now, for `refresh.js`.
pub fn live_page(nics: Vec<Nic>) -> String {
    let rows = nics
        .into_iter()
        .map(|n| {
            let now = if n.now.is_empty() {
                "no address".to_string()
            } else {
                n.now.join(", ")
            };
            let routes = if n.routes.is_empty() {
                "none".to_string()
            } else {
                n.routes.join(", ")
            };
            live_facts(&n.name, now, routes, n.link, None)
        })
        .collect::<Vec<_>>();
    crate::page::document("Network now", "admin", move || rows)
}

/// Renders the Network page.
pub fn page(shell: Shell, p: NetworkPage) -> String {
    let csrf = shell.csrf.clone();
    admin_page("Network", shell, "/admin/network", move || {
        let trial = p.trial.map(|t| trial_section(t, csrf.clone(), ADMIN));
        let name = name_section(
            p.hostname,
            p.mdns_name,
            p.hostname_typed,
            csrf.clone(),
            ADMIN,
        );
        let dns = if p.dns_in_use.is_empty() {
            "none".to_string()
        } else {
            p.dns_in_use.join(", ")
        };
        let r = p.registration;
        let state = if r.enabled { "on" } else { "off" };
        let last = r.last.map(|l| {
            let class = if r.last_ok { "ok" } else { "error" };
            view! { <tr><th>"Last attempt"</th><td id="registration-last" class=class>{l}</td></tr> }
        });
        let next = r
            .next
            .map(|n| view! { <tr><th>"Next attempt"</th><td>{n}</td></tr> });
        let off = r.enabled.then(|| {
            let c = csrf.clone();
            view! {
                <form method="post" action="/admin/network/registration/off" class="inline">
                    <Csrf token=c />
                    <button type="submit">"Stop registering"</button>
                </form>
            }
        });
        let ca_hint = if r.ca {
            "Certificates are trusted for this directory; paste new ones to replace them. Left empty, the token (for the same URL) and the certificates stay as they are."
        } else {
            "Certificates only for a directory whose certificate is not from a public authority. Left empty, the token stays as it is for the same URL."
        };
        let registration = view! {
            <section id="registration">
                <h2>"IPv6 address registration"</h2>
                <p class="hint">"The box tells a directory its global IPv6 addresses and where it answers, whenever they change and at the interval, so the directory can send people to it."</p>
                <table class="facts" id="registration-state-table" data-refresh="2">
                    <tr><th>"Registering"</th><td id="registration-state">{state}</td></tr>
                    {last}
                    {next}
                </table>
                <form method="post" action="/admin/network/registration" class="stack">
                    <Csrf token=csrf.clone() />
                    <label>"Directory URL " <input name="url" value=r.url placeholder="https://directory.example/register" size="40" /></label>
                    <label>"Token " <input name="token" type="password" autocomplete="off" placeholder="as the directory gave it" /></label>
                    <label>"Register every (seconds) " <input name="interval_seconds" value=r.interval size="6" /></label>
                    <label>"Trust these certificates (PEM) " <textarea name="ca_pem" rows="3" cols="60"></textarea></label>
                    <p class="hint">{ca_hint}</p>
                    <button type="submit">"Register now"</button>
                </form>
                {off}
            </section>
        };
        let within = p.confirm_within.to_string();
        let nics = p
            .nics
            .into_iter()
            .map(|n| {
                nic_section(
                    n,
                    csrf.clone(),
                    within.clone(),
                    ADMIN,
                    Some("/admin/network/live"),
                )
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
            {name}
            <table class="facts"><tr><th>"DNS servers in use"</th><td id="dns-in-use">{dns}</td></tr></table>
            {ntp_section(p.ntp, csrf.clone(), ADMIN)}
            <p class="hint">"A change is tried first: open the box at its new address and confirm it there, or the previous settings come back by themselves."</p>
            {nics}
            {other}
            {registration}
            <script src="/assets/refresh.js"></script>
        }
    })
}
