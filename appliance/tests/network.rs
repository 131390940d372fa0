//! End-to-end, on this machine: the network API of the real binary. Every bad input is
//! refused with its reason before anything reaches the host (the same requests with
//! good settings change the appliance's network in the QEMU boot test,
//! image/boot_test.py). No request here names an interface this machine has with
//! settings that could be applied, so the test never changes the machine's network
//! even where netplan's D-Bus service runs.

mod support;

use serde_json::{json, Value};
use support::web::Web;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// This machine's interfaces, loopback left out, from the kernel.
fn links() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    out.sort();
    out
}

fn wired(interface: &str, ipv4: Value, ipv6: Value) -> Value {
    json!({ "interface": interface, "ipv4": ipv4, "ipv6": ipv6 })
}

#[test]
fn bad_network_settings_are_refused_with_the_reason_and_change_nothing() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let token = web.make_token("net");
    let call = |method: &str, path: &str, body: Option<Value>| {
        web.api(method, path, Some(&token), None, body.as_ref())
    };

    let a = call("GET", "/api/network", None);
    assert_eq!(a.status, 200, "{a:?}");
    let view = a.json();
    assert_eq!(view["links"], json!(links()));
    assert!(
        view["interfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .all(|i| i["name"] != "lo"),
        "{view}"
    );
    assert!(
        view["configured"].is_object() != view["unavailable"].is_string(),
        "either the configuration or why it cannot be read: {view}"
    );
    assert_eq!(view["trial"], Value::Null);

    // An interface of this machine's, for the refusals that need one that exists; each
    // settings below is refused on its values before the interface matters.
    let real = links().into_iter().next().expect("a network interface");
    let st4 = |a: &str, p: u8, g: Option<&str>| json!({"mode": "static", "address": a, "prefix": p, "gateway": g});
    let st6 = st4;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"wired": [wired(&real, st4("192.168.1.10", 33, None), json!({"mode": "slaac"}))]}),
            "1-32",
        ),
        (
            json!({"wired": [wired(&real, st4("192.168.1.0", 24, None), json!({"mode": "slaac"}))]}),
            "network or broadcast",
        ),
        (
            json!({"wired": [wired(&real, st4("192.168.1.10", 24, Some("192.168.1.10")), json!({"mode": "slaac"}))]}),
            "own address",
        ),
        (
            json!({"wired": [wired(&real, st4("192.168.1.10", 24, Some("10.0.0.1")), json!({"mode": "slaac"}))]}),
            "not reachable",
        ),
        (
            json!({"wired": [wired(&real, json!({"mode": "dhcp"}), st6("fd00::5", 64, Some("fd01::1")))]}),
            "not reachable",
        ),
        (
            json!({"wired": [wired(&real, json!({"mode": "dhcp"}), st6("fd00::5", 0, None))]}),
            "1-128",
        ),
        (
            json!({"wired": [{"interface": real, "ipv4": {"mode": "dhcp"}, "ipv6": {"mode": "slaac"}, "search": ["not a domain"]}]}),
            "not a DNS domain",
        ),
        (
            json!({"wired": [wired("no-such-nic0", json!({"mode": "dhcp"}), json!({"mode": "slaac"}))]}),
            "no network interface named",
        ),
        (
            json!({"wired": [wired("eth0.100", json!({"mode": "dhcp"}), json!({"mode": "slaac"}))]}),
            "not an interface name",
        ),
        (json!({"wired": []}), "no interface"),
        (
            json!({"wired": [wired("no-such-nic0", json!({"mode": "dhcp"}), json!({"mode": "slaac"}))], "confirm_within": 5}),
            "10-600",
        ),
    ];
    for (body, why) in cases {
        let a = call("PUT", "/api/network", Some(body.clone()));
        assert_eq!(a.status, 422, "{body} → {a:?}");
        assert!(
            a.error().contains(why),
            "{body}: {:?} should say {why:?}",
            a.error()
        );
    }
    // Malformed: an unknown mode, a field we do not know, an address that is not one.
    for body in [
        json!({"wired": [wired(&real, json!({"mode": "bootp"}), json!({"mode": "slaac"}))]}),
        json!({"wired": [wired(&real, json!({"mode": "dhcp"}), json!({"mode": "slaac"}))], "mtu": 9000}),
        json!({"wired": [wired(&real, st4("192.168.1.300", 24, None), json!({"mode": "slaac"}))]}),
    ] {
        let a = call("PUT", "/api/network", Some(body.clone()));
        assert_eq!(a.status, 422, "{body} → {a:?}");
    }

    // Nothing is on trial, so there is nothing to confirm or cancel.
    for path in ["/api/network/confirm", "/api/network/cancel"] {
        let a = call("POST", path, None);
        assert_eq!(a.status, 409, "{a:?}");
        assert!(
            a.error().contains("no network change is being tried"),
            "{a:?}"
        );
    }
    // A new name that is not one DNS label, or is the name already.
    let host = view["hostname"].as_str().expect("hostname").to_string();
    for (name, why) in [
        ("Studio", "lowercase"),
        ("studio.example", "lowercase letters"),
        ("-studio", "hyphen"),
        ("", "1-63"),
        ("localhost", "every machine"),
        ("2024", "digits"),
    ] {
        let a = call(
            "PUT",
            "/api/network/hostname",
            Some(json!({"hostname": name})),
        );
        assert_eq!(a.status, 422, "{name:?} → {a:?}");
        assert!(a.error().contains(why), "{name:?}: {:?}", a.error());
    }
    if streambox::system::hostname::check(&host).is_ok() {
        let a = call(
            "PUT",
            "/api/network/hostname",
            Some(json!({"hostname": host})),
        );
        assert_eq!(a.status, 422, "{a:?}");
        assert!(a.error().contains("already"), "{a:?}");
    }
    let a = call(
        "PUT",
        "/api/network/hostname",
        Some(json!({"name": "studio"})),
    );
    assert_eq!(a.status, 422, "an unknown field: {a:?}");

    let a = call("GET", "/api/network", None);
    assert_eq!(a.json()["trial"], Value::Null);
    assert_eq!(a.json()["hostname"], json!(host), "the name is as it was");
    let audit = call("GET", "/api/audit?limit=1000", None).json();
    assert!(
        !audit.to_string().contains("network."),
        "nothing was tried, so nothing was audited: {audit}"
    );
}

