//! Remote management over WireGuard, and who may open the admin pages.
//!
//! **The VPN.** When the admin turns it on, the box is a WireGuard server on a UDP port
//! (51820 by default) with the first address of an IPv4 subnet (private, RFC 1918) and
//! of an IPv6 subnet (unique local, RFC 4193); each peer gets the next free address of
//! both. A peer's private key is made here, put in its configuration file and QR code
//! ([`Issued`]), shown once and never stored; only its public key is kept. The box's
//! own private key never leaves the network helper, which keeps it root's in the state
//! area and sets the interface up ([`crate::system::wireguard`]). Every change is
//! checked here, applied through the helper, then saved, and is in the audit log
//! (`vpn.settings`, `vpn.peer.add`, `vpn.peer.rekey`, `vpn.peer.disable`,
//! `vpn.peer.enable`, `vpn.peer.remove`); a disabled or removed peer leaves the kernel's
//! peer list at once, so its next handshake is refused.
//!
//! **Zones.** The admin pages, the setup wizard, sign-in and the API answer only to the
//! LAN and the VPN ([`Vpn::admits`]): the LAN is the prefixes the box's interfaces are
//! connected to (IPv4 and IPv6, loopback included), or the networks the admin narrowed
//! it to (`admin.networks`); the VPN is its two subnets while it is on. The firewall
//! cannot tell an admin page from a viewer's on the same port, so this check in the
//! service is what keeps them apart, on the appliance and on a developer's machine
//! alike.

use super::{iso_ms as iso, now_ms, Actor, Refused};
use crate::system::netplan_helper::{self as helper, Answer, HelperError, Request};
use crate::system::network::Interface;
use crate::system::wireguard::{self, PeerConfig, PeerStatus, Tunnel, TunnelPeer};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The setting the VPN's settings are kept in (JSON, [`Settings`]).
const SETTING: &str = "vpn";
/// The setting with the box's public key (Base64), as the helper last gave it.
const KEY_SETTING: &str = "vpn_public_key";
/// The setting with the networks the admin narrowed the LAN to (JSON list).
const NETWORKS_SETTING: &str = "admin_networks";
/// The default UDP port.
pub const DEFAULT_PORT: u16 = 51820;
/// The longest peer name, in characters.
pub const MAX_NAME: usize = 64;
/// The most networks the LAN can be narrowed to.
pub const MAX_NETWORKS: usize = 32;
/// How long the helper may take to set the interface up.
const HELPER_DEADLINE: Duration = Duration::from_secs(30);
/// How long a page waits for the kernel's view of the peers before it shows none.
const STATUS_DEADLINE: Duration = Duration::from_secs(5);

/// The VPN's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Whether the box is a WireGuard server now.
    pub enabled: bool,
    /// The UDP port it listens on.
    pub port: u16,
    /// The IPv4 subnet; the box is its first address.
    pub subnet4: Ipv4Net,
    /// The IPv6 subnet (unique local); the box is its first address.
    pub subnet6: Ipv6Net,
    /// The public address or name peers reach the box at (`HOST`, or `HOST:PORT` when
    /// the router forwards another port); `None`: the box's global IPv6 address.
    pub endpoint: Option<String>,
}

/// A change of the settings; what is left out stays (or takes its default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// On or off.
    pub enabled: Option<bool>,
    /// The UDP port.
    pub port: Option<u16>,
    /// The IPv4 subnet (`10.8.0.0/24`).
    pub subnet4: Option<String>,
    /// The IPv6 subnet (`fd00:8::/64`).
    pub subnet6: Option<String>,
    /// The public address or name; empty for the global IPv6 address.
    pub endpoint: Option<String>,
}

/// A peer, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// Its number.
    pub id: i64,
    /// Its name ("Anna's laptop").
    pub name: String,
    /// Its public key, Base64.
    pub public_key: String,
    /// Its IPv4 address on the VPN.
    pub address4: Ipv4Addr,
    /// Its IPv6 address on the VPN.
    pub address6: Ipv6Addr,
    /// Whether it may connect.
    pub enabled: bool,
    /// When it was added, ISO 8601 UTC.
    pub created: String,
    /// When its key was last set, ISO 8601 UTC.
    pub keyed: String,
}

/// A peer as the page and the API list it: kept, and as the kernel sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// The peer.
    #[serde(flatten)]
    pub peer: Peer,
    /// Its last handshake, ISO 8601 UTC; `None` if never (since the interface came up).
    pub latest_handshake: Option<String>,
    /// Where its last packet came from.
    pub endpoint: Option<String>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// A peer's configuration, shown once: when it is added or re-keyed.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// The peer.
    pub peer: Peer,
    /// A name for the file (`annas-laptop.conf`).
    pub file_name: String,
    /// The configuration file (wg-quick(8)); with the private key unless the peer
    /// brought its own public key.
    pub config: String,
    /// The configuration as a QR code (SVG), when it has the private key.
    pub qr_svg: Option<String>,
}

