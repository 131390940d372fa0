//! WireGuard, for remote management over a VPN: keys (X25519, RFC 7748 §5), the
//! interface as the network helper sets it up ([`Tunnel`], applied with `ip(8)` and
//! `wg(8)` as fixed argument vectors), a peer's configuration file (wg-quick(8)'s
//! format) and its QR code, and the kernel's view of the peers (`wg show INTERFACE
//! dump`, [`parse_dump`]).
//!
//! Keys are 32 bytes, written as standard Base64 with padding (44 characters), as every
//! WireGuard tool writes them.

use base64::Engine;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The VPN's network interface.
pub const INTERFACE: &str = "wg-streambox";

/// Where the helper keeps the box's private key (root only, 0600) and the tunnel it set
/// up last ([`Tunnel`] as JSON), so that it sets it up again at boot.
pub const STATE_DIR: &str = "/mnt/state/host/wireguard";

/// Seconds between a peer's keepalive packets, so a peer behind NAT stays reachable.
pub const KEEPALIVE_SECONDS: u16 = 25;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A new private key from the operating system's random source, Base64.
///
/// # Errors
/// When the operating system gives no random bytes.
pub fn private_key() -> Result<String, String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("no random bytes for a key: {e}"))?;
    Ok(B64.encode(bytes))
}

/// The public key of the private key `private` (both Base64), as `wg pubkey` gives it.
///
/// # Errors
/// `private` is not a key ([`key_bytes`]).
pub fn public_key(private: &str) -> Result<String, String> {
    let secret = x25519_dalek::StaticSecret::from(key_bytes(private)?);
    Ok(B64.encode(x25519_dalek::PublicKey::from(&secret).as_bytes()))
}

/// A new key pair, Base64: (private, public).
///
/// # Errors
/// As [`private_key`].
pub fn key_pair() -> Result<(String, String), String> {
    let private = private_key()?;
    let public = public_key(&private)?;
    Ok((private, public))
}

/// The 32 bytes of a Base64 key.
///
/// # Errors
/// A sentence: not 44 characters of Base64, or not 32 bytes.
pub fn key_bytes(key: &str) -> Result<[u8; 32], String> {
    let key = key.trim();
    let bad = || {
        format!("{key:?} is not a WireGuard key (44 characters of Base64, as `wg pubkey` prints)")
    };
    if key.len() != 44 {
        return Err(bad());
    }
    let bytes = B64.decode(key).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// One peer of the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelPeer {
    /// Its public key, Base64.
    pub public_key: String,
    /// Its address in the IPv4 subnet.
    pub address4: Ipv4Addr,
    /// Its address in the IPv6 subnet.
    pub address6: Ipv6Addr,
}

/// The interface as the helper sets it up: the box is the first address of each subnet
/// and listens on `port`; each enabled peer may send from its two addresses only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    /// The UDP port it listens on.
    pub port: u16,
    /// The IPv4 subnet (private, RFC 1918).
    pub subnet4: Ipv4Net,
    /// The IPv6 subnet (unique local, RFC 4193).
    pub subnet6: Ipv6Net,
    /// The peers that may connect.
    pub peers: Vec<TunnelPeer>,
}

/// The most peers one VPN has.
pub const MAX_PEERS: usize = 250;

impl Tunnel {
    /// The box's own addresses: the first host of each subnet.
    pub fn own(&self) -> (Ipv4Addr, Ipv6Addr) {
        own_addresses(&self.subnet4, &self.subnet6)
    }

    /// Checks the tunnel on its own (the service before asking, the helper again).
    ///
    /// # Errors
    /// A sentence: port 0, subnets [`check_subnets`] refuses, more than [`MAX_PEERS`]
    /// peers, a peer with a bad key, an address outside its subnet or the box's own, or
    /// a key or address given twice.
    pub fn check(&self) -> Result<(), String> {
        if self.port == 0 {
            return Err("the VPN's port must be 1-65535".into());
        }
        check_subnets(&self.subnet4, &self.subnet6)?;
        if self.peers.len() > MAX_PEERS {
            return Err(format!("a VPN has at most {MAX_PEERS} peers"));
        }
        let (own4, own6) = self.own();
        for (i, p) in self.peers.iter().enumerate() {
            key_bytes(&p.public_key)?;
            if !self.subnet4.contains(&p.address4)
                || !self.subnet6.contains(&p.address6)
                || p.address4 == own4
                || p.address6 == own6
                || p.address4 == self.subnet4.network()
                || p.address4 == self.subnet4.broadcast()
            {
                return Err(format!(
                    "the peer's addresses {} and {} are not peers' addresses of the VPN's subnets",
                    p.address4, p.address6
                ));
            }
            let earlier = &self.peers[..i];
            if earlier.iter().any(|o| o.public_key == p.public_key) {
                return Err("two peers have the same public key".into());
            }
            if earlier
                .iter()
                .any(|o| o.address4 == p.address4 || o.address6 == p.address6)
            {
                return Err(format!("two peers have the address {}", p.address4));
            }
        }
        Ok(())
    }

