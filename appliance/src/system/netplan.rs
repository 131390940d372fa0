//! The wired network's settings as an administrator edits them, and their form in
//! netplan's YAML (netplan(5), format version 2, networkd renderer).
//!
//! One [`Wired`] is one `network.ethernets.NAME` entry of the configuration: IPv4 by
//! DHCP, static or off; IPv6 by router advertisements (SLAAC), DHCPv6, static or off;
//! DNS servers and search domains. [`Configured::parse`] reads the merged configuration
//! that `netplan get all` prints (netplan's D-Bus `Config.Get`); an entry is ours only
//! when writing its settings back gives exactly the entry read ([`Wired::to_netplan`]),
//! so anything a technician wrote by hand (VLANs, bridges, bonds, extra routes, more
//! addresses, `match` rules) is shown as it is and never rewritten. [`Wired::deltas`]
//! gives the `netplan set` deltas that replace one entry.
//!
//! [`Wired::check`] refuses what netplan would accept but the box must not do: an
//! address that is not a host address, a gateway outside the prefix or equal to the
//! address, a prefix out of range, a search domain that is not a DNS name.

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An interface's IPv4 settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Ipv4 {
    /// An address, gateway and DNS servers by DHCP (RFC 2131), asked for again for as
    /// long as there is no answer.
    Dhcp,
    /// A fixed address.
    Static {
        /// The address.
        address: Ipv4Addr,
        /// The prefix length in bits, 1-32 (24 for 255.255.255.0).
        prefix: u8,
        /// The default route's next hop, inside the prefix; none for a network with
        /// no way out.
        #[serde(default)]
        gateway: Option<Ipv4Addr>,
    },
    /// No IPv4 address.
    Off,
}

/// An interface's IPv6 settings. Link-local addresses (fe80::/10) are always there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Ipv6 {
    /// Addresses and the default route from router advertisements (SLAAC, RFC 4862).
    Slaac,
    /// Router advertisements, and DHCPv6 (RFC 8415) for an address as well.
    Dhcp,
    /// A fixed address; router advertisements ignored.
    Static {
        /// The address.
        address: Ipv6Addr,
        /// The prefix length in bits, 1-128 (64 for a usual LAN).
        prefix: u8,
        /// The default route's next hop: inside the prefix, or a link-local address
        /// (as routers usually are).
        #[serde(default)]
        gateway: Option<Ipv6Addr>,
    },
    /// No global IPv6 address; router advertisements ignored.
    Off,
}

/// One wired interface's settings: `network.ethernets.INTERFACE` in netplan's YAML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wired {
    /// The kernel's name for the interface (`enp1s0`).
    pub interface: String,
    /// IPv4.
    pub ipv4: Ipv4,
    /// IPv6.
    pub ipv6: Ipv6,
    /// DNS servers to use besides (or, with static addresses, instead of) those DHCP
    /// and router advertisements give; at most [`MAX_DNS`].
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// DNS search domains (`example.com`); at most [`MAX_SEARCH`].
    #[serde(default)]
    pub search: Vec<String>,
}

impl std::fmt::Display for Ipv4 {
    /// `dhcp`, `off`, or `static 192.0.2.5/24 via 192.0.2.1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ipv4::Dhcp => f.write_str("dhcp"),
            Ipv4::Off => f.write_str("off"),
            Ipv4::Static {
                address,
                prefix,
                gateway,
            } => statically(f, &address.to_string(), *prefix, gateway.map(IpAddr::V4)),
        }
    }
}

impl std::fmt::Display for Ipv6 {
    /// `slaac`, `dhcp`, `off`, or `static 2001:db8::5/64 via fe80::1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ipv6::Slaac => f.write_str("slaac"),
            Ipv6::Dhcp => f.write_str("dhcp"),
            Ipv6::Off => f.write_str("off"),
            Ipv6::Static {
                address,
                prefix,
                gateway,
            } => statically(f, &address.to_string(), *prefix, gateway.map(IpAddr::V6)),
        }
    }
}