/// The VPN and the zones as the page and the API show them.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The settings; `None` until the VPN was first turned on.
    pub settings: Option<Settings>,
    /// The box's public key, once the VPN was on.
    pub public_key: Option<String>,
    /// The box's addresses on the VPN, the admin pages' URLs there.
    pub own_addresses: Vec<IpAddr>,
    /// Where peers are told to connect (`HOST:PORT`), if known.
    pub endpoint: Option<String>,
    /// What the admin must do on their router for peers to reach the box, if anything.
    pub forwarding: Option<String>,
    /// The peers.
    pub peers: Vec<PeerView>,
    /// The networks the LAN is narrowed to; empty: the connected prefixes.
    pub admin_networks: Vec<IpNet>,
    /// The connected prefixes now (what counts as the LAN when not narrowed).
    pub connected: Vec<IpNet>,
    /// Whether mDNS (`HOSTNAME.local`) works over the VPN: never (WireGuard carries no
    /// multicast, and avahi does not relay onto it).
    pub mdns_over_vpn: bool,
}

#[derive(Debug, Default)]
struct Cached {
    settings: Option<Settings>,
    networks: Vec<IpNet>,
}

/// The VPN's settings, peers and the zones. One per service; cheap to share.
pub struct Vpn {
    db: SqlitePool,
    socket: PathBuf,
    /// UDP ports the service itself uses, which the VPN may not take.
    reserved: Vec<std::ops::RangeInclusive<u16>>,
    /// What requests are checked against, without the database.
    cached: RwLock<Cached>,
    /// One change at a time.
    busy: tokio::sync::Mutex<()>,
}

fn unreachable(e: HelperError) -> Refused {
    match e {
        HelperError::Unavailable(why) => Refused::Unavailable(format!(
            "the VPN cannot be set up here: the appliance's network helper is not running ({why})"
        )),
        e => Refused::failed(e),
    }
}

/// `address` without an IPv4-mapped IPv6 form (`::ffff:192.0.2.1` is `192.0.2.1`).
fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// Each prefix the box's interfaces (other than the VPN's) are connected to, as often
/// as an address is on it.
fn connected_nets(interfaces: &[Interface]) -> impl Iterator<Item = IpNet> + '_ {
    interfaces
        .iter()
        .filter(|i| i.name != wireguard::INTERFACE)
        .flat_map(|i| &i.addresses)
        .filter_map(|a| IpNet::new(a.ip, a.prefix).ok().map(|n| n.trunc()))
}

/// The prefixes the box's interfaces (other than the VPN's) are connected to, sorted.
pub fn connected(interfaces: &[Interface]) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = connected_nets(interfaces).collect();
    nets.sort();
    nets.dedup();
    nets
}

/// `text` as a network: `ADDR/PREFIX`, or a bare address (one host).
///
/// # Errors
/// A sentence naming the text.
pub fn network(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{t:?} is not a network (192.168.1.0/24, 2001:db8:1::/64) or an address")
        })
}

/// A file name for peer `name`: lower-case letters, digits and `-`, `.conf`.
fn file_name(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    let s = if s.is_empty() { "peer" } else { s };
    format!("{}.conf", &s[..s.len().min(40)])
}

/// Checks a peer's name.
///
/// # Errors
/// A sentence: empty, longer than [`MAX_NAME`], or with control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the peer needs a name (\"Anna's laptop\")".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a peer's name has at most {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a peer's name must not have control characters".into());
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    public_key: String,
    host: i64,
    enabled: bool,
    created_ms: i64,
    keyed_ms: i64,
}

impl Vpn {
    /// The VPN over `db`, set up through the helper at `socket`; the service's own UDP
    /// ports (`reserved`) are refused as the VPN's. Call [`Vpn::load`] before serving.
    pub fn new(
        db: SqlitePool,
        socket: PathBuf,
        reserved: Vec<std::ops::RangeInclusive<u16>>,
    ) -> Arc<Vpn> {
        Arc::new(Vpn {
            db,
            socket,
            reserved,
            cached: RwLock::new(Cached::default()),
            busy: tokio::sync::Mutex::new(()),
        })
    }