    /// The interface's configuration in `wg setconf`'s format (wg(8), "CONFIGURATION
    /// FILE FORMAT"), with the box's private key `private` (Base64).
    pub fn setconf(&self, private: &str) -> String {
        let mut s = format!(
            "[Interface]\nPrivateKey = {private}\nListenPort = {}\n",
            self.port
        );
        for p in &self.peers {
            s.push_str(&format!(
                "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32, {}/128\n",
                p.public_key, p.address4, p.address6
            ));
        }
        s
    }
}

/// The box's addresses in `subnet4` and `subnet6`: the first host of each.
pub fn own_addresses(subnet4: &Ipv4Net, subnet6: &Ipv6Net) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::from(u32::from(subnet4.network()).wrapping_add(1)),
        Ipv6Addr::from(u128::from(subnet6.network()).wrapping_add(1)),
    )
}

/// The `n`th address of each subnet (the box is 1, peers from 2), or `None` past the
/// IPv4 subnet's last host.
pub fn host(subnet4: &Ipv4Net, subnet6: &Ipv6Net, n: u32) -> Option<(Ipv4Addr, Ipv6Addr)> {
    let hosts = (1u64 << (32 - u32::from(subnet4.prefix_len()))).saturating_sub(2);
    if n == 0 || u64::from(n) > hosts {
        return None;
    }
    Some((
        Ipv4Addr::from(u32::from(subnet4.network()).wrapping_add(n)),
        Ipv6Addr::from(u128::from(subnet6.network()).wrapping_add(u128::from(n))),
    ))
}

/// Checks the VPN's subnets: IPv4 inside the private ranges of RFC 1918 with a prefix of
/// /16-/29, IPv6 inside the unique local addresses `fc00::/7` (RFC 4193) with a prefix
/// of /48-/120, each given as its network (no host bits).
///
/// # Errors
/// A sentence naming what is wrong.
pub fn check_subnets(subnet4: &Ipv4Net, subnet6: &Ipv6Net) -> Result<(), String> {
    if subnet4.trunc() != *subnet4 {
        return Err(format!(
            "{subnet4} has host bits set; the subnet is {}",
            subnet4.trunc()
        ));
    }
    if subnet6.trunc() != *subnet6 {
        return Err(format!(
            "{subnet6} has host bits set; the subnet is {}",
            subnet6.trunc()
        ));
    }
    let private: [Ipv4Net; 3] = [
        Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
        Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
        Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    ];
    if !(16..=29).contains(&subnet4.prefix_len()) || !private.iter().any(|p| p.contains(subnet4)) {
        return Err(format!(
            "the VPN's IPv4 subnet must be a private network (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) of /16 to /29, not {subnet4}"
        ));
    }
    let ula = Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7);
    if !(48..=120).contains(&subnet6.prefix_len()) || !ula.contains(subnet6) {
        return Err(format!(
            "the VPN's IPv6 subnet must be unique local (inside fc00::/7) of /48 to /120, not {subnet6}"
        ));
    }
    Ok(())
}

/// A random IPv4 subnet `10.X.Y.0/24` and a random unique local IPv6 subnet
/// `fdXX:XXXX:XXXX:XXXX::/64` (RFC 4193 §3.2's random Global ID), for a new VPN: random,
/// so that two boxes, or a box and a peer's home network, seldom collide.
pub fn random_subnets() -> (Ipv4Net, Ipv6Net) {
    let r: [u8; 9] = rand::random();
    let v4 = Ipv4Net::new_assert(Ipv4Addr::new(10, r[0], r[1], 0), 24);
    let mut v6 = [0u8; 16];
    v6[0] = 0xfd;
    v6[1..8].copy_from_slice(&r[2..9]);
    (v4, Ipv6Net::new_assert(Ipv6Addr::from(v6), 64))
}

