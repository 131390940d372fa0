//! What the network looks like now, read from the system: interfaces with their
//! addresses, and the default routes (from `/proc/net/route` and `/proc/net/ipv6_route`),
//! and [`watch`], which follows the kernel's word that they changed (rtnetlink's multicast
//! groups, through [`crate::system::netlink`]).
//! Read-only; changing the network is the privileged path's job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// The prefix length in bits (24 for a /24).
    pub prefix: u8,
}

/// A network interface with at least one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Interface {
    /// The kernel's name, e.g. `eth0`.
    pub name: String,
    /// Whether it is the loopback interface.
    pub loopback: bool,
    /// IPv4 addresses first, then IPv6.
    pub addresses: Vec<Address>,
}

/// A default route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefaultRoute {
    /// The interface it leaves by.
    pub interface: String,
    /// The next hop; `None` for an on-link default route.
    pub gateway: Option<IpAddr>,
}

/// Every interface that has an address, by name; loopback last.
///
/// # Errors
/// The I/O error of `getifaddrs(3)`.
pub fn interfaces() -> std::io::Result<Vec<Interface>> {
    let mut out: Vec<Interface> = Vec::new();
    for i in if_addrs::get_if_addrs()? {
        let ip = i.ip();
        let prefix = match &i.addr {
            if_addrs::IfAddr::V4(a) => u32::from(a.netmask).count_ones() as u8,
            if_addrs::IfAddr::V6(a) => u128::from(a.netmask).count_ones() as u8,
        };
        let addr = Address { ip, prefix };
        match out.iter_mut().find(|x| x.name == i.name) {
            Some(x) => x.addresses.push(addr),
            None => out.push(Interface {
                loopback: i.is_loopback(),
                name: i.name,
                addresses: vec![addr],
            }),
        }
    }
    for i in &mut out {
        i.addresses.sort_by_key(|a| (a.ip.is_ipv6(), a.ip));
    }
    out.sort_by(|a, b| (a.loopback, &a.name).cmp(&(b.loopback, &b.name)));
    Ok(out)
}

/// Where an address came from, as far as the kernel's flags tell (rtnetlink(7)
/// `ifa_flags` and `ifa_scope`; networkd marks what it sets from DHCP and router
/// advertisements with lifetimes, and what it was given as static as permanent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `fe80::/10` or `169.254.0.0/16`: the interface gave it itself.
    LinkLocal,
    /// Set as it is (no lifetime): the box's settings, or by hand.
    Static,
    /// An IPv4 lease (a lifetime): DHCP.
    Dhcp,
    /// An IPv6 address with a lifetime and a /128 prefix: DHCPv6.
    Dhcpv6,
    /// An IPv6 address with a lifetime from a router's prefix (SLAAC, RFC 4862).
    Slaac,
    /// A temporary SLAAC address (RFC 8981).
    Temporary,
}

/// One address's origin and lifetimes, from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddressDetail {
    /// The interface's index.
    #[serde(skip)]
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Where it came from.
    pub origin: Origin,
    /// Seconds it stays valid; `None` for ever.
    pub valid_seconds: Option<u32>,
    /// Seconds it stays preferred; `None` for ever.
    pub preferred_seconds: Option<u32>,
    /// No longer preferred for new connections (its preferred lifetime ran out).
    pub deprecated: bool,
    /// Still being checked for duplicates (DAD, RFC 4862 §5.4); not usable yet.
    pub tentative: bool,
}