    fn cache(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cached.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cached> {
        self.cached.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the settings and the admin's networks into memory, for [`Vpn::admits`].
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn load(&self) -> Result<(), Refused> {
        let settings = self.settings().await?;
        let networks = self.networks().await?;
        *self.cache_mut() = Cached { settings, networks };
        Ok(())
    }

    /// Sets the interface up again as the database has it (at start: the database may
    /// have been restored, or the helper's state lost); logged, not fatal.
    pub async fn apply_saved(&self) {
        let Some(s) = self.cache().settings.clone().filter(|s| s.enabled) else {
            return;
        };
        let _busy = self.busy.lock().await;
        let result = match self.peers().await {
            Ok(peers) => self.apply(Some(tunnel(&s, &peers))).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "setting the VPN up at start failed");
        }
    }

    /// Whether a request from `client` may reach the admin pages, the setup wizard,
    /// sign-in and the API: from the LAN (the admin's networks, else a prefix of
    /// `interfaces`) or from the VPN's subnets while it is on.
    pub fn admits(&self, client: IpAddr, interfaces: &[Interface]) -> bool {
        let client = canonical(client);
        if self.on_vpn(client) {
            return true;
        }
        let c = self.cache();
        if !c.networks.is_empty() {
            return c.networks.iter().any(|n| n.contains(&client));
        }
        let mut lan = connected_nets(interfaces).peekable();
        if lan.peek().is_none() {
            // The kernel's interfaces are not known (yet): the box itself only.
            return client.is_loopback();
        }
        lan.any(|n| n.contains(&client))
    }

    /// Whether `client` is in the VPN's subnets while it is on.
    fn on_vpn(&self, client: IpAddr) -> bool {
        let c = self.cache();
        c.settings.as_ref().filter(|s| s.enabled).is_some_and(|s| {
            IpNet::from(s.subnet4).contains(&client) || IpNet::from(s.subnet6).contains(&client)
        })
    }

    /// The settings saved, if the VPN was ever turned on.
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn settings(&self) -> Result<Option<Settings>, Refused> {
        super::json_setting(&self.db, SETTING).await
    }

    async fn networks(&self) -> Result<Vec<IpNet>, Refused> {
        Ok(super::json_setting(&self.db, NETWORKS_SETTING)
            .await?
            .unwrap_or_default())
    }

    /// The peers, oldest first.
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn peers(&self) -> Result<Vec<Peer>, Refused> {
        let s = self.cache().settings.clone();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, public_key, host, enabled, created_ms, keyed_ms FROM vpn_peers ORDER BY id",
        )
        .fetch_all(&self.db)
        .await
        .map_err(Refused::failed)?;
        let Some(s) = s else {
            return Ok(Vec::new());
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let (a4, a6) =
                    wireguard::host(&s.subnet4, &s.subnet6, u32::try_from(r.host).ok()?)?;
                Some(Peer {
                    id: r.id,
                    name: r.name,
                    public_key: r.public_key,
                    address4: a4,
                    address6: a6,
                    enabled: r.enabled,
                    created: iso(r.created_ms),
                    keyed: iso(r.keyed_ms),
                })
            })
            .collect())
    }

    /// The VPN and the zones as shown, the peers with the kernel's view of them.
    ///
    /// # Errors
    /// [`Refused::Failed`] when the database fails.
    pub async fn view(&self, interfaces: &[Interface]) -> Result<View, Refused> {
        let settings = self.cache().settings.clone();
        let peers = self.peers().await?;
        let status = match settings.as_ref().filter(|s| s.enabled) {
            Some(_) => match helper::call(&self.socket, &Request::VpnStatus, STATUS_DEADLINE).await
            {
                Ok(Answer::VpnStatus { peers }) => peers,
                Ok(a) => {
                    tracing::warn!(answer = ?a, "the network helper gave no VPN status");
                    Vec::new()
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no VPN status");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let public_key = crate::db::setting(&self.db, KEY_SETTING)
            .await
            .map_err(Refused::failed)?
            .filter(|k| !k.is_empty());
        let endpoint = settings
            .as_ref()
            .and_then(|s| endpoint_of(s, interfaces).ok());
        let forwarding = settings.as_ref().map(|s| forwarding(s, interfaces));
        let own_addresses = settings
            .as_ref()
            .filter(|s| s.enabled)
            .map(|s| {
                let (a4, a6) = wireguard::own_addresses(&s.subnet4, &s.subnet6);
                vec![IpAddr::V4(a4), IpAddr::V6(a6)]
            })
            .unwrap_or_default();
        Ok(View {
            peers: peers.into_iter().map(|p| with_status(p, &status)).collect(),
            settings,
            public_key,
            own_addresses,
            endpoint,
            forwarding: forwarding.flatten(),
            admin_networks: self.cache().networks.clone(),
            connected: connected(interfaces),
            mdns_over_vpn: false,
        })
    }

    /// Changes the settings (turning the VPN on makes them from defaults the first
    /// time: port 51820, random subnets), applies them and saves them.
    ///
    /// # Errors
    /// [`Refused::Invalid`]: a port the service uses, or that something else holds; a
    /// subnet [`wireguard::check_subnets`] refuses or that overlaps a connected
    /// prefix; new subnets while there are peers (their addresses would change); an
    /// endpoint [`wireguard::endpoint`] refuses. [`Refused::Unavailable`] without the
    /// helper (a developer's machine). [`Refused::Failed`] when the helper or the
    /// database fails. Nothing is changed then.
    pub async fn set(
        &self,
        actor: &Actor,
        change: Change,
        interfaces: &[Interface],
    ) -> Result<View, Refused> {
        {
            let _busy = self.busy.lock().await;
            let old = self.settings().await?;
            let (subnet4, subnet6) = match &old {
                Some(o) => (o.subnet4, o.subnet6),
                None => wireguard::random_subnets(),
            };
            let parse4 = |t: &str| {
                t.trim().parse::<Ipv4Net>().map_err(|_| {
                    Refused::Invalid(format!("{t:?} is not an IPv4 subnet (10.8.0.0/24)"))
                })
            };
            let parse6 = |t: &str| {
                t.trim().parse::<Ipv6Net>().map_err(|_| {
                    Refused::Invalid(format!("{t:?} is not an IPv6 subnet (fd00:8::/64)"))
                })
            };
            let new = Settings {
                enabled: change
                    .enabled
                    .unwrap_or(old.as_ref().is_some_and(|o| o.enabled)),
                port: change
                    .port
                    .unwrap_or(old.as_ref().map_or(DEFAULT_PORT, |o| o.port)),
                subnet4: change.subnet4.as_deref().map_or(Ok(subnet4), parse4)?,
                subnet6: change.subnet6.as_deref().map_or(Ok(subnet6), parse6)?,
                endpoint: match change.endpoint {
                    Some(e) if e.trim().is_empty() => None,
                    Some(e) => Some(e.trim().to_string()),
                    None => old.as_ref().and_then(|o| o.endpoint.clone()),
                },
            };
            let peers = self.peers().await?;
            self.check(&new, old.as_ref(), &peers, interfaces)?;
            let tunnel = new.enabled.then(|| tunnel(&new, &peers));
            self.apply(tunnel).await?;
            let text = serde_json::to_string(&new).map_err(Refused::failed)?;
            crate::db::set_setting(&self.db, SETTING, &text)
                .await
                .map_err(Refused::failed)?;
            let detail = format!(
                "{} on UDP port {}, {} and {}{}",
                if new.enabled { "on" } else { "off" },
                new.port,
                new.subnet4,
                new.subnet6,
                new.endpoint
                    .as_ref()
                    .map(|e| format!(", endpoint {e}"))
                    .unwrap_or_default()
            );
            self.cache_mut().settings = Some(new);
            self.audit(actor, "vpn.settings", &detail).await;
        }
        self.view(interfaces).await
    }

    fn check(
        &self,
        new: &Settings,
        old: Option<&Settings>,
        peers: &[Peer],
        interfaces: &[Interface],
    ) -> Result<(), Refused> {
        let invalid = |m: String| Err(Refused::Invalid(m));
        if new.port == 0 {
            return invalid("the VPN's port must be 1-65535".into());
        }
        if let Some(r) = self.reserved.iter().find(|r| r.contains(&new.port)) {
            return invalid(format!(
                "UDP port {} is the service's own ({}-{}); choose another for the VPN",
                new.port,
                r.start(),
                r.end()
            ));
        }
        wireguard::check_subnets(&new.subnet4, &new.subnet6).map_err(Refused::Invalid)?;
        if let Some(n) = connected(interfaces).into_iter().find(|n| {
            let v4 = IpNet::from(new.subnet4);
            let v6 = IpNet::from(new.subnet6);
            n.contains(&v4) || v4.contains(n) || n.contains(&v6) || v6.contains(n)
        }) {
            return invalid(format!(
                "the VPN's subnets ({} and {}) overlap {n}, a network this box is on; choose others",
                new.subnet4, new.subnet6
            ));
        }
        if let Some(o) = old {
            if !peers.is_empty() && (o.subnet4 != new.subnet4 || o.subnet6 != new.subnet6) {
                return invalid(
                    "the subnets cannot change while there are peers (their addresses would); remove the peers first".into(),
                );
            }
        }
        if let Some(e) = &new.endpoint {
            wireguard::endpoint(e, new.port).map_err(Refused::Invalid)?;
        }
        // The kernel's own socket holds the port while the VPN is on it.
        let holding = old.is_some_and(|o| o.enabled && o.port == new.port);
        if new.enabled && !holding {
            if let Some(e) = port_taken(new.port) {
                return invalid(format!(
                    "UDP port {} is in use on this box ({e}); choose another for the VPN",
                    new.port
                ));
            }
        }
        Ok(())
    }

    /// Adds peer `name`, with a key pair made for it, or with `public_key` when it
    /// brings its own.
    ///
    /// # Errors
    /// [`Refused::Invalid`]: a name [`check_name`] refuses; a bad public key; the VPN
    /// off; no endpoint known to tell the peer; no address left.
    /// [`Refused::Conflict`]: a name or key another peer has. As [`Vpn::set`] for the
    /// helper and the database.
    pub async fn add_peer(
        &self,
        actor: &Actor,
        name: &str,
        public_key: Option<&str>,
        interfaces: &[Interface],
    ) -> Result<Issued, Refused> {
        let name = name.trim();
        check_name(name).map_err(Refused::Invalid)?;
        let _busy = self.busy.lock().await;
        let s = self.on()?;
        let endpoint = endpoint_of(&s, interfaces).map_err(Refused::Invalid)?;
        let peers = self.peers().await?;
        if peers.len() >= wireguard::MAX_PEERS {
            return Err(Refused::Invalid(format!(
                "the VPN has {} peers, the most it takes; remove one first",
                peers.len()
            )));
        }
        if peers.iter().any(|p| p.name == name) {
            return Err(Refused::Conflict(format!(
                "a peer is already named {name:?}"
            )));
        }
        let (private, public) = match public_key {
            Some(k) if !k.trim().is_empty() => {
                let k = k.trim();
                wireguard::key_bytes(k).map_err(Refused::Invalid)?;
                (None, k.to_string())
            }
            _ => {
                let (private, public) = wireguard::key_pair().map_err(Refused::failed)?;
                (Some(private), public)
            }
        };
        if peers.iter().any(|p| p.public_key == public) {
            return Err(Refused::Conflict("another peer has this public key".into()));
        }
        let used: Vec<Ipv4Addr> = peers.iter().map(|p| p.address4).collect();
        let (n, (a4, a6)) = (2u32..)
            .map_while(|n| wireguard::host(&s.subnet4, &s.subnet6, n).map(|h| (n, h)))
            .find(|(_, (a4, _))| !used.contains(a4))
            .ok_or_else(|| {
                Refused::Invalid(format!(
                    "no address is left in {} for another peer",
                    s.subnet4
                ))
            })?;
        let now = now_ms();
        let peer = Peer {
            id: 0,
            name: name.to_string(),
            public_key: public.clone(),
            address4: a4,
            address6: a6,
            enabled: true,
            created: iso(now),
            keyed: iso(now),
        };
        let mut all = peers;
        all.push(peer.clone());
        self.apply(Some(tunnel(&s, &all))).await?;
        let id = sqlx::query(
            "INSERT INTO vpn_peers (name, public_key, host, enabled, created_ms, keyed_ms) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(name)
        .bind(&public)
        .bind(i64::from(n))
        .bind(now)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(Refused::failed)?
        .last_insert_rowid();
        let peer = Peer { id, ..peer };
        self.audit(
            actor,
            "vpn.peer.add",
            &format!(
                "{name:?} at {a4} and {a6}{}",
                if private.is_none() { ", own key" } else { "" }
            ),
        )
        .await;
        issue(&s, peer, private, endpoint, self.public_key().await?)
    }

    /// Gives peer `id` a new key pair: its old configuration stops working at once.
    ///
    /// # Errors
    /// [`Refused::NotFound`]; otherwise as [`Vpn::add_peer`].
    pub async fn rekey(
        &self,
        actor: &Actor,
        id: i64,
        interfaces: &[Interface],
    ) -> Result<Issued, Refused> {
        let _busy = self.busy.lock().await;
        let s = self.on()?;
        let endpoint = endpoint_of(&s, interfaces).map_err(Refused::Invalid)?;
        let mut peers = self.peers().await?;
        let i = find(&peers, id)?;
        let (private, public) = wireguard::key_pair().map_err(Refused::failed)?;
        peers[i].public_key = public.clone();
        self.apply(Some(tunnel(&s, &peers))).await?;
        let now = now_ms();
        sqlx::query("UPDATE vpn_peers SET public_key = ?, keyed_ms = ? WHERE id = ?")
            .bind(&public)
            .bind(now)
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(Refused::failed)?;
        let mut peer = peers[i].clone();
        peer.keyed = iso(now);
        self.audit(actor, "vpn.peer.rekey", &format!("{:?}", peer.name))
            .await;
        issue(&s, peer, Some(private), endpoint, self.public_key().await?)
    }

    /// Lets peer `id` connect again, or not: a disabled peer leaves the kernel's list at
    /// once.
    ///
    /// # Errors
    /// [`Refused::NotFound`]; otherwise as [`Vpn::set`].
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        id: i64,
        enabled: bool,
    ) -> Result<Peer, Refused> {
        let _busy = self.busy.lock().await;
        let mut peers = self.peers().await?;
        let i = find(&peers, id)?;
        peers[i].enabled = enabled;
        let on = self.cache().settings.clone().filter(|s| s.enabled);
        if let Some(s) = on {
            self.apply(Some(tunnel(&s, &peers))).await?;
        }
        sqlx::query("UPDATE vpn_peers SET enabled = ? WHERE id = ?")
            .bind(enabled)
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(Refused::failed)?;
        let action = if enabled {
            "vpn.peer.enable"
        } else {
            "vpn.peer.disable"
        };
        self.audit(actor, action, &format!("{:?}", peers[i].name))
            .await;
        Ok(peers.swap_remove(i))
    }

    /// Removes peer `id`: it leaves the kernel's list at once.
    ///
    /// # Errors
    /// [`Refused::NotFound`]; otherwise as [`Vpn::set`].
    pub async fn remove(&self, actor: &Actor, id: i64) -> Result<(), Refused> {
        let _busy = self.busy.lock().await;
        let mut peers = self.peers().await?;
        let i = find(&peers, id)?;
        let gone = peers.remove(i);
        let on = self.cache().settings.clone().filter(|s| s.enabled);
        if let Some(s) = on {
            self.apply(Some(tunnel(&s, &peers))).await?;
        }
        sqlx::query("DELETE FROM vpn_peers WHERE id = ?")
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(Refused::failed)?;
        self.audit(actor, "vpn.peer.remove", &format!("{:?}", gone.name))
            .await;
        Ok(())
    }

    /// Narrows the LAN, for the admin pages, to `networks` (none: the connected
    /// prefixes again).
    ///
    /// # Errors
    /// [`Refused::Invalid`]: a network [`network`] refuses, more than
    /// [`MAX_NETWORKS`], or networks that leave out `client` (the admin asking; `None`
    /// from the CLI) when it is not on the VPN: the change would lock them out.
    /// [`Refused::Failed`] when the database fails.
    pub async fn set_admin_networks(
        &self,
        actor: &Actor,
        networks: &[String],
        client: Option<IpAddr>,
        interfaces: &[Interface],
    ) -> Result<View, Refused> {
        {
            let _busy = self.busy.lock().await;
            let nets = networks
                .iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| network(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Refused::Invalid)?;
            if nets.len() > MAX_NETWORKS {
                return Err(Refused::Invalid(format!(
                    "at most {MAX_NETWORKS} networks may be given"
                )));
            }
            if let Some(c) = client.map(canonical) {
                let inside = nets.is_empty() && connected_nets(interfaces).any(|n| n.contains(&c))
                    || nets.iter().any(|n| n.contains(&c));
                if !self.on_vpn(c) && !inside {
                    return Err(Refused::Invalid(format!(
                        "you are at {c}, which these networks leave out: the change would lock you out of the admin pages"
                    )));
                }
            }
            let text = serde_json::to_string(&nets).map_err(Refused::failed)?;
            crate::db::set_setting(&self.db, NETWORKS_SETTING, &text)
                .await
                .map_err(Refused::failed)?;
            let detail = if nets.is_empty() {
                "the connected networks".to_string()
            } else {
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.cache_mut().networks = nets;
            self.audit(actor, "admin.networks", &detail).await;
        }
        self.view(interfaces).await
    }

    /// The settings, when the VPN is on.
    fn on(&self) -> Result<Settings, Refused> {
        self.cache()
            .settings
            .clone()
            .filter(|s| s.enabled)
            .ok_or_else(|| Refused::Invalid("the VPN is off; turn remote access on first".into()))
    }

    async fn public_key(&self) -> Result<String, Refused> {
        crate::db::setting(&self.db, KEY_SETTING)
            .await
            .map_err(Refused::failed)?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Refused::failed("the box's VPN key is not known"))
    }

    /// Has the helper set the interface up as `tunnel` says (`None`: taken down), and
    /// keeps the box's public key it answers with.
    async fn apply(&self, tunnel: Option<Tunnel>) -> Result<(), Refused> {
        if let Some(t) = &tunnel {
            t.check().map_err(Refused::Invalid)?;
        }
        let answer = helper::call(&self.socket, &Request::Vpn { tunnel }, HELPER_DEADLINE)
            .await
            .map_err(unreachable)?;
        match answer {
            Answer::Vpn { public_key } => {
                if let Some(k) = public_key {
                    crate::db::set_setting(&self.db, KEY_SETTING, &k)
                        .await
                        .map_err(Refused::failed)?;
                }
                Ok(())
            }
            Answer::Invalid { message } => Err(Refused::Invalid(message)),
            Answer::Failed { message } => Err(Refused::failed(message)),
            a => Err(Refused::failed(format!(
                "the network helper answered {a:?}"
            ))),
        }
    }

    async fn audit(&self, actor: &Actor, action: &str, detail: &str) {
        super::audit(&self.db, actor, action, detail).await;
    }
}

fn find(peers: &[Peer], id: i64) -> Result<usize, Refused> {
    peers
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| Refused::NotFound(format!("no VPN peer number {id}")))
}

/// The tunnel of settings `s` with the enabled ones of `peers`.
fn tunnel(s: &Settings, peers: &[Peer]) -> Tunnel {
    Tunnel {
        port: s.port,
        subnet4: s.subnet4,
        subnet6: s.subnet6,
        peers: peers
            .iter()
            .filter(|p| p.enabled)
            .map(|p| TunnelPeer {
                public_key: p.public_key.clone(),
                address4: p.address4,
                address6: p.address6,
            })
            .collect(),
    }
}

fn with_status(peer: Peer, status: &[PeerStatus]) -> PeerView {
    let st = status.iter().find(|s| s.public_key == peer.public_key);
    PeerView {
        latest_handshake: st
            .and_then(|s| s.latest_handshake)
            .map(|t| iso(i64::try_from(t).unwrap_or(0).saturating_mul(1000))),
        endpoint: st.and_then(|s| s.endpoint.clone()),
        rx_bytes: st.map_or(0, |s| s.rx_bytes),
        tx_bytes: st.map_or(0, |s| s.tx_bytes),
        peer,
    }
}

/// Where peers are told to connect: the admin's endpoint, else the box's first global
/// IPv6 address, at the VPN's port.
///
/// # Errors
/// A sentence saying what to set when there is neither.
fn endpoint_of(s: &Settings, interfaces: &[Interface]) -> Result<String, String> {
    if let Some(e) = &s.endpoint {
        return wireguard::endpoint(e, s.port);
    }
    match crate::system::network::global_ipv6_addresses(interfaces).first() {
        Some(a) => wireguard::endpoint(&a.to_string(), s.port),
        None => Err(format!(
            "the box has no global IPv6 address, so peers need its public IPv4 address or name: forward UDP port {} on your router to this box, then give the router's public address or name as the endpoint",
            s.port
        )),
    }
}

/// What the admin must do on their router, if anything.
fn forwarding(s: &Settings, interfaces: &[Interface]) -> Option<String> {
    let lan4 = interfaces
        .iter()
        .filter(|i| !i.loopback && i.name != wireguard::INTERFACE)
        .flat_map(|i| &i.addresses)
        .find_map(|a| match a.ip {
            IpAddr::V4(v4) if !v4.is_link_local() => Some(v4),
            _ => None,
        });
    match (&s.endpoint, lan4) {
        (None, _) if !crate::system::network::global_ipv6_addresses(interfaces).is_empty() => Some(format!(
            "Peers connect to the box's global IPv6 address; if the router has a firewall for IPv6, allow UDP port {} to this box.",
            s.port
        )),
        (_, Some(a)) => Some(format!(
            "On the router, forward UDP port {} to {a} (this box), and give the router's public address or name as the endpoint.",
            s.port
        )),
        (_, None) => Some(format!("On the router, forward UDP port {} to this box.", s.port)),
    }
}

fn issue(
    s: &Settings,
    peer: Peer,
    private: Option<String>,
    endpoint: String,
    server_key: String,
) -> Result<Issued, Refused> {
    let config = PeerConfig {
        private_key: private.clone(),
        address4: peer.address4,
        address6: peer.address6,
        server_key,
        endpoint,
        allowed: (s.subnet4, s.subnet6),
    }
    .render();
    let qr_svg = match private {
        Some(_) => Some(wireguard::qr_svg(&config).map_err(Refused::failed)?),
        None => None,
    };
    Ok(Issued {
        file_name: file_name(&peer.name),
        peer,
        config,
        qr_svg,
    })
}

/// Whether UDP `port` is taken on this box (something is bound to it), and by what
/// error.
fn port_taken(port: u16) -> Option<String> {
    // One at a time: a dual-stack IPv6 socket would collide with our own IPv4 one.
    let taken = |r: std::io::Result<std::net::UdpSocket>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Some(e.to_string()),
        _ => None,
    };
    taken(std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
        .or_else(|| taken(std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::network::Address;

    fn lan() -> Vec<Interface> {
        let iface = |name: &str, loopback, addrs: &[(&str, u8)]| Interface {
            name: name.into(),
            loopback,
            addresses: addrs
                .iter()
                .map(|(ip, prefix)| Address {
                    ip: ip.parse().expect("ip"),
                    prefix: *prefix,
                })
                .collect(),
        };
        vec![
            iface("lo", true, &[("127.0.0.1", 8), ("::1", 128)]),
            iface(
                "enp1s0",
                false,
                &[
                    ("192.168.1.20", 24),
                    ("2001:db8:1::20", 64),
                    ("fe80::20", 64),
                ],
            ),
        ]
    }

    #[test]
    fn names_and_networks_are_checked() {
        assert!(check_name("Anna's laptop").is_ok());
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\nb").is_err());
        assert_eq!(file_name("Anna's laptop"), "anna-s-laptop.conf");
        assert_eq!(file_name("!!!"), "peer.conf");
        assert_eq!(
            network("192.168.1.7/24").map(|n| n.to_string()),
            Ok("192.168.1.0/24".into())
        );
        assert_eq!(
            network("2001:db8::1").map(|n| n.to_string()),
            Ok("2001:db8::1/128".into())
        );
        assert!(network("lan").is_err());
        let c: Vec<String> = connected(&lan()).iter().map(ToString::to_string).collect();
        assert_eq!(
            c,
            [
                "127.0.0.0/8",
                "192.168.1.0/24",
                "::1/128",
                "2001:db8:1::/64",
                "fe80::/64"
            ]
        );
    }

    #[tokio::test]
    async fn the_admin_zone_is_the_lan_the_vpn_or_the_narrowed_networks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::open(dir.path()).await.expect("db");
        let vpn = Vpn::new(db, PathBuf::from("/nonexistent"), vec![40000..=40999]);
        let lan = lan();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(vpn.admits(ip("192.168.1.77"), &lan));
        assert!(vpn.admits(ip("::ffff:192.168.1.77"), &lan));
        assert!(vpn.admits(ip("2001:db8:1::99"), &lan));
        assert!(vpn.admits(ip("127.0.0.1"), &lan));
        assert!(!vpn.admits(ip("192.168.2.1"), &lan));
        assert!(!vpn.admits(ip("2001:db8:2::1"), &lan));
        assert!(!vpn.admits(ip("10.8.0.2"), &lan));
        assert!(vpn.admits(ip("127.0.0.1"), &[]), "the box itself");
        assert!(!vpn.admits(ip("192.168.1.77"), &[]));

        let me = Actor::cli();
        let narrowed = vec!["192.168.1.64/26".to_string()];
        let r = vpn
            .set_admin_networks(&me, &narrowed, Some(ip("192.168.1.20")), &lan)
            .await;
        assert!(matches!(r, Err(Refused::Invalid(_))), "locks the asker out");
        vpn.set_admin_networks(&me, &narrowed, Some(ip("192.168.1.77")), &lan)
            .await
            .expect("narrowed");
        assert!(vpn.admits(ip("192.168.1.77"), &lan));
        assert!(!vpn.admits(ip("192.168.1.20"), &lan));
        assert!(!vpn.admits(ip("127.0.0.1"), &lan));

        // The VPN's subnets while it is on.
        vpn.cache_mut().settings = Some(Settings {
            enabled: true,
            port: DEFAULT_PORT,
            subnet4: "10.8.0.0/24".parse().expect("net"),
            subnet6: "fd00:8::/64".parse().expect("net"),
            endpoint: None,
        });
        assert!(vpn.admits(ip("10.8.0.2"), &lan));
        assert!(vpn.admits(ip("fd00:8::2"), &lan));
        vpn.set_admin_networks(&me, &[], Some(ip("10.8.0.2")), &lan)
            .await
            .expect("from the VPN");
        assert!(vpn.admits(ip("192.168.1.20"), &lan));
    }

    #[tokio::test]
    async fn the_peer_limit_and_the_subnets_of_a_vpn_with_peers_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::open(dir.path()).await.expect("db");
        let vpn = Vpn::new(db.clone(), PathBuf::from("/nonexistent"), vec![]);
        let on = Settings {
            enabled: true,
            port: DEFAULT_PORT,
            subnet4: "10.8.0.0/23".parse().expect("net"),
            subnet6: "fd00:8::/64".parse().expect("net"),
            endpoint: Some("vpn.example.com".into()),
        };
        let text = serde_json::to_string(&on).expect("json");
        crate::db::set_setting(&db, SETTING, &text)
            .await
            .expect("save");
        vpn.load().await.expect("load");
        for n in 0..wireguard::MAX_PEERS {
            let key = wireguard::key_pair().expect("keys").1;
            sqlx::query("INSERT INTO vpn_peers (name, public_key, host, created_ms, keyed_ms) VALUES (?, ?, ?, 0, 0)")
                .bind(format!("peer {n}"))
                .bind(key)
                .bind(n as i64 + 2)
                .execute(&db)
                .await
                .expect("insert");
        }
        let me = Actor::cli();
        let r = vpn.add_peer(&me, "one more", None, &lan()).await;
        assert!(
            matches!(&r, Err(Refused::Invalid(m)) if m.contains("the most it takes")),
            "{r:?}"
        );
        let r = vpn
            .add_peer(&me, "peer 7", None, &lan())
            .await
            .map(|i| i.peer.name);
        assert!(matches!(r, Err(Refused::Invalid(_))), "limit first: {r:?}");
        sqlx::query("DELETE FROM vpn_peers WHERE name = 'peer 9'")
            .execute(&db)
            .await
            .expect("delete");
        let r = vpn.add_peer(&me, "peer 7", None, &lan()).await;
        assert!(matches!(r, Err(Refused::Conflict(_))), "{r:?}");
        // Other subnets would readdress every peer: refused while there are some.
        let change = Change {
            subnet4: Some("10.9.0.0/23".into()),
            ..Change::default()
        };
        let r = vpn.set(&me, change, &lan()).await;
        assert!(
            matches!(&r, Err(Refused::Invalid(m)) if m.contains("remove the peers first")),
            "{r:?}"
        );
        assert_eq!(vpn.settings().await.expect("settings"), Some(on));
    }

    #[tokio::test]
    async fn settings_are_refused_with_the_reason_and_nothing_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::db::open(dir.path()).await.expect("db");
        let vpn = Vpn::new(
            db,
            PathBuf::from("/nonexistent"),
            vec![40000..=40999, 5353..=5353],
        );
        let lan = lan();
        let me = Actor::cli();
        let try_set = |c: Change| {
            let vpn = vpn.clone();
            let lan = lan.clone();
            let me = me.clone();
            async move { vpn.set(&me, c, &lan).await }
        };
        let refused = |r: Result<View, Refused>| match r {
            Err(Refused::Invalid(m)) => m,
            other => panic!("not refused: {other:?}"),
        };
        let on = |c: Change| Change {
            enabled: Some(true),
            ..c
        };
        let m = refused(
            try_set(on(Change {
                port: Some(5353),
                ..Change::default()
            }))
            .await,
        );
        assert!(m.contains("service's own"), "{m}");
        let m = refused(
            try_set(on(Change {
                subnet4: Some("192.168.1.0/24".into()),
                ..Change::default()
            }))
            .await,
        );
        assert!(m.contains("overlap"), "{m}");
        let m = refused(
            try_set(on(Change {
                subnet6: Some("2001:db8:9::/64".into()),
                ..Change::default()
            }))
            .await,
        );
        assert!(m.contains("unique local"), "{m}");
        let m = refused(
            try_set(on(Change {
                endpoint: Some("not a host".into()),
                ..Change::default()
            }))
            .await,
        );
        assert!(m.contains("not a host name"), "{m}");
        // A port something else holds, outside the service's own (which the kernel's
        // ephemeral range also covers).
        let held =
            std::iter::repeat_with(|| std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("bind"))
                .find(|s| !(40000..=40999).contains(&s.local_addr().expect("addr").port()))
                .expect("a port");
        let port = held.local_addr().expect("addr").port();
        let m = refused(
            try_set(on(Change {
                port: Some(port),
                ..Change::default()
            }))
            .await,
        );
        assert!(m.contains("in use"), "{m}");
        // Valid settings, but no helper here: unavailable, and nothing saved.
        let r = try_set(on(Change::default())).await;
        assert!(matches!(r, Err(Refused::Unavailable(_))), "{r:?}");
        assert_eq!(vpn.settings().await.expect("settings"), None);
        assert!(!vpn.admits("10.8.0.2".parse().expect("ip"), &lan));
        let r = vpn.add_peer(&me, "Anna's laptop", None, &lan).await;
        assert!(matches!(r, Err(Refused::Invalid(_))), "VPN off");
    }
}