fn statically(
    f: &mut std::fmt::Formatter<'_>,
    address: &str,
    prefix: u8,
    gateway: Option<IpAddr>,
) -> std::fmt::Result {
    write!(f, "static {address}/{prefix}")?;
    match gateway {
        Some(g) => write!(f, " via {g}"),
        None => Ok(()),
    }
}

/// At most this many DNS servers per interface.
pub const MAX_DNS: usize = 6;
/// At most this many search domains per interface.
pub const MAX_SEARCH: usize = 6;

/// A netplan entry that is not one of ours: shown, never rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ByHand {
    /// Its section: `ethernets`, `vlans`, `bridges`, `bonds`, `wifis`, ….
    pub section: String,
    /// Its ID (an interface name, or a name for a `match` rule).
    pub id: String,
    /// Its YAML as netplan printed it.
    pub yaml: String,
}

/// The network configuration as netplan has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Configured {
    /// The interfaces whose settings streambox manages, by name.
    pub wired: Vec<Wired>,
    /// Every other entry: the image's defaults for wired interfaces nobody configured
    /// (`match` rules), and whatever a technician wrote.
    pub by_hand: Vec<ByHand>,
}

/// Why a netplan configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetplanError {
    /// It is not YAML.
    #[error("the network configuration is not YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// It is YAML but not a netplan `network:` mapping.
    #[error("the network configuration has no `network` mapping")]
    NotNetplan,
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

impl Wired {
    /// The `network.ethernets.INTERFACE` mapping for these settings. Interfaces never
    /// hold up the boot (`optional: true`): the box must come up, and be reachable on
    /// whatever works, with a cable out.
    pub fn to_netplan(&self) -> Value {
        let mut m = Mapping::new();
        let mut addresses = Vec::new();
        let mut routes = Vec::new();
        let default_route = |via: IpAddr| {
            let mut r = Mapping::new();
            r.insert(key("to"), key("default"));
            r.insert(key("via"), Value::String(via.to_string()));
            Value::Mapping(r)
        };
        match &self.ipv4 {
            Ipv4::Dhcp => {
                m.insert(key("dhcp4"), Value::Bool(true));
            }
            Ipv4::Static {
                address,
                prefix,
                gateway,
            } => {
                m.insert(key("dhcp4"), Value::Bool(false));
                addresses.push(Value::String(format!("{address}/{prefix}")));
                if let Some(g) = gateway {
                    routes.push(default_route(IpAddr::V4(*g)));
                }
            }
            Ipv4::Off => {
                m.insert(key("dhcp4"), Value::Bool(false));
            }
        }
        let (dhcp6, accept_ra) = match &self.ipv6 {
            Ipv6::Slaac => (false, true),
            Ipv6::Dhcp => (true, true),
            Ipv6::Static {
                address,
                prefix,
                gateway,
            } => {
                addresses.push(Value::String(format!("{address}/{prefix}")));
                if let Some(g) = gateway {
                    routes.push(default_route(IpAddr::V6(*g)));
                }
                (false, false)
            }
            Ipv6::Off => (false, false),
        };
        m.insert(key("dhcp6"), Value::Bool(dhcp6));
        m.insert(key("accept-ra"), Value::Bool(accept_ra));
        if !addresses.is_empty() {
            m.insert(key("addresses"), Value::Sequence(addresses));
        }
        if !routes.is_empty() {
            m.insert(key("routes"), Value::Sequence(routes));
        }
        if !self.dns.is_empty() || !self.search.is_empty() {
            let mut ns = Mapping::new();
            if !self.dns.is_empty() {
                let list = self.dns.iter().map(|a| Value::String(a.to_string()));
                ns.insert(key("addresses"), Value::Sequence(list.collect()));
            }
            if !self.search.is_empty() {
                let list = self.search.iter().map(|s| Value::String(s.clone()));
                ns.insert(key("search"), Value::Sequence(list.collect()));
            }
            m.insert(key("nameservers"), Value::Mapping(ns));
        }
        m.insert(key("optional"), Value::Bool(true));
        Value::Mapping(m)
    }