/// Every address's origin and lifetimes: an `RTM_GETADDR` dump over rtnetlink
/// (netlink-sys, parsed with netlink-packet-route), read with a 2 s timeout.
///
/// # Errors
/// The I/O error of the socket, or a message that cannot be parsed.
pub fn address_details() -> std::io::Result<Vec<AddressDetail>> {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
    };
    use netlink_packet_route::address::{
        AddressAttribute, AddressFlags, AddressMessage, AddressScope,
    };
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket2::SockRef::from(&socket).set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetAddress(AddressMessage::default())),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    let mut out = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut at = 0;
        while at < datagram.len() {
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[at..])
                .map_err(|e| bad(e.to_string()))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => return Err(bad(format!("{e:?}"))),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
                    let mut ip = None;
                    let mut flags =
                        AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
                    let mut life = None;
                    for a in &m.attributes {
                        match a {
                            AddressAttribute::Local(x) => ip = Some(*x),
                            AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
                            AddressAttribute::Flags(f) => flags = *f,
                            AddressAttribute::CacheInfo(c) => {
                                life = Some((c.ifa_valid, c.ifa_preferred))
                            }
                            _ => {}
                        }
                    }
                    if let Some(ip) = ip {
                        let forever = |s: u32| (s != u32::MAX).then_some(s);
                        let (valid, preferred) = life.unwrap_or((u32::MAX, u32::MAX));
                        let link_scope = m.header.scope == AddressScope::Link;
                        out.push(AddressDetail {
                            index: m.header.index,
                            ip,
                            origin: origin(
                                ip,
                                m.header.prefix_len,
                                link_scope,
                                flags.contains(AddressFlags::Permanent),
                                flags.contains(AddressFlags::Secondary) && ip.is_ipv6(),
                            ),
                            valid_seconds: forever(valid),
                            preferred_seconds: forever(preferred),
                            deprecated: flags.contains(AddressFlags::Deprecated),
                            tentative: flags.contains(AddressFlags::Tentative),
                        });
                    }
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            at += length;
        }
    }
}

/// An address's [`Origin`] from what the kernel says of it: its scope, whether it is
/// permanent, and (IPv6) whether it is temporary (`IFA_F_TEMPORARY`, the same bit as
/// `IFA_F_SECONDARY`).
fn origin(ip: IpAddr, prefix: u8, link_scope: bool, permanent: bool, temporary: bool) -> Origin {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_scope || link_local {
        Origin::LinkLocal
    } else if permanent {
        Origin::Static
    } else if ip.is_ipv4() {
        Origin::Dhcp
    } else if temporary {
        Origin::Temporary
    } else if prefix == 128 {
        Origin::Dhcpv6
    } else {
        Origin::Slaac
    }
}

