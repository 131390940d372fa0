//! `/admin/vpn`: remote access over WireGuard (on or off, port, subnets, endpoint, what
//! to forward on the router), the peers with their last handshake and traffic, a new
//! peer's configuration and QR code (shown once), and who may open the admin pages.

use crate::admin::{admin_page, Csrf, Message, Shell};
use leptos::prelude::*;

/// One peer in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    /// Its number, for the forms' URLs.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its addresses on the VPN (`10.8.0.2, fd00:8::2`).
    pub addresses: String,
    /// Whether it may connect.
    pub enabled: bool,
    /// Its last handshake, or `never`.
    pub handshake: String,
    /// Where it last connected from, or `—`.
    pub endpoint: String,
    /// Received and sent (`1.2 MB in, 30 kB out`).
    pub traffic: String,
}

/// A peer's configuration, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedBox {
    /// The peer's name.
    pub name: String,
    /// The file's name.
    pub file_name: String,
    /// The wg-quick configuration.
    pub config: String,
    /// The QR code, an SVG document made by the service (not user input).
    pub qr_svg: Option<String>,
}

/// What the VPN page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpnPage {
    /// Whether the VPN is on.
    pub enabled: bool,
    /// The form's values: port, IPv4 subnet, IPv6 subnet, endpoint.
    pub port: String,
    /// IPv4 subnet.
    pub subnet4: String,
    /// IPv6 subnet.
    pub subnet6: String,
    /// Public address or name.
    pub endpoint: String,
    /// Facts: (what, value) rows (public key, addresses, where peers connect).
    pub facts: Vec<(String, String)>,
    /// What to do on the router, if anything.
    pub forwarding: Option<String>,
    /// The peers.
    pub peers: Vec<PeerRow>,
    /// A peer's configuration just made.
    pub issued: Option<IssuedBox>,
    /// The networks the admin pages are narrowed to, space-separated.
    pub admin_networks: String,
    /// The connected networks now, space-separated.
    pub connected: String,
    /// A refusal to show.
    pub error: Option<String>,
    /// A notice to show.
    pub notice: Option<String>,
}

fn issued_section(i: IssuedBox) -> impl IntoView {
    let href = format!(
        "data:text/plain;charset=utf-8,{}",
        percent_encoding::utf8_percent_encode(&i.config, percent_encoding::NON_ALPHANUMERIC)
    );
    let qr = i
        .qr_svg
        .map(|svg| view! { <div class="qr" id="peer-qr" inner_html=svg></div> });
    view! {
        <section id="issued" class="notice">
            <h2>{format!("{}: its configuration", i.name)}</h2>
            <p>"Scan the code with the WireGuard app, or download the file. This is shown once: the private key is not kept on the box."</p>
            {qr}
            <p><a id="peer-download" href=href download=i.file_name.clone()>{format!("Download {}", i.file_name)}</a></p>
            <pre id="peer-config" class="log">{i.config}</pre>
        </section>
    }
}

fn peer_row(p: PeerRow, csrf: String) -> impl IntoView {
    let base = format!("/admin/vpn/peers/{}", p.id);
    let (toggle, label) = if p.enabled {
        (format!("{base}/disable"), "Disable")
    } else {
        (format!("{base}/enable"), "Enable")
    };
    let state = if p.enabled { "enabled" } else { "disabled" };
    view! {
        <tr class="peer" data-peer=p.id.to_string()>
            <td>{p.name}</td>
            <td>{p.addresses}</td>
            <td>{state}</td>
            <td>{p.handshake}</td>
            <td>{p.endpoint}</td>
            <td>{p.traffic}</td>
            <td>
                <form method="post" action=toggle class="inline"><Csrf token=csrf.clone() /><button type="submit">{label}</button></form>
                <form method="post" action=format!("{base}/rekey") class="inline"><Csrf token=csrf.clone() /><button type="submit">"New key"</button></form>
                <form method="post" action=format!("{base}/remove") class="inline"><Csrf token=csrf /><button type="submit">"Remove"</button></form>
            </td>
        </tr>
    }
}

/// Remote access as the setup wizard's network step offers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupVpn {
    /// Whether it is on.
    pub enabled: bool,
    /// The public address or name, as saved or typed.
    pub endpoint: String,
    /// The box's VPN address when on (`10.8.0.1`).
    pub address: Option<String>,
}