#[test]
fn the_network_page_shows_each_interface_and_refuses_bad_settings_in_place() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let page = web.get("/admin/network");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page
        .body
        .contains(r#"href="/admin/network" aria-current="page""#));
    for name in links() {
        assert!(
            page.body.contains(&format!(r#"id="nic-{name}""#)),
            "{name} has its section: {}",
            page.body
        );
    }
    let real = links().into_iter().next().expect("a network interface");
    let t = web.csrf("/admin/network");
    let cases = [
        (
            vec![
                ("ipv4_mode", "static"),
                ("ipv4_address", "192.168.1.10"),
                ("ipv4_prefix", "40"),
            ],
            "1-32",
        ),
        (
            vec![
                ("ipv4_mode", "static"),
                ("ipv4_address", "192.168.1.300"),
                ("ipv4_prefix", "24"),
            ],
            "IPv4 address",
        ),
        (vec![("ipv4_mode", "bootp")], "not an IPv4 mode"),
        (
            vec![("ipv4_mode", "dhcp"), ("dns", "one.two")],
            "DNS server",
        ),
        (
            vec![("ipv4_mode", "dhcp"), ("confirm_within", "soon")],
            "Confirm within",
        ),
    ];
    for (fields, why) in cases {
        let mut all = vec![
            ("csrf", t.as_str()),
            ("interface", real.as_str()),
            ("ipv6_mode", "slaac"),
        ];
        all.extend(fields.iter().copied());
        let a = web.post("/admin/network", &all);
        assert_eq!(a.status, 422, "{fields:?}: {a:?}");
        let alert = a.alert().unwrap_or_default();
        assert!(
            alert.contains(why),
            "{fields:?}: {alert:?} should say {why:?}"
        );
        // The form keeps what was typed, to be corrected.
        if let Some((_, v)) = fields.iter().find(|(k, _)| *k == "ipv4_address") {
            assert!(a.body.contains(&format!(r#"value="{v}""#)), "{}", a.body);
        }
    }
    // The name: shown, and a bad one refused in place, as typed.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        page.body
            .contains(&format!(r#"<td id="hostname">{}</td>"#, host.trim())),
        "the page shows the host name {host:?}"
    );
    let a = web.post(
        "/admin/network/hostname",
        &[("csrf", &t), ("hostname", "Main Hall")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.alert().unwrap_or_default().contains("lowercase"), "{a:?}");
    assert!(a.body.contains(r#"value="Main Hall""#), "{}", a.body);

    let a = web.post("/admin/network/confirm", &[("csrf", &t)]);
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a
        .alert()
        .unwrap_or_default()
        .contains("no network change is being tried"));
}

/// A VPN tunnel for the helper: `subnet4`, a unique local IPv6 subnet, and one peer with
/// `key` at the subnets' second addresses (`x`: a well-formed key).
fn vpn_tunnel(subnet4: &str, key: &str) -> Value {
    let key = if key == "x" {
        "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
    } else {
        key
    };
    let host = subnet4
        .rsplit_once('.')
        .map_or(String::new(), |(n, _)| format!("{n}.2"));
    json!({"port": 51820, "subnet4": subnet4, "subnet6": "fd00:9::/64",
           "peers": [{"public_key": key, "address4": host, "address6": "fd00:9::2"}]})
}

/// One request line to the helper at `socket`; its answer.
fn ask_helper(socket: &std::path::Path, line: &str) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect to the helper");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("send");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
}

#[test]
fn the_network_helper_refuses_what_is_not_a_valid_typed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("socket");
    let mut helper = std::process::Command::new(bin())
        .args(["netplan-helper", "--socket"])
        .arg(&socket)
        .spawn()
        .expect("streambox netplan-helper");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let real = links().into_iter().next().expect("a network interface");
    let cases = [
        ("not json".to_string(), "not a request"),
        (r#"{"op":"shell","cmd":"id"}"#.to_string(), "not a request"),
        (r#"{"op":"confirm","path":"/etc/passwd"}"#.to_string(), "not a netplan configuration"),
        (r#"{"op":"cancel","path":"/io/netplan/Netplan/config/../x"}"#.to_string(), "not a netplan configuration"),
        (
            json!({"op": "try", "seconds": 30, "wired": [wired(&real, json!({"mode": "static", "address": "10.0.0.0", "prefix": 24}), json!({"mode": "slaac"}))]}).to_string(),
            "network or broadcast",
        ),
        (
            json!({"op": "try", "seconds": 30, "wired": [wired("nosuch9", json!({"mode": "dhcp"}), json!({"mode": "slaac"}))]}).to_string(),
            "no network interface",
        ),
        (
            json!({"op": "try", "seconds": 3600, "wired": [wired(&real, json!({"mode": "dhcp"}), json!({"mode": "slaac"}))]}).to_string(),
            "10-600",
        ),
        (
            json!({"op": "recover", "path": "/io/netplan/Netplan/config/AB12CD", "previous": [["eth0.5", null]], "proposed": []}).to_string(),
            "not an interface name",
        ),
        (json!({"op": "hostname", "name": "../../etc/passwd"}).to_string(), "lowercase"),
        (json!({"op": "hostname", "name": "box\nroot"}).to_string(), "lowercase"),
        (json!({"op": "hostname", "name": "x".repeat(64)}).to_string(), "1-63"),
        (json!({"op": "ntp", "servers": ["evil\n[Time]"]}).to_string(), "neither"),
        // A VPN tunnel is checked by the helper too: its subnets, its peers' keys and
        // addresses; nothing else may ride in it (a private key, a file path).
        (json!({"op": "vpn", "tunnel": vpn_tunnel("8.8.8.0/24", "x")}).to_string(), "private network"),
        (json!({"op": "vpn", "tunnel": vpn_tunnel("10.9.0.0/24", "not a key")}).to_string(), "not a WireGuard key"),
        (json!({"op": "vpn", "tunnel": vpn_tunnel("10.9.0.0/24", "x").as_object().map(|t| {
            let mut t = t.clone();
            t.insert("private_key".into(), json!("/etc/shadow"));
            t
        })}).to_string(), "unknown field"),
    ];
    for (line, why) in cases {
        let a = ask_helper(&socket, &line);
        assert_eq!(a["answer"], "invalid", "{line} → {a}");
        assert!(
            a["message"].as_str().unwrap_or("").contains(why),
            "{line} → {a}: {why}"
        );
    }
    // A well-formed request reaches the system bus, which this machine may lack: then
    // the helper says it failed, and goes on serving.
    let a = ask_helper(&socket, r#"{"op":"get"}"#);
    assert!(a["answer"] == "yaml" || a["answer"] == "failed", "{a}");
    let a = ask_helper(&socket, "{}");
    assert_eq!(a["answer"], "invalid", "{a}");
    helper.kill().expect("kill");
    helper.wait().expect("wait");
}

#[test]
fn the_wizard_network_step_changes_the_network_as_the_page_does() {
    let server = Server::start();
    let web = Web::new(&server);
    let t = web.csrf("/setup");
    for (path, fields) in [
        (
            "/setup/admin",
            vec![
                ("name", "admin"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        ),
        (
            "/setup/identity",
            vec![("name", "Test hall"), ("time_zone", "UTC")],
        ),
    ] {
        let t = if path == "/setup/admin" {
            t.clone()
        } else {
            web.csrf("/setup")
        };
        let mut fields = fields;
        fields.push(("csrf", &t));
        let a = web.post(path, &fields);
        assert_eq!(a.status, 303, "{path}: {a:?}");
    }

    // Step 3 shows the name and a form per interface, posting to the wizard's routes.
    let page = web.get("/setup");
    assert_eq!(page.status, 200, "{page:?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        page.body
            .contains(&format!(r#"<td id="hostname">{}</td>"#, host.trim())),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"action="/setup/network/hostname""#));
    for name in links() {
        assert!(
            page.body.contains(&format!(r#"id="nic-{name}""#)),
            "{name}: {}",
            page.body
        );
    }
    assert!(page.body.contains(r#"action="/setup/network/interface""#));

    // Bad input is refused in place, with the form as typed, and the step stays.
    let real = links().into_iter().next().expect("a network interface");
    let t = web.csrf("/setup");
    let a = web.post(
        "/setup/network/interface",
        &[
            ("csrf", &t),
            ("interface", &real),
            ("ipv4_mode", "static"),
            ("ipv4_address", "192.168.1.0"),
            ("ipv4_prefix", "24"),
            ("ipv6_mode", "slaac"),
        ],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert()
            .unwrap_or_default()
            .contains("network or broadcast"),
        "{:?}",
        a.alert()
    );
    assert!(a.body.contains(r#"value="192.168.1.0""#), "{}", a.body);
    assert!(
        a.body.contains(r#"<details id="change-network" open"#),
        "{}",
        a.body
    );
    let a = web.post(
        "/setup/network/hostname",
        &[("csrf", &t), ("hostname", "Main_Hall")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.alert().unwrap_or_default().contains("lowercase"), "{a:?}");
    assert!(a.body.contains(r#"value="Main_Hall""#), "{}", a.body);
    let a = web.post(
        "/setup/network/ntp",
        &[("csrf", &t), ("servers", "pool.ntp.org bad!name")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(a.alert().unwrap_or_default().contains("bad!name"), "{a:?}");
    assert!(
        a.body.contains(r#"value="pool.ntp.org bad!name""#),
        "{}",
        a.body
    );
    // Remote access, offered on the same step: a bad endpoint is refused as typed, and
    // good settings get the page's answer on a machine without the network helper.
    assert!(page.body.contains(r#"action="/setup/network/vpn""#));
    assert!(page
        .body
        .contains(r#"<span id="setup-vpn-state">off</span>"#));
    let a = web.post(
        "/setup/network/vpn",
        &[("csrf", &t), ("enabled", "on"), ("endpoint", "vpn example")],
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert().unwrap_or_default().contains("not a host name"),
        "{a:?}"
    );
    assert!(a.body.contains(r#"value="vpn example""#), "{}", a.body);
    let a = web.post(
        "/setup/network/vpn",
        &[
            ("csrf", &t),
            ("enabled", "on"),
            ("endpoint", "vpn.example.com"),
        ],
    );
    // (The wizard answers every refusal of a step with 422; the API says 503.)
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert()
            .unwrap_or_default()
            .starts_with("the VPN cannot be set up here"),
        "{a:?}"
    );
    let a = web.post("/setup/network/confirm", &[("csrf", &t)]);
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.alert()
            .unwrap_or_default()
            .contains("no network change is being tried"),
        "{a:?}"
    );

    // Nothing on trial: the step is done.
    let a = web.post("/setup/network", &[("csrf", &t)]);
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/setup")),
        "{a:?}"
    );
    let page = web.get("/setup");
    assert!(page.body.contains("Storage"), "on to step 4: {}", page.body);
}

#[test]
fn the_network_page_keeps_each_interface_state_current() {
    let server = Server::start();
    let web = Web::new(&server);
    web.complete_setup(PASSWORD, "lobby");
    let page = web.get("/admin/network");
    for name in links() {
        assert!(
            page.body.contains(&format!(
                r#"id="live-{name}" data-refresh="1" data-refresh-from="/admin/network/live""#
            )),
            "{name}: {}",
            page.body
        );
    }
    assert!(page.body.contains(r#"<script src="/assets/refresh.js">"#));
    assert!(page.body.contains(r#"id="dns-in-use""#));
    // The live page has the same elements, with the state the kernel gives now.
    let live = web.get("/admin/network/live");
    assert_eq!(live.status, 200, "{live:?}");
    for name in links() {
        let at = live
            .body
            .find(&format!(r#"id="live-{name}""#))
            .unwrap_or_else(|| panic!("{name} in {}", live.body));
        let section = &live.body[at..];
        let operstate =
            std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")).expect("operstate");
        let carrier =
            std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).unwrap_or_default();
        let expect = if carrier.trim() == "0" {
            "no carrier".to_string()
        } else {
            operstate.trim().to_string()
        };
        assert!(
            section.contains(&format!(r#"<td class="link">{expect}"#)),
            "{name}: {expect} in {section}"
        );
    }
    let token = web.make_token("net");
    let view = web
        .api("GET", "/api/network", Some(&token), None, None)
        .json();

    // Each address's origin agrees with iproute2's view of the same kernel state.
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .expect("ip (iproute2), which tests/run.sh installs");
    let shown: Value = serde_json::from_slice(&out.stdout).expect("ip -j addr");
    let details = view["address_details"].as_array().expect("address_details");
    let mut checked = 0;
    for link in shown.as_array().expect("links") {
        let name = link["ifname"].as_str().expect("ifname");
        if name == "lo" {
            continue;
        }
        for a in link["addr_info"].as_array().expect("addr_info") {
            let local = a["local"].as_str().expect("local");
            let prefix = a["prefixlen"].as_u64().expect("prefixlen");
            // The page lists what getifaddrs(3) gives (the API's "interfaces").
            let listed = view["interfaces"]
                .as_array()
                .expect("interfaces")
                .iter()
                .filter(|i| i["name"] == name)
                .flat_map(|i| i["addresses"].as_array().cloned().unwrap_or_default())
                .any(|x| x["ip"] == local);
            if !listed {
                continue;
            }
            let (text, origin) = if a["scope"] == "link" {
                ("link-local", "link_local")
            } else if a["dynamic"] != json!(true) {
                ("static", "static")
            } else if a["family"] == "inet" {
                ("DHCP", "dhcp")
            } else if a["temporary"] == json!(true) {
                ("temporary (privacy)", "temporary")
            } else if prefix == 128 {
                ("DHCPv6", "dhcpv6")
            } else {
                ("router advertisement", "slaac")
            };
            assert!(
                live.body.contains(&format!("{local}/{prefix} ({text}")),
                "{name} {local}/{prefix} should be shown as {text}: {}",
                live.body
            );
            let d = details
                .iter()
                .find(|d| d["interface"] == name && d["ip"] == local)
                .unwrap_or_else(|| panic!("{name} {local} in {details:?}"));
            assert_eq!(d["origin"], origin, "{d}");
            let forever = a["valid_life_time"].as_u64() == Some(u64::from(u32::MAX));
            assert_eq!(d["valid_seconds"].is_null(), forever, "{d} against {a}");
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "this machine has an address besides loopback: {shown}"
    );
    let states = view["link_states"].as_object().expect("link_states");
    assert_eq!(
        states.keys().cloned().collect::<Vec<_>>(),
        links(),
        "{view}"
    );
    assert!(view["dns_in_use"].is_array(), "{view}");
    // Signed out, the live page is not shown.
    let anon = Web::new(&server);
    let a = anon.get("/admin/network/live");
    assert!(
        a.status == 303 || a.status == 401 || a.status == 403,
        "{a:?}"
    );
}