/// The kernel's index of interface `name` (`/sys/class/net/NAME/ifindex`).
pub fn link_index(name: &str) -> Option<u32> {
    if !valid_link_name(name) {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `ip` is a global unicast IPv6 address, one a directory on the internet can
/// reach the box at: not loopback, unspecified, multicast, link-local (`fe80::/10`),
/// site-local (`fec0::/10`), unique local (`fc00::/7`, RFC 4193) or IPv4-mapped.
/// Documentation prefixes (`2001:db8::/32`) count, as the kernel counts them.
pub fn global_ipv6(ip: &IpAddr) -> bool {
    let IpAddr::V6(v6) = ip else { return false };
    let first = v6.segments()[0];
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        || (first & 0xfe00) == 0xfc00
        || v6.to_ipv4_mapped().is_some())
}

/// The global IPv6 addresses ([`global_ipv6`]) among `interfaces`, sorted, each once.
pub fn global_ipv6_addresses(interfaces: &[Interface]) -> Vec<Ipv6Addr> {
    let mut out: Vec<Ipv6Addr> = interfaces
        .iter()
        .flat_map(|i| &i.addresses)
        .filter(|a| global_ipv6(&a.ip))
        .filter_map(|a| match a.ip {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The interfaces and their addresses ([`interfaces`]), kept current by a task that reads
/// them again at each of rtnetlink's announcements (the `RTMGRP_LINK`,
/// `RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`, `RTMGRP_IPV4_ROUTE` and `RTMGRP_IPV6_ROUTE`
/// groups), and every 30 s besides (all it has where rtnetlink is not open to it).
/// Outside a Tokio runtime the value is never updated.
pub fn watch() -> tokio::sync::watch::Receiver<Vec<Interface>> {
    use crate::system::netlink::{Follow, ROUTE};
    let follow = Follow {
        what: "the network",
        protocol: ROUTE,
        groups: 0x1 | 0x10 | 0x40 | 0x100 | 0x400,
        settle: std::time::Duration::ZERO,
        every: std::time::Duration::from_secs(30),
    };
    crate::system::netlink::watch(follow, interfaces)
}

/// How link `name` is now, from `/sys/class/net/NAME` (operstate, carrier, speed,
/// duplex): `up, 1000 Mbit/s, full duplex`, `no carrier (cable unplugged?)`, `down`.
pub fn link_state(name: &str) -> String {
    if !valid_link_name(name) {
        return "unknown".into();
    }
    let dir = std::path::Path::new("/sys/class/net").join(name);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let oper = read("operstate").unwrap_or_else(|| "unknown".into());
    if read("carrier").as_deref() == Some("0") {
        return "no carrier (cable unplugged?)".into();
    }
    let mut out = vec![oper];
    if let Some(mbit) = read("speed")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
    {
        out.push(format!("{mbit} Mbit/s"));
    }
    if let Some(d) = read("duplex").filter(|d| d != "unknown") {
        out.push(format!("{d} duplex"));
    }
    out.join(", ")
}

/// A kernel interface name: 1-15 bytes, no `/`, not `.` or `..`.
fn valid_link_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && !name.contains('/') && name != "." && name != ".."
}

/// The DNS servers in use now: systemd-resolved's upstream servers
/// (`/run/systemd/resolve/resolv.conf`), or else `/etc/resolv.conf`'s, in order.
pub fn dns_in_use() -> Vec<IpAddr> {
    let text = std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
        .or_else(|_| std::fs::read_to_string("/etc/resolv.conf"))
        .unwrap_or_default();
    parse_nameservers(&text)
}

/// The `nameserver` lines of resolv.conf(5) text (an IPv6 zone suffix dropped).
fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|a| a.split('%').next()?.parse().ok())
        .collect()
}

/// The loopback, link-local or unspecified address (this machine's own services,
/// 169.254/16, fe80::/10, 0.0.0.0) that `url`'s host is, or resolves to (port
/// `default_port` when the URL has none, for the lookup), if any: what the admin pages
/// do not connect to unless `sources.allow_local_addresses` is set, so a stolen session
/// cannot probe the box's own services. `None` too when a name does not resolve in
/// 5 s: connecting then fails like any unreachable host.
pub async fn local_target(url: &url::Url, default_port: u16) -> Option<IpAddr> {
    let port = url.port().unwrap_or(default_port);
    let addrs: Vec<IpAddr> = match url.host()? {
        url::Host::Ipv4(a) => vec![a.into()],
        url::Host::Ipv6(a) => vec![a.into()],
        url::Host::Domain(name) => {
            let found = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::lookup_host((name, port)),
            )
            .await;
            match found {
                Ok(Ok(a)) => a.map(|s| s.ip()).collect(),
                _ => return None,
            }
        }
    };
    addrs.into_iter().find(|a| {
        let a = a.to_canonical();
        a.is_loopback()
            || a.is_unspecified()
            || match a {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            }
    })
}

/// The names of the network interfaces the kernel has (`/sys/class/net`), with or
/// without addresses, but loopback; sorted. An unreadable directory gives none.
pub fn links() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    out.sort();
    out
}

/// The default routes, IPv4 first. An unreadable table gives none.
pub fn default_routes() -> Vec<DefaultRoute> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let mut out = parse_route_v4(&v4);
    out.extend(parse_route_v6(&v6));
    out
}