/// The wizard's optional remote access box: on or off, and the endpoint; peers are
/// added on the Remote access page after setup.
pub fn setup_section(v: SetupVpn, csrf: String) -> impl IntoView {
    let state = match &v.address {
        Some(a) => format!("on: over the VPN, the box is at {a}"),
        None => "off".to_string(),
    };
    view! {
        <section id="setup-vpn">
            <h3>"Remote access (optional)"</h3>
            <p class="hint">"Manage the box from elsewhere over a WireGuard VPN; the admin pages stay closed to the internet. Add the phones and laptops that may connect on the Remote access page once setup is done."</p>
            <p>"Remote access: " <span id="setup-vpn-state">{state}</span></p>
            <form method="post" action="/setup/network/vpn" class="stack">
                <Csrf token=csrf />
                <label><input type="checkbox" name="enabled" value="on" checked=v.enabled />" Remote access on"</label>
                <label>"Public address or name " <input name="endpoint" value=v.endpoint placeholder="vpn.example.com" size="30" /></label>
                <p class="hint">"Left empty, peers are sent to the box's global IPv6 address; without one, forward UDP port 51820 on your router to this box and give the router's public address or name."</p>
                <button type="submit">"Save remote access"</button>
            </form>
        </section>
    }
}

/// Renders the VPN page.
pub fn page(shell: Shell, p: VpnPage) -> String {
    let csrf = shell.csrf.clone();
    admin_page("Remote access", shell, "/admin/vpn", move || {
        let facts = p
            .facts
            .into_iter()
            .map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> })
            .collect_view();
        let forwarding = p
            .forwarding
            .map(|f| view! { <p class="hint" id="forwarding">{f}</p> });
        let issued = p.issued.map(issued_section);
        let rows = p
            .peers
            .into_iter()
            .map(|r| peer_row(r, csrf.clone()))
            .collect_view();
        let state = if p.enabled { "on" } else { "off" };
        view! {
            <h1>"Remote access"</h1>
            <Message text=p.error />
            <Message text=p.notice ok=true />
            {issued}
            <section id="vpn">
                <h2>"VPN (WireGuard)"</h2>
                <p class="hint">"Administrators and viewers on the VPN reach the box as on its LAN, at its VPN address. HOSTNAME.local does not work over the VPN (it carries no multicast); use the address."</p>
                <table class="facts">
                    <tr><th>"Remote access"</th><td id="vpn-state">{state}</td></tr>
                    {facts}
                </table>
                {forwarding}
                <form method="post" action="/admin/vpn" class="stack">
                    <Csrf token=csrf.clone() />
                    <label><input type="checkbox" name="enabled" value="on" checked=p.enabled />" Remote access on"</label>
                    <label>"UDP port " <input name="port" value=p.port size="6" /></label>
                    <label>"IPv4 subnet " <input name="subnet4" value=p.subnet4 placeholder="10.8.0.0/24" /></label>
                    <label>"IPv6 subnet " <input name="subnet6" value=p.subnet6 placeholder="fd00:8::/64" /></label>
                    <label>"Public address or name " <input name="endpoint" value=p.endpoint placeholder="vpn.example.com" size="30" /></label>
                    <p class="hint">"Left empty, peers are sent to the box's global IPv6 address."</p>
                    <button type="submit">"Save"</button>
                </form>
            </section>
            <section id="peers">
                <h2>"Peers"</h2>
                <table class="list">
                    <tr><th>"Name"</th><th>"Addresses"</th><th>"State"</th><th>"Last handshake"</th><th>"From"</th><th>"Traffic"</th><th></th></tr>
                    {rows}
                </table>
                <form method="post" action="/admin/vpn/peers" class="stack">
                    <Csrf token=csrf.clone() />
                    <label>"Name " <input name="name" placeholder="Anna's laptop" maxlength="64" /></label>
                    <label>"Its own public key (optional) " <input name="public_key" size="46" placeholder="only if the device made its own key" /></label>
                    <button type="submit">"Add a peer"</button>
                </form>
            </section>
            <section id="admin-zone">
                <h2>"Who may open the admin pages"</h2>
                <p class="hint">{format!("The box's local networks ({}) and the VPN. Narrow the local networks to some of them here; leave empty for all.", p.connected)}</p>
                <form method="post" action="/admin/vpn/admin-networks" class="stack">
                    <Csrf token=csrf />
                    <label>"Only from " <input name="networks" value=p.admin_networks placeholder="192.168.1.0/24 2001:db8:1::/64" size="40" /></label>
                    <button type="submit">"Save"</button>
                </form>
            </section>
        }
    })
}