/// A peer's configuration file, in wg-quick(8)'s format, which the WireGuard apps
/// import.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's private key (Base64); `None` for a peer that brought its own public
    /// key (the file then has a line saying where to put it).
    pub private_key: Option<String>,
    /// Its addresses.
    pub address4: Ipv4Addr,
    /// Its IPv6 address.
    pub address6: Ipv6Addr,
    /// The box's public key, Base64.
    pub server_key: String,
    /// Where the peer finds the box: `HOST:PORT`, `[IPV6]:PORT`.
    pub endpoint: String,
    /// What the peer sends through the tunnel: the VPN's subnets only (the peer keeps
    /// its own internet connection).
    pub allowed: (Ipv4Net, Ipv6Net),
}

impl PeerConfig {
    /// The file's text.
    pub fn render(&self) -> String {
        let key = match &self.private_key {
            Some(k) => format!("PrivateKey = {k}\n"),
            None => "# PrivateKey = (the private key of the public key you gave)\n".into(),
        };
        format!(
            "[Interface]\n{key}Address = {}/32, {}/128\n\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = {}, {}\nPersistentKeepalive = {KEEPALIVE_SECONDS}\n",
            self.address4, self.address6, self.server_key, self.endpoint, self.allowed.0, self.allowed.1
        )
    }
}

/// `text` as a QR code (ISO/IEC 18004, error correction level M), drawn as an SVG
/// image of at least 320x320 pixels, black on white with the quiet zone.
///
/// # Errors
/// `text` is too long for a QR code.
pub fn qr_svg(text: &str) -> Result<String, String> {
    let code = qr(text)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(320, 320)
        .build())
}

/// `text` as a QR code, error correction level M.
///
/// # Errors
/// `text` is too long for a QR code.
pub fn qr(text: &str) -> Result<qrcode::QrCode, String> {
    qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| format!("no QR code for {} bytes: {e}", text.len()))
}

/// `host` as an endpoint with `port`: `HOST:PORT`, `[IPV6]:PORT`. `host` may carry its
/// own port (`HOST:PORT`, `[IPV6]:PORT`: a router forwarding another outside port).
///
/// # Errors
/// A sentence: `host` is neither a DNS name (RFC 1123 labels) nor an IP address, or its
/// port is not 1-65535.
pub fn endpoint(host: &str, port: u16) -> Result<String, String> {
    let host = host.trim();
    let bad = || {
        format!(
            "{host:?} is not a host name or address (for example vpn.example.com, 203.0.113.7 or 2001:db8::7, with :PORT if the router forwards another port)"
        )
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(a) => format!("{a}:{port}"),
            IpAddr::V6(a) => format!("[{a}]:{port}"),
        });
    }
    if let Ok(sa) = host.parse::<std::net::SocketAddr>() {
        return if sa.port() == 0 {
            Err(bad())
        } else {
            Ok(sa.to_string())
        };
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        None => (host, port),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label) {
        return Err(bad());
    }
    // A name of digits and dots only would be read as a (bad) IPv4 address.
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(format!("{}:{port}", name.to_ascii_lowercase()))
}

/// One peer as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its public key, Base64.
    pub public_key: String,
    /// Where its last packet came from (`ADDR:PORT`), if it has sent one.
    pub endpoint: Option<String>,
    /// Its last handshake, seconds since the Unix epoch; `None` if never.
    pub latest_handshake: Option<u64>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// The peers in `wg show INTERFACE dump`'s output (wg(8)): the first line is the
/// interface's; each other is one peer's, tab-separated: public key, preshared key,
/// endpoint (`(none)`), allowed IPs, latest handshake (seconds since the epoch, 0 for
/// never), bytes received, bytes sent, keepalive. Lines that are not peers' are left
/// out.
pub fn parse_dump(text: &str) -> Vec<PeerStatus> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 8 || key_bytes(f[0]).is_err() {
                return None;
            }
            let handshake: u64 = f[4].parse().ok()?;
            Some(PeerStatus {
                public_key: f[0].to_string(),
                endpoint: (f[2] != "(none)").then(|| f[2].to_string()),
                latest_handshake: (handshake > 0).then_some(handshake),
                rx_bytes: f[5].parse().ok()?,
                tx_bytes: f[6].parse().ok()?,
            })
        })
        .collect()
}

/// The nftables set of UDP ports the firewall opens for the VPN (`/etc/nftables.conf`).
const PORT_SET: [&str; 3] = ["inet", "streambox", "vpn_ports"];