    /// The settings `entry` (an `ethernets` mapping) holds, when it is exactly what
    /// [`Wired::to_netplan`] writes for them; `None` for anything else.
    pub fn from_netplan(interface: &str, entry: &Value) -> Option<Wired> {
        let m = entry.as_mapping()?;
        let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut v4 = None;
        let mut v6 = None;
        for a in m
            .get("addresses")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let (ip, prefix) = a.as_str()?.split_once('/')?;
            let prefix: u8 = prefix.parse().ok()?;
            match ip.parse::<IpAddr>().ok()? {
                IpAddr::V4(ip) if v4.is_none() => v4 = Some((ip, prefix)),
                IpAddr::V6(ip) if v6.is_none() => v6 = Some((ip, prefix)),
                _ => return None,
            }
        }
        let (mut gw4, mut gw6) = (None, None);
        for r in m
            .get("routes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let r = r.as_mapping()?;
            if r.len() != 2 || r.get("to")?.as_str()? != "default" {
                return None;
            }
            match r.get("via")?.as_str()?.parse::<IpAddr>().ok()? {
                IpAddr::V4(g) if gw4.is_none() => gw4 = Some(g),
                IpAddr::V6(g) if gw6.is_none() => gw6 = Some(g),
                _ => return None,
            }
        }
        let ipv4 = match (flag("dhcp4"), v4) {
            (true, _) => Ipv4::Dhcp,
            (false, Some((address, prefix))) => Ipv4::Static {
                address,
                prefix,
                gateway: gw4,
            },
            (false, None) => Ipv4::Off,
        };
        let ipv6 = match (flag("dhcp6"), v6, flag("accept-ra")) {
            (true, _, _) => Ipv6::Dhcp,
            (false, Some((address, prefix)), _) => Ipv6::Static {
                address,
                prefix,
                gateway: gw6,
            },
            (false, None, true) => Ipv6::Slaac,
            (false, None, false) => Ipv6::Off,
        };
        let ns = m.get("nameservers").and_then(Value::as_mapping);
        let list = |k: &str| -> Vec<String> {
            ns.and_then(|n| n.get(k))
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let wired = Wired {
            interface: interface.to_string(),
            ipv4,
            ipv6,
            dns: list("addresses")
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, _>>()
                .ok()?,
            search: list("search"),
        };
        (wired.to_netplan() == *entry).then_some(wired)
    }

    /// A one-line account for the audit log and the pages: `enp1s0: ipv4 static
    /// 192.0.2.5/24 via 192.0.2.1, ipv6 slaac, dns 192.0.2.1, search example.com`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: ipv4 {}, ipv6 {}", self.interface, self.ipv4, self.ipv6);
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
            s.push_str(&format!(", dns {}", dns.join(" ")));
        }
        if !self.search.is_empty() {
            s.push_str(&format!(", search {}", self.search.join(" ")));
        }
        s
    }

    /// The `netplan set` deltas (netplan-set(8)) that make this interface's entry
    /// exactly these settings: the old entry removed, then the new one written (a
    /// delta alone merges into what is there).
    ///
    /// # Errors
    /// The serializer's, which a [`Wired`] never gives.
    pub fn deltas(&self) -> Result<[String; 2], serde_norway::Error> {
        let yaml = serde_norway::to_string(&self.to_netplan())?;
        Ok([
            removal(&self.interface),
            format!("network.ethernets.{}={yaml}", self.interface),
        ])
    }

    /// Refuses settings the box must not take, with the reason for the person who
    /// asked. Checks the values only; which interfaces exist is the caller's.
    ///
    /// # Errors
    /// A sentence naming the interface and what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.interface;
        if !valid_interface_name(name) {
            return Err(format!(
                "{name:?} is not an interface name (1-15 letters, digits, - or _)"
            ));
        }
        if let Ipv4::Static {
            address,
            prefix,
            gateway,
        } = &self.ipv4
        {
            check_v4(name, *address, *prefix, *gateway)?;
        }
        if let Ipv6::Static {
            address,
            prefix,
            gateway,
        } = &self.ipv6
        {
            check_v6(name, *address, *prefix, *gateway)?;
        }
        if self.dns.len() > MAX_DNS {
            return Err(format!("{name}: at most {MAX_DNS} DNS servers"));
        }
        for d in &self.dns {
            let bad = match d {
                IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
                IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
            };
            if bad {
                return Err(format!("{name}: {d} cannot be a DNS server"));
            }
        }
        if self.search.len() > MAX_SEARCH {
            return Err(format!("{name}: at most {MAX_SEARCH} search domains"));
        }
        for s in &self.search {
            if !valid_domain(s) {
                return Err(format!("{name}: {s:?} is not a DNS domain name"));
            }
        }
        Ok(())
    }
}

