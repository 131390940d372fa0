//! The network settings' YAML against netplan itself (the distribution's netplan.io), on
//! a scratch root: what `netplan generate` makes of it for systemd-networkd, and the
//! `netplan set` deltas the service sends over D-Bus read back by `netplan get`.

use std::path::Path;
use std::process::Command;
use streambox::system::netplan::{Configured, Ipv4, Ipv6, Wired};

/// The image's own default configuration, as installed in /etc/netplan.
const DEFAULT: &str = include_str!("../../netplan/10-streambox-wired.yaml");

fn netplan(root: &Path, args: &[&str]) -> String {
    let out = Command::new("netplan")
        .args(args)
        .arg(format!("--root-dir={}", root.display()))
        .output()
        .expect("netplan is missing: tests/run.sh installs netplan.io");
    assert!(
        out.status.success(),
        "netplan {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("etc/netplan");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("10-streambox-wired.yaml");
    std::fs::write(&file, DEFAULT).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    root
}

fn every_kind() -> Vec<Wired> {
    vec![
        Wired {
            interface: "enp0s3".into(),
            ipv4: Ipv4::Static {
                address: "192.168.76.20".parse().expect("ip"),
                prefix: 24,
                gateway: Some("192.168.76.2".parse().expect("ip")),
            },
            ipv6: Ipv6::Static {
                address: "fd00:76::20".parse().expect("ip"),
                prefix: 64,
                gateway: Some("fe80::2".parse().expect("ip")),
            },
            dns: vec![
                "192.168.76.3".parse().expect("ip"),
                "fd00:76::3".parse().expect("ip"),
            ],
            search: vec!["example.com".into()],
        },
        Wired {
            interface: "enp0s4".into(),
            ipv4: Ipv4::Dhcp,
            ipv6: Ipv6::Dhcp,
            dns: vec![],
            search: vec![],
        },
        Wired {
            interface: "enp0s5".into(),
            ipv4: Ipv4::Off,
            ipv6: Ipv6::Slaac,
            dns: vec![],
            search: vec!["lan".into()],
        },
        Wired {
            interface: "eth2".into(),
            ipv4: Ipv4::Static {
                address: "10.9.8.7".parse().expect("ip"),
                prefix: 16,
                gateway: None,
            },
            ipv6: Ipv6::Off,
            dns: vec!["10.9.0.1".parse().expect("ip")],
            search: vec![],
        },
    ]
}

/// The `[Section]` `Key=value` lines networkd gets for `id`.
fn networkd(root: &Path, id: &str) -> String {
    let path = root.join(format!("run/systemd/network/10-netplan-{id}.network"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn deltas_are_read_back_as_set_and_generate_what_they_say() {
    let root = scratch();
    let before = Configured::parse(&netplan(root.path(), &["get", "all"])).expect("parse");
    assert!(before.wired.is_empty(), "{before:?}");
    assert_eq!(
        before
            .by_hand
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["wired-en", "wired-eth"],
        "the image's match rules are defaults, not ours"
    );
    for w in every_kind() {
        for delta in w.deltas().expect("deltas") {
            netplan(
                root.path(),
                &["set", "--origin-hint=10-streambox-wired", &delta],
            );
        }
    }
    let after = Configured::parse(&netplan(root.path(), &["get", "all"])).expect("parse");
    assert_eq!(after.wired, every_kind());
    assert_eq!(
        after.by_hand, before.by_hand,
        "the defaults are left as they were"
    );

    // Setting an interface again replaces its entry: nothing of the old one is left.
    let mut again = every_kind()[0].clone();
    again.ipv4 = Ipv4::Dhcp;
    again.ipv6 = Ipv6::Slaac;
    again.dns.clear();
    again.search.clear();
    for delta in again.deltas().expect("deltas") {
        netplan(
            root.path(),
            &["set", "--origin-hint=10-streambox-wired", &delta],
        );
    }
    let c = Configured::parse(&netplan(root.path(), &["get", "all"])).expect("parse");
    assert_eq!(c.wired("enp0s3"), Some(&again));

    netplan(root.path(), &["generate"]);
    let n = networkd(root.path(), "enp0s3");
    assert!(
        n.contains("DHCP=ipv4") && n.contains("IPv6AcceptRA=yes"),
        "{n}"
    );
    assert!(!n.contains("Address=192.168.76.20"), "{n}");
    let n = networkd(root.path(), "enp0s4");
    assert!(n.contains("DHCP=yes"), "{n}");
    let n = networkd(root.path(), "enp0s5");
    assert!(!n.contains("DHCP="), "{n}");
    assert!(
        n.contains("IPv6AcceptRA=yes") && n.contains("Domains=lan"),
        "{n}"
    );
    let n = networkd(root.path(), "eth2");
    for line in ["Address=10.9.8.7/16", "DNS=10.9.0.1", "IPv6AcceptRA=no"] {
        assert!(n.contains(line), "{line} in {n}");
    }
    assert!(!n.contains("Gateway="), "{n}");
}

#[test]
fn static_addresses_reach_networkd() {
    let root = scratch();
    let w = &every_kind()[0];
    for delta in w.deltas().expect("deltas") {
        netplan(
            root.path(),
            &["set", "--origin-hint=10-streambox-wired", &delta],
        );
    }
    netplan(root.path(), &["generate"]);
    let n = networkd(root.path(), "enp0s3");
    for line in [
        "Name=enp0s3",
        "Address=192.168.76.20/24",
        "Address=fd00:76::20/64",
        "Gateway=192.168.76.2",
        "Gateway=fe80::2",
        "DNS=192.168.76.3",
        "DNS=fd00:76::3",
        "Domains=example.com",
        "IPv6AcceptRA=no",
    ] {
        assert!(n.contains(line), "{line} in {n}");
    }
    assert!(!n.contains("DHCP="), "{n}");
    // An interface a rule of the image's default also matches: our entry's file sorts
    // first, and networkd takes the first file that matches.
    let ours = "10-netplan-enp0s3.network";
    let theirs = "10-netplan-wired-en.network";
    assert!(root
        .path()
        .join("run/systemd/network")
        .join(theirs)
        .exists());
    assert!(ours < theirs);
}