/// How long one `ip`, `wg` or `nft` run may take.
const RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `program` with `args` (a fixed vector, no shell), and gives its standard output.
///
/// # Errors
/// A sentence with the program's own error output when it fails or takes over 10 s.
pub(crate) async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        RUN_DEADLINE,
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{program} {} took too long", args.join(" ")))?
    .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The box's private key in `dir` (`private.key`), made on first use: the directory is
/// root's alone (0700), the file 0600.
///
/// # Errors
/// The I/O error, or a key file that does not hold a key.
fn own_key(dir: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("private.key");
    match std::fs::read_to_string(&file) {
        Ok(k) => {
            key_bytes(&k).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(k.trim().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = private_key()?;
            super::hostname::replace_with_mode(&file, &format!("{k}\n"), 0o600)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(k)
        }
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// Sets the VPN's interface up as `tunnel` says, or takes it down (`None`), and keeps
/// `tunnel` in `dir` for [`restore`]. Run by the network helper as root with
/// `CAP_NET_ADMIN`: `ip link add … type wireguard`, `wg syncconf` (peers that are no
/// longer listed leave at once, the others keep their sessions), the addresses with
/// `ip address`, and the firewall's VPN port with `nft`. Gives the box's public key.
///
/// # Errors
/// A sentence: the tunnel is refused ([`Tunnel::check`]), or a step failed (with the
/// tool's own error output; a port in use shows as `wg`'s "Address already in use").
pub async fn apply(tunnel: Option<&Tunnel>, dir: &std::path::Path) -> Result<String, String> {
    let private = own_key(dir)?;
    let public = public_key(&private)?;
    let saved = dir.join("tunnel.json");
    let Some(t) = tunnel else {
        if super::network::link_index(INTERFACE).is_some() {
            run("ip", &["link", "delete", "dev", INTERFACE]).await?;
        }
        let _ = std::fs::remove_file(&saved);
        open_port(None).await;
        return Ok(public);
    };
    t.check()?;
    if super::network::link_index(INTERFACE).is_none() {
        run(
            "ip",
            &["link", "add", "dev", INTERFACE, "type", "wireguard"],
        )
        .await?;
    }
    let conf = dir.join("setconf");
    super::hostname::replace_with_mode(&conf, &t.setconf(&private), 0o600)
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    let synced = run("wg", &["syncconf", INTERFACE, &conf.to_string_lossy()]).await;
    let _ = std::fs::remove_file(&conf);
    synced?;
    // The box's two addresses, and no other.
    let (own4, own6) = t.own();
    let wanted = [
        format!("{own4}/{}", t.subnet4.prefix_len()),
        format!("{own6}/{}", t.subnet6.prefix_len()),
    ];
    let now: Vec<String> = super::network::interfaces()
        .map_err(|e| format!("reading the interfaces: {e}"))?
        .into_iter()
        .filter(|i| i.name == INTERFACE)
        .flat_map(|i| i.addresses)
        .filter(|a| !matches!(a.ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .map(|a| format!("{}/{}", a.ip, a.prefix))
        .collect();
    for old in now.iter().filter(|a| !wanted.contains(a)) {
        run("ip", &["address", "delete", old, "dev", INTERFACE]).await?;
    }
    for w in &wanted {
        run("ip", &["address", "replace", w, "dev", INTERFACE]).await?;
    }
    run("ip", &["link", "set", "dev", INTERFACE, "up"]).await?;
    open_port(Some(t.port)).await;
    let json = serde_json::to_string(t).map_err(|e| e.to_string())?;
    super::hostname::replace_with_mode(&saved, &json, 0o600)
        .map_err(|e| format!("{}: {e}", saved.display()))?;
    Ok(public)
}

/// Opens UDP `port` (only) in the firewall's VPN set; none closes it. A box without
/// the image's firewall has no set: logged, not an error (nothing is closed there).
async fn open_port(port: Option<u16>) {
    let mut flush = vec!["flush", "set"];
    flush.extend(PORT_SET);
    let result = match run("nft", &flush).await {
        Ok(_) => match port {
            Some(p) => {
                let element = format!("{{ {p} }}");
                let mut add = vec!["add", "element"];
                add.extend(PORT_SET);
                add.push(&element);
                run("nft", &add).await.map(|_| ())
            }
            None => Ok(()),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "the firewall's VPN port was not set");
    }
}

/// Sets the VPN up again as it was last applied (at the helper's start, so at boot);
/// logged, not fatal.
pub async fn restore(dir: &std::path::Path) {
    let saved = dir.join("tunnel.json");
    let Ok(text) = std::fs::read_to_string(&saved) else {
        return;
    };
    let result = match serde_json::from_str::<Tunnel>(&text) {
        Ok(t) => apply(Some(&t), dir).await.map(|_| ()),
        Err(e) => Err(format!("{}: {e}", saved.display())),
    };
    match result {
        Ok(()) => tracing::info!("VPN set up again"),
        Err(e) => tracing::error!(error = %e, "setting the VPN up again failed"),
    }
}

/// The peers as the kernel sees them now (`wg show INTERFACE dump`); none when the
/// interface is not there.
///
/// # Errors
/// `wg`'s error.
pub async fn status() -> Result<Vec<PeerStatus>, String> {
    if super::network::link_index(INTERFACE).is_none() {
        return Ok(Vec::new());
    }
    Ok(parse_dump(&run("wg", &["show", INTERFACE, "dump"]).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel() -> Tunnel {
        let s4: Ipv4Net = "10.77.3.0/24".parse().expect("net");
        let s6: Ipv6Net = "fd12:3456:789a:1::/64".parse().expect("net");
        let (a4, a6) = host(&s4, &s6, 2).expect("host");
        Tunnel {
            port: 51820,
            subnet4: s4,
            subnet6: s6,
            peers: vec![TunnelPeer {
                public_key: key_pair().expect("keys").1,
                address4: a4,
                address6: a6,
            }],
        }
    }

    #[test]
    fn keys_are_x25519_as_wireguard_writes_them() {
        // RFC 7748 §6.1's test vector: Alice's private key and public key.
        let alice = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        assert_eq!(
            B64.decode(alice).expect("b64"),
            hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        );
        let public = public_key(alice).expect("public");
        assert_eq!(
            B64.decode(&public).expect("b64"),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let (a, b) = (key_pair().expect("keys"), key_pair().expect("keys"));
        assert_ne!(a.0, b.0, "two keys alike");
        assert_eq!(a.0.len(), 44);
        assert_eq!(public_key(&a.0).expect("public"), a.1);
        for bad in [
            "",
            "abc",
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC==",
            &"A".repeat(44),
        ] {
            assert!(key_bytes(bad).is_err(), "{bad}");
        }
        assert!(key_bytes("not a key at all, but forty-four characters!").is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn the_tunnel_is_checked_and_written_for_wg_setconf() {
        let t = tunnel();
        assert_eq!(t.check(), Ok(()));
        assert_eq!(
            t.own(),
            (
                "10.77.3.1".parse().expect("ip"),
                "fd12:3456:789a:1::1".parse().expect("ip")
            )
        );
        let conf = t.setconf("PRIVATE");
        assert!(conf.starts_with("[Interface]\nPrivateKey = PRIVATE\nListenPort = 51820\n"));
        assert!(
            conf.contains("AllowedIPs = 10.77.3.2/32, fd12:3456:789a:1::2/128\n"),
            "{conf}"
        );

        let mut twice = t.clone();
        twice.peers.push(t.peers[0].clone());
        assert!(twice.check().is_err());
        let mut outside = t.clone();
        outside.peers[0].address4 = "10.77.4.2".parse().expect("ip");
        assert!(outside.check().is_err());
        let mut own = t.clone();
        own.peers[0].address4 = "10.77.3.1".parse().expect("ip");
        assert!(own.check().is_err());
        let mut bad_key = t.clone();
        bad_key.peers[0].public_key = "x".into();
        assert!(bad_key.check().is_err());
        let mut port = t;
        port.port = 0;
        assert!(port.check().is_err());
    }

    #[test]
    fn subnets_are_private_and_sized() {
        let ok6: Ipv6Net = "fd00:1::/64".parse().expect("net");
        let ok4: Ipv4Net = "192.168.200.0/24".parse().expect("net");
        assert_eq!(check_subnets(&ok4, &ok6), Ok(()));
        for bad in ["8.8.8.0/24", "10.0.0.0/8", "10.1.1.0/30", "10.1.1.1/24"] {
            let n: Ipv4Net = bad.parse().expect("net");
            assert!(check_subnets(&n, &ok6).is_err(), "{bad}");
        }
        for bad in ["2001:db8::/64", "fd00::/40", "fd00::1/64"] {
            let n: Ipv6Net = bad.parse().expect("net");
            assert!(check_subnets(&ok4, &n).is_err(), "{bad}");
        }
        let (a4, a6) = random_subnets();
        assert_eq!(check_subnets(&a4, &a6), Ok(()));
        assert_eq!(
            host(&ok4, &ok6, 254).map(|h| h.0.to_string()),
            Some("192.168.200.254".into())
        );
        assert_eq!(host(&ok4, &ok6, 255), None);
        assert_eq!(host(&ok4, &ok6, 0), None);
    }

    #[test]
    fn endpoints_are_names_or_addresses_with_a_port() {
        assert_eq!(
            endpoint("vpn.Example.com", 51820),
            Ok("vpn.example.com:51820".into())
        );
        assert_eq!(
            endpoint("vpn.example.com:4500", 51820),
            Ok("vpn.example.com:4500".into())
        );
        assert_eq!(
            endpoint("203.0.113.7", 51820),
            Ok("203.0.113.7:51820".into())
        );
        assert_eq!(
            endpoint("2001:db8::7", 51820),
            Ok("[2001:db8::7]:51820".into())
        );
        assert_eq!(
            endpoint("[2001:db8::7]:9", 51820),
            Ok("[2001:db8::7]:9".into())
        );
        for bad in [
            "",
            "http://x",
            "a b",
            "-x.com",
            "x.com:0",
            "x.com:99999",
            "1.2.3",
            "ex\u{e4}mple.com",
            "a..b",
        ] {
            assert!(endpoint(bad, 51820).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_peer_config_and_its_qr_code_say_the_same() {
        let (private, _) = key_pair().expect("keys");
        let c = PeerConfig {
            private_key: Some(private.clone()),
            address4: "10.77.3.2".parse().expect("ip"),
            address6: "fd12:3456:789a:1::2".parse().expect("ip"),
            server_key: key_pair().expect("keys").1,
            endpoint: "[2001:db8::7]:51820".into(),
            allowed: (
                "10.77.3.0/24".parse().expect("net"),
                "fd12:3456:789a:1::/64".parse().expect("net"),
            ),
        };
        let text = c.render();
        assert!(
            text.contains(&format!("PrivateKey = {private}\n")),
            "{text}"
        );
        assert!(
            text.contains("Address = 10.77.3.2/32, fd12:3456:789a:1::2/128\n"),
            "{text}"
        );
        assert!(text.contains("Endpoint = [2001:db8::7]:51820\n"), "{text}");
        assert!(
            text.contains("AllowedIPs = 10.77.3.0/24, fd12:3456:789a:1::/64\n"),
            "{text}"
        );

        // The SVG is what the page shows; it is drawn from the same modules read back
        // here, through a decoder that knows nothing of the encoder.
        let svg = qr_svg(&text).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
        let code = qr(&text).expect("qr");
        let (w, colors) = (code.width(), code.to_colors());
        let scale = 6;
        let side = (w + 8) * scale;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = ((x / scale).wrapping_sub(4), (y / scale).wrapping_sub(4));
            if mx < w && my < w && colors[my * w + mx] == qrcode::Color::Dark {
                0
            } else {
                255
            }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, decoded) = grids[0].decode().expect("decode");
        assert_eq!(decoded, text);
        // The SVG draws each dark module: as many unit squares as the code has.
        let dark = colors.iter().filter(|c| **c == qrcode::Color::Dark).count();
        assert_eq!(svg.matches('M').count(), dark, "one square per dark module");
    }

    #[test]
    fn the_kernels_view_of_the_peers_is_read_from_wg_show_dump() {
        let (k1, k2) = (key_pair().expect("k").1, key_pair().expect("k").1);
        let dump = format!(
            "PRIVATE\tPUBLIC\t51820\toff\n{k1}\t(none)\t198.51.100.9:40001\t10.77.3.2/32,fd12::2/128\t1764650000\t1234\t5678\t25\n{k2}\t(none)\t(none)\t10.77.3.3/32\t0\t0\t0\toff\ngarbage line\n"
        );
        let peers = parse_dump(&dump);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].endpoint.as_deref(), Some("198.51.100.9:40001"));
        assert_eq!(peers[0].latest_handshake, Some(1_764_650_000));
        assert_eq!((peers[0].rx_bytes, peers[0].tx_bytes), (1234, 5678));
        assert_eq!(peers[1].endpoint, None);
        assert_eq!(peers[1].latest_handshake, None);
    }
}