/// The `netplan set` delta that removes interface `name`'s entry.
pub fn removal(name: &str) -> String {
    format!("network.ethernets.{name}=null")
}

/// A kernel interface name netplan's `set` can address: 1-15 (IFNAMSIZ - 1) ASCII
/// letters, digits, `-` and `_` (no `.`, which separates a delta's keys).
pub fn valid_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A DNS name (RFC 1035 §2.3.1, with RFC 1123 §2.1's leading digits): dot-separated
/// labels of 1-63 letters, digits and inner hyphens, 253 characters at most.
pub fn valid_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty() && s.len() <= 253 && s.split('.').all(valid_label)
}

/// One DNS label (RFC 1123 §2.1): 1-63 letters, digits and hyphens, neither first nor
/// last a hyphen.
pub fn valid_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn check_v4(name: &str, a: Ipv4Addr, prefix: u8, gw: Option<Ipv4Addr>) -> Result<(), String> {
    if !(1..=32).contains(&prefix) {
        return Err(format!("{name}: an IPv4 prefix is 1-32 bits, not {prefix}"));
    }
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
        return Err(format!("{name}: {a} cannot be a host's address"));
    }
    if a.is_link_local() {
        return Err(format!(
            "{name}: {a} is link-local (169.254.0.0/16), which the box gives itself"
        ));
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let net = u32::from(a) & mask;
    let host_bits_special =
        |x: Ipv4Addr| prefix <= 30 && (u32::from(x) == net || u32::from(x) == net | !mask);
    if host_bits_special(a) {
        return Err(format!(
            "{name}: {a} is the network or broadcast address of {}/{prefix}",
            Ipv4Addr::from(net)
        ));
    }
    if let Some(g) = gw {
        if g == a {
            return Err(format!("{name}: the gateway {g} is the box's own address"));
        }
        if u32::from(g) & mask != net || host_bits_special(g) {
            return Err(format!(
                "{name}: the gateway {g} is not reachable from {a}/{prefix}"
            ));
        }
    }
    Ok(())
}

fn check_v6(name: &str, a: Ipv6Addr, prefix: u8, gw: Option<Ipv6Addr>) -> Result<(), String> {
    if !(1..=128).contains(&prefix) {
        return Err(format!(
            "{name}: an IPv6 prefix is 1-128 bits, not {prefix}"
        ));
    }
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return Err(format!("{name}: {a} cannot be a host's address"));
    }
    if a.is_unicast_link_local() {
        return Err(format!(
            "{name}: {a} is link-local (fe80::/10), which the box gives itself"
        ));
    }
    if let Some(g) = gw {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        if g == a {
            return Err(format!("{name}: the gateway {g} is the box's own address"));
        }
        if g.is_unspecified() || g.is_multicast() || g.is_loopback() {
            return Err(format!("{name}: {g} cannot be a gateway"));
        }
        if !g.is_unicast_link_local() && u128::from(g) & mask != u128::from(a) & mask {
            return Err(format!(
                "{name}: the gateway {g} is not reachable from {a}/{prefix} (and not link-local)"
            ));
        }
    }
    Ok(())
}

