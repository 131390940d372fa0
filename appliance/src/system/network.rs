//! What the network looks like now, read from the system: interfaces with their
//! addresses, and the default routes (from `/proc/net/route` and `/proc/net/ipv6_route`).
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