/// Default routes in `/proc/net/route` text: destination and mask 0. Addresses there are
/// 32-bit hex in host byte order (little-endian on the machines we run on).
fn parse_route_v4(text: &str) -> Vec<DefaultRoute> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, mask) = (f.first()?, f.get(1)?, f.get(2)?, f.get(7)?);
            if *dest != "00000000" || *mask != "00000000" {
                return None;
            }
            let gw = u32::from_str_radix(gw, 16).ok()?;
            let gw = Ipv4Addr::from(gw.to_le_bytes());
            Some(DefaultRoute {
                interface: iface.to_string(),
                gateway: (!gw.is_unspecified()).then_some(IpAddr::V4(gw)),
            })
        })
        .collect()
}

/// Default routes in `/proc/net/ipv6_route` text: `::/0`, not through `lo` (the kernel
/// lists unreachable defaults there).
fn parse_route_v6(text: &str) -> Vec<DefaultRoute> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, len, gw, iface) = (f.first()?, f.get(1)?, f.get(4)?, f.get(9)?);
            if dest.chars().any(|c| c != '0') || *len != "00" || *iface == "lo" {
                return None;
            }
            let gw = Ipv6Addr::from(u128::from_str_radix(gw, 16).ok()?);
            Some(DefaultRoute {
                interface: iface.to_string(),
                gateway: (!gw.is_unspecified()).then_some(IpAddr::V6(gw)),
            })
        })
        .collect()
}

/// The kernel's host name (`/proc/sys/kernel/hostname`); `localhost` when unreadable or
/// empty.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The name the box answers to over mDNS (RFC 6762) for host name `host`: `HOST.local`
/// when `host` is a bare name; `None` for a dotted name, an address or `localhost`.
pub fn mdns_name(host: &str) -> Option<String> {
    let bare = !host.contains('.') && host.parse::<IpAddr>().is_err() && host != "localhost";
    bare.then(|| format!("{host}.local"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_proc() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_route_v4(v4),
            vec![DefaultRoute {
                interface: "eth0".into(),
                gateway: Some("192.0.2.1".parse().expect("ip")),
            }]
        );
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(
            parse_route_v6(v6),
            vec![DefaultRoute {
                interface: "eth0".into(),
                gateway: Some("fd00::1".parse().expect("ip")),
            }]
        );
        assert!(parse_route_v4("garbage\nmore garbage here\n").is_empty());
    }

    #[test]
    fn nameservers_and_link_names() {
        let text = "# by resolved\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch x\nnameserver bogus\n";
        assert_eq!(
            parse_nameservers(text),
            vec![
                "192.0.2.53".parse::<IpAddr>().expect("ip"),
                "fe80::1".parse().expect("ip")
            ]
        );
        assert_eq!(link_state("../../etc"), "unknown");
        assert_eq!(link_state(""), "unknown");
        assert!(!link_state("lo").is_empty());
    }

    #[test]
    fn global_ipv6_leaves_out_local_scopes() {
        for (ip, global) in [
            ("2001:db8::5", true),
            ("2a01:4f8::1", true),
            ("fe80::1", false),
            ("fd00:76::20", false),
            ("fec0::1", false),
            ("::1", false),
            ("ff02::fb", false),
            ("::ffff:192.0.2.1", false),
            ("192.0.2.1", false),
        ] {
            assert_eq!(global_ipv6(&ip.parse().expect("ip")), global, "{ip}");
        }
    }

    #[test]
    fn links_leave_out_loopback() {
        let found = interfaces().expect("getifaddrs");
        let links = links();
        assert!(!links.iter().any(|l| l == "lo"), "{links:?}");
        for i in found.iter().filter(|i| !i.loopback) {
            assert!(links.contains(&i.name), "{} in {links:?}", i.name);
        }
    }

    #[test]
    fn this_machine_has_loopback() {
        let found = interfaces().expect("getifaddrs");
        assert!(found.iter().any(|i| i.loopback
            && i.addresses
                .iter()
                .any(|a| a.ip == IpAddr::V4(Ipv4Addr::LOCALHOST))));
    }
}