impl Configured {
    /// Reads the merged configuration `netplan get all` prints.
    ///
    /// # Errors
    /// [`NetplanError`] when it is not YAML or has no `network` mapping. An empty text
    /// (no configuration at all) is an empty [`Configured`].
    pub fn parse(yaml: &str) -> Result<Configured, NetplanError> {
        let doc: Value = serde_norway::from_str(yaml)?;
        let mut out = Configured::default();
        let network = match &doc {
            Value::Null => return Ok(out),
            Value::Mapping(m) => m.get("network").ok_or(NetplanError::NotNetplan)?,
            _ => return Err(NetplanError::NotNetplan),
        };
        let Some(network) = network.as_mapping() else {
            return Ok(out);
        };
        for (section, entries) in network {
            let (Some(section), Some(entries)) = (section.as_str(), entries.as_mapping()) else {
                continue;
            };
            for (id, entry) in entries {
                let Some(id) = id.as_str() else { continue };
                let ours = (section == "ethernets" && valid_interface_name(id))
                    .then(|| Wired::from_netplan(id, entry))
                    .flatten();
                match ours {
                    Some(w) => out.wired.push(w),
                    None => out.by_hand.push(ByHand {
                        section: section.to_string(),
                        id: id.to_string(),
                        yaml: serde_norway::to_string(entry).unwrap_or_default(),
                    }),
                }
            }
        }
        out.wired.sort_by(|a, b| a.interface.cmp(&b.interface));
        Ok(out)
    }

    /// The entry for interface `name` that is not ours, if any.
    pub fn by_hand(&self, name: &str) -> Option<&ByHand> {
        self.by_hand.iter().find(|b| b.id == name)
    }

