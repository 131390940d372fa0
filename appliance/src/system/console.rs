//! The banner the appliance shows on its console (tty1 and the serial port) instead of a
//! login prompt: where to open the box in a browser, by its mDNS name and every address
//! it has, and the fingerprint of its HTTPS certificate to compare with the browser's.
//! `streambox console` prints it again whenever it changes (an address comes or goes,
//! the certificate is made).

use super::network::Interface;
use std::fmt::Write;
use std::net::IpAddr;

/// What the banner is made of.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The service's version.
    pub version: &'a str,
    /// The host name; the banner offers `NAME.local` (mDNS) when it is a bare name.
    pub host: &'a str,
    /// The HTTPS port, when the service has an HTTPS listener; else the banner gives
    /// plain HTTP on `http_port`.
    pub https_port: Option<u16>,
    /// The plain HTTP port.
    pub http_port: u16,
    /// The interfaces and their addresses now.
    pub interfaces: &'a [Interface],
    /// The certificate's SHA-256 fingerprint (colon-separated hex), or `None` while it
    /// is being made.
    pub fingerprint: Option<&'a str>,
    /// Why the data partition could not be used this boot, if it could not.
    pub fault: Option<&'a str>,
    /// Something the administrator must know (an update that was rolled back), if any.
    pub notice: Option<&'a str>,
}

/// The URL of `host` (a name or an address) on the admin listener of `f`.
fn url(f: &Facts, host: &str) -> String {
    let (scheme, port, default) = match f.https_port {
        Some(p) => ("https", p, 443),
        None => ("http", f.http_port, 80),
    };
    if port == default {
        format!("{scheme}://{host}/")
    } else {
        format!("{scheme}://{host}:{port}/")
    }
}

/// Whether a browser on the LAN can reach `ip`: not loopback, not unspecified, and not
/// IPv6 link-local (which needs a zone index browsers do not take).
fn reachable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// `text` in lines of at most `width` characters, broken at spaces (a longer word
/// stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// The banner text, lines ending in `\n`.
pub fn banner(f: &Facts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "streambox {} - streaming appliance", f.version);
    let _ = writeln!(out);
    if let Some(fault) = f.fault {
        let _ = writeln!(
            out,
            "!! THE DATA PARTITION COULD NOT BE USED. Nothing on it was changed."
        );
        for line in wrap(fault, 76) {
            let _ = writeln!(out, "!! {line}");
        }
        let _ = writeln!(out);
    }
    if let Some(notice) = f.notice {
        for line in wrap(notice, 76) {
            let _ = writeln!(out, "!! {line}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Open in a browser on this network:");
    if let Some(name) = super::network::mdns_name(f.host) {
        let _ = writeln!(out, "  {}", url(f, &name));
    }
    let mut any = false;
    for i in f.interfaces.iter().filter(|i| !i.loopback) {
        for a in i.addresses.iter().filter(|a| reachable(&a.ip)) {
            let host = match a.ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let _ = writeln!(out, "  {:<44} ({})", url(f, &host), i.name);
            any = true;
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "  (no network address yet: check the cable; the box keeps asking for one)"
        );
    }
    let _ = writeln!(out);
    if f.https_port.is_some() {
        match f.fingerprint {
            Some(fp) => {
                let _ = writeln!(
                    out,
                    "Certificate SHA-256 fingerprint (compare it with your browser's):"
                );
                // Two lines of 16 bytes each fit an 80-column console.
                let bytes: Vec<&str> = fp.split(':').collect();
                for half in bytes.chunks(16) {
                    let _ = writeln!(out, "  {}", half.join(":"));
                }
            }
            None => {
                let _ = writeln!(out, "The HTTPS certificate is being made...");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::network::Address;

    fn iface(name: &str, loopback: bool, ips: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            loopback,
            addresses: ips
                .iter()
                .map(|ip| Address {
                    ip: ip.parse().unwrap(),
                    prefix: 24,
                })
                .collect(),
        }
    }

    #[test]
    fn the_banner_names_every_reachable_address_and_the_fingerprint() {
        let ifs = [
            iface("lo", true, &["127.0.0.1", "::1"]),
            iface("enp0s2", false, &["192.0.2.7", "2001:db8::7", "fe80::1"]),
        ];
        let fp = ["AB"; 32].join(":");
        let f = Facts {
            version: "1.2.3",
            host: "streambox",
            https_port: Some(443),
            http_port: 80,
            interfaces: &ifs,
            fingerprint: Some(&fp),
            fault: None,
            notice: None,
        };
        let b = banner(&f);
        assert!(b.contains("https://streambox.local/\n"), "{b}");
        assert!(b.contains("https://192.0.2.7/"), "{b}");
        assert!(b.contains("https://[2001:db8::7]/"), "{b}");
        assert!(
            !b.contains("127.0.0.1") && !b.contains("fe80") && !b.contains("[::1]"),
            "{b}"
        );
        let joined: String = b
            .lines()
            .skip_while(|l| !l.starts_with("Certificate"))
            .skip(1)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(joined, fp);
        assert!(b.lines().all(|l| l.len() <= 80), "{b}");
        let plain = banner(&Facts {
            https_port: None,
            http_port: 8080,
            interfaces: &ifs[..1],
            fingerprint: None,
            ..f
        });
        assert!(plain.contains("http://streambox.local:8080/"), "{plain}");
        assert!(plain.contains("no network address yet"), "{plain}");
        assert!(!plain.contains("Certificate"), "{plain}");
        let reason =
            "The data partition failed its check (e2fsck exit 4) and was left as it is. ".repeat(3);
        let faulty = banner(&Facts {
            fault: Some(&reason),
            notice: Some("The update to 0.2.0 failed and was rolled back: it did not start."),
            ..f
        });
        assert!(
            faulty.contains("!! THE DATA PARTITION COULD NOT BE USED"),
            "{faulty}"
        );
        assert!(
            faulty.contains("!! The data partition failed its check"),
            "{faulty}"
        );
        assert!(faulty.lines().all(|l| l.len() <= 80), "{faulty}");
        assert!(
            faulty.contains("!! The update to 0.2.0 failed and was rolled back"),
            "{faulty}"
        );
    }
}