    /// Our settings for interface `name`, if any.
    pub fn wired(&self, name: &str) -> Option<&Wired> {
        self.wired.iter().find(|w| w.interface == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wired(ipv4: Ipv4, ipv6: Ipv6) -> Wired {
        Wired {
            interface: "enp0s3".into(),
            ipv4,
            ipv6,
            dns: vec![],
            search: vec![],
        }
    }

    fn v4(a: &str, prefix: u8, gw: Option<&str>) -> Ipv4 {
        Ipv4::Static {
            address: a.parse().expect("v4"),
            prefix,
            gateway: gw.map(|g| g.parse().expect("gw")),
        }
    }

    fn v6(a: &str, prefix: u8, gw: Option<&str>) -> Ipv6 {
        Ipv6::Static {
            address: a.parse().expect("v6"),
            prefix,
            gateway: gw.map(|g| g.parse().expect("gw")),
        }
    }

    #[test]
    fn settings_round_trip_through_yaml() {
        let mut all = vec![
            wired(Ipv4::Dhcp, Ipv6::Slaac),
            wired(Ipv4::Off, Ipv6::Off),
            wired(Ipv4::Dhcp, Ipv6::Dhcp),
            wired(
                v4("192.168.76.20", 24, Some("192.168.76.2")),
                v6("fd00:76::20", 64, Some("fe80::1")),
            ),
            wired(v4("10.1.2.3", 8, None), v6("2001:db8::5", 48, None)),
        ];
        all[4].dns = vec![
            "192.0.2.53".parse().expect("ip"),
            "2001:db8::53".parse().expect("ip"),
        ];
        all[4].search = vec!["example.com".into(), "lan".into()];
        for w in all {
            let text = serde_norway::to_string(&w.to_netplan()).expect("yaml");
            let back: Value = serde_norway::from_str(&text).expect("parse");
            assert_eq!(
                Wired::from_netplan("enp0s3", &back),
                Some(w.clone()),
                "{text}"
            );
            assert!(w.summary().starts_with("enp0s3: ipv4 "), "{}", w.summary());
            let [remove, set] = w.deltas().expect("deltas");
            assert_eq!(remove, "network.ethernets.enp0s3=null");
            assert!(set.starts_with("network.ethernets.enp0s3="), "{set}");
        }
    }

    #[test]
    fn entries_not_ours_are_left_as_they_are() {
        let text = r#"network:
  version: 2
  renderer: networkd
  ethernets:
    wired-en:
      match:
        name: "en*"
      dhcp4: true
    enp0s3:
      dhcp4: false
      dhcp6: false
      accept-ra: true
      optional: true
    enp0s4:
      dhcp4: true
      mtu: 9000
    eth1:
      addresses: ["10.0.0.2/24", "10.0.0.3/24"]
  vlans:
    vlan10:
      id: 10
      link: enp0s4
"#;
        let c = Configured::parse(text).expect("parse");
        assert_eq!(c.wired, vec![wired(Ipv4::Off, Ipv6::Slaac)]);
        let ids: Vec<&str> = c.by_hand.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["wired-en", "enp0s4", "eth1", "vlan10"]);
        assert!(c
            .by_hand("enp0s4")
            .is_some_and(|b| b.yaml.contains("mtu: 9000")));
        assert_eq!(
            c.by_hand("vlan10").map(|b| b.section.as_str()),
            Some("vlans")
        );
        assert_eq!(Configured::parse("").expect("empty"), Configured::default());
        assert!(Configured::parse("[1, 2").is_err());
        assert!(Configured::parse("other: 1").is_err());
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let cases = [
            (wired(v4("192.168.1.10", 33, None), Ipv6::Slaac), "1-32"),
            (wired(v4("192.168.1.10", 0, None), Ipv6::Slaac), "1-32"),
            (
                wired(v4("192.168.1.0", 24, None), Ipv6::Slaac),
                "network or broadcast",
            ),
            (
                wired(v4("192.168.1.255", 24, None), Ipv6::Slaac),
                "network or broadcast",
            ),
            (
                wired(v4("192.168.1.10", 24, Some("192.168.1.10")), Ipv6::Slaac),
                "own address",
            ),
            (
                wired(v4("192.168.1.10", 24, Some("192.168.2.1")), Ipv6::Slaac),
                "not reachable",
            ),
            (wired(v4("127.0.0.2", 8, None), Ipv6::Slaac), "cannot be"),
            (
                wired(v4("169.254.3.4", 16, None), Ipv6::Slaac),
                "link-local",
            ),
            (wired(Ipv4::Dhcp, v6("fd00::5", 129, None)), "1-128"),
            (
                wired(Ipv4::Dhcp, v6("fd00::5", 64, Some("fd01::1"))),
                "not reachable",
            ),
            (
                wired(Ipv4::Dhcp, v6("fd00::5", 64, Some("fd00::5"))),
                "own address",
            ),
            (wired(Ipv4::Dhcp, v6("fe80::5", 64, None)), "link-local"),
            (wired(Ipv4::Dhcp, v6("ff02::1", 64, None)), "cannot be"),
        ];
        for (w, why) in cases {
            let e = w.check().expect_err(&format!("{w:?}"));
            assert!(e.contains(why) && e.starts_with("enp0s3"), "{e} / {why}");
        }
        let mut w = wired(Ipv4::Dhcp, Ipv6::Slaac);
        w.search = vec!["bad_domain".into()];
        assert!(w.check().is_err());
        w.search = vec!["good-one.example".into()];
        w.dns = vec!["0.0.0.0".parse().expect("ip")];
        assert!(w.check().is_err());
        w.dns = vec![];
        w.interface = "eth0.100".into();
        assert!(w.check().expect_err("dotted").contains("interface name"));
        // What is fine: a /31 and /32 (point-to-point), a link-local IPv6 gateway.
        for ok in [
            wired(v4("192.0.2.0", 31, Some("192.0.2.1")), Ipv6::Off),
            wired(
                v4("192.0.2.7", 32, None),
                v6("2001:db8::7", 64, Some("fe80::1")),
            ),
            wired(v4("192.168.76.20", 24, Some("192.168.76.2")), Ipv6::Dhcp),
        ] {
            assert_eq!(ok.check(), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_domain("example.com") && valid_domain("lan") && valid_domain("a.b."));
        assert!(!valid_domain("") && !valid_domain("-a.com") && !valid_domain("a..b"));
        assert!(!valid_domain(&"a".repeat(64)));
        assert!(valid_interface_name("enp0s31f6") && !valid_interface_name("a-very-long-name-0"));
    }
}
